//! Stream benchmark (`cargo bench -p deskd --bench stream`; not run in CI): deskd's viewer
//! against x11vnc + websockify + noVNC, side by side in one run on one Xvfb at 1280x720,
//! with rounds alternating between the stacks (issues 10 and 11).
//!
//! Stacks: deskd's own page over every transport deskd has (`webrtc` through a real neko
//! from `DESKD_TEST_NEKO`, `ws` the native stream), and Debian's x11vnc + websockify + noVNC
//! with x11vnc's defaults and tuned (`-defer 0 -wait 5 -nonap`). A stack that cannot run is
//! skipped with the reason printed.
//!
//! Everything is driven through headless Chromium over the DevTools protocol with real key
//! and mouse events. Photon times are taken in the page from the decoded picture
//! (`stream/probe.js` samples the `#screen` video or canvas every animation frame); the
//! input time is when the key event was written to DevTools, on the same clock.
//!
//! Workloads: a full-screen window that flips black/white on each key press (an x11rb client
//! in this process), a character typed into an xterm (a few pixels change), and an xterm
//! scrolling text (bandwidth). Figures per stack: input-to-photon p50/p90/n, time to first
//! picture and to first live video, CPU per process idle (static screen, one viewer) and
//! active (10 flips/s), bandwidth idle, active and scrolling, ratios against both x11vnc
//! setups of the same run, and for `ws` the CPU of deskd with 1 and with 10 viewers.
//! Goals are printed against the figures, never asserted.
//!
//! The run happens in a private network namespace of its own (`unshare --net`, with a veth
//! pair so WebRTC has a host candidate), so nothing reaches the host's interfaces.
//! `DESKD_BENCH_ROUNDS` sets the rounds (default 3), `-- --quick` makes a short run,
//! `DESKD_BENCH_STACKS=ws,x11vnc,x11vnc-tuned,webrtc,webrtc-video,webrtc-canvas` picks stacks
//! (`webrtc`: the page's own decoder, its default; `webrtc-video`: the <video>,
//! `render=video`; `webrtc-canvas`: the browser's decoded frames painted by the page,
//! `render=canvas`), `DESKD_BENCH_VIEWER_QUERY`
//! adds to the viewer page's query (`worker=0`: the native stream in the page, not its worker),
//! `DESKD_BENCH_NEKO_CONFIG` to the `[neko]` table (`video = "neko"`: neko's own capture).

#[path = "stream/cdp.rs"]
mod cdp;
#[path = "stream/procs.rs"]
mod procs;
#[path = "stream/stacks.rs"]
mod stacks;
#[path = "stream/xclient.rs"]
mod xclient;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cdp::{Browser, Tab};
use procs::Role;
use stacks::{Deskd, Stack, Vnc, TOKEN};
use xclient::Flip;

const NETNS_ENV: &str = "DESKD_BENCH_NETNS";
const SIZE: (u16, u16) = (1280, 720);
/// The viewer window: the desktop at 1:1 with room for deskd's status bar.
const VIEWPORT: (u32, u32) = (1280, 800);
/// Key presses per second in the active phase.
const ACTIVE_RATE: f64 = 10.0;
const PHOTON_TIMEOUT_MS: u32 = 3000;
const CHROMIUM: &str = "/usr/bin/chromium";

struct Opts {
    quick: bool,
    rounds: usize,
    /// Key presses per workload, per round and stack.
    samples: usize,
    /// Length of the idle and active measurement windows.
    window: Duration,
    scroll: Duration,
    /// No new turn starts after this; the watchdog kills everything a little later.
    budget: Duration,
}

impl Opts {
    fn parse() -> Opts {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var_os("DESKD_BENCH_QUICK").is_some();
        let rounds = std::env::var("DESKD_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&r| r > 0)
            .unwrap_or(if quick { 2 } else { 3 });
        Opts {
            quick,
            rounds,
            samples: if quick { 6 } else { 12 },
            window: Duration::from_secs_f64(if quick { 2.0 } else { 4.0 }),
            scroll: Duration::from_secs_f64(if quick { 2.5 } else { 5.0 }),
            budget: Duration::from_secs(if quick { 8 * 60 } else { 25 * 60 }),
        }
    }
}

fn main() {
    // `cargo test --all-targets` builds benches; `cargo bench` runs them with `--bench`.
    let opts = Opts::parse();
    let netns = match enter_private_network() {
        Ok(Some(code)) => std::process::exit(code),
        Ok(None) => Ok(()),
        Err(why) => Err(why),
    };
    install_cleanup(opts.budget + Duration::from_secs(180));
    if let Err(e) = run(&opts, netns) {
        println!("stream benchmark failed: {e:#}");
        procs::kill_all();
        std::process::exit(1);
    }
}

/// Re-runs this binary in a private network namespace (lo up, a veth pair with 10.213.0.1/30
/// on v0 as the default route, so Chromium gathers a host candidate that neko can reach; only
/// one end has an address, since neko in ICE lite answers on one socket per nat1to1 address). `Ok(Some(code))`: the run happened there; `Ok(None)`: we are inside;
/// `Err(why)`: no namespace, run here (WebRTC is then skipped).
fn enter_private_network() -> std::result::Result<Option<i32>, String> {
    if std::env::var_os(NETNS_ENV).is_some() {
        return Ok(None);
    }
    if !procs::have("unshare") || !procs::have("ip") {
        return Err("unshare (util-linux) or ip (iproute2) is missing".into());
    }
    let setup = "ip link set lo up && ip link add v0 type veth peer name v1 \
         && ip addr add 10.213.0.1/30 dev v0 \
         && ip link set v0 up && ip link set v1 up && ip route add default dev v0";
    let mut base = vec!["--net"];
    if !nix::unistd::getuid().is_root() {
        base.insert(0, "--map-root-user");
    }
    let probe = std::process::Command::new("unshare")
        .args(&base)
        .args(["sh", "-c", setup])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Err("could not make a private network namespace (unshare --net)".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = std::process::Command::new("unshare")
        .args(&base)
        .args(["sh", "-c", &format!("{setup} && exec \"$0\" \"$@\"")])
        .arg(exe)
        .args(std::env::args().skip(1))
        .env(NETNS_ENV, "1")
        .status()
        .map_err(|e| format!("unshare: {e}"))?;
    Ok(Some(status.code().unwrap_or(1)))
}

/// On SIGINT/SIGTERM/SIGHUP, or when the run takes longer than `limit`, kill every process
/// group this run started and exit.
fn install_cleanup(limit: Duration) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("stream benchmark: signal {sig}, stopping every process it started");
                procs::kill_all();
                std::process::exit(128 + sig);
            }
        });
    }
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        println!("stream benchmark: over its time limit ({limit:?}); killing what it started");
        procs::kill_all();
        std::process::exit(3);
    });
}

fn first_free_display() -> Option<u32> {
    (240..260).find(|n| {
        !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
    })
}

/// A small deterministic jitter source (xorshift), so presses do not beat with frame rates.
struct Jitter(u32);

impl Jitter {
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        Duration::from_millis(lo + u64::from(self.0) % (hi - lo + 1))
    }
}

// ------------------------------------------------------------------ results

type Cpu = BTreeMap<&'static str, f64>;

#[derive(Default)]
struct Res {
    skipped: Option<String>,
    flip: Vec<f64>,
    flip_lost: usize,
    typed: Vec<f64>,
    typed_lost: usize,
    first_picture: Vec<f64>,
    first_live: Vec<f64>,
    cpu_idle: Vec<Cpu>,
    cpu_active: Vec<Cpu>,
    bw_idle: Vec<f64>,
    bw_active: Vec<f64>,
    bw_scroll: Vec<f64>,
    /// The native stream's legs per sample (see [`LEGS`]), flip and typed.
    legs_flip: Vec<[f64; 7]>,
    /// Flip: key event written to DevTools -> the flip window got the key press (any stack).
    flip_input: Vec<f64>,
    legs_typed: Vec<[f64; 7]>,
    /// WebRTC: the receiver's averages per frame after the flips (see [`RTC_VIDEO`]).
    rtc_video: Vec<[f64; 5]>,
    errors: Vec<String>,
}

/// What Chromium's inbound-rtp video stats say a frame spent, on average (`probe.js`).
const RTC_VIDEO: [&str; 5] = [
    "jitter buffer",
    "its target",
    "its minimum",
    "decode",
    "packet->decoded",
];

/// The legs of one native-stream sample, from the page's record of the frame that showed it.
const LEGS: [&str; 7] = [
    "input->capture",
    "capture->received",
    "received->decoded",
    "decoded->sampled",
    "input->tile",
    "input->X client",
    "input->received",
];

/// Where the time of one `ws` sample went: input written to DevTools -> deskd started the
/// capture (its `captureUs`) -> the page received the frame -> decoded -> sampled by the probe.
/// The frame is the first one captured after the input; the last leg is when the first tile
/// after the input arrived (NaN if none did: the change was too large for a tile).
/// WebRTC frames the page decodes itself have no capture time: the first one its worker
/// received after the input, and `input->received` from the input. `None` for other stacks.
async fn ws_legs(tab: &Tab<'_>, sent: f64, photon: f64) -> Option<[f64; 7]> {
    let v = tab
        .eval(&format!(
            "(() => {{ const v = window.__deskdViewer; if (!v || !v.frames) return null; \
             const f = v.frames.find((x) => typeof x.captureUs === 'number' ? x.captureUs / 1000 >= {sent} : x.receivedMs >= {sent}); \
             if (!f || typeof f.receivedMs !== 'number') return null; const c = typeof f.captureUs === 'number' ? f.captureUs / 1000 : null; \
             const t = (v.tiles || []).find((x) => x.receivedEpochMs >= {sent}); \
             return [c === null ? null : c - {sent}, c === null ? null : f.receivedMs - c, f.decodedEpochMs - f.receivedMs, {photon} - f.decodedEpochMs, \
             t ? t.receivedEpochMs - {sent} : null, null, f.receivedMs - {sent}]; }})()"
        ))
        .await
        .ok()?;
    let a = v.as_array()?;
    let mut out = [f64::NAN; 7];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_f64().unwrap_or(f64::NAN);
    }
    Some(out)
}

fn pct(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[i])
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

fn role_median(v: &[Cpu], role: &str) -> Option<f64> {
    let xs: Vec<f64> = v.iter().filter_map(|c| c.get(role).copied()).collect();
    median(&xs)
}

/// The stack's own server-side processes: what it costs to serve the picture.
fn server_roles(stack: Stack) -> &'static [&'static str] {
    match stack {
        Stack::WebRtc | Stack::WebRtcVideo | Stack::WebRtcCanvas => &["deskd", "neko", "Xvfb"],
        Stack::Ws => &["deskd", "Xvfb"],
        Stack::VncDefault | Stack::VncTuned => &["x11vnc", "websockify", "Xvfb"],
    }
}

fn server_cpu(v: &[Cpu], stack: Stack) -> Option<f64> {
    let xs: Vec<f64> = v
        .iter()
        .map(|c| {
            server_roles(stack)
                .iter()
                .filter_map(|r| c.get(r))
                .sum::<f64>()
        })
        .collect();
    median(&xs)
}

// ------------------------------------------------------------------ the run

struct Ctx<'a> {
    opts: &'a Opts,
    dir: PathBuf,
    deskd: &'a Deskd,
    flip: &'a Flip,
    browser: &'a Browser,
    chromium_pid: u32,
    xterm: bool,
    /// The x11vnc stacks' servers, started once and warmed by one page load each.
    vncs: BTreeMap<&'static str, Vnc>,
}

impl Ctx<'_> {
    fn roles(&self, vnc: Option<&Vnc>) -> Vec<Role> {
        let mut roles = self.deskd.roles();
        if let Some(v) = vnc {
            roles.extend(v.roles());
        }
        let pg = self.chromium_pid;
        roles.push(Role::new("chromium", move || procs::group(pg)));
        roles
    }
}

fn probe_script(stack: Stack) -> String {
    format!(
        "window.__benchLive = {:?};\n{}",
        stack.live_mode(),
        include_str!("stream/probe.js")
    )
}

fn run(opts: &Opts, netns: std::result::Result<(), String>) -> Result<()> {
    let chromium = PathBuf::from(
        std::env::var("DESKD_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_string()),
    );
    for (what, ok) in [
        ("Xvfb (apt install xvfb)", procs::have("Xvfb")),
        (
            "Chromium (apt install chromium, or set DESKD_TEST_CHROMIUM)",
            chromium.exists(),
        ),
    ] {
        if !ok {
            println!("stream benchmark skipped: {what} is missing");
            return Ok(());
        }
    }
    let mut res: BTreeMap<&'static str, Res> = Stack::ALL
        .iter()
        .map(|s| (s.name(), Res::default()))
        .collect();
    let skip = |res: &mut BTreeMap<&'static str, Res>, s: Stack, why: String| {
        if let Some(r) = res.get_mut(s.name()) {
            r.skipped = Some(why);
        }
    };
    let vnc_missing = ["x11vnc", "websockify"]
        .iter()
        .find(|p| !procs::have(p))
        .map(|p| format!("{p} is missing (apt install {p})"))
        .or_else(stacks::novnc_missing);
    if let Some(why) = &vnc_missing {
        skip(&mut res, Stack::VncDefault, why.clone());
        skip(&mut res, Stack::VncTuned, why.clone());
    }
    let neko = match (std::env::var_os("DESKD_TEST_NEKO"), &netns) {
        (None, _) => Err("DESKD_TEST_NEKO is not set (path to a neko v3 binary)".to_string()),
        (Some(p), _) if !Path::new(&p).exists() => Err(format!(
            "DESKD_TEST_NEKO={} does not exist",
            Path::new(&p).display()
        )),
        (Some(_), Err(why)) => Err(format!("{why}; WebRTC needs one here")),
        (Some(p), Ok(())) => Ok(PathBuf::from(p)),
    };
    let neko = match neko {
        Ok(p) => Some(p),
        Err(why) => {
            for s in Stack::ALL.into_iter().filter(|s| s.is_webrtc()) {
                skip(&mut res, s, why.clone());
            }
            None
        }
    };
    let xterm = procs::have("xterm");

    let display = first_free_display().ok_or_else(|| anyhow!("no free X display in :240-:259"))?;
    let dir = std::env::temp_dir().join(format!("deskd-stream-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let deskd = Deskd::start(&dir, display, neko.as_deref()).context("start deskd")?;
    if let Err(why) = deskd.ws_available() {
        skip(&mut res, Stack::Ws, why);
    }
    let flip = Flip::open(&deskd.display, SIZE)?;
    flip.show(true)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let browser = rt.block_on(Browser::launch(&chromium, &dir, VIEWPORT))?;
    let version = rt
        .block_on(browser.call(None, "Browser.getVersion", serde_json::json!({})))
        .ok()
        .and_then(|v| v["product"].as_str().map(str::to_string))
        .unwrap_or_default();

    if let Ok(only) = std::env::var("DESKD_BENCH_STACKS") {
        for s in Stack::ALL {
            if !only.split(',').any(|o| o.trim() == s.key()) {
                skip(&mut res, s, format!("not in DESKD_BENCH_STACKS={only}"));
            }
        }
    }
    let stacks: Vec<Stack> = Stack::ALL
        .into_iter()
        .filter(|s| res[s.name()].skipped.is_none())
        .collect();
    println!(
        "stream benchmark: Xvfb {} at {}x{}, {version} headless{}",
        deskd.display,
        SIZE.0,
        SIZE.1,
        if netns.is_ok() {
            ", in a private network namespace"
        } else {
            ""
        }
    );
    println!(
        "{} rounds{} (stacks alternate), per round and stack: {} flips, {} typed characters; idle/active windows {:.1} s (active = {ACTIVE_RATE} flips/s); scrolling {:.1} s",
        opts.rounds,
        if opts.quick { " (--quick)" } else { "" },
        opts.samples,
        if xterm { opts.samples } else { 0 },
        opts.window.as_secs_f64(),
        opts.scroll.as_secs_f64()
    );
    if let Err(why) = &netns {
        println!("note: no private network namespace ({why}); running in the host's");
    }
    if !xterm {
        println!("note: xterm is missing (apt install xterm): no typing or scrolling workload");
    }
    for s in Stack::ALL {
        if let Some(why) = &res[s.name()].skipped {
            println!("skipped: {}: {why}", s.name());
        }
    }
    if stacks.is_empty() {
        println!("nothing to measure");
        return Ok(());
    }

    let mut vncs = BTreeMap::new();
    for s in [Stack::VncDefault, Stack::VncTuned] {
        if !stacks.contains(&s) {
            continue;
        }
        let vnc = Vnc::start(&dir, &deskd.display, s == Stack::VncTuned)
            .with_context(|| format!("start {}", s.name()))?;
        vncs.insert(s.key(), vnc);
    }
    let ctx = Ctx {
        opts,
        dir: dir.clone(),
        deskd: &deskd,
        flip: &flip,
        browser: &browser,
        chromium_pid: browser.proc.pid(),
        xterm,
        vncs,
    };
    // The token once, so the browser has deskd's cookie for every page after it.
    rt.block_on(async {
        let tab = browser.new_tab(VIEWPORT, "").await?;
        tab.navigate(&format!("http://{}/?token={TOKEN}", deskd.addr))
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        tab.close().await;
        anyhow::Ok(())
    })?;

    // One unmeasured page load per stack: every server has had a client before (deskd's
    // display and encoder, x11vnc's first-client setup), as for a person coming back.
    for &s in &stacks {
        let url = match ctx.vncs.get(s.key()) {
            Some(v) => v.url.clone(),
            None => deskd.page_url(s),
        };
        let warm = rt.block_on(async {
            let (tab, _) = open_viewer(&ctx, s, &url).await?;
            tab.close().await;
            anyhow::Ok(())
        });
        if let (Err(e), Some(r)) = (warm, res.get_mut(s.name())) {
            r.errors.push(format!("warm-up page: {e:#}"));
        }
    }
    let started = Instant::now();
    let mut stopped_early = false;
    'rounds: for round in 0..opts.rounds {
        for i in 0..stacks.len() {
            if started.elapsed() > opts.budget {
                stopped_early = true;
                break 'rounds;
            }
            let stack = stacks[(i + round) % stacks.len()];
            let r = res.get_mut(stack.name()).ok_or_else(|| anyhow!("stack"))?;
            let t = Instant::now();
            if let Err(e) = rt.block_on(turn(&ctx, stack, round, r)) {
                r.errors.push(format!("round {}: {e:#}", round + 1));
            }
            eprintln!(
                "round {}/{}: {} done in {:.1} s",
                round + 1,
                opts.rounds,
                stack.name(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    let ten = if stacks.contains(&Stack::Ws) {
        Some(rt.block_on(ten_viewers(&ctx)))
    } else {
        None
    };
    report(&res, &stacks, ten, stopped_early, opts);
    drop(ctx);
    drop(browser);
    drop(flip);
    drop(deskd);
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Opens `stack`'s page in a new window and waits for its first picture and live video.
/// Returns the tab and (first picture, first live) in ms after navigation start.
async fn open_viewer<'b>(
    ctx: &'b Ctx<'_>,
    stack: Stack,
    url: &str,
) -> Result<(Tab<'b>, Option<(f64, f64)>)> {
    let tab = ctx.browser.new_tab(VIEWPORT, &probe_script(stack)).await?;
    tab.navigate(url).await?;
    let got = tab
        .wait_for(
            "window.__bench && __bench.firstPicture !== null && __bench.firstLive !== null \
             && [__bench.firstPicture - __bench.nav, __bench.firstLive - __bench.nav]",
            Duration::from_secs(20),
        )
        .await?;
    let times = got.and_then(|v| Some((v[0].as_f64()?, v[1].as_f64()?)));
    Ok((tab, times))
}

async fn bytes(tab: &Tab<'_>) -> Result<f64> {
    tab.eval("__bench.bytes()")
        .await?
        .as_f64()
        .ok_or_else(|| anyhow!("no byte count from the page"))
}

/// CPU per role and kbit/s over `window` while `during` runs (or the screen stays static).
async fn measure(
    tab: &Tab<'_>,
    roles: &[Role],
    window: Duration,
    during: impl std::future::Future<Output = Result<()>>,
) -> Result<(Cpu, f64)> {
    tab.eval("__bench.pause()").await?;
    let b0 = bytes(tab).await?;
    let mark = procs::cpu_mark(roles);
    let t = Instant::now();
    let (_, r) = tokio::join!(tokio::time::sleep(window), during);
    r?;
    let cpu = procs::cpu_since(roles, &mark);
    let secs = t.elapsed().as_secs_f64();
    let b1 = bytes(tab).await?;
    tab.eval("__bench.resume()").await?;
    Ok((cpu, (b1 - b0) * 8.0 / 1000.0 / secs))
}

/// Key presses at ACTIVE_RATE for `window`.
async fn flips_for(tab: &Tab<'_>, window: Duration) -> Result<()> {
    let t = Instant::now();
    let step = Duration::from_secs_f64(1.0 / ACTIVE_RATE);
    let mut n = 0u32;
    while t.elapsed() + step / 2 < window {
        tab.press("a", "KeyA", 65, Some("a")).await?;
        n += 1;
        let next = step * n;
        if let Some(wait) = next.checked_sub(t.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    Ok(())
}

async fn turn(ctx: &Ctx<'_>, stack: Stack, round: usize, r: &mut Res) -> Result<()> {
    let vnc = ctx.vncs.get(stack.key());
    let url = match vnc {
        Some(v) => v.url.clone(),
        None => ctx.deskd.page_url(stack),
    };
    let roles = ctx.roles(vnc);
    ctx.flip.show(true)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tab, times) = open_viewer(ctx, stack, &url).await?;
    let result = async {
        let Some((picture, live)) = times else {
            let state = tab
                .eval("JSON.stringify(window.__bench && { samples: __bench.samples, error: __bench.error, errors: __bench.errors, firstDecoded: __bench.firstDecoded, firstVideoFrame: __bench.firstVideoFrame, white: __bench.white, elements: [...document.querySelectorAll('video, canvas, img')].map(e => [e.tagName, e.id, e.width, e.height, e.hidden]), viewer: window.__deskdViewer && window.__deskdViewer.status })")
                .await
                .unwrap_or_default();
            bail!("no picture of the white screen within 20 s (page: {state})");
        };
        r.first_picture.push(picture);
        r.first_live.push(live);
        // A click takes control (WebRTC) and the keyboard focus (noVNC's canvas).
        tab.click(f64::from(VIEWPORT.0) / 2.0, f64::from(SIZE.1) / 2.0)
            .await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;

        let (cpu, bw) = measure(&tab, &roles, ctx.opts.window, async { Ok(()) }).await?;
        r.cpu_idle.push(cpu);
        r.bw_idle.push(bw);

        flip_latency(ctx, &tab, round, r).await?;

        let (cpu, bw) = measure(&tab, &roles, ctx.opts.window, flips_for(&tab, ctx.opts.window))
            .await?;
        r.cpu_active.push(cpu);
        r.bw_active.push(bw);

        if ctx.xterm {
            typing(ctx, &tab, round, r).await?;
            let id = ctx.dir.join("scroll-xterm.id");
            let (proc, win) = xclient::xterm(
                &ctx.deskd.display,
                "seq -f 'line %g of the text before scrolling starts' 40; i=0; while :; do i=$((i+1)); echo \"$i: the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs; $i\"; sleep 0.04; done",
                &id,
            )?;
            ctx.flip.focus(win)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (_, bw) = measure(&tab, &[], ctx.opts.scroll, async { Ok(()) }).await?;
            r.bw_scroll.push(bw);
            drop(proc);
            ctx.flip.show(true)?;
        }
        anyhow::Ok(())
    }
    .await;
    tab.close().await;
    result
}

async fn flip_latency(ctx: &Ctx<'_>, tab: &Tab<'_>, round: usize, r: &mut Res) -> Result<()> {
    let mut jitter = Jitter(0x9e37_79b9 ^ round as u32);
    for _ in 0..ctx.opts.samples {
        // The page shows what X shows before each press.
        let want = ctx.flip.is_white();
        tab.wait_for(&format!("__bench.white === {want}"), Duration::from_secs(3))
            .await?;
        let before = ctx.flip.presses();
        let sent = tab.press("a", "KeyA", 65, Some("a")).await?;
        let got = tab
            .eval(&format!(
                "__bench.wait('lum', {}, {sent}, {PHOTON_TIMEOUT_MS})",
                !want
            ))
            .await?;
        match got.as_f64() {
            Some(t) => {
                r.flip.push(t - sent);
                r.flip_input.push(ctx.flip.pressed_ms() - sent);
                if let Some(mut legs) = ws_legs(tab, sent, t).await {
                    legs[5] = ctx.flip.pressed_ms() - sent;
                    r.legs_flip.push(legs);
                }
            }
            None => {
                r.flip_lost += 1;
                if ctx.flip.presses() == before {
                    r.errors
                        .push("a key press never reached the flip window".to_string());
                }
            }
        }
        tokio::time::sleep(jitter.ms(80, 220)).await;
    }
    if let Ok(v) = tab.eval("__bench.rtcVideo()").await {
        if let Some(a) = v.as_array().filter(|a| a.len() == 5) {
            let mut out = [f64::NAN; 5];
            for (o, x) in out.iter_mut().zip(a) {
                *o = x.as_f64().unwrap_or(f64::NAN);
            }
            r.rtc_video.push(out);
        }
    }
    Ok(())
}

async fn typing(ctx: &Ctx<'_>, tab: &Tab<'_>, round: usize, r: &mut Res) -> Result<()> {
    let mut jitter = Jitter(0x85eb_ca6b ^ round as u32);
    let id = ctx.dir.join("echo-xterm.id");
    let (proc, win) = xclient::xterm(&ctx.deskd.display, "exec cat >/dev/null", &id)?;
    ctx.flip.hide()?;
    ctx.flip.focus(win)?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..ctx.opts.samples {
        // The first text row (and the next, in case it wraps), against a fresh baseline.
        tab.eval("__bench.watch({ x: 0, y: 0, w: 1280, h: 44 })")
            .await?;
        let sent = tab.press("m", "KeyM", 77, Some("m")).await?;
        let got = tab
            .eval(&format!(
                "__bench.wait('region', true, {sent}, {PHOTON_TIMEOUT_MS})"
            ))
            .await?;
        match got.as_f64() {
            Some(t) => {
                r.typed.push(t - sent);
                r.legs_typed.extend(ws_legs(tab, sent, t).await);
            }
            None => r.typed_lost += 1,
        }
        tokio::time::sleep(jitter.ms(120, 260)).await;
    }
    tab.eval("__bench.unwatch()").await?;
    drop(proc);
    ctx.flip.show(true)?;
    Ok(())
}

// ------------------------------------------------------------------ ten viewers

struct Ten {
    one: f64,
    ten: f64,
    ten_idle: f64,
    clients: usize,
    frames: Option<(f64, f64)>,
    per_viewer_kb: Vec<f64>,
    browser_kb: f64,
}

/// `deskd_stream_frames_encoded_total` from `/metrics` (summed over its labels).
fn frames_encoded(deskd: &Deskd) -> Option<f64> {
    let (status, body) = stacks::http_get(deskd.addr, "/metrics");
    if status != 200 {
        return None;
    }
    let xs: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("deskd_stream_frames_encoded_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    (!xs.is_empty()).then(|| xs.iter().sum())
}

async fn raw_viewer(
    addr: std::net::SocketAddr,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<()> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/stream/ws").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    while let Some(m) = ws.next().await {
        let n = m?.into_data().len() as u64;
        count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

async fn ten_viewers(ctx: &Ctx<'_>) -> std::result::Result<Ten, String> {
    let go = async {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let roles: Vec<Role> = ctx
            .deskd
            .roles()
            .into_iter()
            .filter(|r| r.name == "deskd")
            .collect();
        ctx.flip.show(true)?;
        let (tab, times) = open_viewer(ctx, Stack::Ws, &ctx.deskd.page_url(Stack::Ws)).await?;
        let out = async {
            if times.is_none() {
                bail!("no picture");
            }
            tab.click(f64::from(VIEWPORT.0) / 2.0, f64::from(SIZE.1) / 2.0)
                .await?;
            tokio::time::sleep(Duration::from_millis(800)).await;
            let w = ctx.opts.window;
            let f0 = frames_encoded(ctx.deskd);
            let (one, _) = measure(&tab, &roles, w, flips_for(&tab, w)).await?;
            let f1 = frames_encoded(ctx.deskd);
            let counts: Vec<Arc<AtomicU64>> = (0..9).map(|_| Arc::new(AtomicU64::new(0))).collect();
            let tasks: Vec<_> = counts
                .iter()
                .map(|c| tokio::spawn(raw_viewer(ctx.deskd.addr, c.clone())))
                .collect();
            // Every client has its hello and first key frame before measuring.
            let deadline = Instant::now() + Duration::from_secs(10);
            while counts.iter().any(|c| c.load(Ordering::Relaxed) < 1000) {
                if Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let connected = counts
                .iter()
                .filter(|c| c.load(Ordering::Relaxed) >= 1000)
                .count();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let c0: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            let b0 = bytes(&tab).await?;
            let f2 = frames_encoded(ctx.deskd);
            let (ten, _) = measure(&tab, &roles, w, flips_for(&tab, w)).await?;
            let f3 = frames_encoded(ctx.deskd);
            let browser_kb = (bytes(&tab).await? - b0) / 1000.0;
            let per_viewer_kb = counts
                .iter()
                .zip(&c0)
                .map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 / 1000.0)
                .collect();
            let (ten_idle, _) = measure(&tab, &roles, w, async { Ok(()) }).await?;
            for t in tasks {
                t.abort();
            }
            let frames = match (f0, f1, f2, f3) {
                (Some(a), Some(b), Some(c), Some(d)) => Some((b - a, d - c)),
                _ => None,
            };
            Ok(Ten {
                one: one.get("deskd").copied().unwrap_or(0.0),
                ten: ten.get("deskd").copied().unwrap_or(0.0),
                ten_idle: ten_idle.get("deskd").copied().unwrap_or(0.0),
                clients: connected,
                frames,
                per_viewer_kb,
                browser_kb,
            })
        }
        .await;
        tab.close().await;
        out
    };
    go.await.map_err(|e: anyhow::Error| format!("{e:#}"))
}

// ------------------------------------------------------------------ report

fn f1(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn f0(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        (Some(a), Some(b)) if a == 0.0 && b == 0.0 => "=".to_string(),
        _ => "-".to_string(),
    }
}

fn goal(what: &str, value: String, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    println!("  {what}: {value} -> {verdict}");
}

fn report(
    res: &BTreeMap<&'static str, Res>,
    stacks: &[Stack],
    ten: Option<std::result::Result<Ten, String>>,
    stopped_early: bool,
    opts: &Opts,
) {
    let get = |s: Stack| &res[s.name()];
    if stopped_early {
        println!(
            "\nnote: stopped before the last round: over the time budget ({:?})",
            opts.budget
        );
    }
    println!("\n== input-to-photon, ms (key event written to DevTools -> the page sampled the changed pixels) ==");
    println!(
        "{:<16} {:>9} {:>7} {:>5} {:>5} | {:>9} {:>7} {:>5} {:>5}",
        "stack", "flip p50", "p90", "n", "lost", "type p50", "p90", "n", "lost"
    );
    for &s in stacks {
        let r = get(s);
        println!(
            "{:<16} {:>9} {:>7} {:>5} {:>5} | {:>9} {:>7} {:>5} {:>5}",
            s.name(),
            f1(median(&r.flip)),
            f1(pct(&r.flip, 0.9)),
            r.flip.len(),
            r.flip_lost,
            f1(median(&r.typed)),
            f1(pct(&r.typed, 0.9)),
            r.typed.len(),
            r.typed_lost
        );
    }

    let with_legs: Vec<_> = stacks
        .iter()
        .filter(|&&s| !get(s).legs_flip.is_empty() || !get(s).legs_typed.is_empty())
        .collect();
    println!("\n== input leg, ms: key event written to DevTools -> the X client got the key press (flip p50 / p90) ==");
    for &s in stacks {
        let r = get(s);
        println!(
            "{:<16} {:>9} {:>7}",
            s.name(),
            f1(median(&r.flip_input)),
            f1(pct(&r.flip_input, 0.9))
        );
    }
    if !with_legs.is_empty() {
        println!("\n== where the time went, ms (p50 per leg; deskd's capture time and the page's receive/decode times) ==");
        print!("{:<16} {:<8}", "stack", "workload");
        for l in LEGS {
            print!(" {l:>18}");
        }
        println!();
        for &&s in &with_legs {
            let r = get(s);
            for (name, legs) in [("flip", &r.legs_flip), ("type", &r.legs_typed)] {
                print!("{:<16} {:<8}", s.name(), name);
                for i in 0..LEGS.len() {
                    let col: Vec<f64> = legs.iter().map(|l| l[i]).filter(|v| !v.is_nan()).collect();
                    print!(" {:>18}", f1(median(&col)));
                }
                println!();
            }
        }
    }

    let with_rtc: Vec<_> = stacks
        .iter()
        .filter(|&&s| !get(s).rtc_video.is_empty())
        .collect();
    if !with_rtc.is_empty() {
        println!("\n== WebRTC receiver, ms per frame (Chromium's inbound-rtp video stats after the flips, median over rounds; repeats count as frames) ==");
        print!("{:<16}", "stack");
        for l in RTC_VIDEO {
            print!(" {l:>16}");
        }
        println!();
        for &&s in &with_rtc {
            print!("{:<16}", s.name());
            for i in 0..RTC_VIDEO.len() {
                let col: Vec<f64> = get(s)
                    .rtc_video
                    .iter()
                    .map(|l| l[i])
                    .filter(|v| !v.is_nan())
                    .collect();
                print!(" {:>16}", f1(median(&col)));
            }
            println!();
        }
    }

    println!("\n== first picture / first live video, ms after navigation start (median, min-max over rounds) ==");
    println!(
        "{:<16} {:>22} {:>22}",
        "stack", "first picture", "first live video"
    );
    let range = |v: &[f64]| {
        let lo = v.iter().copied().reduce(f64::min);
        let hi = v.iter().copied().reduce(f64::max);
        format!("{} ({}-{})", f0(median(v)), f0(lo), f0(hi))
    };
    for &s in stacks {
        let r = get(s);
        println!(
            "{:<16} {:>22} {:>22}",
            s.name(),
            range(&r.first_picture),
            range(&r.first_live)
        );
    }

    println!("\n== CPU, % of one core (median over rounds); idle = static screen, one viewer; active = {ACTIVE_RATE} flips/s ==");
    let cols = ["deskd", "neko", "Xvfb", "x11vnc", "websockify", "chromium"];
    print!("{:<16} {:<7}", "stack", "state");
    for c in cols {
        print!(" {c:>10}");
    }
    println!(" {:>12}", "server total");
    for &s in stacks {
        let r = get(s);
        for (state, v) in [("idle", &r.cpu_idle), ("active", &r.cpu_active)] {
            print!(
                "{:<16} {:<7}",
                if state == "idle" { s.name() } else { "" },
                state
            );
            for c in cols {
                print!(" {:>10}", f1(role_median(v, c)));
            }
            println!(" {:>12}", f1(server_cpu(v, s)));
        }
    }
    println!(
        "(server total: the stack's own server processes: deskd+neko+Xvfb for deskd, \
         x11vnc+websockify+Xvfb for x11vnc; deskd during the x11vnc turns = deskd with no viewer)"
    );

    println!("\n== bandwidth, kbit/s on the page's WebSockets and peer connections (median over rounds) ==");
    println!(
        "{:<16} {:>10} {:>10} {:>16}",
        "stack", "idle", "active", "scrolling text"
    );
    for &s in stacks {
        let r = get(s);
        println!(
            "{:<16} {:>10} {:>10} {:>16}",
            s.name(),
            f1(median(&r.bw_idle)),
            f1(median(&r.bw_active)),
            f1(median(&r.bw_scroll))
        );
    }

    let anchors: Vec<Stack> = [Stack::VncDefault, Stack::VncTuned]
        .into_iter()
        .filter(|a| stacks.contains(a))
        .collect();
    let deskd_stacks: Vec<Stack> = stacks
        .iter()
        .copied()
        .filter(|s| s.is_webrtc() || *s == Stack::Ws)
        .collect();
    if !anchors.is_empty() && !deskd_stacks.is_empty() {
        println!("\n== ratios, deskd stack / x11vnc in the same run (< 1: deskd lower) ==");
        println!(
            "{:<16} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "stack",
            "against",
            "flip p50",
            "type p50",
            "picture",
            "live",
            "cpu idle",
            "cpu act",
            "bw act",
            "bw scroll"
        );
        for &s in &deskd_stacks {
            let r = get(s);
            for &a in &anchors {
                let x = get(a);
                println!(
                    "{:<16} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    s.name(),
                    a.name(),
                    ratio(median(&r.flip), median(&x.flip)),
                    ratio(median(&r.typed), median(&x.typed)),
                    ratio(median(&r.first_picture), median(&x.first_picture)),
                    ratio(median(&r.first_live), median(&x.first_live)),
                    ratio(server_cpu(&r.cpu_idle, s), server_cpu(&x.cpu_idle, a)),
                    ratio(server_cpu(&r.cpu_active, s), server_cpu(&x.cpu_active, a)),
                    ratio(median(&r.bw_active), median(&x.bw_active)),
                    ratio(median(&r.bw_scroll), median(&x.bw_scroll)),
                );
            }
        }
    }

    if let Some(ten) = &ten {
        println!("\n== ten viewers, deskd ws: 1 Chromium page + 9 WebSocket clients reading /stream/ws ==");
        match ten {
            Ok(t) => {
                println!(
                    "deskd CPU at {ACTIVE_RATE} flips/s: 1 viewer {:.1}%, 10 viewers {:.1}% ({}); static screen with 10 viewers {:.1}%",
                    t.one,
                    t.ten,
                    ratio(Some(t.ten), Some(t.one)),
                    t.ten_idle
                );
                println!(
                    "clients that got their first key frame: {}/9; kB per viewer in the 10-viewer window: Chromium {:.0}, clients {}",
                    t.clients,
                    t.browser_kb,
                    t.per_viewer_kb
                        .iter()
                        .map(|k| format!("{k:.0}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                match t.frames {
                    Some((a, b)) => println!(
                        "frames encoded (deskd /metrics) in the window: 1 viewer {a:.0}, 10 viewers {b:.0}"
                    ),
                    None => println!("frames encoded: deskd's /metrics has no deskd_stream_frames_encoded_total"),
                }
            }
            Err(e) => println!("failed: {e}"),
        }
    }

    println!("\n== goals (issue 10: WebRTC; issue 11: the native stream), against this run ==");
    let p50 = |s: Stack, v: fn(&Res) -> &Vec<f64>| {
        stacks.contains(&s).then(|| median(v(get(s)))).flatten()
    };
    let tuned_flip = p50(Stack::VncTuned, |r| &r.flip);
    let tuned_type = p50(Stack::VncTuned, |r| &r.typed);
    let default_flip = p50(Stack::VncDefault, |r| &r.flip);
    let cmp = |a: Option<f64>, b: Option<f64>, k: f64| a.zip(b).map(|(a, b)| a <= k * b);
    if stacks.contains(&Stack::Ws) {
        let r = get(Stack::Ws);
        let flip = median(&r.flip);
        goal(
            "ws flip p50 <= 0.8x x11vnc tuned",
            format!("{} vs {} ms", f1(flip), f1(tuned_flip)),
            cmp(flip, tuned_flip, 0.8),
        );
        let typed = median(&r.typed);
        goal(
            "ws typed character p50 <= x11vnc tuned",
            format!("{} vs {} ms", f1(typed), f1(tuned_type)),
            cmp(typed, tuned_type, 1.0),
        );
        let fp = median(&r.first_picture);
        goal(
            "ws first frame <= 300 ms",
            format!("{} ms", f0(fp)),
            fp.map(|v| v <= 300.0),
        );
        let idle = role_median(&r.cpu_idle, "deskd");
        goal(
            "ws static screen: deskd <= 2% of a core",
            format!("{}%", f1(idle)),
            idle.map(|v| v <= 2.0),
        );
        let bw = median(&r.bw_idle);
        goal(
            "ws static screen: 0 bytes/s of video",
            format!("{} kbit/s (all page traffic)", f1(bw)),
            bw.map(|v| v < 0.5),
        );
        let novnc = p50(Stack::VncDefault, |r| &r.bw_scroll);
        let scroll = median(&r.bw_scroll);
        goal(
            "ws scrolling text: less bandwidth than noVNC (x11vnc defaults)",
            format!("{} vs {} kbit/s", f1(scroll), f1(novnc)),
            scroll.zip(novnc).map(|(a, b)| a < b),
        );
        if let Some(Ok(t)) = &ten {
            goal(
                "ws ten viewers cost one encoder",
                format!("deskd {:.1}% with 10 vs {:.1}% with 1", t.ten, t.one),
                Some(t.ten <= t.one * 1.5 + 1.0),
            );
        }
    }
    if stacks.contains(&Stack::WebRtc) {
        let r = get(Stack::WebRtc);
        let flip = median(&r.flip);
        goal(
            "webrtc flip p50 <= x11vnc defaults",
            format!(
                "{} vs {} ms (x11vnc tuned {})",
                f1(flip),
                f1(default_flip),
                f1(tuned_flip)
            ),
            cmp(flip, default_flip, 1.0),
        );
        let fp = median(&r.first_picture);
        goal(
            "webrtc picture within 300 ms",
            format!("{} ms", f0(fp)),
            fp.map(|v| v <= 300.0),
        );
        let live = median(&r.first_live);
        goal(
            "webrtc live video within 800 ms",
            format!("{} ms", f0(live)),
            live.map(|v| v <= 800.0),
        );
        let idle = median(
            &r.cpu_idle
                .iter()
                .map(|c| c.get("deskd").unwrap_or(&0.0) + c.get("neko").unwrap_or(&0.0))
                .collect::<Vec<_>>(),
        );
        goal(
            "webrtc static screen: deskd + neko <= 10% of a core",
            format!("{}%", f1(idle)),
            idle.map(|v| v <= 10.0),
        );
    }
    let errors: Vec<(&str, &String)> = stacks
        .iter()
        .flat_map(|s| get(*s).errors.iter().map(move |e| (s.name(), e)))
        .collect();
    if !errors.is_empty() {
        println!("\n== problems ==");
        let mut seen = std::collections::BTreeSet::new();
        for (s, e) in errors {
            if seen.insert((s, e)) {
                println!("{s}: {e}");
            }
        }
    }
}
