//! The `deskhand` command: parses arguments and wires the runtime together.
//! Everything testable lives in `deskhand-runtime`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use deskhand_runtime::tools::{CallRequest, Observer, Toolbox, run_call};
use deskhand_runtime::wasm::{Limits, WasmHost};
use deskhand_runtime::workspace::{InitOutcome, Workspace};
use deskhand_types::{Event, Grant};

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
    #[command(subcommand)]
    command: Command,
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
    /// Create a demo workspace with sample files and inventory its projects/ folder.
    Demo {
        /// Where to create the demo workspace.
        #[arg(default_value = "deskhand-demo")]
        dir: PathBuf,
    },
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
        /// Stop the tool after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Cap the tool's memory at this many MiB.
        #[arg(long, default_value_t = 1024)]
        memory_mib: u64,
    },
}

fn parse_grant(s: &str) -> Result<Grant, String> {
    Grant::parse(s).map_err(|e| e.to_string())
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
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
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
    let host = WasmHost::new(cache_dir.or_else(default_cache_dir)).map_err(deskhand_runtime::Error::from)?;
    Ok(Toolbox::new(host))
}

/// Shows a tool's progress and logs on stderr while it runs.
fn progress_observer() -> Observer {
    Arc::new(|event: &Event| match event {
        Event::ToolProgress {
            done, total, message, ..
        } => match total {
            Some(total) => eprintln!("  {message}: {done}/{total}"),
            None => eprintln!("  {message}: {done}"),
        },
        Event::ToolLog { level, message, .. } => eprintln!("  [{level:?}] {message}"),
        _ => {}
    })
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (deskhand ... | head) is not an error worth reporting.
    let _ = writeln!(stdout, "{text}");
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init { dir } => {
            let (ws, outcome) = Workspace::init(&dir)?;
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
                            effects.push("writes output/");
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
                deadline: Duration::from_secs(timeout.max(1)),
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
            let result = run_call(&ws, &tb, &req, Some(progress_observer()))?;
            if json {
                out(&serde_json::to_string_pretty(&result.output.json).unwrap_or_default());
            } else {
                out(&result.output.text);
            }
            Ok(())
        }
        Command::Demo { dir } => {
            let tb = toolbox(cli.cache_dir)?;
            out(&format!("Setting up the demo workspace in {} ...", dir.display()));
            let report = deskhand_runtime::demo::run_demo(&dir, &tb, Some(progress_observer()))?;
            if !report.created {
                out("(the workspace already existed; its files were left as they were)");
            }
            out(&format!(
                "Inventoried projects/ in the sandbox: {} files in {} folders, {} bytes.",
                report.files, report.folders, report.bytes
            ));
            out(&format!("Wrote {}", display_relative(&report.inventory)));
            Ok(())
        }
    }
}

fn display_relative(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}
