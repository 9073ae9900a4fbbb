//! What one supervised service is, after validation: the contract between [`crate::config`]
//! (which builds these from TOML, `[display]` and `[neko]`) and [`crate::supervisor`] (which
//! runs them). Durations are parsed, signals resolved, regexes compiled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A validated service, ready to be supervised. Its `Debug` output redacts the values of
/// `secret_env` entries (neko's API token, TURN credentials).
#[derive(Clone)]
pub struct ServiceSpec {
    /// Unique name; used in logs, metrics, `after` lists and the HTTP status.
    pub name: String,
    /// Program and arguments (`command[0]` is looked up on PATH).
    pub command: Vec<String>,
    /// Variables set for the service, on top of the inherited environment.
    pub env: BTreeMap<String, String>,
    /// Names of `env` entries whose values are secrets: never printed or logged.
    pub secret_env: Vec<String>,
    /// Inherited variables whose names start with one of these are removed (neko: `NEKO_`).
    pub scrub_env_prefixes: Vec<String>,
    /// Which of deskd's own secrets ([`DESKD_SECRET_ENV`]) this service inherits from deskd's
    /// environment; the others are removed (config `inherit_secrets`, default none).
    pub inherit_secrets: Vec<String>,
    /// Working directory; default: deskd's own.
    pub cwd: Option<PathBuf>,
    /// Drop to this user (and its groups) before exec.
    pub user: Option<String>,
    /// How to tell the service is up.
    pub ready: Readiness,
    /// How long the readiness probe may wait before the start counts as failed.
    pub ready_timeout: Duration,
    /// Services that must be ready before this one starts; restarting one restarts this.
    pub after: Vec<String>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// Signal sent to the whole process group to stop the service.
    pub stop_signal: Signal,
    /// After this long the process group gets SIGKILL.
    pub stop_timeout: Duration,
    /// When restarting is given up, deskd stops everything and exits non-zero.
    pub critical: bool,
    /// Its exit stops deskd with its exit code.
    pub main: bool,
}

/// Variables of deskd's environment that deskd reads as secrets (the access tokens). No
/// service inherits them unless its config lists them in `inherit_secrets`.
pub const DESKD_SECRET_ENV: [&str; 2] = [
    crate::http::auth::ENV_TOKEN,
    crate::http::auth::ENV_VIEW_TOKEN,
];

/// How a service's readiness is decided.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Ready as soon as the process is started.
    Started,
    /// An X11 connection handshake to this display (e.g. `:99`) succeeds.
    X11 { display: String },
    /// A window manager runs on this display: the ICCCM `WM_S0` selection has an owner or
    /// the root window has `_NET_SUPPORTING_WM_CHECK`. Clients started before that may map
    /// their windows while the window manager is still taking over, and stay unmanaged.
    WindowManager { display: String },
    /// A TCP connect to this address succeeds.
    Tcp { addr: String },
    /// A connect to this Unix stream socket succeeds (e.g. PulseAudio's native socket).
    Unix { path: String },
    /// An HTTP GET to this URL answers 2xx.
    Http { url: String },
    /// A line of the service's stdout or stderr matches.
    Log { pattern: regex::Regex },
    /// A one-shot: done when the process exits with status 0 (`ready = { exit = true }`).
    Exit,
}

impl Readiness {
    /// One line saying what the probe waits for (for errors, `deskd check` and logs).
    pub fn describe(&self) -> String {
        match self {
            Readiness::Started => "process started".to_string(),
            Readiness::X11 { display } => format!("X11 handshake on display {display}"),
            Readiness::WindowManager { display } => {
                format!("a window manager on display {display}")
            }
            Readiness::Tcp { addr } => format!("TCP connect to {addr}"),
            Readiness::Unix { path } => format!("connect to Unix socket {path}"),
            Readiness::Http { url } => format!("HTTP 2xx from {url}"),
            Readiness::Log { pattern } => format!("output line matching /{}/", pattern.as_str()),
            Readiness::Exit => "exit with status 0 (one-shot)".to_string(),
        }
    }
}

/// When a service that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Exponential restart backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A service that stayed up this long starts again from `initial`.
    pub reset_after: Duration,
    /// Give up after this many restarts without a reset (0 = never give up).
    pub max_restarts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            reset_after: Duration::from_secs(30),
            max_restarts: 0,
        }
    }
}

impl std::fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: BTreeMap<&str, &str> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), self.display_env_value(k, v)))
            .collect();
        f.debug_struct("ServiceSpec")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("env", &env)
            .field("secret_env", &self.secret_env)
            .field("scrub_env_prefixes", &self.scrub_env_prefixes)
            .field("inherit_secrets", &self.inherit_secrets)
            .field("cwd", &self.cwd)
            .field("user", &self.user)
            .field("ready", &self.ready)
            .field("ready_timeout", &self.ready_timeout)
            .field("after", &self.after)
            .field("restart", &self.restart)
            .field("backoff", &self.backoff)
            .field("stop_signal", &self.stop_signal)
            .field("stop_timeout", &self.stop_timeout)
            .field("critical", &self.critical)
            .field("main", &self.main)
            .finish()
    }
}

impl ServiceSpec {
    /// A spec with the defaults of a `[[service]]` table that sets only name and command.
    pub fn new(name: impl Into<String>, command: Vec<String>) -> Self {
        ServiceSpec {
            name: name.into(),
            command,
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            scrub_env_prefixes: Vec::new(),
            inherit_secrets: Vec::new(),
            cwd: None,
            user: None,
            ready: Readiness::Started,
            ready_timeout: Duration::from_secs(10),
            after: Vec::new(),
            restart: RestartPolicy::Always,
            backoff: Backoff::default(),
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(5),
            critical: false,
            main: false,
        }
    }

    /// The value of an env entry as it may be shown to people: secrets are redacted.
    pub fn display_env_value<'a>(&'a self, key: &str, value: &'a str) -> &'a str {
        if self.secret_env.iter().any(|k| k == key) {
            "<redacted>"
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secret_env() {
        let mut spec = ServiceSpec::new("neko", vec!["neko".into()]);
        spec.env.insert("TOKEN".into(), "s3cret-value".into());
        spec.env.insert("DISPLAY".into(), ":99".into());
        spec.secret_env.push("TOKEN".into());
        let shown = format!("{spec:?}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains(":99"),
            "{shown}"
        );
    }
}
