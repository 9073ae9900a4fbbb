//! `deskd check` through the real binary: the printed plan, every kind of configuration error
//! (exit 2, `FILE:LINE: key: message`), merging of `-c` files and `conf.d`, `replace`, the
//! built-in default with fake `Xvfb` and `neko` programs on PATH, secrets never printed, and no
//! panic on malformed input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DESKD: &str = env!("CARGO_BIN_EXE_deskd");

/// A scratch directory with config files and a `bin/` of fake programs.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("deskd-config-check-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).expect("create scratch dir");
        let s = Scratch { dir };
        s.program("Xvfb");
        s.program("neko");
        s.program("my-app");
        s
    }

    /// Writes an executable shell script called `name` into `bin/`.
    fn program(&self, name: &str) {
        let path = self.dir.join("bin").join(name);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").expect("write fake program");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod fake program");
    }

    fn remove_program(&self, name: &str) {
        std::fs::remove_file(self.dir.join("bin").join(name)).expect("remove fake program");
    }

    /// Writes `text` to `name` (relative to the scratch dir, directories created).
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create config dir");
        }
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// PATH for deskd: the scratch `bin/` first, then the system's.
    fn path_env(&self) -> String {
        format!("{}:/usr/bin:/bin", self.dir.join("bin").display())
    }

    /// `deskd check` with the given args, PATH = scratch bin + the system's.
    fn check(&self, args: &[&str]) -> Checked {
        let out = Command::new(DESKD)
            .arg("check")
            .args(args)
            .env("PATH", self.path_env())
            .env_remove("DESKD_TOKEN")
            .output()
            .expect("run deskd check");
        Checked::from(out)
    }

    /// `deskd check -c CFG` with no conf.d.
    fn check_file(&self, cfg: &Path) -> Checked {
        self.check(&[
            "-c",
            cfg.to_str().unwrap_or_default(),
            "--conf-d",
            NO_CONF_D,
        ])
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Checked {
    fn from(out: Output) -> Self {
        Checked {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Checked {
    fn ok(self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "expected a valid config\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    fn invalid(self) -> Vec<String> {
        assert_eq!(
            self.code,
            Some(2),
            "expected exit 2\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "no plan for an invalid config: {}",
            self.stdout
        );
        self.stderr.lines().map(str::to_string).collect()
    }
}

/// The service names of a printed plan, in start order.
fn plan_order(plan: &str) -> Vec<String> {
    plan.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (num, rest) = l.split_once(". ")?;
            num.parse::<usize>().ok()?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// The block of plan lines describing service `name`.
fn plan_block<'a>(plan: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = plan.lines().skip_while(|l| {
        let l = l.trim_start();
        !l.split_once(". ").is_some_and(|(n, rest)| {
            n.parse::<usize>().is_ok() && rest.split_whitespace().next() == Some(name)
        })
    });
    let mut block: Vec<&str> = lines.next().into_iter().collect();
    block.extend(lines.take_while(|l| l.starts_with("       ")));
    block
}

fn assert_error(errors: &[String], prefix: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(prefix) && e.contains(needle)),
        "no error starting with {prefix:?} containing {needle:?} in:\n{}",
        errors.join("\n")
    );
}

const NO_CONF_D: &str = "/nonexistent/deskd-conf.d";

#[test]
fn valid_config_prints_the_plan_in_dependency_order() {
    let s = Scratch::new("plan");
    let cfg = s.file(
        "deskd.toml",
        r#"
[display]
number = 141
size = "800x600"

[[service]]
name = "app"
command = ["my-app", "--flag", "two words"]
after = ["db", "wm"]
ready = { http = "http://127.0.0.1:9/health" }
restart = "on-failure"
critical = true

[[service]]
name = "wm"
command = ["my-app"]
after = ["display"]

[[service]]
name = "db"
command = ["my-app"]
ready = { tcp = "127.0.0.1:5432" }
stop_signal = "INT"
"#,
    );
    let plan = s.check_file(&cfg).ok();
    assert_eq!(plan_order(&plan), ["display", "wm", "db", "app"], "{plan}");
    assert!(plan.contains("display :141 800x600x24"), "{plan}");

    let app = plan_block(&plan, "app").join("\n");
    assert!(app.contains("[critical]"), "{app}");
    assert!(app.contains("command: my-app --flag 'two words'"), "{app}");
    assert!(app.contains("after:   db, wm"), "{app}");
    assert!(
        app.contains("HTTP 2xx from http://127.0.0.1:9/health"),
        "{app}"
    );
    assert!(app.contains("restart: on-failure"), "{app}");
    assert!(app.contains("DISPLAY=:141"), "{app}");

    let display = plan_block(&plan, "display").join("\n");
    assert!(
        display.contains("X11 handshake on display :141"),
        "{display}"
    );
    assert!(
        display.contains("Xvfb :141 -screen 0 800x600x24"),
        "{display}"
    );
    let db = plan_block(&plan, "db").join("\n");
    assert!(db.contains("stop:    SIGINT"), "{db}");
}

#[test]
fn each_kind_of_error_names_file_line_and_key() {
    let s = Scratch::new("errors");
    let cfg = s.file(
        "bad.toml",
        r#"[display]
size = "1280by720"
bogus = true

[http]
listen = "nowhere"

[[service]]
name = "a"
command = ["my-app"]
after = ["ghost"]
ready_timeout = "ten seconds"
stop_signal = "SIGNOTHING"
ready = { log = "([unclosed" }

[[service]]
name = "b"
command = []
after = ["c"]

[[service]]
name = "c"
command = ["deskd-test-no-such-program"]
after = ["b"]

[[service]]
name = "a"
command = ["my-app"]
"#,
    );
    let errors = s.check_file(&cfg).invalid();
    let f = cfg.display().to_string();
    let at = |line: u32, key: &str| format!("{f}:{line}: {key}: ");
    assert_error(&errors, &at(2, "display.size"), "WIDTHxHEIGHT");
    assert_error(&errors, &at(3, "display.bogus"), "unknown key");
    assert_error(&errors, &at(6, "http.listen"), "bad address");
    assert_error(
        &errors,
        &at(11, "service[a].after"),
        "unknown service `ghost`",
    );
    assert_error(&errors, &at(12, "service[a].ready_timeout"), "bad duration");
    assert_error(&errors, &at(13, "service[a].stop_signal"), "unknown signal");
    assert_error(&errors, &at(14, "service[a].ready.log"), "invalid regex");
    assert_error(&errors, &at(18, "service[b].command"), "empty command");
    assert_error(&errors, &at(23, "service[c].command"), "not found on PATH");
    assert_error(&errors, &at(24, "service[c].after"), "dependency cycle");
    assert_error(
        &errors,
        &at(27, "service[a].name"),
        &format!("already defined at {f}:9"),
    );
    assert_eq!(
        errors.len(),
        11,
        "one line per problem:\n{}",
        errors.join("\n")
    );
}

#[test]
fn syntax_errors_and_missing_files() {
    let s = Scratch::new("syntax");
    let bad = s.file("bad.toml", "[display]\nnumber = 99\nsize = \"1280x720\n");
    let errors = s.check_file(&bad).invalid();
    assert_error(&errors, &format!("{}:3: TOML syntax: ", bad.display()), "");

    let missing = s.path("missing.toml");
    let errors = s.check_file(&missing).invalid();
    assert_error(
        &errors,
        &format!("{}: cannot read config file", missing.display()),
        "",
    );
}

#[test]
fn files_and_conf_d_merge_in_order() {
    let s = Scratch::new("merge");
    let a = s.file(
        "a.toml",
        "[display]\nnumber = 142\nsize = \"640x480\"\n[[service]]\nname = \"one\"\ncommand = [\"my-app\", \"1\"]\n",
    );
    let b = s.file(
        "b.toml",
        "[display]\nsize = \"1024x768\"\n[[service]]\nname = \"two\"\ncommand = [\"my-app\", \"2\"]\n",
    );
    // Lexical order: 10-... before 20-...; other extensions are ignored.
    s.file(
        "conf.d/20-last.toml",
        "[display]\ndepth = 16\n[[service]]\nname = \"four\"\ncommand = [\"my-app\", \"4\"]\n",
    );
    s.file(
        "conf.d/10-first.toml",
        "[[service]]\nname = \"three\"\ncommand = [\"my-app\", \"3\"]\n",
    );
    s.file("conf.d/README", "not toml, not read");
    let conf_d = s.path("conf.d");
    let plan = s
        .check(&[
            "-c",
            a.to_str().unwrap_or_default(),
            "-c",
            b.to_str().unwrap_or_default(),
            "--conf-d",
            conf_d.to_str().unwrap_or_default(),
        ])
        .ok();
    assert_eq!(
        plan_order(&plan),
        ["display", "one", "two", "three", "four"],
        "{plan}"
    );
    assert!(plan.contains("display :142 1024x768x16"), "{plan}");
    let first = plan.lines().next().unwrap_or_default();
    assert!(
        first.contains("a.toml") && first.contains("b.toml") && first.contains("10-first.toml"),
        "sources listed: {first}"
    );
}

#[test]
fn conf_d_can_replace_and_disable_services() {
    let s = Scratch::new("replace");
    let base = s.file(
        "base.toml",
        "[[service]]\nname = \"app\"\ncommand = [\"my-app\", \"old\"]\n[[service]]\nname = \"extra\"\ncommand = [\"my-app\"]\n",
    );
    s.file(
        "conf.d/50-derived.toml",
        "[[service]]\nname = \"app\"\nreplace = true\ncommand = [\"my-app\", \"new\"]\n[[service]]\nname = \"extra\"\ndisabled = true\n",
    );
    let conf_d = s.path("conf.d");
    let plan = s
        .check(&[
            "-c",
            base.to_str().unwrap_or_default(),
            "--conf-d",
            conf_d.to_str().unwrap_or_default(),
        ])
        .ok();
    assert_eq!(plan_order(&plan), ["app"], "{plan}");
    assert!(plan.contains("command: my-app new"), "{plan}");

    // Without `replace = true` the same drop-in is an error naming both places.
    s.file(
        "conf.d/50-derived.toml",
        "\n[[service]]\nname = \"app\"\ncommand = [\"my-app\", \"new\"]\n",
    );
    let errors = s
        .check(&[
            "-c",
            base.to_str().unwrap_or_default(),
            "--conf-d",
            conf_d.to_str().unwrap_or_default(),
        ])
        .invalid();
    assert_error(
        &errors,
        &format!(
            "{}:3: service[app].name: ",
            s.path("conf.d/50-derived.toml").display()
        ),
        &format!("already defined at {}:2", base.display()),
    );
}

#[test]
fn main_command_after_double_dash_starts_last() {
    let s = Scratch::new("main");
    let cfg = s.file(
        "deskd.toml",
        "[display]\nnumber = 143\n[[service]]\nname = \"wm\"\ncommand = [\"my-app\"]\nafter = [\"display\"]\n",
    );
    let plan = s
        .check(&[
            "-c",
            cfg.to_str().unwrap_or_default(),
            "--conf-d",
            NO_CONF_D,
            "--",
            "my-app",
            "--run",
        ])
        .ok();
    assert_eq!(plan_order(&plan), ["display", "wm", "main"], "{plan}");
    let main = plan_block(&plan, "main").join("\n");
    assert!(main.contains("[main]"), "{main}");
    assert!(main.contains("after:   display, wm"), "{main}");
    assert!(main.contains("restart: never"), "{main}");

    let errors = s
        .check(&[
            "-c",
            cfg.to_str().unwrap_or_default(),
            "--conf-d",
            NO_CONF_D,
            "--",
            "deskd-test-no-such-program",
        ])
        .invalid();
    assert_error(
        &errors,
        "command line (after --): service[main].command: ",
        "not found",
    );
}

#[test]
fn neko_with_audio_starts_after_pulseaudio_is_ready() {
    let s = Scratch::new("pulse");
    s.program("pulseaudio");
    let config = |audio: bool| {
        format!(
            "[display]\n[neko]\naudio = {audio}\n\n\
             [[service]]\nname = \"pulseaudio\"\ncommand = [\"pulseaudio\", \"-n\"]\n\
             ready = {{ unix = \"/tmp/pulseaudio.socket\" }}\n"
        )
    };
    let plan = s.check_file(&s.file("audio.toml", &config(true))).ok();
    assert_eq!(
        plan_order(&plan),
        ["display", "pulseaudio", "neko"],
        "{plan}"
    );
    let neko = plan_block(&plan, "neko").join("\n");
    assert!(neko.contains("after:   display, pulseaudio"), "{neko}");
    let pulse = plan_block(&plan, "pulseaudio").join("\n");
    assert!(
        pulse.contains("connect to Unix socket /tmp/pulseaudio.socket"),
        "{pulse}"
    );

    // Without audio neko records nothing from PulseAudio and does not wait for it.
    let plan = s.check_file(&s.file("silent.toml", &config(false))).ok();
    let neko = plan_block(&plan, "neko").join("\n");
    assert!(neko.contains("after:   display\n"), "{neko}");

    // A probe path that is not absolute is a clear error.
    let bad = config(true).replace("/tmp/pulseaudio.socket", "pulse.socket");
    let errors = s.check_file(&s.file("bad.toml", &bad)).invalid();
    assert_error(&errors, "", "expected an absolute path");
}

#[test]
fn builtin_default_passes_with_xvfb_and_neko_on_path() {
    if Path::new(deskd::config::DEFAULT_CONFIG).exists() {
        println!(
            "skipped: {} exists and would be used instead of the built-in default",
            deskd::config::DEFAULT_CONFIG
        );
        return;
    }
    let s = Scratch::new("default");
    let plan = s.check(&["--conf-d", NO_CONF_D]).ok();
    assert_eq!(plan_order(&plan), ["display", "neko"], "{plan}");
    assert!(plan.contains(deskd::config::BUILTIN_NAME), "{plan}");
    assert!(plan.contains("display :99 1280x720x24"), "{plan}");
    let neko = plan_block(&plan, "neko").join("\n");
    assert!(neko.contains("after:   display"), "{neko}");
    assert!(neko.contains("SIGINT"), "neko stops on SIGINT: {neko}");
}

#[test]
fn missing_neko_binary_is_a_clear_error() {
    if Path::new(deskd::config::DEFAULT_CONFIG).exists() {
        println!(
            "skipped: {} exists and would be used instead of the built-in default",
            deskd::config::DEFAULT_CONFIG
        );
        return;
    }
    let s = Scratch::new("noneko");
    s.remove_program("neko");
    let errors = s.check(&["--conf-d", NO_CONF_D]).invalid();
    assert_error(
        &errors,
        &format!("{}:", deskd::config::BUILTIN_NAME),
        "neko.binary: program `neko` not found on PATH",
    );
    assert_eq!(errors.len(), 1, "{}", errors.join("\n"));

    let cfg = s.file(
        "deskd.toml",
        "[display]\n[neko]\nbinary = \"/opt/deskd-test/neko\"\n",
    );
    let errors = s.check_file(&cfg).invalid();
    assert_error(
        &errors,
        &format!("{}:3: neko.binary: ", cfg.display()),
        "/opt/deskd-test/neko does not exist",
    );
}

#[test]
fn secrets_are_never_printed() {
    let s = Scratch::new("secrets");
    let cfg = s.file(
        "deskd.toml",
        r#"
[display]
[http]
token = "control-secret-4711"
view_token = "view-secret-4712"
[neko]
ice_servers = [{ urls = ["turn:turn.example.com:3478"], username = "u", credential = "turn-secret-4713" }]
[[service]]
name = "app"
command = ["my-app"]
env = { API_KEY = "env-secret-4714", PLAIN = "visible-4715" }
secret_env = ["API_KEY"]
"#,
    );
    let plan = s.check_file(&cfg).ok();
    for secret in ["4711", "4712", "4713", "4714"] {
        assert!(!plan.contains(secret), "secret {secret} printed:\n{plan}");
    }
    assert!(plan.contains("visible-4715"), "{plan}");
    assert!(plan.contains("<redacted>"), "{plan}");
    // neko's per-start API token travels in its env and is redacted there.
    let neko = plan_block(&plan, "neko").join("\n");
    assert!(
        neko.contains(&format!("{}=<redacted>", deskd::neko::API_TOKEN_ENV)),
        "{neko}"
    );
}

#[test]
fn malformed_input_never_panics() {
    let s = Scratch::new("fuzz");
    let valid = "[display]\nnumber = 144\n[http]\nlisten = \"127.0.0.1:8080\"\n[[service]]\nname = \"a\"\ncommand = [\"my-app\"]\nafter = [\"display\"]\nbackoff = { initial = \"1s\", max = \"2s\" }\n";
    let cfg = s.file("v.toml", valid);
    s.check_file(&cfg).ok();

    let mut variants: Vec<Vec<u8>> = Vec::new();
    for cut in (1..valid.len()).step_by(7) {
        variants.push(valid.as_bytes()[..cut].to_vec());
    }
    for (i, garbage) in [b'"', b'[', b'=', b'{', 0xff].iter().enumerate() {
        let mut v = valid.as_bytes().to_vec();
        let at = (i * 37 + 11) % v.len();
        v[at] = *garbage;
        variants.push(v);
    }
    variants.push(b"[[service]]\n[[service]]\nname = 1\ncommand = \"x\"\n".to_vec());
    variants.push(b"service = [1, \"x\", {}]\n".to_vec());
    variants.push(b"[display.nested]\nx = 1\n".to_vec());
    variants.push(vec![0u8, 159, 146, 150]);

    for (i, v) in variants.iter().enumerate() {
        let path = s.path(&format!("variant-{i}.toml"));
        std::fs::write(&path, v).expect("write variant");
        let out = s.check_file(&path);
        assert!(
            !out.stderr.contains("panicked"),
            "variant {i} panicked: {:?}\n{}",
            String::from_utf8_lossy(v),
            out.stderr
        );
        assert!(
            matches!(out.code, Some(0) | Some(2)),
            "variant {i}: exit {:?}: {}",
            out.code,
            out.stderr
        );
        if out.code == Some(2) {
            assert!(
                !out.stderr.trim().is_empty(),
                "variant {i}: exit 2 without a message"
            );
        }
    }
}

/// A display number whose socket and lock file are free, distinct per test process.
fn free_display() -> Option<u32> {
    let start = 300 + std::process::id() % 400;
    (start..start + 200).find(|n| {
        !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
    })
}

/// Kills and reaps the Xvfb started by a test, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn display_service_command_runs_an_xvfb_reachable_only_through_its_file_socket() {
    if deskd::config::find_program("Xvfb", std::env::var_os("PATH").as_deref(), None).is_err() {
        println!("skipped: Xvfb is not installed (apt install xvfb)");
        return;
    }
    let Some(number) = free_display() else {
        println!("skipped: no free X display number");
        return;
    };
    let settings = deskd::config::DisplaySettings {
        number,
        width: 320,
        height: 200,
        depth: 24,
        extra_args: Vec::new(),
        binary: "Xvfb".to_string(),
    };
    let spec = deskd::display::service(&settings);
    let child = Command::new(&spec.command[0])
        .args(&spec.command[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn Xvfb");
    let mut child = Child(child);

    // Poll (generously: a loaded machine) until a client completes the X11 handshake.
    let name = settings.display_name();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (conn, screen) = loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            // Another test's server took the number between our look and our start.
            println!("skipped: Xvfb on {name} exited at start ({status}); display number taken");
            return;
        }
        match x11rb::connect(Some(&name)) {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("Xvfb on {name} did not accept a connection in 30s: {e}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    assert!(
        matches!(child.0.try_wait(), Ok(None)),
        "our Xvfb on {name} exited; the connection went to another server"
    );
    use x11rb::connection::Connection as _;
    let root = &conn.setup().roots[screen];
    assert_eq!(
        (root.width_in_pixels, root.height_in_pixels, root.root_depth),
        (320, 200, 24)
    );

    // Only the file socket: no abstract one (visible across a shared network namespace)...
    let unix = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let file_socket = format!("/tmp/.X11-unix/X{number}");
    if !unix.is_empty() {
        assert!(
            unix.lines()
                .any(|l| l.ends_with(&format!(" {file_socket}"))),
            "file socket {file_socket} not listed in /proc/net/unix"
        );
        assert!(
            !unix
                .lines()
                .any(|l| l.ends_with(&format!(" @{file_socket}"))),
            "abstract socket @{file_socket} exists"
        );
    }
    // ...and no TCP listener.
    let port = 6000 + number;
    let tcp = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap_or(u16::MAX))),
        std::time::Duration::from_secs(2),
    );
    assert!(tcp.is_err(), "Xvfb listens on TCP port {port}");
}

#[test]
fn deskd_run_refuses_an_invalid_config_before_starting_anything() {
    let s = Scratch::new("run");
    let marker = s.path("started");
    let cfg = s.file(
        "deskd.toml",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[[service]]\nname = \"first\"\ncommand = [\"/bin/sh\", \"-c\", \"touch {}; sleep 60\"]\n[[service]]\nname = \"second\"\ncommand = [\"my-app\"]\nafter = [\"first\", \"missing\"]\n",
            marker.display()
        ),
    );
    let mut child = Command::new(DESKD)
        .args([
            "run",
            "-c",
            cfg.to_str().unwrap_or_default(),
            "--conf-d",
            NO_CONF_D,
        ])
        .env("PATH", s.path_env())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn deskd run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("deskd run did not exit on an invalid config");
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:9: service[second].after: unknown service `missing`",
            cfg.display()
        )),
        "stderr:\n{stderr}"
    );
    assert!(
        !marker.exists(),
        "a service was started despite the invalid config"
    );
}
