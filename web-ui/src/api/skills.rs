//! The Skills page: every skill the workspace can use and what each runs,
//! and trusting the skills that came with the workspace (`.agents/skills/`),
//! as `deskhand skills` does on the terminal.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use deskhand_runtime::skills::{self, Skill, SkillSource, TrustStore, trust};
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::error::{ApiError, ApiResult};
use crate::App;

fn source(s: SkillSource) -> &'static str {
    match s {
        SkillSource::Workspace => "workspace",
        SkillSource::User => "yours",
        SkillSource::Bundled => "bundled",
    }
}

fn shown(s: &Skill, untrusted: Option<String>) -> Value {
    json!({
        "name": s.name,
        "source": source(s.source),
        "description": s.description,
        "declarations": s.declarations(),
        "untrusted": untrusted,
        // What the person saw; trusting sends it back, so a skill that
        // changed since the page showed it is not trusted unseen.
        "fingerprint": trust::fingerprint(s),
    })
}

pub(super) async fn list(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let root = app.root.clone();
    let config_dir = app.options.config_dir.clone();
    let listed = blocking(move || {
        let d = skills::discover(&root, config_dir.as_deref());
        let all: Vec<Value> = d
            .untrusted
            .iter()
            .map(|(s, why)| shown(s, Some(why.to_string())))
            .chain(d.skills.iter().map(|s| shown(s, None)))
            .collect();
        let problems: Vec<String> = d.problems.iter().map(ToString::to_string).collect();
        json!({"skills": all, "problems": problems})
    })
    .await?;
    Ok(Json(listed))
}

#[derive(Deserialize)]
pub(super) struct TrustReq {
    name: String,
    fingerprint: String,
}

/// Trusts one workspace skill as the page showed it.
pub(super) async fn trust(State(app): State<Arc<App>>, Json(req): Json<TrustReq>) -> ApiResult<Json<Value>> {
    let root = app.root.clone();
    let config_dir = app.options.config_dir.clone();
    blocking(move || {
        let d = skills::discover(&root, config_dir.as_deref());
        let Some((skill, _)) = d.untrusted.iter().find(|(s, _)| s.name == req.name) else {
            return Err(ApiError::bad_request(format!(
                "no workspace skill named {:?} waits for your trust; reload the page",
                req.name
            )));
        };
        if trust::fingerprint(skill) != req.fingerprint {
            return Err(ApiError::conflict(format!(
                "{} changed since this page showed it; reload the page and read what it runs now",
                skill.name
            )));
        }
        let mut store = TrustStore::load(config_dir.as_deref()).map_err(ApiError::internal)?;
        store.trust(&root, &[skill]).map_err(ApiError::internal)?;
        Ok(Json(json!({"trusted": skill.name})))
    })
    .await?
}
