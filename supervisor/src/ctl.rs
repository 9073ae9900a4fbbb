//! `deskd ctl`: the agent API from a shell inside the container.

/// Arguments of `deskd ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {}

/// Runs one ctl command; returns the exit code.
pub fn run(_args: CtlArgs) -> u8 {
    unimplemented!("deskd ctl")
}
