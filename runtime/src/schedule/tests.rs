//! The store's decisions on a fake clock: missed weeks under each policy,
//! on-time runs, leases, two processes at once, pause, resume and remove.
//! Runs here are recorded, not started (the CLI tests start real ones).

#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

use std::sync::{Arc, Mutex};

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn store() -> (tempfile::TempDir, Schedules) {
    let dir = tempfile::tempdir().unwrap();
    let s = Schedules::open(&dir.path().join("deskhand").join("schedules.sqlite")).unwrap();
    (dir, s)
}

/// Every day at 08:00 in Berlin (07:00Z in March), saved on Monday 2026-03-02 at 06:00Z.
fn daily(s: &Schedules, missed: MissedPolicy) -> Schedule {
    let new = NewSchedule {
        task: "make my briefing from context/notes".into(),
        phrase: Some("every day 08:00".into()),
        when: When::new("0 8 * * *", "Europe/Berlin").unwrap(),
        workspace: PathBuf::from("/home/ana/work"),
        grants: vec![Grant::read_only("context/notes")],
        mode: Mode::Act,
        missed,
        envelope: None,
    };
    s.add(&new, utc("2026-03-02T06:00:00Z")).unwrap()
}

/// The due times a runner was asked to run.
type Seen = Arc<Mutex<Vec<DateTime<Utc>>>>;

/// A runner that records what it was asked to run and says it ran.
fn recorder() -> (Seen, impl FnMut(&Schedule, &Occurrence) -> RunOutcome) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    (seen, move |_: &Schedule, o: &Occurrence| {
        log.lock().unwrap().push(o.due);
        RunOutcome {
            run: Some(RunId(format!("r-{}", o.id))),
            state: OccurrenceState::Ran,
            note: None,
        }
    })
}

fn states(s: &Schedules, id: i64) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = s
        .occurrences(id, 100)
        .unwrap()
        .into_iter()
        .map(|o| (stamp(o.due), o.state.as_str()))
        .collect();
    v.reverse();
    v
}

const WEEK: [&str; 7] = [
    "2026-03-02T07:00:00Z",
    "2026-03-03T07:00:00Z",
    "2026-03-04T07:00:00Z",
    "2026-03-05T07:00:00Z",
    "2026-03-06T07:00:00Z",
    "2026-03-07T07:00:00Z",
    "2026-03-08T07:00:00Z",
];
/// Monday a week later at 07:00 in Berlin, before its 08:00: seven due times passed while nothing ran.
const A_WEEK_LATER: &str = "2026-03-09T06:00:00Z";

#[test]
fn a_missed_week_under_skip_runs_nothing_and_records_each_time() {
    let (_d, mut s) = store();
    let sched = daily(&s, MissedPolicy::Skip);
    let (seen, mut run) = recorder();
    let report = s.run_due(utc(A_WEEK_LATER), "test", &mut run).unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(report.missed, 7);
    assert!(report.notices.is_empty());
    assert_eq!(states(&s, sched.id), WEEK.map(|t| (t.to_owned(), "skipped")));
    // The next due time runs as usual.
    s.run_due(utc("2026-03-10T07:03:00Z"), "test", &mut run).unwrap();
    assert_eq!(*seen.lock().unwrap(), [utc("2026-03-10T07:00:00Z")]);
}

#[test]
fn a_missed_week_under_once_runs_once_for_all_of_it() {
    let (_d, mut s) = store();
    let sched = daily(&s, MissedPolicy::Once);
    let (seen, mut run) = recorder();
    let report = s.run_due(utc(A_WEEK_LATER), "test", &mut run).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [utc(WEEK[6])],
        "one run, for the newest due time"
    );
    assert_eq!(report.ran.len(), 1);
    let (_, o) = &report.ran[0];
    assert_eq!((o.state, o.covers), (OccurrenceState::Ran, 7));
    assert!(
        o.note.as_deref().unwrap().contains("7 due times missed"),
        "{:?}",
        o.note
    );
    let mut want: Vec<_> = WEEK.map(|t| (t.to_owned(), "coalesced")).to_vec();
    want[6].1 = "ran";
    assert_eq!(states(&s, sched.id), want);
    // Waking again runs nothing more.
    s.run_due(utc("2026-03-09T06:05:00Z"), "test", &mut run).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_missed_week_under_notify_runs_nothing_and_tells_the_person_once() {
    let (_d, mut s) = store();
    let sched = daily(&s, MissedPolicy::Notify);
    let (seen, mut run) = recorder();
    let report = s.run_due(utc(A_WEEK_LATER), "test", &mut run).unwrap();
    assert!(seen.lock().unwrap().is_empty());
    let told: Vec<_> = report.notices.iter().map(|(s, o)| (s.id, o.due)).collect();
    assert_eq!(told, WEEK.map(|t| (sched.id, utc(t))));
    assert_eq!(states(&s, sched.id), WEEK.map(|t| (t.to_owned(), "missed")));
    let again = s.run_due(utc("2026-03-09T06:05:00Z"), "test", &mut run).unwrap();
    assert!(again.notices.is_empty(), "each missed time is told once");
}

#[test]
fn an_on_time_due_time_runs_once_and_the_times_before_it_follow_the_policy() {
    let (_d, mut s) = store();
    let sched = daily(&s, MissedPolicy::Skip);
    let (seen, mut run) = recorder();
    // Before the first due time: nothing.
    s.run_due(utc("2026-03-02T06:59:00Z"), "test", &mut run).unwrap();
    assert!(seen.lock().unwrap().is_empty());
    // Three minutes late is on time; the OS job waking again runs nothing twice.
    for now in ["2026-03-02T07:03:00Z", "2026-03-02T07:08:00Z", "2026-03-02T07:13:00Z"] {
        s.run_due(utc(now), "test", &mut run).unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), [utc(WEEK[0])]);
    // Off for two days, back five minutes after Thursday's time: Thursday runs, the two before are skipped.
    s.run_due(utc("2026-03-05T07:05:00Z"), "test", &mut run).unwrap();
    assert_eq!(*seen.lock().unwrap(), [utc(WEEK[0]), utc(WEEK[3])]);
    assert_eq!(
        states(&s, sched.id),
        [
            (WEEK[0].to_owned(), "ran"),
            (WEEK[1].to_owned(), "skipped"),
            (WEEK[2].to_owned(), "skipped"),
            (WEEK[3].to_owned(), "ran")
        ]
    );
}

#[test]
fn a_claim_holds_while_renewed_and_expires_when_its_holder_is_gone() {
    let (_d, mut s) = store();
    daily(&s, MissedPolicy::Skip);
    s.decide(utc("2026-03-02T07:01:00Z")).unwrap();
    let t = utc("2026-03-02T07:01:00Z");
    let first = s.claim_next("process A", t).unwrap().unwrap();
    assert_eq!(first.state, OccurrenceState::Running);
    assert!(s.claim_next("process B", t).unwrap().is_none(), "claimed: not twice");
    let one_minute = chrono::Duration::minutes(1);
    assert!(
        s.claim_next("process B", t + one_minute).unwrap().is_none(),
        "the lease holds"
    );
    assert!(s.renew(first.id, "process A", t + one_minute).unwrap());
    assert!(s.record_run(first.id, "process A", &RunId("r-crashed".into())).unwrap());
    assert!(
        !s.record_run(first.id, "process B", &RunId("r-other".into())).unwrap(),
        "not B's"
    );
    assert!(
        s.claim_next("process B", t + one_minute * 2).unwrap().is_none(),
        "renewed, it holds on"
    );
    // A stops renewing (it died): once the lease runs out, B takes the occurrence over.
    let taken = s.claim_next("process B", t + one_minute * 4).unwrap().unwrap();
    assert_eq!(taken.id, first.id);
    assert_eq!(
        taken.run,
        Some(RunId("r-crashed".into())),
        "B resumes A's run rather than starting another"
    );
    assert!(
        !s.renew(first.id, "process A", t + one_minute * 4).unwrap(),
        "A's claim is gone"
    );
    let done = s
        .finish(
            taken.id,
            "process B",
            &RunOutcome {
                run: Some(RunId("r-1".into())),
                state: OccurrenceState::Ran,
                note: None,
            },
        )
        .unwrap();
    assert_eq!((done.state, done.lease_until), (OccurrenceState::Ran, None));
}

#[test]
fn two_processes_waking_together_run_a_due_time_once() {
    let (dir, s) = store();
    daily(&s, MissedPolicy::Once);
    drop(s);
    let path = dir.path().join("deskhand").join("schedules.sqlite");
    let runs = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for who in ["process A", "process B", "process C", "process D"] {
            let (path, runs) = (&path, Arc::clone(&runs));
            scope.spawn(move || {
                let mut s = Schedules::open(path).unwrap();
                s.run_due(utc("2026-03-02T07:02:00Z"), who, &mut |_, o| {
                    runs.lock().unwrap().push((who, o.due));
                    std::thread::sleep(Duration::from_millis(200));
                    RunOutcome {
                        run: None,
                        state: OccurrenceState::Ran,
                        note: None,
                    }
                })
                .unwrap();
            });
        }
    });
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].1, utc(WEEK[0]));
}

#[test]
fn paused_time_is_not_missed_and_remove_forgets_the_schedule() {
    let (_d, mut s) = store();
    let sched = daily(&s, MissedPolicy::Notify);
    let (seen, mut run) = recorder();
    assert!(s.pause(sched.id).unwrap().paused);
    assert!(
        s.get(sched.id)
            .unwrap()
            .next_times(utc(A_WEEK_LATER), 5)
            .unwrap()
            .is_empty()
    );
    let report = s.run_due(utc(A_WEEK_LATER), "test", &mut run).unwrap();
    assert!(seen.lock().unwrap().is_empty() && report.notices.is_empty() && report.missed == 0);
    // A due time decided before the pause does not run after it.
    s.resume(sched.id, utc(A_WEEK_LATER)).unwrap();
    s.decide(utc("2026-03-09T07:00:30Z")).unwrap();
    s.pause(sched.id).unwrap();
    assert_eq!(states(&s, sched.id), [("2026-03-09T07:00:00Z".to_owned(), "skipped")]);
    s.run_due(utc("2026-03-09T07:01:00Z"), "test", &mut run).unwrap();
    assert!(seen.lock().unwrap().is_empty());
    let resumed = s.resume(sched.id, utc("2026-03-09T08:00:00Z")).unwrap();
    assert!(!resumed.paused);
    assert_eq!(
        resumed.next_times(utc("2026-03-09T08:00:00Z"), 2).unwrap(),
        [utc("2026-03-10T07:00:00Z"), utc("2026-03-11T07:00:00Z")]
    );
    s.run_due(utc("2026-03-10T07:01:00Z"), "test", &mut run).unwrap();
    assert_eq!(*seen.lock().unwrap(), [utc("2026-03-10T07:00:00Z")]);
    assert_eq!(s.remove(sched.id).unwrap().id, sched.id);
    assert!(matches!(s.get(sched.id), Err(ScheduleError::NoSuchSchedule { .. })));
    assert!(states(&s, sched.id).is_empty(), "its occurrences went with it");
    assert!(s.list().unwrap().is_empty());
    let e = s.pause(sched.id).unwrap_err().to_string();
    assert!(e.contains("schedule list"), "{e}");
}

#[test]
fn a_schedule_reads_back_as_saved() {
    let (_d, s) = store();
    let saved = daily(&s, MissedPolicy::Once);
    let back = s.get(saved.id).unwrap();
    assert_eq!(back.task, "make my briefing from context/notes");
    assert_eq!(back.describe_when(), "every day 08:00 (0 8 * * *, Europe/Berlin)");
    assert_eq!(
        (back.mode, back.missed, back.paused),
        (Mode::Act, MissedPolicy::Once, false)
    );
    assert_eq!(back.grants, [Grant::read_only("context/notes")]);
    assert_eq!(back.created, utc("2026-03-02T06:00:00Z"));
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn settled_records_are_kept_half_a_year_and_unsettled_ones_until_settled() {
    let (_d, mut s) = store();
    let sched = daily(&s, MissedPolicy::Notify);
    // A missed week, not told yet; then a run stopped for the person.
    s.decide(utc(A_WEEK_LATER)).unwrap();
    s.decide(utc("2026-03-09T07:01:00Z")).unwrap();
    let o = s.claim_next("test", Utc::now()).unwrap().unwrap();
    let stopped = RunOutcome {
        run: Some(RunId("r-1".into())),
        state: OccurrenceState::NeedsYou,
        note: None,
    };
    s.finish(o.id, "test", &stopped).unwrap();
    // Half a year and more later: nothing settled is forgotten before it is told.
    s.decide(utc("2026-10-01T06:00:00Z")).unwrap();
    let kept = |s: &Schedules| {
        s.occurrences(sched.id, 1000)
            .unwrap()
            .into_iter()
            .filter(|o| o.due < utc("2026-03-10T00:00:00Z"))
            .count()
    };
    assert_eq!(kept(&s), 8, "7 missed not yet told, 1 waiting for the person");
    let told = s.take_notices().unwrap();
    assert!(told.len() > 7);
    s.decide(utc("2026-10-01T06:05:00Z")).unwrap();
    assert_eq!(kept(&s), 1, "only the run waiting for the person");
}

/// A claim whose lease ran out while its holder lives (a laptop asleep
/// through it) is not taken over; once the holder is gone, it is.
#[cfg(target_os = "linux")]
#[test]
fn a_lease_that_ran_out_is_not_taken_from_a_holder_still_running_here() {
    let (_d, mut s) = store();
    daily(&s, MissedPolicy::Skip);
    s.decide(utc("2026-03-02T07:01:00Z")).unwrap();
    let mut sleeper = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let holder = this_process().replacen(&std::process::id().to_string(), &sleeper.id().to_string(), 1);
    let t = Utc::now();
    let first = s.claim_next(&holder, t).unwrap().unwrap();
    let later = t + chrono::Duration::minutes(10);
    assert!(
        s.claim_next("process B", later).unwrap().is_none(),
        "its holder still runs"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(s.claim_next("process B", later).unwrap().unwrap().id, first.id);
}
