//! The `deskhand` command: parses arguments and wires the runtime together.
//! Everything testable lives in `deskhand-runtime`.

mod render;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use deskhand_runtime::agent::{
    Approval, ChangesApproval, DELETION_ALWAYS_ASKS, Gate, RunObserver, RunReport, StepApproval,
};
use deskhand_runtime::changeset;
use deskhand_runtime::launch;
use deskhand_runtime::model::ModelConfig;
use deskhand_runtime::tools::{CallRequest, Observer, Toolbox, run_call};
use deskhand_runtime::wasm::{Limits, WasmHost};
use deskhand_runtime::workspace::{InitOutcome, Workspace};
use deskhand_types::{CallOutcome, ChangesetStatus, Event, Grant, Mode, RunId, RunStatus, StepStatus, Task};

#[derive(Parser)]
#[command(
    name = "deskhand",
    version,
    about = "A local agent for knowledge work that runs every tool in a WebAssembly sandbox"
)]
struct Cli {
    /// Where compiled tool components are cached (default: the user cache folder).
    #[arg(long, global = true, env = "DESKHAND_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Without a command: open the plan UI for the workspace in this folder.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a workspace: context/, projects/, output/, INSTRUCTIONS.md, MEMORY.md and .deskhand/.
    Init { dir: PathBuf },
    /// Work with the sandboxed tools.
    Tool {
        #[command(subcommand)]
        command: ToolCommand,
    },
    /// Create a demo workspace with sample files and run a task on it with the offline planner.
    Demo {
        /// Where to create the demo workspace.
        #[arg(default_value = "deskhand-demo")]
        dir: PathBuf,
    },
    /// Plan and carry out a task: a model (or the offline planner) makes a visible plan and runs it.
    Run {
        /// The outcome you want, in words.
        task: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// A folder the task may see: PATH (read-only) or PATH:rw. Repeatable.
        #[arg(long = "grant", value_parser = parse_grant)]
        grants: Vec<Grant>,
        /// ask: approve each step; act: run the plan without asking.
        #[arg(long, value_enum, default_value = "ask")]
        mode: ModeArg,
        /// The model to use, or "offline" for the offline planner (default: from config).
        #[arg(long)]
        model: Option<String>,
        /// A skill parameter for the offline planner, NAME=VALUE. Repeatable.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// Teach deskhand something: proposes an update to MEMORY.md, shows it as a diff, writes it only if you accept.
    Feedback {
        /// What deskhand should remember.
        text: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Accept the proposed update without asking.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        model: Option<String>,
    },
    /// List the runs in a workspace.
    Runs {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Show a run: its plan, steps, sub-agents and outcome.
    Show {
        run: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Print every journaled event as JSON lines.
        #[arg(long)]
        events: bool,
        /// Print the run's ledger of record (kept in .deskhand/, where no tool can write).
        #[arg(long, conflicts_with = "events")]
        ledger: bool,
    },
    /// Run one native command in the shell sandbox; its changes to your folders come back for approval.
    Shell {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// A folder the command may see: PATH (read-only) or PATH:rw (changes come back as a changeset). Repeatable.
        #[arg(long = "grant", value_parser = parse_grant)]
        grants: Vec<Grant>,
        /// ask: approve the command and its changes; act: apply changes without asking (deletions still ask).
        #[arg(long, value_enum, default_value = "ask")]
        mode: ModeArg,
        /// Stop the command (and everything it started) after this many seconds (1 to 86400).
        #[arg(long, default_value_t = 120, value_parser = parse_timeout, value_name = "SECONDS")]
        timeout: u64,
        /// Where the command starts (inside a grant); default: the first grant.
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// bwrap: a bubblewrap namespace sandbox (default); vm: a QEMU microVM (set up with scripts/setup-vm).
        #[arg(long, value_enum, default_value = "bwrap")]
        backend: BackendArg,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Serve the plan UI for a workspace at 127.0.0.1 (prints a link whose token works once).
    Serve {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// 0 picks a free port.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Open the plan UI in the browser, starting the server if it is not running for this workspace.
    Open {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Print the URL without opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Check that this machine can run deskhand: the wasm sandbox, the shell sandbox, the workspace and the model.
    Doctor {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Put back everything a run (and its sub-agents) changed in your folders.
    Undo {
        /// The run to undo (see `deskhand runs`).
        #[arg(required_unless_present = "last", conflicts_with = "last")]
        run: Option<String>,
        /// Undo the most recent run that changed files.
        #[arg(long)]
        last: bool,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Restore even files changed since the run; their current versions go to the trash.
        #[arg(long)]
        force: bool,
    },
    /// What deskhand deleted or displaced: list it, put it back, or empty the trash.
    Trash {
        #[command(subcommand)]
        command: TrashCommand,
    },
    /// Continue a run that was interrupted or is waiting for an answer.
    Resume {
        run: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Your answer, when the run asked you something.
        #[arg(long)]
        answer: Option<String>,
        /// Continue in this mode (act: run the rest of the plan without asking); default: the run's own.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Subcommand)]
enum TrashCommand {
    /// List what the trash holds.
    List {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Put an item back where it was.
    Restore {
        /// The item's number, from `deskhand trash list`.
        id: i64,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Delete everything in the trash for good (asks first).
    Empty {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    Bwrap,
    Vm,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Ask,
    Act,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Ask => Mode::Ask,
            ModeArg::Act => Mode::Act,
        }
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

#[derive(Subcommand)]
enum ToolCommand {
    /// List the installed tools and their operations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run one operation of a tool in the sandbox.
    Run {
        tool: String,
        operation: String,
        #[arg(long)]
        workspace: PathBuf,
        /// A folder the tool may see: PATH (read-only) or PATH:rw. Repeatable.
        #[arg(long = "grant", value_parser = parse_grant)]
        grants: Vec<Grant>,
        /// The operation's arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Stop the tool after this many seconds (1 to 86400).
        #[arg(long, default_value_t = 60, value_parser = parse_timeout, value_name = "SECONDS")]
        timeout: u64,
        /// Cap the tool's memory at this many MiB (1 to 65536).
        #[arg(long, default_value_t = 1024, value_parser = parse_memory_mib, value_name = "MIB")]
        memory_mib: u64,
    },
}

fn parse_grant(s: &str) -> Result<Grant, String> {
    Grant::parse(s).map_err(|e| e.to_string())
}

/// The longest `--timeout`: a day. Zero would stop everything at once.
const MAX_TIMEOUT_SECS: u64 = 86_400;
/// The largest `--memory-mib`: 64 GiB, over all of a call's instances.
const MAX_MEMORY_MIB: u64 = 65_536;

fn parse_timeout(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_TIMEOUT_SECS).contains(n))
        .ok_or_else(|| format!("give whole seconds from 1 to {MAX_TIMEOUT_SECS} (one day)"))
}

fn parse_memory_mib(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_MEMORY_MIB).contains(n))
        .ok_or_else(|| format!("give whole MiB from 1 to {MAX_MEMORY_MIB} (64 GiB)"))
}

/// A limit set on the command line, named in the error it caused (the
/// runtime's text cannot know which flag set it).
fn with_limit_flag(e: deskhand_runtime::Error, timeout: u64, memory_mib: u64) -> Failure {
    use deskhand_runtime::wasm::CallError;
    let flag = match &e {
        deskhand_runtime::Error::Call(CallError::Deadline { .. }) => {
            format!("--timeout {timeout} set it; allow more with --timeout SECONDS, up to {MAX_TIMEOUT_SECS}")
        }
        deskhand_runtime::Error::Call(CallError::MemoryCap { .. }) => {
            format!("--memory-mib {memory_mib} set it; allow more with --memory-mib MIB, up to {MAX_MEMORY_MIB}")
        }
        _ => return e.into(),
    };
    let mut failure = Failure::from(e);
    failure.message = format!("{} ({flag})", failure.message);
    failure
}

/// A failure and the exit code it deserves: 2 for input the person can
/// fix, 1 for deskhand's own failures.
struct Failure {
    message: String,
    code: u8,
}

impl From<deskhand_runtime::Error> for Failure {
    fn from(e: deskhand_runtime::Error) -> Self {
        Failure {
            code: if e.is_user_error() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

fn user_error(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", render::block(&f.message));
            ExitCode::from(f.code)
        }
    }
}

/// Serves the plan UI. `open`: Some(open the browser?) reuses a server
/// already running for the workspace; None (`serve`) always starts one.
fn serve(
    workspace: &std::path::Path,
    port: u16,
    cache_dir: Option<PathBuf>,
    open: Option<bool>,
) -> Result<(), Failure> {
    let ws = open_workspace(workspace)?;
    let root = ws.root().to_path_buf();
    drop(ws);
    if let Some(browser) = open
        && let Some(url) = deskhand_web_ui::running_url(&root)
    {
        out(&format!("deskhand is already serving {}: {url}", root.display()));
        if browser {
            open_browser(&url);
        }
        return Ok(());
    }
    let server = deskhand_web_ui::start(deskhand_web_ui::Options {
        workspace: root.clone(),
        port,
        cache_dir: cache_dir.or_else(default_cache_dir),
        config_dir: config_dir(),
        lifetimes: deskhand_web_ui::Lifetimes::default(),
    })
    .map_err(|e| Failure {
        code: if matches!(e, deskhand_web_ui::Error::Bind { .. }) {
            2
        } else {
            1
        },
        message: e.to_string(),
    })?;
    out(&format!("deskhand serves {} at {}", root.display(), server.url));
    out(
        "The link works once, for 10 minutes; `deskhand open` in the workspace gives a new one. Keep this running; press Ctrl-C to stop.",
    );
    let _ = std::io::stdout().flush();
    if open == Some(true) {
        open_browser(&server.url);
    }
    server.wait().map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })
}

/// Opens `url` in the person's browser ($BROWSER, else the system's opener).
fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open".into()
            } else if cfg!(windows) {
                "explorer".into()
            } else {
                "xdg-open".into()
            }
        });
    let spawned = std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("Could not start a browser ({opener}); open this URL yourself: {url}");
    }
}

/// One line per check: what, and either "ok" with a detail or the problem and its fix.
fn doctor(workspace: &std::path::Path, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let mut failed = 0;
    let mut report = |what: &str, result: Result<String, String>, required: bool| match result {
        Ok(detail) => out(&format!("ok    {what}: {detail}")),
        Err(problem) => {
            if required {
                failed += 1;
                out(&format!("FAIL  {what}: {problem}"));
            } else {
                out(&format!("note  {what}: {problem}"));
            }
        }
    };

    // The wasm sandbox: one engine, the bundled tools compiled (or loaded from the cache).
    let started = std::time::Instant::now();
    let sandbox = toolbox(cache_dir)
        .map_err(|f| f.message)
        .and_then(|tb| tb.descriptions().map(|d| d.len()).map_err(|e| e.to_string()));
    report(
        "WebAssembly sandbox",
        sandbox.map(|n| format!("{n} bundled tools ready in {} ms", started.elapsed().as_millis())),
        true,
    );

    // The native shell sandbox.
    #[cfg(target_os = "linux")]
    let shell = {
        use deskhand_host_vm::ShellBackend;
        let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
        backend
            .check()
            .map(|()| "bubblewrap works here".to_owned())
            .map_err(|p| p.to_string())
    };
    #[cfg(not(target_os = "linux"))]
    let shell: Result<String, String> = Err(deskhand_host_vm::BackendProblem::UnsupportedPlatform.to_string());
    report("shell sandbox (deskhand shell)", shell, false);

    // The workspace, when there is one here.
    match Workspace::open(workspace) {
        Ok(ws) => {
            let journal = ws.journal();
            report(
                "journal",
                journal
                    .integrity()
                    .map_err(|e| e.to_string())
                    .and_then(|r| {
                        r.map_err(|e| format!("SQLite reports damage: {e}; copy .deskhand/ aside before anything else"))
                    })
                    .map(|()| format!("{} runs, intact", journal.tasks().map(|t| t.len()).unwrap_or(0))),
                true,
            );
            report(
                "changesets",
                match journal.unfinished_changesets() {
                    Ok(0) => Ok("none left unfinished".into()),
                    Ok(n) => Err(format!(
                        "{n} were interrupted; the next `deskhand run`, `resume`, `undo` or `shell` puts them back"
                    )),
                    Err(e) => Err(e.to_string()),
                },
                true,
            );
            match changeset::trash_list(&ws) {
                Ok(items) => report(
                    "trash",
                    Ok(format!(
                        "{} item(s), {} bytes (`deskhand trash list`)",
                        items.len(),
                        items.iter().map(|t| t.size).sum::<u64>()
                    )),
                    false,
                ),
                Err(e) => report("trash", Err(e.to_string()), true),
            }
            let model = load_config(&ws, None).map(|c| match c.provider {
                deskhand_runtime::model::config::ProviderKind::Offline => {
                    "none configured: the offline planner runs the installed skills".to_owned()
                }
                _ => format!(
                    "{:?} {}",
                    c.provider,
                    c.model.unwrap_or_else(|| "(no model name; pass --model)".into())
                ),
            });
            report("model", model.map_err(|f| f.message), true);
        }
        // A workspace whose journal cannot be read is still a workspace, and broken.
        Err(e @ deskhand_runtime::Error::Journal { .. }) => report("journal", Err(e.to_string()), true),
        Err(e) => report("workspace", Err(e.to_string()), false),
    }

    // Optional engines that check deliverables.
    let soffice = ["soffice", "libreoffice"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    report(
        "LibreOffice (recalculates spreadsheets)",
        soffice
            .map(|p| format!("{p} found"))
            .ok_or_else(|| "not installed; `sudo apt-get install libreoffice-calc` (or run scripts/setup)".to_owned()),
        false,
    );
    if failed > 0 {
        return Err(Failure {
            message: format!("{failed} check(s) failed; see the lines marked FAIL"),
            code: 1,
        });
    }
    Ok(())
}

/// The shell backend the person chose: bubblewrap (default) or the QEMU microVM.
fn shell_backend(choice: BackendArg) -> Result<Box<dyn deskhand_host_vm::ShellBackend>, Failure> {
    #[cfg(target_os = "linux")]
    {
        Ok(match choice {
            BackendArg::Bwrap => Box::new(deskhand_host_vm::bwrap::BwrapBackend::new()),
            BackendArg::Vm => {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
                let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
                let dir = deskhand_host_vm::qemu::default_assets_dir(&home, xdg.as_deref());
                Box::new(deskhand_host_vm::qemu::QemuBackend::new(
                    deskhand_host_vm::qemu::VmConfig::in_dir(dir),
                ))
            }
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = choice;
        Err(user_error(
            deskhand_host_vm::BackendProblem::UnsupportedPlatform.to_string(),
        ))
    }
}

fn shell(
    workspace: &std::path::Path,
    backend: BackendArg,
    grants: Vec<Grant>,
    mode: Mode,
    timeout: u64,
    workdir: Option<PathBuf>,
    command: Vec<String>,
) -> Result<(), Failure> {
    use deskhand_runtime::shell::{ShellChanges, ShellRequest, run_shell};
    let ws = open_workspace(workspace)?;
    let backend = shell_backend(backend)?;
    let workdir = workdir.map(|w| ws.resolve_path(&w.to_string_lossy())).transpose()?;
    let req = ShellRequest {
        command,
        grants: &grants,
        mode,
        limits: deskhand_host_vm::Limits {
            wall_clock: Duration::from_secs(timeout),
            ..deskhand_host_vm::Limits::default()
        },
        workdir,
    };
    let mut show = |chunk: deskhand_host_vm::OutputChunk| {
        let _ = match chunk.stream {
            deskhand_host_vm::Stream::Stdout => std::io::stdout().write_all(&chunk.bytes),
            deskhand_host_vm::Stream::Stderr => std::io::stderr().write_all(&chunk.bytes),
        };
    };
    let report = run_shell(&ws, backend.as_ref(), &req, &TerminalGate, &mut show)?;
    let _ = std::io::stdout().flush();
    if let Some(outcome) = &report.outcome
        && !outcome.limits_hit.is_empty()
    {
        eprintln!("deskhand: limits hit: {:?}", outcome.limits_hit);
        if outcome.limits_hit.contains(&deskhand_host_vm::LimitHit::WallClock) {
            eprintln!(
                "deskhand: the command ran past --timeout {timeout} and was stopped; allow more with --timeout SECONDS, \
                 up to {MAX_TIMEOUT_SECS}"
            );
        }
    }
    match &report.changes {
        ShellChanges::None => eprintln!(
            "deskhand: the command changed nothing in your folders ({}).",
            report.run
        ),
        ShellChanges::Applied { count, .. } => eprintln!(
            "deskhand: applied {count} change(s):\n{}Undo them with `deskhand undo {} --workspace {}`.",
            render::block(&report.shown),
            report.run,
            ws.root().display()
        ),
        ShellChanges::Refused { reason } => {
            return Err(user_error(format!("{reason} (run {})", report.run)));
        }
    }
    match report.outcome.map(|o| o.termination) {
        Some(deskhand_host_vm::Termination::Exited { code: 0 }) | None => Ok(()),
        Some(t) => Err(Failure {
            message: format!("the command failed: {t:?}"),
            code: 1,
        }),
    }
}

/// The newest top-level run with applied changes.
fn last_changing_run(ws: &Workspace) -> Result<RunId, Failure> {
    let runs = ws.journal().tasks()?;
    for task in runs.iter().rev().filter(|t| t.parent.is_none()) {
        let changes = changeset::changes_of(ws, &task.id).map_err(change_failure)?;
        if changes.iter().any(|(_, status, _)| *status == ChangesetStatus::Applied) {
            return Ok(task.id.clone());
        }
    }
    Err(user_error("no run in this workspace has changes left to undo"))
}

fn trash(command: TrashCommand) -> Result<(), Failure> {
    match command {
        TrashCommand::List { workspace } => {
            let ws = open_workspace(&workspace)?;
            let items = changeset::trash_list(&ws).map_err(change_failure)?;
            if items.is_empty() {
                out("The trash is empty.");
            }
            for t in items {
                out(&format!(
                    "{:>4}  {}  {} ({} bytes)\n      {}",
                    t.id,
                    t.trashed_at,
                    render::line(&t.original.display().to_string()),
                    t.size,
                    render::line(&t.reason)
                ));
            }
            Ok(())
        }
        TrashCommand::Restore { id, workspace } => {
            let ws = open_workspace(&workspace)?;
            let item = changeset::trash_restore(&ws, id).map_err(change_failure)?;
            out(&format!(
                "Restored {}",
                render::line(&item.original.display().to_string())
            ));
            Ok(())
        }
        TrashCommand::Empty { workspace, yes } => {
            let ws = open_workspace(&workspace)?;
            let items = changeset::trash_list(&ws).map_err(change_failure)?;
            if items.is_empty() {
                out("The trash is already empty.");
                return Ok(());
            }
            let bytes: u64 = items.iter().map(|t| t.size).sum();
            let question = format!(
                "Delete {} item(s) ({bytes} bytes) for good? Runs that deleted them can no longer be undone. [y/N] ",
                items.len()
            );
            let asked = || std::io::IsTerminal::is_terminal(&std::io::stdin()) && confirm(&question);
            if !(yes || asked()) {
                return Err(user_error(
                    "the trash was not emptied (answer y at the prompt, or pass --yes to empty it without asking)",
                ));
            }
            let (count, bytes) = changeset::trash_empty(&ws).map_err(change_failure)?;
            out(&format!("Emptied the trash: {count} item(s), {bytes} bytes."));
            Ok(())
        }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("deskhand").join("wasm"))
}

fn toolbox(cache_dir: Option<PathBuf>) -> Result<Toolbox, Failure> {
    let cache_dir = cache_dir.or_else(default_cache_dir);
    let office = deskhand_runtime::office::LibreOffice::find_for_cache(cache_dir.as_deref());
    let host = WasmHost::new(cache_dir).map_err(deskhand_runtime::Error::from)?;
    Ok(Toolbox::new(host).with_office(office))
}

/// Shows a tool's progress and logs on stderr while it runs.
fn progress_observer() -> Observer {
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

/// Opens a workspace and finishes anything a crash interrupted there: a
/// half-applied changeset is put back, a half-done undo completed.
fn open_workspace(dir: &std::path::Path) -> Result<Workspace, Failure> {
    let ws = Workspace::open(dir)?;
    let recovered = changeset::recover(&ws).map_err(deskhand_runtime::Error::from)?;
    for id in &recovered.rolled_back {
        eprintln!("deskhand stopped while applying changeset {id} earlier; it was put back as it was");
    }
    for id in &recovered.undone {
        eprintln!("deskhand stopped while undoing changeset {id} earlier; the undo was completed");
    }
    Ok(ws)
}

fn change_failure(e: changeset::ChangeError) -> Failure {
    Failure::from(deskhand_runtime::Error::from(e))
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (deskhand ... | head) is not an error worth reporting.
    let _ = writeln!(stdout, "{text}");
}

/// What to do when the folder given to `init` or `demo` cannot be used.
const WORKSPACE_FOLDER: &str = "Choose a folder that does not exist yet (deskhand creates it) or an existing folder \
     (deskhand adds its layout there and overwrites nothing)";

fn run(cli: Cli) -> Result<(), Failure> {
    let Some(command) = cli.command else {
        // Bare `deskhand`: the desktop launcher's entry point.
        if Workspace::open(std::path::Path::new(".")).is_ok() {
            return serve(std::path::Path::new("."), 0, cli.cache_dir, Some(true));
        }
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return Err(user_error(
            "this folder is not a deskhand workspace: run `deskhand open --workspace DIR` for an existing one, \
             or `deskhand init DIR` to make one",
        ));
    };
    match command {
        Command::Init { dir } => {
            let (ws, outcome) =
                Workspace::init(&dir).map_err(|e| e.on_named_path(&dir, "a workspace", WORKSPACE_FOLDER))?;
            match outcome {
                InitOutcome::Created { created } => {
                    out(&format!("Created a deskhand workspace at {}:", ws.root().display()));
                    for p in created {
                        out(&format!("  {p}"));
                    }
                    out("Put reference material in context/, work in projects/; deliverables appear in output/.");
                }
                InitOutcome::AlreadyWorkspace { missing } => {
                    out(&format!(
                        "{} is already a deskhand workspace; nothing was changed.",
                        ws.root().display()
                    ));
                    if !missing.is_empty() {
                        out(&format!(
                            "Missing standard parts (create them if you want them back): {}",
                            missing.join(", ")
                        ));
                    }
                }
            }
            Ok(())
        }
        Command::Tool {
            command: ToolCommand::List { json },
        } => {
            let tb = toolbox(cli.cache_dir)?;
            let tools = tb.descriptions()?;
            if json {
                out(&serde_json::to_string_pretty(&tools).unwrap_or_default());
            } else {
                for t in tools {
                    out(&format!("{} {}: {}", t.name, t.version, t.summary));
                    for op in t.operations {
                        let mut effects = Vec::new();
                        if !op.effects.reads.is_empty() {
                            effects.push("reads");
                        }
                        if !op.effects.writes.is_empty() {
                            effects.push("writes");
                        }
                        if op.effects.network {
                            effects.push("network");
                        }
                        out(&format!("  {:<10} {} [{}]", op.name, op.summary, effects.join(", ")));
                    }
                }
            }
            Ok(())
        }
        Command::Tool {
            command:
                ToolCommand::Run {
                    tool,
                    operation,
                    workspace,
                    grants,
                    args,
                    json,
                    timeout,
                    memory_mib,
                },
        } => {
            let args: serde_json::Value = serde_json::from_str(&args).map_err(|e| {
                user_error(format!(
                    "--args is not valid JSON ({e}); pass an object such as '{{\"path\": \"projects\"}}'"
                ))
            })?;
            let ws = Workspace::open(&workspace)?;
            let tb = toolbox(cli.cache_dir)?;
            let limits = Limits {
                deadline: Duration::from_secs(timeout),
                memory_bytes: memory_mib.saturating_mul(1024 * 1024),
                ..Limits::default()
            };
            let req = CallRequest {
                tool: &tool,
                operation: &operation,
                args,
                grants: &grants,
                limits,
            };
            let result = run_call(&ws, &tb, &req, Some(progress_observer()))
                .map_err(|e| with_limit_flag(e, timeout, memory_mib))?;
            if !result.output.changes.is_empty() {
                eprintln!(
                    "note: the tool proposed {} change(s) to your folders; `deskhand tool run` does not apply \
                     changes. Run a task (`deskhand run`) to have them checked, shown, approved and applied (undoably).",
                    result.output.changes.len()
                );
            }
            if json {
                out(&serde_json::to_string_pretty(&result.output.json).unwrap_or_default());
            } else {
                // The tool's one-line summary, then what it found.
                let shown = render::render(&result.output.json);
                let summary = render::summary(&result.output.text);
                for part in [summary.as_str(), shown.as_str()] {
                    if !part.is_empty() {
                        out(part);
                    }
                }
            }
            Ok(())
        }
        Command::Demo { dir } => {
            let created = deskhand_runtime::demo::create_demo_workspace(&dir)
                .map_err(|e| e.on_named_path(&dir, "the demo workspace", WORKSPACE_FOLDER))?;
            let ws = Workspace::open(&dir)?;
            out(&format!("The demo workspace is {}", ws.root().display()));
            if !created {
                out("(the workspace already existed; its files were left as they were)");
            }
            let mut tb = toolbox(cli.cache_dir)?;
            let task = deskhand_runtime::demo::DEMO_TASK;
            out(&format!(
                "Task: {task}\nGranted: projects/ (read-only). Planner: offline. Mode: act without asking.\n"
            ));
            let grants = vec![Grant::read_only("projects")];
            let task = Task {
                outcome: task.into(),
                grants,
                mode: Mode::Act,
            };
            let report = run_agent(&ws, &mut tb, launch::Start::New(task), None, Vec::new())?;
            finish_report(&ws, &report, None)
        }
        Command::Run {
            task,
            workspace,
            grants,
            mode,
            model,
            params,
        } => {
            let ws = open_workspace(&workspace)?;
            let mut tb = toolbox(cli.cache_dir)?;
            let task = Task {
                outcome: task,
                grants,
                mode: mode.into(),
            };
            let report = run_agent(&ws, &mut tb, launch::Start::New(task), model.as_deref(), params)?;
            finish_report(&ws, &report, None)
        }
        Command::Resume {
            run,
            workspace,
            answer,
            mode,
            model,
        } => {
            let ws = open_workspace(&workspace)?;
            let mut tb = toolbox(cli.cache_dir)?;
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
        Command::Undo {
            run,
            last: _,
            workspace,
            force,
        } => {
            let ws = open_workspace(&workspace)?;
            let run = match run {
                Some(run) => RunId(run),
                None => last_changing_run(&ws)?,
            };
            if ws.journal().task(&run)?.is_none() {
                return Err(deskhand_runtime::Error::UnknownRun { run: run.0 }.into());
            }
            let report = changeset::undo(&ws, &run, force).map_err(change_failure)?;
            if let Err(e) = deskhand_runtime::ledger::write(&ws, &run) {
                eprintln!("warning: the run's ledger could not be updated with the undo: {e}");
            }
            out(&format!(
                "Undid run {}: {} change(s) in {} changeset(s) put back.",
                report.run,
                report.restored,
                report.changesets.len()
            ));
            if report.trashed > 0 {
                out(&format!(
                    "{} file(s) changed since the run were moved to the trash (`deskhand trash list`).",
                    report.trashed
                ));
            }
            Ok(())
        }
        Command::Trash { command } => trash(command),
        Command::Doctor { workspace } => doctor(&workspace, cli.cache_dir),
        Command::Serve { workspace, port } => serve(&workspace, port, cli.cache_dir, None),
        Command::Open {
            workspace,
            port,
            no_browser,
        } => serve(&workspace, port, cli.cache_dir, Some(!no_browser)),
        Command::Shell {
            workspace,
            grants,
            mode,
            timeout,
            workdir,
            backend,
            command,
        } => shell(&workspace, backend, grants, mode.into(), timeout, workdir, command),
        Command::Feedback {
            text,
            workspace,
            yes,
            model,
        } => {
            let ws = Workspace::open(&workspace)?;
            let config = load_config(&ws, model.as_deref())?;
            let connected = deskhand_runtime::model::config::connect(&config).map_err(deskhand_runtime::Error::from)?;
            let proposal = deskhand_runtime::memory::propose(&ws, &text, connected.as_deref())?;
            if !proposal.is_change() {
                out("MEMORY.md already says that; nothing to change.");
                return Ok(());
            }
            out(&render::block(&proposal.diff));
            if !yes && !confirm("Write this to MEMORY.md? [y/N] ") {
                return Err(user_error(
                    "MEMORY.md was not changed (run again with --yes to accept without a prompt)",
                ));
            }
            deskhand_runtime::memory::apply(&ws, &proposal)?;
            out("MEMORY.md updated.");
            Ok(())
        }
        Command::Runs { workspace } => {
            let ws = Workspace::open(&workspace)?;
            let tasks = ws.journal().tasks()?;
            if tasks.iter().all(|t| t.parent.is_some()) {
                out("No runs yet. Start one with deskhand run \"...\" --workspace DIR");
            }
            for t in tasks.iter().filter(|t| t.parent.is_none()) {
                out(&format!(
                    "{}  {:<11}  {}  {}",
                    t.id,
                    t.status,
                    t.created_at,
                    render::line(&t.outcome)
                ));
            }
            Ok(())
        }
        Command::Show {
            run,
            workspace,
            events,
            ledger,
        } => {
            let ws = Workspace::open(&workspace)?;
            if ledger {
                return match deskhand_runtime::ledger::read(&ws, &RunId(run.clone()))? {
                    Some(text) => {
                        out(&render::block(&text));
                        Ok(())
                    }
                    None if ws.journal().task(&RunId(run.clone()))?.is_none() => {
                        Err(deskhand_runtime::Error::UnknownRun { run }.into())
                    }
                    None => Err(user_error(format!(
                        "run {run} has no ledger yet: it is written when the run ends"
                    ))),
                };
            }
            show_run(&ws, &RunId(run), events)
        }
    }
}

/// Asks the person on the terminal what the approval policy
/// (`deskhand_runtime::gate::assess`) leaves to them: a step in ask mode,
/// with its declared effects; a changeset, with every change.
struct TerminalGate;

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
            let why = if req.deletions > 0 {
                DELETION_ALWAYS_ASKS
            } else {
                "ask mode needs a terminal to ask you on"
            };
            return Approval::Rejected {
                reason: format!("{why}; nothing was changed"),
            };
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
}

fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("deskhand"))
}

/// Asks a yes/no question on the terminal; no terminal means no.
fn confirm(question: &str) -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// The model configuration: user file, workspace file, environment, then `--model`.
fn load_config(ws: &Workspace, model: Option<&str>) -> Result<ModelConfig, Failure> {
    let env = |k: &str| std::env::var(k).ok();
    Ok(launch::model_config(ws, config_dir().as_deref(), &env, model)?)
}

/// Runs or resumes with the terminal as the person: the terminal gate (act
/// mode lets steps and changes through, but a deletion still asks, and is
/// refused without a terminal) and the terminal display.
fn run_agent(
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

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a run came to, on the terminal. `mode` is the one `resume --mode`
/// chose, repeated in the command to answer with (the journal keeps the
/// mode the run began in).
fn finish_report(ws: &Workspace, report: &RunReport, mode: Option<Mode>) -> Result<(), Failure> {
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
fn terminal_observer() -> RunObserver {
    use render::line;
    Arc::new(|run: &RunId, event: &Event| {
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
            } if tool != "deskhand" => {
                eprintln!("{pad}      · {}.{} {}", line(tool), line(operation), short_json(args));
            }
            Event::ToolCallEnd { outcome, .. } => match outcome {
                CallOutcome::ToolError { error } => eprintln!("{pad}      ! {}", line(&error.to_string())),
                CallOutcome::Stopped { reason } => eprintln!("{pad}      ! stopped: {}", line(reason)),
                CallOutcome::Refused { message } => eprintln!("{pad}      ! refused: {}", line(message)),
                CallOutcome::Ok { .. } => {}
            },
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

fn show_run(ws: &Workspace, run: &RunId, events: bool) -> Result<(), Failure> {
    let journal = ws.journal();
    let row = journal
        .task(run)?
        .ok_or_else(|| deskhand_runtime::Error::UnknownRun { run: run.0.clone() })?;
    let rows = journal.events(run)?;
    if events {
        for r in rows {
            out(&render::json_line(
                &serde_json::json!({"seq": r.seq, "at": r.at, "event": r.event}),
            ));
        }
        return Ok(());
    }
    out(&format!("Run {}  ({})", row.id, row.status));
    out(&format!("Task: {}", render::line(&row.outcome)));
    out(&format!("Started: {}", row.created_at));
    let mut plan = None;
    let mut calls = 0;
    let mut children = Vec::new();
    for r in &rows {
        match &r.event {
            Event::RunBegin { model, task, .. } => {
                out(&format!("Planner: {}   Mode: {}", render::line(model), task.mode));
                let grants: Vec<String> = task.grants.iter().map(|g| render::line(&g.to_string())).collect();
                out(&format!(
                    "Grants: {}",
                    if grants.is_empty() {
                        "none".into()
                    } else {
                        grants.join(", ")
                    }
                ));
            }
            Event::PlanUpdated { plan: p } => plan = Some(p.clone()),
            Event::StepBegin { step, .. } | Event::StepEnd { step, .. } => {
                if let Some(p) = plan
                    .as_mut()
                    .and_then(|p: &mut deskhand_types::Plan| p.steps.get_mut(step - 1))
                {
                    p.status = match &r.event {
                        Event::StepEnd { status, .. } => *status,
                        _ => deskhand_types::StepStatus::InProgress,
                    };
                }
            }
            Event::ToolCallBegin { tool, .. } if tool != "deskhand" => calls += 1,
            Event::SubAgentEnd { child, status, summary } => {
                children.push(format!("{child} {}: {}", status.as_str(), render::line(summary.trim())))
            }
            _ => {}
        }
    }
    if let Some(p) = plan {
        let reason = p
            .reason
            .as_deref()
            .map(|r| format!(" — {}", render::line(r)))
            .unwrap_or_default();
        out(&format!("Plan (revision {}){reason}:", p.revision));
        for (i, s) in p.steps.iter().enumerate() {
            out(&format!("  {} {}. {}", s.status.mark(), i + 1, render::line(&s.title)));
        }
    } else {
        out("No plan was made.");
    }
    out(&format!("Tool calls: {calls}"));
    for c in children {
        out(&format!("  sub-agent {c}"));
    }
    if !row.summary.is_empty() {
        out(&format!("Outcome: {}", render::block(row.summary.trim())));
    }
    let (ledger, _) = deskhand_runtime::ledger::paths(ws, run);
    if ledger.is_file() {
        out(&format!("Ledger: {}", ledger.display()));
    }
    Ok(())
}
