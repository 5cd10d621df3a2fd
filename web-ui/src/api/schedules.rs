//! The Schedules page: this workspace's scheduled tasks (their times, state
//! and last runs), a schedule previewed and saved as the person saw it,
//! and pause, resume, run now and remove, as `deskhand schedule` does on
//! the terminal, on the same per-user database (`Schedules`).
//!
//! What holds: a schedule is prepared by the runtime's one
//! [`schedule::prepare::prepare`] (the CLI's too); preview saves nothing, and save
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
    /// Missing reads as empty, refused in words like an empty one.
    #[serde(default)]
    task: String,
    /// A phrase ("weekday 08:00") or a cron expression ("0 8 * * 1-5").
    #[serde(default)]
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
        ScheduleError::NoSuchSchedule { id } => {
            ApiError::not_found(format!("there is no schedule {id}; reload the page"))
        }
        _ => ApiError::bad_request(e.to_string()),
    }
}

fn store(app: &App) -> ApiResult<Schedules> {
    let dir = app.options.config_dir.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "there is no config folder for schedules: start deskhand with XDG_CONFIG_HOME or HOME set",
        )
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
fn listed(app: &App, store: &Schedules, s: &Schedule, here: Option<Tz>) -> ApiResult<Value> {
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
                // What the run is now: one stopped for the person may since have gone on with them.
                "run_now": o.run.as_ref().and_then(|r| app.workspace.journal().task(r).ok().flatten()).map(|t| t.status),
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
            .map(|s| listed(&app, &store, s, here))
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
    change(app, id, "paused", |store, id| store.pause(id)).await
}

pub(super) async fn resume(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> ApiResult<Json<Value>> {
    change(app, id, "resumed", |store, id| store.resume(id, Utc::now())).await
}

pub(super) async fn remove(State(app): State<Arc<App>>, UrlPath(id): UrlPath<i64>) -> ApiResult<Json<Value>> {
    change(app, id, "removed", |store, id| store.remove(id)).await
}

/// Does `f` to this workspace's schedule `id`; answers `{said: id}`.
async fn change(
    app: Arc<App>,
    id: i64,
    said: &'static str,
    f: fn(&Schedules, i64) -> Result<Schedule, ScheduleError>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let store = store(&app)?;
        ours(&app, &store, id)?;
        f(&store, id).map_err(refused)?;
        Ok(Json(json!({ said: id })))
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
        o.run
            .ok_or_else(|| o.note.unwrap_or_else(|| "the run did not start".into()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request, StatusCode, header};
    use deskhand_runtime::schedule::{NewSchedule, When};
    use deskhand_runtime::workspace::Workspace;
    use deskhand_types::{Grant, Mode};
    use tower::ServiceExt;

    use super::*;
    use crate::session::{HEADER, Sessions};
    use crate::{Lifetimes, Options};

    const PORT: u16 = 47_124;

    /// The router of a server over a fresh workspace with a `projects/`
    /// folder, its config (and schedules) in a folder of its own, and a session.
    struct Page {
        _dir: tempfile::TempDir,
        app: Arc<App>,
        session: String,
    }

    impl Page {
        fn new() -> Page {
            let dir = tempfile::tempdir().expect("temp dir");
            let root = dir.path().join("ws");
            let (workspace, _) = Workspace::init(&root).expect("workspace");
            std::fs::create_dir_all(root.join("projects/notes")).expect("projects");
            std::fs::write(root.join("projects/notes/a.txt"), "a note\n").expect("a file");
            let lifetimes = Lifetimes::default();
            let options = Options {
                workspace: root,
                port: PORT,
                // Compiled tools kept between runs of the tests: drafting a plan loads them.
                cache_dir: Some(std::env::temp_dir().join("deskhand-web-ui-tests-wasm-cache")),
                config_dir: Some(dir.path().join("cfg")),
                lifetimes,
            };
            let app = Arc::new(App::new(
                workspace,
                PORT,
                crate::random_hex(32),
                Sessions::new(lifetimes),
                options,
            ));
            let session = {
                let mut sessions = app.sessions();
                let token = sessions.new_launch_token(Instant::now());
                sessions.exchange(&token, Instant::now()).expect("a fresh token")
            };
            Page {
                _dir: dir,
                app,
                session,
            }
        }

        /// `method uri` with `body` as the page sends it; the status and the JSON answer.
        fn call(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::HOST, format!("127.0.0.1:{PORT}"))
                .header(header::ORIGIN, format!("http://127.0.0.1:{PORT}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(HEADER, &self.session)
                .body(Body::from(body.to_string()))
                .expect("request");
            let router = crate::api::router(self.app.clone());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    let response = router.oneshot(request).await.expect("infallible");
                    let status = response.status();
                    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
                    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                })
        }

        fn store(&self) -> Schedules {
            store(&self.app).expect("the schedule database")
        }
    }

    /// A string in an answer, or "" where there is none.
    fn text(v: &Value) -> &str {
        v.as_str().unwrap_or_default()
    }

    fn form(every: &str) -> Value {
        json!({"task": "Make a file inventory of projects/notes", "every": every, "zone": "Europe/Berlin",
               "here": "America/New_York", "grants": [{"path": "projects"}], "mode": "act", "missed": "skip"})
    }

    #[test]
    fn each_bad_input_is_refused_in_words_and_nothing_is_saved() {
        let page = Page::new();
        let with = |key: &str, value: Value| {
            let mut f = form("weekday 08:00");
            f[key] = value;
            f
        };
        let mut no_zone = with("zone", Value::Null);
        no_zone["here"] = Value::Null;
        for (body, words) in [
            (form("every fortnight"), "does not know the phrase \"every fortnight\""),
            (form("0 8 * *"), "it has 4 fields"),
            (form(""), "say when it runs"),
            (
                with("zone", json!("Europe/Berln")),
                "is not a time zone deskhand knows. Did you mean one of Europe/Berlin",
            ),
            (with("task", json!("  ")), "the task is empty"),
            (with("mode", json!("yolo")), "unknown mode \"yolo\""),
            (with("missed", json!("later")), "unknown missed-run policy \"later\""),
            (
                with("grants", json!([{"path": "projects/scans"}])),
                "projects/scans does not exist",
            ),
            (no_zone, "say which time zone"),
            (json!({"every": "weekday 08:00", "zone": "UTC"}), "the task is empty"),
        ] {
            let (status, answer) = page.call(Method::POST, "/api/schedules/preview", body.clone());
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            let said = text(&answer["error"]);
            assert!(said.contains(words), "{words:?} not in {said:?}");
        }
        let (status, answer) = page.call(Method::POST, "/api/schedules", form("weekday 08:00"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(text(&answer["error"]).contains("preview the schedule first"));
        assert!(page.store().list().expect("list").is_empty());
    }

    #[test]
    fn a_schedule_is_saved_only_as_previewed_and_only_this_workspaces_are_listed_or_changed() {
        let page = Page::new();
        let (status, shown) = page.call(Method::POST, "/api/schedules/preview", form("0 7 * * 1"));
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["when"], "cron 0 7 * * 1 (Europe/Berlin): At 07:00, on Monday.");
        let next = shown["next"].as_array().expect("next times");
        assert_eq!(next.len(), 5);
        assert!(
            text(&next[0]["there"]).ends_with("07:00 CET") || text(&next[0]["there"]).ends_with("07:00 CEST"),
            "{next:?}"
        );
        assert!(next[0]["here"].as_str().is_some_and(|h| h.contains(" E")), "{next:?}");
        assert!(text(&shown["envelope"]).contains("read projects/"), "{shown}");
        assert!(page.store().list().expect("list").is_empty(), "a preview saves nothing");

        let mut stale = form("0 7 * * 1");
        stale["hash"] = json!("0".repeat(64));
        let (status, answer) = page.call(Method::POST, "/api/schedules", stale);
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(text(&answer["error"]).contains("the plan changed since you saw it; look again"));
        assert!(page.store().list().expect("list").is_empty());

        let mut seen = form("0 7 * * 1");
        seen["hash"] = shown["hash"].clone();
        let (status, saved) = page.call(Method::POST, "/api/schedules", seen);
        assert_eq!(status, StatusCode::OK, "{saved}");
        let id = saved["id"].as_i64().expect("an id");

        // Another workspace's schedule, in the same per-user database.
        let elsewhere = page
            .store()
            .add(
                &NewSchedule {
                    task: "someone else's".into(),
                    phrase: None,
                    when: When::new("0 9 * * *", "UTC").expect("when"),
                    workspace: "/elsewhere".into(),
                    grants: vec![Grant::read_only("projects")],
                    mode: Mode::Act,
                    missed: MissedPolicy::Skip,
                    envelope: None,
                },
                Utc::now(),
            )
            .expect("saved")
            .id;
        let (status, list) = page.call(Method::GET, "/api/schedules?here=America/New_York", Value::Null);
        assert_eq!(status, StatusCode::OK, "{list}");
        let listed = list["schedules"].as_array().expect("schedules");
        assert_eq!(listed.len(), 1, "{list}");
        assert_eq!(listed[0]["id"], id);
        assert_eq!(listed[0]["paused"], false);
        for action in ["pause", "resume", "run-now"] {
            let (status, _) = page.call(Method::POST, &format!("/api/schedules/{elsewhere}/{action}"), json!({}));
            assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
        }
        let (status, _) = page.call(Method::DELETE, &format!("/api/schedules/{elsewhere}"), json!({}));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!page.store().get(elsewhere).expect("kept").paused);

        let (status, _) = page.call(Method::POST, &format!("/api/schedules/{id}/pause"), json!({}));
        assert_eq!(status, StatusCode::OK);
        assert!(page.store().get(id).expect("paused").paused);
        let (_, list) = page.call(Method::GET, "/api/schedules", Value::Null);
        assert_eq!(list["schedules"][0]["paused"], true);
        assert_eq!(list["schedules"][0]["next"], Value::Null);
        let (status, _) = page.call(Method::DELETE, &format!("/api/schedules/{id}"), json!({}));
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = page.call(Method::POST, &format!("/api/schedules/{id}/resume"), json!({}));
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert_eq!(
            page.store().list().expect("list").len(),
            1,
            "only the other workspace's is left"
        );
    }
}
