use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use deskhand_runtime::agent::offline::OfflinePlanner;
use deskhand_runtime::agent::{Agent, AgentSettings, Gate};
use deskhand_runtime::call;
use deskhand_runtime::changeset::{self, ApplyOptions};
use deskhand_runtime::model::ModelProvider;
use deskhand_runtime::model::config::RetryPolicy;
use deskhand_runtime::tools::{CallRequest, Toolbox, run_call};
use deskhand_runtime::wasm::{CallError, Limits, LoadedTool, Sandbox, WasmHost};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{CallId, Event, Grant, Mode, RunId, Task, ToolError, ToolOutput};

use crate::replay::Canned;

/// The hostile guest, built by runtime/build.rs.
pub const HOSTILE: &str = env!("DESKHAND_GUEST_HOSTILE");

/// One engine and toolbox for the whole test process, as in the binary.
pub fn toolbox() -> &'static Toolbox {
    static TOOLBOX: OnceLock<Toolbox> = OnceLock::new();
    TOOLBOX.get_or_init(|| {
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
        Toolbox::new(WasmHost::new(Some(cache)).expect("engine"))
    })
}

pub fn hostile() -> &'static LoadedTool {
    static TOOL: OnceLock<LoadedTool> = OnceLock::new();
    TOOL.get_or_init(|| {
        toolbox()
            .host()
            .load_file(Path::new(HOSTILE))
            .expect("hostile guest loads")
    })
}

/// A workspace inside a temp dir, with a canary file and folder beside it
/// (outside every grant) and a `projects/inbox` folder to grant.
pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub ws: Workspace,
    pub canary: PathBuf,
    pub outside: PathBuf,
    pub inbox: PathBuf,
}

pub const CANARY_TEXT: &str = "secret: the canary must never be read or changed\n";

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let canary = outside.join("canary.txt");
        std::fs::write(&canary, CANARY_TEXT).unwrap();
        let (ws, _) = Workspace::init(&tmp.path().join("ws")).unwrap();
        let inbox = ws.root().join("projects/inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::write(inbox.join("note.txt"), "hello from the inbox\n").unwrap();
        Fixture {
            _tmp: tmp,
            ws,
            canary,
            outside,
            inbox,
        }
    }

    pub fn sandbox(&self, grants: &[Grant]) -> Sandbox {
        output_writable(self.ws.sandbox(grants, Limits::default()).unwrap())
    }

    /// The canary is byte-identical and nothing new appeared beside it.
    pub fn assert_canary_intact(&self) {
        assert_eq!(std::fs::read_to_string(&self.canary).unwrap(), CANARY_TEXT);
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("canary.txt")],
            "something was created outside the grant"
        );
    }
}

/// Runs a hostile operation and returns the error text (panics if it succeeded).
pub fn hostile_fails(sandbox: &Sandbox, op: &str, args: serde_json::Value) -> String {
    let report = hostile().call(sandbox, op, &args.to_string(), None);
    match report.result {
        Ok(out) => panic!("hostile {op} {args} succeeded: {}", out.text),
        Err(e) => e.to_string(),
    }
}

/// Every entry under `dir`: relative path -> bytes (folders as `name/` -> empty).
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Independent engines: LibreOffice and pdftotext
// ---------------------------------------------------------------------------

/// The runtime's headless LibreOffice (see `deskhand_runtime::office`) in a
/// temporary profile of its own, so it never touches a person's settings or
/// collides with a running instance; its settings make Calc recalculate every
/// formula on load instead of trusting the values cached in the file.
pub struct LibreOffice {
    lo: deskhand_runtime::office::LibreOffice,
    _profile: tempfile::TempDir,
}

impl LibreOffice {
    /// Fails the test, saying how to fix it, when LibreOffice is missing:
    /// CI runs scripts/setup first, so a missing one is a broken set-up.
    pub fn new() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let lo = deskhand_runtime::office::LibreOffice::find(profile.path()).expect(
            "LibreOffice (soffice) is not installed; run scripts/setup, which installs libreoffice-calc, -writer and -impress",
        );
        LibreOffice { lo, _profile: profile }
    }

    /// The runtime's LibreOffice, for a toolbox that stores computed values.
    pub fn engine(&self) -> deskhand_runtime::office::LibreOffice {
        deskhand_runtime::office::LibreOffice::new(
            self.lo.program().to_path_buf(),
            &self._profile.path().join("toolbox"),
        )
        .unwrap()
    }

    /// Converts `input` with `--convert-to <filter>` into `outdir` and returns
    /// the converted file (same stem, extension `ext`).
    pub fn convert(&self, input: &Path, filter: &str, ext: &str, outdir: &Path) -> PathBuf {
        self.convert_with_stderr(input, filter, ext, outdir).0
    }

    /// Sheet `number` (from 1) of a workbook, named `name`, as CSV text with
    /// every formula recalculated.
    pub fn sheet_csv(&self, workbook: &Path, number: u32, name: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let csv = self
            .lo
            .sheet_as_csv(workbook, number, name, dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::read_to_string(csv).unwrap()
    }

    /// Like [`convert`](Self::convert), also returning what LibreOffice
    /// wrote to stderr.
    pub fn convert_with_stderr(&self, input: &Path, filter: &str, ext: &str, outdir: &Path) -> (PathBuf, String) {
        self.lo
            .convert_reporting(input, filter, ext, outdir)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The text of a PDF as poppler's `pdftotext` reads it (reading order, not
/// layout); fails the test, saying how to fix it, when poppler-utils is missing.
pub fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("pdftotext is not installed ({e}); run scripts/setup, which installs poppler-utils")
        });
    assert!(
        out.status.success(),
        "pdftotext could not read {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A sandbox whose `output/` the tool writes itself, for tests that call a
/// tool directly (`LoadedTool::call`) to check what the tool does. Runs never
/// get one: `call::prepare` gives each call a copy of what it may see there.
pub fn output_writable(mut sandbox: Sandbox) -> Sandbox {
    if let Some(output) = sandbox.mounts.first_mut() {
        output.access = deskhand_types::Access::ReadWrite;
    }
    sandbox
}

/// One journaled call of `tool op` in `ws` through `tb`: the tool's JSON, or the error.
pub fn call_tool(
    tb: &Toolbox,
    ws: &Workspace,
    tool: &str,
    op: &str,
    args: serde_json::Value,
    grants: &[Grant],
) -> Result<serde_json::Value, deskhand_runtime::Error> {
    run_call(
        ws,
        tb,
        &CallRequest {
            tool,
            operation: op,
            args,
            grants,
            limits: Limits::default(),
        },
        None,
    )
    .map(|r| r.output.json)
}

/// The typed error a call failed with (panics on success or another failure).
pub fn tool_error(result: Result<serde_json::Value, deskhand_runtime::Error>) -> ToolError {
    match result {
        Err(deskhand_runtime::Error::Call(CallError::Tool(e))) => e,
        Err(other) => panic!("expected a tool error, got {other}"),
        Ok(out) => panic!("expected a tool error, got {:.2000}", out.to_string()),
    }
}

/// The names in the workspace's output/, sorted.
pub fn output_names(fx: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fx.ws.output_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One corpus file's outcome: the tool's output, or the message of a typed
/// error that names the file and says its problem (damaged, encrypted, too
/// large). Anything else (a panic, a trap, a limit) fails the test.
pub fn read_or_named_error(
    name: &str,
    result: Result<serde_json::Value, deskhand_runtime::Error>,
) -> Result<serde_json::Value, String> {
    match result {
        Ok(out) => Ok(out),
        Err(deskhand_runtime::Error::Call(CallError::Tool(e))) => {
            let msg = e.to_string();
            assert!(
                matches!(e, ToolError::BadContent { .. } | ToolError::TooLarge { .. }) && msg.contains(name),
                "{name}: an error must name the file and the problem: {msg}"
            );
            Err(msg)
        }
        Err(other) => panic!("{name}: not a typed error (a panic, a trap or a limit): {other}"),
    }
}

/// A folder of `../shared/corpus` beside the repository (`pdf`,
/// `spreadsheets`), or `None` when it is not there (the caller says so).
pub fn corpus(kind: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let dir = repo.join("../shared/corpus").join(kind);
    dir.is_dir().then(|| dir.canonicalize().ok()).flatten()
}

/// The files in `dir` with one of `extensions`, sorted.
pub fn files_with(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| extensions.contains(&e.to_string_lossy().as_ref()))
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// Agent runs driven by recorded transcripts
// ---------------------------------------------------------------------------

/// A recorded model turn from `tests/transcripts/agent` (written by
/// make_agent_transcripts.py).
pub fn transcript(name: &str) -> String {
    let path = format!("{}/tests/transcripts/agent/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A recorded turn, served as a model server streams it.
pub fn sse(name: &str) -> Canned {
    Canned::sse(&transcript(name))
}

/// Retries that wait milliseconds, not seconds.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(5),
    }
}

/// The demo workspace in a temp dir: the same sample files people see.
pub struct Demo {
    pub _tmp: tempfile::TempDir,
    pub ws: Workspace,
}

pub fn demo() -> Demo {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    deskhand_runtime::demo::create_demo_workspace(&dir).unwrap();
    Demo {
        ws: Workspace::open(&dir).unwrap(),
        _tmp: tmp,
    }
}

/// Every event a run and its sub-agents emitted, with the run that emitted it.
pub type Seen = Arc<Mutex<Vec<(RunId, Event)>>>;

/// The reasons of the Blocked events a run emitted, in order.
pub fn blocked(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Blocked { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// An observer that keeps every event, and what it keeps.
pub fn recorder() -> (deskhand_runtime::agent::RunObserver, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    (
        Arc::new(move |run: &RunId, e: &Event| sink.lock().unwrap().push((run.clone(), e.clone()))),
        seen,
    )
}

/// An agent over `ws` that knows the bundled skills and records its events.
pub fn recording_agent<'a>(
    ws: &'a Workspace,
    provider: &'a dyn ModelProvider,
    gate: &'a dyn Gate,
    settings: AgentSettings,
) -> (Agent<'a>, Seen) {
    let (observer, seen) = recorder();
    let agent = Agent {
        workspace: ws,
        toolbox: toolbox(),
        provider,
        gate,
        settings,
        observer: Some(observer),
        skills_prompt: OfflinePlanner::capabilities(&deskhand_runtime::skills::bundled()),
        shell: None,
    };
    (agent, seen)
}

/// A task in act mode with `grants` read-only.
pub fn agent_task(outcome: &str, grants: &[&str]) -> Task {
    Task {
        outcome: outcome.into(),
        grants: grants.iter().map(|g| Grant::read_only(*g)).collect(),
        mode: Mode::Act,
        params: Default::default(),
    }
}

/// What the multi-step scenario (`multi-*.sse`, either wire format) must
/// have done: revision 2 with its reason, every step done, the summary
/// written, the undeclared read blocked and never run, a retry, every call
/// begun and ended, and the journal telling the same story as the events.
/// Returns the events seen and the journal's rows for the format's own checks.
pub fn check_multi_step_run(
    d: &Demo,
    report: &deskhand_runtime::agent::RunReport,
    seen: &Seen,
) -> (Vec<Event>, Vec<deskhand_runtime::journal::EventRow>) {
    use deskhand_types::{RunStatus, StepStatus};
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(report.summary.contains("output/summary.md"));
    assert_eq!(report.plan.revision, 2);
    assert_eq!(
        report.plan.reason.as_deref(),
        Some("The summary should carry a checksum of the budget file")
    );
    assert!(
        report.plan.steps.iter().all(|s| s.status == StepStatus::Done),
        "{:?}",
        report.plan
    );
    let summary = std::fs::read_to_string(d.ws.output_dir().join("summary.md")).unwrap();
    assert!(summary.starts_with("# Projects summary"));

    let events: Vec<Event> = seen.lock().unwrap().iter().map(|(_, e)| e.clone()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Blocked { step: deskhand_types::StepNo(2), reason } if reason.contains("did not declare"))),
        "the read the step did not declare was blocked, visibly"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::ToolCallBegin { operation, .. } if operation == "read_text")),
        "and never ran"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ModelRetry { reason, .. } if reason.to_lowercase().contains("overloaded"))),
        "the overloaded stream was retried: {events:#?}"
    );
    let begins = events
        .iter()
        .filter(|e| matches!(e, Event::ToolCallBegin { .. }))
        .count();
    let ends = events.iter().filter(|e| matches!(e, Event::ToolCallEnd { .. })).count();
    assert_eq!(begins, ends, "every call has its Begin and End");
    let journaled = d.ws.journal().events(&report.run).unwrap();
    assert_eq!(journaled.len(), events.len(), "the journal holds the same story");
    (events, journaled)
}

/// A read-write grant of `path`.
pub fn rw(path: &Path) -> Grant {
    Grant {
        path: path.to_path_buf(),
        access: deskhand_types::Access::ReadWrite,
    }
}

/// Runs `script` under `python` with `args` as JSON in `sys.argv[1]`, and
/// returns what it prints, parsed as JSON; panics with Python's stderr if it fails.
pub fn py_with(python: &Path, script: &str, args: &serde_json::Value) -> serde_json::Value {
    let out = Command::new(python)
        .args(["-c", script, &args.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// [`py_with`] the system `python3`.
pub fn py(script: &str, args: &serde_json::Value) -> serde_json::Value {
    py_with(Path::new("python3"), script, args)
}

/// Python that writes a zip of `parts` (name -> text) at `path`, deflated, in order.
pub const MAKE_ZIP: &str = r#"
import json, sys, zipfile
a = json.loads(sys.argv[1])
with zipfile.ZipFile(a["path"], "w", zipfile.ZIP_DEFLATED) as z:
    for name, text in a["parts"]:
        z.writestr(name, text)
print("{}")
"#;

/// The start of a Python script comparing the zips `before` and `after` of
/// its arguments (`a`) by the raw (compressed) bytes of each entry, read
/// past the local header, so an entry counts as unchanged only if it was
/// copied as it was: leaves `result` with the sorted names that `changed`,
/// were `removed` and were `added`. [`zip_diff`] prints it; a script may
/// add to it first.
pub const RAW_ZIP_DIFF: &str = r#"
import json, struct, sys, zipfile
a = json.loads(sys.argv[1])
def raw(path):
    out = {}
    with zipfile.ZipFile(path) as z:
        with open(path, "rb") as f:
            for i in z.infolist():
                f.seek(i.header_offset)
                h = f.read(30)
                n, m = struct.unpack("<HH", h[26:30])
                f.seek(i.header_offset + 30 + n + m)
                out[i.filename] = (i.CRC, i.compress_type, f.read(i.compress_size))
    return out
before, after = raw(a["before"]), raw(a["after"])
result = {
    "changed": sorted(n for n in before if n in after and before[n] != after[n]),
    "removed": sorted(n for n in before if n not in after),
    "added": sorted(n for n in after if n not in before),
}
"#;

/// Which entries of the zip `after` differ from `before` in their raw
/// bytes, and which were added or removed (see [`RAW_ZIP_DIFF`]).
pub fn zip_diff(before: &Path, after: &Path) -> serde_json::Value {
    py(
        &format!("{RAW_ZIP_DIFF}print(json.dumps(result))\n"),
        &serde_json::json!({"before": before, "after": after}),
    )
}

/// What `tool edit` gave back: its output and the prepared call whose staged
/// files hold the proposal, or the typed error it refused with.
pub type Edited<'t> = Result<(ToolOutput, call::PreparedCall<'t>), ToolError>;

/// Runs `tool edit` on `path` through `tb`, its events to `emit`: the output
/// and the prepared call, whose staged files hold the proposed overwrite.
/// A typed tool error comes back as `Err`; any other failure panics.
pub fn run_edit<'t>(
    tb: &'t Toolbox,
    fx: &Fixture,
    tool: &str,
    path: &Path,
    edits: serde_json::Value,
    grants: &[Grant],
    emit: &(dyn Fn(Event) + Sync),
) -> Edited<'t> {
    let args = serde_json::json!({"path": path.display().to_string(), "edits": edits});
    let prepared = call::prepare(
        &fx.ws,
        tb,
        tool,
        "edit",
        &args,
        &fx.ws.policy(grants).unwrap(),
        Limits::default(),
        &[],
    )
    .unwrap();
    match call::execute(&prepared, &CallId("call-edit".into()), emit, &|| true) {
        Ok(out) => Ok((out, prepared)),
        Err(deskhand_runtime::Error::Call(CallError::Tool(e))) => Err(e),
        Err(other) => panic!("not a typed tool error: {other}"),
    }
}

/// Applies the one change an edit proposed (see [`run_edit`]) as a
/// changeset of a new run named `task`; the run, for undo.
pub fn apply_edit(
    fx: &Fixture,
    task: &str,
    output: &ToolOutput,
    prepared: &call::PreparedCall,
    grants: &[Grant],
) -> RunId {
    assert_eq!(output.changes.len(), 1, "{}", output.json);
    let roots = fx.ws.change_roots(grants).unwrap();
    let cs = changeset::propose(&output.changes, &roots, &|g| prepared.staged(g)).unwrap();
    let run = fx.ws.journal().begin_task(task, grants).unwrap();
    changeset::apply(
        &fx.ws,
        &run,
        deskhand_types::StepNo(1),
        "call-edit",
        &cs,
        "the test",
        ApplyOptions::default(),
    )
    .unwrap();
    run
}

/// A loopback HTTP server on the host answering every request with `body`
/// (one per connection). Returns its port and a count of connections it
/// accepted, for tests that prove a port was never reached.
pub fn listener(body: &'static str) -> (u16, std::sync::Arc<std::sync::Mutex<usize>>) {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = l.local_addr().expect("its address").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(0));
    let count = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            *count.lock().unwrap() += 1;
            read_head(&mut conn);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// An HTTP request's head, read byte by byte up to its blank line (the body stays unread).
fn read_head(conn: &mut impl std::io::Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// One HTTP request a test server saw.
#[derive(Debug, Clone)]
pub struct Request {
    /// The port the server listens on (for answers that name it).
    pub port: u16,
    pub method: String,
    pub path: String,
    pub head: String,
    pub body: String,
}

pub fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// A loopback server answering each request with `answer(request)`; returns
/// its port and the request heads it saw.
pub fn recording(answer: impl Fn(&Request) -> String + Send + 'static) -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let heads = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let head = read_head(&mut conn);
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            let _ = conn.read_exact(&mut body);
            let mut first = head.split_whitespace();
            let request = Request {
                port,
                method: first.next().unwrap_or_default().to_owned(),
                path: first.next().unwrap_or_default().to_owned(),
                head: head.clone(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            heads.lock().unwrap().push(head);
            let _ = conn.write_all(answer(&request).as_bytes());
        }
    });
    (port, seen)
}
