//! Routes: the page and its assets, and the JSON + SSE API.

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deskhand_runtime::agent::Approval;
use deskhand_runtime::changeset;
use deskhand_runtime::launch::{self, Launch, Start};
use deskhand_runtime::tools::BundledTool;
use deskhand_types::{Access, Event, Grant, Mode, RunId, Task};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::App;
use crate::approvals::{AnswerError, UiGate};
use crate::files::{self, FileError};
use crate::inert::{self, NotShown};
use crate::security::{self, refuse};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

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
        .route("/api/session", post(exchange))
        .route("/control/launch", post(control_launch))
        .route("/api/tickets", post(ticket))
        .route("/api/state", get(state))
        .route("/api/runs", get(runs))
        .route("/api/tasks", post(new_task))
        .route("/api/runs/{run}", get(run_info))
        .route("/api/runs/{run}/events", get(events))
        .route("/api/runs/{run}/resume", post(resume))
        .route("/api/runs/{run}/stop", post(stop))
        .route("/api/runs/{run}/undo", post(undo))
        .route("/api/runs/{run}/ledger", get(ledger))
        .route("/api/approvals/{id}", post(answer))
        .route("/api/output", get(output_list))
        .route("/api/preview/{*path}", get(preview))
        .route("/files/output/{*path}", get(download))
        .route("/view/output/{*path}", get(view_pdf))
        .route("/api/files/{name}", get(read_file).put(write_file))
        .layer(axum::middleware::from_fn_with_state(app.clone(), security::guard))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// Runs blocking runtime work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "deskhand failed while doing that; see its terminal",
        )
    })
}

/// The page: static, holding no data, so it needs no session. Its script
/// trades the launch token in the address for a session (`exchange`).
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

#[derive(Deserialize)]
struct Exchange {
    token: String,
}

/// Trades a launch token, once, for the session secret the page sends as
/// the `X-Deskhand-Session` header. Nothing is set in a cookie.
async fn exchange(State(app): State<Arc<App>>, Json(e): Json<Exchange>) -> Response {
    match app.sessions().exchange(&e.token, Instant::now()) {
        Ok(secret) => Json(json!({"session": secret})).into_response(),
        Err(why) => error(StatusCode::UNAUTHORIZED, why.message()),
    }
}

#[derive(Deserialize)]
struct Challenge {
    nonce: String,
    proof: String,
}

/// `deskhand open` asks for a launch token. It proves it holds the control
/// key in server.json (HMAC over its nonce and this port), each nonce once;
/// the answer proves this server holds it too.
async fn control_launch(State(app): State<Arc<App>>, Json(c): Json<Challenge>) -> Response {
    let expected = crate::session::proof(&app.control_key, &format!("client/{}", app.port), &c.nonce);
    // Only a proven request spends a nonce, so nobody else can grow the set.
    let proven = (16..=128).contains(&c.nonce.len()) && crate::session::constant_time_eq(&c.proof, &expected);
    let fresh = proven
        && app
            .control_nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.nonce.clone());
    if !fresh {
        return error(
            StatusCode::UNAUTHORIZED,
            "refused: that is not this server's control key",
        );
    }
    let token = app.sessions().new_launch_token(Instant::now());
    let proof = crate::session::proof(&app.control_key, &format!("server/{}", app.port), &c.nonce);
    Json(json!({"token": token, "proof": proof})).into_response()
}

#[derive(Deserialize)]
struct TicketReq {
    path: String,
}

/// A ticket for one download or framed PDF: a navigation cannot send the
/// session header, so its URL carries this (single-use, short-lived, bound
/// to that path) instead.
async fn ticket(State(app): State<Arc<App>>, Json(t): Json<TicketReq>) -> Response {
    if !(t.path.starts_with("/files/output/") || t.path.starts_with("/view/output/")) {
        return error(
            StatusCode::BAD_REQUEST,
            "tickets are only for /files/output/ and /view/output/",
        );
    }
    let ticket = app.sessions().new_ticket(&t.path, Instant::now());
    Json(json!({"ticket": ticket})).into_response()
}

async fn state(State(app): State<Arc<App>>) -> Response {
    let root = app.root.clone();
    let config_dir = app.options.config_dir.clone();
    let result = blocking(move || {
        let discovery =
            deskhand_runtime::skills::discover(&root, config_dir.as_ref().map(|d| d.join("skills")).as_deref());
        let skills: Vec<Value> = discovery
            .skills
            .iter()
            .map(|s| json!({"name": s.name, "description": s.description}))
            .collect();
        let mut folders = Vec::new();
        for sub in ["projects", "context"] {
            folders.push(sub.to_owned());
            if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy()))
                    .collect();
                names.sort();
                folders.extend(names);
            }
        }
        json!({"workspace": root.display().to_string(), "skills": skills, "folders": folders})
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn runs(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    match blocking(move || app2.workspace.journal().tasks()).await {
        Ok(Ok(tasks)) => {
            let running: Vec<RunId> = app
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(r, _)| r.clone())
                .collect();
            let list: Vec<Value> = tasks
                .iter()
                .rev()
                .filter(|t| t.parent.is_none())
                .map(|t| run_json(t, running.contains(&t.id)))
                .collect();
            Json(list).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// A run as the page lists it. A run the journal calls running that no
/// thread of this server drives was interrupted (the server stopped while it
/// ran, or it runs in a terminal): the page offers to resume it.
fn run_json(t: &deskhand_runtime::journal::TaskRow, live: bool) -> Value {
    json!({"id": t.id.0, "created_at": t.created_at, "outcome": t.outcome, "status": t.status,
           "summary": t.summary, "live": live, "interrupted": t.status == "running" && !live})
}

fn is_live(app: &App, run: &RunId) -> bool {
    app.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(r, _)| r == run)
}

async fn run_info(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>) -> Response {
    let run = RunId(run);
    let app2 = app.clone();
    let run2 = run.clone();
    match blocking(move || app2.workspace.journal().task(&run2)).await {
        Ok(Ok(Some(t))) => Json(run_json(&t, is_live(&app, &run))).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("there is no run {run}")),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct NewTask {
    outcome: String,
    #[serde(default)]
    grants: Vec<GrantIn>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct GrantIn {
    path: String,
    #[serde(default)]
    write: bool,
}

/// Starts a run on its own thread; answers with its id once it has one.
async fn new_task(State(app): State<Arc<App>>, Json(req): Json<NewTask>) -> Response {
    if req.outcome.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "describe the outcome you want first");
    }
    let mode = match req.mode.as_deref() {
        None | Some("ask") => Mode::Ask,
        Some("act") => Mode::Act,
        Some(other) => return error(StatusCode::BAD_REQUEST, format!("unknown mode {other:?}: ask or act")),
    };
    let grants: Vec<Grant> = req
        .grants
        .iter()
        .filter(|g| !g.path.trim().is_empty())
        .map(|g| Grant {
            path: PathBuf::from(g.path.trim()),
            access: if g.write { Access::ReadWrite } else { Access::ReadOnly },
        })
        .collect();
    // Check the grants now so a mistake is shown on the form, not in a failed run.
    let app2 = app.clone();
    let checked = blocking(move || {
        app2.workspace
            .sandbox(&grants, deskhand_runtime::wasm::Limits::default())
            .map(|_| grants)
            .map_err(|e| e.to_string())
    })
    .await;
    let grants = match checked {
        Ok(Ok(grants)) => grants,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        Err(r) => return r,
    };
    let task = Task {
        outcome: req.outcome.trim().to_owned(),
        grants,
        mode,
    };
    let model = req.model.filter(|m| !m.is_empty());
    start_run(app, Start::New(task), model).await
}

#[derive(Deserialize)]
struct ResumeReq {
    #[serde(default)]
    answer: Option<String>,
}

/// Resumes a run that stopped without ending (the server was stopped while
/// it ran or waited for an approval), as `deskhand resume` does.
async fn resume(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>, Json(r): Json<ResumeReq>) -> Response {
    let run = RunId(run);
    if is_live(&app, &run) {
        return error(StatusCode::CONFLICT, format!("run {run} is already running here"));
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

/// Runs `start` on its own thread with the `UiGate`; answers with the run's
/// id once the run has one (its `RunBegin`, or `Resumed`).
async fn start_run(app: Arc<App>, start: Start, model: Option<String>) -> Response {
    let (tx, rx) = std::sync::mpsc::channel::<Result<RunId, String>>();
    let stop = Arc::new(AtomicBool::new(false));
    let app2 = app.clone();
    let spawned = std::thread::Builder::new().name("deskhand-run".into()).spawn(move || {
        let first = std::sync::Mutex::new(Some(tx.clone()));
        let stop2 = stop.clone();
        let app3 = app2.clone();
        let observer: deskhand_runtime::agent::RunObserver = Arc::new(move |run: &RunId, e: &Event| {
            let top = matches!(e, Event::RunBegin { parent: None, .. } | Event::Resumed { .. }) && !run.0.contains('.');
            if top && let Some(tx) = first.lock().unwrap_or_else(|p| p.into_inner()).take() {
                app3.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((run.clone(), stop2.clone()));
                let _ = tx.send(Ok(run.clone()));
            }
            app3.feeds.wake(run);
        });
        let result = run_task(&app2, start, model.as_deref(), observer, stop.clone());
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
    });
    if let Err(e) = spawned {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not start the run: {e}"),
        );
    }
    match blocking(move || rx.recv_timeout(Duration::from_secs(120))).await {
        Ok(Ok(Ok(run))) => Json(json!({"run": run.0})).into_response(),
        Ok(Ok(Err(message))) => error(StatusCode::BAD_REQUEST, message),
        Ok(Err(_)) => error(StatusCode::GATEWAY_TIMEOUT, "the run did not start within two minutes"),
        Err(r) => r,
    }
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
    };
    let report = launch::launch_shared(l, &tb, start).map_err(|e| e.to_string())?;
    let _ = deskhand_runtime::ledger::write(ws, &report.run);
    Ok(report.run)
}

#[derive(Deserialize)]
struct After {
    after: Option<i64>,
}

/// The run's events (and its sub-agents'), replayed from the journal and
/// then live: a reload or a server restart loses nothing. Each viewer reads
/// what it has not sent when the run's one poller says there is more
/// (`feed.rs`); an idle viewer costs nothing.
async fn events(
    State(app): State<Arc<App>>,
    UrlPath(run): UrlPath<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> Response {
    let run = RunId(run);
    let (app2, run2) = (app.clone(), run.clone());
    match blocking(move || app2.workspace.journal().task(&run2)).await {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => return error(StatusCode::NOT_FOUND, format!("there is no run {run}")),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => return r,
    }
    let last: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(q.after)
        .unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(256);
    tokio::spawn(async move {
        let mut after = last;
        let mut changed = app.feeds.subscribe(&run);
        loop {
            // Everything not sent yet, page by page.
            loop {
                let (app2, run2) = (app.clone(), run.clone());
                let batch =
                    tokio::task::spawn_blocking(move || app2.workspace.journal().events_after(&run2, after)).await;
                let Ok(Ok(batch)) = batch else { return };
                if batch.is_empty() {
                    break;
                }
                for (seq, task, at, event) in batch {
                    after = seq;
                    let data = json!({"run": task.0, "at": at, "event": event}).to_string();
                    if tx
                        .send(Ok(SseEvent::default().id(seq.to_string()).data(data)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            crate::feed::Feeds::poll(&app, &run, after);
            tokio::select! {
                woke = changed.changed() => if woke.is_err() { changed = app.feeds.subscribe(&run) },
                () = tx.closed() => return,
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn stop(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>) -> Response {
    let run = RunId(run);
    let flag = app
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(r, _)| *r == run)
        .map(|(_, f)| f.clone());
    let Some(flag) = flag else {
        return error(StatusCode::CONFLICT, format!("run {run} is not running in this server"));
    };
    flag.store(true, Ordering::Relaxed);
    app.approvals.refuse_run(&run, "the person stopped the run");
    Json(json!({"stopping": run.0})).into_response()
}

#[derive(Deserialize)]
struct UndoReq {
    #[serde(default)]
    force: bool,
}

async fn undo(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>, Json(req): Json<UndoReq>) -> Response {
    let run = RunId(run);
    let app2 = app.clone();
    let result = blocking(move || {
        let report = changeset::undo(&app2.workspace, &run, req.force)?;
        let _ = deskhand_runtime::ledger::write(&app2.workspace, &run);
        Ok::<_, changeset::ChangeError>(report)
    })
    .await;
    match result {
        Ok(Ok(r)) => {
            Json(json!({"restored": r.restored, "changesets": r.changesets, "trashed": r.trashed})).into_response()
        }
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(r) => r,
    }
}

/// The ledger of record (under `.deskhand/`, where no guest writes), never
/// the copy in output/.
async fn ledger(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>) -> Response {
    let id = RunId(run.clone());
    match blocking(move || deskhand_runtime::ledger::read(&app.workspace, &id)).await {
        Ok(Ok(Some(mut text))) => {
            let cap = usize::try_from(PREVIEW_BYTES).unwrap_or(usize::MAX);
            if text.len() > cap {
                let cut = (0..=cap).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.truncate(cut);
                text.push_str(&format!(
                    "\n\n(The ledger is longer than this page shows: `deskhand show {run} --ledger` prints it whole.)\n"
                ));
            }
            Json(json!({"text": text})).into_response()
        }
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            format!("run {run} has no ledger yet (it is written when the run ends)"),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct Answer {
    approve: bool,
}

async fn answer(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>, Json(a): Json<Answer>) -> Response {
    let approval = if a.approve {
        Approval::Approved {
            by: "the person, in the browser".into(),
        }
    } else {
        Approval::Rejected {
            reason: "the person rejected it in the browser".into(),
        }
    };
    match app.approvals.answer(&id, approval) {
        Ok(run) => Json(json!({"run": run.0, "approved": a.approve})).into_response(),
        Err(AnswerError::Unknown) => error(
            StatusCode::CONFLICT,
            "this approval was already answered or never asked; an approval is used once",
        ),
        Err(AnswerError::Expired) => error(StatusCode::GONE, "this approval expired; run the task again"),
    }
}

/// A relative path under output/ with plain components only.
fn output_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))).then(|| p.to_path_buf())
}

async fn output_list(State(app): State<Arc<App>>) -> Response {
    let out = app.workspace.output_dir();
    let result = blocking(move || {
        let mut files = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(out.join(&rel)) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let name = rel.join(e.file_name());
                if meta.is_dir() {
                    stack.push(name);
                } else if meta.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
                    files.push(json!({"path": name.display().to_string(), "size": meta.len()}));
                }
            }
        }
        files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        files
    })
    .await;
    match result {
        Ok(files) => Json(files).into_response(),
        Err(r) => r,
    }
}

/// Opens a file under output/ off the async workers (see `files.rs`).
async fn open_output(app: &App, rel: PathBuf) -> Result<(files::Opened, String), Response> {
    let out = app.workspace.output_dir();
    let shown = format!("output/{}", rel.display());
    let shown2 = shown.clone();
    match blocking(move || files::open_beneath(&out, &rel, &shown2)).await? {
        Ok(opened) => Ok((opened, shown)),
        Err(e @ FileError::Missing(_)) => Err(refuse(StatusCode::NOT_FOUND, &e.to_string())),
        Err(e) => Err(refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())),
    }
}

/// A file under output/, streamed: its length from the open handle, its
/// bytes read in chunks on the blocking pool, never whole in memory.
async fn download(State(app): State<Arc<App>>, UrlPath(path): UrlPath<String>) -> Response {
    let Some(rel) = output_path(&path) else {
        return refuse(StatusCode::BAD_REQUEST, "refused: name a file under output/");
    };
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], ""))
        .unwrap_or_default();
    let (opened, shown) = match open_output(&app, rel).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let size = opened.size;
    let mut r = Response::new(files::stream(opened, shown));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        name.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "_"),
        url_path(Path::new(&name))
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[derive(Deserialize)]
struct PreviewQuery {
    page: Option<u32>,
}

/// Runs a read-only operation of a bundled tool on a file in output/, in a
/// sandbox that holds only output/, without journaling it: a preview changes
/// nothing and is not a run.
fn sandboxed_read(app: &App, tool: BundledTool, op: &str, args: Value) -> Result<Value, String> {
    let tb = app.bundled_toolbox()?;
    let sandbox = app
        .workspace
        .sandbox(&[], deskhand_runtime::wasm::Limits::default())
        .map_err(|e| e.to_string())?;
    let loaded = tb.get(tool).map_err(|e| e.to_string())?;
    loaded
        .call(&sandbox, op, &args.to_string(), None)
        .result
        .map(|out| out.json)
        .map_err(|e| e.to_string())
}

/// A PDF under output/, shown inline so the page can frame it in the
/// browser's own PDF viewer (the security layer lets only this page frame
/// `/view/`): not the file itself, whose scripts that viewer would run, but
/// its inert copy (`inert.rs`), streamed. Anything that is not a PDF, or
/// cannot be made inert, is refused in words.
async fn view_pdf(State(app): State<Arc<App>>, UrlPath(path): UrlPath<String>) -> Response {
    let Some(rel) = output_path(&path) else {
        return refuse(StatusCode::BAD_REQUEST, "refused: name a file under output/");
    };
    if !rel.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "refused: only PDFs are shown inline; download other files",
        );
    }
    let (opened, shown) = match open_output(&app, rel).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let shown2 = shown.clone();
    let copy = blocking(move || {
        let (dir, copy) = inert::inert_copy(&app, opened, &shown2)?;
        files::open_beneath(&dir, &copy, &shown2).map_err(|e| NotShown::Failed(e.to_string()))
    })
    .await;
    match copy {
        Ok(Ok(opened)) => {
            let size = opened.size;
            let mut r = Response::new(files::stream(opened, shown));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            r
        }
        Ok(Err(e @ NotShown::Refused(_))) => refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        Ok(Err(e @ NotShown::Failed(_))) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(r) => r,
    }
}

/// A preview: CSV and xlsx as tables (xlsx read by the sandboxed xlsx tool),
/// a PDF page by page (its text, by the sandboxed pdf tool, and the page of
/// its inert copy in the browser's viewer, or why there is none), text as text.
async fn preview(
    State(app): State<Arc<App>>,
    UrlPath(path): UrlPath<String>,
    Query(query): Query<PreviewQuery>,
) -> Response {
    let Some(rel) = path.strip_prefix("output/").and_then(output_path) else {
        return error(StatusCode::BAD_REQUEST, "name a file under output/");
    };
    let ext = rel
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let app2 = app.clone();
    let result = blocking(move || -> Result<Value, String> {
        // Regular files only, for the tools too (a FIFO would hold their thread).
        let shown = format!("output/{}", rel.display());
        let opened = files::open_beneath(&app2.workspace.output_dir(), &rel, &shown).map_err(|e| e.to_string())?;
        match ext.as_str() {
            "xlsx" | "xls" | "ods" => {
                let file = app2.workspace.output_dir().join(&rel);
                let data = sandboxed_read(
                    &app2,
                    BundledTool::Xlsx,
                    "read",
                    json!({"path": file.display().to_string(), "max_rows": 200}),
                )?;
                Ok(json!({"kind": "sheets", "data": data}))
            }
            "pdf" => {
                let file = app2.workspace.output_dir().join(&rel);
                let page = query.page.unwrap_or(1).max(1);
                let data = sandboxed_read(
                    &app2,
                    BundledTool::Pdf,
                    "text",
                    json!({"path": file.display().to_string(), "pages": page.to_string(), "max_chars": 20_000}),
                )?;
                let text = data["pages"][0]["text"].as_str().unwrap_or_default().to_owned();
                // Made (or found) now, so the frame's request is quick and a
                // file that cannot be made inert is explained in the page.
                let (view, not_shown) = match inert::inert_copy(&app2, opened, &shown) {
                    Ok(_) => (
                        json!(format!("/view/output/{}#page={page}", url_path(&rel))),
                        Value::Null,
                    ),
                    Err(e) => (Value::Null, json!(e.to_string())),
                };
                Ok(json!({
                    "kind": "pdf",
                    "page": page,
                    "pages": data["page_count"],
                    "text": text,
                    "view": view,
                    "not_shown": not_shown,
                }))
            }
            _ => {
                let (bytes, more) = files::read_prefix(opened, PREVIEW_BYTES, &shown).map_err(|e| e.to_string())?;
                let text = files::utf8_prefix(bytes, more)
                    .ok_or_else(|| format!("{shown} is not text; download it to open it"))?;
                if ext == "csv" {
                    let rows: Vec<Vec<String>> = text
                        .lines()
                        .take(500)
                        .map(|l| split_csv_line(l).into_iter().take(200).collect())
                        .collect();
                    Ok(json!({"kind": "table", "rows": rows, "truncated": more}))
                } else {
                    Ok(json!({"kind": "text", "text": text, "truncated": more}))
                }
            }
        }
    })
    .await;
    match result {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(r) => r,
    }
}

/// A relative path as a URL path: each segment percent-encoded (`#`, `%`,
/// spaces and non-ASCII included), joined by `/`.
fn url_path(rel: &Path) -> String {
    rel.components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn split_csv_line(line: &str) -> Vec<String> {
    let (mut out, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    out.push(cell);
    out
}

fn named_file(app: &App, name: &str) -> Option<PathBuf> {
    match name {
        "instructions" => Some(app.root.join(deskhand_runtime::workspace::INSTRUCTIONS_FILE)),
        "memory" => Some(app.root.join(deskhand_runtime::workspace::MEMORY_FILE)),
        _ => None,
    }
}

/// The largest instruction or memory file the page edits.
const NAMED_FILE_BYTES: u64 = 1 << 20;

async fn read_file(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(path) = named_file(&app, &name) else {
        return error(
            StatusCode::NOT_FOUND,
            "only the instruction and memory files are served",
        );
    };
    let shown = path.display().to_string();
    match blocking(move || files::read_named(&path, NAMED_FILE_BYTES)).await {
        Ok(Ok(text)) => {
            let text = text.unwrap_or_default();
            let sha = hex::encode(Sha256::digest(text.as_bytes()));
            Json(json!({"path": shown, "text": text, "sha256": sha})).into_response()
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct FileWrite {
    text: String,
    base_sha256: String,
}

/// Saves the instruction or memory file, only if nobody changed it since it was loaded.
async fn write_file(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>, Json(w): Json<FileWrite>) -> Response {
    let Some(path) = named_file(&app, &name) else {
        return error(
            StatusCode::NOT_FOUND,
            "only the instruction and memory files can be edited here",
        );
    };
    let result = blocking(move || {
        let current = files::read_named(&path, NAMED_FILE_BYTES).map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e))?;
        if hex::encode(Sha256::digest(current.unwrap_or_default().as_bytes())) != w.base_sha256 {
            return Err((
                StatusCode::CONFLICT,
                "the file changed since you opened it (another edit or a run); reload it, then make your change again"
                    .to_owned(),
            ));
        }
        let tmp = path.with_extension("md.deskhand-tmp");
        let written = std::fs::write(&tmp, w.text.as_bytes())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not save {}: {e}", path.display()),
            )
        })?;
        Ok(hex::encode(Sha256::digest(w.text.as_bytes())))
    })
    .await;
    match result {
        Ok(Ok(sha)) => Json(json!({"sha256": sha})).into_response(),
        Ok(Err((status, e))) => error(status, e),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_urls_encode_every_segment() {
        assert_eq!(
            url_path(Path::new("sub dir/report #2 50%.pdf")),
            "sub%20dir/report%20%232%2050%25.pdf"
        );
        assert_eq!(url_path(Path::new("café.pdf")), "caf%C3%A9.pdf");
    }

    #[test]
    fn output_paths_are_plain_relative_names() {
        assert_eq!(output_path("inventory.csv"), Some(PathBuf::from("inventory.csv")));
        assert_eq!(output_path("sub/x.txt"), Some(PathBuf::from("sub/x.txt")));
        for bad in ["", "../INSTRUCTIONS.md", "/etc/passwd", "a/../../b", "./x"] {
            assert_eq!(output_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(split_csv_line(r#"a,"b, c","say ""hi""""#), ["a", "b, c", r#"say "hi""#]);
        assert_eq!(split_csv_line(""), [""]);
    }
}
