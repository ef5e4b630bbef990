//! The gate every request passes: who it is from (crate::auth), whether
//! a request that changes something came from the dashboard's own page
//! rather than another site the browser was on, and the audit line for
//! each such request, refused ones included.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::{Entry, Outcome};
use crate::auth::{Proof, Who};
use crate::{Peer, Shared};

/// Why a request failed, left on the response for the audit line.
#[derive(Debug, Clone)]
pub struct Detail(pub String);

/// Whether `method` may change something (WebDAV's reading methods
/// included among those that do not).
pub fn changes_state(method: &Method) -> bool {
    !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "PROPFIND")
}

/// What needs no token: the dashboard's page and files (they hold no
/// data) and the API's description.
fn is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path == "/" || path.starts_with("/assets/") || path == "/api/v1/openapi.json")
}

/// Refuses a state-changing request a browser sent from another site
/// (or from a page framed there). Browsers mark their requests with
/// `Origin` and `Sec-Fetch-Site`; a request proved by the session cookie
/// must carry one, since the browser adds that cookie by itself.
fn cross_site(headers: &HeaderMap, proof: Proof, tls: bool) -> Option<String> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Some(format!("cross-site request refused (Sec-Fetch-Site: {site})"));
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => {
            let own = format!("{}://{host}", if tls { "https" } else { "http" });
            (!origin.eq_ignore_ascii_case(&own))
                .then(|| format!("cross-site request refused (Origin {origin}, this server is {own})"))
        }
        (Some(origin), None) => Some(format!("cross-site request refused (Origin {origin}, no Host)")),
        (None, _) if proof == Proof::Cookie => {
            Some("cross-site request refused: a request with the session cookie must say its Origin".into())
        }
        (None, _) => None,
    }
}

fn refused(status: StatusCode, message: &str, dav: bool) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        // WebDAV clients (and curl -u) answer a Basic challenge; the
        // dashboard's own requests must not make the browser pop one up.
        let challenge = if dav { "Basic realm=\"cairn\", charset=\"UTF-8\"" } else { "Bearer realm=\"cairn\"" };
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    r.extensions_mut().insert(Detail(message.to_string()));
    r
}

/// The middleware: authenticates, checks the origin of changes, audits.
pub async fn guard(
    State(app): State<Shared>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if is_public(&method, &path) {
        return next.run(req).await;
    }
    let changes = changes_state(&method);
    let dav = path == "/dav" || path.starts_with("/dav/");
    let who = app.tokens.identify(req.headers());
    let response = match &who {
        None => refused(
            StatusCode::UNAUTHORIZED,
            "no valid token: give Authorization: Bearer TOKEN (or sign in on the dashboard)",
            dav,
        ),
        Some((_, proof)) => match changes.then(|| cross_site(req.headers(), *proof, app.tls)).flatten() {
            Some(why) => refused(StatusCode::FORBIDDEN, &why, dav),
            None => {
                req.extensions_mut().insert(who.as_ref().map(|(w, _)| w.clone()).unwrap_or(Who("-".into())));
                next.run(req).await
            }
        },
    };
    if changes {
        let status = response.status().as_u16();
        app.audit.write(Entry {
            time: String::new(),
            who: who.as_ref().map_or("-", |(w, _)| w.0.as_str()),
            from: Some(peer),
            method: method.as_str(),
            path: &path,
            status: Some(status),
            outcome: Outcome::of_status(status),
            detail: response.extensions().get::<Detail>().map(|d| d.0.clone()),
        });
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn changes_from_another_site_are_refused_and_from_the_page_itself_let_through() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(cross_site(&h(&[host, ("origin", "http://127.0.0.1:8080")]), Proof::Cookie, false), None);
        assert!(cross_site(&h(&[host, ("origin", "https://evil.example")]), Proof::Cookie, false).is_some());
        assert!(cross_site(&h(&[host, ("origin", "http://127.0.0.1:8080")]), Proof::Cookie, true).is_some());
        assert!(cross_site(&h(&[host, ("sec-fetch-site", "cross-site")]), Proof::Token, false).is_some());
        assert!(cross_site(&h(&[host, ("sec-fetch-site", "same-site")]), Proof::Token, false).is_some());
        assert!(cross_site(&h(&[host]), Proof::Cookie, false).is_some(), "a cookie alone proves nothing");
        assert_eq!(cross_site(&h(&[host]), Proof::Token, false), None, "curl with a token");
    }
}
