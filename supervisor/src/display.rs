//! The display as a first-class service: Xvfb from `[display]`, gated on an X11 handshake.

use crate::config::DisplaySettings;
use crate::service::ServiceSpec;

/// The `display` service spec.
pub fn service(_display: &DisplaySettings) -> ServiceSpec {
    unimplemented!("display service")
}
