//! Parsing details of the loader, on in-memory texts (the binary is tested in
//! `tests/config_check.rs`).

use std::time::Duration;

use nix::sys::signal::Signal;

use super::source::{Errors, Source};
use super::*;
use crate::service::Readiness;

/// Loads `files` (name, text) in order, as `deskd run -c ...` would.
fn load_texts(files: &[(&str, &str)], main: &[&str]) -> Result<Settings, Vec<String>> {
    let sources: Vec<Source> = files
        .iter()
        .map(|(name, text)| Source::new(*name, text.to_string()))
        .collect();
    let mut errs = Errors::default();
    let main: Vec<String> = main.iter().map(|s| s.to_string()).collect();
    let settings = resolve(&sources, &main, &mut errs);
    if errs.is_empty() {
        Ok(settings)
    } else {
        let names: Vec<&str> = sources.iter().map(|s| &*s.name).collect();
        Err(errs
            .into_sorted(&names)
            .iter()
            .map(|e| e.to_string())
            .collect())
    }
}

fn ok(files: &[(&str, &str)]) -> Settings {
    match load_texts(files, &[]) {
        Ok(s) => s,
        Err(e) => panic!("expected a valid config, got:\n{}", e.join("\n")),
    }
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    match load_texts(files, &[]) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e,
    }
}

fn has(errs: &[String], prefix: &str, needle: &str) -> bool {
    errs.iter()
        .any(|e| e.starts_with(prefix) && e.contains(needle))
}

/// A display whose program exists everywhere the tests run.
const DISPLAY: &str = "[display]\nbinary = \"true\"\n";

#[test]
fn empty_config_has_defaults_and_no_services() {
    let s = ok(&[("a.toml", "")]);
    assert!(s.display.is_none());
    assert!(s.neko.is_none());
    assert!(s.services.is_empty());
    assert_eq!(s.http.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
    assert!(s.api.enabled);
}

#[test]
fn full_service_table() {
    let s = ok(&[(
        "a.toml",
        r#"
[[service]]
name = "web"
command = ["sh", "-c", "exec sleep 1"]
ready = { log = "^listening on \\d+" }
ready_timeout = "3s"
restart = "on-failure"
backoff = { initial = "100ms", max = "2s", reset_after = "1m", max_restarts = 5 }
stop_signal = "INT"
stop_timeout = "1s"
env = { A = "1" }
secret_env = ["A"]
user = "root"
cwd = "/"
critical = true
"#,
    )]);
    let w = &s.services[0];
    assert_eq!(w.name, "web");
    assert_eq!(w.command, ["sh", "-c", "exec sleep 1"]);
    assert!(matches!(&w.ready, Readiness::Log { pattern } if pattern.is_match("listening on 80")));
    assert_eq!(w.ready_timeout, Duration::from_secs(3));
    assert_eq!(w.restart, RestartPolicy::OnFailure);
    assert_eq!(w.backoff.initial, Duration::from_millis(100));
    assert_eq!(w.backoff.max, Duration::from_secs(2));
    assert_eq!(w.backoff.reset_after, Duration::from_secs(60));
    assert_eq!(w.backoff.max_restarts, 5);
    assert_eq!(w.stop_signal, Signal::SIGINT);
    assert_eq!(w.stop_timeout, Duration::from_secs(1));
    assert_eq!(w.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(w.secret_env, ["A"]);
    assert_eq!(w.user.as_deref(), Some("root"));
    assert_eq!(w.cwd.as_deref(), Some(Path::new("/")));
    assert!(w.critical);
    assert!(!w.main);
}

#[test]
fn every_error_is_reported_with_file_line_and_key() {
    let errs = errors(&[(
        "bad.toml",
        r#"[display]
size = "huge"
depth = 7

[[service]]
name = "a"
command = ["true"]
ready_timeout = "10"
stop_signal = "SIGWHAT"
typo = 1

[[service]]
name = "b"
command = []
after = ["nobody"]
"#,
    )]);
    assert!(
        has(&errs, "bad.toml:2: display.size: ", "WIDTHxHEIGHT"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "bad.toml:3: display.depth: ", "depth"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "bad.toml:8: service[a].ready_timeout: ", "duration"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "bad.toml:9: service[a].stop_signal: ", "signal"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "bad.toml:10: service[a].typo: ", "unknown key"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "bad.toml:14: service[b].command: ", "empty"),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "bad.toml:15: service[b].after: ",
            "unknown service `nobody`"
        ),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 7, "{errs:#?}");
    let lines: Vec<usize> = errs
        .iter()
        .filter_map(|e| e.split(':').nth(1).and_then(|l| l.parse().ok()))
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "sorted by line: {errs:#?}"
    );
}

#[test]
fn syntax_error_names_the_line() {
    let errs = errors(&[("a.toml", "[display]\nnumber = \n")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("a.toml:2: TOML syntax: "), "{errs:#?}");
}

#[test]
fn wrong_types_are_errors_not_panics() {
    let errs = errors(&[(
        "a.toml",
        "display = 5\nservice = 3\n[http]\nlisten = 8080\nmax_clients = -1\n[api]\nenabled = \"yes\"\n",
    )]);
    assert!(
        has(&errs, "a.toml:1: display: ", "expected a table"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "a.toml:2: service: ", "[[service]]"),
        "{errs:#?}"
    );
    assert!(has(&errs, "a.toml:4: http.listen: ", ""), "{errs:#?}");
    assert!(has(&errs, "a.toml:5: http.max_clients: ", ""), "{errs:#?}");
    assert!(has(&errs, "a.toml:7: api.enabled: ", ""), "{errs:#?}");
}

#[test]
fn sections_merge_key_by_key_and_later_files_win() {
    let s = ok(&[
        (
            "a.toml",
            "[display]\nbinary = \"true\"\nnumber = 5\nsize = \"800x600\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        ),
        (
            "b.toml",
            "[display]\nnumber = 7\n[api]\ntype_delay = \"5ms\"\n",
        ),
    ]);
    let d = s
        .display
        .as_ref()
        .map(|d| (d.number, d.width, d.height, d.depth, d.binary.as_str()));
    assert_eq!(d, Some((7, 800, 600, 24, "true")));
    assert_eq!(s.http.listen, SocketAddr::from(([127, 0, 0, 1], 1)));
    assert_eq!(s.api.type_delay, Duration::from_millis(5));
    assert_eq!(
        s.sources,
        [PathBuf::from("a.toml"), PathBuf::from("b.toml")]
    );
}

#[test]
fn services_append_and_duplicates_name_both_places() {
    let a = "[[service]]\nname = \"x\"\ncommand = [\"true\"]\n";
    let s = ok(&[
        ("a.toml", a),
        (
            "b.toml",
            "[[service]]\nname = \"y\"\ncommand = [\"true\"]\n",
        ),
    ]);
    let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["x", "y"]);

    let errs = errors(&[("a.toml", a), ("b.toml", &format!("\n{a}"))]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        has(
            &errs,
            "b.toml:3: service[x].name: ",
            "already defined at a.toml:2"
        ),
        "{errs:#?}"
    );
}

#[test]
fn replace_and_disabled() {
    let a = "[[service]]\nname = \"x\"\ncommand = [\"true\"]\n[[service]]\nname = \"y\"\ncommand = [\"true\"]\n";
    let b = "[[service]]\nname = \"x\"\nreplace = true\ncommand = [\"false\"]\n[[service]]\nname = \"y\"\ndisabled = true\n";
    let s = ok(&[("a.toml", a), ("b.toml", b)]);
    assert_eq!(s.services.len(), 1);
    assert_eq!(s.services[0].command, ["false"]);
}

#[test]
fn builtin_neko_can_be_disabled_and_names_are_reserved() {
    let base = format!("{DISPLAY}[neko]\nbinary = \"true\"\n");
    let s = ok(&[
        ("a.toml", &base),
        ("b.toml", "[[service]]\nname = \"neko\"\ndisabled = true\n"),
    ]);
    assert!(s.neko.is_none());
    assert!(s.display.is_some());

    let errs = errors(&[
        ("a.toml", &base),
        (
            "b.toml",
            "[[service]]\nname = \"display\"\ncommand = [\"true\"]\n",
        ),
    ]);
    assert!(
        has(&errs, "b.toml:2: service[display].name: ", "built-in"),
        "{errs:#?}"
    );
}

#[test]
fn display_env_is_set_unless_given() {
    let s = ok(&[(
        "a.toml",
        &format!(
            "{DISPLAY}number = 12\n[[service]]\nname = \"a\"\ncommand = [\"true\"]\n[[service]]\nname = \"b\"\ncommand = [\"true\"]\nenv = {{ DISPLAY = \":3\" }}\n"
        ),
    )]);
    assert_eq!(
        s.services[0].env.get("DISPLAY").map(String::as_str),
        Some(":12")
    );
    assert_eq!(
        s.services[1].env.get("DISPLAY").map(String::as_str),
        Some(":3")
    );
}

#[test]
fn main_command_runs_last_and_never_restarts() {
    let text = format!("{DISPLAY}[[service]]\nname = \"a\"\ncommand = [\"true\"]\n");
    let s = match load_texts(&[("a.toml", &text)], &["sh", "-c", "exit 3"]) {
        Ok(s) => s,
        Err(e) => panic!("{e:#?}"),
    };
    let main = &s.services[1];
    assert_eq!(main.name, "main");
    assert!(main.main);
    assert_eq!(main.restart, RestartPolicy::Never);
    assert_eq!(main.after, ["display", "a"]);
    assert_eq!(main.command, ["sh", "-c", "exit 3"]);

    let errs = match load_texts(&[("a.toml", "")], &["deskd-no-such-program"]) {
        Ok(_) => panic!("missing main program accepted"),
        Err(e) => e,
    };
    assert!(
        has(
            &errs,
            "command line (after --): service[main].command: ",
            "not found"
        ),
        "{errs:#?}"
    );
}

#[test]
fn neko_defaults_and_media_ports() {
    let s = ok(&[("a.toml", &format!("{DISPLAY}[neko]\nbinary = \"true\"\n"))]);
    let n = match &s.neko {
        Some(n) => n,
        None => panic!("no neko"),
    };
    assert_eq!(n.bind, SocketAddr::from(([127, 0, 0, 1], 18100)));
    assert_eq!(n.udp_port, Some(59000));
    assert_eq!(n.epr, None);
    assert_eq!(n.nat1to1, ["127.0.0.1"]);
    assert_eq!((n.fps, n.codec.as_str(), n.audio), (30, "h264", false));

    let s = ok(&[(
        "a.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\nepr = \"50000-50010\"\ntcpmux = 50020\n"),
    )]);
    let n = s.neko.as_ref().map(|n| (n.udp_port, n.epr, n.tcpmux));
    assert_eq!(n, Some((None, Some((50000, 50010)), Some(50020))));
}

#[test]
fn neko_video_is_deskds_encoder_when_it_can_be() {
    let video = |text: &str| {
        ok(&[(
            "a.toml",
            &format!("{DISPLAY}[neko]\nbinary = \"true\"\n{text}"),
        )])
        .neko
        .map(|n| n.video)
    };
    assert_eq!(video(""), Some(NekoVideo::Deskd));
    assert_eq!(video("codec = \"vp8\"\n"), Some(NekoVideo::Neko));
    assert_eq!(video("video = \"neko\"\n"), Some(NekoVideo::Neko));
    assert_eq!(
        video("[stream]\nenabled = false\n"),
        Some(NekoVideo::Neko),
        "no native stream, no encoder to share"
    );
    assert_eq!(video("video = \"deskd\"\n"), Some(NekoVideo::Deskd));

    let errs = errors(&[(
        "a.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\ncodec = \"vp8\"\nvideo = \"deskd\"\n"),
    )]);
    assert!(
        has(&errs, "a.toml:6: neko.video: ", "codec is \"vp8\""),
        "{errs:#?}"
    );
    let errs = errors(&[(
        "a.toml",
        &format!(
            "{DISPLAY}[neko]\nbinary = \"true\"\nvideo = \"deskd\"\n[stream]\nenabled = false\n"
        ),
    )]);
    assert!(
        has(&errs, "a.toml:5: neko.video: ", "[stream] is off"),
        "{errs:#?}"
    );
    let errs = errors(&[(
        "a.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\nvideo = \"x11\"\n"),
    )]);
    assert!(
        has(
            &errs,
            "a.toml:5: neko.video: ",
            "unknown video source \"x11\""
        ),
        "{errs:#?}"
    );
}

#[test]
fn neko_validation() {
    let errs = errors(&[(
        "a.toml",
        r#"[display]
binary = "true"
[neko]
binary = "true"
bind = "0.0.0.0:18100"
udp_port = 59000
epr = "59000-59100"
nat1to1 = []
codec = "mpeg2"
fps = 0
extra_args = ["oops"]
ice_servers = [{ urls = ["http://x"] }, { urls = ["stun:x"], bogus = 1 }]
"#,
    )]);
    assert!(has(&errs, "a.toml:5: neko.bind: ", "loopback"), "{errs:#?}");
    let port0 = errors(&[(
        "b.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\nbind = \"127.0.0.1:0\"\n"),
    )]);
    assert!(has(&port0, "b.toml:5: neko.bind: ", "port 0"), "{port0:#?}");
    assert!(
        has(&errs, "a.toml:6: neko.udp_port: ", "not both"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "a.toml:8: neko.nat1to1: ", "must not be empty"),
        "{errs:#?}"
    );
    assert!(has(&errs, "a.toml:9: neko.codec: ", "vp8"), "{errs:#?}");
    assert!(has(&errs, "a.toml:10: neko.fps: ", "range"), "{errs:#?}");
    assert!(
        has(&errs, "a.toml:11: neko.extra_args: ", "--key=value"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "a.toml:12: neko.ice_servers: ", "bogus"),
        "{errs:#?}"
    );
}

#[test]
fn neko_extra_args_cannot_override_what_keeps_neko_behind_deskd() {
    let errs = errors(&[(
        "a.toml",
        &format!(
            "{DISPLAY}[neko]\nbinary = \"true\"\nextra_args = [\"--debug\", \"--server.bind=0.0.0.0:18100\", \"--member.provider=multiuser\", \"--SESSION.API_TOKEN=x\", \"--session.cookie.enabled=true\", \"--capture.video.display=:1\"]\n"
        ),
    )]);
    assert!(
        has(&errs, "a.toml:5: neko.extra_args: ", "override server.bind"),
        "{errs:#?}"
    );
    for owned in ["member.", "session.api_token", "session.cookie."] {
        assert!(
            has(&errs, "a.toml:5: neko.extra_args: ", owned),
            "{owned}: {errs:#?}"
        );
    }
    assert_eq!(
        errs.len(),
        4,
        "--debug and other flags stay allowed: {errs:#?}"
    );
}

#[test]
fn neko_needs_display() {
    let errs = errors(&[("a.toml", "\n[neko]\nbinary = \"true\"\n")]);
    assert!(
        has(&errs, "a.toml:2: neko: ", "needs [display]"),
        "{errs:#?}"
    );
}

#[test]
fn missing_programs_are_named() {
    let errs = errors(&[(
        "a.toml",
        "[display]\nbinary = \"deskd-no-xvfb\"\n[neko]\nbinary = \"/nonexistent/neko\"\n[[service]]\nname = \"a\"\ncommand = [\"deskd-no-such-program\"]\n",
    )]);
    assert!(
        has(
            &errs,
            "a.toml:2: display.binary: ",
            "`deskd-no-xvfb` not found on PATH"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "a.toml:4: neko.binary: ",
            "/nonexistent/neko does not exist"
        ),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "a.toml:7: service[a].command: ", "not found"),
        "{errs:#?}"
    );
}

#[test]
fn builtin_default_is_display_http_and_neko() {
    // The PATH check is the only thing that may fail here (no neko on a dev machine).
    let src = Source::new(BUILTIN_NAME, BUILTIN_DEFAULT.to_string());
    let mut errs = Errors::default();
    let s = resolve(std::slice::from_ref(&src), &[], &mut errs);
    for e in errs.into_sorted(&[BUILTIN_NAME]) {
        assert!(e.message.contains("not found on PATH"), "{e}");
    }
    assert_eq!(
        s.display.as_ref().map(|d| d.display_name()),
        Some(":99".to_string())
    );
    assert!(s.neko.is_some());
    assert_eq!(s.http.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
}

#[test]
fn cycles_are_reported_once_with_their_path() {
    let errs = errors(&[(
        "a.toml",
        "[[service]]\nname = \"a\"\ncommand = [\"true\"]\nafter = [\"b\"]\n[[service]]\nname = \"b\"\ncommand = [\"true\"]\nafter = [\"a\"]\n",
    )]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        has(
            &errs,
            "a.toml:8: service[b].after: ",
            "dependency cycle: a -> b -> a"
        ),
        "{errs:#?}"
    );
}

#[test]
fn truncated_and_garbled_input_never_panics() {
    let valid = format!(
        "{DISPLAY}size = \"640x480\"\n[http]\nlisten = \"127.0.0.1:8080\"\n[[service]]\nname = \"a\"\ncommand = [\"true\"]\nready = {{ tcp = \"127.0.0.1:1\" }}\nbackoff = {{ initial = \"1s\", max = \"2s\" }}\nenv = {{ A = \"é\" }}\n"
    );
    assert!(load_texts(&[("a.toml", &valid)], &[]).is_ok());
    for cut in 0..valid.len() {
        if valid.is_char_boundary(cut) {
            let _ = load_texts(&[("a.toml", &valid[..cut])], &[]);
        }
    }
    let bytes = valid.as_bytes();
    for i in 0..bytes.len() {
        for garbage in [b'"', b'[', b'=', b'\n', b'{', b'0'] {
            let mut b = bytes.to_vec();
            b[i] = garbage;
            if let Ok(text) = String::from_utf8(b) {
                let _ = load_texts(&[("a.toml", &text)], &[]);
            }
        }
    }
}

#[test]
fn a_later_file_can_switch_between_alternative_keys() {
    let image =
        format!("{DISPLAY}[neko]\nbinary = \"true\"\nudp_port = 59000\n[http]\ntoken = \"t\"\n");
    let s = ok(&[
        ("image.toml", &image),
        (
            "drop-in.toml",
            "[neko]\nepr = \"50000-50100\"\n[http]\ntoken_file = \"/run/secrets/t\"\n",
        ),
    ]);
    let n = s.neko.as_ref().map(|n| (n.udp_port, n.epr));
    assert_eq!(n, Some((None, Some((50000, 50100)))));
    assert_eq!(s.http.token, None);
    assert_eq!(s.http.token_file, Some(PathBuf::from("/run/secrets/t")));

    // Both in one file is still an error.
    let errs = errors(&[(
        "a.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\nudp_port = 1\nepr = \"2-3\"\n"),
    )]);
    assert!(
        has(&errs, "a.toml:5: neko.udp_port: ", "not both"),
        "{errs:#?}"
    );
}

#[test]
fn udp_port_zero_means_tcp_only() {
    let s = ok(&[(
        "a.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\nudp_port = 0\ntcpmux = 59000\n"),
    )]);
    let n = s.neko.as_ref().map(|n| (n.udp_port, n.epr, n.tcpmux));
    assert_eq!(n, Some((None, None, Some(59000))));
    let errs = errors(&[(
        "a.toml",
        &format!("{DISPLAY}[neko]\nbinary = \"true\"\nudp_port = 0\n"),
    )]);
    assert!(
        has(&errs, "a.toml:5: neko.udp_port: ", "tcpmux"),
        "{errs:#?}"
    );
}

#[test]
fn debug_never_shows_tokens_or_credentials() {
    let http = HttpSettings {
        token: Some("inline-control-secret".into()),
        view_token: Some("inline-view-secret".into()),
        ..HttpSettings::default()
    };
    let ice = IceServer {
        urls: vec!["turn:turn.example:3478".into()],
        username: Some("user".into()),
        credential: Some("turn-secret".into()),
    };
    let text = format!("{http:?} {ice:?}");
    for secret in ["inline-control-secret", "inline-view-secret", "turn-secret"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(
        text.contains("<redacted>") && text.contains("turn.example"),
        "{text}"
    );
}

#[test]
fn relay_limits_are_bounded() {
    // i64::MAX would reach tokio's Semaphore::new and mpsc::channel, which panic above
    // usize::MAX >> 3.
    let errs = errors(&[(
        "a.toml",
        "[http]\nmax_clients = 9223372036854775807\nmax_frame_bytes = 0\nrelay_queue = 9223372036854775807\n",
    )]);
    assert!(
        has(&errs, "a.toml:2: http.max_clients: ", "limit of 100000"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "a.toml:3: http.max_frame_bytes: ", "at least 1"),
        "{errs:#?}"
    );
    assert!(
        has(&errs, "a.toml:4: http.relay_queue: ", "limit"),
        "{errs:#?}"
    );
    let s = ok(&[("a.toml", "[http]\nmax_clients = 100000\nrelay_queue = 1\n")]);
    assert_eq!((s.http.max_clients, s.http.relay_queue), (100_000, 1));
}

#[test]
fn durations_are_bounded() {
    // 300 billion years overflows Instant::now() + timeout (a panic in the supervisor).
    let errs = errors(&[(
        "a.toml",
        "[[service]]\nname = \"a\"\ncommand = [\"true\"]\nready_timeout = \"300000000000years\"\nstop_timeout = \"366days\"\n",
    )]);
    assert!(
        has(
            &errs,
            "a.toml:4: service[a].ready_timeout: ",
            "limit of 365 days"
        ),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "a.toml:5: service[a].stop_timeout: ",
            "limit of 365 days"
        ),
        "{errs:#?}"
    );
}

#[test]
fn type_delay_is_at_most_the_per_request_limit() {
    let errs = errors(&[("a.toml", "[api]\ntype_delay = \"2s\"\n")]);
    assert!(
        has(&errs, "a.toml:2: api.type_delay: ", "limit of 1000 ms"),
        "{errs:#?}"
    );
    let s = ok(&[("a.toml", "[api]\ntype_delay = \"1s\"\n")]);
    assert_eq!(s.api.type_delay, Duration::from_secs(1));
}

#[test]
fn stream_section() {
    let s = ok(&[("a.toml", "[display]\nnumber = 7\n")]);
    assert_eq!(s.stream, crate::config::StreamSettings::default());
    assert!(s.stream.enabled);
    let s = ok(&[(
        "a.toml",
        "[display]\nnumber = 7\n[stream]\nmax_fps = 30\nbitrate_kbps = 2000\n",
    )]);
    assert_eq!((s.stream.max_fps, s.stream.bitrate_kbps), (30, 2000));
    let s = ok(&[("a.toml", "[stream]\nenabled = true\n")]);
    assert!(!s.stream.enabled, "no display, nothing to stream");
    let s = ok(&[("a.toml", "[display]\n[stream]\nenabled = false\n")]);
    assert!(!s.stream.enabled);
    let errs = errors(&[(
        "a.toml",
        "[display]\n[stream]\nmax_fps = 0\nbitrate_kbps = 5\nenabled = 1\nfps = 3\n",
    )]);
    assert!(
        has(&errs, "a.toml:3: stream.max_fps: ", "out of range 1..=120"),
        "{errs:#?}"
    );
    assert!(
        has(
            &errs,
            "a.toml:4: stream.bitrate_kbps: ",
            "out of range 100..=100000"
        ),
        "{errs:#?}"
    );
    assert!(has(&errs, "a.toml:5: stream.enabled: ", ""), "{errs:#?}");
    assert!(has(&errs, "a.toml:6: stream.fps: ", ""), "{errs:#?}");
}
