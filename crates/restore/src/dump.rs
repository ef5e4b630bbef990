//! Writing one file's content from a snapshot to a writer (`cairn dump`).

use std::io::Write;

use cairn_format::tree::{Node, NodeKind};
use cairn_repo::IndexedRepository;

use crate::RestoreError;

/// Streams the content of a file node to `out`, verifying every blob.
pub fn dump(repo: &IndexedRepository, node: &Node, out: &mut dyn Write) -> Result<u64, RestoreError> {
    if node.kind != NodeKind::File {
        return Err(RestoreError::NotAFile(node.name.display().into_owned()));
    }
    let mut n = 0u64;
    for id in &node.content {
        let data = repo.read_blob(id)?;
        out.write_all(&data).map_err(RestoreError::Output)?;
        n += data.len() as u64;
    }
    out.flush().map_err(RestoreError::Output)?;
    Ok(n)
}
