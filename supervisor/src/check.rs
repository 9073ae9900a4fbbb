//! `deskd check`: validate config files and print the start plan.

use std::path::{Path, PathBuf};

/// Returns 0 when valid (plan printed), 2 when not (errors printed).
pub fn run(_configs: &[PathBuf], _conf_d: &Path, _main: &[String]) -> u8 {
    unimplemented!("deskd check")
}
