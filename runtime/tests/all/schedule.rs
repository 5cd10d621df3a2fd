//! Schedules through the runtime API: a due occurrence run by
//! `Schedules::run_due` through `launch` with the offline planner, inside
//! and outside its envelope; and the OS job's files read by the programs
//! that will read them (systemd-analyze, python's plistlib and xml.etree).

use std::path::{Path, PathBuf};
use std::process::Command;

use deskhand_runtime::envelope;
use deskhand_runtime::model::config::ModelConfig;
use deskhand_runtime::schedule::{
    self, MissedPolicy, NewSchedule, OccurrenceState, Schedules, Time, Utc, When, os_job, run::RunWith,
};
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::wasm::WasmHost;
use deskhand_types::{Grant, Mode, Task};

use crate::common::{demo, tree};

fn utc(s: &str) -> Time<Utc> {
    schedule::parse_time(s).unwrap()
}

fn own_toolbox() -> Toolbox {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    Toolbox::new(WasmHost::new(Some(cache)).unwrap())
}

/// Saves `task` every day at 08:00 in Berlin with the envelope drafted for
/// `approved` (the same task, or what the person approved before it changed),
/// and runs what is due on Monday 2026-03-02 at 08:01 there.
fn run_monday(task: &str, approved: &str) -> (crate::common::Demo, Schedules, i64) {
    let d = demo();
    let grants = vec![Grant::read_only("projects")];
    let mut tb = own_toolbox();
    let approved = Task {
        outcome: approved.into(),
        grants: grants.clone(),
        mode: Mode::Act,
        params: Default::default(),
    };
    let envelope = envelope::draft(&d.ws, &approved, &ModelConfig::default(), None, &mut tb).unwrap();
    let path = d.ws.root().parent().unwrap().join("config/schedules.sqlite");
    let mut store = Schedules::open(&path).unwrap();
    let s = store
        .add(
            &NewSchedule {
                task: task.into(),
                phrase: None,
                when: When::new("0 8 * * *", "Europe/Berlin").unwrap(),
                workspace: d.ws.root().to_path_buf(),
                grants,
                mode: Mode::Act,
                missed: MissedPolicy::Skip,
                envelope: Some(envelope),
            },
            utc("2026-03-02T06:00:00Z"),
        )
        .unwrap();
    let report = store
        .run_due(utc("2026-03-02T07:01:00Z"), "test", &mut |s, o| {
            let with = RunWith {
                config: ModelConfig::default(),
                config_dir: None,
                shell: None,
                warn: &|w| panic!("{w}"),
                observer: None,
                started: Some(schedule::run::recorder(path.clone(), o.id, "test".into())),
                stop: None,
            };
            schedule::run::outcome(&schedule::run::launch_unattended(&d.ws, &mut tb, s, o, with))
        })
        .unwrap();
    assert_eq!(report.ran.len(), 1);
    (d, store, s.id)
}

#[test]
fn a_due_schedule_runs_its_approved_plan_unattended() {
    let task = "Make a file inventory of projects/receipts";
    let (d, store, id) = run_monday(task, task);
    let o = &store.occurrences(id, 1).unwrap()[0];
    assert_eq!(o.state, OccurrenceState::Ran, "{:?}", o.note);
    let run = o.run.clone().unwrap();
    assert!(d.ws.root().join("output/inventory.csv").is_file());
    assert_eq!(d.ws.journal().task(&run).unwrap().unwrap().outcome, task);
}

#[test]
fn a_scheduled_run_whose_plan_left_its_envelope_stops_for_the_person_and_changes_nothing() {
    // Approved for the receipts; the plan for the whole of projects/ is another plan.
    let (d, store, id) = run_monday(
        "Make a file inventory of projects",
        "Make a file inventory of projects/receipts",
    );
    let o = &store.occurrences(id, 1).unwrap()[0];
    assert_eq!(o.state, OccurrenceState::NeedsYou, "{:?}", o.note);
    let note = o.note.clone().unwrap();
    assert!(!note.is_empty(), "it says what it needed");
    let run = o.run.clone().unwrap();
    let status = d.ws.journal().task(&run).unwrap().unwrap().status;
    assert_eq!(status, "needs_input", "resumable, as a run waiting for the person");
    let output: Vec<String> = tree(&d.ws.root().join("output")).into_keys().collect();
    assert!(!output.iter().any(|f| f.starts_with("inventory")), "{output:?}");
}

/// The files for every OS, made with this test binary as the program.
fn job_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let xdg = dir.join("config home");
    let service = dir.join("deskhand-schedules.service");
    let timer = dir.join("deskhand-schedules.timer");
    let plist = dir.join("dev.deskhand.schedules.plist");
    let xml = dir.join("run-due-schedules.xml");
    std::fs::write(&service, os_job::systemd_service(&exe, Some(&xdg))).unwrap();
    std::fs::write(&timer, os_job::systemd_timer()).unwrap();
    std::fs::write(&plist, os_job::launchd_plist(&exe, Some(&xdg), Path::new("/Users/ana"))).unwrap();
    std::fs::write(&xml, os_job::utf16_with_bom(&os_job::windows_task(&exe))).unwrap();
    (service, timer, plist, xml)
}

#[test]
fn the_os_job_files_read_as_each_os_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (service, timer, plist, xml) = job_files(tmp.path());
    let exe = std::env::current_exe().unwrap().display().to_string();

    let verify = Command::new("systemd-analyze")
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
    // systemd reads the timer as every five minutes.
    let calendar = Command::new("systemd-analyze")
        .args([
            "calendar",
            "--iterations=3",
            "--base-time=2026-03-02 08:01:00 UTC",
            "*-*-* *:00/5:00",
        ])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let calendar = String::from_utf8_lossy(&calendar.stdout);
    for next in ["08:05:00", "08:10:00", "08:15:00"] {
        assert!(calendar.contains(next), "{calendar}");
    }

    let python = |script: &str, file: &Path| {
        let o = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(file)
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let agent = python(
        "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        &plist,
    );
    assert_eq!(agent["Label"], "dev.deskhand.schedules");
    assert_eq!(
        agent["ProgramArguments"],
        serde_json::json!([exe, "schedule", "run-due"])
    );
    assert_eq!(agent["StartInterval"], 300);
    assert_eq!(agent["RunAtLoad"], true);
    assert_eq!(
        agent["EnvironmentVariables"]["XDG_CONFIG_HOME"],
        tmp.path().join("config home").display().to_string()
    );

    let task = python(
        r#"
import json, sys, xml.etree.ElementTree as ET
ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
root = ET.parse(sys.argv[1]).getroot()
print(json.dumps({
    "command": root.find("t:Actions/t:Exec/t:Command", ns).text,
    "arguments": root.find("t:Actions/t:Exec/t:Arguments", ns).text,
    "logon": root.find("t:Triggers/t:LogonTrigger/t:Repetition/t:Interval", ns).text,
    "every": root.find("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", ns).text,
    "missed": root.find("t:Settings/t:StartWhenAvailable", ns).text,
    "overlap": root.find("t:Settings/t:MultipleInstancesPolicy", ns).text,
}))
"#,
        &xml,
    );
    assert_eq!(
        task,
        serde_json::json!({
            "command": exe,
            "arguments": "schedule run-due",
            "logon": "PT5M",
            "every": "PT5M",
            "missed": "true",
            "overlap": "IgnoreNew",
        })
    );
}
