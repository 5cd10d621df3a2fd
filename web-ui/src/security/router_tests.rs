//! The security layer in front of the real router, in process (no socket):
//! each refusal answers its status and leaves the memory file, the one
//! thing these requests could change, as it was; and what the page reads
//! through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use deskhand_runtime::view::RunView;
use deskhand_runtime::workspace::{MEMORY_FILE, Workspace};
use deskhand_types::{Event, Mode, Plan, PlanStep, RunId, StepEffects, StepStatus, Task};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::session::{HEADER, Sessions};
use crate::{App, Lifetimes, Options};

const PORT: u16 = 47_123;
const HOST: &str = "127.0.0.1:47123";
const ORIGIN: &str = "http://127.0.0.1:47123";

struct Server {
    _dir: tempfile::TempDir,
    app: Arc<App>,
    router: Router,
    memory: PathBuf,
}

impl Server {
    fn new(lifetimes: Lifetimes) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let (workspace, _) = Workspace::init(dir.path()).expect("workspace");
        let memory = workspace.root().join(MEMORY_FILE);
        let options = Options {
            workspace: dir.path().to_path_buf(),
            port: PORT,
            cache_dir: None,
            config_dir: None,
            lifetimes,
        };
        let app = Arc::new(App::new(
            workspace,
            PORT,
            crate::random_hex(32),
            Sessions::new(lifetimes),
            options,
        ));
        let router = crate::api::router(app.clone());
        Server {
            _dir: dir,
            app,
            router,
            memory,
        }
    }

    /// A session as the page holds one after trading its launch token.
    fn session(&self) -> String {
        let mut sessions = self.app.sessions();
        let token = sessions.new_launch_token(Instant::now());
        sessions.exchange(&token, Instant::now()).expect("a fresh token")
    }

    fn memory(&self) -> String {
        std::fs::read_to_string(&self.memory).expect("memory file")
    }

    /// The page's save of the memory file: a PUT with every header it sends.
    fn save_memory(&self, session: &str) -> Request<Body> {
        let base = hex::encode(Sha256::digest(self.memory().as_bytes()));
        page(Method::PUT, "/api/files/memory", session)
            .body(Body::from(json!({"text": "changed", "base_sha256": base}).to_string()))
            .expect("request")
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Sends `request` and checks it was refused with `status` and changed nothing.
    async fn refused(&self, request: Request<Body>, status: StatusCode, case: &str) -> String {
        let before = self.memory();
        let (got, body) = self.send(request).await;
        assert_eq!(got, status, "{case}: {body}");
        assert_eq!(self.memory(), before, "{case} changed the memory file");
        body
    }
}

/// A request as the page sends it: this host, this origin, JSON, the session.
fn page(method: Method, uri: &str, session: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .header(HEADER, session)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn the_page_saves_with_its_session_origin_and_json() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        let response = s
            .router
            .clone()
            .oneshot(s.save_memory(&session))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(s.memory(), "changed");

        // A stale save is the API's own refusal, in the JSON the page reads.
        let stale = page(Method::PUT, "/api/files/memory", &session)
            .body(Body::from(json!({"text": "lost", "base_sha256": "0"}).to_string()))
            .expect("request");
        let body = s.refused(stale, StatusCode::CONFLICT, "stale save").await;
        let v: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("changed since you opened it")),
            "{v}"
        );
    });
}

#[test]
fn a_foreign_or_missing_host_is_refused() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        for host in [
            Some("evil.example"),
            Some("127.0.0.1.evil.example"),
            Some("127.0.0.1.evil.example:47123"),
            Some("127.0.0.1:47124"),
            Some("127.0.0.1"),
            None,
        ] {
            let mut request = s.save_memory(&session);
            match host {
                Some(h) => request.headers_mut().insert(header::HOST, h.parse().expect("header")),
                None => request.headers_mut().remove(header::HOST),
            };
            let body = s
                .refused(request, StatusCode::MISDIRECTED_REQUEST, &format!("host {host:?}"))
                .await;
            assert!(
                body.starts_with("refused: this server answers only to 127.0.0.1"),
                "{body}"
            );
        }
        // Reads too: a rebound name gets no data.
        let mut read = page(Method::GET, "/api/files/memory", &session)
            .body(Body::empty())
            .expect("request");
        read.headers_mut()
            .insert(header::HOST, "evil.example".parse().expect("header"));
        let (status, body) = s.send(read).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        assert!(!body.contains(&s.memory()), "{body}");
    });
}

#[test]
fn a_change_from_a_foreign_or_missing_origin_is_refused() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        for origin in [
            Some("http://evil.example"),
            Some("http://127.0.0.1:47123.evil.example"),
            Some("https://127.0.0.1:47123"),
            Some("http://localhost:47123"),
            Some("null"),
            None,
        ] {
            let mut request = s.save_memory(&session);
            match origin {
                Some(o) => request.headers_mut().insert(header::ORIGIN, o.parse().expect("header")),
                None => request.headers_mut().remove(header::ORIGIN),
            };
            let body = s
                .refused(request, StatusCode::FORBIDDEN, &format!("origin {origin:?}"))
                .await;
            assert!(body.contains("foreign or missing Origin"), "{body}");
        }
    });
}

#[test]
fn a_request_without_a_live_session_is_refused() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let live = s.session();
        let mut missing = s.save_memory(&live);
        missing.headers_mut().remove(HEADER);
        let body = s.refused(missing, StatusCode::UNAUTHORIZED, "no session header").await;
        assert!(body.starts_with("refused: no session"), "{body}");
        let wrong = s.save_memory(&crate::random_hex(32));
        s.refused(wrong, StatusCode::UNAUTHORIZED, "an unknown secret").await;

        let read = page(Method::GET, "/api/runs", "").body(Body::empty()).expect("request");
        s.refused(read, StatusCode::UNAUTHORIZED, "a read without a session")
            .await;

        let ended = Server::new(Lifetimes {
            absolute: Duration::ZERO,
            ..Lifetimes::default()
        });
        let session = ended.session();
        let body = ended
            .refused(
                ended.save_memory(&session),
                StatusCode::UNAUTHORIZED,
                "an ended session",
            )
            .await;
        assert!(body.contains("this session has ended"), "{body}");
    });
}

#[test]
fn a_change_not_sent_as_json_is_refused() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let mut request = s.save_memory(&session);
            match content_type {
                Some(t) => request
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, t.parse().expect("header")),
                None => request.headers_mut().remove(header::CONTENT_TYPE),
            };
            let body = s
                .refused(
                    request,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!("content type {content_type:?}"),
                )
                .await;
            assert_eq!(body, "refused: changes are sent as JSON\n");
        }
    });
}

fn exchange(token: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/session")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"token": token}).to_string()))
        .expect("request")
}

#[test]
fn a_launch_token_opens_one_session_once_and_in_time() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let token = s.app.sessions().new_launch_token(Instant::now());
        let (status, body) = s.send(exchange(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        let session = v["session"].as_str().expect("a session").to_owned();

        let body = s
            .refused(exchange(&token), StatusCode::UNAUTHORIZED, "a used token")
            .await;
        let v: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(v["session"].is_null(), "{v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("already used or has expired")),
            "{v}"
        );
        s.refused(exchange("not-a-token"), StatusCode::UNAUTHORIZED, "an unknown token")
            .await;

        let (status, _) = s.send(s.save_memory(&session)).await;
        assert_eq!(status, StatusCode::OK, "the one session works");

        let late = Server::new(Lifetimes {
            launch: Duration::ZERO,
            ..Lifetimes::default()
        });
        let token = late.app.sessions().new_launch_token(Instant::now());
        let body = late
            .refused(exchange(&token), StatusCode::UNAUTHORIZED, "an expired token")
            .await;
        assert!(body.contains("already used or has expired"), "{body}");
    });
}

#[test]
fn a_download_ticket_serves_one_get_of_its_path() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        std::fs::write(s.app.workspace.output_dir().join("a.csv"), "x,y\n").expect("write");
        let ask = page(Method::POST, "/api/tickets", &session)
            .body(Body::from(json!({"path": "/files/output/a.csv"}).to_string()))
            .expect("request");
        let (status, body) = s.send(ask).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        let ticket = v["ticket"].as_str().expect("a ticket");
        let download = |path: &str| {
            Request::builder()
                .uri(format!("{path}?ticket={ticket}"))
                .header(header::HOST, HOST)
                .body(Body::empty())
                .expect("request")
        };
        let other = s.send(download("/files/output/b.csv")).await;
        assert_eq!(other.0, StatusCode::UNAUTHORIZED, "another path: {}", other.1);
        assert_eq!(
            s.send(download("/files/output/a.csv")).await,
            (StatusCode::OK, "x,y\n".to_owned())
        );
        assert_eq!(
            s.send(download("/files/output/a.csv")).await.0,
            StatusCode::UNAUTHORIZED
        );
    });
}

#[test]
fn the_run_view_needs_the_session_and_is_the_journals_fold_with_its_sub_agents() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        let journal = s.app.workspace.journal();
        let step = |title: &str| PlanStep {
            title: title.into(),
            effects: StepEffects::default(),
            status: StepStatus::Pending,
        };
        let plan = |steps| Event::PlanUpdated {
            plan: Plan {
                revision: 1,
                steps,
                reason: None,
            },
        };
        let root = journal.begin_task("Sort the notes", &[]).expect("a run");
        let child = RunId(format!("{root}.1"));
        let task = Task {
            outcome: "Sort the March notes".into(),
            grants: Vec::new(),
            mode: Mode::Ask,
            params: Default::default(),
        };
        let events = [
            (&root, plan(vec![step("Read the notes"), step("Sort them")])),
            (
                &root,
                Event::StepBegin {
                    step: deskhand_types::StepNo(1),
                    title: "Read the notes".into(),
                },
            ),
            (
                &root,
                Event::StepEnd {
                    step: deskhand_types::StepNo(1),
                    status: StepStatus::Done,
                    note: None,
                },
            ),
            (
                &root,
                Event::StepBegin {
                    step: deskhand_types::StepNo(2),
                    title: "Sort them".into(),
                },
            ),
            (
                &root,
                Event::SubAgentBegin {
                    step: deskhand_types::StepNo(2),
                    child: child.clone(),
                    outcome: task.outcome.clone(),
                },
            ),
            (
                &child,
                Event::RunBegin {
                    run: child.clone(),
                    task,
                    model: String::new(),
                    parent: Some(root.clone()),
                },
            ),
            (&child, plan(vec![step("Move the March notes")])),
            (
                &child,
                Event::AwaitingApproval {
                    approval: "ap-1".into(),
                    step: deskhand_types::StepNo(1),
                    kind: "step".into(),
                    title: "Move the March notes".into(),
                    details: "writes: notes/march".into(),
                    deletions: 0,
                },
            ),
        ];
        for (run, event) in &events {
            journal.append(run, event).expect("append");
        }
        let uri = format!("/api/runs/{root}/view");
        let read = |session: &str| page(Method::GET, &uri, session).body(Body::empty()).expect("request");

        let body = s
            .refused(read(""), StatusCode::UNAUTHORIZED, "the view without a session")
            .await;
        assert!(!body.contains("Read the notes"), "{body}");
        let mut rebound = read(&session);
        rebound
            .headers_mut()
            .insert(header::HOST, "evil.example".parse().expect("header"));
        s.refused(rebound, StatusCode::MISDIRECTED_REQUEST, "the view from a rebound name")
            .await;

        let (status, body) = s.send(read(&session)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        let expected = RunView::fold(&journal.events(&root).expect("events"));
        assert_eq!(v["view"]["plan"], serde_json::to_value(&expected.plan).expect("plan"));
        let steps = &v["view"]["plan"]["steps"];
        assert_eq!(
            (&steps[0]["status"], &steps[1]["status"]),
            (&json!("done"), &json!("in_progress"))
        );
        assert_eq!(
            v["view"]["children"],
            json!([{"run": child.0, "step": 2, "outcome": "Sort the March notes"}])
        );
        assert_eq!(v["interrupted"], json!(true), "no thread of this server drives it");
        let sub = &v["sub_agents"][&child.0];
        assert_eq!(sub["plan"]["steps"][0]["title"], "Move the March notes");
        assert_eq!(sub["open_questions"][0]["approval"], "ap-1");
        assert_eq!(sub["open_questions"][0]["details"], "writes: notes/march");

        let missing = page(Method::GET, "/api/runs/run-nope/view", &session)
            .body(Body::empty())
            .expect("request");
        let (status, body) = s.send(missing).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("there is no run run-nope"), "{body}");
    });
}

/// Word and PowerPoint files in output/ preview as their text, through the
/// docx and pptx tools' `text` in the sandbox.
#[test]
fn a_docx_and_a_pptx_preview_as_their_text() {
    run(async {
        let s = Server::new(Lifetimes::default());
        let session = s.session();
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/docx-pptx");
        let output = s.app.workspace.output_dir();
        std::fs::copy(corpus.join("mammoth-tables.docx"), output.join("tables.docx")).expect("copy");
        std::fs::copy(corpus.join("python-pptx-sld-notes.pptx"), output.join("deck.pptx")).expect("copy");
        std::fs::copy(corpus.join("python-pptx-test.pptx"), output.join("title.pptx")).expect("copy");
        let preview = |name: &str| {
            page(Method::GET, &format!("/api/preview/output/{name}"), &session)
                .body(Body::empty())
                .expect("request")
        };
        let (status, body) = s.send(preview("tables.docx")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["kind"], "text");
        assert!(
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("| Top left | Top right |")),
            "{v}"
        );
        let (status, body) = s.send(preview("deck.pptx")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["text"], "## Slide 1\n\nNotes: Notes\n\n## Slide 2\n\n", "{v}");
        let (_, body) = s.send(preview("title.pptx")).await;
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            v["text"], "## Slide 1: Presentation Title Text\n\nSubtitle Text\n\n",
            "{v}"
        );
    });
}
