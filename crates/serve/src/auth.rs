//! Who is asking. Every request but the dashboard's static files and the
//! OpenAPI document names a token: `Authorization: Bearer TOKEN`, HTTP
//! Basic with the token as the password (what WebDAV clients send), or
//! the session cookie the dashboard gets by showing a token once.
//!
//! Tokens are the config's named Argon2 hashes (`[serve.tokens]`), or,
//! when the config names none, one made for this run and written
//! owner-only to the state folder. Argon2 is slow on purpose, so a token
//! is checked against its hash once and then known by its BLAKE3 digest;
//! checks run one at a time, so a flood of wrong tokens costs one core.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Who a request came from: the name of the token it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who(pub String);

/// How a request proved who it is; a session cookie is what a browser
/// sends by itself, so only such requests need the cross-site checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A token in the request's own headers.
    Token,
    /// The dashboard's session cookie.
    Cookie,
}

/// The name of the session cookie.
pub const COOKIE: &str = "cairn_session";

/// How long a dashboard session lasts.
const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);

/// A token hash from the config that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("serve.tokens.{name}: not an Argon2 hash ({message}); make one with `cairn serve --new-token {name}`")]
pub struct BadHash {
    name: String,
    message: String,
}

/// The tokens that let clients in, and the sessions handed out.
pub struct Tokens {
    /// Name and PHC string of each configured token.
    hashes: Vec<(String, String)>,
    /// Digests of tokens already checked, and whose they are.
    known: Mutex<HashMap<[u8; 32], String>>,
    /// One Argon2 check at a time.
    checking: Mutex<()>,
    sessions: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

/// A new random token: 32 bytes, URL-safe base64.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    URL_SAFE_NO_PAD.encode(b)
}

/// The Argon2id hash (a PHC string) of `token`, for the config.
pub fn hash_token(token: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default().hash_password(token.as_bytes()).expect("Argon2 with default parameters").to_string()
}

impl Tokens {
    /// The configured tokens (`(name, PHC hash)`), each hash checked now.
    pub fn configured(hashes: Vec<(String, String)>) -> Result<Self, BadHash> {
        for (name, h) in &hashes {
            PasswordHash::new(h).map_err(|e| BadHash { name: name.clone(), message: e.to_string() })?;
        }
        Ok(Self::new(hashes, HashMap::new()))
    }

    /// One token for this run only, known as `this-run`.
    pub fn for_this_run(token: &str) -> Self {
        Self::new(Vec::new(), HashMap::from([(*blake3::hash(token.as_bytes()).as_bytes(), "this-run".to_string())]))
    }

    fn new(hashes: Vec<(String, String)>, known: HashMap<[u8; 32], String>) -> Self {
        Self { hashes, known: Mutex::new(known), checking: Mutex::new(()), sessions: Mutex::new(HashMap::new()) }
    }

    /// Whose `token` is (`user`, if given, names the only one to try).
    pub fn check(&self, token: &str, user: Option<&str>) -> Option<Who> {
        let digest = *blake3::hash(token.as_bytes()).as_bytes();
        if let Some(name) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return user.is_none_or(|u| u == name).then(|| Who(name.clone()));
        }
        let _one = self.checking.lock().unwrap_or_else(|p| p.into_inner());
        let argon = argon2::Argon2::default();
        for (name, h) in self.hashes.iter().filter(|(n, _)| user.is_none_or(|u| u == n)) {
            let Ok(hash) = PasswordHash::new(h) else { continue };
            if argon.verify_password(token.as_bytes(), &hash).is_ok() {
                self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(digest, name.clone());
                return Some(Who(name.clone()));
            }
        }
        None
    }

    /// Who sent `headers`, and how they proved it; None if nobody known.
    pub fn identify(&self, headers: &HeaderMap) -> Option<(Who, Proof)> {
        if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            let (scheme, rest) = auth.split_once(' ')?;
            if scheme.eq_ignore_ascii_case("bearer") {
                return self.check(rest.trim(), None).map(|w| (w, Proof::Token));
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = STANDARD.decode(rest.trim()).ok()?;
                let (user, token) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
                // Any user name goes with the run's own token (clients
                // insist on one); a configured token's name must match.
                let user = if self.hashes.is_empty() || user.is_empty() { None } else { Some(user) };
                return self.check(token, user).map(|w| (w, Proof::Token));
            }
            return None;
        }
        let session = cookie(headers, COOKIE)?;
        let digest = *blake3::hash(session.as_bytes()).as_bytes();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, (_, since)| since.elapsed() < SESSION_LIFE);
        sessions.get(&digest).map(|(name, _)| (Who(name.clone()), Proof::Cookie))
    }

    /// A new session for `who`: the cookie's value.
    pub fn open_session(&self, who: &Who) -> String {
        let id = new_token();
        let digest = *blake3::hash(id.as_bytes()).as_bytes();
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(digest, (who.0.clone(), Instant::now()));
        id
    }

    /// Ends the session `headers` carry, if any.
    pub fn close_session(&self, headers: &HeaderMap) {
        if let Some(session) = cookie(headers, COOKIE) {
            let digest = *blake3::hash(session.as_bytes()).as_bytes();
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&digest);
        }
    }

    /// How long a session lasts, for the cookie's Max-Age.
    pub fn session_seconds() -> u64 {
        SESSION_LIFE.as_secs()
    }
}

/// The value of cookie `name` in `headers`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_configured_token_lets_its_holder_in_by_bearer_or_basic_and_nobody_else() {
        let alice = new_token();
        let tokens = Tokens::configured(vec![("alice".into(), hash_token(&alice))]).unwrap();
        let bearer = headers(&[("authorization", format!("Bearer {alice}"))]);
        assert_eq!(tokens.identify(&bearer), Some((Who("alice".into()), Proof::Token)));
        let basic = |user: &str, t: &str| {
            headers(&[("authorization", format!("Basic {}", STANDARD.encode(format!("{user}:{t}"))))])
        };
        assert_eq!(tokens.identify(&basic("alice", &alice)).map(|w| w.0), Some(Who("alice".into())));
        assert_eq!(tokens.identify(&basic("bob", &alice)), None, "the name must be the token's");
        assert_eq!(tokens.identify(&headers(&[("authorization", format!("Bearer {}", new_token()))])), None);
        assert_eq!(tokens.identify(&headers(&[("authorization", "Bearer".into())])), None);
        assert_eq!(tokens.identify(&HeaderMap::new()), None);
    }

    #[test]
    fn a_session_cookie_stands_for_its_token_until_closed() {
        let tokens = Tokens::for_this_run("secret");
        let who = tokens.check("secret", None).unwrap();
        let id = tokens.open_session(&who);
        let with = headers(&[("cookie", format!("theme=dark; {COOKIE}={id}"))]);
        assert_eq!(tokens.identify(&with), Some((who, Proof::Cookie)));
        tokens.close_session(&with);
        assert_eq!(tokens.identify(&with), None);
        assert_eq!(tokens.identify(&headers(&[("cookie", format!("{COOKIE}=made-up"))])), None);
    }

    #[test]
    fn a_hash_that_is_not_one_is_refused_at_start() {
        let e = Tokens::configured(vec![("ci".into(), "$argon2id$nonsense".into())]).err().unwrap().to_string();
        assert!(e.starts_with("serve.tokens.ci: not an Argon2 hash"), "{e}");
    }
}
