//! The checks every request passes before a handler sees it.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::App;
use crate::api::ApiError;
use crate::session::{self, Refusal};

/// A refusal, in words, as plain text: the request may be a navigation.
fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    ApiError::text(status, why).into_response()
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

/// What a request must show before its handler runs.
enum Needs {
    /// The page, its assets: static, no data.
    Nothing,
    /// The launch-token exchange and `deskhand open`'s challenge: they
    /// prove themselves in their bodies.
    OwnProof,
    /// A download or a framed PDF: a navigation cannot send a header, so
    /// a ticket in the query will do instead of the session header.
    SessionOrTicket,
    Session,
}

fn needs(method: &Method, path: &str) -> Needs {
    match (method, path) {
        (&Method::GET, "/" | "/assets/app.js" | "/assets/style.css" | "/favicon.ico") => Needs::Nothing,
        (&Method::POST, "/api/session" | "/control/launch") => Needs::OwnProof,
        (&Method::GET, p) if p.starts_with("/files/output/") || p.starts_with("/view/output/") => {
            Needs::SessionOrTicket
        }
        _ => Needs::Session,
    }
}

fn session_check(app: &App, headers: &HeaderMap) -> Result<(), Refusal> {
    let secret = headers
        .get(session::HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::NoSession)?;
    app.sessions().check(secret, Instant::now())
}

fn ticket_check(app: &App, request: &Request<Body>) -> Result<(), Refusal> {
    let ticket = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))
        .ok_or(Refusal::NoSession)?;
    app.sessions().use_ticket(ticket, request.uri().path(), Instant::now())
}

/// Host; the session header (or a ticket, or a proof of its own) by route;
/// for mutations the same-origin `Origin` and a JSON body. Then the headers
/// that forbid framing and sniffing on every response.
pub async fn guard(State(app): State<Arc<App>>, request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let path = request.uri().path();
    let framable = request.method() == Method::GET && path.starts_with("/view/output/");
    let mutation = request.method() != Method::GET && request.method() != Method::HEAD;
    let allowed = match needs(request.method(), path) {
        Needs::Nothing | Needs::OwnProof => Ok(()),
        Needs::Session => session_check(&app, headers),
        Needs::SessionOrTicket => session_check(&app, headers).or_else(|_| ticket_check(&app, &request)),
    };
    let control = path == "/control/launch";
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut response = if !host_ok(&app, headers) {
        refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "refused: this server answers only to 127.0.0.1 or localhost on its own port",
        )
    } else if let Err(why) = allowed {
        refuse(StatusCode::UNAUTHORIZED, format!("refused: {}", why.message()))
    } else if mutation && !control && !origin_ok(&app, headers) {
        refuse(
            StatusCode::FORBIDDEN,
            "refused: a change must come from this page (foreign or missing Origin)",
        )
    } else if mutation && !json {
        refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "refused: changes are sent as JSON")
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
    fn only_the_page_and_the_proofs_go_without_a_session() {
        assert!(matches!(needs(&Method::GET, "/"), Needs::Nothing));
        assert!(matches!(needs(&Method::GET, "/assets/app.js"), Needs::Nothing));
        assert!(matches!(needs(&Method::POST, "/api/session"), Needs::OwnProof));
        assert!(matches!(needs(&Method::GET, "/api/session"), Needs::Session));
        assert!(matches!(
            needs(&Method::GET, "/files/output/a.csv"),
            Needs::SessionOrTicket
        ));
        assert!(matches!(
            needs(&Method::GET, "/view/output/a.pdf"),
            Needs::SessionOrTicket
        ));
        assert!(matches!(needs(&Method::POST, "/files/output/a.csv"), Needs::Session));
        for p in [
            "/api/runs",
            "/api/state",
            "/api/preview/output/a.csv",
            "/assets/other.js",
        ] {
            assert!(matches!(needs(&Method::GET, p), Needs::Session), "{p}");
        }
    }
}

#[cfg(test)]
mod router_tests;
