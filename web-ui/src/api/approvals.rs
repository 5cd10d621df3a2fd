//! The person's answer to an approval card (`crate::approvals` holds the
//! questions the running steps wait on), and what an action's card shows.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use deskhand_runtime::agent::Approval;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use crate::App;
use crate::approvals::{AnswerError, CardLookup};

#[derive(Deserialize)]
pub(super) struct Answer {
    approve: bool,
    /// "Always allow this tool", on an action's card that offers it.
    #[serde(default)]
    always: bool,
}

pub(super) async fn answer(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    Json(a): Json<Answer>,
) -> ApiResult<Json<Value>> {
    let approval = if a.approve {
        Approval::Approved {
            by: "the person, in the browser".into(),
        }
    } else {
        Approval::Rejected {
            reason: "the person rejected it in the browser".into(),
        }
    };
    let run = app
        .approvals
        .answer(&id, approval, a.approve && a.always)
        .map_err(|e| match e {
            AnswerError::Unknown => {
                ApiError::conflict("this approval was already answered or never asked; an approval is used once")
            }
            AnswerError::Expired => ApiError::new(StatusCode::GONE, "this approval expired; run the task again"),
            AnswerError::NoAlways => ApiError::bad_request(
                "\"always allow\" is not offered for this question (a tool that destroys data, or the browser, asks \
                 each time); allow it once or refuse it",
            ),
        })?;
    Ok(Json(
        json!({"run": run.0, "approved": a.approve, "always": a.approve && a.always}),
    ))
}

/// How long the card of a question just journaled may take to appear: its
/// gate call puts it beside the question right after journaling it.
const CARD_WAIT: Duration = Duration::from_secs(5);

/// What an action's card shows: the connector (or the browser), the tool,
/// the step and the call's arguments as rows.
pub(super) async fn card(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Value>> {
    let step = Duration::from_millis(25);
    let mut waited = Duration::ZERO;
    loop {
        match app.approvals.card(&id) {
            CardLookup::Card(card) => return Ok(Json(json!(card))),
            CardLookup::Unknown => {
                return Err(ApiError::not_found(
                    "this question was already answered or is not waiting any more; reload the page",
                ));
            }
            CardLookup::NotYet if waited >= CARD_WAIT => {
                return Err(ApiError::not_found("this question has no action to show"));
            }
            CardLookup::NotYet => {
                tokio::time::sleep(step).await;
                waited += step;
            }
        }
    }
}
