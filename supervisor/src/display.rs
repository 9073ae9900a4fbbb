//! The display as a first-class service: Xvfb from `[display]`, gated on an X11 handshake.
//!
//! Xvfb is started with:
//! - `-nolisten tcp`: no X over the network; the desktop is reached through deskd only.
//! - `-nolisten local`: no abstract-namespace socket (`@/tmp/.X11-unix/XN`). Abstract sockets
//!   belong to the network namespace, so any container sharing it (a pod, `--network
//!   container:`) could otherwise drive the desktop. Only the file socket `/tmp/.X11-unix/XN`
//!   stays, reachable by processes that share this container's file system.
//! - no `-ac`: access control stays on. Xvfb without `-auth` admits local (socket) clients of
//!   any user, which is what the desktop's own programs need, and `-ac` would only matter for
//!   the TCP listener that is off anyway.
//! - `-noreset`: without it the server resets (dropping its state: selections, atoms, window
//!   properties) whenever its last client disconnects, e.g. after each readiness probe.
//!
//! `extra_args` come last, so they can add to (not remove) these.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::DisplaySettings;
use crate::service::{Readiness, RestartPolicy, ServiceSpec};

/// The service name `after` lists use.
pub const SERVICE_NAME: &str = "display";

/// The `display` service spec.
pub fn service(display: &DisplaySettings) -> ServiceSpec {
    let name = display.display_name();
    let mut command = vec![
        display.binary.clone(),
        name.clone(),
        "-screen".to_string(),
        "0".to_string(),
        format!("{}x{}x{}", display.width, display.height, display.depth),
        "-nolisten".to_string(),
        "tcp".to_string(),
        "-nolisten".to_string(),
        "local".to_string(),
        "-noreset".to_string(),
    ];
    command.extend(display.extra_args.iter().cloned());
    let mut spec = ServiceSpec::new(SERVICE_NAME, command);
    spec.ready = Readiness::X11 { display: name };
    spec.ready_timeout = Duration::from_secs(10);
    spec.restart = RestartPolicy::Always;
    spec.critical = true;
    spec.stop_signal = Signal::SIGTERM;
    spec.stop_timeout = Duration::from_secs(5);
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_probe_follow_the_settings() {
        let d = DisplaySettings {
            number: 42,
            width: 800,
            height: 600,
            depth: 16,
            extra_args: vec!["+extension".into(), "RANDR".into()],
            binary: "/opt/Xvfb".into(),
        };
        let s = service(&d);
        assert_eq!(s.name, "display");
        assert_eq!(
            s.command,
            [
                "/opt/Xvfb",
                ":42",
                "-screen",
                "0",
                "800x600x16",
                "-nolisten",
                "tcp",
                "-nolisten",
                "local",
                "-noreset",
                "+extension",
                "RANDR"
            ]
        );
        assert!(matches!(&s.ready, Readiness::X11 { display } if display == ":42"));
        assert!(s.critical);
        assert_eq!(s.restart, RestartPolicy::Always);
        assert!(s.after.is_empty());
    }
}
