//! Real storage servers for the remote tests, each on a free port of
//! 127.0.0.1 and stopped on drop: moto_server and s3s-fs (S3), OpenSSH's
//! sshd (SFTP). `.ci/run` installs all three.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A repository on some service: the location and what reaches it.
pub struct Target {
    pub name: &'static str,
    pub repo: String,
    pub env: Vec<(String, String)>,
    /// `-o` options.
    pub options: Vec<String>,
}

impl Target {
    /// A cairn command against this target (global options first).
    pub fn cmd(&self, env: &crate::util::Env) -> Command {
        let mut c = env.cmd();
        c.env("CAIRN_REPOSITORY", &self.repo);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for o in &self.options {
            c.args(["-o", o]);
        }
        c
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    fn spawn(mut cmd: Command, port: u16, what: &str) -> Self {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({e}); .ci/run installs it"));
        let server = Server { child, port };
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what} did not start on port {port}; .ci/run installs it");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// moto_server (PyPI `moto[server]`), an in-memory S3.
    pub fn moto() -> Self {
        let port = free_port();
        let mut c = Command::new("python3");
        c.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        Self::spawn(c, port, "moto_server")
    }

    /// s3s-fs (crates.io), an S3 server storing objects as files under
    /// `root`; each folder of `root` is a bucket.
    pub fn s3s_fs(root: &Path, buckets: &[&str]) -> Self {
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).unwrap();
        }
        let port = free_port();
        let bin = std::env::var("S3S_FS").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            let cargo_bin = format!("{home}/.cargo/bin/s3s-fs");
            if Path::new(&cargo_bin).exists() { cargo_bin } else { "s3s-fs".into() }
        });
        let mut c = Command::new(bin);
        c.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "test", "--secret-key", "test"])
            .arg(root);
        Self::spawn(c, port, "s3s-fs")
    }

    /// Creates a bucket with a plain S3 `PUT /bucket` (moto accepts it unsigned).
    pub fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    }

    /// The target for bucket/prefix on this S3 server.
    pub fn s3_target(&self, name: &'static str, bucket_and_prefix: &str) -> Target {
        Target {
            name,
            repo: format!("s3:{bucket_and_prefix}"),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("AWS_REGION".into(), "us-east-1".into()),
            ],
            options: vec![format!("s3.endpoint={}", self.endpoint())],
        }
    }

    /// OpenSSH's sshd with a fresh host key, accepting `client_key.pub`
    /// for the current user; its files live in `dir`.
    pub fn sshd(dir: &Path) -> (Self, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        // Privilege separation wants this folder (Debian creates it at boot).
        let _ = std::fs::create_dir_all("/run/sshd");
        let keygen = |file: &Path| {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(file)
                .status()
                .expect("ssh-keygen (openssh-client)")
                .success();
            assert!(ok, "ssh-keygen failed");
        };
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                dir.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        let mut c = Command::new("/usr/sbin/sshd");
        c.args(["-D", "-e", "-f"]).arg(&config);
        (Self::spawn(c, port, "sshd (openssh-server)"), client_key)
    }

    /// The target for a folder on this SSH server, as the current user.
    pub fn sftp_target(&self, name: &'static str, client_key: &Path, path: &Path) -> Target {
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into());
        Target {
            name,
            repo: format!("sftp:{user}@127.0.0.1:{}{}", self.port, path.display()),
            env: vec![],
            options: vec![format!("sftp.key={}", client_key.display()), "sftp.known_hosts=accept".into()],
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
