//! `deskd run`: wires config, the supervisor and the HTTP server together.

use std::path::PathBuf;

/// Options of `deskd run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub configs: Vec<PathBuf>,
    pub conf_d: PathBuf,
    pub listen: Option<String>,
    pub main: Vec<String>,
}

/// Runs until stopped; returns deskd's exit code.
pub fn run(_opts: RunOptions) -> u8 {
    unimplemented!("deskd run")
}
