//! Real database servers for the job tests, started by the tests in a
//! temporary folder and reached only through a Unix socket there (never a
//! system service): PostgreSQL (initdb + postgres, run as user 65534 when
//! the tests run as root, since it refuses root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A PostgreSQL server, stopped on drop.
pub struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    /// The folder holding its socket (libpq's --host).
    pub socket: PathBuf,
}

fn pg_bin(prog: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (/usr/lib/postgresql; tests/run installs them)")
        .map(|e| e.unwrap().path().join("bin"))
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL version").join(prog)
}

/// `prog` as the server's user: 65534 when the tests run as root.
fn as_server_user(prog: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (data, socket) = (dir.path().join("data"), dir.path().join("socket"));
        for d in [&data, &socket] {
            std::fs::create_dir(d).unwrap();
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
            }
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = as_server_user(&pg_bin("initdb"))
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let child = as_server_user(&pg_bin("postgres"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-k",
                socket.to_str().unwrap(),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Postgres { child, _dir: dir, socket };
        for _ in 0..300 {
            if pg.psql("postgres", "SELECT 1").is_ok() {
                return pg;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("PostgreSQL did not start");
    }

    /// Runs SQL in database `db`; its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["--no-password", "-U", "postgres", "-h"])
            .arg(&self.socket)
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
    }
}

/// A MariaDB server, stopped on drop.
pub struct Mariadb {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its socket file.
    pub socket: PathBuf,
}

impl Mariadb {
    pub fn start() -> Mariadb {
        let dir = tempfile::tempdir().unwrap();
        let (data, socket) = (dir.path().join("data"), dir.path().join("mysqld.sock"));
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name;
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .output()
            .expect("mariadb-install-db (package mariadb-server; tests/run installs it)");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--user={user}"))
            .args(["--skip-networking", "--innodb-flush-log-at-trx-commit=0"])
            .arg(format!("--log-error={}", dir.path().join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let db = Mariadb { child, _dir: dir, socket };
        for _ in 0..600 {
            if db.sql("", "SELECT 1").is_ok() {
                return db;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("MariaDB did not start");
    }

    /// Runs SQL in database `db` (none if empty); its tab-separated output.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut c = Command::new("mariadb");
        c.arg(format!("--socket={}", self.socket.display())).args(["--user=root", "--batch", "--skip-column-names"]);
        if !db.is_empty() {
            c.arg(format!("--database={db}"));
        }
        let out = c.args(["-e", sql]).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
