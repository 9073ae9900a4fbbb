//! `deskd ctl` inside the container finds the control token by itself: `deskd run` writes it
//! to `/run/deskd/token` (mode 0600), as a generated token could not be used otherwise.
//! Runs in a private mount namespace with its own `/run`, so parallel tests and the host's
//! `/run` are untouched (skipped with a reason where `unshare --mount` is not permitted).

#[path = "common/deskd_proc.rs"]
mod deskd_proc;

use std::process::{Command, Stdio};

use deskd_proc::*;

fn free_display() -> u32 {
    let start = 1600 + std::process::id() % 300;
    first_free_display(start, 300).unwrap_or(start)
}

#[test]
fn ctl_reads_the_token_deskd_wrote() {
    let probe = Command::new("unshare")
        .args(["--mount", "true"])
        .stdin(Stdio::null())
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        println!("skipping: unshare --mount is not permitted here ({probe:?})");
        return;
    }
    let dir = TempDir::new("ctl-token");
    let port = free_port();
    let config = dir.write(
        "deskd.toml",
        &format!(
            "[display]\nnumber = {}\nsize = \"640x480\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            free_display()
        ),
    );
    // No DESKD_TOKEN anywhere: deskd generates one, ctl must find it in the file.
    let script = format!(
        r#"
set -u
mount -t tmpfs tmpfs /run
"{deskd}" run -c "{config}" --conf-d /nonexistent > "{log}" 2>&1 &
pid=$!
for i in $(seq 1 200); do
  [ -s /run/deskd/token ] && "{deskd}" ctl --url http://127.0.0.1:{port} display > /dev/null 2>&1 && break
  sleep 0.1
done
echo "mode=$(stat -c %a /run/deskd/token)"
"{deskd}" ctl --url http://127.0.0.1:{port} display
echo "ctl=$?"
kill -TERM $pid; wait $pid
echo "deskd=$?"
"#,
        deskd = deskd_bin(),
        config = config.display(),
        log = dir.join("deskd.log").display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_remove("DESKD_TOKEN")
        .env_remove("DESKD_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.join("deskd.log")).unwrap_or_default();
    assert!(
        stdout.contains("mode=600"),
        "token file mode: {stdout}\n{log}"
    );
    assert!(stdout.contains("ctl=0"), "ctl failed: {stdout}\n{log}");
    assert!(
        stdout.contains("\"width\": 640"),
        "no display info: {stdout}"
    );
    assert!(
        stdout.contains("deskd=0"),
        "deskd did not stop cleanly: {stdout}\n{log}"
    );
}
