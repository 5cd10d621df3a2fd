//! Telemetry end to end: runs through the real sandbox export their spans
//! over OTLP/HTTP (protobuf) to a real receiver, oteltap from PyPI (installed
//! by `scripts/setup`), which prints each span it decodes as JSON. An
//! offline run with sub-agents and a replayed model run give the expected
//! tree and attributes, content only when captured; a receiver that is
//! down does not fail a run, and what was not delivered is counted.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskhand_runtime::agent::offline::OfflinePlanner;
use deskhand_runtime::agent::{AgentSettings, ApproveAll};
use deskhand_runtime::model::Secret;
use deskhand_runtime::model::openai::OpenAiCompatibleProvider;
use deskhand_runtime::skills::{self, MatchContext};
use deskhand_runtime::telemetry::fold::CONTENT_LIMIT;
use deskhand_runtime::telemetry::{DropCount, Telemetry, TelemetryConfig};
use deskhand_types::RunStatus;
use serde_json::Value;

use crate::common::{Demo, agent_task, demo, fast_retries, recording_agent, sse};
use crate::replay::ReplayServer;

const HEADER_SECRET: &str = "sk-otel-header-never-exported";

/// oteltap on a free loopback port, its spans collected as it prints them.
struct Tap {
    child: Child,
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Listening") {
                    let _ = ready_tx.send(());
                }
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().extend(spans_in(&value));
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).expect("oteltap started");
        // The receiver listens once it says so; give its socket a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Tap { child, port, spans }
    }

    fn config(&self, capture: bool) -> TelemetryConfig {
        TelemetryConfig {
            endpoint: format!("http://127.0.0.1:{}/v1/traces", self.port),
            headers: vec![("authorization".into(), format!("Bearer {HEADER_SECRET}"))],
            service_name: "deskhand-test".into(),
            capture_content: capture,
            timeout: Duration::from_secs(5),
        }
    }

    /// The spans received once `n` root spans (`invoke_agent` without a parent) are in.
    fn wait_for_roots(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            let roots = spans
                .iter()
                .filter(|s| s["name"] == "invoke_agent" && parent(s).is_none())
                .count();
            if roots >= n {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{roots} of {n} root spans arrived: {spans:#?}"
            );
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

/// The spans in what oteltap printed: a span, or a request holding spans.
fn spans_in(value: &Value) -> Vec<Value> {
    if value.get("spanId").is_some() || value.get("span_id").is_some() {
        return vec![value.clone()];
    }
    let mut found = Vec::new();
    match value {
        Value::Object(fields) => fields.values().for_each(|v| found.extend(spans_in(v))),
        Value::Array(items) => items.iter().for_each(|v| found.extend(spans_in(v))),
        _ => {}
    }
    found
}

fn id(span: &Value, field: &str) -> Option<String> {
    let camel = span.get(field).and_then(Value::as_str);
    camel.filter(|s| !s.is_empty()).map(String::from)
}

fn parent(span: &Value) -> Option<String> {
    id(span, "parentSpanId")
}

/// A span attribute's value as JSON (`{"stringValue": ..}` unwrapped).
fn attr(span: &Value, key: &str) -> Option<Value> {
    let found = span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?;
    let value = &found["value"];
    Some(
        value
            .get("stringValue")
            .or_else(|| value.get("intValue"))
            .or_else(|| value.get("boolValue"))
            .or_else(|| value.get("arrayValue"))
            .cloned()
            .unwrap_or(Value::Null),
    )
}

fn str_attr(span: &Value, key: &str) -> String {
    match attr(span, key) {
        Some(Value::String(s)) => s,
        other => panic!("{key}: {other:?} in {span:#}"),
    }
}

fn int_attr(span: &Value, key: &str) -> i64 {
    match attr(span, key) {
        // Protobuf JSON writes 64-bit integers as strings.
        Some(Value::String(s)) => s.parse().unwrap(),
        Some(Value::Number(n)) => n.as_i64().unwrap(),
        other => panic!("{key}: {other:?} in {span:#}"),
    }
}

fn named<'a>(spans: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["name"].as_str().unwrap_or_default().starts_with(prefix))
        .collect()
}

fn offline(d: &Demo) -> OfflinePlanner {
    let folders = ["projects", "projects/receipts", "projects/website refresh", "context"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    OfflinePlanner::new(
        skills::bundled(),
        MatchContext {
            workspace_root: d.ws.root().into(),
            folders,
            writable: Vec::new(),
        },
    )
}

#[test]
fn an_offline_run_with_sub_agents_exports_its_span_tree_without_content() {
    let tap = Tap::start();
    let d = demo();
    let drops = d._tmp.path().join("telemetry-dropped.json");
    let telemetry = Telemetry::start(&tap.config(false), Some(drops.clone())).unwrap();
    d.ws.journal().subscribe(telemetry.clone());
    let planner = offline(&d);
    let (agent, _) = recording_agent(
        &d.ws,
        &planner,
        &ApproveAll,
        AgentSettings {
            concurrency: 2,
            ..AgentSettings::default()
        },
    );
    let outcome = "Inventory projects/receipts and projects/website refresh";
    let report = agent.run(agent_task(outcome, &["projects"])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert_eq!(telemetry.shutdown(), 0, "every span was delivered");
    assert_eq!(DropCount::read(&drops).dropped, 0);

    let spans = tap.wait_for_roots(1);
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "invoke_agent" && parent(s).is_none())
        .collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    let root = roots[0];
    assert_eq!(str_attr(root, "deskhand.run.id"), report.run.0);
    assert_eq!(str_attr(root, "gen_ai.operation.name"), "invoke_agent");
    assert_eq!(str_attr(root, "gen_ai.provider.name"), "deskhand");
    assert_eq!(str_attr(root, "deskhand.run.status"), "succeeded");
    let trace = id(root, "traceId").unwrap();
    assert!(
        spans
            .iter()
            .all(|s| id(s, "traceId").as_deref() == Some(trace.as_str())),
        "one trace: {:?}",
        spans
            .iter()
            .filter(|s| id(s, "traceId").as_deref() != Some(trace.as_str()))
            .collect::<Vec<_>>()
    );

    // Steps under the run; the two sub-agents under the step that fanned out.
    let steps = named(&spans, "step ");
    assert!(!steps.is_empty(), "{spans:#?}");
    let root_id = id(root, "spanId");
    let step_ids: Vec<Option<String>> = steps
        .iter()
        .filter(|s| parent(s) == root_id)
        .map(|s| id(s, "spanId"))
        .collect();
    let subs: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "invoke_agent" && parent(s).is_some())
        .collect();
    assert_eq!(subs.len(), 2, "{spans:#?}");
    for sub in &subs {
        assert!(
            step_ids.contains(&parent(sub)),
            "a sub-agent hangs under its parent's step: {sub:#}"
        );
        assert_eq!(str_attr(sub, "deskhand.run.parent"), report.run.0);
    }
    // Each tool call, named after its tool, with its call id, under a step.
    let all_step_ids: Vec<Option<String>> = steps.iter().map(|s| id(s, "spanId")).collect();
    let agent_ids: Vec<Option<String>> = named(&spans, "invoke_agent").iter().map(|s| id(s, "spanId")).collect();
    let tools = named(&spans, "execute_tool ");
    assert!(
        tools.iter().filter(|t| t["name"] == "execute_tool inventory").count() >= 2,
        "{spans:#?}"
    );
    for tool in &tools {
        let name = str_attr(tool, "gen_ai.tool.name");
        assert_eq!(tool["name"], format!("execute_tool {name}"));
        assert!(!str_attr(tool, "gen_ai.tool.call.id").is_empty());
        assert_eq!(str_attr(tool, "deskhand.tool.outcome"), "ok");
        assert!(
            all_step_ids.contains(&parent(tool)) || agent_ids.contains(&parent(tool)),
            "a call hangs under a step, or its run before the plan: {tool:#}"
        );
    }
    // The changesets that delivered the inventories, as span events.
    let printed = serde_json::to_string(&spans).unwrap();
    assert!(printed.contains("deskhand.changes.applied"), "{printed}");
    // No content: not the task, not a step's title, not a header value.
    for secret in [outcome, "Inventory projects", HEADER_SECRET] {
        assert!(!printed.contains(secret), "{secret} was exported: {printed}");
    }
}

#[test]
fn a_replayed_model_run_exports_chat_spans_with_usage_finish_reasons_and_cut_content() {
    // The same run to two receivers: one exporter captures content, one does not.
    let tap = Tap::start();
    let tap_plain = Tap::start();
    let d = demo();
    let telemetry = Telemetry::start(&tap.config(true), None).unwrap();
    let plain = Telemetry::start(&tap_plain.config(false), None).unwrap();
    d.ws.journal().subscribe(telemetry.clone());
    d.ws.journal().subscribe(plain.clone());
    let server = ReplayServer::start(
        [
            "multi-1",
            "multi-2",
            "multi-3-overloaded",
            "multi-3",
            "multi-4",
            "multi-5",
        ]
        .iter()
        .map(|name| sse(&format!("openai-{name}.sse")))
        .collect(),
    );
    let provider = OpenAiCompatibleProvider::new(
        format!("{}/v1", server.url()),
        "llama3.1:8b",
        Some(Secret::new("sk-openai-test-key-never-logged")),
    )
    .with_retry(fast_retries());
    let (agent, _) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    // A task longer than the cut, to see it cut.
    let outcome = format!(
        "Summarize my projects folder into output/summary.md {}",
        "and be thorough ".repeat(100)
    );
    let report = agent.run(agent_task(&outcome, &["projects"])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert_eq!(telemetry.shutdown(), 0);
    assert_eq!(plain.shutdown(), 0);

    // Without capture: the same tree, and no word of the task, the answers or the arguments.
    let spans = tap_plain.wait_for_roots(1);
    assert_eq!(named(&spans, "chat ").len(), 5);
    let printed = serde_json::to_string(&spans).unwrap();
    for content in [
        "Summarize my projects",
        "gen_ai.output.messages",
        "gen_ai.tool.call.arguments",
        "deskhand.task.outcome",
        "List the projects folder",
    ] {
        assert!(!printed.contains(content), "{content} was exported: {printed}");
    }

    let spans = tap.wait_for_roots(1);
    let root = spans.iter().find(|s| s["name"] == "invoke_agent").unwrap();
    assert_eq!(str_attr(root, "gen_ai.provider.name"), "openai");
    assert_eq!(str_attr(root, "gen_ai.request.model"), "llama3.1:8b");
    let chats = named(&spans, "chat ");
    assert_eq!(chats.len(), 5, "one span per model turn: {spans:#?}");
    let mut reasons = Vec::new();
    let mut input = 0;
    for chat in &chats {
        assert_eq!(chat["name"], "chat llama3.1:8b");
        assert_eq!(chat["kind"], 3, "SPAN_KIND_CLIENT: {chat:#}");
        assert_eq!(str_attr(chat, "gen_ai.operation.name"), "chat");
        assert_eq!(str_attr(chat, "gen_ai.provider.name"), "openai");
        assert_eq!(str_attr(chat, "gen_ai.request.model"), "llama3.1:8b");
        input += int_attr(chat, "gen_ai.usage.input_tokens");
        int_attr(chat, "gen_ai.usage.output_tokens");
        let finish = attr(chat, "gen_ai.response.finish_reasons").unwrap();
        reasons.push(finish["values"][0]["stringValue"].as_str().unwrap().to_owned());
        assert!(!str_attr(chat, "gen_ai.output.messages").is_empty());
    }
    assert!(input > 0, "the transcripts' usage reached the spans");
    assert_eq!(reasons.last().map(String::as_str), Some("stop"), "{reasons:?}");
    assert!(reasons.iter().filter(|r| *r == "tool_call").count() >= 3, "{reasons:?}");
    // The retry of the overloaded turn, as an event of its chat span.
    let printed = serde_json::to_string(&spans).unwrap();
    assert!(printed.contains("deskhand.model.retry"), "{printed}");
    assert!(printed.contains("deskhand.blocked"), "the undeclared read: {printed}");
    // Captured content is there, cut to the limit.
    let task = str_attr(root, "deskhand.task.outcome");
    assert_eq!(task.chars().count(), CONTENT_LIMIT + 1, "{task}");
    assert!(task.ends_with('…'));
    let tool = named(&spans, "execute_tool ")[0];
    assert!(!str_attr(tool, "gen_ai.tool.call.arguments").is_empty());
    assert!(!printed.contains(HEADER_SECRET));
    assert!(!printed.contains("sk-openai-test-key-never-logged"));
}

#[test]
fn a_receiver_that_is_down_fails_no_run_and_the_drop_is_counted() {
    let d = demo();
    let drops = d._tmp.path().join("state/telemetry-dropped.json");
    let config = TelemetryConfig {
        // Nothing listens there.
        endpoint: format!("http://127.0.0.1:{}/v1/traces", free_port()),
        headers: vec![("authorization".into(), format!("Bearer {HEADER_SECRET}"))],
        service_name: "deskhand-test".into(),
        capture_content: false,
        timeout: Duration::from_secs(2),
    };
    let telemetry = Telemetry::start(&config, Some(drops.clone())).unwrap();
    d.ws.journal().subscribe(telemetry.clone());
    let planner = offline(&d);
    let (agent, _) = recording_agent(&d.ws, &planner, &ApproveAll, AgentSettings::default());
    let report = agent
        .run(agent_task("Make an inventory of the projects folder", &["projects"]))
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    assert!(d.ws.output_dir().join("inventory.csv").is_file());
    let dropped = telemetry.shutdown();
    assert!(dropped >= 3, "run, step and call spans were not delivered: {dropped}");
    assert_eq!(DropCount::read(&drops).dropped, dropped);
    assert!(!std::fs::read_to_string(&drops).unwrap().contains(HEADER_SECRET));
}

#[test]
fn a_receiver_that_never_answers_fails_no_run_and_the_drop_is_counted() {
    // Takes connections and the request, and answers nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let d = demo();
    let drops = d._tmp.path().join("telemetry-dropped.json");
    let config = TelemetryConfig {
        endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
        headers: Vec::new(),
        service_name: "deskhand-test".into(),
        capture_content: false,
        timeout: Duration::from_secs(1),
    };
    let telemetry = Telemetry::start(&config, Some(drops.clone())).unwrap();
    d.ws.journal().subscribe(telemetry.clone());
    let planner = offline(&d);
    let (agent, _) = recording_agent(&d.ws, &planner, &ApproveAll, AgentSettings::default());
    let report = agent
        .run(agent_task("Make an inventory of the projects folder", &["projects"]))
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    let dropped = telemetry.shutdown();
    assert!(dropped >= 3, "{dropped}");
    assert_eq!(DropCount::read(&drops).dropped, dropped);
}
