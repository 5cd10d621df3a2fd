//! The checks every request passes before a handler sees it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crate::App;

pub const COOKIE: &str = "deskhand_session";

/// A refusal, in words, as plain text.
pub fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{why}\n"),
    )
        .into_response()
}

fn host_ok(app: &App, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    host == format!("127.0.0.1:{}", app.port) || host == format!("localhost:{}", app.port)
}

fn origin_ok(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    origin == format!("http://{host}") && host_ok(app, headers)
}

pub fn session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn has_session(app: &App, headers: &HeaderMap) -> bool {
    session(headers).is_some_and(|s| {
        app.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|known| constant_time_eq(known, &s))
    })
}

pub fn token_ok(app: &App, token: &str) -> bool {
    constant_time_eq(&app.token, token)
}

/// Host, session, and for mutations Origin and a JSON body; then the headers
/// that forbid framing and sniffing on every response.
pub async fn guard(State(app): State<Arc<App>>, request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let framable = request.method() == Method::GET && request.uri().path().starts_with("/view/output/");
    let mut response = if !host_ok(&app, headers) {
        refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "refused: this server answers only to 127.0.0.1 or localhost on its own port",
        )
    } else if request.uri().path() == "/" && request.method() == Method::GET {
        // The page itself handles the token exchange (and says what to do without one).
        next.run(request).await
    } else if !has_session(&app, headers) {
        refuse(
            StatusCode::UNAUTHORIZED,
            "refused: no session. Open the URL `deskhand serve` printed (it carries a one-time token), or run `deskhand open`",
        )
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !origin_ok(&app, headers) {
            refuse(
                StatusCode::FORBIDDEN,
                "refused: a change must come from this page (foreign or missing Origin)",
            )
        } else if !json {
            refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "refused: changes are sent as JSON")
        } else {
            next.run(request).await
        }
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    if framable {
        // A PDF shown in the page's own viewer: this origin may frame it, no other.
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"),
        );
    } else {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; deskhand_session=abc; b=2"),
        );
        assert_eq!(session(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("deskhand_sessionx=evil"));
        assert_eq!(session(&h), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq("abcd", "abcd"));
        assert!(!constant_time_eq("abcd", "abce"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
