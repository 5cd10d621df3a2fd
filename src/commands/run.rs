//! `deskhand run TASK` and `deskhand resume RUN`: plan and carry out a task
//! (or continue one that was interrupted or is waiting for an answer, or give
//! a finished one a new instruction with `--say`) with the terminal as the
//! person, then say what the run came to. A question the run asks is asked
//! on the terminal when there is one; otherwise `resume --answer` answers it.

use std::path::PathBuf;

use deskhand_runtime::agent::RunReport;
use deskhand_runtime::launch;
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{Mode, RunId, RunStatus, Task};

use crate::cli::{ResumeArgs, RunArgs};
use crate::failure::{Failure, user_error};
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
    if task.trim().is_empty() {
        return Err(user_error(
            "the task is empty: say what you want done, e.g. deskhand run \"make an expense report from my \
             receipts\" --grant projects/receipts",
        ));
    }
    let ws = open_workspace(&workspace)?;
    check_grants(&ws, &grants)?;
    let mut tb = toolbox(cache_dir.clone())?;
    let task = Task {
        outcome: task,
        grants,
        mode: mode.into(),
        params: params.iter().cloned().collect(),
    };
    let offline =
        load_config(&ws, model.as_deref())?.provider == deskhand_runtime::model::config::ProviderKind::Offline;
    super::skill_new::confirm_first_use(&ws, &task, offline, cache_dir.clone())?;
    let report = run_agent(&ws, &mut tb, launch::Start::New(task), model.as_deref(), params.clone())?;
    let report = answer_on_the_terminal(&ws, &mut tb, report, None, model.as_deref(), &params)?;
    finish_report(&ws, &report, None)
}

/// Refuses, before anything starts, a grant of a folder that does not exist
/// (or cannot be granted), naming it and what to do.
fn check_grants(ws: &Workspace, grants: &[deskhand_types::Grant]) -> Result<(), Failure> {
    for g in grants {
        let path = if g.path.is_absolute() {
            g.path.clone()
        } else {
            ws.root().join(&g.path)
        };
        if !path.is_dir() {
            let what = if path.exists() {
                "is not a folder"
            } else {
                "does not exist"
            };
            return Err(user_error(format!(
                "the granted folder {} {what} ({}). Nothing was started. Check the name (a relative path is \
                 read from the workspace, {}), or create the folder first.",
                render::line(&g.path.display().to_string()),
                render::line(&path.display().to_string()),
                ws.root().display()
            )));
        }
    }
    ws.policy(grants).map(|_| ()).map_err(Failure::from)
}

/// While the run waits for an answer and a person is at the terminal, asks
/// them and resumes with what they say; an empty answer leaves the run
/// waiting (`resume --answer` answers it later).
fn answer_on_the_terminal(
    ws: &Workspace,
    tb: &mut Toolbox,
    mut report: RunReport,
    mode: Option<Mode>,
    model: Option<&str>,
    params: &[(String, String)],
) -> Result<RunReport, Failure> {
    use std::io::IsTerminal;
    while report.status == RunStatus::NeedsInput && std::io::stdin().is_terminal() {
        eprintln!(
            "\ndeskhand asks: {}",
            render::block(report.question.as_deref().unwrap_or_default())
        );
        eprint!("Your answer (Enter alone to answer later): ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        let start = launch::Start::Resume {
            run: report.run.clone(),
            answer: Some(line.trim().to_owned()),
            mode,
        };
        report = run_agent(ws, tb, start, model, params.to_vec())?;
    }
    Ok(report)
}

pub fn resume(args: ResumeArgs, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let ResumeArgs {
        run,
        workspace,
        answer,
        say,
        mode,
        model,
    } = args;
    let ws = open_workspace(&workspace)?;
    let mut tb = toolbox(cache_dir)?;
    let run = RunId(run);
    let mode = mode.map(Mode::from);
    let start = match say {
        Some(say) if say.trim().is_empty() => {
            return Err(user_error(
                "the new instruction is empty: say what you want done next, e.g. --say \"now for April\"",
            ));
        }
        Some(say) => launch::Start::FollowUp {
            run: run.clone(),
            say,
            mode,
        },
        None => launch::Start::Resume {
            run: run.clone(),
            answer,
            mode,
        },
    };
    let report = run_agent(&ws, &mut tb, start, model.as_deref(), Vec::new())?;
    let report = answer_on_the_terminal(&ws, &mut tb, report, mode, model.as_deref(), &[])?;
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
        // A person is there to ask.
        envelope: None,
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
        "\nTo give it a new instruction (a new turn with what it did so far):\n  deskhand resume {run} --workspace {} \
         --say \"...\"\nTo do its task again from the start:\n  {command}\n\
         (add --mode act to let the plan run without asking)",
        shell_quote(&ws.root().display().to_string())
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
                "Run {} finished. See it again with: deskhand show {} --workspace {}\n\
                 Ask for more in the same run with: deskhand resume {} --workspace {} --say \"...\"",
                report.run,
                report.run,
                ws.root().display(),
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
        // The planner's own answer that it cannot do the task: an answer, on stdout.
        RunStatus::Failed
            if deskhand_runtime::view::RunView::load(ws.journal(), &report.run).is_ok_and(|v| v.declined) =>
        {
            out(&format!("\n{}", render::block(report.summary.trim())));
            // Nothing was done: a script still sees it (exit 2), a person reads no error.
            Err(Failure {
                message: String::new(),
                code: 2,
            })
        }
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
