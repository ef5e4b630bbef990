//! `cairn generate`: shell completions and man pages, from the same
//! argument definitions the binary parses (clap_complete, clap_mangen), so
//! they cannot drift from the real options.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, GenerateArgs};

pub fn run(a: &GenerateArgs) -> Result<i32> {
    if let Some(shell) = a.completion {
        // Into memory first: clap_complete panics on a failed write, and a
        // closed pipe (`| head`) must be an error main ends quietly on.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut script);
        std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    }
    if let Some(dir) = &a.man {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cli = Cli::command();
        cli.build();
        write_page(dir, "cairn", &cli)?;
        for sub in cli.get_subcommands() {
            write_page(dir, &format!("cairn-{}", sub.get_name()), sub)?;
        }
    }
    Ok(0)
}

fn write_page(dir: &Path, name: &str, cmd: &clap::Command) -> Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    // Man pages are for everyone (cairn's umask 077 would make them root's
    // alone under /usr/local/share/man).
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(())
}
