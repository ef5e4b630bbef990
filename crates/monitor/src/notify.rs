//! Telling people: the channels a config names (a webhook with a
//! Slack-compatible `text`, email over SMTP, ntfy, healthchecks-style ping
//! URLs) and the delivery of one message to each, with retries and
//! backoff. Delivery never fails a run: the caller gets each channel's
//! result to report, and the run's outcome stays what it was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What happened, as channels are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A run failed.
    Failure,
    /// A snapshot was written but some sources could not be read.
    Warning,
    /// A run succeeded (opt-in).
    Success,
    /// A run started (opt-in; pings always get it).
    Start,
    /// The newest good snapshot is older than the job's RPO.
    Stale,
    /// A good snapshot again after `stale`.
    Fresh,
    /// A run took longer than the job's threshold.
    Slow,
    /// A run added more than the job's threshold over the recent median.
    Growth,
    /// A local repository's file system is short of free space.
    LowSpace,
    /// A check found damage.
    Damage,
    /// A restore drill failed or took longer than the job's RTO.
    DrillFailed,
    /// `cairn notify test`.
    Test,
}

impl Event {
    /// The events a channel gets unless it lists its own: everything that
    /// needs a person, and the all-clear after `stale`.
    pub const DEFAULT: &'static [Event] = &[
        Event::Failure,
        Event::Warning,
        Event::Stale,
        Event::Fresh,
        Event::Slow,
        Event::Growth,
        Event::LowSpace,
        Event::Damage,
        Event::DrillFailed,
    ];

    /// Its name in messages and the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Warning => "warning",
            Event::Success => "success",
            Event::Start => "start",
            Event::Stale => "stale",
            Event::Fresh => "fresh",
            Event::Slow => "slow",
            Event::Growth => "growth",
            Event::LowSpace => "low-space",
            Event::Damage => "damage",
            Event::DrillFailed => "drill-failed",
            Event::Test => "test",
        }
    }

    /// Whether it says something is wrong.
    pub fn is_bad(self) -> bool {
        !matches!(self, Event::Success | Event::Start | Event::Fresh | Event::Test)
    }
}

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// An HTTP POST of a JSON body.
    Webhook,
    /// Mail over SMTP.
    Email,
    /// A POST to an ntfy topic URL.
    Ntfy,
    /// Healthchecks-style pings: `URL/start`, `URL`, `URL/fail`.
    Ping,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS on the submission port (587 unless given).
    #[default]
    Starttls,
    /// TLS from the start (465 unless given).
    Tls,
    /// None: for a relay on this machine only (25 unless given).
    None,
}

/// `[notify.NAME]`: one channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Channel {
    /// What it is.
    pub kind: ChannelKind,
    /// The webhook, ntfy topic or ping URL.
    pub url: Option<String>,
    /// Extra HTTP headers (webhook).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A file holding a bearer token (ntfy, webhook).
    pub token_file: Option<PathBuf>,
    /// The events it gets (default [`Event::DEFAULT`]; pings get start,
    /// success, warning and failure whatever this says).
    pub events: Option<Vec<Event>>,
    /// SMTP server (email).
    pub server: Option<String>,
    /// SMTP port.
    pub port: Option<u16>,
    /// SMTP protection.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// SMTP user.
    pub user: Option<String>,
    /// A file holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// Sender address.
    pub from: Option<String>,
    /// Recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Attempts after the first (default 3), waiting 1, 2, 4... s between.
    pub retries: Option<u32>,
    /// Seconds one attempt may take (default 10).
    pub timeout: Option<u64>,
}

impl Channel {
    /// Why the channel cannot work as written, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let needs = |what: &str, v: bool| (!v).then(|| format!("a {:?} channel needs `{what}`", self.kind));
        match self.kind {
            ChannelKind::Webhook | ChannelKind::Ntfy | ChannelKind::Ping => {
                if let Some(p) = needs("url", self.url.is_some()) {
                    return Some(p.to_lowercase());
                }
                let url = self.url.as_deref().unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Some(format!("url {url:?}: give an http:// or https:// URL"));
                }
                None
            }
            ChannelKind::Email => {
                if self.server.is_none() || self.from.is_none() || self.to.is_empty() {
                    return Some("an email channel needs `server`, `from` and `to`".into());
                }
                if self.user.is_some() != self.password_file.is_some() {
                    return Some("give both `user` and `password-file`, or neither".into());
                }
                let local = matches!(self.server.as_deref(), Some("localhost" | "127.0.0.1" | "::1"));
                if self.security == SmtpSecurity::None && self.user.is_some() && !local {
                    return Some(
                        "`security = \"none\"` would send the password in clear text: use starttls or tls".into(),
                    );
                }
                for a in self.to.iter().chain(self.from.iter()) {
                    if a.parse::<lettre::message::Mailbox>().is_err() {
                        return Some(format!("{a:?} is not a mail address"));
                    }
                }
                None
            }
        }
    }

    /// Whether it gets `event`.
    pub fn wants(&self, event: Event) -> bool {
        match self.kind {
            ChannelKind::Ping => {
                matches!(event, Event::Start | Event::Success | Event::Warning | Event::Failure | Event::Test)
            }
            _ => event == Event::Test || self.events.as_deref().unwrap_or(Event::DEFAULT).contains(&event),
        }
    }
}

/// One message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// What happened.
    pub event: Event,
    /// The job (empty for a test).
    pub job: String,
    /// One line: what happened to what.
    pub title: String,
    /// More: figures, the error, the last lines of the log.
    pub body: String,
    /// When.
    pub time: Timestamp,
    /// The host that sends it.
    pub host: String,
}

/// A channel could not be told.
#[derive(Debug, thiserror::Error)]
#[error("notification {event} to channel {channel} not delivered after {attempts} attempt(s): {why}")]
pub struct NotifyError {
    /// The channel's name.
    pub channel: String,
    /// The event.
    pub event: &'static str,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub why: String,
}

/// Sends `msg` on channel `name`, retrying with backoff.
pub fn send(name: &str, channel: &Channel, msg: &Message) -> Result<(), NotifyError> {
    let retries = channel.retries.unwrap_or(3);
    let mut wait = Duration::from_secs(1);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match send_once(channel, msg) {
            Ok(()) => return Ok(()),
            Err(why) if attempts > retries => {
                return Err(NotifyError { channel: name.to_string(), event: msg.event.as_str(), attempts, why });
            }
            Err(_) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Sends `msg` on every channel that wants it; the failures.
pub fn send_all<'a>(channels: impl IntoIterator<Item = (&'a String, &'a Channel)>, msg: &Message) -> Vec<NotifyError> {
    // One thread per channel: a slow receiver delays no other.
    std::thread::scope(|s| {
        let sending: Vec<_> = channels
            .into_iter()
            .filter(|(_, c)| c.wants(msg.event))
            .map(|(name, c)| s.spawn(move || send(name, c, msg)))
            .collect();
        sending.into_iter().filter_map(|h| h.join().ok().and_then(Result::err)).collect()
    })
}

fn secret(file: &Option<PathBuf>) -> Result<Option<String>, String> {
    file.as_ref()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|s| s.lines().next().unwrap_or_default().to_string())
                .map_err(|e| format!("reading {}: {e}", f.display()))
        })
        .transpose()
}

fn send_once(channel: &Channel, msg: &Message) -> Result<(), String> {
    let timeout = Duration::from_secs(channel.timeout.unwrap_or(10));
    if channel.kind == ChannelKind::Email {
        return email(channel, msg, timeout);
    }
    let http =
        reqwest::blocking::Client::builder().timeout(timeout).build().map_err(|e| e.without_url().to_string())?;
    let url = channel.url.clone().unwrap_or_default();
    let token = secret(&channel.token_file)?;
    let request = match channel.kind {
        ChannelKind::Webhook => {
            let body = serde_json::json!({
                "text": format!("{}\n{}", msg.title, msg.body).trim_end(),
                "event": msg.event.as_str(),
                "job": msg.job,
                "title": msg.title,
                "body": msg.body,
                "time": msg.time.to_string(),
                "host": msg.host,
            });
            let mut r = http.post(&url).header("content-type", "application/json").body(body.to_string());
            for (k, v) in &channel.headers {
                r = r.header(k, v);
            }
            r
        }
        ChannelKind::Ntfy => http
            .post(&url)
            .header("Title", &msg.title)
            .header("Priority", if msg.event.is_bad() { "high" } else { "default" })
            .header("Tags", msg.event.as_str())
            .body(msg.body.clone()),
        ChannelKind::Ping => {
            let url = url.trim_end_matches('/');
            let url = match msg.event {
                Event::Start => format!("{url}/start"),
                Event::Failure => format!("{url}/fail"),
                _ => url.to_string(),
            };
            http.post(url).body(format!("{}\n{}", msg.title, msg.body))
        }
        ChannelKind::Email => unreachable!("handled above"),
    };
    let request = match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    };
    // Without the URL: a webhook's or ping's URL is often its secret
    // (Slack, healthchecks), and this message goes to logs.
    let response = request.send().map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("the receiver answered {}", response.status()));
    }
    Ok(())
}

fn email(channel: &Channel, msg: &Message, timeout: Duration) -> Result<(), String> {
    use lettre::Transport;
    use lettre::transport::smtp::SmtpTransport;
    use lettre::transport::smtp::authentication::Credentials;
    let server = channel.server.as_deref().unwrap_or_default();
    let builder = match channel.security {
        SmtpSecurity::Starttls => SmtpTransport::starttls_relay(server).map_err(|e| e.to_string())?,
        SmtpSecurity::Tls => SmtpTransport::relay(server).map_err(|e| e.to_string())?,
        SmtpSecurity::None => SmtpTransport::builder_dangerous(server).port(25),
    };
    let mut builder = builder.timeout(Some(timeout));
    if let Some(port) = channel.port {
        builder = builder.port(port);
    }
    if let (Some(user), Some(password)) = (&channel.user, secret(&channel.password_file)?) {
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    let mut mail = lettre::Message::builder()
        .from(channel.from.as_deref().unwrap_or_default().parse().map_err(|e| format!("from: {e}"))?)
        .subject(format!("cairn on {}: {}", msg.host, msg.title));
    for to in &channel.to {
        mail = mail.to(to.parse().map_err(|e| format!("to {to}: {e}"))?);
    }
    let mail = mail.body(format!("{}\n\n{}\n", msg.title, msg.body)).map_err(|e| e.to_string())?;
    builder.build().send(&mail).map_err(|e| e.to_string())?;
    Ok(())
}
