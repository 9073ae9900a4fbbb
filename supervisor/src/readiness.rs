//! Readiness probes with deadlines: an X11 connection handshake, a TCP or Unix socket connect, an HTTP GET
//! answering 2xx, an output line matching a regex, or just "started" (a one-shot's probe never
//! passes: its exit decides, in the supervisor). Probes poll fast (a
//! few ms) so they add little to start-up. Knows nothing of restarts: the caller decides
//! what a failed probe means. Display probes also run after start ([`keeps_probing`]).
//! Probes never use tokio's blocking pool (request work must not delay them): the window
//! manager probe runs on a thread of its own.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::service::Readiness;

/// Pause between attempts during the first [`FAST_PHASE`], then [`SLOW_POLL`].
const FAST_POLL: Duration = Duration::from_millis(3);
const FAST_PHASE: Duration = Duration::from_secs(2);
const SLOW_POLL: Duration = Duration::from_millis(50);

/// Why a service did not become ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadyError {
    #[error("not ready after {}: waited for {probe}{}", humantime::format_duration(*.waited), last_error_suffix(.last_error))]
    Timeout {
        /// [`Readiness::describe`].
        probe: String,
        waited: Duration,
        last_error: Option<String>,
    },
    /// The probe can never succeed (e.g. the output it watches has ended).
    #[error("waited for {probe}: {reason}")]
    Failed { probe: String, reason: String },
}

fn last_error_suffix(last: &Option<String>) -> String {
    match last {
        Some(e) => format!(" (last error: {e})"),
        None => String::new(),
    }
}

/// After a service is ready, how often a display probe ([`keeps_probing`]) runs again.
pub const LIVENESS_PERIOD: Duration = Duration::from_secs(2);
/// How long one such check may take before the display counts as not answering.
pub const LIVENESS_TIMEOUT: Duration = crate::desktop::xconn::X_TIMEOUT;

/// Whether a ready service's probe keeps running ([`check_once`] every [`LIVENESS_PERIOD`]):
/// the X server probes, so a display that stops answering (SIGSTOP, a hung server) is seen
/// as not ready, not only at start.
pub fn keeps_probing(ready: &Readiness) -> bool {
    matches!(
        ready,
        Readiness::X11 { .. } | Readiness::WindowManager { .. }
    )
}

/// One attempt of `ready`'s probe within `timeout`.
pub async fn check_once(ready: &Readiness, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, probe_once(ready)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{} did not answer within {}",
            ready.describe(),
            humantime::format_duration(timeout)
        )),
    }
}

/// Waits until `ready` passes or `timeout` runs out. `log` is the receiver of the service's
/// [`crate::output::LogWatch`] for `Readiness::Log` (ignored by the other probes).
pub async fn wait_ready(
    ready: &Readiness,
    timeout: Duration,
    log: Option<watch::Receiver<bool>>,
) -> Result<(), ReadyError> {
    let start = Instant::now();
    // Config caps timeouts; a library caller's absurd one waits "forever" instead of panicking.
    let deadline = start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
    let timed_out = |last_error: Option<String>| ReadyError::Timeout {
        probe: ready.describe(),
        waited: timeout,
        last_error,
    };
    match ready {
        Readiness::Started => Ok(()),
        // A one-shot is done when it exits; the supervisor sees the exit, not this probe,
        // and the one-shot may take as long as it needs.
        Readiness::Exit => std::future::pending().await,
        Readiness::Log { .. } => {
            let Some(mut rx) = log else {
                return Err(ReadyError::Failed {
                    probe: ready.describe(),
                    reason: "no output is being watched".into(),
                });
            };
            let outcome = tokio::time::timeout_at(deadline, rx.wait_for(|m| *m))
                .await
                .map(|r| r.map(drop));
            match outcome {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(ReadyError::Failed {
                    probe: ready.describe(),
                    reason: "the output ended without a matching line".into(),
                }),
                Err(_) => Err(timed_out(None)),
            }
        }
        _ => {
            let mut last_error = None;
            loop {
                let attempt = tokio::time::timeout_at(deadline, probe_once(ready)).await;
                match attempt {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(err)) => last_error = Some(err),
                    Err(_) => return Err(timed_out(last_error)),
                }
                let pause = if start.elapsed() < FAST_PHASE {
                    FAST_POLL
                } else {
                    SLOW_POLL
                };
                if Instant::now() + pause >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Err(timed_out(last_error));
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// One attempt of a polling probe.
async fn probe_once(ready: &Readiness) -> Result<(), String> {
    match ready {
        Readiness::X11 { display } => x11_handshake(display).await,
        Readiness::WindowManager { display } => {
            // A thread of its own: never queued behind request work on a shared pool, and
            // every X wait in it has a deadline, so it ends on its own.
            let display = display.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("deskd-probe".into())
                .spawn(move || {
                    let _ = tx.send(window_manager_running(&display));
                })
                .map_err(|e| format!("window manager probe: cannot start its thread: {e}"))?;
            rx.await
                .map_err(|_| "window manager probe: its thread failed".to_string())?
        }
        Readiness::Tcp { addr } => TcpStream::connect(addr.as_str())
            .await
            .map(drop)
            .map_err(|e| format!("connect {addr}: {e}")),
        Readiness::Unix { path } => UnixStream::connect(path)
            .await
            .map(drop)
            .map_err(|e| format!("connect {path}: {e}")),
        Readiness::Http { url } => http_get_2xx(url).await,
        Readiness::Started | Readiness::Log { .. } | Readiness::Exit => Ok(()),
    }
}

/// Whether a window manager has taken over `display`'s first screen: the ICCCM manager
/// selection `WM_S<screen>` has an owner, or the root window carries EWMH's
/// `_NET_SUPPORTING_WM_CHECK`. Blocking (x11rb); run it off the async threads.
fn window_manager_running(display: &str) -> Result<(), String> {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _};

    let (conn, screen) = crate::desktop::xconn::connect(display)
        .map_err(|e| format!("connect to {display}: {e}"))?;
    let root = conn
        .setup()
        .roots
        .get(screen)
        .map(|s| s.root)
        .ok_or_else(|| format!("{display} has no screen {screen}"))?;
    let x = |e: &dyn std::fmt::Display| format!("{display}: {e}");
    let selection = conn
        .intern_atom(false, format!("WM_S{screen}").as_bytes())
        .map_err(|e| x(&e))?
        .reply()
        .map_err(|e| x(&e))?
        .atom;
    let owner = conn
        .get_selection_owner(selection)
        .map_err(|e| x(&e))?
        .reply()
        .map_err(|e| x(&e))?
        .owner;
    if owner != x11rb::NONE {
        return Ok(());
    }
    let check = conn
        .intern_atom(true, b"_NET_SUPPORTING_WM_CHECK")
        .map_err(|e| x(&e))?
        .reply()
        .map_err(|e| x(&e))?
        .atom;
    if check != x11rb::NONE {
        let prop = conn
            .get_property(false, root, check, AtomEnum::WINDOW, 0, 1)
            .map_err(|e| x(&e))?
            .reply()
            .map_err(|e| x(&e))?;
        if prop.value_len > 0 {
            return Ok(());
        }
    }
    Err(format!(
        "no window manager on {display} yet (WM_S{screen} has no owner)"
    ))
}

/// Where the X server of `display` (`:99`, `:99.0`, `host:99`) listens.
#[derive(Debug, PartialEq, Eq)]
enum X11Socket {
    Unix(String),
    Tcp(String),
}

fn x11_socket(display: &str) -> Result<X11Socket, String> {
    let (host, rest) = display
        .rsplit_once(':')
        .ok_or_else(|| format!("bad X display {display:?} (expected \":N\")"))?;
    let number = rest.split('.').next().unwrap_or("");
    let number: u16 = number
        .parse()
        .map_err(|_| format!("bad X display {display:?} (expected \":N\")"))?;
    if host.is_empty() || host == "unix" {
        Ok(X11Socket::Unix(format!("/tmp/.X11-unix/X{number}")))
    } else {
        let port = 6000u32 + u32::from(number);
        Ok(X11Socket::Tcp(format!("{host}:{port}")))
    }
}

/// The X11 connection setup request: little-endian, protocol 11.0, no authorization.
const X11_SETUP: [u8; 12] = [b'l', 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Connects and completes the connection setup; only a "Success" reply counts (an X server
/// that requires authorization is reported with its reason).
async fn x11_handshake(display: &str) -> Result<(), String> {
    match x11_socket(display)? {
        X11Socket::Unix(path) => {
            let stream = UnixStream::connect(&path)
                .await
                .map_err(|e| format!("connect {path}: {e}"))?;
            x11_setup(stream).await
        }
        X11Socket::Tcp(addr) => {
            let stream = TcpStream::connect(&addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            x11_setup(stream).await
        }
    }
}

async fn x11_setup<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
) -> Result<(), String> {
    stream
        .write_all(&X11_SETUP)
        .await
        .map_err(|e| format!("X11 setup request: {e}"))?;
    let mut head = [0u8; 8];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("X11 setup reply: {e}"))?;
    match head[0] {
        1 => Ok(()),
        0 => {
            // Failed: byte 1 is the length of the reason that follows the 8-byte header.
            let len = usize::from(head[1]);
            let mut reason = vec![0u8; len];
            let _ = stream.read_exact(&mut reason).await;
            Err(format!(
                "X server refused the connection: {}",
                String::from_utf8_lossy(&reason)
            ))
        }
        2 => Err("X server requires authorization".into()),
        other => Err(format!("unexpected X11 setup reply {other}")),
    }
}

/// `http://host:port/path` into (`host:port`, `host`, `/path`).
fn parse_http_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs can be probed, not {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let addr = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, authority.to_string(), path.to_string()))
}

/// A minimal HTTP/1.1 GET; only the status line is read.
async fn http_get_2xx(url: &str) -> Result<(), String> {
    let (addr, host, path) = parse_http_url(url)?;
    let mut stream = TcpStream::connect(addr.as_str())
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: deskd-probe\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status_line = line.lines().next().unwrap_or("").trim();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {url}: no HTTP status line in the answer"))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("GET {url}: {status_line}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn x11_display_names() {
        assert_eq!(
            x11_socket(":99").unwrap(),
            X11Socket::Unix("/tmp/.X11-unix/X99".into())
        );
        assert_eq!(
            x11_socket(":5.0").unwrap(),
            X11Socket::Unix("/tmp/.X11-unix/X5".into())
        );
        assert_eq!(
            x11_socket("localhost:1").unwrap(),
            X11Socket::Tcp("localhost:6001".into())
        );
        assert!(x11_socket("99").is_err());
    }

    #[test]
    fn http_urls() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/health").unwrap(),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1:8080".into(),
                "/health".into()
            )
        );
        assert_eq!(
            parse_http_url("http://localhost").unwrap(),
            ("localhost:80".into(), "localhost".into(), "/".into())
        );
        assert!(parse_http_url("https://x/").is_err());
    }

    #[tokio::test]
    async fn tcp_probe_times_out_naming_the_probe_and_last_error() {
        // A port that was just free: nothing listens there.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let ready = Readiness::Tcp { addr: addr.clone() };
        let err = wait_ready(&ready, Duration::from_millis(200), None)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("TCP connect to {addr}")), "{msg}");
        assert!(msg.contains("200ms"), "{msg}");
        assert!(msg.contains("last error: connect"), "{msg}");
    }

    #[tokio::test]
    async fn unix_probe_waits_for_a_listener_on_the_socket() {
        let dir = std::env::temp_dir().join(format!("deskd-unix-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pulse.socket");
        let _ = std::fs::remove_file(&path);
        let ready = Readiness::Unix {
            path: path.display().to_string(),
        };
        // Nothing there yet: a timeout naming the socket and the connect error.
        let err = wait_ready(&ready, Duration::from_millis(100), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("connect to Unix socket {}", path.display())),
            "{err}"
        );
        assert!(err.contains("last error: connect"), "{err}");
        // A listener appearing while the probe polls makes it pass.
        let bind_path = path.clone();
        let listener = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let l = tokio::net::UnixListener::bind(&bind_path).unwrap();
            let _ = l.accept().await;
        });
        wait_ready(&ready, Duration::from_secs(10), None)
            .await
            .unwrap();
        listener.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn http_probe_needs_2xx() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                n += 1;
                let answer: &[u8] = if n < 3 {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = s.write_all(answer).await;
            }
        });
        let ready = Readiness::Http {
            url: format!("http://{addr}/health"),
        };
        wait_ready(&ready, Duration::from_secs(20), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn log_probe_fails_when_output_ends() {
        let (tx, rx) = watch::channel(false);
        drop(tx);
        let ready = Readiness::Log {
            pattern: regex::Regex::new("up").unwrap(),
        };
        let err = wait_ready(&ready, Duration::from_secs(5), Some(rx))
            .await
            .unwrap_err();
        assert!(matches!(err, ReadyError::Failed { .. }), "{err}");
    }
}
