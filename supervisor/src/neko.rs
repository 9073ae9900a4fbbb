//! neko as a built-in service: the command line and environment derived from `[neko]` and
//! `[display]`, with every setting explicit and inherited `NEKO_*` variables scrubbed.

use crate::config::{DisplaySettings, NekoSettings};
use crate::service::ServiceSpec;

/// The `neko` service spec.
pub fn service(_neko: &NekoSettings, _display: &DisplaySettings, _api_token: &str) -> ServiceSpec {
    unimplemented!("neko service")
}
