//! Getting the repository password: CAIRN_PASSWORD, a file, a command, or a prompt.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use crate::cli::Global;

/// Where the password comes from, in restic's order of precedence.
pub fn password(g: &Global, confirm: bool) -> Result<Vec<u8>> {
    if let Ok(p) = std::env::var("CAIRN_PASSWORD") {
        return Ok(p.into_bytes());
    }
    if let Some(f) = &g.password_file {
        let s = std::fs::read(f).with_context(|| format!("reading password file {}", f.display()))?;
        return Ok(first_line(s));
    }
    if let Some(cmd) = &g.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running password command {cmd:?}"))?;
        if !out.status.success() {
            bail!("password command {cmd:?} failed ({}); fix it or set CAIRN_PASSWORD", out.status);
        }
        return Ok(first_line(out.stdout));
    }
    if !std::io::stderr().is_terminal() {
        bail!(
            "no password given: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND (or run in a terminal to be asked)"
        );
    }
    let p = rpassword::prompt_password("enter password for repository: ").context("reading password")?;
    if confirm {
        let again = rpassword::prompt_password("enter password again: ").context("reading password")?;
        if again != p {
            bail!("passwords do not match; run the command again");
        }
    }
    if p.is_empty() {
        bail!("empty password; run the command again with a password");
    }
    Ok(p.into_bytes())
}

fn first_line(mut s: Vec<u8>) -> Vec<u8> {
    if let Some(i) = s.iter().position(|b| *b == b'\n') {
        s.truncate(i);
    }
    if s.last() == Some(&b'\r') {
        s.pop();
    }
    s
}
