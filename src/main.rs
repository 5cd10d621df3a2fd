//! The `deskhand` command: parses arguments and wires the runtime together.
//! Everything testable lives in `deskhand-runtime`. The command line is
//! defined in `cli`, each command lives in `commands`, and the terminal
//! front end (asking, progress, output) in `terminal`.

mod cli;
mod commands;
mod failure;
mod render;
mod setup;
mod terminal;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use deskhand_runtime::telemetry::{Telemetry, TelemetryConfig};
use deskhand_runtime::workspace::Workspace;

use crate::cli::{Cli, Command, ToolCommand};
use crate::commands::egress_relay;
use crate::commands::report;
use crate::commands::schedule;
use crate::commands::{demo, doctor, feedback, init, plugins, run, serve, shell, show, skills, tool, trash, undo};
use crate::failure::{Failure, user_error};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::EgressRelay { .. }) = &cli.command {
        egress_relay::relay();
    }
    egress_relay::offer_self_as_relay();
    commands::connectors::offer_env();
    let telemetry = start_telemetry();
    let result = dispatch(cli);
    if let Some(telemetry) = telemetry {
        // Sends what is queued, waiting at most about the export timeout.
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // An empty message: what happened was already said (a declined task's answer).
            if !f.message.is_empty() {
                eprintln!("error: {}", render::block(&f.message));
            }
            ExitCode::from(f.code)
        }
    }
}

/// Exports every run's spans (OpenTelemetry) when the `OTEL_*` variables or
/// the `[telemetry]` table of config.toml say where; off otherwise. A
/// setting that cannot be used is said and leaves it off: telemetry never
/// stops a command.
fn start_telemetry() -> Option<std::sync::Arc<Telemetry>> {
    let config_file = setup::config_dir().map(|d| d.join("config.toml"));
    let env = |name: &str| std::env::var(name).ok();
    let started = TelemetryConfig::load(config_file.as_deref(), &env)
        .and_then(|c| c.map(|c| Telemetry::start(&c, telemetry_drop_file())).transpose());
    match started {
        Ok(Some(telemetry)) => {
            deskhand_runtime::journal::set_process_subscriber(telemetry.clone());
            Some(telemetry)
        }
        Ok(None) => None,
        Err(e) => {
            eprintln!("warning: {}", render::block(&e.to_string()));
            None
        }
    }
}

/// Where the spans this machine could not deliver are counted (for
/// `deskhand doctor`): the user's state folder, else the cache folder.
pub(crate) fn telemetry_drop_file() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(dirs::state_dir)
        .or_else(dirs::cache_dir)
        .map(|d| d.join("deskhand").join("telemetry-dropped.json"))
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let cache_dir = cli.cache_dir;
    terminal::set_verbose(cli.verbose);
    let Some(command) = cli.command else {
        // Bare `deskhand`: the desktop launcher's entry point.
        if Workspace::open(Path::new(".")).is_ok() {
            return serve::serve(Path::new("."), 0, cache_dir, Some(true));
        }
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return Err(user_error(
            "this folder is not a deskhand workspace: run `deskhand open --workspace DIR` for an existing one, \
             or `deskhand init DIR` to make one",
        ));
    };
    match command {
        Command::Init { dir } => init::init(&dir),
        Command::Tool {
            command: ToolCommand::List { json },
        } => tool::list(json, cache_dir),
        Command::Tool {
            command: ToolCommand::Run(args),
        } => tool::run(args, cache_dir),
        Command::Demo { dir } => demo::demo(&dir, cache_dir),
        Command::Run(args) => run::run(args, cache_dir),
        Command::Resume(args) => run::resume(args, cache_dir),
        Command::Undo(args) => undo::undo(args),
        Command::Trash { command } => trash::trash(command),
        Command::Doctor { workspace } => doctor::doctor(&workspace, cache_dir),
        Command::Serve { workspace, port } => serve::serve(&workspace, port, cache_dir, None),
        Command::Open {
            workspace,
            port,
            no_browser,
        } => serve::serve(&workspace, port, cache_dir, Some(!no_browser)),
        Command::Shell(args) => shell::shell(args),
        Command::Feedback(args) => feedback::feedback(args),
        Command::Runs { workspace } => show::runs(&workspace),
        Command::Show(args) => show::show(args),
        Command::Report(args) => report::report(args),
        Command::Schedule { command } => schedule::schedule(command, cache_dir),
        Command::Plugins { command } => plugins::plugins(command),
        Command::Connectors { command } => commands::connectors::connectors(command),
        Command::Skills { command } => skills::skills(command, cache_dir),
        Command::EgressRelay { .. } => egress_relay::relay(),
    }
}
