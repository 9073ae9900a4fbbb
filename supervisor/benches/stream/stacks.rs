//! The stacks the stream benchmark compares and how each is started: the real deskd binary
//! (its Xvfb is the one display every stack shows; neko when `DESKD_TEST_NEKO` is given), and
//! x11vnc + websockify + Debian's noVNC, with x11vnc's defaults or tuned.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use super::procs::{self, Proc, Role};

pub const TOKEN: &str = "stream-bench-token";
/// x11vnc's tuning from the issue: no deferral of updates, 5 ms between screen polls, no
/// "nap" when idle.
pub const X11VNC_TUNED: &[&str] = &["-defer", "0", "-wait", "5", "-nonap"];
const NOVNC: &str = "/usr/share/novnc";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stack {
    /// WebRTC as the page shows it by default: its own decoder (`render=decoder`).
    WebRtc,
    /// WebRTC shown by the page's <video> (`render=video`).
    WebRtcVideo,
    /// WebRTC painted by the page as each frame is decoded (`render=canvas`), not shown by
    /// its <video>.
    WebRtcCanvas,
    Ws,
    VncDefault,
    VncTuned,
}

impl Stack {
    pub const ALL: [Stack; 6] = [
        Stack::WebRtc,
        Stack::WebRtcVideo,
        Stack::WebRtcCanvas,
        Stack::Ws,
        Stack::VncDefault,
        Stack::VncTuned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stack::WebRtc => "deskd webrtc",
            Stack::WebRtcVideo => "webrtc video",
            Stack::WebRtcCanvas => "webrtc canvas",
            Stack::Ws => "deskd ws",
            Stack::VncDefault => "x11vnc default",
            Stack::VncTuned => "x11vnc tuned",
        }
    }

    /// The stack's name in `DESKD_BENCH_STACKS`.
    pub fn key(self) -> &'static str {
        match self {
            Stack::WebRtc => "webrtc",
            Stack::WebRtcVideo => "webrtc-video",
            Stack::WebRtcCanvas => "webrtc-canvas",
            Stack::Ws => "ws",
            Stack::VncDefault => "x11vnc",
            Stack::VncTuned => "x11vnc-tuned",
        }
    }

    /// What the probe counts as live video (see probe.js).
    pub fn is_webrtc(self) -> bool {
        matches!(
            self,
            Stack::WebRtc | Stack::WebRtcVideo | Stack::WebRtcCanvas
        )
    }

    pub fn live_mode(self) -> &'static str {
        match self {
            Stack::WebRtc | Stack::WebRtcVideo | Stack::WebRtcCanvas => "video",
            Stack::Ws => "decoder",
            Stack::VncDefault | Stack::VncTuned => "picture",
        }
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(addr: SocketAddr, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    bail!("nothing listens on {addr} after {within:?}")
}

/// A plain HTTP/1.1 GET with a Bearer token: (status, body); status 0 when nothing answered.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The real deskd (`deskd run`) with `[display]` and `[http]`, and `[neko]` when given.
pub struct Deskd {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub display: String,
    pub neko: bool,
}

impl Deskd {
    pub fn start(dir: &Path, display: u32, neko: Option<&Path>) -> Result<Deskd> {
        let port = free_port()?;
        let mut config = format!(
            "[display]\nnumber = {display}\nsize = \"1280x720\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n"
        );
        if let Some(neko) = neko {
            // pion does not use loopback: the private namespace's veth address (see main).
            config.push_str(&format!(
                "\n[neko]\nbinary = \"{}\"\nbind = \"127.0.0.1:{}\"\nnat1to1 = [\"10.213.0.1\"]\naudio = false\n",
                neko.display(),
                free_port()?
            ));
            // e.g. `video = "neko"`: neko's own capture, to compare with deskd's encoder.
            if let Ok(extra) = std::env::var("DESKD_BENCH_NEKO_CONFIG") {
                config.push_str(&extra);
                config.push('\n');
            }
        }
        let path = dir.join("deskd.toml");
        std::fs::write(&path, config).context("write deskd.toml")?;
        std::fs::create_dir_all(dir.join("no-conf.d"))?;
        let log = dir.join("deskd.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskd"));
        cmd.args(["run", "-c"])
            .arg(&path)
            .arg("--conf-d")
            .arg(dir.join("no-conf.d"))
            .env("DESKD_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        let mut proc = procs::spawn("deskd", &mut cmd, Signal::SIGTERM, Duration::from_secs(20))?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(if neko.is_some() { 120 } else { 30 });
        loop {
            if http_get(addr, "/readyz").0 == 200 {
                break;
            }
            if let Some(status) = proc.exited() {
                bail!("deskd exited ({status}); its log: {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("deskd not ready in time; its log: {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Deskd {
            proc,
            addr,
            display: format!(":{display}"),
            neko: neko.is_some(),
        })
    }

    /// `Ok` when this deskd serves the native stream, else why not.
    pub fn ws_available(&self) -> std::result::Result<(), String> {
        let (status, body) = http_get(self.addr, "/api/session");
        if status != 200 {
            return Err(format!(
                "this deskd build does not serve the native stream (GET /api/session answered {status}; it comes with the `stream` branch)"
            ));
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["transports"]["ws"]["enabled"] != serde_json::json!(true) {
            return Err(format!(
                "deskd says the native stream is not enabled: {body}"
            ));
        }
        Ok(())
    }

    pub fn roles(&self) -> Vec<Role> {
        let pid = self.proc.pid();
        let mut roles = vec![Role::new("deskd", move || vec![pid])];
        roles.push(Role::new("Xvfb", move || {
            procs::tree(pid)
                .into_iter()
                .filter(|&p| procs::comm(p) == "Xvfb")
                .collect()
        }));
        if self.neko {
            roles.push(Role::new("neko", move || {
                procs::tree(pid)
                    .into_iter()
                    .filter(|&p| procs::comm(p) == "neko")
                    .flat_map(procs::tree)
                    .collect()
            }));
        }
        roles
    }

    pub fn page_url(&self, stack: Stack) -> String {
        let transport = match stack {
            Stack::WebRtc => "webrtc",
            Stack::WebRtcVideo => "webrtc&render=video",
            Stack::WebRtcCanvas => "webrtc&render=canvas",
            _ => "ws",
        };
        // `DESKD_BENCH_VIEWER_QUERY` adds to the viewer's query (e.g. `worker=0`: the native
        // stream in the page, not in its worker).
        let extra = std::env::var("DESKD_BENCH_VIEWER_QUERY")
            .map(|q| format!("&{q}"))
            .unwrap_or_default();
        format!("http://{}/?transport={transport}{extra}", self.addr)
    }
}

/// x11vnc on the display, websockify in front of it serving Debian's noVNC and the bench's
/// page.
pub struct Vnc {
    pub x11vnc: Proc,
    pub websockify: Proc,
    pub url: String,
}

/// The directory websockify serves: noVNC's `core/` and `vendor/` and the bench's page.
pub fn novnc_web(dir: &Path) -> Result<PathBuf> {
    let web = dir.join("novnc-web");
    std::fs::create_dir_all(&web)?;
    for sub in ["core", "vendor"] {
        let link = web.join(sub);
        if !link.exists() {
            std::os::unix::fs::symlink(Path::new(NOVNC).join(sub), &link)
                .with_context(|| format!("link {}", link.display()))?;
        }
    }
    std::fs::write(web.join("bench.html"), include_str!("novnc.html"))?;
    Ok(web)
}

pub fn novnc_missing() -> Option<String> {
    if !Path::new(NOVNC).join("core/rfb.js").exists() {
        return Some(format!(
            "{NOVNC}/core/rfb.js is missing (apt install novnc)"
        ));
    }
    None
}

impl Vnc {
    pub fn start(dir: &Path, display: &str, tuned: bool) -> Result<Vnc> {
        let web = novnc_web(dir)?;
        let vnc_port = free_port()?;
        let tag = if tuned { "tuned" } else { "default" };
        let mut cmd = Command::new("x11vnc");
        cmd.args([
            "-display",
            display,
            "-localhost",
            "-nopw",
            "-forever",
            "-shared",
        ])
        .args(["-rfbport", &vnc_port.to_string()])
        .args(if tuned { X11VNC_TUNED } else { &[] })
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(
            dir.join(format!("x11vnc-{tag}.log")),
        )?);
        let x11vnc = procs::spawn("x11vnc", &mut cmd, Signal::SIGKILL, Duration::from_secs(2))?;
        wait_port(
            format!("127.0.0.1:{vnc_port}").parse()?,
            Duration::from_secs(20),
        )
        .context("x11vnc")?;
        let web_port = free_port()?;
        let mut cmd = Command::new("websockify");
        cmd.arg("--web")
            .arg(&web)
            .arg(format!("127.0.0.1:{web_port}"))
            .arg(format!("127.0.0.1:{vnc_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(
                dir.join(format!("websockify-{tag}.log")),
            )?);
        let websockify = procs::spawn(
            "websockify",
            &mut cmd,
            Signal::SIGKILL,
            Duration::from_secs(2),
        )?;
        wait_port(
            format!("127.0.0.1:{web_port}").parse()?,
            Duration::from_secs(20),
        )
        .context("websockify")?;
        Ok(Vnc {
            x11vnc,
            websockify,
            url: format!("http://127.0.0.1:{web_port}/bench.html"),
        })
    }

    pub fn roles(&self) -> Vec<Role> {
        let (x, w) = (self.x11vnc.pid(), self.websockify.pid());
        vec![
            Role::new("x11vnc", move || procs::tree(x)),
            Role::new("websockify", move || procs::tree(w)),
        ]
    }
}
