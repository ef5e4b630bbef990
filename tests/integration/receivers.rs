//! Real receivers for the notification tests, on 127.0.0.1 and stopped on
//! drop: an HTTP server that records every request and answers with a
//! chosen status, and an SMTP server (Python's aiosmtpd, which `tests/run`
//! installs) that records every mail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HTTP request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// An HTTP receiver: every request recorded, each answered with `status`.
pub struct Http {
    pub port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Http {
    pub fn start(status: u16) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let mut headers = Vec::new();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim().split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        headers.push((k.trim().to_lowercase(), v.trim().to_string()));
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(Request {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into(),
                });
                let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Http { port, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests to paths starting with `prefix`.
    pub fn to(&self, prefix: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

const SMTP_SERVER: &str = r#"
import json, sys, time
from aiosmtpd.controller import Controller
class Keep:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                          "data": envelope.content.decode("utf-8", "replace")}), flush=True)
        return "250 OK"
c = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print(json.dumps({"ready": True}), flush=True)
while True:
    time.sleep(3600)
"#;

/// An SMTP receiver (no TLS, no authentication: mail from this machine).
pub struct Smtp {
    pub port: u16,
    child: Child,
    mails: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Smtp {
    pub fn start() -> Smtp {
        let port = closed_port();
        let mut child = Command::new("python3")
            .args(["-u", "-c", SMTP_SERVER, &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (tests/run installs it)");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mails = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = crossbeam_channel::bounded(1);
        let keep = mails.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["ready"] == true {
                    let _ = ready_tx.send(());
                } else {
                    keep.lock().unwrap().push(v);
                }
            }
        });
        ready.recv_timeout(Duration::from_secs(30)).expect("aiosmtpd did not start");
        Smtp { port, child, mails }
    }

    /// The mails received so far; waits up to `wait` for at least `n`.
    pub fn mails(&self, n: usize, wait: Duration) -> Vec<serde_json::Value> {
        let until = Instant::now() + wait;
        loop {
            let got = self.mails.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
