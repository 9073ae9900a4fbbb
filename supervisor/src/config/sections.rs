//! The singleton sections `[display]`, `[http]`, `[neko]`, `[api]` and `[stream]`: merged key by key across
//! files before they get here, read into their resolved settings with defaults applied.

use std::net::SocketAddr;

use super::reader::{Table, Val};
use super::source::{Errors, Loc};
use super::values;
use super::{
    ApiSettings, DisplaySettings, HttpSettings, IceServer, NekoSettings, NekoVideo, StreamSettings,
};

/// Defaults of `[display]`.
pub(crate) const DEFAULT_DISPLAY_NUMBER: u32 = 99;
pub(crate) const DEFAULT_SIZE: (u32, u32) = (1280, 720);
pub(crate) const DEFAULT_DEPTH: u32 = 24;
pub(crate) const DEFAULT_XVFB: &str = "Xvfb";
/// Depths Xvfb can run a screen at.
const DEPTHS: [u32; 6] = [8, 15, 16, 24, 30, 32];
/// Highest display number accepted (`:N` maps to a socket name, and TCP port 6000+N if enabled).
const MAX_DISPLAY_NUMBER: u32 = 59535;

/// Defaults of `[neko]`.
pub(crate) const DEFAULT_NEKO: &str = "neko";
pub(crate) const DEFAULT_NEKO_BIND: ([u8; 4], u16) = ([127, 0, 0, 1], 18100);
pub(crate) const DEFAULT_UDP_PORT: u16 = 59000;
pub(crate) const DEFAULT_FPS: u32 = 30;
/// H.264: a third less CPU than VP8 at the same latency (docs/streaming.md, Performance).
pub(crate) const DEFAULT_CODEC: &str = "h264";
/// Video codecs neko can encode.
pub(crate) const CODECS: [&str; 5] = ["vp8", "vp9", "av1", "h264", "h265"];

/// neko flags `[neko] extra_args` may not set (a flag given twice takes the last value): the
/// ones that would open neko beyond loopback, change who may log in, or break the relay's
/// login and cleanup. A name ending in `.` covers everything under it.
const DESKD_OWNED_NEKO_FLAGS: [&str; 7] = [
    "server.bind",
    "bind",
    "member.",
    "session.api_token",
    "session.cookie.",
    "legacy",
    "config",
];

/// The deskd-owned flag `arg` (`--key=value` or `--key`) would override, if any.
fn owned_neko_flag(arg: &str) -> Option<&'static str> {
    let key = arg.trim_start_matches('-');
    let key = key.split_once('=').map_or(key, |(k, _)| k);
    let key = key.to_ascii_lowercase();
    DESKD_OWNED_NEKO_FLAGS
        .into_iter()
        .find(|owned| match owned.strip_suffix('.') {
            Some(prefix) => key == prefix || key.starts_with(*owned),
            None => key == *owned,
        })
}

/// `[display]` read, plus where its program is named (for the PATH check).
pub(crate) struct ParsedDisplay {
    pub settings: DisplaySettings,
    pub binary_loc: Loc,
}

pub(crate) fn display(t: &mut Table<'_>, errs: &mut Errors) -> ParsedDisplay {
    let number = t.parse("number", errs, |n: u32| {
        if n > MAX_DISPLAY_NUMBER {
            Err(format!(
                "display number {n} is too large (at most {MAX_DISPLAY_NUMBER})"
            ))
        } else {
            Ok(n)
        }
    });
    let size = t.parse("size", errs, values::size);
    let depth = t.parse("depth", errs, |d: u32| {
        if DEPTHS.contains(&d) {
            Ok(d)
        } else {
            Err(format!(
                "unsupported depth {d}; expected one of 8, 15, 16, 24, 30, 32"
            ))
        }
    });
    let binary = t.parse("binary", errs, non_empty_program);
    let extra_args = t.get::<Vec<String>>("extra_args", errs);
    let (width, height) = size.map_or(DEFAULT_SIZE, |s| s.v);
    ParsedDisplay {
        binary_loc: binary
            .as_ref()
            .map_or_else(|| t.at().clone(), |b| b.loc.clone()),
        settings: DisplaySettings {
            number: number.map_or(DEFAULT_DISPLAY_NUMBER, |n| n.v),
            width,
            height,
            depth: depth.map_or(DEFAULT_DEPTH, |d| d.v),
            extra_args: extra_args.map(|a| a.v).unwrap_or_default(),
            binary: binary.map_or_else(|| DEFAULT_XVFB.to_string(), |b| b.v),
        },
    }
}

/// `[http]` read, plus where `listen` is written (for port clashes).
pub(crate) struct ParsedHttp {
    pub settings: HttpSettings,
    pub listen_loc: Option<Loc>,
}

pub(crate) fn http(t: &mut Table<'_>, errs: &mut Errors) -> ParsedHttp {
    let mut s = HttpSettings::default();
    let listen = t.parse("listen", errs, values::socket_addr);
    let listen_loc = listen.as_ref().map(|l| l.loc.clone());
    if let Some(l) = listen {
        s.listen = l.v;
    }
    s.token = secret(t, "token", errs);
    s.token_file = t.parse("token_file", errs, non_empty_path).map(|p| p.v);
    s.view_token = secret(t, "view_token", errs);
    s.view_token_file = t
        .parse("view_token_file", errs, non_empty_path)
        .map(|p| p.v);
    for (a, b) in [("token", "token_file"), ("view_token", "view_token_file")] {
        if t.has(a) && t.has(b) {
            errs.key(
                t.at(),
                &t.key_path(a),
                format!("set either {a} or {b}, not both"),
            );
        }
    }
    if let Some(origins) = t.list("allowed_origins", errs) {
        for o in &origins {
            if let Err(m) = origin(&o.v) {
                errs.key(&o.loc, &t.key_path("allowed_origins"), m);
            }
        }
        s.allowed_origins = origins.into_iter().map(|o| o.v).collect();
    }
    if let Some(n) = t.parse("max_clients", errs, |n| at_most(n, MAX_CLIENTS)) {
        s.max_clients = n.v;
    }
    if let Some(n) = t.parse("max_frame_bytes", errs, |n| at_most(n, MAX_FRAME_BYTES)) {
        s.max_frame_bytes = n.v;
    }
    if let Some(n) = t.parse("relay_queue", errs, |n| at_most(n, MAX_RELAY_QUEUE)) {
        s.relay_queue = n.v;
    }
    ParsedHttp {
        settings: s,
        listen_loc,
    }
}

/// `[neko]` read, plus where its program and TCP port are named.
pub(crate) struct ParsedNeko {
    pub settings: NekoSettings,
    /// `video` as written (resolved with `[stream]` by [`neko_video`]).
    pub video: Option<Val<NekoVideo>>,
    pub binary_loc: Loc,
    pub bind_loc: Loc,
    pub tcpmux_loc: Option<Loc>,
}

pub(crate) fn neko(t: &mut Table<'_>, errs: &mut Errors) -> ParsedNeko {
    let binary = t.parse("binary", errs, non_empty_program);
    let bind = t.parse("bind", errs, |a: String| {
        let addr = values::socket_addr(a)?;
        values::port(addr.port())?;
        if addr.ip().is_loopback() {
            Ok(addr)
        } else {
            Err(format!(
                "{addr} is not a loopback address: neko lets anyone in (noauth), so only deskd's relay may reach it; use 127.0.0.1:PORT"
            ))
        }
    });
    // 0 switches the UDP mux off (TCP media only, through tcpmux).
    let udp_port = t.get::<u16>("udp_port", errs);
    let epr = t.parse("epr", errs, values::port_range);
    if let (Some(u), Some(_)) = (&udp_port, &epr) {
        errs.key(
            &u.loc,
            &t.key_path("udp_port"),
            "set either udp_port (one UDP port for all peers) or epr (a range), not both",
        );
    }
    let tcpmux = t.parse("tcpmux", errs, values::port);
    let nat1to1 = t.list("nat1to1", errs);
    if let Some(list) = &nat1to1 {
        if list.is_empty() {
            let loc = t
                .entry("nat1to1")
                .map_or_else(|| t.at().clone(), |e| e.loc());
            errs.key(
                &loc,
                &t.key_path("nat1to1"),
                "must not be empty: neko then asks an outside server for the public IP at start; give the address browsers reach, e.g. [\"127.0.0.1\"]",
            );
        }
        for ip in list {
            if let Err(m) = values::ip(&ip.v) {
                errs.key(&ip.loc, &t.key_path("nat1to1"), m);
            }
        }
    }
    let ice_servers = t.get::<Vec<IceServer>>("ice_servers", errs);
    if let Some(servers) = &ice_servers {
        for server in &servers.v {
            if let Err(m) = ice_server(server) {
                errs.key(&servers.loc, &t.key_path("ice_servers"), m);
            }
        }
    }
    let audio = t.get::<bool>("audio", errs);
    let fps = t.parse("fps", errs, |f: u32| {
        if (1..=240).contains(&f) {
            Ok(f)
        } else {
            Err(format!("fps {f} out of range 1..=240"))
        }
    });
    let codec = t.parse("codec", errs, |c: String| {
        let lower = c.to_ascii_lowercase();
        if CODECS.contains(&lower.as_str()) {
            Ok(lower)
        } else {
            Err(format!(
                "unknown codec {c:?}; expected one of {}",
                CODECS.join(", ")
            ))
        }
    });
    let video = t.parse("video", errs, |v: String| match v.as_str() {
        "deskd" => Ok(NekoVideo::Deskd),
        "neko" => Ok(NekoVideo::Neko),
        _ => Err(format!(
            "unknown video source {v:?}; expected \"deskd\" or \"neko\""
        )),
    });
    let extra_args = t.list("extra_args", errs);
    if let Some(args) = &extra_args {
        for a in args {
            if !a.v.starts_with("--") {
                errs.key(
                    &a.loc,
                    &t.key_path("extra_args"),
                    format!("{:?} is not a flag; expected \"--key=value\"", a.v),
                );
            } else if let Some(owned) = owned_neko_flag(&a.v) {
                let hint = if owned == "server.bind" || owned == "bind" {
                    "; use [neko] bind (loopback only)"
                } else {
                    ""
                };
                errs.key(
                    &a.loc,
                    &t.key_path("extra_args"),
                    format!(
                        "{:?} would override {owned}, which deskd sets itself (neko must stay behind deskd's gate){hint}",
                        a.v
                    ),
                );
            }
        }
    }

    if let (Some(u), None) = (&udp_port, &tcpmux) {
        if u.v == 0 {
            errs.key(
                &u.loc,
                &t.key_path("udp_port"),
                "0 turns UDP off, which leaves no media transport unless tcpmux is set",
            );
        }
    }
    let udp_port = match (udp_port, &epr) {
        (Some(u), _) => (u.v != 0).then_some(u.v),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_UDP_PORT),
    };
    ParsedNeko {
        video,
        binary_loc: binary
            .as_ref()
            .map_or_else(|| t.at().clone(), |b| b.loc.clone()),
        bind_loc: bind
            .as_ref()
            .map_or_else(|| t.at().clone(), |b| b.loc.clone()),
        tcpmux_loc: tcpmux.as_ref().map(|p| p.loc.clone()),
        settings: NekoSettings {
            binary: binary.map_or_else(|| DEFAULT_NEKO.to_string(), |b| b.v),
            bind: bind.map_or_else(|| SocketAddr::from(DEFAULT_NEKO_BIND), |b| b.v),
            udp_port,
            epr: epr.map(|e| e.v),
            tcpmux: tcpmux.map(|p| p.v),
            nat1to1: nat1to1
                .map(|l| l.into_iter().map(|ip| ip.v).collect())
                .unwrap_or_else(|| vec!["127.0.0.1".to_string()]),
            ice_servers: ice_servers.map(|s| s.v).unwrap_or_default(),
            audio: audio.is_some_and(|a| a.v),
            fps: fps.map_or(DEFAULT_FPS, |f| f.v),
            codec: codec.map_or_else(|| DEFAULT_CODEC.to_string(), |c| c.v),
            // resolved with [stream] by neko_video
            video: NekoVideo::Neko,
            extra_args: extra_args
                .map(|l| l.into_iter().map(|a| a.v).collect())
                .unwrap_or_default(),
        },
    }
}

/// `[neko] video` resolved: as written if `[stream]` and the codec allow it (an error naming
/// what is in the way if not), else deskd's encoder when the native stream is on and the
/// codec is H.264, else neko's own capture.
pub(crate) fn neko_video(
    written: Option<&Val<NekoVideo>>,
    neko: &NekoSettings,
    stream: &StreamSettings,
    errs: &mut Errors,
) -> NekoVideo {
    let usable = stream.enabled && neko.codec == "h264";
    match written {
        Some(v) if v.v == NekoVideo::Deskd && !usable => {
            let why = if stream.enabled {
                format!(
                    "codec is {:?}; deskd's encoder makes H.264: set codec = \"h264\" or video = \"neko\"",
                    neko.codec
                )
            } else {
                "[stream] is off (or there is no [display]); deskd's encoder is the native stream's: enable it or set video = \"neko\"".to_string()
            };
            errs.key(
                &v.loc,
                "neko.video",
                format!("\"deskd\" needs the native stream: {why}"),
            );
            NekoVideo::Neko
        }
        Some(v) => v.v,
        None if usable => NekoVideo::Deskd,
        None => NekoVideo::Neko,
    }
}

pub(crate) fn api(t: &mut Table<'_>, errs: &mut Errors) -> ApiSettings {
    let mut s = ApiSettings::default();
    if let Some(e) = t.get::<bool>("enabled", errs) {
        s.enabled = e.v;
    }
    // Every `type` action without `delay_ms` uses this; above the per-request maximum each
    // one would be refused with a message about a `delay_ms` the agent never sent.
    let max = crate::desktop::actions::MAX_TYPE_DELAY;
    if let Some(d) = t.parse("type_delay", errs, |text: String| {
        let d = values::duration(text)?;
        if d > max {
            Err(format!(
                "{} ms is more than the limit of {} ms per character",
                d.as_millis(),
                max.as_millis()
            ))
        } else {
            Ok(d)
        }
    }) {
        s.type_delay = d.v;
    }
    s
}

/// Bounds of `[stream]`.
pub(crate) const STREAM_FPS: std::ops::RangeInclusive<u32> = 1..=120;
pub(crate) const STREAM_KBPS: std::ops::RangeInclusive<u32> = 100..=100_000;

pub(crate) fn stream(t: &mut Table<'_>, errs: &mut Errors) -> StreamSettings {
    let mut s = StreamSettings::default();
    if let Some(e) = t.get::<bool>("enabled", errs) {
        s.enabled = e.v;
    }
    let in_range = |what: &'static str, r: std::ops::RangeInclusive<u32>| {
        move |n: u32| {
            if r.contains(&n) {
                Ok(n)
            } else {
                Err(format!(
                    "{what} {n} out of range {}..={}",
                    r.start(),
                    r.end()
                ))
            }
        }
    };
    if let Some(f) = t.parse("max_fps", errs, in_range("max_fps", STREAM_FPS)) {
        s.max_fps = f.v;
    }
    if let Some(b) = t.parse("bitrate_kbps", errs, in_range("bitrate_kbps", STREAM_KBPS)) {
        s.bitrate_kbps = b.v;
    }
    s
}

fn non_empty_program(p: String) -> Result<String, String> {
    if p.trim().is_empty() {
        Err("empty program name".to_string())
    } else {
        Ok(p)
    }
}

fn non_empty_path(p: String) -> Result<std::path::PathBuf, String> {
    if p.is_empty() {
        Err("empty path".to_string())
    } else {
        Ok(p.into())
    }
}

/// Upper bounds of the `[http]` relay limits. Far above any real use; they keep a typo (or
/// an i64-sized number) from reaching tokio, whose semaphores and channels panic above
/// `usize::MAX >> 3` permits.
pub(crate) const MAX_CLIENTS: usize = 100_000;
pub(crate) const MAX_FRAME_BYTES: usize = 1 << 30;
pub(crate) const MAX_RELAY_QUEUE: usize = 1 << 20;

/// 1..=`max`.
fn at_most(n: usize, max: usize) -> Result<usize, String> {
    if n == 0 {
        Err("must be at least 1".to_string())
    } else if n > max {
        Err(format!("{n} is more than the limit of {max}"))
    } else {
        Ok(n)
    }
}

/// A token written in the config: never echoed back in messages.
fn secret(t: &mut Table<'_>, key: &'static str, errs: &mut Errors) -> Option<String> {
    let v: Val<String> = t.get(key, errs)?;
    if v.v.trim().is_empty() {
        errs.key(&v.loc, &t.key_path(key), "empty token");
        return None;
    }
    Some(v.v)
}

/// An Origin as browsers send it: `scheme://host[:port]`, no path.
fn origin(o: &str) -> Result<(), String> {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| format!("bad origin {o:?}; expected e.g. \"https://desk.example.com\""))?;
    if rest.is_empty() || rest.contains(['/', ' ']) {
        return Err(format!(
            "bad origin {o:?}; an origin is scheme://host[:port] without a path"
        ));
    }
    Ok(())
}

fn ice_server(s: &IceServer) -> Result<(), String> {
    if s.urls.is_empty() {
        return Err("an ICE server needs at least one URL".to_string());
    }
    for url in &s.urls {
        if !["stun:", "stuns:", "turn:", "turns:"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(format!(
                "bad ICE server URL {url:?}; expected stun:, stuns:, turn: or turns:"
            ));
        }
    }
    if s.urls.iter().any(|u| u.starts_with("turn"))
        && (s.username.is_none() || s.credential.is_none())
    {
        return Err("a TURN server needs username and credential".to_string());
    }
    Ok(())
}
