//! Direct X11 access for the agent API: screenshots (GetImage/MIT-SHM), input (XTEST),
//! clipboard (selections) and top-level windows. No HTTP here.

/// A connection to the desktop's X server.
pub struct Desktop {}
