//! `cairn key`: list, add, remove key files; change the password; rotate
//! the encryption key.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use cairn_format::KeyId;

use crate::cli::{Global, KeyAction, NewPasswordArgs};
use crate::output::{local_time, table};

/// The new password: `--new-password-file`, `CAIRN_NEW_PASSWORD`, or asked twice.
fn new_password(a: &NewPasswordArgs) -> Result<Vec<u8>> {
    let p = if let Some(f) = &a.new_password_file {
        let s = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        s.lines().next().unwrap_or_default().to_string()
    } else if let Ok(p) = std::env::var("CAIRN_NEW_PASSWORD") {
        p
    } else if std::io::stderr().is_terminal() {
        let p = rpassword::prompt_password("enter the new password: ").context("reading password")?;
        if rpassword::prompt_password("enter it again: ").context("reading password")? != p {
            bail!("passwords do not match; run the command again");
        }
        p
    } else {
        bail!("no new password given: use --new-password-file or CAIRN_NEW_PASSWORD (or run in a terminal)");
    };
    if p.is_empty() {
        bail!("empty new password; give a real one");
    }
    Ok(p.into_bytes())
}

fn user() -> String {
    std::env::var("USER").unwrap_or_default()
}

pub fn run(g: &Global, action: &KeyAction) -> Result<i32> {
    let mut repo = super::open(g)?;
    let host = super::backup::hostname();
    match action {
        KeyAction::List => {
            let keys = repo.keys()?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "current": k.id == repo.key_id(), "created": k.file.created,
                            "hostname": k.file.hostname, "username": k.file.username,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            format!("{}{}", if k.id == repo.key_id() { "*" } else { " " }, k.id.short()),
                            local_time(k.file.created),
                            k.file.hostname.clone(),
                            k.file.username.clone(),
                        ]
                    })
                    .collect();
                table(&[" ID", "Created", "Host", "User"], &rows)?;
            }
        }
        KeyAction::Add(a) => {
            let id = repo.add_key(&new_password(a)?, None, &host, &user())?;
            report(g, "added key", id)?;
        }
        KeyAction::Remove { id, force } => {
            let keys = repo.keys()?;
            let hits: Vec<KeyId> =
                keys.iter().map(|k| k.id).filter(|k| k.to_hex().starts_with(&id.to_ascii_lowercase())).collect();
            let [one] = hits.as_slice() else {
                bail!("key {id:?} matches {} keys: give more of its id (see `cairn key list`)", hits.len());
            };
            repo.remove_key(one, *force)?;
            report(g, "removed key", *one)?;
        }
        KeyAction::Passwd(a) => {
            let id = repo.change_password(&new_password(a)?, &host, &user())?;
            report(g, "password changed; new key", id)?;
        }
        KeyAction::Rotate { remove_other_keys } => {
            let password = crate::password::password(g, false)?;
            let r = repo.rotate_key(&password, *remove_other_keys)?;
            if g.json {
                let v = serde_json::json!({
                    "epoch": r.epoch, "key": r.key, "keys_removed": r.keys_removed,
                    "index_files": r.index_files, "snapshots": r.snapshots,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if !g.quiet {
                println!(
                    "rotated to key epoch {}: new key {}, {} other key(s) removed, config, {} index file(s) and {} \
                     snapshot(s) re-encrypted (snapshot ids changed)",
                    r.epoch,
                    r.key.map(|k| k.short()).unwrap_or_default(),
                    r.keys_removed,
                    r.index_files,
                    r.snapshots
                );
                println!(
                    "packs written before keep the old epoch: `cairn prune --reencrypt` rewrites them under the new one"
                );
            }
        }
    }
    Ok(0)
}

fn report(g: &Global, what: &str, id: KeyId) -> Result<()> {
    if g.json {
        println!("{}", serde_json::json!({ "id": id }));
    } else if !g.quiet {
        println!("{what} {}", id.short());
    }
    Ok(())
}
