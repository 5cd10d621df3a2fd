//! The terminal front end: asking the person (`TerminalGate`, `confirm`),
//! showing a run or a tool's progress on stderr, and printing results on
//! stdout. What a model, a tool or a file wrote goes through `render`, so
//! its escape sequences are shown, not obeyed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deskhand_runtime::agent::{
    ActionApproval, Approval, ChangesApproval, DELETION_ALWAYS_ASKS, Gate, RunObserver, StepApproval,
};
use deskhand_runtime::tools::Observer;
use deskhand_runtime::words;
use deskhand_types::{CallOutcome, Event, RunId, StepStatus};

use crate::render;

/// Prints a line of a command's result on stdout.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (deskhand ... | head) is not an error worth reporting.
    let _ = writeln!(stdout, "{text}");
}

/// Asks a yes/no question on the terminal; no terminal means no.
pub fn confirm(question: &str) -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// Asks the person on the terminal what the approval policy
/// (`deskhand_runtime::gate::assess`) leaves to them: a step in ask mode,
/// with its declared effects; a changeset, with every change.
pub struct TerminalGate;

impl Gate for TerminalGate {
    fn approve_step(&self, _: &str, req: &StepApproval<'_>) -> Approval {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Approval::Rejected {
                reason: "ask mode needs a terminal to ask you on; run with --mode act to let the plan run".into(),
            };
        }
        let e = &req.plan_step.effects;
        // The title and paths are the model's: one line each, escapes shown.
        let list = |v: &[PathBuf]| {
            if v.is_empty() {
                "nothing".to_owned()
            } else {
                v.iter()
                    .map(|p| render::line(&p.display().to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        eprintln!("\nStep {}: {}", req.step, render::line(&req.plan_step.title));
        eprintln!("  reads:  {}", list(&e.reads));
        eprintln!("  writes: {}", list(&e.writes));
        if !e.network.is_empty() {
            eprintln!("  network: {}", render::line(&e.network.join(", ")));
        }
        if confirm("Approve this step? [y/N] ") {
            Approval::Approved {
                by: "the person, at the terminal".into(),
            }
        } else {
            Approval::Rejected {
                reason: "you answered no".into(),
            }
        }
    }

    fn approve_changes(&self, _: &str, req: &ChangesApproval<'_>) -> Approval {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            // Why, and what to do; the caller says what became of the changes.
            let reason = if req.deletions > 0 {
                format!("{DELETION_ALWAYS_ASKS}; run it again at a terminal to answer")
            } else {
                "ask mode needs a terminal to ask you on; run it again at a terminal, or with --mode act".into()
            };
            return Approval::Rejected { reason };
        }
        eprintln!(
            "\nStep {} proposes these changes:\n{}",
            req.step,
            render::block(req.description)
        );
        let question = if req.deletions > 0 {
            format!(
                "Apply them, including {} deletion(s) (deleted files go to the workspace trash)? [y/N] ",
                req.deletions
            )
        } else {
            "Apply them? [y/N] ".to_owned()
        };
        if confirm(&question) {
            Approval::Approved {
                by: "the person, at the terminal".into(),
            }
        } else {
            Approval::Rejected {
                reason: "you answered no".into(),
            }
        }
    }

    /// A connector action: what the tool says it does and its arguments as
    /// pretty JSON (both the server's and the model's words, shown inert);
    /// y, n, or "always" for this connector tool (not offered for a destructive one).
    fn approve_action(&self, _: &str, req: &ActionApproval<'_>) -> Approval {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Approval::Rejected {
                reason: "a connector's action needs your answer at a terminal; run it again at a terminal, or with \
                         --mode act"
                    .into(),
            };
        }
        let arguments = serde_json::to_string_pretty(req.arguments).unwrap_or_default();
        eprintln!(
            "\nStep {} wants to use {}.{} (the connector {}):\n  {}\nwith these arguments:\n{}",
            req.step,
            render::line(req.connector),
            render::line(req.tool),
            render::line(req.connector),
            render::line(req.description),
            render::block(&arguments)
        );
        let question = if req.destructive {
            "The tool says it destroys data. Run it? [y/N] "
        } else {
            "Run it? [y/N/always] "
        };
        eprint!("{question}");
        let mut line = String::new();
        let answer = if std::io::stdin().read_line(&mut line).is_ok() {
            line.trim().to_lowercase()
        } else {
            String::new()
        };
        match answer.as_str() {
            "y" | "yes" => Approval::Approved {
                by: "the person, at the terminal".into(),
            },
            "always" | "a" if !req.destructive => match (req.allow_always)() {
                Ok(()) => Approval::Approved {
                    by: "the person, at the terminal (always, from now on)".into(),
                },
                Err(e) => {
                    eprintln!("  (could not remember \"always\": {e}; this call runs once)");
                    Approval::Approved {
                        by: "the person, at the terminal".into(),
                    }
                }
            },
            _ => Approval::Rejected {
                reason: "you answered no".into(),
            },
        }
    }
}

/// `--verbose`: each call's tool name and arguments beside what it did.
static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

fn depth(run: &RunId) -> usize {
    run.0.matches('.').count()
}

fn short_json(v: &serde_json::Value) -> String {
    let s = render::json_line(v);
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// Shows the plan and progress on the terminal while a run goes. What a
/// model, a tool or a file wrote (titles, reasons, messages, answers) goes
/// through `render`, so its escape sequences are shown, not obeyed.
pub fn terminal_observer() -> RunObserver {
    use render::line;
    let narrator = std::sync::Mutex::new(words::Narrator::default());
    Arc::new(move |run: &RunId, event: &Event| {
        let pad = "    ".repeat(depth(run));
        match event {
            Event::PlanUpdated { plan } => {
                let reason = plan
                    .reason
                    .as_deref()
                    .map(|r| format!(" — {}", line(r)))
                    .unwrap_or_default();
                eprintln!("{pad}Plan (revision {}){reason}:", plan.revision);
                for (i, s) in plan.steps.iter().enumerate() {
                    eprintln!("{pad}  {} {}. {}", s.status.mark(), i + 1, line(&s.title));
                }
            }
            Event::StepBegin { step, title } => eprintln!("{pad}  [>] {step}. {}", line(title)),
            Event::StepEnd { step, status, note } => {
                let note = note.as_deref().map(|n| format!(": {}", line(n))).unwrap_or_default();
                let word = match status {
                    StepStatus::Done => "done",
                    StepStatus::Failed => "failed",
                    _ => "skipped",
                };
                eprintln!("{pad}  {} {step}. {word}{note}", status.mark());
            }
            Event::ToolCallBegin {
                tool, operation, args, ..
            } => {
                // What it did, in words; the tool's own name for those who ask.
                let said = narrator.lock().unwrap_or_else(|p| p.into_inner()).line(run, event);
                if VERBOSE.load(Ordering::Relaxed) {
                    let said = said.map(|s| format!("{} — ", line(&s))).unwrap_or_default();
                    eprintln!(
                        "{pad}      · {said}{} {}",
                        line(&words::tool_name(tool, operation)),
                        short_json(args)
                    );
                } else if let Some(said) = said {
                    eprintln!("{pad}      · {}", line(&said));
                }
            }
            Event::ToolCallEnd { outcome, .. } => {
                let said = narrator.lock().unwrap_or_else(|p| p.into_inner()).line(run, event);
                if let (Some(said), CallOutcome::Ok { .. }) = (&said, outcome) {
                    eprintln!("{pad}      · {}", line(said));
                } else if let Some(said) = said {
                    eprintln!("{pad}      ! {}", line(&said));
                } else if let (CallOutcome::Refused { message }, true) = (outcome, VERBOSE.load(Ordering::Relaxed)) {
                    eprintln!("{pad}      ! refused: {}", line(message));
                }
            }
            Event::ToolProgress {
                done, total, message, ..
            } => match total {
                Some(total) => eprintln!("{pad}        {}: {done}/{total}", line(message)),
                None => eprintln!("{pad}        {}: {done}", line(message)),
            },
            Event::SubAgentBegin { outcome, child, .. } => {
                eprintln!("{pad}      ↳ sub-agent {child}: {}", line(outcome))
            }
            Event::SubAgentEnd { child, status, .. } => eprintln!("{pad}      ↳ sub-agent {child} {}", status.as_str()),
            Event::ModelRetry {
                attempt,
                wait_ms,
                reason,
            } => {
                eprintln!(
                    "{pad}  (the model is busy: {}; retry {attempt} in {:.1}s)",
                    line(reason),
                    *wait_ms as f64 / 1000.0
                )
            }
            Event::Blocked { reason, .. } => eprintln!("{pad}  ! {}", line(reason)),
            Event::ChangesApplied { count, by, .. } => eprintln!(
                "{pad}  applied {count} change(s) to your folders (approved by {}); `deskhand undo {run}` puts them back",
                line(by)
            ),
            Event::ChangesRefused { reason, .. } => eprintln!("{pad}  changes not applied: {}", line(reason)),
            Event::Compacted { replaced, .. } => {
                eprintln!("{pad}  (compacted {replaced} older messages to fit the context window)")
            }
            Event::Notice { message } | Event::ModeChanged { message, .. } => {
                eprintln!("{pad}  note: {}", line(message))
            }
            Event::Resumed { run } => eprintln!("{pad}Resuming {run} from its journal"),
            Event::Message { message } if message.role == deskhand_types::model::Role::Assistant => {
                // The final answer goes to stdout when the run ends; show only commentary here.
                let text = message.text();
                if !text.trim().is_empty() && depth(run) == 0 && message.tool_uses().next().is_some() {
                    eprintln!("{pad}{}", render::block(text.trim()));
                }
            }
            _ => {}
        }
    })
}

/// Shows a tool's progress and logs on stderr while it runs.
pub fn progress_observer() -> Observer {
    Arc::new(|event: &Event| match event {
        Event::ToolProgress {
            done, total, message, ..
        } => match total {
            Some(total) => eprintln!("  {}: {done}/{total}", render::line(message)),
            None => eprintln!("  {}: {done}", render::line(message)),
        },
        Event::ToolLog { level, message, .. } => eprintln!("  [{level:?}] {}", render::line(message)),
        _ => {}
    })
}
