//! Issue 16's telemetry as a person meets it: `deskhand demo` with the
//! standard `OTEL_*` variables exports its run to a real OTLP receiver
//! (oteltap, PyPI, installed by `scripts/setup`); a receiver that is down or
//! a setting that cannot be used fails no command, and `deskhand doctor`
//! shows what was not delivered; `deskhand report --week` writes the week's
//! digest into output/ as a new file that `deskhand undo` takes back.

use std::io::BufRead;
use std::sync::{Arc, Mutex};

use super::*;

const HEADER_SECRET: &str = "sk-cli-otel-header-never-shown";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// oteltap on a free port; the spans it prints, as JSON.
struct Tap {
    child: std::process::Child,
    port: u16,
    spans: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Tap {
    fn start() -> Tap {
        let python = option_env!("HOME")
            .map(|home| PathBuf::from(home).join(".cache/deskhand/oteltap-1.0.0/bin/python"))
            .filter(|p| p.is_file())
            .expect("oteltap is installed by scripts/setup in ~/.cache/deskhand/oteltap-1.0.0");
        let port = free_port();
        let mut child = Command::new(python)
            .args(["-u", "-m", "oteltap", "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let spans: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let (ready, started) = std::sync::mpsc::channel();
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Listening") {
                    let _ = ready.send(());
                }
                if let Ok(span) = serde_json::from_str::<serde_json::Value>(&line)
                    && span.get("spanId").is_some()
                {
                    sink.lock().unwrap().push(span);
                }
            }
        });
        started.recv_timeout(Duration::from_secs(30)).expect("oteltap started");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Tap { child, port, spans }
    }

    /// The spans, once a root span has arrived.
    fn wait_for_root(&self) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if spans
                .iter()
                .any(|s| s["name"] == "invoke_agent" && s["parentSpanId"].as_str().is_none_or(str::is_empty))
            {
                return spans;
            }
            assert!(Instant::now() < deadline, "no root span arrived: {spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `deskhand ARGS` exporting to `endpoint`, its drop count kept in `cwd/state`.
fn exporting(args: &[&str], endpoint: &str, cwd: &Path) -> Output {
    command(args, cwd)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer {HEADER_SECRET}"),
        )
        .env("OTEL_SERVICE_NAME", "deskhand-cli-test")
        .env("XDG_STATE_HOME", cwd.join("state"))
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        .output()
        .unwrap()
}

fn attr(span: &serde_json::Value, key: &str) -> serde_json::Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["key"] == key))
        .map(|a| a["value"].clone())
        .unwrap_or_default()
}

#[test]
fn the_demo_run_exports_its_spans_to_the_configured_receiver() {
    let tap = Tap::start();
    let tmp = tempfile::tempdir().unwrap();
    let o = exporting(&["demo", "ws"], &format!("http://127.0.0.1:{}", tap.port), tmp.path());
    assert_ok(&o);
    let spans = tap.wait_for_root();
    let root = spans.iter().find(|s| s["name"] == "invoke_agent").unwrap();
    assert_eq!(
        attr(root, "deskhand.run.status")["stringValue"],
        "succeeded",
        "{root:#}"
    );
    assert_eq!(attr(root, "gen_ai.operation.name")["stringValue"], "invoke_agent");
    let receipts = spans
        .iter()
        .find(|s| s["name"] == "execute_tool receipts")
        .unwrap_or_else(|| panic!("the receipts call: {spans:#?}"));
    assert_eq!(attr(receipts, "deskhand.tool.outcome")["stringValue"], "ok");
    assert_eq!(receipts["traceId"], root["traceId"]);
    assert!(spans.iter().any(|s| s["name"] == "step 1"), "{spans:#?}");
    let printed = serde_json::to_string(&spans).unwrap();
    assert!(printed.contains("deskhand.changes.applied"), "{printed}");
    for secret in [HEADER_SECRET, "Turn the receipts"] {
        assert!(!printed.contains(secret), "{secret} was exported");
    }
    // Everything was delivered: doctor counts nothing dropped.
    let o = exporting(
        &["doctor", "--workspace", "ws"],
        &format!("http://127.0.0.1:{}", tap.port),
        tmp.path(),
    );
    assert!(
        stdout(&o).contains("ok    telemetry (OpenTelemetry): exporting spans to http://127.0.0.1:"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("none dropped"), "{}", stdout(&o));
}

#[test]
fn a_receiver_that_is_down_fails_no_run_and_doctor_shows_the_spans_it_missed() {
    let tmp = tempfile::tempdir().unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let o = exporting(&["demo", "ws"], &down, tmp.path());
    assert_ok(&o);
    assert!(tmp.path().join("ws/output/expenses.xlsx").is_file());
    let o = exporting(&["doctor", "--workspace", "ws"], &down, tmp.path());
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("telemetry (OpenTelemetry)"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("note"), "{line}");
    assert!(line.contains("could not be delivered so far"), "{line}");
    assert!(!out.contains(HEADER_SECRET) && !stderr(&o).contains(HEADER_SECRET));

    // A setting that cannot be used is said, and the command still runs.
    let o = command(&["runs", "--workspace", "ws"], tmp.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(
        stderr(&o).contains("telemetry is off: OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn report_week_writes_a_new_digest_into_output_that_undo_takes_back() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["demo", "ws"], tmp.path()));
    let o = deskhand(&["report", "--week", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    let said = stdout(&o);
    assert!(said.contains("(1 run in the last seven days)"), "{said}");
    let written: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("ws/output"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("week-report-"))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let first = &written[0];
    let md = std::fs::read_to_string(first).unwrap();
    assert!(md.starts_with("# deskhand: the week from "), "{md}");
    assert!(
        md.contains("Turn the receipts in projects/receipts into an expense spreadsheet"),
        "{md}"
    );
    assert!(md.contains("created output/expenses.xlsx"), "{md}");
    assert!(md.contains("| no | done |"), "not scheduled, done: {md}");

    // A second report never overwrites the first; undo takes it back alone.
    let o = deskhand(&["report", "--week", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    let said = stdout(&o);
    let second_name = format!("{}-2.md", first.file_stem().unwrap().to_string_lossy());
    assert!(said.contains(&format!("Wrote output/{second_name}")), "{said}");
    assert_eq!(std::fs::read_to_string(first).unwrap(), md);
    let second = tmp.path().join("ws/output").join(&second_name);
    assert!(second.is_file());
    let run = said
        .split("`deskhand undo ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("{said}"));
    let o = deskhand(&["undo", run, "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    assert!(!second.exists(), "undo took the second report back");
    assert!(first.is_file());

    // What the command needs is asked for.
    let o = deskhand(&["report", "--workspace", "ws"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--week"), "{}", stderr(&o));
    let o = deskhand(&["report", "--week", "--workspace", "nowhere"], tmp.path());
    assert_user_error(&o, "nowhere");
}

#[test]
fn a_scheduled_run_is_exported_and_reported_as_scheduled() {
    let tap = Tap::start();
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let receipts = tmp.path().join("ws/projects/receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::write(receipts.join("2026-03-01 lunch.txt"), "Lunch 12.50 EUR\n").unwrap();
    let o = deskhand(
        &[
            "schedule",
            "add",
            "Make a file inventory of projects/receipts",
            "--every",
            "every day at 8:00",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--yes",
        ],
        tmp.path(),
    );
    assert_ok(&o);
    let out = stdout(&o);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Saved schedule "))
        .and_then(|l| l.split('.').next())
        .unwrap_or_else(|| panic!("no id in:\n{out}"))
        .to_owned();
    // The scheduler is one more front end: its runs export as any other.
    let o = exporting(
        &["schedule", "run-now", &id],
        &format!("http://127.0.0.1:{}", tap.port),
        tmp.path(),
    );
    assert_ok(&o);
    let spans = tap.wait_for_root();
    let root = spans.iter().find(|s| s["name"] == "invoke_agent").unwrap();
    assert_eq!(attr(root, "deskhand.run.scheduled")["boolValue"], true, "{root:#}");
    assert_eq!(
        attr(root, "deskhand.run.status")["stringValue"],
        "succeeded",
        "{root:#}"
    );

    let o = deskhand(&["report", "--week", "--workspace", "ws"], tmp.path());
    assert_ok(&o);
    let report = std::fs::read_dir(tmp.path().join("ws/output"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("week-report-"))
        .unwrap();
    let md = std::fs::read_to_string(report).unwrap();
    assert!(md.contains("1 of them scheduled"), "{md}");
    assert!(md.contains("| yes | done |"), "{md}");
}
