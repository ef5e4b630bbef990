//! A real browser for the dashboard's tests: Debian's headless Chromium,
//! driven over the DevTools protocol (a WebSocket on 127.0.0.1) as a
//! user would use it: open a page, wait for what it shows, click, save a
//! download, take a screenshot.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A running headless Chromium with one page, ended when dropped.
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium with its profile in `dir` and opens a blank page.
    pub fn start(dir: &Path) -> Browser {
        let mut child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
            .args(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", dir.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium (tests/run installs Debian's package)");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut url = None;
        let mut line = String::new();
        while url.is_none() && err.read_line(&mut line).unwrap_or(0) > 0 {
            url = line.split_once("DevTools listening on ").map(|(_, u)| u.trim().to_string());
            line.clear();
        }
        let url = url.expect("chromium said where its DevTools listen");
        // Keep reading, so a chatty browser never blocks on a full pipe.
        std::thread::spawn(move || for _ in err.lines() {});
        let (ws, _) = tungstenite::connect(url.as_str()).expect("connect to chromium");
        let mut b = Browser { child, ws, next: 0, session: String::new() };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }))["targetId"].clone();
        let session = b.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }));
        b.session = session["sessionId"].as_str().unwrap().to_string();
        b.page("Page.enable", json!({}));
        b
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if session {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::Text(msg.to_string().into())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().expect("chromium answers") else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// A browser-wide command.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
    }

    /// A command to the page.
    pub fn page(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    /// Opens `url` in the page.
    pub fn goto(&mut self, url: &str) {
        self.page("Page.navigate", json!({ "url": url }));
    }

    /// The value of JavaScript `expr` in the page (promises awaited).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r =
            self.page("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }));
        assert!(r["exceptionDetails"].is_null(), "{expr}: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page; panics with `what` after 20 s.
    pub fn wait_for(&mut self, expr: &str, what: &str) {
        let until = Instant::now() + Duration::from_secs(20);
        // Before the page is there, the expression may throw: not yet.
        let test = format!("(() => {{ try {{ return !!({expr}); }} catch (e) {{ return false; }} }})()");
        while self.eval(&test) != json!(true) {
            let error = self.eval("(document.querySelector('#error') || {}).textContent");
            assert!(Instant::now() < until, "the page never showed {what} (its error line: {error})");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lets downloads land in `dir` under their own names.
    pub fn downloads_to(&mut self, dir: &Path) {
        self.call("Browser.setDownloadBehavior", json!({ "behavior": "allow", "downloadPath": dir }));
    }

    /// The page's width and height as a screen of `width` x `height`
    /// (`mobile` as a phone does).
    pub fn screen(&mut self, width: u32, height: u32, mobile: bool) {
        let params = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile });
        self.page("Emulation.setDeviceMetricsOverride", params);
    }

    /// A PNG of the page as shown (the whole page, not only the window).
    pub fn screenshot(&mut self, to: &Path) {
        use base64::Engine;
        let shot = self.page("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }));
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}
