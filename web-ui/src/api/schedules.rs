//! The Schedules page: this workspace's scheduled tasks (their times, state
//! and last runs), a schedule previewed and saved as the person saw it,
//! and pause, resume, run now and remove, as `deskhand schedule` does on
//! the terminal, on the same per-user database (`Schedules`).
//!
//! What holds: a schedule is prepared by the runtime's one
//! [`schedule::prepare`] (the CLI's too); preview saves nothing, and save
//! prepares again and saves only if the hash of what it prepared equals
//! the hash the page showed (else 409: look again). Only this workspace's
//! schedules are listed or changed here. Times read in the schedule's zone
//! and in the browser's (`here`, which the page sends).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use deskhand_runtime::launch;
use deskhand_runtime::schedule::{
    self, Asked, LocalTime, MissedPolicy, Planning, Prepared, Schedule, ScheduleError, Schedules, Timing, Tz, Utc,
};
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::wasm::WasmHost;
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::error::{ApiError, ApiResult};
use super::start::{GrantIn, grants, mode, spawn_run};
use crate::App;

/// How many of a schedule's last occurrences the page lists.
const RECENT: usize = 5;

/// The schedule form, as the page sends it to preview and to save.
#[derive(Deserialize)]
pub(super) struct Form {
    task: String,
    /// A phrase ("weekday 08:00") or a cron expression ("0 8 * * 1-5").
    every: String,
    /// The zone its times are read in; empty: the browser's.
    #[serde(default)]
    zone: Option<String>,
    /// The browser's zone (`Intl.DateTimeFormat().resolvedOptions().timeZone`).
    #[serde(default)]
    here: Option<String>,
    #[serde(default)]
    grants: Vec<GrantIn>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    missed: Option<String>,
    /// To save: the hash of the preview the person saw.
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Here {
    #[serde(default)]
    here: Option<String>,
}

/// The browser's zone, if it names one deskhand knows (it is only for showing times).
fn here_zone(here: Option<&str>) -> Option<Tz> {
    here.and_then(|h| schedule::parse_zone(h).ok())
}

/// A schedule failure as the page reads it: the person's mistakes are 400, in words.
fn refused(e: ScheduleError) -> ApiError {
    match &e {
        ScheduleError::Database { .. } | ScheduleError::Folder { .. } | ScheduleError::Corrupt { .. } => {
            ApiError::internal(e.to_string())
        }
        ScheduleError::Grants { source } | ScheduleError::Unplannable { source } if !source.is_user_error() => {
            ApiError::internal(e.to_string())
        }
        ScheduleError::NoSuchSchedule { id } => ApiError::not_found(format!("there is no schedule {id}; reload the page")),
        _ => ApiError::bad_request(e.to_string()),
    }
}

fn store(app: &App) -> ApiResult<Schedules> {
    let dir = app.options.config_dir.as_deref().ok_or_else(|| {
        ApiError::bad_request("there is no config folder for schedules: start deskhand with XDG_CONFIG_HOME or HOME set")
    })?;
    Schedules::open(&Schedules::default_path(dir)).map_err(refused)
}

/// Schedule `id`, if it is this workspace's.
fn ours(app: &App, store: &Schedules, id: i64) -> ApiResult<Schedule> {
    let s = store.get(id).map_err(refused)?;
    if s.workspace != app.root {
        return Err(ApiError::not_found(format!(
            "schedule {id} belongs to another workspace ({}); open deskhand there to change it",
            s.workspace.display()
        )));
    }
    Ok(s)
}

/// A schedule as the page lists it.
fn listed(store: &Schedules, s: &Schedule, here: Option<Tz>) -> ApiResult<Value> {
    let zone = s.when().map(|w| w.tz()).ok();
    let at = |t| match zone {
        Some(z) => LocalTime::new(t, z, here),
        None => LocalTime {
            at: t,
            there: t.to_rfc3339(),
            here: None,
        },
    };
    let (next, problem) = match s.next_times(Utc::now(), 1) {
        Ok(t) => (t.first().map(|t| at(*t)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let recent: Vec<Value> = store
        .occurrences(s.id, RECENT)
        .map_err(refused)?
        .iter()
        .map(|o| {
            json!({
                "due": at(o.due),
                "state": o.state.as_str(),
                "said": o.state.describe(),
                "run": o.run.as_ref().map(|r| r.0.clone()),
                "note": o.note,
                "covers": o.covers,
            })
        })
        .collect();
    Ok(json!({
        "id": s.id,
        "task": s.task,
        "when": s.describe_when(),
        "paused": s.paused,
        "next": next,
        "problem": problem,
        "grants": schedule::grants_words(&s.grants, &|p| p.to_owned()),
        "mode": s.mode.to_string(),
        "missed": s.missed.describe(),
        "envelope": s.envelope.as_ref().map(ToString::to_string),
        "recent": recent,
    }))
}

/// This workspace's schedules, oldest first.
pub(super) async fn list(State(app): State<Arc<App>>, Query(q): Query<Here>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let store = store(&app)?;
        let here = here_zone(q.here.as_deref());
        let mine: Vec<Value> = store
            .list()
            .map_err(refused)?
            .iter()
            .filter(|s| s.workspace == app.root)
            .map(|s| listed(&store, s, here))
            .collect::<ApiResult<_>>()?;
        Ok(Json(json!({"schedules": mine, "phrases": schedule::PHRASES})))
    })
    .await?
}

/// Prepares the form's schedule (the envelope planned without acting), saving nothing.
async fn prepare(app: &Arc<App>, form: Form) -> ApiResult<(Prepared, Option<String>)> {
    let mode = mode(form.mode.as_deref())?;
    let missed = match form.missed.as_deref() {
        None | Some("") => MissedPolicy::Skip,
        Some(m) => MissedPolicy::parse(m).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown missed-run policy {m:?}: skip, once (run once when deskhand wakes) or notify"
            ))
        })?,
    };
    if form.every.trim().is_empty() {
        return Err(ApiError::bad_request(
            "say when it runs: a phrase such as \"every weekday at 8:00\" or a cron expression such as \"0 8 * * 1-5\"",
        ));
    }
    let here = form.here.filter(|h| !h.trim().is_empty());
    let zone = form
        .zone
        .filter(|z| !z.trim().is_empty())
        .or_else(|| here.clone())
        .ok_or_else(|| ApiError::bad_request("say which time zone its times are in, e.g. Europe/Berlin"))?;
    let asked = Asked {
        task: form.task,
        timing: Timing::read(&form.every),
        zone,
        grants: grants(&form.grants),
        mode,
        missed,
    };
    let app = app.clone();
    blocking(move || {
        let env = |k: &str| std::env::var(k).ok();
        let config_dir = app.options.config_dir.as_deref();
        let config = launch::model_config(&app.workspace, config_dir, &env, None).map_err(ApiError::from)?;
        // Drafting loads the skills' components into a toolbox of its own.
        let host = WasmHost::new(app.options.cache_dir.clone()).map_err(|e| ApiError::internal(e.to_string()))?;
        let office = deskhand_runtime::office::LibreOffice::find_for_cache(app.options.cache_dir.as_deref());
        let mut toolbox = Toolbox::new(host).with_office(office);
        let planning = Planning {
            config: &config,
            config_dir,
            toolbox: &mut toolbox,
        };
        let prepared = schedule::prepare(&app.workspace, asked, planning, Utc::now(), here_zone(here.as_deref()))
            .map_err(refused)?;
        Ok((prepared, form.hash))
    })
    .await?
}

/// What the person must see before saving, and its hash.
fn shown(p: &Prepared) -> Value {
    let new = &p.new;
    json!({
        "hash": p.hash,
        "task": new.task,
        "when": new.describe_when(),
        "cron": new.when.cron(),
        "zone": new.when.zone(),
        "next": p.next,
        "workspace": new.workspace,
        "grants": schedule::grants_words(&new.grants, &|p| p.to_owned()),
        "mode": new.mode.to_string(),
        "missed": new.missed.describe(),
        "envelope": new.envelope.as_ref().map(ToString::to_string),
    })
}

pub(super) async fn preview(State(app): State<Arc<App>>, Json(form): Json<Form>) -> ApiResult<Json<Value>> {
    let (prepared, _) = prepare(&app, form).await?;
    Ok(Json(shown(&prepared)))
}

/// Saves the schedule if what is prepared now is what the page showed.
pub(super) async fn save(State(app): State<Arc<App>>, Json(form): Json<Form>) -> ApiResult<Json<Value>> {
    if form.hash.as_deref().is_none_or(|h| h.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "preview the schedule first: it is saved only as you saw it",
        ));
    }
    let (prepared, seen) = prepare(&app, form).await?;
    if seen.as_deref() != Some(prepared.hash.as_str()) {
        return Err(ApiError::conflict(
            "the plan changed since you saw it; look again (the preview now shows what would be saved)",
        ));
    }
    blocking(move || {
        let saved = store(&app)?.add(&prepared.new, Utc::now()).map_err(refused)?;
        Ok(Json(json!({"id": saved.id})))
    })
    .await?
}

pub(super) async fn pause(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let store = store(&app)?;
        ours(&app, &store, id)?;
        store.pause(id).map_err(refused)?;
        Ok(Json(json!({"paused": id})))
    })
    .await?
}

pub(super) async fn resume(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let store = store(&app)?;
        ours(&app, &store, id)?;
        store.resume(id, Utc::now()).map_err(refused)?;
        Ok(Json(json!({"resumed": id})))
    })
    .await?
}

pub(super) async fn remove(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let store = store(&app)?;
        ours(&app, &store, id)?;
        store.remove(id).map_err(refused)?;
        Ok(Json(json!({"removed": id})))
    })
    .await?
}

/// Runs the schedule now, unattended with its envelope as at its times,
/// on its own thread; answers with the run's id once it has one.
pub(super) async fn run_now(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> ApiResult<Json<Value>> {
    let app2 = app.clone();
    let db = blocking(move || {
        let store = store(&app2)?;
        ours(&app2, &store, id)?;
        Ok::<_, ApiError>(store.path().to_path_buf())
    })
    .await??;
    let toolbox = app.toolbox().map_err(ApiError::internal)?;
    spawn_run(app, move |app, observer, stop| {
        let store = Schedules::open(&db).map_err(|e| e.to_string())?;
        let holder = schedule::this_process();
        let env = |k: &str| std::env::var(k).ok();
        let config_dir = app.options.config_dir.clone();
        let config =
            launch::model_config(&app.workspace, config_dir.as_deref(), &env, None).map_err(|e| e.to_string())?;
        let shell = deskhand_runtime::shell::default_backend();
        let warn = |w: String| eprintln!("warning: {w}");
        let (_, o) = store
            .run_now(id, Utc::now(), &holder, &mut |s, o| {
                let with = schedule::run::RunWith {
                    config: config.clone(),
                    config_dir: config_dir.clone(),
                    shell: shell.as_deref(),
                    warn: &warn,
                    observer: Some(observer.clone()),
                    started: Some(schedule::run::recorder(db.clone(), o.id, holder.clone())),
                    stop: Some(stop.clone()),
                };
                let report = schedule::run::launch_unattended_shared(&app.workspace, &toolbox, s, o, with);
                if let Ok(r) = &report {
                    let _ = deskhand_runtime::ledger::write(&app.workspace, &r.run);
                }
                schedule::run::outcome(&report)
            })
            .map_err(|e| e.to_string())?;
        o.run.ok_or_else(|| o.note.unwrap_or_else(|| "the run did not start".into()))
    })
    .await
}
