//! `cairn init`: create a repository.

use anyhow::Result;
use cairn_chunk::ChunkerParams;
use cairn_crypto::KdfParams;
use cairn_repo::{InitOptions, Repository};

use crate::cli::{Global, InitArgs};

pub fn run(g: &Global, a: &InitArgs) -> Result<i32> {
    // The password first: a refused one must not leave an empty folder behind.
    let pw = crate::password::password(g, true)?;
    let backend = super::backend_for(g, super::Create::Allowed)?;
    let opts = InitOptions {
        chunker: ChunkerParams {
            min_size: a.chunk_min_kib.saturating_mul(1024),
            avg_size: a.chunk_avg_kib.saturating_mul(1024),
            max_size: a.chunk_max_kib.saturating_mul(1024),
        },
        compression_level: a.compression,
        pack_size: a.pack_size_mib.saturating_mul(1024 * 1024),
        kdf: KdfParams {
            memory_kib: a.kdf_memory_mib.saturating_mul(1024),
            iterations: a.kdf_iterations,
            parallelism: KdfParams::default().parallelism,
        },
        hostname: crate::commands::backup::hostname(),
        username: std::env::var("USER").unwrap_or_default(),
    };
    let repo = Repository::init(backend, &pw, &opts)?;
    if g.json {
        println!("{}", serde_json::json!({ "id": repo.config().id, "location": repo.location() }));
    } else if !g.quiet {
        println!("created cairn repository {} at {}", repo.config().id.short(), repo.location());
        println!("keep the password safe: without it the data cannot be recovered");
    }
    Ok(crate::errors::EXIT_OK)
}
