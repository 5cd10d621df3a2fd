//! Scheduled tasks: a task that runs on its own at the times a cron
//! expression names in an IANA zone, decided by deskhand, not by the OS.
//!
//! One per-user SQLite database ([`Schedules`]) holds every workspace's
//! schedules and each occurrence (a schedule's due time) decided so far.
//! One OS job ([`os_job`]) or a running `deskhand serve` calls
//! [`Schedules::run_due`] every few minutes. What holds:
//! - **Exactly once.** An occurrence is a row, UNIQUE(schedule, due); rows
//!   are decided in one IMMEDIATE transaction (a second process waking at
//!   the same time finds them decided), and a process runs one only after
//!   claiming it in one conditional statement with a lease, renewed while
//!   it runs. A lease its holder stopped renewing (the process died)
//!   expires, unless the holder is seen still running on this machine (a
//!   laptop that slept), and the next `run_due` takes the occurrence over,
//!   resuming the run it had started ([`Schedules::record_run`]).
//! - **Missed runs follow the schedule's policy** ([`MissedPolicy`]): a due
//!   time more than [`ON_TIME`] in the past when deskhand first sees it was
//!   missed (the machine was off or asleep): skipped and recorded, coalesced
//!   with the rest into one run, or recorded and the person told.
//! - **Paused time is not missed time**: a paused schedule's due times are
//!   passed over, and resuming starts from then.
//! - The record of settled occurrences is kept [`KEEP_RECORD_DAYS`].
//! - **Times** ([`when`]): DST is deliberate, see its `//!`.
//! - **One way in**: every front end checks and plans a new schedule with
//!   [`prepare()`] (its times, grants, envelope, and the hash of what the
//!   person saw) and saves what it prepared.
//! - A scheduled run has no person to ask: [`run::launch_unattended`]
//!   starts it with the schedule's approved envelope and a gate that never
//!   waits; what it needed and could not get, it says in its journal.

pub mod os_job;
pub mod prepare;
pub mod run;
pub mod when;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use deskhand_types::{Grant, Mode, RunId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// The times a schedule deals in, for front ends that do not use chrono themselves.
pub use chrono::{DateTime as Time, Utc};
pub use chrono_tz::Tz;
pub use prepare::{Asked, LocalTime, Planning, Prepared, Timing, grants_words, prepare};
pub use when::{PHRASES, When, in_zone, parse_zone, phrase_to_cron};

pub use crate::envelope::Envelope;

/// How long after its due time an occurrence still counts as on time. The
/// OS job wakes every five minutes; a due time older than this when
/// deskhand first sees it was missed.
pub const ON_TIME: Duration = Duration::from_secs(10 * 60);

/// How long a claim holds without renewal. The running process renews it
/// every quarter of this; a claim not renewed for this long is taken over.
pub const LEASE: Duration = Duration::from_secs(120);

/// Due times looked at per schedule in one `run_due`; a longer gap (a
/// every-minute schedule on a machine that was off for weeks) records the
/// newest of them and counts the rest.
const MAX_DUE_PER_WAKE: usize = 10_000;

/// How long the record of a settled occurrence is kept (a run's own record
/// stays in its workspace's journal). A run stopped for the person, and a
/// missed time not yet told, are kept until settled.
pub const KEEP_RECORD_DAYS: i64 = 180;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "deskhand does not know the phrase {phrase:?}. Phrases that work: {}. Or give a cron expression such as \"0 8 * * 1-5\" (--cron on the command line)",
        PHRASES
    )]
    BadPhrase { phrase: String },
    #[error(
        "the cron expression {cron:?} cannot be used: {problem}. A cron expression has five fields, minute hour \
         day-of-month month day-of-week, e.g. \"0 8 * * 1-5\" (8:00 on weekdays)"
    )]
    BadCron { cron: String, problem: String },
    #[error("{}", unknown_zone(zone, suggestions))]
    UnknownZone { zone: String, suggestions: Vec<String> },
    #[error(
        "the task is empty: say what should be done each time, e.g. \"make my briefing from the notes in context/\""
    )]
    EmptyTask,
    #[error(
        "the granted folder {folder} does not exist in {} (or is not a folder). Nothing was saved. Check the name \
         (a relative path is read from the workspace) or create the folder first",
        .workspace.display()
    )]
    NoFolder { folder: String, workspace: PathBuf },
    #[error("{source}")]
    Grants { source: Box<crate::Error> },
    #[error("{}. Nothing was saved", cannot_schedule(source))]
    Unplannable { source: Box<crate::Error> },
    #[error("there is no schedule {id}; `deskhand schedule list` shows them")]
    NoSuchSchedule { id: i64 },
    #[error("the schedule database {}: {source}. Check that the folder is writable; nothing was changed", .path.display())]
    Database { path: PathBuf, source: rusqlite::Error },
    #[error("cannot create the folder {} for the schedule database: {source}", .path.display())]
    Folder { path: PathBuf, source: std::io::Error },
    #[error("the schedule database {} holds a row this deskhand cannot read ({what}); it was written by another version", .path.display())]
    Corrupt { path: PathBuf, what: String },
}

fn cannot_schedule(e: &crate::Error) -> String {
    let said = e.to_string();
    if said.contains("cannot be scheduled as it stands") {
        said
    } else {
        format!("the task cannot be scheduled as it stands: {said}")
    }
}

fn unknown_zone(zone: &str, suggestions: &[String]) -> String {
    let hint = match suggestions {
        [] => "Give an IANA zone name such as Europe/Berlin, America/New_York or UTC".to_owned(),
        [one] => format!("Did you mean {one}?"),
        many => format!("Did you mean one of {}?", many.join(", ")),
    };
    format!("{zone:?} is not a time zone deskhand knows. {hint}")
}

/// What to do with due times that passed while nothing could run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Record them as skipped; run again at the next due time.
    Skip,
    /// Run once on wake for all of them together.
    Once,
    /// Record them and tell the person; run nothing.
    Notify,
}

impl MissedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::Once => "once",
            MissedPolicy::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<MissedPolicy> {
        [MissedPolicy::Skip, MissedPolicy::Once, MissedPolicy::Notify]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// What the policy does, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skipped (recorded; the next due time runs)",
            MissedPolicy::Once => "run once when deskhand wakes, all missed times together",
            MissedPolicy::Notify => "recorded and you are told; nothing runs",
        }
    }
}

/// A saved schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub id: i64,
    /// The task, in the person's words.
    pub task: String,
    /// The phrase the person gave (`--every`), if they gave one.
    pub phrase: Option<String>,
    pub cron: String,
    /// An IANA zone name.
    pub zone: String,
    /// The workspace's folder, absolute.
    pub workspace: PathBuf,
    pub grants: Vec<Grant>,
    pub mode: Mode,
    pub missed: MissedPolicy,
    pub paused: bool,
    /// What its runs may do, as approved; None: no envelope (its runs stop at
    /// whatever the policy would ask a person).
    pub envelope: Option<Envelope>,
    #[serde(serialize_with = "as_rfc3339")]
    pub created: DateTime<Utc>,
}

impl Schedule {
    pub fn when(&self) -> Result<When, ScheduleError> {
        When::new(&self.cron, &self.zone)
    }

    /// How the schedule's times read: the phrase, or the cron expression.
    pub fn describe_when(&self) -> String {
        match &self.phrase {
            Some(p) => format!("{p} ({}, {})", self.cron, self.zone),
            None => match self.when() {
                Ok(w) => format!("cron {} ({}): {}", self.cron, self.zone, w.describe()),
                Err(_) => format!("cron {} ({})", self.cron, self.zone),
            },
        }
    }

    /// `t` as a person in the schedule's zone reads it ("Mon 2026-03-09 08:00 CET").
    pub fn local(&self, t: DateTime<Utc>) -> String {
        match self.when() {
            Ok(w) => w.local(t),
            Err(_) => stamp(t),
        }
    }

    /// The next `n` run times after `after` (none while paused).
    pub fn next_times(&self, after: DateTime<Utc>, n: usize) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        if self.paused {
            return Ok(Vec::new());
        }
        self.when()?.next_times(after, n)
    }
}

/// A schedule to save.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub task: String,
    pub phrase: Option<String>,
    pub when: When,
    pub workspace: PathBuf,
    pub grants: Vec<Grant>,
    pub mode: Mode,
    pub missed: MissedPolicy,
    pub envelope: Option<Envelope>,
}

/// What became of one due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OccurrenceState {
    /// Decided to run; not claimed yet.
    Due,
    /// A process holds it and is running it (see `lease_until`).
    Running,
    /// Its run finished.
    Ran,
    /// Its run stopped for the person (outside its envelope, a question); resumable.
    NeedsYou,
    /// Its run failed, or could not start.
    Failed,
    /// Missed, and the policy skips missed times.
    Skipped,
    /// Missed, and run together with a later occurrence (`covered_by`).
    Coalesced,
    /// Missed, and the policy tells the person.
    Missed,
}

impl OccurrenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            OccurrenceState::Due => "due",
            OccurrenceState::Running => "running",
            OccurrenceState::Ran => "ran",
            OccurrenceState::NeedsYou => "needs_you",
            OccurrenceState::Failed => "failed",
            OccurrenceState::Skipped => "skipped",
            OccurrenceState::Coalesced => "coalesced",
            OccurrenceState::Missed => "missed",
        }
    }

    fn parse(s: &str) -> Option<OccurrenceState> {
        use OccurrenceState::*;
        [Due, Running, Ran, NeedsYou, Failed, Skipped, Coalesced, Missed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// For a person: "ran", "stopped for you", ...
    pub fn describe(self) -> &'static str {
        match self {
            OccurrenceState::Due => "due, not started yet",
            OccurrenceState::Running => "running",
            OccurrenceState::Ran => "ran",
            OccurrenceState::NeedsYou => "stopped for you",
            OccurrenceState::Failed => "failed",
            OccurrenceState::Skipped => "missed, skipped",
            OccurrenceState::Coalesced => "missed, run together with a later time",
            OccurrenceState::Missed => "missed, not run",
        }
    }
}

/// One due time of a schedule and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Occurrence {
    pub id: i64,
    pub schedule: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub due: DateTime<Utc>,
    pub state: OccurrenceState,
    /// How many due times this run stands for (more than 1: missed times coalesced into it).
    pub covers: u32,
    pub run: Option<RunId>,
    /// What happened, in the person's words (a failure, the question it stopped at).
    pub note: Option<String>,
    #[serde(serialize_with = "maybe_rfc3339")]
    pub lease_until: Option<DateTime<Utc>>,
}

/// What a run an occurrence started came to.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run: Option<RunId>,
    /// Ran, NeedsYou or Failed.
    pub state: OccurrenceState,
    pub note: Option<String>,
}

/// What one [`Schedules::run_due`] did.
#[derive(Debug, Default, Clone)]
pub struct DueReport {
    /// The occurrences this process ran, with what became of them.
    pub ran: Vec<(Schedule, Occurrence)>,
    /// Missed times the person is to be told about (notify policy), once each.
    pub notices: Vec<(Schedule, Occurrence)>,
    /// Missed times recorded as skipped or coalesced in this wake.
    pub missed: usize,
}

/// The per-user schedule database.
pub struct Schedules {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    phrase TEXT,
    cron TEXT NOT NULL,
    zone TEXT NOT NULL,
    workspace TEXT NOT NULL,
    grants TEXT NOT NULL,
    mode TEXT NOT NULL,
    missed TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    envelope TEXT,
    created TEXT NOT NULL,
    -- Due times up to here are decided (rows in occurrences, or passed over while paused).
    decided_until TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS occurrences (
    id INTEGER PRIMARY KEY,
    schedule INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    due TEXT NOT NULL,
    state TEXT NOT NULL,
    covers INTEGER NOT NULL DEFAULT 1,
    covered_by INTEGER,
    holder TEXT,
    lease_until TEXT,
    run TEXT,
    note TEXT,
    notified INTEGER NOT NULL DEFAULT 0,
    UNIQUE(schedule, due)
);
CREATE INDEX IF NOT EXISTS occurrences_state ON occurrences(state);
";

fn as_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&stamp(*t))
}

fn maybe_rfc3339<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&stamp(*t)),
        None => s.serialize_none(),
    }
}

/// An RFC 3339 time (`DESKHAND_NOW`, the test clock) in UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    unstamp(s.trim())
}

/// A time as stored: RFC 3339 in UTC to the second, so text order is time order.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn unstamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Ask => "ask",
        Mode::Act => "act",
    }
}

const SCHEDULE_COLUMNS: &str =
    "id, task, phrase, cron, zone, workspace, grants, mode, missed, paused, envelope, created";
const OCCURRENCE_COLUMNS: &str = "id, schedule, due, state, covers, run, note, lease_until";

impl Schedules {
    /// The database file in the user's config folder.
    pub fn default_path(config_dir: &Path) -> PathBuf {
        config_dir.join("schedules.sqlite")
    }

    /// Opens (creating it and its folder if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Schedules, ScheduleError> {
        let db = |source| ScheduleError::Database {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ScheduleError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(db)?;
        // Processes wake together: wait for each other's short transactions.
        conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Schedules {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> ScheduleError + '_ {
        |source| ScheduleError::Database {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: impl Into<String>) -> ScheduleError {
        ScheduleError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// Saves a schedule; its first due time is the first after `now`.
    pub fn add(&self, new: &NewSchedule, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let grants = serde_json::to_string(&new.grants).map_err(|e| self.corrupt(e.to_string()))?;
        let envelope = match &new.envelope {
            Some(e) => Some(serde_json::to_string(e).map_err(|e| self.corrupt(e.to_string()))?),
            None => None,
        };
        self.conn
            .execute(
                "INSERT INTO schedules (task, phrase, cron, zone, workspace, grants, mode, missed, envelope, created, decided_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                params![
                    new.task,
                    new.phrase,
                    new.when.cron(),
                    new.when.zone(),
                    new.workspace.to_string_lossy(),
                    grants,
                    mode_str(new.mode),
                    new.missed.as_str(),
                    envelope,
                    stamp(now),
                ],
            )
            .map_err(self.db())?;
        self.get(self.conn.last_insert_rowid())
    }

    /// Every schedule, oldest first.
    pub fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id"))
            .map_err(self.db())?;
        let rows = stmt
            .query_map([], raw_schedule)
            .map_err(self.db())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.db())?;
        rows.into_iter().map(|r| self.schedule(r)).collect()
    }

    pub fn get(&self, id: i64) -> Result<Schedule, ScheduleError> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?1"),
                [id],
                raw_schedule,
            )
            .optional()
            .map_err(self.db())?
            .ok_or(ScheduleError::NoSuchSchedule { id })?;
        self.schedule(raw)
    }

    fn schedule(&self, r: RawSchedule) -> Result<Schedule, ScheduleError> {
        Ok(Schedule {
            id: r.id,
            grants: serde_json::from_str(&r.grants).map_err(|e| self.corrupt(format!("grants: {e}")))?,
            mode: match r.mode.as_str() {
                "act" => Mode::Act,
                "ask" => Mode::Ask,
                other => return Err(self.corrupt(format!("mode {other:?}"))),
            },
            missed: MissedPolicy::parse(&r.missed).ok_or_else(|| self.corrupt(format!("missed {:?}", r.missed)))?,
            envelope: match r.envelope {
                Some(e) => Some(serde_json::from_str(&e).map_err(|e| self.corrupt(format!("envelope: {e}")))?),
                None => None,
            },
            created: unstamp(&r.created).ok_or_else(|| self.corrupt(format!("created {:?}", r.created)))?,
            task: r.task,
            phrase: r.phrase,
            cron: r.cron,
            zone: r.zone,
            workspace: PathBuf::from(r.workspace),
            paused: r.paused,
        })
    }

    /// Stops a schedule from running until [`Schedules::resume`].
    /// A due time decided but not yet started is skipped.
    pub fn pause(&self, id: i64) -> Result<Schedule, ScheduleError> {
        self.get(id)?;
        let tx = self.conn.unchecked_transaction().map_err(self.db())?;
        tx.execute("UPDATE schedules SET paused = 1 WHERE id = ?1", [id])
            .and_then(|_| {
                tx.execute(
                    "UPDATE occurrences SET state = 'skipped', note = 'paused before it ran'
                     WHERE schedule = ?1 AND state = 'due'",
                    [id],
                )
            })
            .and_then(|_| tx.commit())
            .map_err(self.db())?;
        self.get(id)
    }

    /// Runs a paused schedule again from its first due time after `now`
    /// (the time it was paused is not missed time).
    pub fn resume(&self, id: i64, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let s = self.get(id)?;
        if s.paused {
            self.conn
                .execute(
                    "UPDATE schedules SET paused = 0, decided_until = max(decided_until, ?2) WHERE id = ?1",
                    params![id, stamp(now)],
                )
                .map_err(self.db())?;
        }
        self.get(id)
    }

    /// Deletes a schedule and its record of occurrences (runs stay in their workspace's journal).
    pub fn remove(&self, id: i64) -> Result<Schedule, ScheduleError> {
        let s = self.get(id)?;
        self.conn
            .execute("DELETE FROM schedules WHERE id = ?1", [id])
            .map_err(self.db())?;
        Ok(s)
    }

    /// A schedule's occurrences, newest first, at most `limit`.
    pub fn occurrences(&self, schedule: i64, limit: usize) -> Result<Vec<Occurrence>, ScheduleError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE schedule = ?1 ORDER BY due DESC, id DESC LIMIT ?2"
            ))
            .map_err(self.db())?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![schedule, limit], raw_occurrence)
            .map_err(self.db())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.db())?;
        rows.into_iter().map(|r| self.occurrence(r)).collect()
    }

    fn occurrence(&self, r: RawOccurrence) -> Result<Occurrence, ScheduleError> {
        Ok(Occurrence {
            id: r.id,
            schedule: r.schedule,
            due: unstamp(&r.due).ok_or_else(|| self.corrupt(format!("due {:?}", r.due)))?,
            state: OccurrenceState::parse(&r.state).ok_or_else(|| self.corrupt(format!("state {:?}", r.state)))?,
            covers: u32::try_from(r.covers).unwrap_or(1),
            run: r.run.map(RunId),
            note: r.note,
            lease_until: r.lease_until.as_deref().and_then(unstamp),
        })
    }

    /// Decides every schedule's due times up to `now` (see the module's
    /// `//!`): rows for the on-time ones to run and for missed ones as
    /// their policy says. One IMMEDIATE transaction: a second process
    /// doing the same waits, then finds nothing left to decide.
    pub fn decide(&mut self, now: DateTime<Utc>) -> Result<usize, ScheduleError> {
        let schedules = self.list()?;
        let path = self.path.clone();
        let db = |source| ScheduleError::Database {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut missed = 0;
        for s in schedules {
            let decided: String = tx
                .query_row("SELECT decided_until FROM schedules WHERE id = ?1", [s.id], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            let Some(from) = unstamp(&decided) else {
                continue;
            };
            if from >= now {
                continue;
            }
            tx.execute(
                "UPDATE schedules SET decided_until = ?2 WHERE id = ?1",
                params![s.id, stamp(now)],
            )
            .map_err(db)?;
            if s.paused {
                continue;
            }
            // A schedule whose expression no longer parses (another version wrote it) runs nothing.
            let Ok(when) = s.when() else { continue };
            let mut due = std::collections::VecDeque::new();
            let mut t = from;
            let mut beyond = 0usize;
            while let Ok(next) = when.next_after(t) {
                if next > now {
                    break;
                }
                if due.len() == MAX_DUE_PER_WAKE {
                    due.pop_front();
                    beyond += 1;
                }
                due.push_back(next);
                t = next;
            }
            let due = Vec::from(due);
            let Some(&newest) = due.last() else { continue };
            let on_time = now
                .signed_duration_since(newest)
                .to_std()
                .is_ok_and(|late| late <= ON_TIME);
            let (late, current) = if on_time {
                (&due[..due.len() - 1], Some(newest))
            } else {
                (&due[..], None)
            };
            let insert = |due: DateTime<Utc>, state: OccurrenceState, covers: usize, note: Option<String>| {
                let covers = i64::try_from(covers).unwrap_or(i64::MAX);
                tx.execute(
                    "INSERT INTO occurrences (schedule, due, state, covers, note) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(schedule, due) DO NOTHING",
                    params![s.id, stamp(due), state.as_str(), covers, note],
                )
                .map_err(db)
            };
            let counted = |n: usize| {
                if beyond > 0 {
                    format!("{n} (and {beyond} earlier)")
                } else {
                    n.to_string()
                }
            };
            match s.missed {
                MissedPolicy::Skip | MissedPolicy::Notify => {
                    let state = if s.missed == MissedPolicy::Skip {
                        OccurrenceState::Skipped
                    } else {
                        OccurrenceState::Missed
                    };
                    for &t in late {
                        insert(t, state, 1, None)?;
                    }
                    missed += late.len() + beyond;
                    if let Some(t) = current {
                        insert(t, OccurrenceState::Due, 1, None)?;
                    }
                }
                MissedPolicy::Once => {
                    let total = due.len() + beyond;
                    let note = (total > 1).then(|| {
                        format!(
                            "one run for {} due times missed while deskhand could not run",
                            counted(if on_time { due.len() - 1 } else { due.len() })
                        )
                    });
                    insert(newest, OccurrenceState::Due, total, note)?;
                    let runner: i64 = tx
                        .query_row(
                            "SELECT id FROM occurrences WHERE schedule = ?1 AND due = ?2",
                            params![s.id, stamp(newest)],
                            |r| r.get(0),
                        )
                        .map_err(db)?;
                    for &t in &due[..due.len() - 1] {
                        insert(t, OccurrenceState::Coalesced, 1, None)?;
                        tx.execute(
                            "UPDATE occurrences SET covered_by = ?3 WHERE schedule = ?1 AND due = ?2",
                            params![s.id, stamp(t), runner],
                        )
                        .map_err(db)?;
                    }
                    missed += total - 1;
                }
            }
        }
        tx.execute(
            "DELETE FROM occurrences WHERE due < ?1
             AND (state IN ('ran', 'failed', 'skipped', 'coalesced') OR (state = 'missed' AND notified = 1))",
            [stamp(now - chrono::Duration::days(KEEP_RECORD_DAYS))],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(missed)
    }

    /// Claims the oldest occurrence that is due, or whose holder stopped
    /// renewing its lease before `lease_now` and is not still running on
    /// this machine (a laptop that slept through its lease), for `holder`
    /// until `lease_now + LEASE`. Each claim is one conditional statement:
    /// two processes never both get an occurrence.
    pub fn claim_next(&self, holder: &str, lease_now: DateTime<Utc>) -> Result<Option<Occurrence>, ScheduleError> {
        let until = stamp(lease_now + chrono::Duration::from_std(LEASE).unwrap_or_default());
        let due: Option<i64> = self
            .conn
            .query_row(
                "UPDATE occurrences SET state = 'running', holder = ?1, lease_until = ?2
                 WHERE id = (SELECT o.id FROM occurrences o JOIN schedules s ON s.id = o.schedule
                             WHERE s.paused = 0 AND o.state = 'due' ORDER BY o.due, o.id LIMIT 1)
                 RETURNING id",
                params![holder, until],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        if let Some(id) = due {
            return self.occurrence_by_id(id).map(Some);
        }
        let expired: Vec<(i64, Option<String>)> = self
            .conn
            .prepare(
                "SELECT o.id, o.holder FROM occurrences o JOIN schedules s ON s.id = o.schedule
                 WHERE s.paused = 0 AND o.state = 'running' AND o.lease_until < ?1 ORDER BY o.due, o.id",
            )
            .and_then(|mut q| {
                q.query_map([stamp(lease_now)], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(self.db())?;
        for (id, old) in expired {
            if old.as_deref().is_some_and(holder_is_running) {
                continue;
            }
            let taken = self
                .conn
                .execute(
                    "UPDATE occurrences SET holder = ?2, lease_until = ?3
                     WHERE id = ?1 AND state = 'running' AND lease_until < ?4",
                    params![id, holder, until, stamp(lease_now)],
                )
                .map_err(self.db())?;
            if taken == 1 {
                return self.occurrence_by_id(id).map(Some);
            }
        }
        Ok(None)
    }

    /// Claims `schedule`'s run now (`run-now`): an occurrence at `now`,
    /// outside its cron times, held by `holder`.
    pub fn claim_now(&self, schedule: i64, holder: &str, now: DateTime<Utc>) -> Result<Occurrence, ScheduleError> {
        self.get(schedule)?;
        let until = Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO occurrences (schedule, due, state, holder, lease_until, note)
                 VALUES (?1, ?2, 'running', ?3, ?4, 'run now, by the person')",
                params![schedule, stamp(now), holder, stamp(until)],
            )
            .map_err(self.db())?;
        self.occurrence_by_id(self.conn.last_insert_rowid())
    }

    fn occurrence_by_id(&self, id: i64) -> Result<Occurrence, ScheduleError> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {OCCURRENCE_COLUMNS} FROM occurrences WHERE id = ?1"),
                [id],
                raw_occurrence,
            )
            .map_err(self.db())?;
        self.occurrence(raw)
    }

    /// Keeps `holder`'s claim on `occurrence` until `lease_now + LEASE`;
    /// false if it is no longer theirs.
    pub fn renew(&self, occurrence: i64, holder: &str, lease_now: DateTime<Utc>) -> Result<bool, ScheduleError> {
        let until = lease_now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let n = self
            .conn
            .execute(
                "UPDATE occurrences SET lease_until = ?3 WHERE id = ?1 AND holder = ?2 AND state = 'running'",
                params![occurrence, holder, stamp(until)],
            )
            .map_err(self.db())?;
        Ok(n == 1)
    }

    /// Records the run `holder` started for `occurrence`, as soon as it has
    /// an id: a process that takes the occurrence over (its holder died)
    /// resumes that run instead of starting another.
    pub fn record_run(&self, occurrence: i64, holder: &str, run: &RunId) -> Result<bool, ScheduleError> {
        let n = self
            .conn
            .execute(
                "UPDATE occurrences SET run = ?3 WHERE id = ?1 AND holder = ?2 AND state = 'running'",
                params![occurrence, holder, run.0],
            )
            .map_err(self.db())?;
        Ok(n == 1)
    }

    /// Records what `holder`'s run of `occurrence` came to.
    pub fn finish(&self, occurrence: i64, holder: &str, outcome: &RunOutcome) -> Result<Occurrence, ScheduleError> {
        self.conn
            .execute(
                "UPDATE occurrences SET state = ?3, run = ?4, note = coalesce(?5, note), lease_until = NULL
                 WHERE id = ?1 AND holder = ?2",
                params![
                    occurrence,
                    holder,
                    outcome.state.as_str(),
                    outcome.run.as_ref().map(|r| r.0.clone()),
                    outcome.note
                ],
            )
            .map_err(self.db())?;
        self.occurrence_by_id(occurrence)
    }

    /// Missed times under the notify policy not yet told, marked told.
    pub fn take_notices(&self) -> Result<Vec<(Schedule, Occurrence)>, ScheduleError> {
        let ids: Vec<i64> = self
            .conn
            .prepare("UPDATE occurrences SET notified = 1 WHERE state = 'missed' AND notified = 0 RETURNING id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(self.db())?;
        let mut notices = Vec::new();
        for id in ids {
            let o = self.occurrence_by_id(id)?;
            notices.push((self.get(o.schedule)?, o));
        }
        notices.sort_by_key(|(_, o)| (o.schedule, o.due));
        Ok(notices)
    }

    /// Runs every due occurrence once: decides due times up to `now`, then
    /// claims occurrences one by one and runs each through `run` (with its
    /// claim renewed meanwhile), recording what it came to. `now` decides
    /// what is due (a fake clock in tests); leases follow the real clock.
    /// `holder` names this process in its claims.
    pub fn run_due(
        &mut self,
        now: DateTime<Utc>,
        holder: &str,
        run: &mut dyn FnMut(&Schedule, &Occurrence) -> RunOutcome,
    ) -> Result<DueReport, ScheduleError> {
        let missed = self.decide(now)?;
        let mut report = DueReport {
            missed,
            ..DueReport::default()
        };
        while let Some(occurrence) = self.claim_next(holder, Utc::now())? {
            let schedule = self.get(occurrence.schedule)?;
            let outcome = self.with_lease(&occurrence, holder, || run(&schedule, &occurrence))?;
            let done = self.finish(occurrence.id, holder, &outcome)?;
            report.ran.push((schedule, done));
        }
        report.notices = self.take_notices()?;
        Ok(report)
    }

    /// Runs `schedule` now, outside its times, through `run` (`run-now`).
    pub fn run_now(
        &self,
        schedule: i64,
        now: DateTime<Utc>,
        holder: &str,
        run: &mut dyn FnMut(&Schedule, &Occurrence) -> RunOutcome,
    ) -> Result<(Schedule, Occurrence), ScheduleError> {
        let s = self.get(schedule)?;
        let occurrence = self.claim_now(schedule, holder, now)?;
        let outcome = self.with_lease(&occurrence, holder, || run(&s, &occurrence))?;
        let done = self.finish(occurrence.id, holder, &outcome)?;
        Ok((s, done))
    }

    /// Calls `f` while a thread renews `holder`'s claim on `occurrence`
    /// every quarter lease, through a connection of its own.
    fn with_lease<T>(&self, occurrence: &Occurrence, holder: &str, f: impl FnOnce() -> T) -> Result<T, ScheduleError> {
        let renewer = Connection::open(&self.path).map_err(self.db())?;
        renewer.busy_timeout(Duration::from_secs(30)).map_err(self.db())?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let id = occurrence.id;
        Ok(std::thread::scope(|scope| {
            scope.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(LEASE / 4) {
                    let until = Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
                    // A failed renewal is retried at the next tick; the lease is four ticks long.
                    let _ = renewer.execute(
                        "UPDATE occurrences SET lease_until = ?3 WHERE id = ?1 AND holder = ?2 AND state = 'running'",
                        params![id, holder, stamp(until)],
                    );
                }
            });
            let out = f();
            let _ = stop.send(());
            out
        }))
    }
}

/// This process, as claims name it: "deskhand pid 4242 on HOST at TIME".
pub fn this_process() -> String {
    format!(
        "deskhand pid {} on {} at {}",
        std::process::id(),
        host_name().unwrap_or_else(|| "this machine".into()),
        stamp(Utc::now())
    )
}

/// The machine's name, where the OS says it without a call into C.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Whether the process a claim names ([`this_process`]) is alive on this
/// machine: known on Linux (/proc); elsewhere a lease that ran out is
/// taken as its holder gone.
fn holder_is_running(holder: &str) -> bool {
    let mut words = holder.split(' ');
    let pid = words
        .find(|w| *w == "pid")
        .and_then(|_| words.next()?.parse::<u32>().ok());
    let host = holder
        .split_once(" on ")
        .and_then(|(_, rest)| rest.split(" at ").next());
    match (pid, host, host_name()) {
        (Some(pid), Some(host), Some(here)) if host == here && pid != std::process::id() => {
            Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

struct RawSchedule {
    id: i64,
    task: String,
    phrase: Option<String>,
    cron: String,
    zone: String,
    workspace: String,
    grants: String,
    mode: String,
    missed: String,
    paused: bool,
    envelope: Option<String>,
    created: String,
}

fn raw_schedule(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawSchedule> {
    Ok(RawSchedule {
        id: r.get(0)?,
        task: r.get(1)?,
        phrase: r.get(2)?,
        cron: r.get(3)?,
        zone: r.get(4)?,
        workspace: r.get(5)?,
        grants: r.get(6)?,
        mode: r.get(7)?,
        missed: r.get(8)?,
        paused: r.get(9)?,
        envelope: r.get(10)?,
        created: r.get(11)?,
    })
}

struct RawOccurrence {
    id: i64,
    schedule: i64,
    due: String,
    state: String,
    covers: i64,
    run: Option<String>,
    note: Option<String>,
    lease_until: Option<String>,
}

fn raw_occurrence(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawOccurrence> {
    Ok(RawOccurrence {
        id: r.get(0)?,
        schedule: r.get(1)?,
        due: r.get(2)?,
        state: r.get(3)?,
        covers: r.get(4)?,
        run: r.get(5)?,
        note: r.get(6)?,
        lease_until: r.get(7)?,
    })
}

#[cfg(test)]
mod tests;
