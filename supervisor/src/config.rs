//! Configuration: TOML files (later ones and `conf.d/*.toml` extend earlier ones) turned into
//! validated [`Settings`]. Collects every error with file, line and key. Knows nothing of
//! processes, tokio or HTTP.
//!
//! SKELETON: the resolved types below are the contract other modules program against; the
//! loader (`load`, `builtin_default`) is filled in by the config work.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::service::ServiceSpec;

/// Drop-in directory read after the `-c` files.
pub const DEFAULT_CONF_D: &str = "/etc/deskd/conf.d";

/// Everything `deskd run` needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The X display deskd runs as the service `display`, if configured.
    pub display: Option<DisplaySettings>,
    pub http: HttpSettings,
    /// neko as the service `neko`, if configured (needs `display`).
    pub neko: Option<NekoSettings>,
    pub api: ApiSettings,
    /// User services from `[[service]]` tables plus the main command, in file order.
    /// The built-in `display` and `neko` services are *not* in here; see [`Settings::all_services`].
    pub services: Vec<ServiceSpec>,
    /// Files that were read, in order (for `deskd check` and logs).
    pub sources: Vec<PathBuf>,
}

/// `[display]`: Xvfb run by deskd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplaySettings {
    /// X display number: `99` means `DISPLAY=:99`.
    pub number: u32,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    /// Extra Xvfb arguments.
    pub extra_args: Vec<String>,
    /// Xvfb program (default `Xvfb` on PATH).
    pub binary: String,
}

impl DisplaySettings {
    /// The `DISPLAY` value, e.g. `:99`.
    pub fn display_name(&self) -> String {
        format!(":{}", self.number)
    }
}

/// `[http]`: the one port deskd serves.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// `[http] token` (prefer `token_file` or env `DESKD_TOKEN`).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub view_token: Option<String>,
    pub view_token_file: Option<PathBuf>,
    /// Allowed `Origin`s for WebSocket upgrades; empty means same origin only.
    pub allowed_origins: Vec<String>,
    /// Most relay (viewer) connections at once.
    pub max_clients: usize,
    /// Largest WebSocket message relayed, in bytes.
    pub max_frame_bytes: usize,
    /// Frames buffered per direction per relay before back-pressure applies.
    pub relay_queue: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            token: None,
            token_file: None,
            view_token: None,
            view_token_file: None,
            allowed_origins: Vec::new(),
            max_clients: 32,
            max_frame_bytes: 1 << 20,
            relay_queue: 64,
        }
    }
}

/// `[neko]`: the WebRTC streamer run as the service `neko`.
#[derive(Debug, Clone, PartialEq)]
pub struct NekoSettings {
    /// Program (default `neko` on PATH).
    pub binary: String,
    /// neko's internal HTTP address (loopback).
    pub bind: SocketAddr,
    /// Media transport: one UDP port (default 59000), a port range, and/or a TCP port.
    pub udp_port: Option<u16>,
    pub epr: Option<(u16, u16)>,
    pub tcpmux: Option<u16>,
    /// Addresses advertised in ICE candidates (never empty).
    pub nat1to1: Vec<String>,
    pub ice_servers: Vec<IceServer>,
    pub audio: bool,
    /// Frame rate of the screen mode.
    pub fps: u32,
    /// Video codec (vp8 default).
    pub codec: String,
    /// Extra `--key=value` flags passed to neko as they are.
    pub extra_args: Vec<String>,
}

/// A STUN/TURN server given to browsers and to neko.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `[api]`: the agent API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub enabled: bool,
    /// Delay between characters of a `type` action.
    pub type_delay: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            enabled: true,
            type_delay: Duration::from_millis(0),
        }
    }
}

impl Settings {
    /// Every service deskd supervises: `display`, then `neko`, then the user's, then main.
    /// `neko_api_token` is the per-start secret deskd hands to neko.
    pub fn all_services(&self, neko_api_token: &str) -> Vec<ServiceSpec> {
        let mut all = Vec::new();
        if let Some(display) = &self.display {
            all.push(crate::display::service(display));
        }
        if let (Some(neko), Some(display)) = (&self.neko, &self.display) {
            all.push(crate::neko::service(neko, display, neko_api_token));
        }
        all.extend(self.services.iter().cloned());
        all
    }
}

/// Reads and validates config files; `None` paths mean the built-in default.
pub fn load(
    _paths: &[PathBuf],
    _conf_d: &Path,
    _main: &[String],
) -> Result<Settings, ConfigErrors> {
    unimplemented!("config loader")
}

/// Every problem found in the configuration, each naming file, line and key.
#[derive(Debug, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

/// One configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// `file:line: key` or `file` when no line is known.
    pub location: String,
    pub message: String,
}
