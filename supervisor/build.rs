//! Link flags of the `deskd` binary that shrink what PID 1 keeps resident (issue 2 §4: idle
//! memory of `deskd -- CMD` against tini). Only the binary is affected, never the library,
//! the tests or the dependencies, so no crate is rebuilt for them. All keep PIE and full
//! RELRO (`-z relro -z now`, which rustc passes) as they are.
//!
//! - `-z pack-relative-relocs` (DT_RELR): a PIE's relative relocations as a bitmap instead
//!   of 24-byte RELA entries. deskd has about 18 000 of them: `.rela.dyn` goes from 432 KB,
//!   which the dynamic loader reads in full at every start, to about 9 KB. Needs glibc 2.36
//!   (Debian 12, current nixpkgs) and binutils 2.38 or lld 15.
//! - libgcc's unwinder (`libgcc_eh.a`) linked in instead of loading `libgcc_s.so.1`: std
//!   only needs it for backtraces (panics abort), and a whole shared library mapped and
//!   relocated for that costs about 100 KB resident in every deskd process.
//! - `single-mode.order` (when the linker takes `--symbol-ordering-file`, as lld does):
//!   the few dozen functions single mode runs, placed together. The kernel maps file pages around each fault (64 KB fault-around), so single mode's code,
//!   spread over 4 MB by the linker, kept about fourteen such windows resident; placed
//!   together it needs one or two (about 0.6 MB less idle RSS). The names are specific to
//!   the toolchain and build: regenerate with `scripts/single-mode-order`. Stale names are
//!   ignored; only the gain shrinks.
//!
//! Each is passed only when a test link of an empty program with it succeeds. Set
//! `DESKD_PLAIN_LINK=1` to build without any of them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DESKD_PLAIN_LINK");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let plain = env::var_os("DESKD_PLAIN_LINK").is_some_and(|v| v == "1");
    if os != "linux" || target_env != "gnu" || plain {
        return;
    }
    let order = Path::new("single-mode.order").canonicalize().ok();
    println!("cargo:rerun-if-changed=single-mode.order");
    let mut wanted = vec![
        vec!["-Wl,-z,pack-relative-relocs".to_string()],
        vec!["-Wl,--push-state,--whole-archive,-Bstatic,-lgcc_eh,--pop-state".to_string()],
    ];
    if let Some(order) = order {
        wanted.push(vec![
            format!("-Wl,--symbol-ordering-file={}", order.display()),
            "-Wl,--no-warn-symbol-ordering".to_string(),
        ]);
    }
    // Each only if the toolchain takes it, so a different linker or a missing libgcc_eh.a
    // costs memory, never the build.
    for args in wanted {
        if linker_accepts(&args) {
            for arg in args {
                println!("cargo:rustc-link-arg-bins={arg}");
            }
        } else {
            println!("cargo:warning=deskd: the linker does not take {args:?}; linking without");
        }
    }
}

/// Whether linking an empty program with these extra link arguments works (GNU ld does not
/// know `--symbol-ordering-file`, and the toolchain's default linker may be either).
fn linker_accepts(args: &[String]) -> bool {
    let (Some(rustc), Some(out)) = (env::var_os("RUSTC"), env::var_os("OUT_DIR")) else {
        return false;
    };
    if env::var("TARGET").ok() != env::var("HOST").ok() {
        return false;
    }
    let out = PathBuf::from(out);
    let src = out.join("link_probe.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.arg("--crate-type=bin")
        .arg("--edition=2021")
        .arg("-o")
        .arg(out.join("link_probe"))
        .arg(&src);
    // Link as cargo will: the same rustflags and configured linker.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    let target = env::var("TARGET").unwrap_or_default();
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    println!("cargo:rerun-if-env-changed={linker_var}");
    if let Some(linker) = env::var_os(&linker_var) {
        cmd.arg("-C").arg({
            let mut a = std::ffi::OsString::from("linker=");
            a.push(linker);
            a
        });
    }
    for arg in args {
        cmd.arg(format!("-Clink-arg={arg}"));
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
