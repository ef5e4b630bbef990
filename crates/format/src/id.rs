//! Typed 32-byte ids (docs/FORMAT.md, "Ids"). Each kind of object has its own
//! type so a pack id cannot be passed where a blob id is expected.

use std::fmt;
use std::str::FromStr;

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

/// A string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a valid id (64 hex digits expected): {0:?}")]
pub struct ParseIdError(pub String);

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; ID_LEN]);

        impl $name {
            /// Wraps raw id bytes.
            pub const fn from_bytes(b: [u8; ID_LEN]) -> Self {
                Self(b)
            }
            /// The raw id bytes.
            pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
            /// Lower-case hex, 64 digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, as shown in tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                let mut b = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut b).map_err(|_| ParseIdError(s.to_string()))?;
                Ok(Self(b))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// Keyed BLAKE3 of a blob's plaintext.
    BlobId
);
define_id!(
    /// BLAKE3 of a pack file's bytes.
    PackId
);
define_id!(
    /// BLAKE3 of an index file's bytes.
    IndexId
);
define_id!(
    /// BLAKE3 of a snapshot file's bytes.
    SnapshotId
);
define_id!(
    /// BLAKE3 of a key file's bytes.
    KeyId
);
define_id!(
    /// Random id of a repository, chosen at init (names its cache).
    RepoId
);

define_id!(
    /// BLAKE3 of a deletion plan file (`deletions/<id>`).
    PlanId
);
define_id!(
    /// Random name of a run marker (`running/<id>`), chosen by its run.
    MarkerId
);

/// The unkeyed BLAKE3 hash of a stored file, which names it.
pub fn file_hash(bytes: &[u8]) -> [u8; ID_LEN] {
    *blake3::hash(bytes).as_bytes()
}

/// [`file_hash`] of a file fed in pieces.
#[derive(Default)]
pub struct FileHasher(blake3::Hasher);

impl FileHasher {
    /// Feeds the next piece.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> [u8; ID_LEN] {
        *self.0.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_in_pieces_equals_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = FileHasher::default();
        for piece in data.chunks(3000) {
            h.update(piece);
        }
        assert_eq!(h.finish(), file_hash(&data));
        assert_ne!(FileHasher::default().finish(), file_hash(&data));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = BlobId::from_bytes([0xab; 32]);
        assert_eq!(id.to_hex().parse::<BlobId>().ok(), Some(id));
        assert_eq!(id.short(), "abababab");
        assert!("xyz".parse::<BlobId>().is_err());
        assert!("ab".parse::<BlobId>().is_err());
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(serde_json::from_str::<BlobId>(&json).ok(), Some(id));
    }
}
