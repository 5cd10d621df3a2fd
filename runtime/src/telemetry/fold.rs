//! The pure fold of a run's events into spans, after the OpenTelemetry GenAI
//! semantic conventions: `invoke_agent` per run (a sub-agent's under its
//! parent's step), a span per plan step, `chat {model}` per model turn,
//! `execute_tool {tool}` per tool call, `approval {kind}` per question to the
//! person; blocked attempts, changesets, plan revisions, retries and sandbox
//! limits as `deskhand.*` span events and attributes.
//!
//! What holds: a span is given out once, when it ends, with its parent's id
//! (children end first); a run's end closes whatever it left open; message
//! content (the task, step titles, messages, tool arguments and results,
//! summaries, questions) appears only when `capture` is on, and then cut to
//! [`CONTENT_LIMIT`] characters. No I/O, no clock: the caller passes the time
//! each event was committed.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use deskhand_types::model::{Block, Role};
use deskhand_types::{CallOutcome, Event, RunId, RunStatus};

/// The most characters of any one piece of content a span carries.
pub const CONTENT_LIMIT: usize = 1000;
/// The most events one span keeps (a long step that is blocked over and over).
const EVENT_LIMIT: usize = 128;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Strs(Vec<String>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

pub type Attributes = Vec<(&'static str, Value)>;

/// Whether the span calls out of the process (a model) or stays in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Client,
}

/// Something that happened during a span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub at: SystemTime,
    pub attributes: Attributes,
}

/// A finished span, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent: Option<u64>,
    pub name: String,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    /// Set when the span's work failed: what went wrong.
    pub error: Option<String>,
}

impl SpanRecord {
    /// The value of attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// A span not yet ended.
#[derive(Debug, Clone)]
struct Open {
    span_id: u64,
    parent: Option<u64>,
    name: String,
    kind: Kind,
    start: SystemTime,
    attributes: Attributes,
    events: Vec<SpanEvent>,
    error: Option<String>,
}

impl Open {
    fn close(self, trace_id: u128, end: SystemTime) -> SpanRecord {
        SpanRecord {
            trace_id,
            span_id: self.span_id,
            parent: self.parent,
            name: self.name,
            kind: self.kind,
            start: self.start,
            end: end.max(self.start),
            attributes: self.attributes,
            events: self.events,
            error: self.error,
        }
    }

    fn has(&self, key: &str) -> bool {
        self.attributes.iter().any(|(k, _)| *k == key)
    }

    fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    fn event(&mut self, name: &'static str, at: SystemTime, attributes: Attributes) {
        if self.events.len() < EVENT_LIMIT {
            self.events.push(SpanEvent { name, at, attributes });
        }
    }
}

/// The open spans of one run.
#[derive(Debug)]
struct RunSpans {
    trace_id: u128,
    run: Open,
    provider: String,
    model: String,
    steps: BTreeMap<usize, Open>,
    turn: Option<Open>,
    /// A model turn that ended; it is given out with the next event, which
    /// tells its finish reason (the answer's tool uses, or none).
    ended_turn: Option<(Open, SystemTime)>,
    calls: HashMap<String, Open>,
    approvals: HashMap<String, Open>,
    input_tokens: u64,
    output_tokens: u64,
    turns: u32,
}

impl RunSpans {
    /// The span new work hangs under: the step in progress (the latest
    /// begun), else the run.
    fn current(&self) -> u64 {
        self.steps.values().next_back().map_or(self.run.span_id, |s| s.span_id)
    }

    fn current_mut(&mut self) -> &mut Open {
        match self.steps.values_mut().next_back() {
            Some(step) => step,
            None => &mut self.run,
        }
    }

    fn step_mut(&mut self, step: usize) -> &mut Open {
        match self.steps.get_mut(&step) {
            Some(s) => s,
            None => &mut self.run,
        }
    }
}

/// The provider (its GenAI name) and model a run's model line names:
/// what `ModelProvider::describe` says, "anthropic claude-...",
/// "openai-compatible llama3 at http://...", "offline planner".
pub fn provider_and_model(described: &str) -> (String, String) {
    let mut words = described.split_whitespace();
    let first = words.next().unwrap_or_default();
    let model = words.next().unwrap_or_default().to_owned();
    match first {
        "anthropic" => ("anthropic".into(), model),
        "openai-compatible" => ("openai".into(), model),
        "offline" | "" => ("deskhand".into(), "offline-planner".into()),
        other => (other.to_owned(), model),
    }
}

/// `text` cut to [`CONTENT_LIMIT`] characters, marked where it was cut.
pub fn truncate(text: &str) -> String {
    match text.char_indices().nth(CONTENT_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn wire<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Span and trace ids: splitmix64 from a seed, so a test can fix them.
#[derive(Debug)]
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        // Zero is the invalid id.
        (z ^ (z >> 31)).max(1)
    }

    fn trace(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

/// The fold: feed it each committed event of any run, in order; it gives
/// back the spans that ended.
#[derive(Debug)]
pub struct Fold {
    capture: bool,
    ids: Ids,
    runs: HashMap<String, RunSpans>,
}

impl Fold {
    /// A fold whose ids start from `seed`; `capture` exports message content.
    pub fn new(capture: bool, seed: u64) -> Self {
        Fold {
            capture,
            ids: Ids(seed),
            runs: HashMap::new(),
        }
    }

    /// Whether any run has spans open.
    pub fn is_idle(&self) -> bool {
        self.runs.is_empty()
    }

    /// Folds `event` of `run`, committed at `at`; returns the spans it ended.
    pub fn apply(&mut self, run: &RunId, event: &Event, at: SystemTime) -> Vec<SpanRecord> {
        let mut done = Vec::new();
        // A model turn's span waits for the event after its end.
        if let Some(spans) = self.runs.get_mut(&run.0)
            && let Some((mut turn, end)) = spans.ended_turn.take()
        {
            let reason = match event {
                Event::Message { message } if message.role == Role::Assistant => {
                    if self.capture {
                        turn.set("gen_ai.output.messages", truncate(&output_messages(&message.content)));
                    }
                    if message.tool_uses().next().is_some() {
                        "tool_call"
                    } else {
                        "stop"
                    }
                }
                _ if turn.error.is_some() => "error",
                _ => "stop",
            };
            // The provider's own reason, where the turn's end carried it, wins.
            if !turn.has("gen_ai.response.finish_reasons") {
                turn.set("gen_ai.response.finish_reasons", Value::Strs(vec![reason.into()]));
            }
            done.push(turn.close(spans.trace_id, end));
        }
        match event {
            Event::RunBegin {
                run: id,
                task,
                model,
                parent,
            } => {
                let (provider, model_name) = provider_and_model(model);
                let (trace_id, parent_span) = match parent.as_ref().and_then(|p| self.runs.get(&p.0)) {
                    Some(p) => (p.trace_id, Some(p.current())),
                    None => (self.ids.trace(), None),
                };
                let mut span = self.open("invoke_agent".into(), Kind::Internal, parent_span, at);
                span.set("gen_ai.operation.name", "invoke_agent");
                span.set("gen_ai.provider.name", provider.clone());
                span.set("gen_ai.request.model", model_name.clone());
                span.set("gen_ai.conversation.id", id.0.clone());
                span.set("deskhand.run.id", id.0.clone());
                if let Some(parent) = parent {
                    span.set("deskhand.run.parent", parent.0.clone());
                }
                span.set("deskhand.run.mode", wire(task.mode));
                span.set("deskhand.run.grants", task.grants.len());
                if self.capture {
                    span.set("deskhand.task.outcome", truncate(&task.outcome));
                }
                // A run begun twice (never in one journal): the first ends here.
                if let Some(old) = self.runs.remove(&run.0) {
                    done.extend(close_run(old, at, None));
                }
                self.runs.insert(
                    run.0.clone(),
                    RunSpans {
                        trace_id,
                        run: span,
                        provider,
                        model: model_name,
                        steps: BTreeMap::new(),
                        turn: None,
                        ended_turn: None,
                        calls: HashMap::new(),
                        approvals: HashMap::new(),
                        input_tokens: 0,
                        output_tokens: 0,
                        turns: 0,
                    },
                );
            }
            Event::RunEnd { status, summary, .. } => {
                if let Some(spans) = self.runs.remove(&run.0) {
                    let summary = self.capture.then(|| truncate(summary));
                    done.extend(close_run(spans, at, Some((*status, summary))));
                }
            }
            other => {
                let known = self.runs.contains_key(&run.0);
                // Of a run this process did not see begin, only a resume
                // opens a span; an undo or a recovery gets one of its own;
                // the rest (a notice after the end, say) tells nothing alone.
                let alone = matches!(
                    other,
                    Event::Undone { .. } | Event::ChangesRefused { .. } | Event::ChangesApplied { .. }
                );
                if !known && !alone && !matches!(other, Event::Resumed { .. }) {
                    return done;
                }
                self.ensure(run, at);
                let spans = self
                    .runs
                    .get_mut(&run.0)
                    .unwrap_or_else(|| unreachable!("ensured above"));
                if let Some(span) = fold_within(spans, other, at, self.capture, &mut self.ids) {
                    done.push(span);
                }
                if !known
                    && alone
                    && let Some(spans) = self.runs.remove(&run.0)
                {
                    let mut span = spans.run;
                    span.name = format!("deskhand {}", other.kind());
                    span.attributes
                        .retain(|(k, _)| !matches!(*k, "deskhand.run.resumed" | "gen_ai.operation.name"));
                    done.push(span.close(spans.trace_id, at));
                }
            }
        }
        done
    }

    fn open(&mut self, name: String, kind: Kind, parent: Option<u64>, at: SystemTime) -> Open {
        Open {
            span_id: self.ids.next(),
            parent,
            name,
            kind,
            start: at,
            attributes: Vec::new(),
            events: Vec::new(),
            error: None,
        }
    }

    /// The run's open spans; a run this process did not see begin (a
    /// resumed one) gets its `invoke_agent` span now.
    fn ensure(&mut self, run: &RunId, at: SystemTime) {
        if !self.runs.contains_key(&run.0) {
            let trace_id = self.ids.trace();
            let mut span = self.open("invoke_agent".into(), Kind::Internal, None, at);
            span.set("gen_ai.operation.name", "invoke_agent");
            span.set("gen_ai.conversation.id", run.0.clone());
            span.set("deskhand.run.id", run.0.clone());
            span.set("deskhand.run.resumed", true);
            self.runs.insert(
                run.0.clone(),
                RunSpans {
                    trace_id,
                    run: span,
                    provider: String::new(),
                    model: String::new(),
                    steps: BTreeMap::new(),
                    turn: None,
                    ended_turn: None,
                    calls: HashMap::new(),
                    approvals: HashMap::new(),
                    input_tokens: 0,
                    output_tokens: 0,
                    turns: 0,
                },
            );
        }
    }
}

fn output_messages(content: &[Block]) -> String {
    let parts: Vec<serde_json::Value> = content
        .iter()
        .map(|b| match b {
            Block::Text { text } => serde_json::json!({"type": "text", "content": text}),
            Block::ToolUse { id, name, input } => {
                serde_json::json!({"type": "tool_call", "id": id, "name": name, "arguments": input})
            }
            Block::ToolResult {
                tool_use_id, content, ..
            } => serde_json::json!({"type": "tool_call_response", "id": tool_use_id, "response": content}),
        })
        .collect();
    serde_json::json!([{"role": "assistant", "parts": parts}]).to_string()
}

/// Closes everything a run left open, then the run; `end` is its status
/// and summary when it ended (none when a new begin replaced it).
fn close_run(mut spans: RunSpans, at: SystemTime, end: Option<(RunStatus, Option<String>)>) -> Vec<SpanRecord> {
    let trace = spans.trace_id;
    let mut done = Vec::new();
    if let Some((mut turn, end)) = spans.ended_turn.take() {
        let reason = if turn.error.is_some() { "error" } else { "stop" };
        if !turn.has("gen_ai.response.finish_reasons") {
            turn.set("gen_ai.response.finish_reasons", Value::Strs(vec![reason.into()]));
        }
        done.push(turn.close(trace, end));
    }
    if let Some(turn) = spans.turn.take() {
        done.push(turn.close(trace, at));
    }
    for (_, call) in spans.calls.drain() {
        done.push(call.close(trace, at));
    }
    for (_, approval) in spans.approvals.drain() {
        done.push(approval.close(trace, at));
    }
    while let Some((_, step)) = spans.steps.pop_last() {
        done.push(step.close(trace, at));
    }
    let mut run = spans.run;
    run.set("gen_ai.usage.input_tokens", spans.input_tokens);
    run.set("gen_ai.usage.output_tokens", spans.output_tokens);
    run.set("deskhand.run.turns", u64::from(spans.turns));
    if let Some((status, summary)) = end {
        run.set("deskhand.run.status", status.as_str());
        if let Some(summary) = summary {
            run.set("deskhand.run.summary", summary);
        }
        if status == RunStatus::Failed {
            run.error = Some("the run failed".into());
        }
    }
    done.push(run.close(trace, at));
    done
}

/// Folds an event inside a run (anything but its begin and end); returns a
/// span it ended.
fn fold_within(
    spans: &mut RunSpans,
    event: &Event,
    at: SystemTime,
    capture: bool,
    ids: &mut Ids,
) -> Option<SpanRecord> {
    let trace = spans.trace_id;
    let new = |ids: &mut Ids, name: String, kind: Kind, parent: u64| Open {
        span_id: ids.next(),
        parent: Some(parent),
        name,
        kind,
        start: at,
        attributes: Vec::new(),
        events: Vec::new(),
        error: None,
    };
    match event {
        Event::RunBegin { .. } | Event::RunEnd { .. } => None,
        Event::Resumed { .. } => {
            spans.run.event("deskhand.run.resumed", at, Vec::new());
            None
        }
        Event::PlanUpdated { plan } => {
            let mut attrs: Attributes = vec![
                ("deskhand.plan.revision", u64::from(plan.revision).into()),
                ("deskhand.plan.steps", plan.steps.len().into()),
            ];
            if capture {
                let titles = plan.steps.iter().map(|s| truncate(&s.title)).collect();
                attrs.push(("deskhand.plan.titles", Value::Strs(titles)));
            }
            spans.run.event("deskhand.plan.updated", at, attrs);
            None
        }
        Event::StepApproved { step, by, .. } => {
            if by.contains("schedule") {
                // Approved in advance, in a schedule's envelope: the run is unattended.
                spans.run.set("deskhand.run.scheduled", true);
            }
            spans.run.event(
                "deskhand.step.approved",
                at,
                vec![
                    ("deskhand.step.number", step.0.into()),
                    ("deskhand.approval.by", by.as_str().into()),
                ],
            );
            None
        }
        Event::StepBegin { step, title } => {
            let ended = spans.steps.remove(&step.0).map(|s| s.close(trace, at));
            let mut span = new(ids, format!("step {}", step.0), Kind::Internal, spans.run.span_id);
            span.set("deskhand.step.number", step.0);
            if capture {
                span.set("deskhand.step.title", truncate(title));
            }
            spans.steps.insert(step.0, span);
            ended
        }
        Event::StepEnd { step, status, note } => {
            let mut span = spans.steps.remove(&step.0)?;
            let status = wire(status);
            if status == "failed" {
                span.error = Some("the step failed".into());
            }
            span.set("deskhand.step.status", status);
            if capture && let Some(note) = note {
                span.set("deskhand.step.note", truncate(note));
            }
            Some(span.close(trace, at))
        }
        Event::ModelTurnBegin { turn } => {
            let ended = spans.turn.take().map(|t| t.close(trace, at));
            let name = format!("chat {}", spans.model).trim_end().to_owned();
            let mut span = new(ids, name, Kind::Client, spans.current());
            span.set("gen_ai.operation.name", "chat");
            span.set("gen_ai.provider.name", spans.provider.clone());
            span.set("gen_ai.request.model", spans.model.clone());
            span.set("deskhand.turn", u64::from(*turn));
            spans.turn = Some(span);
            spans.turns = spans.turns.max(*turn);
            ended
        }
        Event::ModelTurnEnd {
            usage,
            error,
            finish_reason,
            ..
        } => {
            let mut span = spans.turn.take()?;
            if let Some(reason) = finish_reason {
                span.set("gen_ai.response.finish_reasons", Value::Strs(vec![reason.clone()]));
            }
            span.set("gen_ai.usage.input_tokens", usage.input_tokens);
            span.set("gen_ai.usage.output_tokens", usage.output_tokens);
            spans.input_tokens += usage.input_tokens;
            spans.output_tokens += usage.output_tokens;
            if let Some(error) = error {
                span.set("error.type", "provider_error");
                span.error = Some(truncate(error));
            }
            spans.ended_turn = Some((span, at));
            None
        }
        Event::Message { message } => {
            if capture && message.role == Role::User {
                let text = message
                    .content
                    .iter()
                    .map(|b| match b {
                        Block::Text { text } => text.clone(),
                        Block::ToolResult { content, .. } => content.clone(),
                        Block::ToolUse { .. } => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                spans.current_mut().event(
                    "gen_ai.user.message",
                    at,
                    vec![("gen_ai.message.content", truncate(&text).into())],
                );
            }
            None
        }
        Event::Compacted { replaced, .. } => {
            spans.run.event(
                "deskhand.compacted",
                at,
                vec![("deskhand.messages.replaced", (*replaced).into())],
            );
            None
        }
        Event::SubAgentBegin { step, child, .. } => {
            spans.step_mut(step.0).event(
                "deskhand.subagent.begin",
                at,
                vec![("deskhand.run.child", child.0.as_str().into())],
            );
            None
        }
        Event::SubAgentEnd { child, status, .. } => {
            spans.current_mut().event(
                "deskhand.subagent.end",
                at,
                vec![
                    ("deskhand.run.child", child.0.as_str().into()),
                    ("deskhand.run.status", status.as_str().into()),
                ],
            );
            None
        }
        Event::NeedsInput { question } => {
            let mut attrs: Attributes = Vec::new();
            if capture {
                attrs.push(("deskhand.question", truncate(question).into()));
            }
            spans.run.event("deskhand.needs_input", at, attrs);
            None
        }
        Event::ModelRetry {
            attempt,
            wait_ms,
            reason,
        } => {
            let target = match spans.turn.as_mut() {
                Some(turn) => turn,
                None => &mut spans.run,
            };
            target.event(
                "deskhand.model.retry",
                at,
                vec![
                    ("deskhand.retry.attempt", u64::from(*attempt).into()),
                    ("deskhand.retry.wait_ms", (*wait_ms).into()),
                    ("deskhand.retry.reason", truncate(reason).into()),
                ],
            );
            None
        }
        Event::ModeChanged { mode, .. } => {
            spans.run.set("deskhand.run.mode", wire(mode));
            spans.run.event(
                "deskhand.mode.changed",
                at,
                vec![("deskhand.run.mode", wire(mode).into())],
            );
            None
        }
        Event::Notice { .. } | Event::ToolLog { .. } | Event::ToolProgress { .. } => None,
        Event::Blocked { step, reason } => {
            spans.step_mut(step.0).event(
                "deskhand.blocked",
                at,
                vec![
                    ("deskhand.step.number", step.0.into()),
                    ("deskhand.blocked.reason", truncate(reason).into()),
                ],
            );
            None
        }
        Event::ConnectorToolQuarantined {
            step,
            connector,
            tool,
            change,
        } => {
            spans.step_mut(step.0).event(
                "deskhand.connector.quarantined",
                at,
                vec![
                    ("deskhand.connector.name", connector.clone().into()),
                    ("deskhand.connector.tool", tool.clone().into()),
                    ("deskhand.connector.change", change.clone().into()),
                ],
            );
            None
        }
        Event::ChangesProposed {
            step,
            call,
            changeset,
            changes,
        } => {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for change in changes {
                *kinds.entry(wire(change.kind)).or_default() += 1;
            }
            let kinds = kinds.into_iter().map(|(k, n)| format!("{k}:{n}")).collect();
            let attrs = vec![
                ("deskhand.changeset.id", changeset.as_str().into()),
                ("deskhand.changeset.changes", changes.len().into()),
                ("deskhand.changeset.kinds", Value::Strs(kinds)),
                ("gen_ai.tool.call.id", call.0.as_str().into()),
            ];
            spans.step_mut(step.0).event("deskhand.changes.proposed", at, attrs);
            None
        }
        Event::ChangesApplied { changeset, by, count } => {
            spans.current_mut().event(
                "deskhand.changes.applied",
                at,
                vec![
                    ("deskhand.changeset.id", changeset.as_str().into()),
                    ("deskhand.changeset.changes", (*count).into()),
                    ("deskhand.approval.by", by.as_str().into()),
                ],
            );
            None
        }
        Event::ChangesRefused { changeset, reason } => {
            spans.current_mut().event(
                "deskhand.changes.refused",
                at,
                vec![
                    ("deskhand.changeset.id", changeset.as_str().into()),
                    ("deskhand.changes.reason", truncate(reason).into()),
                ],
            );
            None
        }
        Event::Undone {
            changesets,
            restored,
            forced,
        } => {
            spans.run.event(
                "deskhand.undone",
                at,
                vec![
                    ("deskhand.changesets", Value::Strs(changesets.clone())),
                    ("deskhand.undone.restored", (*restored).into()),
                    ("deskhand.undone.forced", (*forced).into()),
                ],
            );
            None
        }
        Event::AwaitingApproval {
            approval,
            step,
            kind,
            deletions,
            title,
            ..
        } => {
            let mut span = new(ids, format!("approval {kind}"), Kind::Internal, spans.current());
            span.set("deskhand.approval.kind", kind.clone());
            span.set("deskhand.step.number", step.0);
            span.set("deskhand.approval.deletions", *deletions);
            if capture {
                span.set("deskhand.approval.title", truncate(title));
            }
            spans.approvals.insert(approval.clone(), span);
            None
        }
        Event::ApprovalAnswered { approval, approved, by } => {
            let mut span = spans.approvals.remove(approval)?;
            span.set("deskhand.approval.approved", *approved);
            span.set("deskhand.approval.by", by.clone());
            let waited = at.duration_since(span.start).unwrap_or_default();
            span.set(
                "deskhand.approval.waited_ms",
                u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            );
            Some(span.close(trace, at))
        }
        Event::ToolCallBegin {
            call,
            tool,
            operation,
            args,
        } => {
            // The runtime's own tools (update_plan, spawn_subagents) go by their operation.
            let name = if tool == "deskhand" { operation } else { tool };
            let mut span = new(ids, format!("execute_tool {name}"), Kind::Internal, spans.current());
            span.set("gen_ai.operation.name", "execute_tool");
            span.set("gen_ai.tool.name", name.clone());
            span.set("gen_ai.tool.call.id", call.0.clone());
            span.set("deskhand.tool.operation", operation.clone());
            if capture {
                span.set("gen_ai.tool.call.arguments", truncate(&args.to_string()));
            }
            spans.calls.insert(call.0.clone(), span);
            None
        }
        Event::ToolCallEnd {
            call,
            outcome,
            elapsed_ms,
        } => {
            let mut span = spans.calls.remove(&call.0)?;
            span.set("deskhand.tool.elapsed_ms", *elapsed_ms);
            let status = match outcome {
                CallOutcome::Ok { output } => {
                    if capture {
                        let result = serde_json::to_string(output).unwrap_or_default();
                        span.set("gen_ai.tool.call.result", truncate(&result));
                    }
                    "ok"
                }
                CallOutcome::ToolError { .. } => {
                    span.error = Some("the tool returned an error".into());
                    "tool_error"
                }
                CallOutcome::Stopped { reason } => {
                    // A sandbox limit: the deadline, the memory or output cap.
                    span.set("deskhand.sandbox.limit", truncate(reason));
                    span.error = Some("the sandbox stopped the call".into());
                    "stopped"
                }
                CallOutcome::Refused { .. } => {
                    span.error = Some("the call was refused".into());
                    "refused"
                }
            };
            span.set("deskhand.tool.outcome", status);
            Some(span.close(trace, at))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use deskhand_types::model::{Message, Usage};
    use deskhand_types::{CallId, Mode, StepNo, StepStatus, Task};

    use super::*;

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + ms)
    }

    fn task(outcome: &str) -> Task {
        Task {
            outcome: outcome.into(),
            grants: Vec::new(),
            mode: Mode::Act,
            params: Default::default(),
        }
    }

    fn feed(fold: &mut Fold, events: &[(&RunId, Event)]) -> Vec<SpanRecord> {
        events
            .iter()
            .enumerate()
            .flat_map(|(i, (run, e))| fold.apply(run, e, t(i as u64 * 10)))
            .collect()
    }

    fn by_name<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name} in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    }

    fn str_attr<'a>(span: &'a SpanRecord, key: &str) -> &'a str {
        match span.attribute(key) {
            Some(Value::Str(s)) => s,
            other => panic!("{key} of {}: {other:?}", span.name),
        }
    }

    fn run_events(run: &RunId, outcome: &str) -> Vec<(RunId, Event)> {
        let call = CallId("c1".into());
        vec![
            Event::RunBegin {
                run: run.clone(),
                task: task(outcome),
                model: "anthropic claude-sonnet-4-5".into(),
                parent: None,
            },
            Event::StepBegin {
                step: StepNo(1),
                title: "Read the receipts".into(),
            },
            Event::ModelTurnBegin { turn: 1 },
            Event::ModelTurnEnd {
                turn: 1,
                finish_reason: None,
                usage: Usage {
                    input_tokens: 120,
                    output_tokens: 30,
                },
                error: None,
            },
            Event::Message {
                message: Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "toolu_1".into(),
                        name: "xlsx__write".into(),
                        input: serde_json::json!({"path": "secret-plan.xlsx"}),
                    }],
                },
            },
            Event::ToolCallBegin {
                call: call.clone(),
                tool: "xlsx".into(),
                operation: "write".into(),
                args: serde_json::json!({"path": "secret-plan.xlsx"}),
            },
            Event::Blocked {
                step: StepNo(1),
                reason: "outside the grants".into(),
            },
            Event::ToolCallEnd {
                call,
                outcome: CallOutcome::Stopped {
                    reason: "the memory cap (64 MiB)".into(),
                },
                elapsed_ms: 5,
            },
            Event::AwaitingApproval {
                approval: "a1".into(),
                step: StepNo(1),
                kind: "changes".into(),
                title: "Write secret-plan.xlsx".into(),
                details: String::new(),
                deletions: 0,
            },
            Event::ApprovalAnswered {
                approval: "a1".into(),
                approved: true,
                by: "the person".into(),
            },
            Event::StepEnd {
                step: StepNo(1),
                status: StepStatus::Done,
                note: None,
            },
            Event::RunEnd {
                run: run.clone(),
                status: RunStatus::Succeeded,
                summary: "the secret summary".into(),
            },
        ]
        .into_iter()
        .map(|e| (run.clone(), e))
        .collect()
    }

    #[test]
    fn a_run_becomes_a_tree_of_genai_spans_with_no_content_by_default() {
        let run = RunId("r1".into());
        let events = run_events(&run, "the secret outcome");
        let refs: Vec<(&RunId, Event)> = events.iter().map(|(r, e)| (r, e.clone())).collect();
        let mut fold = Fold::new(false, 7);
        let spans = feed(&mut fold, &refs);
        assert!(fold.is_idle());
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "chat claude-sonnet-4-5",
                "execute_tool xlsx",
                "approval changes",
                "step 1",
                "invoke_agent"
            ]
        );
        let root = by_name(&spans, "invoke_agent");
        let step = by_name(&spans, "step 1");
        let chat = by_name(&spans, "chat claude-sonnet-4-5");
        let tool = by_name(&spans, "execute_tool xlsx");
        let approval = by_name(&spans, "approval changes");
        assert_eq!(root.parent, None);
        assert!(spans.iter().all(|s| s.trace_id == root.trace_id));
        assert_eq!(step.parent, Some(root.span_id));
        for child in [chat, tool, approval] {
            assert_eq!(child.parent, Some(step.span_id), "{}", child.name);
        }
        assert_eq!(chat.kind, Kind::Client);
        assert_eq!(str_attr(chat, "gen_ai.provider.name"), "anthropic");
        assert_eq!(str_attr(chat, "gen_ai.request.model"), "claude-sonnet-4-5");
        assert_eq!(chat.attribute("gen_ai.usage.input_tokens"), Some(&Value::Int(120)));
        assert_eq!(chat.attribute("gen_ai.usage.output_tokens"), Some(&Value::Int(30)));
        assert_eq!(
            chat.attribute("gen_ai.response.finish_reasons"),
            Some(&Value::Strs(vec!["tool_call".into()]))
        );
        assert_eq!(str_attr(tool, "gen_ai.tool.name"), "xlsx");
        assert_eq!(str_attr(tool, "gen_ai.tool.call.id"), "c1");
        assert_eq!(str_attr(tool, "deskhand.sandbox.limit"), "the memory cap (64 MiB)");
        assert!(tool.error.is_some());
        assert_eq!(str_attr(approval, "deskhand.approval.by"), "the person");
        assert_eq!(approval.attribute("deskhand.approval.waited_ms"), Some(&Value::Int(10)));
        assert_eq!(step.events[0].name, "deskhand.blocked");
        assert_eq!(root.attribute("gen_ai.usage.input_tokens"), Some(&Value::Int(120)));
        assert_eq!(str_attr(root, "deskhand.run.status"), "succeeded");
        // No content: not the task, the title, the arguments, the answer.
        let all = format!("{spans:?}");
        for secret in ["secret", "Read the receipts"] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
    }

    #[test]
    fn content_is_exported_only_when_captured_and_then_cut() {
        let run = RunId("r1".into());
        let long = "x".repeat(CONTENT_LIMIT + 500);
        let events = run_events(&run, &long);
        let refs: Vec<(&RunId, Event)> = events.iter().map(|(r, e)| (r, e.clone())).collect();
        let spans = feed(&mut Fold::new(true, 7), &refs);
        let root = by_name(&spans, "invoke_agent");
        let outcome = str_attr(root, "deskhand.task.outcome");
        assert_eq!(outcome.chars().count(), CONTENT_LIMIT + 1);
        assert!(outcome.ends_with('…'));
        assert_eq!(
            str_attr(by_name(&spans, "step 1"), "deskhand.step.title"),
            "Read the receipts"
        );
        assert!(str_attr(by_name(&spans, "execute_tool xlsx"), "gen_ai.tool.call.arguments").contains("secret-plan"));
        assert!(str_attr(by_name(&spans, "chat claude-sonnet-4-5"), "gen_ai.output.messages").contains("xlsx__write"));
    }

    #[test]
    fn a_sub_agent_is_a_child_of_its_parents_step_in_the_same_trace() {
        let parent = RunId("p".into());
        let child = RunId("p.1".into());
        let mut fold = Fold::new(false, 1);
        let events = vec![
            (
                &parent,
                Event::RunBegin {
                    run: parent.clone(),
                    task: task("a"),
                    model: "offline planner".into(),
                    parent: None,
                },
            ),
            (
                &parent,
                Event::StepBegin {
                    step: StepNo(2),
                    title: "fan out".into(),
                },
            ),
            (
                &child,
                Event::RunBegin {
                    run: child.clone(),
                    task: task("b"),
                    model: "offline planner".into(),
                    parent: Some(parent.clone()),
                },
            ),
            (
                &parent,
                Event::SubAgentBegin {
                    step: StepNo(2),
                    child: child.clone(),
                    outcome: "b".into(),
                },
            ),
            (
                &child,
                Event::RunEnd {
                    run: child.clone(),
                    status: RunStatus::Failed,
                    summary: "no".into(),
                },
            ),
            (
                &parent,
                Event::SubAgentEnd {
                    child: child.clone(),
                    status: RunStatus::Failed,
                    summary: "no".into(),
                },
            ),
            // The parent stops with its step open: the end closes it.
            (
                &parent,
                Event::RunEnd {
                    run: parent.clone(),
                    status: RunStatus::Stopped,
                    summary: String::new(),
                },
            ),
        ];
        let spans = feed(&mut fold, &events);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["invoke_agent", "step 2", "invoke_agent"]);
        let (sub, step, top) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(sub.parent, Some(step.span_id));
        assert_eq!(sub.trace_id, top.trace_id);
        assert!(sub.error.is_some());
        assert_eq!(str_attr(sub, "deskhand.run.parent"), "p");
        assert_eq!(str_attr(sub, "gen_ai.provider.name"), "deskhand");
        assert_eq!(
            step.events.iter().map(|e| e.name).collect::<Vec<_>>(),
            ["deskhand.subagent.begin", "deskhand.subagent.end"]
        );
    }

    #[test]
    fn a_resumed_run_gets_a_span_of_its_own_and_a_failed_turn_says_error() {
        let run = RunId("r".into());
        let mut fold = Fold::new(false, 3);
        let spans = feed(
            &mut fold,
            &[
                (&run, Event::Resumed { run: run.clone() }),
                (&run, Event::ModelTurnBegin { turn: 4 }),
                (
                    &run,
                    Event::ModelTurnEnd {
                        turn: 4,
                        finish_reason: None,
                        usage: Usage::default(),
                        error: Some("HTTP 500".into()),
                    },
                ),
                (
                    &run,
                    Event::RunEnd {
                        run: run.clone(),
                        status: RunStatus::Failed,
                        summary: "HTTP 500".into(),
                    },
                ),
            ],
        );
        assert_eq!(spans[0].name, "chat");
        assert_eq!(
            spans[0].attribute("gen_ai.response.finish_reasons"),
            Some(&Value::Strs(vec!["error".into()]))
        );
        assert_eq!(spans[1].attribute("deskhand.run.resumed"), Some(&Value::Bool(true)));
    }

    #[test]
    fn an_undo_outside_any_run_is_a_span_of_its_own_and_leaves_nothing_open() {
        let run = RunId("r".into());
        let mut fold = Fold::new(false, 5);
        let undone = Event::Undone {
            changesets: vec!["cs1".into()],
            restored: 2,
            forced: false,
        };
        // A notice after a run's end tells nothing alone.
        let notice = Event::Notice {
            message: "the ledger was written".into(),
        };
        assert!(fold.apply(&run, &notice, t(0)).is_empty());
        let spans = fold.apply(&run, &undone, t(0));
        assert!(fold.is_idle());
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "deskhand undone");
        assert_eq!(spans[0].parent, None);
        assert_eq!(spans[0].events[0].name, "deskhand.undone");
        assert_eq!(str_attr(&spans[0], "deskhand.run.id"), "r");
    }

    #[test]
    fn providers_are_named_as_the_conventions_name_them() {
        assert_eq!(
            provider_and_model("openai-compatible llama3 at http://x"),
            ("openai".into(), "llama3".into())
        );
        assert_eq!(
            provider_and_model("offline planner"),
            ("deskhand".into(), "offline-planner".into())
        );
    }
}
