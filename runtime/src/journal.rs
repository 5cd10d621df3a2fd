//! The journal: a SQLite database (WAL) in `.deskhand/journal.db` holding
//! tasks, their steps, and an append-only event log. It is the source of
//! truth for what happened; triggers refuse any update or delete of an event.
//! [`Journal::append`] is the one writer of a run's record: the `tasks` and
//! `steps` rows are derived from the events it appends, in the same
//! transaction (step statuses in the events' own words: `in_progress`, `done`).
//!
//! Tables: `tasks`, `steps`, `events`, and (schema 2) `changesets`, `changes`
//! and `trash`, which the changeset engine owns. Commits use
//! `synchronous=NORMAL`; the engine commits changeset intents with `FULL`
//! before any file moves. An event that cannot be appended is remembered per
//! run ([`Journal::lost_event`]): every executor checks it and stops the run
//! with an error that says what was lost, so no event is dropped silently.
//!
//! Subscribers ([`JournalSubscriber`], telemetry) are told of each event
//! after its append committed, in order; a journal picks up the process's
//! ([`set_process_subscriber`]) when it is opened.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use deskhand_types::{Event, Grant, Mode, RunId, Task};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::ids;

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES tasks(id),
    created_at  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    grants      TEXT NOT NULL,
    mode        TEXT NOT NULL DEFAULT 'act',
    model       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL DEFAULT '',
    finished_at TEXT
);
CREATE TABLE steps (
    task_id     TEXT NOT NULL REFERENCES tasks(id),
    seq         INTEGER NOT NULL,
    title       TEXT NOT NULL,
    effects     TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (task_id, seq)
);
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX events_by_task ON events(task_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
";

/// Version 2: changesets (the intents recorded before any file moves), their
/// changes, and the trash.
const SCHEMA_V2: &str = "
CREATE TABLE changesets (
    id          TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks(id),
    step        INTEGER NOT NULL,
    call_id     TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    status      TEXT NOT NULL,
    approved_by TEXT NOT NULL DEFAULT '',
    finished_at TEXT
);
CREATE INDEX changesets_by_task ON changesets(task_id);
CREATE TABLE changes (
    changeset_id TEXT NOT NULL REFERENCES changesets(id),
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    path         TEXT NOT NULL,
    target       TEXT,
    before_hash  TEXT,
    after_hash   TEXT,
    size         INTEGER NOT NULL,
    stamp        TEXT,
    temp         TEXT,
    keep         TEXT,
    new_folders  TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (changeset_id, seq)
);
CREATE TABLE trash (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    original     TEXT NOT NULL,
    stored       TEXT NOT NULL,
    hash         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    trashed_at   TEXT NOT NULL,
    changeset_id TEXT,
    seq          INTEGER,
    reason       TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'held'
);
";

/// A task's status in the journal is the status of its run.
pub use deskhand_types::RunStatus as TaskStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: RunId,
    pub parent: Option<RunId>,
    pub created_at: String,
    pub outcome: String,
    pub status: String,
    pub summary: String,
}

const TASK_COLUMNS: &str = "id, parent_id, created_at, outcome, status, summary";

fn task_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: RunId(r.get(0)?),
        parent: r.get::<_, Option<String>>(1)?.map(RunId),
        created_at: r.get(2)?,
        outcome: r.get(3)?,
        status: r.get(4)?,
        summary: r.get(5)?,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub at: String,
    pub event: Event,
}

/// Creates the journal file if it is missing, mode 0600, and sets 0600 on it
/// and its -wal and -shm files and 0700 on its folder (`.deskhand/`, which
/// also holds the trash, kept versions and tool outputs), whatever the umask.
#[cfg(unix)]
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Whether `event` changes a run's `tasks` or `steps` row.
fn derives_rows(event: &Event) -> bool {
    matches!(
        event,
        Event::RunBegin { .. }
            | Event::RunEnd { .. }
            | Event::Resumed { .. }
            | Event::ModeChanged { .. }
            | Event::PlanUpdated { .. }
            | Event::StepBegin { .. }
            | Event::StepEnd { .. }
    )
}

/// The wire name of a serde enum value (`in_progress`, `ask`): the one
/// vocabulary the rows share with the events.
fn wire_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Inserts `event` and derives the rows it changes; the caller holds the
/// transaction when [`derives_rows`].
fn insert_event(c: &Connection, run: &RunId, event: &Event) -> rusqlite::Result<i64> {
    let body = serde_json::to_string(event).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let now = ids::now();
    if let Event::RunBegin {
        task, model, parent, ..
    } = event
    {
        // The row comes first: the event refers to it.
        c.prepare_cached(
            "INSERT INTO tasks (id, parent_id, created_at, outcome, grants, mode, model, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            run.0,
            parent.as_ref().map(|p| p.0.clone()),
            now,
            task.outcome,
            serde_json::to_string(&task.grants).unwrap_or_else(|_| "[]".into()),
            wire_name(task.mode),
            model,
            TaskStatus::Running.as_str()
        ])?;
    }
    c.prepare_cached("INSERT INTO events (task_id, at, kind, body) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![run.0, now, event.kind(), body])?;
    let seq = c.last_insert_rowid();
    match event {
        Event::RunEnd { status, summary, .. } => {
            c.prepare_cached("UPDATE tasks SET status = ?2, summary = ?3, finished_at = ?4 WHERE id = ?1")?
                .execute(params![run.0, status.as_str(), summary, now])?;
        }
        Event::Resumed { .. } => {
            c.prepare_cached("UPDATE tasks SET status = ?2, summary = '', finished_at = NULL WHERE id = ?1")?
                .execute(params![run.0, TaskStatus::Running.as_str()])?;
        }
        Event::ModeChanged { mode, .. } => {
            c.prepare_cached("UPDATE tasks SET mode = ?2 WHERE id = ?1")?
                .execute(params![run.0, wire_name(mode)])?;
        }
        Event::PlanUpdated { plan } => {
            // Steps keep their times across revisions; a shorter plan drops the rest.
            for (i, step) in plan.steps.iter().enumerate() {
                c.prepare_cached(
                    "INSERT INTO steps (task_id, seq, title, effects, status) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (task_id, seq) DO UPDATE SET title = ?3, effects = ?4, status = ?5",
                )?
                .execute(params![
                    run.0,
                    i64::try_from(i + 1).unwrap_or(i64::MAX),
                    step.title,
                    serde_json::to_string(&step.effects).unwrap_or_default(),
                    wire_name(step.status)
                ])?;
            }
            c.prepare_cached("DELETE FROM steps WHERE task_id = ?1 AND seq > ?2")?
                .execute(params![run.0, i64::try_from(plan.steps.len()).unwrap_or(i64::MAX)])?;
        }
        Event::StepBegin { step, .. } => {
            c.prepare_cached("UPDATE steps SET status = ?3, started_at = ?4 WHERE task_id = ?1 AND seq = ?2")?
                .execute(params![
                    run.0,
                    i64::try_from(step.0).unwrap_or(i64::MAX),
                    wire_name(deskhand_types::StepStatus::InProgress),
                    now
                ])?;
        }
        Event::StepEnd { step, status, .. } => {
            c.prepare_cached("UPDATE steps SET status = ?3, finished_at = ?4 WHERE task_id = ?1 AND seq = ?2")?
                .execute(params![
                    run.0,
                    i64::try_from(step.0).unwrap_or(i64::MAX),
                    wire_name(status),
                    now
                ])?;
        }
        _ => {}
    }
    Ok(seq)
}

/// Told of every event after its append committed, in order (telemetry
/// folds them into spans). It runs on the run's thread: it must be quick,
/// never block on I/O, and never fail the run.
pub trait JournalSubscriber: Send + Sync + std::fmt::Debug {
    fn committed(&self, run: &RunId, event: &Event);
}

static PROCESS_SUBSCRIBER: OnceLock<Arc<dyn JournalSubscriber>> = OnceLock::new();

/// Sets the subscriber every journal this process opens from now on gets
/// (the front end does, once, at start); false if one was already set.
pub fn set_process_subscriber(subscriber: Arc<dyn JournalSubscriber>) -> bool {
    PROCESS_SUBSCRIBER.set(subscriber).is_ok()
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
    subscribers: RwLock<Vec<Arc<dyn JournalSubscriber>>>,
    /// Runs an event of which could not be written, and why: such a run
    /// stops at its next step ([`Journal::lost_event`]), so nothing it does
    /// goes unrecorded.
    lost: Mutex<std::collections::HashMap<String, String>>,
}

impl Journal {
    /// Opens the journal, creating its schema if the file is new.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |e: rusqlite::Error| Error::Journal {
            path: path.into(),
            message: e.to_string(),
        };
        // The journal holds whole conversations: the person's alone, whatever the umask.
        make_private(path).map_err(|e| Error::Journal {
            path: path.into(),
            message: format!("cannot make it private to you (mode 0600): {e}"),
        })?;
        let conn = Connection::open(path).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
        // WAL with synchronous=NORMAL: a commit is in the OS before the call
        // returns, so a killed process (kill -9, a crash) loses nothing; a power
        // cut may lose the last few events but never corrupts the file. The
        // person's files get stronger guarantees from the changeset engine,
        // which fsyncs every step it takes.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(fail)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(fail)?;
        match version {
            0 => {
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA} {SCHEMA_V2} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(fail)?;
            }
            1 => {
                conn.execute_batch(&format!(
                    "BEGIN; {SCHEMA_V2} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(fail)?;
            }
            SCHEMA_VERSION => {}
            newer => {
                return Err(Error::Journal {
                    path: path.into(),
                    message: format!(
                        "it was written by a newer deskhand (schema {newer}, this one knows {SCHEMA_VERSION}); upgrade deskhand"
                    ),
                });
            }
        }
        // SQLite gives its -wal and -shm files the database's mode; an older
        // journal's were made under the umask.
        make_private(path).map_err(|e| Error::Journal {
            path: path.into(),
            message: format!("cannot make it private to you (mode 0600): {e}"),
        })?;
        Ok(Journal {
            path: path.into(),
            conn: Mutex::new(conn),
            subscribers: RwLock::new(PROCESS_SUBSCRIBER.get().cloned().into_iter().collect()),
            lost: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Adds a subscriber to this journal's committed events.
    pub fn subscribe(&self, subscriber: Arc<dyn JournalSubscriber>) {
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(subscriber);
    }

    /// Tells the subscribers of events that committed.
    fn committed<'e>(&self, run: &RunId, events: impl IntoIterator<Item = &'e Event>) {
        let subscribers = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        if subscribers.is_empty() {
            return;
        }
        for event in events {
            for s in subscribers.iter() {
                s.committed(run, event);
            }
        }
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn).map_err(|e| Error::Journal {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Starts a run with no model: a task row and its `RunBegin`, for tests
    /// and benches that only need a run to attach changesets to.
    pub fn begin_task(&self, outcome: &str, grants: &[Grant]) -> Result<RunId> {
        let task = Task {
            outcome: outcome.into(),
            grants: grants.to_vec(),
            mode: Mode::Act,
            params: Default::default(),
        };
        self.begin_run(&task, "", None).map(|(run, _)| run)
    }

    /// Starts a run: makes its id and appends its `RunBegin`, from which its
    /// `tasks` row is derived, in one transaction. Returns the id and the
    /// event, for the caller's observers. A sub-agent is numbered after its
    /// siblings (`parent.3`): ids that cannot collide however many start at
    /// once (the connection is held throughout).
    pub fn begin_run(&self, task: &Task, model: &str, parent: Option<&RunId>) -> Result<(RunId, Event)> {
        let written = self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let id = match parent {
                Some(parent) => {
                    let siblings: i64 = tx.query_row(
                        "SELECT COUNT(*) FROM tasks WHERE parent_id = ?1",
                        params![parent.0],
                        |r| r.get(0),
                    )?;
                    RunId(format!("{}.{}", parent.0, siblings + 1))
                }
                None => ids::run_id(),
            };
            let event = Event::RunBegin {
                run: id.clone(),
                task: task.clone(),
                model: model.into(),
                parent: parent.cloned(),
            };
            insert_event(&tx, &id, &event)?;
            tx.commit()?;
            Ok((id, event))
        });
        if let Err(e) = &written
            && let Some(parent) = parent
        {
            self.remember_lost(parent, "RunBegin (of a sub-agent)", e);
        }
        if let Ok((run, event)) = &written {
            self.committed(run, [event]);
        }
        written
    }

    /// How many sub-agent runs (at any depth) a top-level run has had.
    pub fn descendants(&self, top: &RunId) -> Result<usize> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM tasks WHERE id LIKE ?1",
                params![format!("{}.%", top.0)],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Appends one event of `run`, and brings the run's `tasks` and `steps`
    /// rows up to date with it in the same transaction: this is the one
    /// writer of a run's record. A failure is returned and also remembered
    /// for the run: [`Journal::lost_event`] makes its driver stop it.
    pub fn append(&self, run: &RunId, event: &Event) -> Result<i64> {
        let written = self.with(|c| {
            if !derives_rows(event) {
                return insert_event(c, run, event);
            }
            let tx = c.unchecked_transaction()?;
            let seq = insert_event(&tx, run, event)?;
            tx.commit()?;
            Ok(seq)
        });
        match &written {
            Ok(_) => self.committed(run, [event]),
            Err(e) => self.remember_lost(run, event.kind(), e),
        }
        written
    }

    /// Appends several events of `run` in one transaction (all or none),
    /// deriving rows as [`Journal::append`] does.
    pub fn append_all(&self, run: &RunId, events: &[Event]) -> Result<()> {
        let written = self.with(|c| {
            // Immediate: the write lock is taken at once, so another process
            // writing meanwhile makes this wait (busy timeout) instead of
            // failing on a stale snapshot when it upgrades.
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            for event in events {
                insert_event(&tx, run, event)?;
            }
            tx.commit()
        });
        if let (Err(e), Some(first)) = (&written, events.first()) {
            self.remember_lost(run, first.kind(), e);
        }
        if written.is_ok() {
            self.committed(run, events);
        }
        written
    }

    fn remember_lost(&self, run: &RunId, kind: &str, e: &Error) {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(run.0.clone())
            .or_insert_with(|| {
                let why = match e {
                    Error::Journal { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("its {kind} event could not be written ({why})")
            });
    }

    /// Whether an event of `run` was lost (see [`Journal::lost_event`]).
    pub fn has_lost_event(&self, run: &RunId) -> bool {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&run.0)
    }

    /// Why an event of `run` was lost, if one was, with `what_now` (what
    /// the person can do, which depends on the executor); asking clears it
    /// (a resumed run starts with a clean slate).
    pub fn lost_event(&self, run: &RunId, what_now: &str) -> Option<Error> {
        let why = self.lost.lock().unwrap_or_else(|p| p.into_inner()).remove(&run.0)?;
        Some(Error::Journal {
            path: self.path.clone(),
            message: format!(
                "run {} was stopped because {why}; nothing it does may go unrecorded. {what_now}",
                run.0
            ),
        })
    }

    pub fn tasks(&self) -> Result<Vec<TaskRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!("SELECT {TASK_COLUMNS} FROM tasks ORDER BY created_at, id"))?;
            stmt.query_map([], task_row)?.collect()
        })
    }

    pub fn task(&self, run: &RunId) -> Result<Option<TaskRow>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"),
                [&run.0],
                task_row,
            )
            .optional()
        })
    }

    /// The grants a run was started with.
    pub fn task_grants(&self, run: &RunId) -> Result<Vec<Grant>> {
        let text: Option<String> = self.with(|c| {
            c.query_row("SELECT grants FROM tasks WHERE id = ?1", [&run.0], |r| r.get(0))
                .optional()
        })?;
        let text = text.ok_or_else(|| Error::UnknownRun { run: run.0.clone() })?;
        serde_json::from_str(&text).map_err(|e| Error::Journal {
            path: self.path.clone(),
            message: format!("the grants of {run} are unreadable: {e}"),
        })
    }

    /// The sub-agent runs a run started, oldest first.
    pub fn children(&self, run: &RunId) -> Result<Vec<TaskRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE parent_id = ?1 ORDER BY created_at, id"
            ))?;
            stmt.query_map([&run.0], task_row)?.collect()
        })
    }

    /// A run's events in the order they happened. An event whose body this
    /// version cannot read is skipped rather than failing the whole listing.
    pub fn events(&self, run: &RunId) -> Result<Vec<EventRow>> {
        let rows: Vec<(i64, String, String)> = self.with(|c| {
            let mut stmt = c.prepare("SELECT seq, at, body FROM events WHERE task_id = ?1 ORDER BY seq")?;
            stmt.query_map([&run.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, at, body)| {
                serde_json::from_str(&body)
                    .ok()
                    .map(|event| EventRow { seq, at, event })
            })
            .collect())
    }

    /// Events of a run and its sub-agents after journal position `after`,
    /// in order: (position, run, time, event). Polled by the browser UI's
    /// live view, so a reload or a restart replays from the journal.
    pub fn events_after(&self, run: &RunId, after: i64) -> Result<Vec<(i64, RunId, String, Event)>> {
        let rows: Vec<(i64, String, String, String)> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, task_id, at, body FROM events WHERE seq > ?1 AND (task_id = ?2 OR task_id LIKE ?3) \
                 ORDER BY seq LIMIT 2000",
            )?;
            stmt.query_map(params![after, run.0, format!("{}.%", run.0)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, task, at, body)| serde_json::from_str(&body).ok().map(|e| (seq, RunId(task), at, e)))
            .collect())
    }

    /// SQLite's own check of the file: `Ok(())` or what it found wrong.
    pub fn integrity(&self) -> Result<std::result::Result<(), String>> {
        let rows: Vec<String> = self.with(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })?;
        Ok(if rows == ["ok"] { Ok(()) } else { Err(rows.join("; ")) })
    }

    /// Changesets left half applied or half undone (a crash); the next
    /// command that changes files finishes them.
    pub fn unfinished_changesets(&self) -> Result<usize> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM changesets WHERE status IN ('applying', 'undoing')",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| usize::try_from(n).unwrap_or(0))
    }

    /// Runs raw SQL; for tests that check the log refuses to be rewritten.
    #[doc(hidden)]
    pub fn execute_raw(&self, sql: &str) -> Result<usize> {
        self.with(|c| c.execute(sql, []))
    }
}

#[cfg(test)]
mod tests {
    use deskhand_types::{Plan, PlanStep, RunStatus, StepStatus};

    use super::*;

    fn rows(j: &Journal, run: &RunId) -> (String, String, Vec<(i64, String, String)>) {
        j.with(|c| {
            let (status, mode) = c.query_row("SELECT status, mode FROM tasks WHERE id = ?1", [&run.0], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            let mut stmt = c.prepare("SELECT seq, title, status FROM steps WHERE task_id = ?1 ORDER BY seq")?;
            let steps = stmt
                .query_map([&run.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok((status, mode, steps))
        })
        .unwrap()
    }

    fn step(title: &str) -> PlanStep {
        PlanStep {
            title: title.into(),
            effects: Default::default(),
            status: StepStatus::Pending,
        }
    }

    #[test]
    fn the_rows_are_derived_from_the_events_in_the_events_own_words() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        let task = Task {
            outcome: "tidy".into(),
            grants: Vec::new(),
            mode: Mode::Ask,
            params: Default::default(),
        };
        let (run, _) = j.begin_run(&task, "offline planner", None).unwrap();
        assert_eq!(rows(&j, &run), ("running".into(), "ask".into(), vec![]));
        let plan = Plan {
            revision: 1,
            steps: vec![step("read"), step("write"), step("check")],
            reason: None,
        };
        j.append(&run, &Event::PlanUpdated { plan }).unwrap();
        j.append(
            &run,
            &Event::StepBegin {
                step: deskhand_types::StepNo(1),
                title: "read".into(),
            },
        )
        .unwrap();
        j.append(
            &run,
            &Event::StepEnd {
                step: deskhand_types::StepNo(1),
                status: StepStatus::Done,
                note: None,
            },
        )
        .unwrap();
        // A revision to two steps keeps the first's status and drops the third.
        let revised = Plan {
            revision: 2,
            steps: vec![
                PlanStep {
                    status: StepStatus::Done,
                    ..step("read")
                },
                step("write it"),
            ],
            reason: Some("shorter".into()),
        };
        j.append(&run, &Event::PlanUpdated { plan: revised }).unwrap();
        j.append(
            &run,
            &Event::ModeChanged {
                mode: Mode::Act,
                message: String::new(),
            },
        )
        .unwrap();
        j.append(
            &run,
            &Event::RunEnd {
                run: run.clone(),
                status: RunStatus::NeedsInput,
                summary: "which folder?".into(),
            },
        )
        .unwrap();
        let (status, mode, steps) = rows(&j, &run);
        assert_eq!((status.as_str(), mode.as_str()), ("needs_input", "act"));
        assert_eq!(
            steps,
            [
                (1, "read".into(), "done".into()),
                (2, "write it".into(), "pending".into())
            ]
        );
        assert_eq!(j.task(&run).unwrap().unwrap().summary, "which folder?");
        j.append(&run, &Event::Resumed { run: run.clone() }).unwrap();
        assert_eq!(rows(&j, &run).0, "running");
        // A sub-agent is numbered after its siblings and points at its parent.
        let (child, _) = j.begin_run(&task, "offline planner", Some(&run)).unwrap();
        assert_eq!(child.0, format!("{}.1", run.0));
        assert_eq!(j.children(&run).unwrap()[0].id, child);
    }
}
