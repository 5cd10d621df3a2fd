//! `deskhand run TASK` and `deskhand resume RUN`: plan and carry out a task
//! (or continue one that was interrupted or is waiting for an answer) with
//! the terminal as the person, then say what the run came to.

use std::path::PathBuf;

use deskhand_runtime::agent::RunReport;
use deskhand_runtime::launch;
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{Mode, RunId, RunStatus, Task};

use crate::cli::{ResumeArgs, RunArgs};
use crate::failure::Failure;
use crate::render;
use crate::setup::{config_dir, load_config, open_workspace, toolbox};
use crate::terminal::{TerminalGate, out, terminal_observer};

pub fn run(args: RunArgs, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let RunArgs {
        task,
        workspace,
        grants,
        mode,
        model,
        params,
    } = args;
    let ws = open_workspace(&workspace)?;
    let mut tb = toolbox(cache_dir)?;
    let task = Task {
        outcome: task,
        grants,
        mode: mode.into(),
    };
    let report = run_agent(&ws, &mut tb, launch::Start::New(task), model.as_deref(), params)?;
    finish_report(&ws, &report, None)
}

pub fn resume(args: ResumeArgs, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let ResumeArgs {
        run,
        workspace,
        answer,
        mode,
        model,
    } = args;
    let ws = open_workspace(&workspace)?;
    let mut tb = toolbox(cache_dir)?;
    let run = RunId(run);
    let mode = mode.map(Mode::from);
    let start = launch::Start::Resume {
        run: run.clone(),
        answer,
        mode,
    };
    let report = run_agent(&ws, &mut tb, start, model.as_deref(), Vec::new())?;
    finish_report(&ws, &report, mode)
}

/// Runs or resumes with the terminal as the person: the terminal gate (act
/// mode lets steps and changes through, but a deletion still asks, and is
/// refused without a terminal) and the terminal display.
pub fn run_agent(
    ws: &Workspace,
    tb: &mut Toolbox,
    start: launch::Start,
    model: Option<&str>,
    params: Vec<(String, String)>,
) -> Result<RunReport, Failure> {
    let shell = deskhand_runtime::shell::default_backend();
    let warn = |w: String| eprintln!("warning: {}", render::block(&w));
    let l = launch::Launch {
        workspace: ws,
        config: load_config(ws, model)?,
        config_dir: config_dir(),
        params,
        gate: &TerminalGate,
        observer: Some(terminal_observer()),
        shell: shell.as_deref(),
        warn: &warn,
        stop: None,
    };
    launch::launch(l, tb, start).map_err(|e| match &e {
        deskhand_runtime::Error::RunFinished { run, .. } => {
            let again = run_again(ws, &RunId(run.clone()));
            let mut failure = Failure::from(e);
            failure.message.push_str(&again);
            failure
        }
        _ => e.into(),
    })
}

/// How to do a finished run's task again, for a person who tried to resume it.
fn run_again(ws: &Workspace, run: &RunId) -> String {
    let (Ok(Some(task)), Ok(grants)) = (ws.journal().task(run), ws.journal().task_grants(run)) else {
        return String::new();
    };
    let mut command = format!(
        "deskhand run {} --workspace {}",
        shell_quote(&task.outcome),
        shell_quote(&ws.root().display().to_string())
    );
    for g in grants {
        let rw = if g.access.is_writable() { ":rw" } else { "" };
        command.push_str(&format!(
            " --grant {}",
            shell_quote(&format!("{}{rw}", g.path.display()))
        ));
    }
    format!(
        "\nA run that ended cannot be continued. To do its task again:\n  {command}\n\
         (add --mode act to let the plan run without asking)"
    )
}

/// `s` as one shell word (POSIX shells and fish). Arguments cannot hold NUL,
/// so one in a task's text is dropped rather than refused.
fn shell_quote(s: &str) -> String {
    shlex::try_quote(&s.replace('\0', ""))
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_default()
}

/// What a run came to, on the terminal. `mode` is the one `resume --mode`
/// chose, repeated in the command to answer with (the journal keeps the
/// mode the run began in).
pub fn finish_report(ws: &Workspace, report: &RunReport, mode: Option<Mode>) -> Result<(), Failure> {
    match report.status {
        RunStatus::Succeeded => {
            out(&format!("\n{}", render::block(report.summary.trim())));
            let (ledger, _) = deskhand_runtime::ledger::paths(ws, &report.run);
            out(&format!(
                "Ledger: {} (a copy: {})",
                ledger.display(),
                deskhand_runtime::ledger::copy_path(ws, &report.run).display()
            ));
            out(&format!(
                "Run {} finished. See it again with: deskhand show {} --workspace {}",
                report.run,
                report.run,
                ws.root().display()
            ));
            Ok(())
        }
        RunStatus::NeedsInput => Err(Failure {
            message: format!(
                "run {} needs your answer: {}\nAnswer with: deskhand resume {} --workspace {} --answer \"...\"{}",
                report.run,
                report.question.as_deref().unwrap_or_default(),
                report.run,
                ws.root().display(),
                match mode {
                    Some(Mode::Act) => " --mode act",
                    Some(Mode::Ask) => " --mode ask",
                    None => "",
                }
            ),
            code: 2,
        }),
        RunStatus::Failed | RunStatus::Stopped | RunStatus::Running => Err(Failure {
            message: format!(
                "run {} {}: {}",
                report.run,
                report.status.as_str(),
                report.summary.trim()
            ),
            // A task that could not even be planned is the person's to rephrase.
            code: if report.plan.steps.is_empty() { 2 } else { 1 },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn the_command_to_run_again_quotes_as_a_person_would() {
        assert_eq!(shell_quote("/home/ana/notes:rw"), "/home/ana/notes:rw");
        assert_eq!(shell_quote("tidy my notes"), "'tidy my notes'");
        assert_eq!(shell_quote("Ana's report"), r#""Ana's report""#);
        assert_eq!(shell_quote("Ana's $5"), r#""Ana's "'$5'"#);
        assert_eq!(shell_quote(""), "''");
    }
}
