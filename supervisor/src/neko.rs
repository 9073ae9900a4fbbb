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
//! - The video pipeline is given whole. With `[neko] video = "deskd"` (the default) it reads
//!   deskd's own H.264 frames from the neko feed's loopback port ([`feed_pipeline`],
//!   [`crate::neko_feed`]); with `"neko"` it captures and encodes the screen itself
//!   ([`gst_pipeline`]): no frame queue, no clock sync at the sink, a key frame every
//!   [`KEYFRAME_SECONDS`] (neko ignores key frame requests; the viewer enables video only once
//!   connected, so the first key frame arrives).
//! - Audio off: the audio pipeline is replaced by a silent `audiotestsrc` one, which needs no
//!   PulseAudio; the viewer also asks for `audio: {disabled: true}`, so it never even starts.
//!   The microphone (browser → desktop audio) is always off: deskd runs no PulseAudio sink for it.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::{DisplaySettings, IceServer, NekoSettings, NekoVideo};
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

/// Where neko's pipeline reads deskd's frames with `[neko] video = "deskd"`
/// ([`crate::neko_feed`]): the loopback address deskd listens on, and the feed's frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFeed {
    pub addr: std::net::SocketAddr,
    pub fps: u32,
}

/// The `neko` service spec. `feed` is where deskd serves its frames (used with
/// `video = "deskd"`).
pub fn service(
    neko: &NekoSettings,
    display: &DisplaySettings,
    api_token: &str,
    feed: Option<VideoFeed>,
) -> ServiceSpec {
    let config_path = empty_config_path();
    // Best effort: if this fails neko exits with "unable to read config file" naming the path,
    // which the supervisor reports; `service` itself stays infallible for `deskd check`.
    if let Err(e) = write_empty_config(&config_path) {
        tracing::warn!(path = %config_path.display(), error = %e, "cannot write neko's empty config file");
    }

    let mut spec = ServiceSpec::new(SERVICE_NAME, command(neko, display, &config_path, feed));
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
    feed: Option<VideoFeed>,
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
    let pipeline = match feed {
        Some(feed) if neko.video == NekoVideo::Deskd => feed_pipeline(feed),
        _ => gst_pipeline(&neko.codec, neko.fps),
    };
    flag("capture.video.pipelines", &video_pipelines(&pipeline));
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

/// Seconds between periodic key frames.
///
/// neko v3 never answers a browser's key frame request (PLI): its RTCP reader only feeds
/// metrics (REMB, receiver reports, NACK counts; `internal/webrtc/metrics.go`
/// `rtcpReceiver`). The one key frame it forces is for a new listener
/// (`internal/capture/streamsink.go` `addListener` → `EmitVideoKeyframe`). At `signal/request`
/// that is before ICE and DTLS are up, and pion drops what is written before SRTP is ready,
/// so that key frame is lost. deskd's viewer therefore asks for the video disabled and enables
/// it (`signal/video`) once the peer connection is connected: the listener is added then, and
/// its key frame (a fresh pipeline's first frame, or a forced one on a running pipeline)
/// arrives. Periodic key frames are only the fallback for a lost packet that NACK did not
/// repair, and for other clients; each one is a large frame that costs bits, an IDR encode and
/// receiver delay (Chromium's jitter estimate follows the frame-size spread).
pub const KEYFRAME_SECONDS: u32 = 2;

/// Frames between key frames at `fps`: [`KEYFRAME_SECONDS`] worth (at least 1).
pub fn keyframe_interval(fps: u32) -> u32 {
    fps.saturating_mul(KEYFRAME_SECONDS).max(1)
}

/// One codec's encoder element, its properties and the caps before and after it.
struct EncoderPart {
    element: &'static str,
    props: Vec<(&'static str, String)>,
    /// Caps the encoder needs on its input (empty: whatever videoconvert gives).
    input: &'static str,
    /// Caps on its output (empty: none).
    output: &'static str,
}

/// The encoder, per codec, tuned for an interactive desktop: real-time deadlines, no
/// B-frames, a key frame every [`KEYFRAME_SECONDS`]. Bit rates follow neko's own defaults
/// (`pkg/types/codec/codecs.go`: 3072 kbit/s). The speed settings are the ones that cost least
/// on a static screen (capture and colour conversion are under 1% of a core; the encoder is the
/// rest), measured with `gst-launch-1.0 ximagesrc ! … ! fakesink` on a still 1280x720@30 Xvfb:
/// x264enc `speed-preset` veryfast 26-29%, superfast 25%, ultrafast 15-19% of a core; vp8enc
/// `cpu-used=4 threads=4` 34%, `cpu-used=16 static-threshold=100 threads=1` 21-23%.
/// x264 runs two slice threads (two cores here; four slices on two loaded cores wait for the
/// slowest every frame).
fn encoder(codec: &str, fps: u32) -> EncoderPart {
    let keyframe = keyframe_interval(fps).to_string();
    let part = |element, props: Vec<(&'static str, &str)>, input, output| EncoderPart {
        element,
        props: props.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        input,
        output,
    };
    match codec {
        "vp9" => part(
            "vp9enc",
            vec![
                ("target-bitrate", "1996800"),
                ("cpu-used", "16"),
                ("threads", "4"),
                ("deadline", "1"),
                ("end-usage", "cbr"),
                ("keyframe-max-dist", &keyframe),
                ("static-threshold", "20"),
            ],
            "",
            "",
        ),
        "h264" => part(
            "x264enc",
            vec![
                ("threads", "2"),
                ("bitrate", "3072"),
                ("key-int-max", &keyframe),
                ("bframes", "0"),
                ("byte-stream", "true"),
                ("tune", "zerolatency"),
                ("speed-preset", "ultrafast"),
            ],
            "video/x-raw,format=I420",
            "video/x-h264,stream-format=byte-stream,profile=constrained-baseline",
        ),
        "h265" => part(
            "x265enc",
            vec![
                ("bitrate", "3072"),
                ("key-int-max", &keyframe),
                ("tune", "zerolatency"),
                ("speed-preset", "ultrafast"),
            ],
            "video/x-raw,format=I420",
            "video/x-h265,stream-format=byte-stream",
        ),
        "av1" => part(
            "av1enc",
            vec![
                ("target-bitrate", "3072"),
                ("cpu-used", "8"),
                ("end-usage", "cbr"),
                ("usage-profile", "realtime"),
                ("keyframe-max-dist", &keyframe),
            ],
            "",
            "",
        ),
        // vp8, and anything config validation let through: neko's default VP8 parameters.
        _ => part(
            "vp8enc",
            vec![
                ("target-bitrate", "1996800"),
                ("cpu-used", "16"),
                ("static-threshold", "100"),
                ("end-usage", "cbr"),
                ("threads", "1"),
                ("deadline", "1"),
                ("undershoot", "95"),
                ("buffer-size", "12288"),
                ("buffer-initial-size", "6144"),
                ("buffer-optimal-size", "9216"),
                ("keyframe-max-dist", &keyframe),
                ("min-quantizer", "4"),
                ("max-quantizer", "20"),
            ],
            "",
            "",
        ),
    }
}

/// neko's whole video pipeline for `codec` at `fps` (its `gst_pipeline`; neko puts the display
/// in place of `{display}`). neko's own template cannot reach what adds latency:
/// - its `queue` between conversion and encoder holds up to 200 buffers / 10 MB / 1 s, about 8
///   raw 720p frames (267 ms at 30 fps) whenever the encoder falls behind; here it holds one and
///   drops the older (`leaky=downstream`), so a late frame is skipped, never queued;
/// - its `appsink` syncs to the clock with a 20 ms processing deadline, holding each frame up to
///   20 ms after capture; here `sync=false` hands it over at once;
/// - the pointer is not in the picture (`show-pointer=false`): the viewer draws the cursor;
/// - colour conversion without dithering (8-bit to 8-bit needs none) on one thread: on a static
///   1280x720 screen at 30 fps, conversion and x264 cost about 9% of a core each, and these
///   two settings took the pipeline from 21-22% to 17-19% (`gst-launch-1.0`, two runs each).
///   The cost is per frame whatever changed; `[neko] fps = 15` halves it (about 9%) at 17 ms
///   more latency on average.
///
/// The `framerate` and `encoder` element names are neko's, kept for anything that looks them up.
pub fn gst_pipeline(codec: &str, fps: u32) -> String {
    let enc = encoder(codec, fps);
    let mut p = format!(
        "ximagesrc display-name={{display}} show-pointer=false use-damage=false \
         ! capsfilter caps=video/x-raw,framerate={fps}/1 name=framerate \
         ! videoconvert dither=none n-threads=1 \
         ! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream"
    );
    if !enc.input.is_empty() {
        p.push_str(&format!(" ! {}", enc.input));
    }
    p.push_str(&format!(" ! {} name=encoder", enc.element));
    for (k, v) in &enc.props {
        p.push_str(&format!(" {k}={v}"));
    }
    if !enc.output.is_empty() {
        p.push_str(&format!(" ! {}", enc.output));
    }
    p.push_str(" ! appsink name=appsink sync=false");
    p
}

/// neko's whole video pipeline with `video = "deskd"`: deskd's H.264 frames from the feed's
/// port ([`crate::neko_feed`]), cut into access units by `h264parse`, which also stamps each
/// with one frame period (the caps' frame rate), the duration neko turns into RTP
/// timestamps. The feed's framing lets `h264parse` finish each access unit the moment it
/// arrives; the appsink hands it over at once (`sync=false`).
pub fn feed_pipeline(feed: VideoFeed) -> String {
    format!(
        "tcpclientsrc host={} port={} {} ! appsink name=appsink sync=false",
        feed.addr.ip(),
        feed.addr.port(),
        feed_parse(feed.fps)
    )
}

/// The feed pipeline between its source and its sink: the caps of what deskd sends and
/// `h264parse`, which gives each access unit its duration (see [`crate::neko_feed::timing`]).
pub fn feed_parse(fps: u32) -> String {
    format!(
        "! video/x-h264,stream-format=byte-stream,framerate={}/1 \
         ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au",
        fps.max(1)
    )
}

/// `capture.video.pipelines` as JSON: one pipeline, [`VIDEO_ID`], given whole.
fn video_pipelines(pipeline: &str) -> String {
    serde_json::json!({
        VIDEO_ID: {
            "gst_pipeline": pipeline,
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
            video: NekoVideo::Neko,
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
    fn deskd_video_reads_the_feed_with_its_frame_rate() {
        let (mut neko, display) = settings();
        neko.codec = "h264".to_string();
        neko.video = NekoVideo::Deskd;
        let feed = VideoFeed {
            addr: "127.0.0.1:40123".parse().unwrap_or_else(|_| unreachable!()),
            fps: 60,
        };
        let spec = service(&neko, &display, "t", Some(feed));
        let p = video_flag(&spec)["main"]["gst_pipeline"]
            .as_str()
            .expect("pipeline")
            .to_string();
        assert!(
            p.starts_with("tcpclientsrc host=127.0.0.1 port=40123 "),
            "{p}"
        );
        assert!(p.contains("framerate=60/1 ! h264parse"), "{p}");
        assert!(p.ends_with("! appsink name=appsink sync=false"), "{p}");
        assert!(!p.contains("ximagesrc"), "{p}");
        assert!(spec
            .command
            .contains(&"--capture.video.codec=h264".to_string()));
        // neko's own capture, as configured, when it is asked for
        neko.video = NekoVideo::Neko;
        let spec = service(&neko, &display, "t", Some(feed));
        let p = video_flag(&spec)["main"]["gst_pipeline"]
            .as_str()
            .expect("pipeline")
            .to_string();
        assert!(p.starts_with("ximagesrc"), "{p}");
    }

    #[test]
    fn video_pipeline_follows_codec_and_fps() {
        let (mut neko, display) = settings();
        let spec = service(&neko, &display, "t", None);
        assert!(has(&spec, "--capture.video.ids=main"));
        let main = &video_flag(&spec)["main"];
        let p = main["gst_pipeline"].as_str().expect("a whole pipeline");
        assert!(
            p.starts_with("ximagesrc display-name={display} show-pointer=false"),
            "{p}"
        );
        assert!(p.contains("framerate=30/1"), "{p}");
        assert!(p.contains("! vp8enc name=encoder "), "{p}");
        // A key frame every two seconds; gval expressions are not evaluated in a whole pipeline.
        assert!(p.contains(" keyframe-max-dist=60 "), "{p}");
        assert!(p.contains(" target-bitrate=1996800 "), "{p}");
        // No frame backlog before the encoder, no clock wait at the sink.
        assert!(
            p.contains(
                "! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream !"
            ),
            "{p}"
        );
        assert!(p.ends_with("! appsink name=appsink sync=false"), "{p}");
        assert_eq!(main["show_pointer"], false);

        neko.codec = "h264".to_string();
        neko.fps = 60;
        let spec = service(&neko, &display, "t", None);
        let p = video_flag(&spec)["main"]["gst_pipeline"]
            .as_str()
            .expect("pipeline")
            .to_string();
        assert!(p.contains("framerate=60/1"), "{p}");
        assert!(
            p.contains("! video/x-raw,format=I420 ! x264enc name=encoder threads=2 bitrate=3072 key-int-max=120 bframes=0 byte-stream=true tune=zerolatency speed-preset=ultrafast ! video/x-h264,stream-format=byte-stream,profile=constrained-baseline ! appsink"),
            "{p}"
        );
        assert_eq!(
            (
                keyframe_interval(1),
                keyframe_interval(30),
                keyframe_interval(60)
            ),
            (2, 60, 120)
        );
        for (codec, enc) in [("vp9", "vp9enc"), ("av1", "av1enc"), ("h265", "x265enc")] {
            neko.codec = codec.to_string();
            let spec = service(&neko, &display, "t", None);
            let p = video_flag(&spec)["main"]["gst_pipeline"]
                .as_str()
                .expect("pipeline")
                .to_string();
            assert!(p.contains(&format!("! {enc} name=encoder")), "{codec}: {p}");
            assert!(has(&spec, &format!("--capture.video.codec={codec}")));
        }
    }

    #[test]
    fn everything_explicit() {
        let (neko, display) = settings();
        let spec = service(&neko, &display, "s3cret", None);
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
        let spec = service(&neko, &display, "s3cret", None);
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
        let spec = service(&neko, &display, "t", None);
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
