//! Test harness: a temporary repository, the cairn binary, tree comparison.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder with a repository path and the binary.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
}

/// Defines a test with a fresh `Env`.
#[macro_export]
macro_rules! cairn_test {
    ($name:ident, |$env:ident| $body:block) => {
        #[test]
        fn $name() {
            let $env = $crate::util::Env::new();
            $body
        }
    };
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `cairn` with the repository and password set, nothing else inherited.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CAIRN_") {
                c.env_remove(k);
            }
        }
        c.env("CAIRN_REPOSITORY", &self.repo)
            .env("CAIRN_PASSWORD", "correct horse")
            .env("CAIRN_CACHE_DIR", self.path("cache"));
        c
    }

    /// Runs cairn with args; returns the output without judging it.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run cairn")
    }

    /// Runs cairn as the unprivileged user 65534 when the tests run as root
    /// (`setpriv`, util-linux), as the current user otherwise; the test
    /// makes what it needs accessible to that user.
    pub fn run_unprivileged(&self, args: &[&str]) -> Output {
        let mut c = if nix::unistd::geteuid().is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_cairn")]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_cairn"))
        };
        c.env("CAIRN_REPOSITORY", &self.repo)
            .env("CAIRN_PASSWORD", "correct horse")
            .env("CAIRN_CACHE_DIR", self.path("cache"))
            .args(args)
            .output()
            .expect("run cairn")
    }

    /// Runs cairn and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("cairn {args:?}"), self.run(args))
    }

    /// Runs cairn with --json and parses stdout: one JSON document, or for
    /// line-by-line output (a long backup's status lines) the last line.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        // Global flags go first: after `--` everything belongs to a command.
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .or_else(|_| serde_json::from_str(out.trim_end().lines().last().unwrap_or_default()))
            .expect("valid JSON")
    }

    /// Creates the repository with cheap key derivation; chunk sizes as given (KiB).
    pub fn init_with(&self, chunk: Option<(u32, u32, u32)>) {
        let mut args =
            vec!["init".to_string(), "--kdf-memory-mib".into(), "1".into(), "--kdf-iterations".into(), "1".into()];
        if let Some((min, avg, max)) = chunk {
            args.extend([
                "--chunk-min-kib".into(),
                min.to_string(),
                "--chunk-avg-kib".into(),
                avg.to_string(),
                "--chunk-max-kib".into(),
                max.to_string(),
                "--pack-size-mib".into(),
                "1".into(),
            ]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&a);
    }

    /// Small chunks and packs, so small test data spans many of each.
    pub fn init(&self) {
        self.init_with(Some((4, 16, 64)));
    }

    /// Total bytes of all files in the repository.
    pub fn repo_size(&self) -> u64 {
        files_under(&self.repo).iter().map(|p| p.metadata().map(|m| m.len()).unwrap_or(0)).sum()
    }

    /// Repository files of one folder (`data`, `index`, `snapshots`, ...).
    pub fn repo_files(&self, folder: &str) -> Vec<PathBuf> {
        files_under(&self.repo.join(folder))
    }
}

/// All regular files below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Compares two trees: types, content, mode, mtime (not for dirs' atime),
/// symlink targets, user xattrs, and hard-link groups. Panics with the first
/// difference.
pub fn assert_same_tree(src: &Path, dst: &Path) {
    let mut links_src: HashMap<u64, PathBuf> = HashMap::new();
    let mut links_dst: HashMap<u64, PathBuf> = HashMap::new();
    compare(src, dst, Path::new(""), &mut links_src, &mut links_dst);
}

fn compare(src: &Path, dst: &Path, rel: &Path, ls: &mut HashMap<u64, PathBuf>, ld: &mut HashMap<u64, PathBuf>) {
    let a = src.join(rel);
    let b = dst.join(rel);
    let ma = a.symlink_metadata().unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let mb = b.symlink_metadata().unwrap_or_else(|e| panic!("missing in restore: {} ({e})", b.display()));
    assert_eq!(ma.file_type(), mb.file_type(), "type of {}", rel.display());
    // The roots are the source folder and the restore target, which gets the
    // folder's contents, not its metadata.
    let is_root = rel.as_os_str().is_empty();
    if !ma.file_type().is_symlink() && !is_root {
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", rel.display());
    }
    if !is_root {
        assert_eq!((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()), "mtime of {}", rel.display());
        // Only root can give files away; as anyone else, restored files are ours.
        if nix::unistd::geteuid().is_root() {
            assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "owner of {}", rel.display());
        }
    }
    if ma.is_file() {
        assert_eq!(std::fs::read(&a).expect("read"), std::fs::read(&b).expect("read"), "content of {}", rel.display());
        if ma.nlink() > 1 {
            let first_a = ls.entry(ma.ino()).or_insert_with(|| rel.to_path_buf()).clone();
            let first_b = ld.entry(mb.ino()).or_insert_with(|| rel.to_path_buf()).clone();
            assert_eq!(first_a, first_b, "hard-link group of {}", rel.display());
        }
    }
    if ma.file_type().is_symlink() {
        assert_eq!(std::fs::read_link(&a).expect("link"), std::fs::read_link(&b).expect("link"));
    }
    if !ma.file_type().is_symlink() {
        let xa: Vec<_> = xattr::list(&a).map(|l| l.collect()).unwrap_or_default();
        for name in xa {
            assert_eq!(
                xattr::get(&a, &name).ok().flatten(),
                xattr::get(&b, &name).ok().flatten(),
                "xattr {name:?} of {}",
                rel.display()
            );
        }
    }
    if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(p).expect("list").map(|e| e.expect("entry").file_name()).collect();
            v.sort();
            v
        };
        let na = names(&a);
        assert_eq!(na, names(&b), "entries of {}", rel.display());
        for n in na {
            compare(src, dst, &rel.join(n), ls, ld);
        }
    }
}

/// Asserts that a run of cairn (`what`) succeeded; returns its stdout.
pub fn succeeded(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `init` with cheap key derivation and 1 MiB packs, so small test data
/// spans several packs.
pub const INIT_SMALL: &[&str] = &["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1", "--pack-size-mib", "1"];

/// File names and contents of one source tree.
pub type Files = Vec<(String, Vec<u8>)>;

/// Writes `n` files of fresh random content (seeded by `round`) plus a
/// shared file; returns the tree's contents by name.
pub fn write_round(dir: &std::path::Path, round: u64, n: usize, size: usize) -> Files {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut files = vec![("shared".to_string(), random_bytes(200_000, 4242))];
    for i in 0..n {
        files.push((format!("f{i}"), random_bytes(size, round * 1000 + i as u64)));
    }
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    files
}

/// Restores `src` of snapshot `id` and compares every file with `want`.
pub fn assert_restores(env: &Env, id: &str, src: &std::path::Path, want: &[(String, Vec<u8>)]) {
    let target = env.path(&format!("restore-{id}"));
    let _ = std::fs::remove_dir_all(&target);
    env.ok(&["restore", &format!("{id}:{}", src.display()), "--target", target.to_str().unwrap()]);
    for (name, data) in want {
        assert!(std::fs::read(target.join(name)).unwrap() == *data, "snapshot {id}: {name} restores exactly");
    }
    std::fs::remove_dir_all(&target).unwrap();
}

/// Copies a folder with `cp -a` (a pristine repository to start again from).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}
