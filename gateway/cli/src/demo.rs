//! `gerbang demo`: the whole stack on this machine with a guided tour.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

pub fn run(_config: &Path) -> Result<ExitCode> {
    anyhow::bail!("the demo is being written")
}
