//! `deskhand schedule` end to end: real runs through the offline planner on
//! a fake clock (`DESKHAND_NOW`), two `run-due` processes at once, a missed
//! week under each policy, and the OS job's files checked by systemd.

use std::path::Path;
use std::process::Output;

use super::{assert_ok, assert_user_error, command, deskhand, stderr, stdout};

const TASK: &str = "Make a file inventory of projects/receipts";

/// A workspace `ws` with two receipts in projects/receipts.
fn workspace(cwd: &Path) {
    assert_ok(&deskhand(&["init", "ws"], cwd));
    let receipts = cwd.join("ws/projects/receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::write(receipts.join("2026-03-01 lunch.txt"), "Lunch 12.50 EUR\n").unwrap();
    std::fs::write(receipts.join("2026-03-02 taxi.txt"), "Taxi 23.00 EUR\n").unwrap();
}

/// `deskhand ARGS` with the schedule clock at `now`.
fn at(now: &str, args: &[&str], cwd: &Path) -> Output {
    command(args, cwd)
        .env("DESKHAND_NOW", now)
        .output()
        .expect("the deskhand binary runs")
}

/// Saves the inventory task every day at 08:00 in Berlin on Monday 2026-03-02
/// at 07:00 there, with `missed`; returns its id.
fn add_daily(missed: &str, cwd: &Path) -> String {
    let o = at(
        "2026-03-02T06:00:00Z",
        &[
            "schedule",
            "add",
            TASK,
            "--every",
            "every day at 8:00",
            "--tz",
            "Europe/Berlin",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--missed",
            missed,
            "--yes",
        ],
        cwd,
    );
    assert_ok(&o);
    let out = stdout(&o);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Saved schedule "))
        .and_then(|l| l.split('.').next())
        .unwrap_or_else(|| panic!("no id in:\n{out}"));
    id.to_owned()
}

fn inventories(cwd: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cwd.join("ws/output"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("inventory"))
        .collect();
    names.sort();
    names
}

fn top_level_runs(cwd: &Path) -> Vec<String> {
    let o = deskhand(&["runs", "--workspace", "ws"], cwd);
    assert_ok(&o);
    stdout(&o)
        .lines()
        .filter(|l| l.starts_with("run-"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn add_shows_the_times_and_what_runs_may_do_and_saves_only_on_a_yes() {
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    let args = [
        "schedule",
        "add",
        TASK,
        "--every",
        "weekday 08:00",
        "--tz",
        "America/New_York",
        "--workspace",
        "ws",
        "--grant",
        "projects",
    ];
    // No terminal and no --yes: shown, not saved.
    let o = at("2026-03-05T14:00:00Z", &args, tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was saved"), "{}", stderr(&o));
    let shown = stdout(&o);
    for line in [
        "When:      weekday 08:00 (cron 0 8 * * 1-5, America/New_York)",
        // Across the spring-forward Sunday, still 08:00 there.
        "Next runs: Fri 2026-03-06 08:00 EST",
        "Mon 2026-03-09 08:00 EDT",
        "Thu 2026-03-12 08:00 EDT",
        "Grants:    projects (read-only)",
        "read projects/",
        "run inventory.run",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    assert!(stdout(&deskhand(&["schedule", "list"], tmp.path())).contains("No schedules yet"));
    let yes = [&args[..], &["--yes"]].concat();
    let o = at("2026-03-05T14:00:00Z", &yes, tmp.path());
    assert_ok(&o);
    assert!(stdout(&o).contains("Saved schedule 1."), "{}", stdout(&o));
    assert!(stdout(&o).contains("deskhand schedule install"), "{}", stdout(&o));
    let list = stdout(&at("2026-03-05T14:00:00Z", &["schedule", "list"], tmp.path()));
    assert!(
        list.contains("[next Fri 2026-03-06 08:00 EST]") && list.contains(TASK),
        "{list}"
    );
    let show = stdout(&deskhand(&["schedule", "show", "1"], tmp.path()));
    assert!(show.contains("Each run may, without asking you:"), "{show}");
    assert!(show.contains("following this plan:"), "{show}");
}

#[test]
fn bad_times_zones_workspaces_and_grants_are_named_and_nothing_is_saved() {
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    let add = |extra: &[&str]| {
        let args = [&["schedule", "add", TASK, "--yes"][..], extra].concat();
        deskhand(&args, tmp.path())
    };
    let o = add(&["--every", "every fortnight", "--workspace", "ws"]);
    assert_user_error(&o, "does not know the phrase \"every fortnight\"");
    assert!(stderr(&o).contains("\"every weekday at 8:00\""), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("first working day of the month 09:00"),
        "{}",
        stderr(&o)
    );
    let o = add(&["--cron", "0 8 * *", "--workspace", "ws"]);
    assert_user_error(&o, "the cron expression \"0 8 * *\" cannot be used: it has 4 fields");
    let o = add(&["--cron", "61 8 * * *", "--workspace", "ws"]);
    assert_user_error(&o, "the cron expression \"61 8 * * *\" cannot be used");
    let o = add(&["--every", "weekday 08:00", "--tz", "Europe/Berln", "--workspace", "ws"]);
    assert_user_error(&o, "\"Europe/Berln\" is not a time zone deskhand knows. Did you mean");
    assert!(stderr(&o).contains("Europe/Berlin"), "{}", stderr(&o));
    let o = add(&["--every", "weekday 08:00", "--workspace", "nowhere"]);
    assert_user_error(&o, "the workspace nowhere does not exist");
    let o = add(&[
        "--every",
        "weekday 08:00",
        "--workspace",
        "ws",
        "--grant",
        "projects/scans",
    ]);
    assert_user_error(&o, "the granted folder projects/scans does not exist");
    let o = deskhand(&["schedule", "add", TASK, "--workspace", "ws"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--every"), "{}", stderr(&o));
    assert!(stdout(&deskhand(&["schedule", "list"], tmp.path())).contains("No schedules yet"));
    assert_user_error(
        &deskhand(&["schedule", "pause", "7"], tmp.path()),
        "there is no schedule 7",
    );
}

#[test]
fn two_run_due_processes_started_together_run_a_due_time_once() {
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    add_daily("skip", tmp.path());
    // Monday 08:01 in Berlin: both wake for the same due time.
    let now = "2026-03-02T07:01:00Z";
    let children: Vec<_> = (0..2)
        .map(|_| {
            command(&["schedule", "run-due"], tmp.path())
                .env("DESKHAND_NOW", now)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outputs {
        assert_ok(o);
    }
    let said: Vec<String> = outputs.iter().map(stdout).collect();
    let ran: Vec<&String> = said.iter().filter(|s| s.contains("ran, run run-")).collect();
    assert_eq!(ran.len(), 1, "one process ran it:\n{said:?}");
    assert!(said.iter().any(|s| s.contains("Nothing is due.")), "{said:?}");
    assert_eq!(top_level_runs(tmp.path()).len(), 1, "one run in the journal");
    assert_eq!(inventories(tmp.path()), ["inventory.csv"], "one deliverable");
    // Waking again at the same time, or later the same day, runs nothing more.
    assert!(stdout(&at("2026-03-02T07:06:00Z", &["schedule", "run-due"], tmp.path())).contains("Nothing is due."));
    assert_eq!(top_level_runs(tmp.path()).len(), 1);
    let show = stdout(&deskhand(&["schedule", "show", "1"], tmp.path()));
    assert!(show.contains("Mon 2026-03-02 08:00 CET  ran, run run-"), "{show}");
}

#[test]
fn a_missed_week_is_skipped_run_once_or_told_as_each_schedule_says() {
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    let skip = add_daily("skip", tmp.path());
    let once = add_daily("once", tmp.path());
    let notify = add_daily("notify", tmp.path());
    // The machine was off from Monday morning to the next Monday, 07:00 in Berlin.
    let o = at("2026-03-09T06:00:00Z", &["schedule", "run-due"], tmp.path());
    assert_ok(&o);
    let said = stdout(&o);
    assert_eq!(
        top_level_runs(tmp.path()).len(),
        1,
        "only the once schedule ran:\n{said}"
    );
    assert_eq!(inventories(tmp.path()), ["inventory.csv"]);
    assert!(
        said.contains(&format!(
            "Schedule {once} ({TASK}), due Sun 2026-03-08 08:00 CET: ran, run run-"
        )),
        "{said}"
    );
    assert!(said.contains("one run for 7 due times missed"), "{said}");
    // notify: each missed time told, nothing run.
    for day in ["Mon 2026-03-02", "Sun 2026-03-08"] {
        assert!(
            said.contains(&format!("Schedule {notify} missed its run at {day} 08:00 CET: {TASK}")),
            "{said}"
        );
    }
    assert!(
        !said.contains(&format!("Schedule {skip}")),
        "skip says nothing when it wakes:\n{said}"
    );
    // Told once: waking again tells nothing more and runs nothing.
    let again = stdout(&at("2026-03-09T06:05:00Z", &["schedule", "run-due"], tmp.path()));
    assert!(again.contains("Nothing is due."), "{again}");
    // Each schedule's record says what became of the week.
    let show = |id: &str| stdout(&deskhand(&["schedule", "show", id], tmp.path()));
    let skipped = show(&skip);
    assert_eq!(skipped.matches("missed, skipped").count(), 7, "{skipped}");
    let coalesced = show(&once);
    assert_eq!(
        coalesced.matches("missed, run together with a later time").count(),
        6,
        "{coalesced}"
    );
    assert_eq!(coalesced.matches("  ran, run run-").count(), 1, "{coalesced}");
    let told = show(&notify);
    assert_eq!(told.matches("missed, not run").count(), 7, "{told}");
}

#[test]
fn a_paused_schedule_does_not_run_and_a_removed_one_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    let id = add_daily("once", tmp.path());
    assert!(stdout(&deskhand(&["schedule", "pause", &id], tmp.path())).contains(&format!("Paused schedule {id}")));
    assert!(stdout(&deskhand(&["schedule", "list"], tmp.path())).contains("[paused]"));
    // Paused through Monday's time: nothing runs, and it is not a missed run either.
    let o = at("2026-03-02T07:01:00Z", &["schedule", "run-due"], tmp.path());
    assert!(stdout(&o).contains("Nothing is due."), "{}", stdout(&o));
    let o = at("2026-03-02T09:00:00Z", &["schedule", "resume", &id], tmp.path());
    assert!(
        stdout(&o).contains("Next runs: Tue 2026-03-03 08:00 CET"),
        "{}",
        stdout(&o)
    );
    let o = at("2026-03-03T07:02:00Z", &["schedule", "run-due"], tmp.path());
    assert!(
        stdout(&o).contains("due Tue 2026-03-03 08:00 CET: ran"),
        "{}",
        stdout(&o)
    );
    assert_eq!(top_level_runs(tmp.path()).len(), 1);
    // run-now runs it outside its times.
    let o = deskhand(&["schedule", "run-now", &id], tmp.path());
    assert_ok(&o);
    assert_eq!(top_level_runs(tmp.path()).len(), 2);
    assert_eq!(inventories(tmp.path()), ["inventory-1.csv", "inventory.csv"]);
    let o = deskhand(&["schedule", "remove", &id], tmp.path());
    assert!(stdout(&o).contains(&format!("Removed schedule {id}")), "{}", stdout(&o));
    assert!(stdout(&deskhand(&["schedule", "list"], tmp.path())).contains("No schedules yet"));
    assert_user_error(
        &deskhand(&["schedule", "show", &id], tmp.path()),
        "there is no schedule",
    );
}

#[test]
fn install_writes_a_systemd_timer_that_systemd_accepts_and_uninstall_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str]| command(args, tmp.path()).env("HOME", &home).output().unwrap();
    let o = run(&["schedule", "install"]);
    assert_ok(&o);
    let units = tmp.path().join(".test-config/systemd/user");
    let service = units.join("deskhand-schedules.service");
    let timer = units.join("deskhand-schedules.timer");
    let text = std::fs::read_to_string(&service).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_deskhand")).unwrap();
    assert!(
        text.contains(&format!("ExecStart=\"{}\" schedule run-due", exe.display())),
        "the unit runs this binary by its absolute path:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "Environment=\"XDG_CONFIG_HOME={}\"",
            tmp.path().join(".test-config").display()
        )),
        "{text}"
    );
    let timer_text = std::fs::read_to_string(&timer).unwrap();
    for line in ["Persistent=true", "OnCalendar=*-*-* *:00/5:00", "OnStartupSec=1min"] {
        assert!(timer_text.contains(line), "{timer_text}");
    }
    // Where systemd's user manager runs, it is enabled; elsewhere (here, systemd is not PID 1) it says how.
    let said = stdout(&o);
    assert!(
        said.contains("The OS job is running")
            || said.contains("systemctl --user enable --now deskhand-schedules.timer"),
        "{said}"
    );
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&timer)
        .arg(&service)
        .output()
        .expect("systemd-analyze is installed by scripts/setup");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let o = run(&["schedule", "uninstall"]);
    assert_ok(&o);
    assert!(!service.exists() && !timer.exists());
    assert!(stdout(&o).contains("Removed the OS job"), "{}", stdout(&o));
    let o = run(&["schedule", "uninstall"]);
    assert!(stdout(&o).contains("was not installed"), "{}", stdout(&o));
}

#[test]
fn a_scheduled_run_outside_its_approved_plan_stops_for_the_person_who_can_resume_it() {
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    let id = add_daily("skip", tmp.path());
    // The task changes after the person approved its plan (another version,
    // a hand edit): its plan now covers all of projects/, not the receipts.
    let db = tmp.path().join(".test-config/deskhand/schedules.sqlite");
    let edit = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             c.execute(\"UPDATE schedules SET task = 'Make a file inventory of projects'\"); c.commit()",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));
    let o = at("2026-03-02T07:01:00Z", &["schedule", "run-due"], tmp.path());
    assert_ok(&o);
    let said = stdout(&o);
    assert!(said.contains("stopped for you, run run-"), "{said}");
    assert!(inventories(tmp.path()).is_empty(), "nothing was done");
    let show = stdout(&deskhand(&["schedule", "show", &id], tmp.path()));
    assert!(show.contains("stopped for you, run run-"), "{show}");
    assert!(show.contains("continue it: deskhand resume run-"), "{show}");
    let list = stdout(&deskhand(&["schedule", "list"], tmp.path()));
    assert!(
        list.contains("last: Mon 2026-03-02 08:00 CET  stopped for you"),
        "{list}"
    );
    let runs = top_level_runs(tmp.path());
    assert_eq!(runs.len(), 1);
    assert!(runs[0].contains("needs_input"), "{runs:?}");
    // The person resumes it, attended, and it finishes.
    let run = runs[0].split_whitespace().next().unwrap();
    let o = deskhand(&["resume", run, "--workspace", "ws", "--mode", "act"], tmp.path());
    assert_ok(&o);
    assert_eq!(inventories(tmp.path()), ["inventory.csv"]);
}

#[test]
fn deskhand_serve_runs_due_schedules_while_it_is_up() {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir().unwrap();
    workspace(tmp.path());
    add_daily("skip", tmp.path());
    let mut serve = command(&["serve", "--workspace", "ws", "--port", "0"], tmp.path())
        .env("DESKHAND_NOW", "2026-03-02T07:01:00Z")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // It looks at once, then every minute; its report is on its output.
    // (A reader thread, so a server that never says it is stopped, not waited on for ever.)
    let out = serve.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(180)) {
        let ran = line.contains("due Mon 2026-03-02 08:00 CET: ran, run run-");
        seen.push(line);
        if ran {
            break;
        }
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert!(seen.iter().any(|l| l.contains(": ran, run run-")), "{seen:?}");
    assert_eq!(inventories(tmp.path()), ["inventory.csv"]);
}
