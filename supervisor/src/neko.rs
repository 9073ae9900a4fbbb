//! neko as a built-in service: the command line and environment derived from `[neko]` and
//! `[display]`, with every setting explicit and inherited `NEKO_*` variables scrubbed.
//!
//! Choices (see `docs/streaming.md` and the protocol notes in `shared/neko-protocol.md` §4):
//! - Settings go on the command line as `--key=value` flags: flags beat env and config file in
//!   viper's precedence, and an empty flag value really blanks a default (env cannot).
//! - The one secret, the per-start API token, goes through the environment
//!   (`NEKO_SESSION_API_TOKEN`, listed in `secret_env`) so it is not visible in `ps`.
//! - `--config` points at an empty YAML file deskd writes, so viper never falls back to
//!   searching `/etc/neko/` and `.` for a stray `neko.yaml`. (`/dev/null` does not work: viper
//!   picks the format from the file extension and fails on none.)
//! - ICE lite (`--webrtc.icelite`): the browser nominates the pair, so ICE connects in one
//!   round trip instead of after pion's 1 s wait for a peer-reflexive pair.
//! - [`KEYFRAMES_PER_SECOND`] key frames a second: neko ignores key frame requests (PLI).
//! - Audio off: the audio pipeline is replaced by a silent `audiotestsrc` one, which needs no
//!   PulseAudio; the viewer also asks for `audio: {disabled: true}`, so it never even starts.
//!   The microphone (browser → desktop audio) is always off: deskd runs no PulseAudio sink for it.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::{DisplaySettings, IceServer, NekoSettings};
use crate::service::{Readiness, RestartPolicy, ServiceSpec};

/// Name of the built-in service.
pub const SERVICE_NAME: &str = "neko";

/// The environment variable carrying the API token (marked secret).
pub const API_TOKEN_ENV: &str = "NEKO_SESSION_API_TOKEN";

/// ICE servers for the browser and for neko itself, as JSON (secret when they carry credentials).
pub const ICE_FRONTEND_ENV: &str = "NEKO_WEBRTC_ICESERVERS_FRONTEND";
pub const ICE_BACKEND_ENV: &str = "NEKO_WEBRTC_ICESERVERS_BACKEND";

/// Silent audio pipeline used when `[neko] audio = false`: no PulseAudio needed.
pub const SILENT_AUDIO_PIPELINE: &str =
    "audiotestsrc wave=silence is-live=true ! audio/x-raw,channels=2 ! audioconvert ! opusenc ! appsink name=appsink";

/// The service that runs PulseAudio, by convention (the image's config names it so).
pub const PULSEAUDIO_SERVICE: &str = "pulseaudio";

/// What neko starts after: the display, and with `audio = true` the `pulseaudio` service when
/// one is configured (`services` are the names of the other services). neko records from
/// PulseAudio when a viewer asks for sound; started earlier, that viewer may get none.
pub fn after<'a>(neko: &NekoSettings, mut services: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut after = vec![crate::display::SERVICE_NAME.to_string()];
    if neko.audio && services.any(|s| s == PULSEAUDIO_SERVICE) {
        after.push(PULSEAUDIO_SERVICE.to_string());
    }
    after
}

/// Where the empty config file lives (one per user of the machine, rewritten at each start).
pub fn empty_config_path() -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    std::env::temp_dir().join(format!("deskd-{uid}-neko-empty.yaml"))
}

/// Writes the empty config file `--config` points at. Idempotent.
pub fn write_empty_config(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(
        path,
        b"# deskd passes every neko setting as a flag; this file is intentionally empty.\n",
    )
}

/// The `neko` service spec.
pub fn service(neko: &NekoSettings, display: &DisplaySettings, api_token: &str) -> ServiceSpec {
    let config_path = empty_config_path();
    // Best effort: if this fails neko exits with "unable to read config file" naming the path,
    // which the supervisor reports; `service` itself stays infallible for `deskd check`.
    if let Err(e) = write_empty_config(&config_path) {
        tracing::warn!(path = %config_path.display(), error = %e, "cannot write neko's empty config file");
    }

    let mut spec = ServiceSpec::new(SERVICE_NAME, command(neko, display, &config_path));
    spec.env
        .insert("DISPLAY".to_string(), display.display_name());
    spec.env
        .insert(API_TOKEN_ENV.to_string(), api_token.to_string());
    spec.secret_env.push(API_TOKEN_ENV.to_string());
    // ICE servers go through the environment: TURN credentials must not show in `ps`.
    let ice = ice_json(&neko.ice_servers);
    for key in [ICE_FRONTEND_ENV, ICE_BACKEND_ENV] {
        spec.env.insert(key.to_string(), ice.clone());
        if neko.ice_servers.iter().any(|s| s.credential.is_some()) {
            spec.secret_env.push(key.to_string());
        }
    }
    spec.scrub_env_prefixes.push("NEKO_".to_string());
    spec.ready = Readiness::Http {
        url: format!("http://{}/health", neko.bind),
    };
    spec.ready_timeout = Duration::from_secs(20);
    // The full list (with `pulseaudio`) needs the other services: `Settings::all_services`.
    spec.after = after(neko, std::iter::empty());
    spec.restart = RestartPolicy::Always;
    spec.stop_signal = Signal::SIGINT;
    spec.stop_timeout = Duration::from_secs(5);
    spec.critical = true;
    spec
}

/// `neko serve` and its flags.
fn command(
    neko: &NekoSettings,
    display: &DisplaySettings,
    config_path: &std::path::Path,
) -> Vec<String> {
    let dpy = display.display_name();
    let mut c: Vec<String> = vec![neko.binary.clone(), "serve".to_string()];
    let mut flag = |k: &str, v: &str| c.push(format!("--{k}={v}"));
    flag("config", &config_path.display().to_string());
    flag("legacy", "false");
    flag("log.nocolor", "true");
    flag("server.bind", &neko.bind.to_string());
    flag("server.metrics", "true");
    flag("server.pprof", "false");
    flag("server.static", "");
    flag("member.provider", "noauth");
    flag("session.cookie.enabled", "false");
    flag("session.implicit_hosting", "true");
    flag("session.merciful_reconnect", "true");
    flag("session.private_mode", "false");
    flag("session.locked_logins", "false");
    flag("session.locked_controls", "false");
    flag("desktop.display", &dpy);
    flag("capture.video.display", &dpy);
    flag("desktop.input.enabled", "false");
    flag(
        "desktop.screen",
        &format!("{}x{}@{}", display.width, display.height, neko.fps),
    );
    flag("capture.video.codec", &neko.codec);
    flag("capture.video.ids", VIDEO_ID);
    flag(
        "capture.video.pipelines",
        &video_pipelines(&neko.codec, neko.fps),
    );
    if !neko.audio {
        flag("capture.audio.pipeline", SILENT_AUDIO_PIPELINE);
    }
    flag("capture.microphone.enabled", "false");
    // ICE lite: the browser nominates, so ICE connects in one round trip. As a full agent
    // neko learns Chromium (whose host candidates are mDNS names) only as a peer-reflexive
    // candidate and pion waits 1 s before nominating such a pair (docs/streaming.md).
    flag("webrtc.icelite", "true");
    // Never empty: an empty nat1to1 makes neko fetch its address from the internet at start.
    flag("webrtc.nat1to1", &neko.nat1to1.join(","));
    flag("webrtc.ip_retrieval_url", "");
    if let Some(port) = neko.udp_port {
        flag("webrtc.udpmux", &port.to_string());
    }
    if let Some((lo, hi)) = neko.epr {
        flag("webrtc.epr", &format!("{lo}-{hi}"));
    }
    if let Some(port) = neko.tcpmux {
        flag("webrtc.tcpmux", &port.to_string());
    }
    c.extend(neko.extra_args.iter().cloned());
    c
}

/// The id of deskd's one video pipeline (the viewer's `signal/request` picks the first id).
pub const VIDEO_ID: &str = "main";

/// Key frames per second (every fourth of a second, rounded up to whole frames).
///
/// neko v3 never answers a browser's key frame request (PLI): its RTCP reader only feeds
/// metrics (REMB, receiver reports, NACK counts; `internal/webrtc/metrics.go`
/// `rtcpReceiver`). The one key frame it forces for a new viewer
/// (`internal/capture/streamsink.go` `addListener` → `EmitVideoKeyframe`) goes out at
/// `signal/request`, before ICE and DTLS are up, and is lost. A new viewer's first picture,
/// and recovery from a lost packet, therefore wait for the pipeline's next periodic key
/// frame, and the time from DTLS to the first picture is on average half the interval.
/// Measured through deskd's viewer (headless Chromium, ICE lite, 1280x720@30, first decoded
/// frame after page load, p50 of 4 loads, two rounds, loaded 2-core machine), key frame every
/// 60 / 30 / 15 / 8 frames: H.264 2622 / 1676 / 986-1060 / 604-824 ms, VP8 1531 / 841 /
/// 848-886 / 661-862 ms. Every 8 frames costs about 190 (H.264) and 130 (VP8) kbit/s on a
/// static terminal screen, against 104 and 97 at 15, and no measurable CPU.
pub const KEYFRAMES_PER_SECOND: u32 = 4;

/// Frames between key frames at `fps`: [`KEYFRAMES_PER_SECOND`] a second (at least 1).
pub fn keyframe_interval(fps: u32) -> u32 {
    fps.div_ceil(KEYFRAMES_PER_SECOND).max(1)
}

/// The encoder, its parameters (gval expressions) and the caps around it, per codec.
///
/// neko's built-in default pipeline is VP8 at a fixed 25 fps, and it *forces* the codec back
/// to VP8 when no pipeline is given (`server/internal/config/capture.go`), so without this
/// `[neko] codec` and `fps` would silently do nothing. Parameters follow neko's own defaults
/// (`pkg/types/codec/codecs.go`, the v3 default VP8 pipeline), tuned for an interactive
/// desktop: real-time deadlines, no B-frames, [`KEYFRAMES_PER_SECOND`] key frames a second.
/// The encoders' speed settings are the ones that cost least on a static screen (capture and
/// colour conversion are under 1% of a core; the encoder is the rest), measured with
/// `gst-launch-1.0 ximagesrc ! … ! fakesink` on a still 1280x720@30 Xvfb: x264enc
/// `speed-preset` veryfast 26-29%, superfast 25%, ultrafast 15-19% of a core; vp8enc
/// `cpu-used=4 threads=4` 34%, `cpu-used=16 static-threshold=100 threads=1` 21-23%.
fn encoder(
    codec: &str,
    fps: u32,
) -> (
    &'static str,
    Vec<(&'static str, String)>,
    &'static str,
    &'static str,
) {
    let keyframe = keyframe_interval(fps).to_string();
    match codec {
        "vp9" => (
            "vp9enc",
            vec![
                ("target-bitrate", "round(3072 * 650)".into()),
                ("cpu-used", "16".into()),
                ("threads", "4".into()),
                ("deadline", "1".into()),
                ("end-usage", "cbr".into()),
                ("keyframe-max-dist", keyframe),
                ("static-threshold", "20".into()),
            ],
            "",
            "",
        ),
        "h264" => (
            "x264enc",
            vec![
                ("threads", "4".into()),
                ("bitrate", "3072".into()),
                ("key-int-max", keyframe),
                ("bframes", "0".into()),
                ("byte-stream", "true".into()),
                ("tune", "zerolatency".into()),
                ("speed-preset", "ultrafast".into()),
            ],
            "! video/x-raw,format=I420",
            "! video/x-h264,stream-format=byte-stream,profile=constrained-baseline",
        ),
        "h265" => (
            "x265enc",
            vec![
                ("bitrate", "3072".into()),
                ("key-int-max", keyframe),
                ("tune", "zerolatency".into()),
                ("speed-preset", "ultrafast".into()),
            ],
            "! video/x-raw,format=I420",
            "! video/x-h265,stream-format=byte-stream",
        ),
        "av1" => (
            "av1enc",
            vec![
                ("target-bitrate", "3072".into()),
                ("cpu-used", "8".into()),
                ("end-usage", "cbr".into()),
                ("usage-profile", "realtime".into()),
                ("keyframe-max-dist", keyframe),
            ],
            "",
            "",
        ),
        // vp8, and anything config validation let through: neko's default VP8 parameters.
        _ => (
            "vp8enc",
            vec![
                ("target-bitrate", "round(3072 * 650)".into()),
                ("cpu-used", "16".into()),
                ("static-threshold", "100".into()),
                ("end-usage", "cbr".into()),
                ("threads", "1".into()),
                ("deadline", "1".into()),
                ("undershoot", "95".into()),
                ("buffer-size", "(3072 * 4)".into()),
                ("buffer-initial-size", "(3072 * 2)".into()),
                ("buffer-optimal-size", "(3072 * 3)".into()),
                ("keyframe-max-dist", keyframe),
                ("min-quantizer", "4".into()),
                ("max-quantizer", "20".into()),
            ],
            "",
            "",
        ),
    }
}

/// `capture.video.pipelines` as JSON: one pipeline, [`VIDEO_ID`], for the configured codec at
/// the configured frame rate, without the pointer (the viewer draws the cursor itself).
fn video_pipelines(codec: &str, fps: u32) -> String {
    let (gst_encoder, params, gst_prefix, gst_suffix) = encoder(codec, fps);
    let gst_params: serde_json::Map<String, serde_json::Value> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
    serde_json::json!({
        VIDEO_ID: {
            "fps": fps.to_string(),
            "gst_prefix": gst_prefix,
            "gst_encoder": gst_encoder,
            "gst_params": gst_params,
            "gst_suffix": gst_suffix,
            "show_pointer": false,
        }
    })
    .to_string()
}

/// ICE servers as the JSON neko's flags take.
fn ice_json(servers: &[IceServer]) -> String {
    // Serializing plain strings cannot fail; fall back to "[]" rather than panic anyway.
    serde_json::to_string(servers).unwrap_or_else(|_| "[]".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> (NekoSettings, DisplaySettings) {
        let neko = NekoSettings {
            binary: "/opt/neko/bin/neko".to_string(),
            bind: "127.0.0.1:18100".parse().unwrap_or_else(|_| unreachable!()),
            udp_port: Some(59000),
            epr: None,
            tcpmux: None,
            nat1to1: vec!["127.0.0.1".to_string(), "10.0.0.2".to_string()],
            ice_servers: vec![IceServer {
                urls: vec!["turn:turn.example:3478".to_string()],
                username: Some("u".to_string()),
                credential: Some("p".to_string()),
            }],
            audio: false,
            fps: 30,
            codec: "vp8".to_string(),
            extra_args: vec!["--debug".to_string()],
        };
        let display = DisplaySettings {
            number: 42,
            width: 1280,
            height: 720,
            depth: 24,
            extra_args: vec![],
            binary: "Xvfb".to_string(),
        };
        (neko, display)
    }

    fn has(spec: &ServiceSpec, arg: &str) -> bool {
        spec.command.iter().any(|a| a == arg)
    }

    fn video_flag(spec: &ServiceSpec) -> serde_json::Value {
        let arg = spec
            .command
            .iter()
            .find_map(|a| a.strip_prefix("--capture.video.pipelines="))
            .unwrap_or_else(|| panic!("no pipelines flag in {:?}", spec.command));
        serde_json::from_str(arg).unwrap_or_else(|e| panic!("pipelines flag is not JSON: {e}"))
    }

    #[test]
    fn video_pipeline_follows_codec_and_fps() {
        let (mut neko, display) = settings();
        let spec = service(&neko, &display, "t");
        assert!(has(&spec, "--capture.video.ids=main"));
        let main = &video_flag(&spec)["main"];
        assert_eq!(main["gst_encoder"], "vp8enc");
        assert_eq!(main["fps"], "30");
        assert_eq!(main["show_pointer"], false);
        // Four key frames a second (neko ignores the browser's key frame requests).
        assert_eq!(main["gst_params"]["keyframe-max-dist"], "8");

        neko.codec = "h264".to_string();
        neko.fps = 60;
        let spec = service(&neko, &display, "t");
        let main = &video_flag(&spec)["main"];
        assert_eq!(main["gst_encoder"], "x264enc");
        assert_eq!(main["fps"], "60");
        assert_eq!(main["gst_params"]["tune"], "zerolatency");
        assert_eq!(main["gst_params"]["bframes"], "0");
        assert_eq!(main["gst_params"]["key-int-max"], "15");
        assert_eq!(main["gst_params"]["speed-preset"], "ultrafast");
        assert!(main["gst_suffix"]
            .as_str()
            .is_some_and(|s| s.starts_with("! video/x-h264")));

        assert_eq!(
            (
                keyframe_interval(1),
                keyframe_interval(30),
                keyframe_interval(60)
            ),
            (1, 8, 15)
        );
        for (codec, enc) in [("vp9", "vp9enc"), ("av1", "av1enc"), ("h265", "x265enc")] {
            neko.codec = codec.to_string();
            let spec = service(&neko, &display, "t");
            assert_eq!(video_flag(&spec)["main"]["gst_encoder"], enc, "{codec}");
            assert!(has(&spec, &format!("--capture.video.codec={codec}")));
        }
    }

    #[test]
    fn everything_explicit() {
        let (neko, display) = settings();
        let spec = service(&neko, &display, "s3cret");
        assert_eq!(spec.name, "neko");
        assert_eq!(spec.command[0], "/opt/neko/bin/neko");
        assert_eq!(spec.command[1], "serve");
        for arg in [
            "--legacy=false",
            "--member.provider=noauth",
            "--session.cookie.enabled=false",
            "--session.implicit_hosting=true",
            "--desktop.input.enabled=false",
            "--desktop.screen=1280x720@30",
            "--desktop.display=:42",
            "--server.bind=127.0.0.1:18100",
            "--server.metrics=true",
            "--webrtc.nat1to1=127.0.0.1,10.0.0.2",
            "--webrtc.udpmux=59000",
            "--webrtc.ip_retrieval_url=",
            "--capture.microphone.enabled=false",
            "--webrtc.icelite=true",
        ] {
            assert!(has(&spec, arg), "missing {arg} in {:?}", spec.command);
        }
        assert!(spec
            .command
            .iter()
            .any(|a| a.starts_with("--config=") && a.ends_with(".yaml")));
        assert!(spec
            .command
            .iter()
            .any(|a| a.starts_with("--capture.audio.pipeline=audiotestsrc")));
        assert_eq!(
            spec.env.get(ICE_FRONTEND_ENV).map(String::as_str),
            Some(r#"[{"urls":["turn:turn.example:3478"],"username":"u","credential":"p"}]"#)
        );
        assert_eq!(
            spec.env.get(ICE_BACKEND_ENV),
            spec.env.get(ICE_FRONTEND_ENV)
        );
        assert!(spec.secret_env.iter().any(|k| k == ICE_FRONTEND_ENV));
        assert!(
            !spec.command.iter().any(|a| a.contains("turn.example")),
            "credentials in argv"
        );
        assert_eq!(spec.command.last().map(String::as_str), Some("--debug"));
        assert!(
            !spec.command.iter().any(|a| a.contains("s3cret")),
            "token must not be in argv"
        );
        assert!(!spec.command.iter().any(|a| a.starts_with("--webrtc.epr")));
    }

    #[test]
    fn env_token_secret_and_scrub() {
        let (neko, display) = settings();
        let spec = service(&neko, &display, "s3cret");
        assert_eq!(
            spec.env.get(API_TOKEN_ENV).map(String::as_str),
            Some("s3cret")
        );
        assert_eq!(spec.env.get("DISPLAY").map(String::as_str), Some(":42"));
        assert_eq!(
            spec.display_env_value(API_TOKEN_ENV, "s3cret"),
            "<redacted>"
        );
        assert_eq!(spec.scrub_env_prefixes, vec!["NEKO_".to_string()]);
        assert_eq!(spec.stop_signal, Signal::SIGINT);
        assert!(spec.critical);
        assert_eq!(spec.restart, RestartPolicy::Always);
        assert_eq!(spec.after, vec!["display".to_string()]);
        match &spec.ready {
            Readiness::Http { url } => assert_eq!(url, "http://127.0.0.1:18100/health"),
            other => panic!("unexpected readiness {other:?}"),
        }
        // The config file exists and is empty of settings.
        let text = std::fs::read_to_string(empty_config_path()).unwrap_or_default();
        assert!(text
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')));
    }

    #[test]
    fn media_options_and_audio_on() {
        let (mut neko, display) = settings();
        neko.udp_port = None;
        neko.epr = Some((59000, 59100));
        neko.tcpmux = Some(59001);
        neko.audio = true;
        neko.ice_servers.clear();
        let spec = service(&neko, &display, "t");
        assert!(has(&spec, "--webrtc.epr=59000-59100"));
        assert!(has(&spec, "--webrtc.tcpmux=59001"));
        assert!(!spec
            .command
            .iter()
            .any(|a| a.starts_with("--webrtc.udpmux")));
        assert!(!spec
            .command
            .iter()
            .any(|a| a.starts_with("--capture.audio.pipeline")));
        assert_eq!(
            spec.env.get(ICE_BACKEND_ENV).map(String::as_str),
            Some("[]")
        );
        assert!(!spec.secret_env.iter().any(|k| k == ICE_BACKEND_ENV));
    }
}
