//! `deskhand schedule ...`: tasks that run on their own at set times, with
//! deskhand closed. `add` shows the times and what the runs may do (the
//! envelope, planned now without acting) and saves only on a yes; `run-due`
//! is what the OS job (`install`) and `deskhand serve` run every few
//! minutes; the rest read and change the per-user schedule database
//! (`deskhand_runtime::schedule`).
//!
//! Test-only: `DESKHAND_NOW` (an RFC 3339 time) stands in for the clock
//! that decides what is due, so tests can wake deskhand a week later.

use std::path::{Path, PathBuf};

use deskhand_runtime::schedule::{
    self, Asked, DueReport, MissedPolicy, Occurrence, OccurrenceState, Planning, RunOutcome, Schedule, ScheduleError,
    Schedules, Time, Timing, Utc, os_job,
};
use deskhand_types::Grant;

use crate::cli::{ScheduleAddArgs, ScheduleCommand};
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::{config_dir, load_config, open_workspace, toolbox};
use crate::terminal::{confirm, out};

pub fn schedule(command: ScheduleCommand, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    match command {
        ScheduleCommand::Add(args) => add(args, cache_dir),
        ScheduleCommand::List => list(),
        ScheduleCommand::Show { id } => show(id),
        ScheduleCommand::Pause { id } => {
            let s = open()?.pause(id).map_err(failure)?;
            out(&format!(
                "Paused schedule {id}: {}. `deskhand schedule resume {id}` runs it again.",
                task_line(&s)
            ));
            Ok(())
        }
        ScheduleCommand::Resume { id } => {
            let s = open()?.resume(id, now()?).map_err(failure)?;
            out(&format!("Schedule {id} runs again: {}.", task_line(&s)));
            print_next(&s, 1)
        }
        ScheduleCommand::Remove { id } => {
            let s = open()?.remove(id).map_err(failure)?;
            out(&format!(
                "Removed schedule {id}: {}. Its past runs stay in the workspace's journal (deskhand runs --workspace {}).",
                task_line(&s),
                s.workspace.display()
            ));
            Ok(())
        }
        ScheduleCommand::RunNow { id } => {
            let store = open()?;
            let holder = holder();
            let mut runner = Runner::new(cache_dir, &store, &holder);
            let (s, o) = store
                .run_now(id, now()?, &holder, &mut |s, o| runner.run(s, o))
                .map_err(failure)?;
            say_ran(&s, &o);
            match o.state {
                OccurrenceState::Ran => Ok(()),
                OccurrenceState::NeedsYou => Err(Failure {
                    message: String::new(),
                    code: 2,
                }),
                _ => Err(Failure {
                    message: String::new(),
                    code: 1,
                }),
            }
        }
        ScheduleCommand::RunDue => {
            let report = run_due(cache_dir)?;
            if report.ran.is_empty() && report.notices.is_empty() {
                out("Nothing is due.");
            }
            Ok(())
        }
        ScheduleCommand::Install => install(),
        ScheduleCommand::Uninstall => uninstall(),
    }
}

/// Runs every due schedule once, saying what ran and what was missed.
/// `deskhand serve` calls it every minute.
pub fn run_due(cache_dir: Option<PathBuf>) -> Result<DueReport, Failure> {
    let mut store = open()?;
    let holder = holder();
    let mut runner = Runner::new(cache_dir, &store, &holder);
    let report = store
        .run_due(now()?, &holder, &mut |s, o| runner.run(s, o))
        .map_err(failure)?;
    for (s, o) in &report.ran {
        say_ran(s, o);
    }
    if !report.notices.is_empty() {
        let mut lines = Vec::new();
        for (s, o) in &report.notices {
            lines.push(format!(
                "Schedule {} missed its run at {}: {}",
                s.id,
                local(s, o),
                task_line(s)
            ));
        }
        out(&lines.join("\n"));
        out("Missed runs are not made up under --missed notify; `deskhand schedule run-now ID` runs one now.");
        let body = lines.join("\n");
        let _ = deskhand_runtime::envelope::desktop_notification(&deskhand_runtime::envelope::Notification {
            run: deskhand_types::RunId(String::new()),
            title: "deskhand: scheduled runs missed".into(),
            body,
        });
    }
    Ok(report)
}

/// `deskhand serve`'s background thread: `run-due` every minute while it is up.
pub fn run_due_every_minute(cache_dir: Option<PathBuf>) {
    std::thread::spawn(move || {
        loop {
            if let Err(f) = run_due(cache_dir.clone()) {
                eprintln!("warning: running due schedules: {}", render::block(&f.message));
            }
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    });
}

fn add(args: ScheduleAddArgs, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let ScheduleAddArgs {
        task,
        every,
        cron,
        tz,
        workspace,
        grants,
        mode,
        missed,
        yes,
    } = args;
    let timing = match (every, cron) {
        (Some(p), None) => Timing::Every(p),
        (None, Some(c)) => Timing::Cron(c),
        _ => {
            return Err(user_error(
                "say when it runs: --every \"weekday 08:00\" (a phrase) or --cron \"0 8 * * 1-5\" (cron)",
            ));
        }
    };
    if !workspace.is_dir() {
        return Err(user_error(format!(
            "the workspace {} does not exist. Give the folder of a deskhand workspace with --workspace, or create \
             one with `deskhand init DIR`",
            workspace.display()
        )));
    }
    let ws = open_workspace(&workspace)?;
    let config = load_config(&ws, None)?;
    let mut tb = toolbox(cache_dir)?;
    let config_dir = config_dir();
    let asked = Asked {
        task,
        timing,
        zone: tz.unwrap_or_else(local_zone),
        grants,
        mode: mode.into(),
        missed: missed.into(),
    };
    let planning = Planning {
        config: &config,
        config_dir: config_dir.as_deref(),
        toolbox: &mut tb,
    };
    let now = now()?;
    let here = schedule::parse_zone(&local_zone()).ok();
    let prepared = schedule::prepare(&ws, asked, planning, now, here).map_err(failure)?;
    out(&render::block(&prepared.describe(&render::line)));
    if !yes && !confirm("Save this schedule? [y/N] ") {
        return Err(user_error(
            "nothing was saved (answer y at the prompt, or pass --yes to save without asking)",
        ));
    }
    let store = open()?;
    let saved = store.add(&prepared.new, now).map_err(failure)?;
    out(&format!(
        "Saved schedule {}. {}",
        saved.id,
        if job_installed() {
            "The OS job runs it with deskhand closed.".to_owned()
        } else {
            "To run it with deskhand closed, install the OS job once: deskhand schedule install \
             (while `deskhand serve` is up, it runs due schedules too)."
                .to_owned()
        }
    ));
    Ok(())
}

fn list() -> Result<(), Failure> {
    let store = open()?;
    let all = store.list().map_err(failure)?;
    if all.is_empty() {
        out(
            "No schedules yet. Add one with: deskhand schedule add \"TASK\" --every \"weekday 08:00\" --workspace DIR --grant FOLDER",
        );
        return Ok(());
    }
    let now = now()?;
    for s in &all {
        let next = match s.next_times(now, 1) {
            Ok(t) if s.paused || t.is_empty() => "paused".to_owned(),
            Ok(t) => format!("next {}", s.local(t[0])),
            Err(e) => format!("cannot run: {e}"),
        };
        out(&format!(
            "{:>3}  {}  [{next}]  {}",
            s.id,
            render::line(&s.describe_when()),
            task_line(s)
        ));
        out(&format!("     {}", s.workspace.display()));
        if let Some(o) = store.occurrences(s.id, 1).map_err(failure)?.first() {
            out(&format!("     last: {}", occurrence_line(s, o)));
        }
    }
    Ok(())
}

fn show(id: i64) -> Result<(), Failure> {
    let store = open()?;
    let s = store.get(id).map_err(failure)?;
    out(&format!("Schedule {}: {}", s.id, task_line(&s)));
    out(&format!("  When:      {}", render::line(&s.describe_when())));
    if s.paused {
        out("  Paused:    yes (deskhand schedule resume ID runs it again)");
    } else {
        print_next(&s, 5)?;
    }
    out(&format!("  Workspace: {}", s.workspace.display()));
    out(&format!("  Grants:    {}", grants_line(&s.grants)));
    out(&format!("  Mode:      {}", s.mode));
    out(&format!("  If missed: {}", s.missed.describe()));
    match &s.envelope {
        Some(e) => out(&format!("\n{}", render::block(e.to_string().trim_end()))),
        None => out("\nNo approved envelope: its runs stop at anything that would ask you."),
    }
    let recent = store.occurrences(id, 10).map_err(failure)?;
    if !recent.is_empty() {
        out("\nRecent runs:");
        for o in &recent {
            out(&format!("  {}", occurrence_line(&s, o)));
        }
    }
    Ok(())
}

fn print_next(s: &Schedule, n: usize) -> Result<(), Failure> {
    let times = s.next_times(now()?, n).map_err(failure)?;
    for (i, t) in times.iter().enumerate() {
        let label = if i == 0 { "  Next runs: " } else { "             " };
        out(&format!("{label}{}", s.local(*t)));
    }
    Ok(())
}

/// An occurrence's due time in its schedule's zone.
fn local(s: &Schedule, o: &Occurrence) -> String {
    s.local(o.due)
}

fn occurrence_line(s: &Schedule, o: &Occurrence) -> String {
    format!("{}  {}", local(s, o), what_became(s, o))
}

/// What became of an occurrence: its state, run and note, and for a run
/// that stopped for the person, how to see and continue it.
fn what_became(s: &Schedule, o: &Occurrence) -> String {
    let mut line = o.state.describe().to_owned();
    if let Some(run) = &o.run {
        line.push_str(&format!(", run {run}"));
    }
    if let Some(note) = &o.note {
        line.push_str(&format!(" ({})", render::line(note)));
    }
    if o.state == OccurrenceState::NeedsYou
        && let Some(run) = &o.run
    {
        let ws = render::line(&s.workspace.display().to_string());
        line.push_str(&format!(
            "\n       see it: deskhand show {run} --workspace {ws}; continue it: deskhand resume {run} --workspace {ws}"
        ));
    }
    line
}

fn say_ran(s: &Schedule, o: &Occurrence) {
    out(&format!(
        "Schedule {} ({}), due {}: {}",
        s.id,
        task_line(s),
        local(s, o),
        what_became(s, o)
    ));
}

fn task_line(s: &Schedule) -> String {
    render::line(&s.task)
}

fn grants_line(grants: &[Grant]) -> String {
    schedule::grants_words(grants, &render::line)
}

/// Starts each due schedule's run unattended.
struct Runner {
    cache_dir: Option<PathBuf>,
    /// The schedule database, where each run's id is recorded as it starts.
    db: PathBuf,
    holder: String,
}

impl Runner {
    fn new(cache_dir: Option<PathBuf>, store: &Schedules, holder: &str) -> Runner {
        Runner {
            cache_dir,
            db: store.path().to_path_buf(),
            holder: holder.to_owned(),
        }
    }

    fn run(&mut self, s: &Schedule, o: &Occurrence) -> RunOutcome {
        let failed = |note: String| RunOutcome {
            run: None,
            state: OccurrenceState::Failed,
            note: Some(note),
        };
        let ws = match open_workspace(&s.workspace) {
            Ok(ws) => ws,
            Err(f) => return failed(format!("could not open the workspace: {}", f.message)),
        };
        let config = match load_config(&ws, None) {
            Ok(c) => c,
            Err(f) => return failed(f.message),
        };
        let mut tb = match toolbox(self.cache_dir.clone()) {
            Ok(tb) => tb,
            Err(f) => return failed(f.message),
        };
        let shell = deskhand_runtime::shell::default_backend();
        let warn = |w: String| eprintln!("warning: {}", render::block(&w));
        let with = schedule::run::RunWith {
            config,
            config_dir: config_dir(),
            shell: shell.as_deref(),
            warn: &warn,
            observer: None,
            started: Some(schedule::run::recorder(self.db.clone(), o.id, self.holder.clone())),
            stop: None,
        };
        let report = schedule::run::launch_unattended(&ws, &mut tb, s, o, with);
        schedule::run::outcome(&report)
    }
}

fn open() -> Result<Schedules, Failure> {
    let dir = config_dir().ok_or_else(|| {
        user_error("deskhand cannot find your config folder for its schedules: set XDG_CONFIG_HOME (or HOME)")
    })?;
    Schedules::open(&Schedules::default_path(&dir)).map_err(failure)
}

fn failure(e: ScheduleError) -> Failure {
    let code = match &e {
        ScheduleError::Database { .. } | ScheduleError::Folder { .. } | ScheduleError::Corrupt { .. } => 1,
        ScheduleError::Grants { source } | ScheduleError::Unplannable { source } if !source.is_user_error() => 1,
        _ => 2,
    };
    Failure {
        message: e.to_string(),
        code,
    }
}

/// The clock that decides what is due: now, or `DESKHAND_NOW` in tests.
fn now() -> Result<Time<Utc>, Failure> {
    match std::env::var("DESKHAND_NOW") {
        Ok(t) => schedule::parse_time(&t).ok_or_else(|| {
            user_error(format!(
                "DESKHAND_NOW={t:?} is not an RFC 3339 time such as 2026-03-09T07:00:00Z; it is for tests only"
            ))
        }),
        Err(_) => Ok(Utc::now()),
    }
}

/// This process, in its claims.
fn holder() -> String {
    schedule::this_process()
}

/// The person's IANA zone: `TZ` if it names one, else what /etc/localtime
/// links to (Linux, macOS), else UTC.
fn local_zone() -> String {
    let named = |s: &str| schedule::parse_zone(s).ok().map(|z| z.name().to_owned());
    if let Some(z) = std::env::var("TZ")
        .ok()
        .as_deref()
        .map(|t| t.trim_start_matches(':'))
        .and_then(named)
    {
        return z;
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let t = target.to_string_lossy();
        if let Some((_, name)) = t.split_once("zoneinfo/")
            && let Some(z) = named(name)
        {
            return z;
        }
    }
    if let Some(z) = std::fs::read_to_string("/etc/timezone")
        .ok()
        .as_deref()
        .map(str::trim)
        .and_then(named)
    {
        return z;
    }
    "UTC".into()
}

fn places() -> Result<os_job::Places, Failure> {
    let home = dirs::home_dir().ok_or_else(|| user_error("deskhand cannot find your home folder: set HOME"))?;
    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
    Ok(os_job::Places {
        config_home: xdg.clone().unwrap_or_else(|| home.join(".config")),
        home,
        deskhand_config: config_dir()
            .ok_or_else(|| user_error("deskhand cannot find your config folder: set XDG_CONFIG_HOME (or HOME)"))?,
        xdg_config_home: xdg,
    })
}

fn job_installed() -> bool {
    let (Ok(exe), Ok(places)) = (std::env::current_exe(), places()) else {
        return false;
    };
    os_job::files(os_job::Os::current(), &exe, &places)
        .iter()
        .all(|(p, _)| p.exists())
}

fn install() -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .and_then(|e| e.canonicalize())
        .map_err(|e| Failure {
            message: format!("deskhand cannot find its own program file to put in the OS job: {e}"),
            code: 1,
        })?;
    let os = os_job::Os::current();
    let files = os_job::files(os, &exe, &places()?);
    for (path, text) in &files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_failure(dir, e))?;
        }
        let bytes = match os {
            os_job::Os::Windows => os_job::utf16_with_bom(text),
            _ => text.clone().into_bytes(),
        };
        std::fs::write(path, bytes).map_err(|e| io_failure(path, e))?;
    }
    let written: Vec<String> = files.iter().map(|(p, _)| format!("  {}", p.display())).collect();
    out(&format!(
        "Wrote the OS job that runs `deskhand schedule run-due` every five minutes and at login:\n{}",
        written.join("\n")
    ));
    let steps: Vec<Vec<String>> = match os {
        os_job::Os::Linux => vec![
            words(&["systemctl", "--user", "daemon-reload"]),
            words(&[
                "systemctl",
                "--user",
                "enable",
                "--now",
                &format!("{}.timer", os_job::SYSTEMD_NAME),
            ]),
        ],
        os_job::Os::MacOs => vec![vec![
            "launchctl".into(),
            "bootstrap".into(),
            format!("gui/{}", uid()),
            files[0].0.display().to_string(),
        ]],
        os_job::Os::Windows => vec![vec![
            "schtasks".into(),
            "/Create".into(),
            "/TN".into(),
            os_job::WINDOWS_TASK.into(),
            "/XML".into(),
            files[0].0.display().to_string(),
            "/F".into(),
        ]],
    };
    if os == os_job::Os::MacOs {
        // A job loaded before (an earlier install) is unloaded first, or bootstrap refuses it.
        let _ = command(&[
            "launchctl".into(),
            "bootout".into(),
            format!("gui/{}/{}", uid(), os_job::LAUNCHD_LABEL),
        ]);
    }
    for (i, step) in steps.iter().enumerate() {
        if let Err(problem) = command(step) {
            let rest: Vec<String> = steps[i..].iter().map(|s| format!("  {}", s.join(" "))).collect();
            out(&format!(
                "The OS did not load it here ({problem}), so it is written but not running. Where the OS can, \
                 load it with:\n{}\n(`deskhand serve` runs due schedules while it is up.)",
                rest.join("\n")
            ));
            return Ok(());
        }
    }
    out("The OS job is running. `deskhand schedule uninstall` removes it.");
    Ok(())
}

fn uninstall() -> Result<(), Failure> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("deskhand"));
    let os = os_job::Os::current();
    let files = os_job::files(os, &exe, &places()?);
    // Unloading what is not loaded fails; that is fine: the files go either way.
    let _ = match os {
        os_job::Os::Linux => command(&words(&[
            "systemctl",
            "--user",
            "disable",
            "--now",
            &format!("{}.timer", os_job::SYSTEMD_NAME),
        ])),
        os_job::Os::MacOs => command(&[
            "launchctl".into(),
            "bootout".into(),
            format!("gui/{}/{}", uid(), os_job::LAUNCHD_LABEL),
        ]),
        os_job::Os::Windows => command(&words(&["schtasks", "/Delete", "/TN", os_job::WINDOWS_TASK, "/F"])),
    };
    let mut removed = Vec::new();
    for (path, _) in &files {
        match std::fs::remove_file(path) {
            Ok(()) => removed.push(format!("  {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_failure(path, e)),
        }
    }
    if os == os_job::Os::Linux {
        let _ = command(&words(&["systemctl", "--user", "daemon-reload"]));
    }
    if removed.is_empty() {
        out("The OS job was not installed; nothing to remove. Your schedules are kept.");
    } else {
        out(&format!(
            "Removed the OS job:\n{}\nYour schedules are kept; they run only while `deskhand serve` is up until you install it again.",
            removed.join("\n")
        ));
    }
    Ok(())
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs `argv`; Err says why it did not succeed.
fn command(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("nothing to run")?;
    let o = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if o.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&o.stderr);
    Err(format!("{}: {}", argv.join(" "), render::line(said.trim())))
}

fn uid() -> String {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure {
        message: format!("cannot write {}: {e}", path.display()),
        code: 1,
    }
}

impl From<crate::cli::MissedArg> for MissedPolicy {
    fn from(m: crate::cli::MissedArg) -> MissedPolicy {
        match m {
            crate::cli::MissedArg::Skip => MissedPolicy::Skip,
            crate::cli::MissedArg::Once => MissedPolicy::Once,
            crate::cli::MissedArg::Notify => MissedPolicy::Notify,
        }
    }
}
