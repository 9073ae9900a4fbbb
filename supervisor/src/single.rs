//! tini-compatible single-command mode: `deskd -- CMD [ARGS...]`.

/// Runs `cmd` as the only child; returns deskd's exit code.
pub fn run(_cmd: &[String]) -> u8 {
    unimplemented!("single-command mode")
}
