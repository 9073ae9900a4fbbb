//! Runs the viewer's JavaScript unit tests (`supervisor/assets/viewer/test/*.test.mjs`) with
//! `node --test`, so `cargo test` covers the page's pure logic: keysym mapping, letterbox
//! coordinates, the data channel's binary encoding byte for byte, cursor parsing, backoff,
//! input state, touch gestures and the signaling sequence. Node is required (CI installs it):
//! a missing `node` fails this test rather than skipping it.

use std::path::Path;
use std::process::Command;

#[test]
fn viewer_javascript_unit_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/viewer/test");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the viewer test files in {}, found {files:?}",
        dir.display()
    );

    let out = Command::new("node")
        .arg("--test")
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("running `node --test` (is Node.js 18+ installed?): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node --test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Guard against a runner that found nothing to run.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed >= 50,
        "only {passed} JavaScript tests passed:\n{stdout}"
    );
    println!("{passed} viewer JavaScript tests passed");
}
