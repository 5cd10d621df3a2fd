//! The Skills page: every skill the workspace can use and what each runs,
//! and trusting the skills that came with the workspace (`.agents/skills/`),
//! as `deskhand skills` does on the terminal.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use deskhand_runtime::skill_creator;
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
        let confirmed = config_dir
            .as_deref()
            .and_then(|c| skills::component::Confirmed::load(c).ok());
        let all: Vec<Value> = d
            .untrusted
            .iter()
            .map(|(s, why)| shown(s, Some(why.to_string())))
            .chain(d.skills.iter().map(|s| {
                let waiting = unconfirmed(s) && !confirmed.as_ref().is_some_and(|c| c.is_confirmed(s));
                shown(s, waiting.then(|| UNCONFIRMED.to_owned()))
            }))
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

/// Why one of the person's component skills does not run yet.
const UNCONFIRMED: &str = "what its code may touch has not been confirmed yet";

/// One of the person's own skills with code of its own, which runs only
/// once they confirm it.
fn unconfirmed(s: &Skill) -> bool {
    s.source == SkillSource::User && matches!(s.entry, skills::Entry::Component { .. })
}

/// Trusts one workspace skill as the page showed it, or confirms one of the
/// person's component skills.
pub(super) async fn trust(State(app): State<Arc<App>>, Json(req): Json<TrustReq>) -> ApiResult<Json<Value>> {
    let root = app.root.clone();
    let config_dir = app.options.config_dir.clone();
    blocking(move || {
        let d = skills::discover(&root, config_dir.as_deref());
        if let Some(skill) = d.skills.iter().find(|s| s.name == req.name && unconfirmed(s)) {
            if trust::fingerprint(skill) != req.fingerprint {
                return Err(ApiError::conflict(format!(
                    "{} changed since this page showed it; reload the page and read what it runs now",
                    skill.name
                )));
            }
            let dir = config_dir
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("there is no config folder"))?;
            skills::component::Confirmed::load(dir)
                .and_then(|mut c| c.confirm(skill))
                .map_err(ApiError::internal)?;
            return Ok(Json(json!({"trusted": skill.name})));
        }
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

/// The person's config folder, where their skills go.
fn config_dir(app: &App) -> ApiResult<std::path::PathBuf> {
    app.options.config_dir.clone().ok_or_else(|| {
        ApiError::bad_request(
            "there is no config folder for your skills: start deskhand with XDG_CONFIG_HOME or HOME set",
        )
    })
}

/// "Make this a skill": drafts a skill from a finished run and replays it
/// on a scratch copy of the run's folders; nothing is installed.
pub(super) async fn draft(
    State(app): State<Arc<App>>,
    axum::extract::Path(run): axum::extract::Path<String>,
) -> ApiResult<Json<Value>> {
    let config_dir = config_dir(&app)?;
    let tb = app.toolbox().map_err(ApiError::internal)?;
    blocking(move || {
        let found = skills::discover(&app.root, Some(&config_dir));
        let run = deskhand_types::RunId(run);
        let mut draft = skill_creator::draft(&app.workspace, &run, &found.skills, &tb)
            .map_err(|e| ApiError::bad_request(format!("no skill was made: {e}")))?;
        // With a model configured, it drafts the words; the page shows them before anything is installed.
        let env = |k: &str| std::env::var(k).ok();
        let words = match deskhand_runtime::launch::model_config(&app.workspace, Some(&config_dir), &env, None)
            .ok()
            .and_then(|c| deskhand_runtime::model::config::connect(&c).ok().flatten())
        {
            Some(model) => match skill_creator::words_from_model(&mut draft, model.as_ref()) {
                Ok(()) => format!("The name and description are {}'s words.", model.describe()),
                Err(e) => format!("Kept deskhand's own words: {e}"),
            },
            None => String::new(),
        };
        let replay = skill_creator::replay(&app.workspace, &draft, &tb)
            .map_err(|e| ApiError::bad_request(format!("the replay failed: {e}")))?;
        let files: Vec<Value> = replay
            .files
            .iter()
            .zip(&replay.diffs)
            .map(|((original, again), diff)| {
                json!({
                    "path": original.path,
                    "run": skill_creator::facts_words(original),
                    "replay": again.as_ref().map(skill_creator::facts_words),
                    // What differs, cell by cell or line by line: the first few and a count of the rest.
                    "differences": diff.differences,
                    "more": diff.more,
                })
            })
            .collect();
        Ok(Json(json!({
            "name": draft.name,
            "words": words,
            "skill_md": draft.skill_md(),
            "evals_json": draft.evals_json(),
            "replay": {"matches": replay.matches(), "differences": replay.differences(), "summary": replay.summary, "files": files},
        })))
    })
    .await?
}

#[derive(Deserialize)]
pub(super) struct InstallReq {
    skill_md: String,
    evals_json: String,
}

/// Installs a draft as the person confirmed it (its text as shown and
/// edited on the page), reads it back and checks its evals.
pub(super) async fn install(State(app): State<Arc<App>>, Json(req): Json<InstallReq>) -> ApiResult<Json<Value>> {
    let config_dir = config_dir(&app)?;
    blocking(move || {
        let skill = skills::parse_skill_strict(&req.skill_md, SkillSource::User, None)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        serde_json::from_str::<Value>(&req.evals_json)
            .map_err(|e| ApiError::bad_request(format!("evals.json is not JSON: {e}")))?;
        let dir = app.root.join(".deskhand").join("skill-drafts").join(&skill.name);
        if dir.exists() {
            skill_creator::set_aside(&dir).map_err(ApiError::internal)?;
        }
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir.join("evals"))?;
            std::fs::write(dir.join(skills::SKILL_FILE), &req.skill_md)?;
            std::fs::write(dir.join("evals").join("evals.json"), &req.evals_json)
        };
        write().map_err(|e| ApiError::internal(format!("the draft could not be saved at {}: {e}", dir.display())))?;
        let installed =
            skill_creator::install(&dir, &config_dir, &app.workspace, false).map_err(ApiError::bad_request)?;
        let checks: Vec<Value> = installed
            .checks
            .iter()
            .map(|c| json!({"prompt": c.prompt, "passed": c.passed, "problem": c.problem}))
            .collect();
        Ok(Json(json!({
            "installed": installed.skill.name,
            "dir": installed.skill.dir,
            "checks": checks,
        })))
    })
    .await?
}
