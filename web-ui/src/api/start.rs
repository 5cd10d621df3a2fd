//! Starting a run from the task form, resuming one that stopped without
//! ending or waits for an answer, or giving one that ended a new
//! instruction; each runs on its own thread with the browser's gate.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use deskhand_runtime::launch::{self, Launch, Start};
use deskhand_types::{Access, Event, Grant, Mode, RunId, Task};
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::error::{ApiError, ApiResult};
use super::runs::is_live;
use crate::App;
use crate::approvals::UiGate;

#[derive(Deserialize)]
pub(super) struct NewTask {
    outcome: String,
    #[serde(default)]
    grants: Vec<GrantIn>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

/// A folder the form grants; `write`: the person ticked "may change it".
#[derive(Deserialize)]
pub(super) struct GrantIn {
    path: String,
    #[serde(default)]
    write: bool,
}

/// The form's grants, its empty rows left out.
pub(super) fn grants(form: &[GrantIn]) -> Vec<Grant> {
    form.iter()
        .filter(|g| !g.path.trim().is_empty())
        .map(|g| Grant {
            path: PathBuf::from(g.path.trim()),
            access: if g.write { Access::ReadWrite } else { Access::ReadOnly },
        })
        .collect()
}

/// The form's permission mode: ask (the default) or act.
pub(super) fn mode(form: Option<&str>) -> ApiResult<Mode> {
    match form {
        None | Some("ask") => Ok(Mode::Ask),
        Some("act") => Ok(Mode::Act),
        Some(other) => Err(ApiError::bad_request(format!("unknown mode {other:?}: ask or act"))),
    }
}

/// Starts a run on its own thread; answers with its id once it has one.
pub(super) async fn new_task(State(app): State<Arc<App>>, Json(req): Json<NewTask>) -> ApiResult<Json<Value>> {
    if req.outcome.trim().is_empty() {
        return Err(ApiError::bad_request("describe the outcome you want first"));
    }
    let mode = mode(req.mode.as_deref())?;
    let grants = grants(&req.grants);
    // Check the grants now so a mistake is shown on the form, not in a failed run.
    let app2 = app.clone();
    let grants = blocking(move || {
        app2.workspace
            .sandbox(&grants, deskhand_runtime::wasm::Limits::default())
            .map(|_| grants)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    })
    .await??;
    let task = Task {
        outcome: req.outcome.trim().to_owned(),
        grants,
        mode,
        params: Default::default(),
    };
    let model = req.model.filter(|m| !m.is_empty());
    start_run(app, Start::New(task), model).await
}

#[derive(Deserialize)]
pub(super) struct ResumeReq {
    #[serde(default)]
    answer: Option<String>,
}

/// Resumes a run that stopped without ending (the server was stopped while
/// it ran or waited for an approval), as `deskhand resume` does.
pub(super) async fn resume(
    State(app): State<Arc<App>>,
    UrlPath(run): UrlPath<String>,
    Json(r): Json<ResumeReq>,
) -> ApiResult<Json<Value>> {
    let run = RunId(run);
    if is_live(&app, &run) {
        return Err(ApiError::conflict(format!("run {run} is already running here")));
    }
    let answer = r.answer.filter(|a| !a.trim().is_empty());
    start_run(
        app,
        Start::Resume {
            run,
            answer,
            mode: None,
        },
        None,
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct FollowUpReq {
    say: String,
}

/// A new instruction for a run that ended ("now in USD"): a new turn with
/// the run's context, through the same gate and change pipeline
/// (`Agent::follow_up`); a run waiting for an answer takes it as the answer.
pub(super) async fn follow_up(
    State(app): State<Arc<App>>,
    UrlPath(run): UrlPath<String>,
    Json(r): Json<FollowUpReq>,
) -> ApiResult<Json<Value>> {
    let run = RunId(run);
    if is_live(&app, &run) {
        return Err(ApiError::conflict(format!("run {run} is still running here")));
    }
    let say = r.say.trim().to_owned();
    if say.is_empty() {
        return Err(ApiError::bad_request("say what you want done next first"));
    }
    start_run(app, Start::FollowUp { run, say, mode: None }, None).await
}

/// Runs `start` on its own thread with the `UiGate`; answers with the run's
/// id once the run has one (its `RunBegin`, or `Resumed`).
async fn start_run(app: Arc<App>, start: Start, model: Option<String>) -> ApiResult<Json<Value>> {
    spawn_run(app, move |app, observer, stop| {
        run_task(app, start, model.as_deref(), observer, stop)
    })
    .await
}

/// Runs `run` on its own thread, listed as running here (so the page can
/// stop it) and waking the page's live views; answers with the run's id
/// once the run has one (its `RunBegin`, or `Resumed`).
pub(super) async fn spawn_run(
    app: Arc<App>,
    run: impl FnOnce(&Arc<App>, deskhand_runtime::agent::RunObserver, Arc<AtomicBool>) -> Result<RunId, String>
    + Send
    + 'static,
) -> ApiResult<Json<Value>> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<RunId, String>>();
    let stop = Arc::new(AtomicBool::new(false));
    let app2 = app.clone();
    std::thread::Builder::new()
        .name("deskhand-run".into())
        .spawn(move || {
            let first = std::sync::Mutex::new(Some(tx.clone()));
            let stop2 = stop.clone();
            let app3 = app2.clone();
            let observer: deskhand_runtime::agent::RunObserver = Arc::new(move |run: &RunId, e: &Event| {
                let top =
                    matches!(e, Event::RunBegin { parent: None, .. } | Event::Resumed { .. }) && !run.0.contains('.');
                if top && let Some(tx) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    app3.running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((run.clone(), stop2.clone()));
                    let _ = tx.send(Ok(run.clone()));
                }
                app3.feeds.wake(run);
            });
            let result = run(&app2, observer, stop.clone());
            if let Err(e) = &result {
                let _ = tx.send(Err(e.clone()));
            }
            // Ended, however it ended: no longer running here.
            let ended = {
                let mut running = app2.running.lock().unwrap_or_else(|p| p.into_inner());
                let ended: Vec<RunId> = running
                    .iter()
                    .filter(|(_, flag)| Arc::ptr_eq(flag, &stop))
                    .map(|(r, _)| r.clone())
                    .collect();
                running.retain(|(_, flag)| !Arc::ptr_eq(flag, &stop));
                ended
            };
            for run in ended {
                app2.feeds.wake(&run);
            }
        })
        .map_err(|e| ApiError::internal(format!("could not start the run: {e}")))?;
    let run = blocking(move || rx.recv_timeout(Duration::from_secs(120)))
        .await?
        .map_err(|_| ApiError::new(StatusCode::GATEWAY_TIMEOUT, "the run did not start within two minutes"))?
        .map_err(ApiError::bad_request)?;
    Ok(Json(json!({"run": run.0})))
}

fn run_task(
    app: &Arc<App>,
    start: Start,
    model: Option<&str>,
    observer: deskhand_runtime::agent::RunObserver,
    stop: Arc<AtomicBool>,
) -> Result<RunId, String> {
    let ws = &app.workspace;
    let env = |k: &str| std::env::var(k).ok();
    let config = launch::model_config(ws, app.options.config_dir.as_deref(), &env, model).map_err(|e| e.to_string())?;
    let tb = app.toolbox()?;
    let shell = deskhand_runtime::shell::default_backend();
    let gate = UiGate { app: app.clone() };
    let warn = |w: String| eprintln!("warning: {w}");
    let l = Launch {
        workspace: ws,
        config,
        config_dir: app.options.config_dir.clone(),
        params: Vec::new(),
        gate: &gate,
        observer: Some(observer),
        shell: shell.as_deref(),
        warn: &warn,
        stop: Some(stop),
        // A person is there to ask.
        envelope: None,
    };
    let report = launch::launch_shared(l, &tb, start).map_err(|e| e.to_string())?;
    let _ = deskhand_runtime::ledger::write(ws, &report.run);
    Ok(report.run)
}
