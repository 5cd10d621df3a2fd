//! The command line: every command, flag and argument check. Each command's
//! arguments are handed as a whole to its function in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use deskhand_types::{Grant, Mode};

#[derive(Parser)]
#[command(
    name = "deskhand",
    version,
    about = "A local agent for knowledge work that runs every tool in a WebAssembly sandbox"
)]
pub struct Cli {
    /// Where compiled tool components are cached (default: the user cache folder).
    #[arg(long, global = true, env = "DESKHAND_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Show each tool call's own name (tool.operation) and arguments beside what it did.
    #[arg(long, global = true)]
    pub verbose: bool,
    /// Without a command: open the plan UI for the workspace in this folder.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
    Run(RunArgs),
    /// Teach deskhand something: proposes an update to MEMORY.md, shows it as a diff, writes it only if you accept.
    Feedback(FeedbackArgs),
    /// List the runs in a workspace.
    Runs {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Show a run: its plan, steps, sub-agents and outcome.
    Show(ShowArgs),
    /// Run one native command in the shell sandbox; its changes to your folders come back for approval.
    Shell(ShellArgs),
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
    /// Write a digest of the last seven days of runs into output/ (what ran, what changed, what was blocked, time and tokens).
    Report(ReportArgs),
    /// Check that this machine can run deskhand: the wasm sandbox, the shell sandbox, the workspace and the model.
    Doctor {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Put back everything a run (and its sub-agents) changed in your folders.
    Undo(UndoArgs),
    /// What deskhand deleted or displaced: list it, put it back, or empty the trash.
    Trash {
        #[command(subcommand)]
        command: TrashCommand,
    },
    /// Plugins: bundles of skills, slash commands (/weekly-report) and connector definitions.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// The skills a workspace can use: list them, see what one runs, trust the ones that came with the workspace,
    /// make one from a finished run, install, test or remove one (`deskhand skill ...` works too).
    #[command(alias = "skill")]
    Skills {
        #[command(subcommand)]
        command: SkillsCommand,
    },
    /// Continue a run that was interrupted or is waiting for an answer, or give a finished run a new instruction (--say).
    Resume(ResumeArgs),
    /// Tasks that run on their own at set times, with deskhand closed: add, list, show, pause, resume, remove, run-now, install.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Connectors: MCP servers (mail, calendar, chat, documents) a model may use, each in its sandbox: add, list,
    /// show, test, approve their tools, allow, enable or disable a tool, import an mcpServers file, remove.
    #[command(alias = "connector")]
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// Inside a sandbox: carry its connections to deskhand's egress proxy (deskhand starts this itself).
    #[command(name = "__egress-relay", hide = true)]
    EgressRelay {
        /// SOCKET LISTEN_ADDR -- PROGRAM ARGS...
        #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Save a task to run at set times: shows the next five times and what its runs may do, and saves on your yes.
    Add(ScheduleAddArgs),
    /// Every schedule: when it runs next, and how its last run went.
    List,
    /// One schedule: its times, what its runs may do, and its recent runs.
    Show { id: i64 },
    /// Stop a schedule from running until you resume it.
    Pause { id: i64 },
    /// Run a paused schedule again (the time it was paused is not made up).
    Resume { id: i64 },
    /// Delete a schedule (its past runs stay in the workspace).
    Remove { id: i64 },
    /// Run a schedule's task now, as its schedule would, unattended.
    RunNow { id: i64 },
    /// Run every schedule that is due (what the OS job and `deskhand serve` do every few minutes).
    RunDue,
    /// Register the OS job that runs due schedules every five minutes and at login, with deskhand closed.
    Install,
    /// Remove the OS job (your schedules are kept).
    Uninstall,
}

#[derive(Args)]
pub struct ScheduleAddArgs {
    /// The outcome you want each time, in words.
    pub task: String,
    /// When, in words: "weekday 08:00", "every Monday 07:00", "first working day of the month 09:00", ...
    #[arg(long, conflicts_with = "cron", required_unless_present = "cron")]
    pub every: Option<String>,
    /// When, as a five-field cron expression: "0 8 * * 1-5".
    #[arg(long)]
    pub cron: Option<String>,
    /// The IANA time zone the times are in (default: this machine's), e.g. Europe/Berlin.
    #[arg(long)]
    pub tz: Option<String>,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// A folder the task may see: PATH (read-only) or PATH:rw. Repeatable.
    #[arg(long = "grant", value_parser = parse_grant)]
    pub grants: Vec<Grant>,
    /// The run's mode when you resume it yourself. Unattended, a run does what its approved plan allows and nothing more, in either mode.
    #[arg(long, value_enum, default_value = "act")]
    pub mode: ModeArg,
    /// Times missed while the machine was off: skip them, run once for all of them, or notify you.
    #[arg(long, value_enum, default_value = "skip")]
    pub missed: MissedArg,
    /// Save without asking.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum MissedArg {
    Skip,
    Once,
    Notify,
}

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// Add a local MCP server (`-- COMMAND ARGS...`; a remote one: --url URL), start it in its sandbox, show its
    /// tools and approve them.
    Add {
        name: String,
        /// Add it to this workspace's list instead of yours.
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Every tool runs as a read; its folders are shown read-only.
        #[arg(long, conflicts_with = "read_write")]
        read_only: bool,
        /// Tools that write are actions a step declares and the mode approves (the default).
        #[arg(long)]
        read_write: bool,
        /// A variable for the server: VAR=VALUE (kept in the list), or VAR (passed from deskhand's environment).
        #[arg(long = "env", value_name = "VAR[=VALUE]")]
        env: Vec<String>,
        /// Its results are private: reading one seals the run's network.
        #[arg(long)]
        private: bool,
        /// A remote server's Streamable HTTP URL.
        #[arg(long)]
        url: Option<String>,
        /// A header for a remote server, 'NAME: VALUE', its secret as ${VAR} (read from deskhand's environment
        /// when it connects; only the variable's name is kept in the list).
        #[arg(long = "header", value_name = "NAME: VALUE", requires = "url")]
        header: Vec<String>,
        /// Approve its tools without asking.
        #[arg(long)]
        yes: bool,
        /// If the remote server asks you to sign in: your own application's client id at the service.
        #[arg(long, value_name = "ID", requires = "url")]
        client_id: Option<String>,
        /// If the remote server asks you to sign in: print the address instead of opening a browser.
        #[arg(long, requires = "url")]
        no_browser: bool,
        /// COMMAND ARGS... after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Your connectors (and a workspace's, with --workspace).
    List {
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// A connector's settings and approved tools (enabled, always allowed).
    Show {
        name: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Remove a connector and forget its approvals.
    Remove {
        name: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Start it in its sandbox and list its tools; say which changed since you approved them.
    Test {
        name: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Offer a tool to models again.
    Enable {
        name: String,
        tool: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Stop offering a tool to models (large servers would flood their context).
    Disable {
        name: String,
        tool: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Approve a connector's new or changed tools (all, or TOOL) after seeing each one's diff.
    Approve {
        name: String,
        tool: Option<String>,
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Approve without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Always allow a tool that writes (ask mode stops asking for it; a destructive tool still asks).
    Allow {
        name: String,
        tool: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Revoke "always allow" for a tool.
    Disallow {
        name: String,
        tool: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Sign in to a remote connector that asks for it (OAuth, in your browser); the token is kept in your config
    /// folder, sent only to that connector's URL, and renewed when it ends.
    Login {
        name: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Your own application's client id at the service (when deskhand cannot register itself there).
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// Print the sign-in address instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Forget a remote connector's sign-in (its token).
    Logout {
        name: String,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
    /// Add the connectors of an mcpServers JSON file from another MCP client (none started or approved).
    Import {
        file: PathBuf,
        #[arg(long)]
        workspace: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// The installed plugins.
    List,
    /// What an installed plugin brings: its skills (and what they run), commands and connectors.
    Show { name: String },
    /// Install a plugin folder (plugin.json or .claude-plugin/plugin.json, skills/, commands/, .mcp.json), after
    /// showing everything in it.
    Install {
        dir: PathBuf,
        /// Replace an installed plugin of the same name (the old one is moved aside).
        #[arg(long)]
        replace: bool,
        /// Install without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Remove an installed plugin (moved to a backup folder beside it, not deleted).
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum SkillsCommand {
    /// Every skill found (the workspace's, yours, the bundled ones), and those waiting for your trust.
    List {
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// What a skill says and what it runs: its tool or code, parameters and files.
    Show {
        name: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Let skills that came with the workspace (.agents/skills/) run, after showing what each runs.
    Trust {
        /// The skills to trust (default: every one waiting).
        names: Vec<String>,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Trust without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Stop trusting the workspace's skills (all of them, or those named).
    Untrust {
        names: Vec<String>,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
    /// Make a skill from a finished run: a draft, replayed on a scratch copy of its folders and shown beside the
    /// run, installed into your skills only when you say yes.
    Create {
        /// The run to make it from (`deskhand runs` lists them).
        #[arg(long = "from")]
        run: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// The skill's name (default: from the task's words).
        #[arg(long)]
        name: Option<String>,
        /// What it does and when to use it (default: from the run).
        #[arg(long)]
        description: Option<String>,
        /// Install without asking, after the draft and its replay are shown.
        #[arg(long)]
        yes: bool,
    },
    /// Install a skill folder (a SKILL.md, and evals/, scripts/, references/, assets/), or a .zip/.skill archive
    /// of one (a path or a file:// URL, unpacked in the sandbox), into your skills.
    Install {
        dir: PathBuf,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Replace an installed skill of the same name.
        #[arg(long)]
        replace: bool,
        /// Install without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Remove one of your skills (it is moved to a backup folder beside them, not deleted).
    Remove { name: String },
    /// Make a new skill with its own code: a Rust crate for deskhand's tool world (a WIT component), built for
    /// wasm32-wasip2 and installed into the skill's scripts/.
    New {
        /// The skill's name: lowercase letters, digits and hyphens (it is also its folder's name).
        name: String,
        /// Make a skill with code (a WIT component); the only kind `skill new` makes.
        #[arg(long)]
        component: bool,
        /// Make it in DIR/NAME (default: your skills folder, or the workspace's with --workspace).
        #[arg(long, conflicts_with = "workspace")]
        dir: Option<PathBuf>,
        /// Make it in this workspace's .agents/skills/NAME.
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Cargo's target folder for the build (default: beside deskhand's cache).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Rebuild a skill's component from its crate (component/) and install it into its scripts/.
    Build {
        /// The skill's name, or its folder.
        skill: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Cargo's target folder for the build (default: beside deskhand's cache).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Check a skill against its evals: the offline planner picks it for each phrasing with the parameters given.
    Test {
        name: String,
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The outcome you want, in words.
    pub task: String,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// A folder the task may see: PATH (read-only) or PATH:rw. Repeatable.
    #[arg(long = "grant", value_parser = parse_grant)]
    pub grants: Vec<Grant>,
    /// ask: approve each step; act: run the plan without asking.
    #[arg(long, value_enum, default_value = "ask")]
    pub mode: ModeArg,
    /// The model to use, or "offline" for the offline planner (default: from config).
    #[arg(long)]
    pub model: Option<String>,
    /// A skill parameter for the offline planner, NAME=VALUE. Repeatable.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

#[derive(Args)]
pub struct FeedbackArgs {
    /// What deskhand should remember.
    pub text: String,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Accept the proposed update without asking.
    #[arg(long)]
    pub yes: bool,
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    pub run: String,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Print every journaled event as JSON lines.
    #[arg(long)]
    pub events: bool,
    /// Print the run's ledger of record (kept in .deskhand/, where no tool can write).
    #[arg(long, conflicts_with = "events")]
    pub ledger: bool,
}

#[derive(Args)]
pub struct ShellArgs {
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// A folder the command may see: PATH (read-only) or PATH:rw (changes come back as a changeset). Repeatable.
    #[arg(long = "grant", value_parser = parse_grant)]
    pub grants: Vec<Grant>,
    /// ask: approve the command and its changes; act: apply changes without asking (deletions still ask).
    #[arg(long, value_enum, default_value = "ask")]
    pub mode: ModeArg,
    /// Stop the command (and everything it started) after this many seconds (1 to 86400).
    #[arg(long, default_value_t = 120, value_parser = parse_timeout, value_name = "SECONDS")]
    pub timeout: u64,
    /// Where the command starts (inside a grant); default: the first grant.
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// bwrap: a bubblewrap namespace sandbox (default); vm: a QEMU microVM (set up with scripts/setup-vm).
    #[arg(long, value_enum, default_value = "bwrap")]
    pub backend: BackendArg,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The last seven days (the one period there is, for now).
    #[arg(long, required = true)]
    pub week: bool,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
}

#[derive(Args)]
pub struct UndoArgs {
    /// The run to undo (see `deskhand runs`).
    #[arg(required_unless_present = "last", conflicts_with = "last")]
    pub run: Option<String>,
    /// Undo the most recent run that changed files.
    #[arg(long)]
    pub last: bool,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Restore even files changed since the run; their current versions go to the trash.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct ResumeArgs {
    pub run: String,
    #[arg(long, default_value = ".")]
    pub workspace: PathBuf,
    /// Your answer, when the run asked you something.
    #[arg(long, conflicts_with = "say")]
    pub answer: Option<String>,
    /// A new instruction for a run that ended ("now in USD", "add April"): a new turn with the run's context.
    #[arg(long)]
    pub say: Option<String>,
    /// Continue in this mode (act: run the rest of the plan without asking); default: the run's own.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Subcommand)]
pub enum TrashCommand {
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

#[derive(Subcommand)]
pub enum ToolCommand {
    /// List the installed tools and their operations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run one operation of a tool in the sandbox.
    Run(ToolRunArgs),
}

#[derive(Args)]
pub struct ToolRunArgs {
    pub tool: String,
    pub operation: String,
    #[arg(long)]
    pub workspace: PathBuf,
    /// A folder the tool may see: PATH (read-only) or PATH:rw. Repeatable.
    #[arg(long = "grant", value_parser = parse_grant)]
    pub grants: Vec<Grant>,
    /// The operation's arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Stop the tool after this many seconds (1 to 86400).
    #[arg(long, default_value_t = 60, value_parser = parse_timeout, value_name = "SECONDS")]
    pub timeout: u64,
    /// Cap the tool's memory at this many MiB (1 to 65536).
    #[arg(long, default_value_t = 1024, value_parser = parse_memory_mib, value_name = "MIB")]
    pub memory_mib: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Bwrap,
    Vm,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
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

fn parse_grant(s: &str) -> Result<Grant, String> {
    Grant::parse(s).map_err(|e| e.to_string())
}

/// The longest `--timeout`: a day. Zero would stop everything at once.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// The largest `--memory-mib`: 64 GiB, over all of a call's instances.
pub const MAX_MEMORY_MIB: u64 = 65_536;

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
