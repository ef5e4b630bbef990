//! The repository config: parameters fixed at init (docs/FORMAT.md, "Config").

use serde::{Deserialize, Serialize};

use crate::{FormatError, RepoId};

/// Chunk size bounds as stored (see `cairn_chunk::ChunkerParams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerConfig {
    /// Minimum chunk size in bytes.
    pub min_size: u32,
    /// Average chunk size in bytes (a power of two).
    pub avg_size: u32,
    /// Maximum chunk size in bytes.
    pub max_size: u32,
}

impl From<ChunkerConfig> for cairn_chunk::ChunkerParams {
    fn from(c: ChunkerConfig) -> Self {
        Self { min_size: c.min_size, avg_size: c.avg_size, max_size: c.max_size }
    }
}

impl From<cairn_chunk::ChunkerParams> for ChunkerConfig {
    fn from(c: cairn_chunk::ChunkerParams) -> Self {
        Self { min_size: c.min_size, avg_size: c.avg_size, max_size: c.max_size }
    }
}

/// Default target size of a pack file: 16 MiB.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
/// Default zstd level: 1. On the benchmark dataset level 3 made the
/// repository 1% smaller (the SQL dump 3.5%) for 25-30% more backup CPU
/// (docs/BENCHMARKS.md, "Compression level").
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 1;

/// The decrypted `config` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version.
    pub version: u32,
    /// Random repository id.
    pub id: RepoId,
    /// When the repository was created.
    pub created: jiff::Timestamp,
    /// Chunker parameters for file content.
    pub chunker: ChunkerConfig,
    /// zstd level; 0 disables compression.
    pub compression_level: i32,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
    /// Data packs live in a separate cold location (docs/STORAGE.md); the
    /// repository cannot be used without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold_data: bool,
}

impl Config {
    /// Encodes as JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes, checks the version and the parameters.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let c: Config = serde_json::from_slice(buf)?;
        crate::check_version(c.version)?;
        cairn_chunk::ChunkerParams::from(c.chunker)
            .validate()
            .map_err(|_| FormatError::Invalid("chunker parameters"))?;
        if !(1024..=1 << 30).contains(&c.pack_size) || !(0..=22).contains(&c.compression_level) {
            return Err(FormatError::Invalid("pack size or compression level out of range"));
        }
        Ok(c)
    }
}
