//! Runs as the page reads them: the list, one run as the journal folds it,
//! its live events, its ledger; and stopping and undoing one. Starting one
//! is `start.rs`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use deskhand_runtime::changeset;
use deskhand_runtime::journal::Journal;
use deskhand_runtime::view::RunView;
use deskhand_types::RunId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::{PREVIEW_BYTES, blocking};
use crate::App;

pub(super) async fn runs(State(app): State<Arc<App>>) -> ApiResult<Json<Vec<Value>>> {
    let app2 = app.clone();
    let (tasks, changes) = blocking(move || {
        let tasks = app2.workspace.journal().tasks()?;
        let changes: Vec<(&'static str, bool)> = tasks
            .iter()
            .map(|t| {
                if t.parent.is_none() {
                    // A failed run may be a task the planner answered it cannot do.
                    let declined = t.status == "failed"
                        && RunView::load(app2.workspace.journal(), &t.id).is_ok_and(|v| v.declined);
                    (changes(&app2.workspace, &t.id), declined)
                } else {
                    ("none", false)
                }
            })
            .collect();
        Ok::<_, deskhand_runtime::Error>((tasks, changes))
    })
    .await??;
    let running: Vec<RunId> = app
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    let list = tasks
        .iter()
        .zip(changes)
        .rev()
        .filter(|(t, _)| t.parent.is_none())
        .map(|(t, (changes, declined))| {
            let mut run = run_json(t, running.contains(&t.id));
            run["changes"] = changes.into();
            run["declined"] = declined.into();
            run
        })
        .collect();
    Ok(Json(list))
}

/// A run as the page lists it. A run the journal calls running that no
/// thread of this server drives was interrupted (the server stopped while it
/// ran, or it runs in a terminal): the page offers to resume it.
fn run_json(t: &deskhand_runtime::journal::TaskRow, live: bool) -> Value {
    json!({"id": t.id.0, "created_at": t.created_at, "outcome": t.outcome, "status": t.status,
           "summary": t.summary, "live": live, "interrupted": interrupted(t, live)})
}

/// What a run (with its sub-agents) did to the person's folders and output/,
/// for the page to offer undo only where there is something to undo:
/// "applied" (something to undo), "undone", or "none".
fn changes(ws: &deskhand_runtime::workspace::Workspace, run: &RunId) -> &'static str {
    use deskhand_types::ChangesetStatus;
    let Ok(all) = changeset::changes_of(ws, run) else {
        return "none";
    };
    if all.iter().any(|(_, s, _)| *s == ChangesetStatus::Applied) {
        "applied"
    } else if all.iter().any(|(_, s, _)| *s == ChangesetStatus::Undone) {
        "undone"
    } else {
        "none"
    }
}

/// The run's own deliverables: the files in output/ its applied changesets
/// (with its sub-agents') created, overwrote or moved there, as they are now
/// (path under output/, size); the run records (`output/ledgers/`) are not
/// deliverables, nor are files since deleted.
fn deliverables(ws: &deskhand_runtime::workspace::Workspace, run: &RunId) -> Vec<Value> {
    use deskhand_types::{ChangeKind, ChangesetStatus};
    let out = ws.output_dir();
    let Ok(all) = changeset::changes_of(ws, run) else {
        return Vec::new();
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for change in all
        .into_iter()
        .filter(|(_, s, _)| *s == ChangesetStatus::Applied)
        .flat_map(|(_, _, c)| c)
        .filter(|c| c.kind != ChangeKind::Delete)
    {
        let Ok(rel) = change.result_path().strip_prefix(&out) else {
            continue;
        };
        if rel.starts_with("ledgers") || !seen.insert(rel.to_path_buf()) {
            continue;
        }
        if let Ok(meta) = std::fs::symlink_metadata(out.join(rel))
            && meta.is_file()
        {
            files.push(json!({"path": rel.display().to_string(), "size": meta.len()}));
        }
    }
    files
}

fn interrupted(t: &deskhand_runtime::journal::TaskRow, live: bool) -> bool {
    t.status == "running" && !live
}

pub(super) fn is_live(app: &App, run: &RunId) -> bool {
    app.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|(r, _)| r == run)
}

/// The journal's row for `run`, or a 404 naming it.
async fn task_row(app: &Arc<App>, run: &RunId) -> ApiResult<deskhand_runtime::journal::TaskRow> {
    let (app2, run2) = (app.clone(), run.clone());
    blocking(move || app2.workspace.journal().task(&run2))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("there is no run {run}")))
}

/// A run as the page shows it: the one fold of its journal (`RunView`, as
/// resume, the ledger and `deskhand show` read it) and each sub-agent's, by
/// id. The page asks again when its event stream brings something.
#[derive(Serialize)]
pub(super) struct RunPage {
    view: RunView,
    sub_agents: BTreeMap<String, RunView>,
    /// The journal says it runs but no thread of this server drives it (see [`run_json`]).
    interrupted: bool,
    /// Whether it changed anything that undo puts back ([`changes`]).
    changes: &'static str,
    /// The files its applied changes made or changed in output/ ([`deliverables`]).
    deliverables: Vec<Value>,
}

pub(super) async fn run_view(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>) -> ApiResult<Json<RunPage>> {
    let run = RunId(run);
    let t = task_row(&app, &run).await?;
    let interrupted = interrupted(&t, is_live(&app, &run));
    let (view, sub_agents, changes, deliverables) = blocking(move || {
        let (view, sub_agents) = folded(app.workspace.journal(), &run)?;
        let ws = &app.workspace;
        Ok::<_, deskhand_runtime::Error>((view, sub_agents, changes(ws, &run), deliverables(ws, &run)))
    })
    .await??;
    Ok(Json(RunPage {
        view,
        sub_agents,
        interrupted,
        changes,
        deliverables,
    }))
}

/// `run`'s fold and its sub-agents', at any depth. The calls are left out:
/// the page does not show them (its activity log is the event stream) and
/// their outputs can be large.
fn folded(journal: &Journal, run: &RunId) -> deskhand_runtime::Result<(RunView, BTreeMap<String, RunView>)> {
    let fold = |run: &RunId| {
        journal.events(run).map(|rows| RunView {
            calls: Vec::new(),
            ..RunView::fold(&rows)
        })
    };
    let view = fold(run)?;
    let mut sub_agents = BTreeMap::new();
    let mut todo: Vec<String> = view.children.iter().map(|c| c.run.clone()).collect();
    while let Some(child) = todo.pop() {
        if sub_agents.contains_key(&child) {
            continue;
        }
        let v = fold(&RunId(child.clone()))?;
        todo.extend(v.children.iter().map(|c| c.run.clone()));
        sub_agents.insert(child, v);
    }
    Ok((view, sub_agents))
}

#[derive(Deserialize)]
pub(super) struct After {
    after: Option<i64>,
}

/// The run's events (and its sub-agents'), replayed from the journal and
/// then live: a reload or a server restart loses nothing. Each viewer reads
/// what it has not sent when the run's one poller says there is more
/// (`feed.rs`); an idle viewer costs nothing.
pub(super) async fn events(
    State(app): State<Arc<App>>,
    UrlPath(run): UrlPath<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> ApiResult {
    let run = RunId(run);
    task_row(&app, &run).await?;
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
        // A call's end is told with its start (a stream resumed between the
        // two tells the end without what its result adds).
        let mut narrator = deskhand_runtime::words::Narrator::default();
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
                    // What it did, in the person's words (`words`), beside the event itself.
                    let said = narrator.line(&task, &event);
                    let data = json!({"run": task.0, "at": at, "event": event, "said": said}).to_string();
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
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

pub(super) async fn stop(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>) -> ApiResult<Json<Value>> {
    let run = RunId(run);
    let flag = app
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(r, _)| *r == run)
        .map(|(_, f)| f.clone())
        .ok_or_else(|| ApiError::conflict(format!("run {run} is not running in this server")))?;
    flag.store(true, Ordering::Relaxed);
    app.approvals.refuse_run(&run, "the person stopped the run");
    Ok(Json(json!({"stopping": run.0})))
}

#[derive(Deserialize)]
pub(super) struct UndoReq {
    #[serde(default)]
    force: bool,
}

pub(super) async fn undo(
    State(app): State<Arc<App>>,
    UrlPath(run): UrlPath<String>,
    Json(req): Json<UndoReq>,
) -> ApiResult<Json<Value>> {
    let run = RunId(run);
    let r = blocking(move || {
        let report = changeset::undo(&app.workspace, &run, req.force)?;
        let _ = deskhand_runtime::ledger::write(&app.workspace, &run);
        Ok::<_, changeset::ChangeError>(report)
    })
    .await?
    .map_err(|e| ApiError::conflict(e.to_string()))?;
    Ok(Json(
        json!({"restored": r.restored, "changesets": r.changesets, "trashed": r.trashed}),
    ))
}

/// The ledger of record (under `.deskhand/`, where no guest writes), never
/// the copy in output/.
pub(super) async fn ledger(State(app): State<Arc<App>>, UrlPath(run): UrlPath<String>) -> ApiResult<Json<Value>> {
    let id = RunId(run.clone());
    let mut text = blocking(move || deskhand_runtime::ledger::read(&app.workspace, &id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("run {run} has no ledger yet (it is written when the run ends)")))?;
    let cap = usize::try_from(PREVIEW_BYTES).unwrap_or(usize::MAX);
    if text.len() > cap {
        let cut = (0..=cap).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(cut);
        text.push_str(&format!(
            "\n\n(The ledger is longer than this page shows: `deskhand show {run} --ledger` prints it whole.)\n"
        ));
    }
    Ok(Json(json!({"text": text})))
}
