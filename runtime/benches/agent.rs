//! Runtime overhead of the agent loop with the model's latency taken out:
//! a scripted model answers at once, so what is measured is planning,
//! journaling, the gate, the sandboxed tool calls and sub-agent plumbing.
//! Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench agent`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use deskhand_runtime::agent::{Agent, AgentSettings, ApproveAll};
use deskhand_runtime::model::{ModelProvider, ModelRequest, ModelResponse, ProviderError, StreamEvent};
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
    };
    agent.run(task("warm up"))?;

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
    Ok(())
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
