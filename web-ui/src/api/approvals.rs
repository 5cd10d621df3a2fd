//! The person's answer to an approval card (`crate::approvals` holds the
//! questions the running steps wait on).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use deskhand_runtime::agent::Approval;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use crate::App;
use crate::approvals::AnswerError;

#[derive(Deserialize)]
pub(super) struct Answer {
    approve: bool,
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
    let run = app.approvals.answer(&id, approval).map_err(|e| match e {
        AnswerError::Unknown => {
            ApiError::conflict("this approval was already answered or never asked; an approval is used once")
        }
        AnswerError::Expired => ApiError::new(StatusCode::GONE, "this approval expired; run the task again"),
    })?;
    Ok(Json(json!({"run": run.0, "approved": a.approve})))
}
