//! Issue 12 on the real deskd binary with real services: deskd's tokens stay out of its
//! services' environments unless a service asks for them, a service cannot flood the log,
//! and HTTP clients can never take the descriptors supervision needs.

#[path = "common/deskd_proc.rs"]
mod deskd_proc;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use deskd_proc::*;

const TOKEN: &str = "hardening-control-token";
const VIEW_TOKEN: &str = "hardening-view-token";

/// `deskd run -c CONFIG` with both tokens in its environment (the README's `-e DESKD_TOKEN`)
/// and, if given, `RLIMIT_NOFILE` set to (soft, hard) before exec.
fn run_deskd(dir: &TempDir, config: &str, nofile: Option<(u64, u64)>) -> Deskd {
    let cfg = dir.write("deskd.toml", config);
    let conf_d = dir.join("conf.d");
    fs::create_dir_all(&conf_d).expect("conf.d");
    let log = dir.join("deskd.log");
    let out = fs::File::create(&log).expect("create log");
    let err = out.try_clone().expect("clone log");
    let mut cmd = Command::new(deskd_bin());
    cmd.args(["run", "--log-format", "json", "-c"])
        .arg(&cfg)
        .arg("--conf-d")
        .arg(&conf_d)
        .env("DESKD_TOKEN", TOKEN)
        .env("DESKD_VIEW_TOKEN", VIEW_TOKEN)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some((soft, hard)) = nofile {
        // SAFETY: one async-signal-safe syscall between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = nix::libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().expect("spawn deskd");
    Deskd { child, log }
}

/// Issue 12 item 3: with `DESKD_TOKEN` and `DESKD_VIEW_TOKEN` in deskd's environment, a
/// service (also one running as `nobody`) sees neither, unless its config lists it in
/// `inherit_secrets`; the value never reaches the log either way except where the test's
/// own service prints it on purpose.
#[test]
fn tokens_do_not_reach_services_unless_asked_for() {
    let dir = TempDir::new("tokens");
    let show = |tag: &str| {
        format!(
            r#"["sh", "-c", "echo {tag}:${{DESKD_TOKEN:-none}}:${{DESKD_VIEW_TOKEN:-none}}; exec sleep 600"]"#
        )
    };
    let config = format!(
        r#"[http]
listen = "127.0.0.1:0"

[[service]]
name = "plain"
command = {plain}

[[service]]
name = "nobody"
user = "nobody"
command = {nobody}

[[service]]
name = "agent"
command = {agent}
inherit_secrets = ["DESKD_TOKEN"]
"#,
        plain = show("plain"),
        nobody = show("nobody"),
        agent = show("agent"),
    );
    let mut deskd = run_deskd(&dir, &config, None);
    let all = ["plain:", "nobody:", "agent:"];
    let seen = wait_until(PATIENCE, || {
        let log = deskd.log_text();
        all.iter().all(|t| log.contains(t))
    });
    let log = deskd.log_text();
    deskd.signal(nix::libc::SIGTERM);
    let _ = deskd.wait_exit(PATIENCE);
    assert!(seen, "the services did not print their environment:\n{log}");
    assert!(log.contains("plain:none:none"), "{log}");
    assert!(log.contains("nobody:none:none"), "{log}");
    assert!(
        log.contains(&format!("agent:{TOKEN}:none")),
        "inherit_secrets = [\"DESKD_TOKEN\"] passes that token only:\n{log}"
    );

    // Only deskd's secrets can be listed.
    let cfg = dir.write(
        "bad.toml",
        "[[service]]\nname = \"x\"\ncommand = [\"true\"]\ninherit_secrets = [\"HOME\"]\n",
    );
    let out = Command::new(deskd_bin())
        .arg("check")
        .arg("-c")
        .arg(&cfg)
        .arg("--conf-d")
        .arg(dir.join("conf.d"))
        .output()
        .expect("deskd check");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("inherit_secrets") && text.contains("HOME"),
        "{text}"
    );
}

/// Issue 12 item 6: a service writing 50 MB of output in a burst does not write 50 MB of log:
/// its lines are dropped over the rate limit, and the count of what was dropped is logged
/// when it writes within the limit again.
#[test]
fn a_service_cannot_flood_the_log() {
    let dir = TempDir::new("flood");
    let config = r#"[http]
listen = "127.0.0.1:0"

[[service]]
name = "flood"
command = ["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' a | fold -w 1000; sleep 2; echo flood-done; exec sleep 600"]
"#;
    let mut deskd = run_deskd(&dir, config, None);
    let done = deskd.wait_log("flood-done", Duration::from_secs(120));
    let size = fs::metadata(&deskd.log).map(|m| m.len()).unwrap_or(0);
    let log = deskd.log_text();
    deskd.signal(nix::libc::SIGTERM);
    let _ = deskd.wait_exit(PATIENCE);
    assert!(
        done,
        "the service never got to its last line; log is {size} bytes"
    );
    println!("50 MB of service output made {size} bytes of log");
    assert!(size < 8 << 20, "the log grew by {size} bytes");
    assert!(
        log.contains("dropping lines") && log.contains("of output dropped"),
        "the drops are announced and counted"
    );
}
