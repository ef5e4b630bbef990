//! Nothing readable in the repository: names, content, chunk sizes.

use crate::cairn_test;
use crate::util::files_under;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

cairn_test!(no_plaintext_names_content_or_chunk_sizes_in_repository, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("Confidential_Salaries_Folder")).unwrap();
    let content = "PLAINTEXT-MARKER-7f3a: the payroll of 2026 is 1,234,567\n".repeat(2000);
    std::fs::write(src.join("Confidential_Salaries_Folder/payroll_secret_2026.csv"), &content).unwrap();
    std::fs::write(src.join("tiny_unique_name.txt"), "tiny PLAINTEXT-MARKER-7f3a").unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap(), "--tag", "hr-sensitive-tag"]);
    env.ok(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "customers_dump.sql",
        "--",
        "echo",
        "INSERT PLAINTEXT-MARKER-7f3a",
    ]);

    // Chunk lengths as a pack header holds them (length, raw length), from
    // the decrypted index: their byte encoding must appear nowhere.
    let mut size_pairs: Vec<Vec<u8>> = Vec::new();
    for idx in env.repo_files("index") {
        let id = idx.file_name().unwrap().to_str().unwrap().to_string();
        let v = env.json(&["cat", "index", &id]);
        for p in v["packs"].as_array().unwrap() {
            for b in p["blobs"].as_array().unwrap() {
                let mut pair = (b["length"].as_u64().unwrap() as u32).to_le_bytes().to_vec();
                pair.extend_from_slice(&(b["raw_length"].as_u64().unwrap() as u32).to_le_bytes());
                size_pairs.push(pair);
            }
        }
    }
    assert!(!size_pairs.is_empty());

    let needles: [&[u8]; 7] = [
        b"PLAINTEXT-MARKER",
        b"payroll",
        b"Confidential_Salaries",
        b"tiny_unique_name",
        b"customers_dump",
        b"hr-sensitive-tag",
        src.to_str().unwrap().as_bytes(),
    ];
    let files = files_under(&env.repo);
    assert!(files.len() > 5);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for n in needles {
            assert!(!contains(&bytes, n), "{} contains {:?}", f.display(), String::from_utf8_lossy(n));
        }
        for pair in &size_pairs {
            assert!(!contains(&bytes, pair), "{} reveals a chunk size", f.display());
        }
    }
});
