//! Routes: the page and its assets, and the JSON + SSE API, one module per
//! route group. Every handler fails with [`ApiError`], which decides the
//! status and shape of the answer; `security::guard` runs before all of them.

mod access;
mod approvals;
mod connectors;
mod error;
mod output;
mod runs;
mod schedules;
mod skills;
mod start;
mod workspace;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

pub(crate) use connectors::SignInsUnderway;
pub(crate) use error::ApiError;

use crate::App;
use crate::security;

const INDEX: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE: &str = include_str!("../../assets/style.css");

/// What a text or CSV preview (and the ledger view) reads of a file at most.
const PREVIEW_BYTES: u64 = 1 << 20;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/session", post(access::exchange))
        .route("/control/launch", post(access::control_launch))
        .route("/api/tickets", post(access::ticket))
        .route("/api/state", get(workspace::state))
        .route("/api/folders", get(workspace::folders))
        .route(
            "/api/files/{name}",
            get(workspace::read_file).put(workspace::write_file),
        )
        .route("/api/runs", get(runs::runs))
        .route("/api/tasks", post(start::new_task))
        .route("/api/runs/{run}/view", get(runs::run_view))
        .route("/api/runs/{run}/events", get(runs::events))
        .route("/api/runs/{run}/resume", post(start::resume))
        .route("/api/runs/{run}/continue", post(start::follow_up))
        .route("/api/runs/{run}/stop", post(runs::stop))
        .route("/api/runs/{run}/undo", post(runs::undo))
        .route("/api/runs/{run}/ledger", get(runs::ledger))
        .route("/api/approvals/{id}", get(approvals::card).post(approvals::answer))
        .route("/api/skills", get(skills::list))
        .route("/api/skills/trust", post(skills::trust))
        .route("/api/skills/install", post(skills::install))
        .route("/api/runs/{run}/skill-draft", post(skills::draft))
        .route("/api/connectors", get(connectors::list).post(connectors::add))
        .route("/api/connectors/preview", post(connectors::preview))
        .route("/api/connectors/{scope}/{name}", delete(connectors::remove))
        .route("/api/connectors/{scope}/{name}/test", post(connectors::test))
        .route("/api/connectors/{scope}/{name}/approve", post(connectors::approve))
        .route("/api/connectors/{scope}/{name}/enabled", post(connectors::enable))
        .route("/api/connectors/{scope}/{name}/disallow", post(connectors::disallow))
        .route("/api/connectors/{scope}/{name}/sign-in", post(connectors::sign_in))
        .route("/api/connectors/{scope}/{name}/sign-out", post(connectors::sign_out))
        .route("/api/schedules", get(schedules::list).post(schedules::save))
        .route("/api/schedules/preview", post(schedules::preview))
        .route("/api/schedules/{id}", delete(schedules::remove))
        .route("/api/schedules/{id}/pause", post(schedules::pause))
        .route("/api/schedules/{id}/resume", post(schedules::resume))
        .route("/api/schedules/{id}/run-now", post(schedules::run_now))
        .route("/api/output", get(output::output_list))
        .route("/api/preview/{*path}", get(output::preview))
        .route("/files/output/{*path}", get(output::download))
        .route("/view/output/{*path}", get(output::view_pdf))
        .layer(axum::middleware::from_fn_with_state(app.clone(), security::guard))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The page: static, holding no data, so it needs no session. Its script
/// trades the launch token in the address for a session (`access::exchange`).
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// Runs blocking runtime work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("deskhand failed while doing that; see its terminal"))
}
