//! Starting a schedule's run with no one at the terminal or the page, the
//! way every front end that runs due schedules does (the CLI's `run-due`
//! and `run-now`, `deskhand serve`'s background thread).
//!
//! What holds: the run goes through [`launch::launch`] like any other; its
//! gate never waits for anyone (whatever the policy leaves to a person is
//! refused, so the run stops there and says why in its journal); and what
//! the run came to maps onto the occurrence: finished, stopped for the
//! person (resumable with `deskhand resume`), or failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deskhand_types::{Event, RunId, RunStatus, Task};

use super::{Occurrence, OccurrenceState, RunOutcome, Schedule};
use crate::agent::{RefuseAll, RunObserver, RunReport};
use crate::launch::{self, Launch};
use crate::model::ModelConfig;
use crate::tools::Toolbox;
use crate::workspace::Workspace;

/// The gate of a schedule's run saved without an envelope (with one,
/// [`crate::envelope::Unattended`] is its gate): whatever the policy would
/// ask a person is refused with a reason that says so; it never blocks.
pub const UNATTENDED_GATE: RefuseAll = RefuseAll(
    "this is a scheduled run and no one is there to approve it; it stops here for the person (see it with \
     `deskhand runs`, continue it with `deskhand resume`)",
);

/// What an unattended run needs from the front end that starts it.
pub struct RunWith<'a> {
    pub config: ModelConfig,
    pub config_dir: Option<PathBuf>,
    pub shell: Option<&'a (dyn deskhand_host_vm::ShellBackend + Sync)>,
    pub warn: &'a dyn Fn(String),
    pub observer: Option<RunObserver>,
    /// Told the run's id once it has one ([`recorder`]).
    pub started: Option<Started>,
    /// Set to stop the run (the page's Stop button), as [`Launch::stop`].
    pub stop: Option<Arc<AtomicBool>>,
}

/// Told a run's id when it starts.
pub type Started = Arc<dyn Fn(&RunId) + Send + Sync>;

/// Records the run started for `occurrence` in the schedule database at
/// `db` ([`super::Schedules::record_run`]), once, so that a process taking
/// the occurrence over after this one died resumes it rather than starting
/// another. A failure to record costs only that: it is not reported.
pub fn recorder(db: PathBuf, occurrence: i64, holder: String) -> Started {
    let done = AtomicBool::new(false);
    Arc::new(move |run: &RunId| {
        if !done.swap(true, Ordering::SeqCst)
            && let Ok(store) = super::Schedules::open(&db)
        {
            let _ = store.record_run(occurrence, &holder, run);
        }
    })
}

/// The task a schedule runs.
pub fn task(schedule: &Schedule) -> Task {
    Task {
        outcome: schedule.task.clone(),
        grants: schedule.grants.clone(),
        mode: schedule.mode,
        params: Default::default(),
    }
}

/// Runs `occurrence` of `schedule` in `ws` unattended: its task anew, or,
/// when the occurrence already has a run (its first holder died), that run
/// resumed. The skills' components load into `tb` ([`launch::launch`]).
pub fn launch_unattended(
    ws: &Workspace,
    tb: &mut Toolbox,
    schedule: &Schedule,
    occurrence: &Occurrence,
    with: RunWith<'_>,
) -> crate::Result<RunReport> {
    let start = start(schedule, occurrence);
    launch::launch(unattended(ws, schedule, with), tb, start)
}

/// [`launch_unattended`] for a front end that shares one toolbox between
/// runs (the browser UI), as [`launch::launch_shared`].
pub fn launch_unattended_shared(
    ws: &Workspace,
    tb: &Toolbox,
    schedule: &Schedule,
    occurrence: &Occurrence,
    with: RunWith<'_>,
) -> crate::Result<RunReport> {
    let start = start(schedule, occurrence);
    launch::launch_shared(unattended(ws, schedule, with), tb, start)
}

fn start(schedule: &Schedule, occurrence: &Occurrence) -> launch::Start {
    match &occurrence.run {
        Some(run) => launch::Start::Resume {
            run: run.clone(),
            answer: None,
            mode: None,
        },
        None => launch::Start::New(task(schedule)),
    }
}

fn unattended<'a>(ws: &'a Workspace, schedule: &Schedule, with: RunWith<'a>) -> Launch<'a> {
    let observer: Option<RunObserver> = match (with.observer, with.started) {
        (observer, Some(started)) => Some(Arc::new(move |run: &RunId, event: &Event| {
            started(run);
            if let Some(o) = &observer {
                o(run, event);
            }
        })),
        (observer, None) => observer,
    };
    Launch {
        workspace: ws,
        config: with.config,
        config_dir: with.config_dir,
        params: Vec::new(),
        gate: &UNATTENDED_GATE,
        observer,
        shell: with.shell,
        warn: with.warn,
        stop: with.stop,
        envelope: schedule.envelope.clone(),
    }
}

/// What a run's report means for its occurrence.
pub fn outcome(report: &crate::Result<RunReport>) -> RunOutcome {
    match report {
        Ok(r) => RunOutcome {
            run: Some(r.run.clone()),
            state: match r.status {
                RunStatus::Succeeded => OccurrenceState::Ran,
                RunStatus::NeedsInput | RunStatus::Stopped => OccurrenceState::NeedsYou,
                RunStatus::Failed | RunStatus::Running => OccurrenceState::Failed,
            },
            note: match r.status {
                RunStatus::Succeeded => None,
                RunStatus::NeedsInput => Some(r.question.as_deref().unwrap_or(r.summary.trim()).to_owned()),
                _ => Some(r.summary.trim().to_owned()).filter(|s| !s.is_empty()),
            },
        },
        Err(e) => RunOutcome {
            run: None,
            state: OccurrenceState::Failed,
            note: Some(format!("could not start: {e}")),
        },
    }
}
