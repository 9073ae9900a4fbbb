//! Link flags of the `deskd` binary that shrink what PID 1 keeps resident (issue 2 §4: idle
//! memory of `deskd -- CMD` against tini). Only the binary is affected, never the library,
//! the tests or the dependencies, so no crate is rebuilt for them. Both keep PIE and full
//! RELRO (`-z relro -z now`, which rustc passes) as they are.
//!
//! - `-z pack-relative-relocs` (DT_RELR): a PIE's relative relocations as a bitmap instead
//!   of 24-byte RELA entries. deskd has about 18 000 of them: `.rela.dyn` goes from 432 KB,
//!   which the dynamic loader reads in full at every start, to about 9 KB. Needs glibc 2.36
//!   (Debian 12, current nixpkgs) and binutils 2.38 or lld 15.
//! - libgcc's unwinder (`libgcc_eh.a`) linked in instead of loading `libgcc_s.so.1`: std
//!   only needs it for backtraces (panics abort), and a whole shared library mapped and
//!   relocated for that costs about 100 KB resident in every deskd process.
//!
//! Set `DESKD_PLAIN_LINK=1` to build without them (e.g. for a toolchain that lacks one).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DESKD_PLAIN_LINK");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let plain = env::var_os("DESKD_PLAIN_LINK").is_some_and(|v| v == "1");
    if os != "linux" || target_env != "gnu" || plain {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--push-state,--whole-archive,-Bstatic,-lgcc_eh,--pop-state"
    );
}
