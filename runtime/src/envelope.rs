//! The envelope: what the person approved beforehand for runs no one
//! watches (a schedule's), and the gate those runs get instead of a person.
//!
//! An [`Envelope`] is saved with a schedule as JSON: the grants (with their
//! access), the plan's steps (title, declared effects and the hash a step's
//! approval is bound to, as `Event::StepApproved`'s
//! `effects_hash`), the tools the plan was seen to call, and the network
//! hosts (none yet). [`draft`] makes one by planning the task without
//! acting; its [`Display`](std::fmt::Display) is what the person reads
//! before saving.
//!
//! What holds in a run under an envelope ([`Unattended`] is its gate): the
//! policy ([`crate::gate::assess`]) decides every step and changeset with
//! the envelope and never asks; a step whose hash is not in it, grants
//! beyond it, code the model writes (`shell`, `python`) when the envelope
//! names none, a deletion or a question do not happen: the run stops there
//! for the person (`NeedsInput`, resumable), says what it needed, and
//! notifies ([`desktop_notification`]). The front end's gate is never asked.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use deskhand_types::{Grant, PlanStep, RunId, StepEffects, Task};

use crate::agent::{Agent, AgentSettings, Approval, ChangesApproval, Gate, StepApproval};
use crate::error::Result;
use crate::model::config::ModelConfig;
use crate::tools::Toolbox;
use crate::workspace::Workspace;

/// What the person approved for a schedule's runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The folders its runs may use, each read-only or read-write
    /// (`output/` is always written).
    pub grants: Vec<Grant>,
    /// The approved plan, in order.
    pub steps: Vec<EnvelopeStep>,
    /// The tools the plan was seen to call (`receipts.run`, `shell`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Network hosts its runs may contact (none yet: tools have no network).
    #[serde(default)]
    pub network: Vec<String>,
}

/// One approved step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeStep {
    pub title: String,
    pub effects: StepEffects,
    /// What an approval of the step is bound to: [`step_hash`].
    pub hash: String,
}

/// Tools that run code the model writes: an unattended run calls them only
/// if the envelope names them. Every other tool acts within its step's
/// declared effects, which the step's hash binds.
const CODE_TOOLS: &[&str] = &["shell", "python"];

/// The hash a step's approval is bound to: SHA-256 of its title and
/// declared effects ([`PlanStep::approval_subject`]), hex.
pub fn step_hash(step: &PlanStep) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(step.approval_subject()))
}

/// A tool use's name as the envelope lists it: `receipts__run` is
/// `receipts.run`, the runtime's own `shell` is `shell`.
pub fn tool_key(name: &str) -> String {
    name.replacen(crate::agent::meta::TOOL_SEP, ".", 1)
}

impl Envelope {
    /// Whether a step with this approval hash is in the approved plan.
    pub fn covers_step(&self, hash: &str) -> bool {
        self.steps.iter().any(|s| s.hash == hash)
    }

    /// Why `step` is not covered, in the person's words: what changed from
    /// the approved step of the same title, or that there is none.
    pub fn step_not_covered(&self, n: deskhand_types::StepNo, step: &PlanStep) -> String {
        let now = effects_words(&step.effects);
        match self.steps.iter().find(|s| s.title == step.title) {
            Some(approved) => format!(
                "step {n} \"{}\" now {now}, but the plan approved for the schedule had it {}",
                step.title,
                effects_words(&approved.effects)
            ),
            None => format!(
                "step {n} \"{}\" ({now}) is not in the plan approved for the schedule",
                step.title
            ),
        }
    }

    /// Whether the envelope lets a run call `key` ([`tool_key`]): code the
    /// model writes only if the envelope names that tool.
    pub fn allows_tool(&self, key: &str) -> bool {
        let tool = key.split('.').next().unwrap_or(key);
        !CODE_TOOLS.contains(&tool) || self.tools.iter().any(|t| t.split('.').next().unwrap_or(t) == tool)
    }

    /// Whether a step of the approved plan declares `action` (`mail.send_message`):
    /// an unattended run takes only the actions its plan lists.
    pub fn allows_action(&self, action: &str) -> bool {
        self.steps.iter().any(|s| s.effects.actions.iter().any(|a| a == action))
    }

    /// Checks `grants` against the envelope's: each must be one of its
    /// folders or within one, and read-write only where it is. `resolve`
    /// makes paths comparable (the workspace's resolution). Err: the first
    /// grant beyond it, in the person's words.
    pub fn covers_grants(
        &self,
        grants: &[Grant],
        resolve: &dyn Fn(&Path) -> Option<PathBuf>,
    ) -> std::result::Result<(), String> {
        let approved: Vec<(PathBuf, bool)> = self
            .grants
            .iter()
            .filter_map(|g| resolve(&g.path).map(|p| (p, g.access.is_writable())))
            .collect();
        for g in grants {
            // The very grant the person approved, whether or not its folder is there now.
            if self
                .grants
                .iter()
                .any(|a| a.path == g.path && (a.access.is_writable() || !g.access.is_writable()))
            {
                continue;
            }
            let path = resolve(&g.path);
            let within = |rw: bool| {
                path.as_ref()
                    .is_some_and(|p| approved.iter().any(|(a, a_rw)| p.starts_with(a) && (*a_rw || !rw)))
            };
            if !within(g.access.is_writable()) {
                let how = if within(false) {
                    "read-write, where the schedule was approved to read it only"
                } else {
                    "which the schedule was not approved to use"
                };
                return Err(format!("the task is granted {} {how}", g.path.display()));
            }
        }
        Ok(())
    }

    /// One line for a list: "reads projects/receipts, writes output/, runs: receipts.run".
    pub fn summary(&self) -> String {
        let reads: Vec<String> = self.grants.iter().map(|g| folder(&g.path)).collect();
        let mut writes: Vec<String> = self
            .grants
            .iter()
            .filter(|g| g.access.is_writable())
            .map(|g| folder(&g.path))
            .collect();
        writes.push("output/".into());
        let mut parts = Vec::new();
        if !reads.is_empty() {
            parts.push(format!("reads {}", reads.join(", ")));
        }
        parts.push(format!("writes {}", writes.join(", ")));
        if !self.tools.is_empty() {
            parts.push(format!("runs: {}", self.tools.join(", ")));
        }
        if !self.network.is_empty() {
            parts.push(format!("contacts {}", self.network.join(", ")));
        }
        parts.join(", ")
    }
}

fn folder(p: &Path) -> String {
    let s = p.display().to_string();
    if s.ends_with('/') { s } else { format!("{s}/") }
}

fn effects_words(e: &StepEffects) -> String {
    let list = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if !e.reads.is_empty() {
        parts.push(format!("reading {}", list(&e.reads)));
    }
    if !e.writes.is_empty() {
        parts.push(format!("writing {}", list(&e.writes)));
    }
    if !e.network.is_empty() {
        parts.push(format!("contacting {}", e.network.join(", ")));
    }
    if !e.actions.is_empty() {
        parts.push(format!("doing {}", e.actions.join(", ")));
    }
    if parts.is_empty() {
        "touching nothing".into()
    } else {
        parts.join(" and ")
    }
}

impl fmt::Display for Envelope {
    /// What the person approves when saving a schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Each run may, without asking you:")?;
        for g in &self.grants {
            let how = if g.access.is_writable() {
                "read and change"
            } else {
                "read"
            };
            writeln!(f, "  {how} {}", folder(&g.path))?;
        }
        writeln!(f, "  write new files in output/")?;
        if !self.tools.is_empty() {
            writeln!(f, "  run {}", self.tools.join(", "))?;
        }
        match self.network.is_empty() {
            true => writeln!(f, "  (no network)")?,
            false => writeln!(f, "  contact {}", self.network.join(", "))?,
        }
        writeln!(f, "following this plan:")?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {}. {} ({})", i + 1, s.title, effects_words(&s.effects))?;
        }
        write!(
            f,
            "A run that needs anything else (another folder, a different step, a deletion, an answer) stops \
             there for you without doing it, and tells you."
        )
    }
}

/// A run's stop for the person, for a desktop notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub run: RunId,
    pub title: String,
    pub body: String,
}

/// Sends notifications; returns how ("notify-send"), or None where this
/// machine has no way to.
pub type Notifier = dyn Fn(&Notification) -> Option<String> + Send + Sync;

/// The gate of a run no one watches: the policy decides with its
/// [`Envelope`], and what the envelope does not cover is held for the
/// person (recorded here for the run to stop on) rather than asked.
pub struct Unattended {
    envelope: Envelope,
    held: Mutex<HashMap<RunId, String>>,
    notify: Box<Notifier>,
}

impl fmt::Debug for Unattended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unattended")
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

impl Unattended {
    /// Notifies through the desktop ([`desktop_notification`]).
    pub fn new(envelope: Envelope) -> Self {
        Unattended {
            envelope,
            held: Mutex::default(),
            notify: Box::new(desktop_notification),
        }
    }

    /// Notifies through `notify` instead of the desktop.
    pub fn with_notifier(mut self, notify: impl Fn(&Notification) -> Option<String> + Send + Sync + 'static) -> Self {
        self.notify = Box::new(notify);
        self
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Records that `run` needs the person for `what` (in their words).
    pub fn hold(&self, run: &RunId, what: String) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run.clone(), what);
    }

    /// What `run` was held for since the last call, if anything.
    pub fn take_held(&self, run: &RunId) -> Option<String> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(run)
    }

    /// Tells the person; None where this machine cannot.
    pub fn notify(&self, n: &Notification) -> Option<String> {
        (self.notify)(n)
    }
}

/// Never asked: [`crate::gate`] decides an unattended run's approvals with
/// the envelope. Were it asked, no one is there: it refuses.
impl Gate for Unattended {
    fn unattended(&self) -> Option<&Unattended> {
        Some(self)
    }

    fn approve_step(&self, _: &str, _: &StepApproval<'_>) -> Approval {
        Approval::Rejected {
            reason: NO_ONE_TO_ASK.into(),
        }
    }

    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Rejected {
            reason: NO_ONE_TO_ASK.into(),
        }
    }
}

const NO_ONE_TO_ASK: &str = "no one is watching this run to ask";

/// The command that shows a desktop notification on `os`
/// (`std::env::consts::OS`): notify-send on Linux and the BSDs, AppleScript
/// on macOS; None elsewhere.
pub fn notification_command(os: &str, n: &Notification) -> Option<(&'static str, Vec<String>)> {
    match os {
        "linux" | "freebsd" | "openbsd" | "netbsd" => Some((
            "notify-send",
            vec!["--app-name=deskhand".into(), n.title.clone(), n.body.clone()],
        )),
        "macos" => {
            let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
            Some((
                "osascript",
                vec![
                    "-e".into(),
                    format!("display notification {} with title {}", quote(&n.body), quote(&n.title)),
                ],
            ))
        }
        _ => None,
    }
}

/// Shows `n` on the desktop where the OS has a way to; a machine without
/// one (no notify-send, no session) is not an error: the run page and
/// `deskhand runs` show the stop too. Does not wait for the notifier.
pub fn desktop_notification(n: &Notification) -> Option<String> {
    let (program, args) = notification_command(std::env::consts::OS, n)?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // Reaped off the run's thread: a notifier that hangs holds nothing up.
    std::thread::spawn(move || child.wait());
    Some(program.to_owned())
}

/// Plans `task` without acting, for the person to approve as a schedule's
/// envelope: the model (or the offline planner) is asked for its plan as a
/// run's first turn would be, with no tool run, no journal entry and
/// nothing in the person's folders or `output/` changed. `config` and
/// `config_dir` are what [`crate::launch::Launch`] gets (the skills found
/// there load their components into `tb`, as [`crate::launch::launch`]
/// does, so the model is offered what the run will offer it);
/// `task.params` are the parameters given outright.
///
/// Err: the task cannot be planned as it stands (no skill or model fits,
/// a question the planner needs answered first, a plan beyond the grants),
/// saying what to change.
pub fn draft(
    ws: &Workspace,
    task: &Task,
    config: &ModelConfig,
    config_dir: Option<&Path>,
    tb: &mut Toolbox,
) -> Result<Envelope> {
    // A plugin's /command is planned as the task it starts, as the run will.
    let mut task = task.clone();
    crate::launch::expand_command(&mut task, config_dir);
    let task = &task;
    // A skill that cannot be read or load is the run's to report.
    let discovery = crate::launch::discover_skills(ws, config_dir, &|_| {});
    crate::launch::add_components(tb, &discovery.skills, &|_| {});
    let planner = crate::launch::Planner::new(ws, config, &discovery, &task.grants, task.params.clone())?;
    let agent = Agent {
        workspace: ws,
        toolbox: tb,
        provider: planner.provider(),
        gate: &Unattended::new(Envelope::default()),
        settings: AgentSettings {
            max_tokens: config.max_tokens,
            context_tokens: config.context_tokens,
            ..AgentSettings::default()
        },
        observer: None,
        skills_prompt: crate::agent::offline::OfflinePlanner::capabilities(&discovery.skills),
        shell: None,
    };
    let (steps, tools) = agent.draft_plan(task)?;
    Ok(Envelope {
        grants: task.grants.clone(),
        steps: steps
            .iter()
            .map(|s| EnvelopeStep {
                title: s.title.clone(),
                effects: s.effects.clone(),
                hash: step_hash(s),
            })
            .collect(),
        tools,
        network: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        let step = PlanStep {
            title: "Run receipts-to-spreadsheet on projects/receipts in the sandbox".into(),
            effects: StepEffects {
                reads: vec!["projects/receipts".into()],
                writes: vec!["output".into()],
                network: Vec::new(),
                actions: Vec::new(),
            },
            status: Default::default(),
        };
        Envelope {
            grants: vec![
                Grant::read_only("projects/receipts"),
                Grant::read_write("projects/scans"),
            ],
            steps: vec![EnvelopeStep {
                hash: step_hash(&step),
                title: step.title,
                effects: step.effects,
            }],
            tools: vec!["receipts.run".into()],
            network: Vec::new(),
        }
    }

    #[test]
    fn it_reads_as_the_person_approves_it_and_round_trips_as_json() {
        let e = envelope();
        assert_eq!(
            e.summary(),
            "reads projects/receipts/, projects/scans/, writes projects/scans/, output/, runs: receipts.run"
        );
        let shown = e.to_string();
        assert!(
            shown.contains("  read projects/receipts/\n  read and change projects/scans/\n"),
            "{shown}"
        );
        assert!(shown.contains("1. Run receipts-to-spreadsheet on projects/receipts in the sandbox (reading projects/receipts and writing output)"), "{shown}");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
    }

    #[test]
    fn grants_must_lie_within_the_envelopes() {
        let e = envelope();
        let resolve = |p: &Path| Some(Path::new("/ws").join(p));
        assert_eq!(
            e.covers_grants(&[Grant::read_only("projects/receipts/2026")], &resolve),
            Ok(())
        );
        assert_eq!(
            e.covers_grants(&[Grant::read_write("projects/scans")], &resolve),
            Ok(())
        );
        assert_eq!(
            e.covers_grants(&[Grant::read_only("projects/scans")], &|_| None),
            Ok(())
        );
        assert_eq!(
            e.covers_grants(&[Grant::read_write("projects/receipts")], &resolve),
            Err(
                "the task is granted projects/receipts read-write, where the schedule was approved to read it only"
                    .into()
            )
        );
        assert_eq!(
            e.covers_grants(&[Grant::read_only("projects/taxes")], &resolve),
            Err("the task is granted projects/taxes which the schedule was not approved to use".into())
        );
    }

    #[test]
    fn code_the_model_writes_runs_only_if_named() {
        let mut e = envelope();
        assert!(e.allows_tool("receipts.run") && e.allows_tool("fs.list"));
        assert!(!e.allows_tool("shell") && !e.allows_tool("python.run"));
        e.tools.push("python.run".into());
        assert!(e.allows_tool("python.run") && !e.allows_tool("shell"));
    }

    #[test]
    fn notifications_quote_what_the_run_said() {
        let n = Notification {
            run: RunId("r1".into()),
            title: "deskhand".into(),
            body: "step 1 \"x\" \\ y".into(),
        };
        let (program, args) = notification_command("macos", &n).unwrap();
        assert_eq!(program, "osascript");
        assert_eq!(
            args[1],
            r#"display notification "step 1 \"x\" \\ y" with title "deskhand""#
        );
        assert_eq!(notification_command("linux", &n).unwrap().1[2], n.body);
        assert_eq!(notification_command("windows", &n), None);
    }
}
