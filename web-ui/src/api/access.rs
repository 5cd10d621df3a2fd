//! Who may use the API: the launch-token exchange, `deskhand open`'s
//! challenge, and tickets for navigations (`session.rs` keeps the books).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use crate::App;
use crate::session;

#[derive(Deserialize)]
pub(super) struct Exchange {
    token: String,
}

/// Trades a launch token, once, for the session secret the page sends as
/// the `X-Deskhand-Session` header. Nothing is set in a cookie.
pub(super) async fn exchange(State(app): State<Arc<App>>, Json(e): Json<Exchange>) -> ApiResult<Json<Value>> {
    let secret = app
        .sessions()
        .exchange(&e.token, Instant::now())
        .map_err(|why| ApiError::new(StatusCode::UNAUTHORIZED, why.message()))?;
    Ok(Json(json!({"session": secret})))
}

#[derive(Deserialize)]
pub(super) struct Challenge {
    nonce: String,
    proof: String,
}

/// `deskhand open` asks for a launch token. It proves it holds the control
/// key in server.json (HMAC over its nonce and this port), each nonce once;
/// the answer proves this server holds it too.
pub(super) async fn control_launch(State(app): State<Arc<App>>, Json(c): Json<Challenge>) -> ApiResult<Json<Value>> {
    let expected = session::proof(&app.control_key, &format!("client/{}", app.port), &c.nonce);
    // Only a proven request spends a nonce, so nobody else can grow the set.
    let proven = (16..=128).contains(&c.nonce.len()) && session::constant_time_eq(&c.proof, &expected);
    let fresh = proven
        && app
            .control_nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.nonce.clone());
    if !fresh {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "refused: that is not this server's control key",
        ));
    }
    let token = app.sessions().new_launch_token(Instant::now());
    let proof = session::proof(&app.control_key, &format!("server/{}", app.port), &c.nonce);
    Ok(Json(json!({"token": token, "proof": proof})))
}

#[derive(Deserialize)]
pub(super) struct TicketReq {
    path: String,
}

/// A ticket for one download or framed PDF: a navigation cannot send the
/// session header, so its URL carries this (single-use, short-lived, bound
/// to that path) instead.
pub(super) async fn ticket(State(app): State<Arc<App>>, Json(t): Json<TicketReq>) -> ApiResult<Json<Value>> {
    if !(t.path.starts_with("/files/output/") || t.path.starts_with("/view/output/")) {
        return Err(ApiError::bad_request(
            "tickets are only for /files/output/ and /view/output/",
        ));
    }
    let ticket = app.sessions().new_ticket(&t.path, Instant::now());
    Ok(Json(json!({"ticket": ticket})))
}
