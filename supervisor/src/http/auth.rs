//! Access control: the control and view tokens, cookie/Bearer/query extraction, constant-time
//! comparison, and the Origin allow-list for WebSocket upgrades. Tokens never reach logs.

/// The resolved tokens.
pub struct Auth {}
