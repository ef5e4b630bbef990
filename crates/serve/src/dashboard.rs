//! The dashboard: one page, a script and a style sheet, compiled into the
//! binary (nothing is fetched from elsewhere at run time, and building
//! cairn needs no JavaScript tool chain). The page holds no data: it asks
//! the API for it once signed in, so it is served without a token.
//!
//! Every answer of the server gets headers that keep browsers from doing
//! more than shown: the page runs only its own script and cannot be framed
//! by another site; anything else (a file from a snapshot, JSON) runs no
//! script at all, whatever it holds.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// The page's own policy: its script and style, images from here (file
/// previews), requests to here.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Everything else: no script runs, nothing loads, nothing frames it.
const DATA_POLICY: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response();
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    r
}

pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// Adds the protective headers to every answer.
pub async fn protect(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DATA_POLICY));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}
