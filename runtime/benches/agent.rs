//! Runtime overhead of the agent loop with the model's latency taken out:
//! a scripted model answers at once, so what is measured is planning,
//! journaling, the gate, the sandboxed tool calls and sub-agent plumbing.
//! Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench agent`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskhand_replay as replay;
use deskhand_runtime::agent::{Agent, AgentSettings, ApproveAll};
use deskhand_runtime::journal::JournalSubscriber;
use deskhand_runtime::model::Secret;
use deskhand_runtime::model::anthropic::AnthropicProvider;
use deskhand_runtime::model::{ModelProvider, ModelRequest, ModelResponse, ProviderError, StreamEvent};
use deskhand_runtime::telemetry::{Telemetry, TelemetryConfig};
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::wasm::WasmHost;
use deskhand_runtime::workspace::Workspace;
use deskhand_types::model::{Block, Role, StopReason, Usage};
use deskhand_types::{Event, Grant, Mode, RunId, Task};
use serde_json::json;

/// Answers instantly from a script: `steps` steps, each one plan update and
/// one `fs stat`; a task starting with "fan out" spawns `fan` sub-agents of one step each.
struct Scripted {
    steps: usize,
    fan: usize,
}

fn respond(content: Vec<Block>, stop: StopReason) -> ModelResponse {
    ModelResponse {
        content,
        stop_reason: stop,
        usage: Usage::default(),
    }
}

fn plan(steps: usize, done: usize) -> serde_json::Value {
    let steps: Vec<_> = (0..steps)
        .map(|i| {
            let status = if i < done { "done" } else if i == done { "in_progress" } else { "pending" };
            json!({"title": format!("Step {}", i + 1), "effects": {"reads": ["projects"], "writes": ["output"]}, "status": status})
        })
        .collect();
    json!({"steps": steps})
}

impl ModelProvider for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn complete(&self, req: &ModelRequest<'_>, _: &mut dyn FnMut(StreamEvent)) -> Result<ModelResponse, ProviderError> {
        let turn = req.messages.iter().filter(|m| m.role == Role::Assistant).count();
        let task = req.messages[0].text();
        let stat = |id: String| Block::ToolUse {
            id,
            name: "fs__stat".into(),
            input: json!({"path": "projects/sample.txt"}),
        };
        let update = |id: String, steps, done| Block::ToolUse {
            id,
            name: "update_plan".into(),
            input: plan(steps, done),
        };
        if task.starts_with("fan out") {
            return Ok(match turn {
                0 => respond(
                    vec![
                        update("p0".into(), 1, 0),
                        Block::ToolUse {
                            id: "spawn".into(),
                            name: "spawn_subagents".into(),
                            input: json!({"tasks": (0..self.fan).map(|i| json!({"outcome": format!("child {i}")})).collect::<Vec<_>>()}),
                        },
                    ],
                    StopReason::ToolUse,
                ),
                1 => respond(vec![update("p1".into(), 1, 1)], StopReason::ToolUse),
                _ => respond(vec![Block::Text { text: "done".into() }], StopReason::EndTurn),
            });
        }
        let steps = if task.starts_with("child") { 1 } else { self.steps };
        Ok(if turn < steps {
            respond(
                vec![update(format!("p{turn}"), steps, turn), stat(format!("s{turn}"))],
                StopReason::ToolUse,
            )
        } else if turn == steps {
            respond(vec![update("last".into(), steps, steps)], StopReason::ToolUse)
        } else {
            respond(vec![Block::Text { text: "done".into() }], StopReason::EndTurn)
        })
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let (ws, _) = Workspace::init(&tmp.path().join("ws"))?;
    std::fs::write(ws.root().join("projects/sample.txt"), "sample\n")?;
    let toolbox = Toolbox::new(WasmHost::new(Some(tmp.path().join("cache")))?);
    let provider = Scripted { steps: 50, fan: 10 };
    let agent = Agent {
        workspace: &ws,
        toolbox: &toolbox,
        provider: &provider,
        gate: &ApproveAll,
        settings: AgentSettings::default(),
        observer: None,
        skills_prompt: String::new(),
        shell: None,
    };
    let task = |outcome: &str| Task {
        outcome: outcome.into(),
        grants: vec![Grant::read_only("projects")],
        mode: Mode::Act,
        params: Default::default(),
    };
    agent.run(task("warm up"))?;

    // The fan-out first: the 50-step runs would raise the high-water mark past it.
    let before = vm_hwm_kib();
    let threads = AgentSettings::default().concurrency;
    let mut fan = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let report = agent.run(task("fan out"))?;
        fan.push(t.elapsed());
        assert_eq!(ws.journal().children(&report.run)?.len(), 10);
    }
    fan.sort();
    let after = vm_hwm_kib();
    println!(
        "10-way fan-out ({threads} at once), 5 runs: whole run median {:.3} ms, {:.3} ms per sub-agent step",
        ms(fan[2]),
        ms(fan[2]) / 12.0
    );
    println!(
        "peak RSS before the fan-outs {before} KiB, after {after} KiB: {} KiB more, {:.0} KiB per concurrently running sub-agent",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / threads as f64
    );

    let mut per_step = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let report = agent.run(task("fifty steps"))?;
        let elapsed = t.elapsed();
        assert_eq!(report.plan.steps.len(), 50);
        per_step.push(elapsed / 50);
        step_times(&ws, &report.run);
    }
    per_step.sort();
    println!(
        "50-step run, 5 runs: per step median {:.3} ms (min {:.3}, max {:.3})",
        ms(per_step[2]),
        ms(per_step[0]),
        ms(per_step[4])
    );

    replayed(&ws, &toolbox, &task)?;

    export_on(&ws, &toolbox, &provider, &task)?;

    Ok(())
}

/// Times the telemetry subscriber itself (the fold and the enqueue, on the
/// run's thread) around the real one.
#[derive(Debug)]
struct TimedSubscriber {
    inner: Arc<Telemetry>,
    spent: Mutex<Duration>,
}

impl JournalSubscriber for TimedSubscriber {
    fn committed(&self, run: &RunId, event: &Event) {
        let t = Instant::now();
        self.inner.committed(run, event);
        *self.spent.lock().unwrap_or_else(|p| p.into_inner()) += t.elapsed();
    }
}

/// oteltap from `scripts/setup`'s venv on `port`, if it is installed.
fn oteltap(port: u16) -> Option<std::process::Child> {
    let python = std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/deskhand/oteltap-1.0.0/bin/python");
    let child = std::process::Command::new(python)
        .args(["-m", "oteltap", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child)
}

/// The scripted 50-step run with OpenTelemetry export on, to a live
/// receiver (oteltap) and to one that is down: per step, against export off,
/// and the subscriber's own time on the run's thread.
fn export_on(
    ws: &Workspace,
    toolbox: &Toolbox,
    provider: &Scripted,
    task: &dyn Fn(&str) -> Task,
) -> anyhow::Result<()> {
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
    };
    let live = port()?;
    let mut tap = oteltap(live);
    if tap.is_none() {
        println!("  (oteltap is not installed: scripts/setup; only the down receiver is measured)");
    }
    let receivers = [
        ("live receiver (oteltap)", live, tap.is_some()),
        ("receiver down", port()?, true),
    ];
    for (what, port, present) in receivers {
        if !present {
            continue;
        }
        let config = TelemetryConfig {
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            headers: Vec::new(),
            service_name: "deskhand-bench".into(),
            capture_content: false,
            timeout: Duration::from_secs(3),
        };
        let telemetry = Telemetry::start(&config, None)?;
        let timed = Arc::new(TimedSubscriber {
            inner: telemetry.clone(),
            spent: Mutex::default(),
        });
        // A journal of its own, so the runs before stay unexported.
        let ws_on = Workspace::open(ws.root())?;
        ws_on.journal().subscribe(timed.clone());
        let agent = Agent {
            workspace: &ws_on,
            toolbox,
            provider,
            gate: &ApproveAll,
            settings: AgentSettings::default(),
            observer: None,
            skills_prompt: String::new(),
            shell: None,
        };
        let mut per_step = Vec::new();
        let mut spent = Vec::new();
        for _ in 0..5 {
            *timed.spent.lock().unwrap_or_else(|p| p.into_inner()) = Duration::ZERO;
            let t = Instant::now();
            let report = agent.run(task("fifty steps"))?;
            per_step.push(t.elapsed() / 50);
            anyhow::ensure!(report.plan.steps.len() == 50, "{}", report.summary);
            spent.push(*timed.spent.lock().unwrap_or_else(|p| p.into_inner()) / 50);
        }
        let dropped = telemetry.shutdown();
        per_step.sort();
        spent.sort();
        println!(
            "50-step run, export on ({what}), 5 runs: per step median {:.3} ms (min {:.3}, max {:.3}); \
             the subscriber on the run's thread {:.3} ms per step; {} spans delivered, {dropped} not",
            ms(per_step[2]),
            ms(per_step[0]),
            ms(per_step[4]),
            ms(spent[2]),
            telemetry.delivered(),
        );
    }
    if let Some(child) = tap.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

/// One assistant turn as the Anthropic Messages API streams it (SSE).
fn anthropic_turn(blocks: &[serde_json::Value], stop: &str) -> String {
    let mut out = String::new();
    let mut event = |name: &str, data: serde_json::Value| out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 900, "output_tokens": 1}}}),
    );
    for (i, b) in blocks.iter().enumerate() {
        if let Some(text) = b["text"].as_str() {
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
            );
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": text}}),
            );
        } else {
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}),
            );
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": b["input"].to_string()}}),
            );
        }
        event("content_block_stop", json!({"type": "content_block_stop", "index": i}));
    }
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 40}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    out
}

/// The 50-step run again, its turns replayed in the Anthropic wire format
/// over loopback HTTP with no delay: the provider's request building, HTTP
/// and SSE parsing are in the numbers. Per-step times are the intervals
/// between consecutive StepBegin events as the observer sees them.
fn replayed(ws: &Workspace, toolbox: &Toolbox, task: &dyn Fn(&str) -> Task) -> anyhow::Result<()> {
    const STEPS: usize = 50;
    const RUNS: usize = 5;
    let tool = |id: String, name: &str, input: serde_json::Value| json!({"id": id, "name": name, "input": input});
    let mut turns = Vec::new();
    for _ in 0..RUNS {
        for turn in 0..STEPS {
            let blocks = [
                tool(format!("toolu_p{turn}"), "update_plan", plan(STEPS, turn)),
                tool(
                    format!("toolu_s{turn}"),
                    "fs__stat",
                    json!({"path": "projects/sample.txt"}),
                ),
            ];
            turns.push(whole_sse(&anthropic_turn(&blocks, "tool_use")));
        }
        let last = [tool("toolu_last".into(), "update_plan", plan(STEPS, STEPS))];
        turns.push(whole_sse(&anthropic_turn(&last, "tool_use")));
        turns.push(whole_sse(&anthropic_turn(&[json!({"text": "done"})], "end_turn")));
    }
    let server = replay::ReplayServer::start(turns);
    let provider = Timed {
        inner: AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-bench")),
        calls: Mutex::default(),
    };
    let begins: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let sink = begins.clone();
    let agent = Agent {
        workspace: ws,
        toolbox,
        provider: &provider,
        gate: &ApproveAll,
        settings: AgentSettings::default(),
        observer: Some(Arc::new(move |_: &RunId, e: &Event| {
            if matches!(e, Event::StepBegin { .. }) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
            }
        })),
        skills_prompt: String::new(),
        shell: None,
    };
    let mut steps = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..RUNS {
        begins.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let t = Instant::now();
        let report = agent.run(task("fifty steps, replayed"))?;
        whole.push(t.elapsed() / STEPS as u32);
        anyhow::ensure!(report.plan.steps.len() == STEPS, "{}", report.summary);
        let seen = begins.lock().unwrap_or_else(|p| p.into_inner());
        steps.extend(seen.windows(2).map(|w| w[1] - w[0]));
    }
    steps.sort();
    whole.sort();
    let mut calls = provider.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
    calls.sort();
    println!(
        "50-step run replayed over loopback HTTP (Anthropic SSE), {RUNS} runs: step p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms ({} steps); whole run per step median {:.3} ms",
        ms(steps[steps.len() / 2]),
        ms(steps[steps.len() * 9 / 10]),
        ms(steps[steps.len() * 99 / 100]),
        steps.len(),
        ms(whole[RUNS / 2]),
    );
    println!(
        "  of which in the provider (request, loopback HTTP, SSE parse): p50 {:.3} ms, p90 {:.3} ms per model turn",
        ms(calls[calls.len() / 2]),
        ms(calls[calls.len() * 9 / 10]),
    );
    Ok(())
}

/// A turn served whole (`content-length`), as a fast local server would:
/// the replay server's 37-byte chunks model a slow network, not the runtime.
fn whole_sse(body: &str) -> replay::Canned {
    replay::Canned::status(200)
        .header("content-type", "text/event-stream")
        .body(body)
}

/// Times each model call, so the provider's share of a step can be told apart.
struct Timed {
    inner: AnthropicProvider,
    calls: Mutex<Vec<Duration>>,
}

impl ModelProvider for Timed {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn complete(
        &self,
        req: &ModelRequest<'_>,
        on: &mut dyn FnMut(StreamEvent),
    ) -> Result<ModelResponse, ProviderError> {
        let t = Instant::now();
        let out = self.inner.complete(req, on);
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(t.elapsed());
        out
    }
}

/// Per-step times from the journal's StepBegin/StepEnd timestamps, for the p50 of single steps.
fn step_times(ws: &Workspace, run: &RunId) {
    let rows = ws.journal().events(run).unwrap_or_default();
    let parse = |at: &str| humantime::parse_rfc3339(at).ok();
    let mut begins = std::collections::HashMap::new();
    let mut durations = Vec::new();
    for r in rows {
        match r.event {
            Event::StepBegin { step, .. } => {
                begins.insert(step, r.at);
            }
            Event::StepEnd { step, .. } => {
                if let (Some(Some(b)), Some(e)) = (begins.get(&step).map(|b| parse(b)), parse(&r.at)) {
                    durations.push(e.duration_since(b).unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    durations.sort();
    if let (Some(p50), Some(p99)) = (
        durations.get(durations.len() / 2),
        durations.get(durations.len() * 99 / 100),
    ) {
        println!(
            "  journal StepBegin->StepEnd: p50 {:.3} ms, p99 {:.3} ms",
            ms(*p50),
            ms(*p99)
        );
    }
}
