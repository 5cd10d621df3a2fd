//! Applying, rolling back, recovering and undoing changesets, and the trash.
//!
//! The order that makes a changeset all or nothing, even across a crash:
//! 1. take the workspace's change lock (one changer at a time, across processes);
//! 2. re-check every source against its hash and every target for absence;
//! 3. record every intent (kind, paths, hashes, temp and kept-version paths)
//!    in one journal transaction, flushed to disk (`synchronous=FULL`);
//! 4. make the changes; each is atomic and can be told done or not done from
//!    the files alone (a rename never replaces; content is renamed into place);
//! 5. flush the touched folders and mark the changeset applied (flushed).
//!
//! A failure in 4 reverses what was done, in reverse order. A crash in 4
//! leaves the changeset `applying`; the next [`recover`] (run by `apply`,
//! `undo`, `resume` and the CLI before it touches anything) reverses it.
//! Reversal inspects the files, so it can itself be interrupted and rerun.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use deskhand_types::{ChangeKind, ChangesetStatus, Event, FileChange, RunId, StepNo};
use rusqlite::{Connection, OptionalExtension, params};

use super::fsops::{self, exists, hash_entry, move_entry, rename_noreplace, stage_copy, sync_dir};
use super::{ChangeError, Changeset, Planned, Result};
use crate::ids;
use crate::workspace::Workspace;

/// Test hooks for the failure paths; `Default` in real use.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Fail with an I/O error before change number `n` (0-based), as a full disk would.
    #[doc(hidden)]
    pub fail_before: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub changeset: String,
    pub count: usize,
}

/// What [`recover`] found interrupted and finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Changesets whose apply was interrupted, now reversed.
    pub rolled_back: Vec<String>,
    /// Undos that were interrupted, now completed.
    pub undone: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoReport {
    pub run: RunId,
    pub changesets: Vec<String>,
    /// Changes put back.
    pub restored: usize,
    /// Current versions moved to the trash because `--force` restored over them.
    pub trashed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashItem {
    pub id: i64,
    pub original: PathBuf,
    pub stored: PathBuf,
    pub size: u64,
    pub trashed_at: String,
    pub reason: String,
}

/// One change as the journal holds it, with where its temporary content and
/// kept version live.
#[derive(Debug, Clone)]
struct Row {
    changeset: String,
    seq: i64,
    change: FileChange,
    stamp: Option<String>,
    temp: Option<PathBuf>,
    keep: Option<PathBuf>,
}

impl Row {
    fn source(&self) -> &Path {
        &self.change.path
    }
    fn target(&self) -> &Path {
        self.change.target.as_deref().unwrap_or(&self.change.path)
    }
}

/// Holds the workspace's change lock until dropped.
struct Lock(#[allow(dead_code)] File);

fn lock(ws: &Workspace) -> Result<Lock> {
    let path = ws.state_dir().join("changes.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(ChangeError::io(&path))?;
    file.lock().map_err(ChangeError::io(&path))?;
    Ok(Lock(file))
}

/// Runs `f` in one transaction that is flushed to disk before it returns.
fn durable<T>(ws: &Workspace, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
    Ok(ws.journal().with(|c| {
        c.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            let tx = c.unchecked_transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        c.pragma_update(None, "synchronous", "NORMAL")?;
        result
    })?)
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Same content as `hash`? A matching fingerprint answers without reading.
fn same_content(path: &Path, hash: Option<&str>, stamp: Option<&str>) -> std::io::Result<bool> {
    if let Some(stamp) = stamp
        && fsops::stamp(path)? == stamp
    {
        return Ok(true);
    }
    Ok(Some(hash_entry(path)?.as_str()) == hash)
}

/// Applies a checked changeset for `run`'s step, all or nothing.
pub fn apply(
    ws: &Workspace,
    run: &RunId,
    step: StepNo,
    call: &str,
    cs: &Changeset,
    approved_by: &str,
    opts: ApplyOptions,
) -> Result<Applied> {
    let _lock = lock(ws)?;
    recover_locked(ws)?;
    for p in &cs.changes {
        verify_unchanged(p)?;
    }
    let rows = intents(ws, cs);
    durable(ws, |c| {
        c.execute(
            "INSERT INTO changesets (id, task_id, step, call_id, created_at, status, approved_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                cs.id,
                run.0,
                i64::try_from(step.0).unwrap_or(i64::MAX),
                call,
                ids::now(),
                ChangesetStatus::Applying.as_str(),
                approved_by
            ],
        )?;
        let mut insert = c.prepare_cached(
            "INSERT INTO changes (changeset_id, seq, kind, path, target, before_hash, after_hash, size, stamp, temp, keep, new_folders) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for r in &rows {
            insert.execute(params![
                cs.id,
                r.seq,
                r.change.kind.as_str(),
                path_text(&r.change.path),
                r.change.target.as_deref().map(path_text),
                r.change.before,
                r.change.after,
                i64::try_from(r.change.size).unwrap_or(i64::MAX),
                r.stamp,
                r.temp.as_deref().map(path_text),
                r.keep.as_deref().map(path_text),
                serde_json::to_string(&r.change.new_folders).unwrap_or_else(|_| "[]".into()),
            ])?;
        }
        Ok(())
    })?;

    let made = (|| {
        for (i, (row, planned)) in rows.iter().zip(&cs.changes).enumerate() {
            if opts.fail_before == Some(i) {
                return Err(ChangeError::Io {
                    path: row.change.path.clone(),
                    source: std::io::Error::other("injected failure (test)"),
                });
            }
            make(row, planned.staged.as_deref())?;
        }
        sync_folders(&rows)
    })();
    if let Err(e) = made {
        let undo_errors = reverse(ws, &rows, Reverse::Rollback);
        set_status(ws, &cs.id, ChangesetStatus::RolledBack)?;
        return Err(match undo_errors {
            Ok(_) => e,
            Err(rollback) => ChangeError::Io {
                path: rows[0].change.path.clone(),
                source: std::io::Error::other(format!("{e}; and putting back what was done failed: {rollback}")),
            },
        });
    }
    durable(ws, |c| {
        c.execute(
            "UPDATE changesets SET status = ?2, finished_at = ?3 WHERE id = ?1",
            params![cs.id, ChangesetStatus::Applied.as_str(), ids::now()],
        )?;
        for r in rows.iter().filter(|r| r.change.kind == ChangeKind::Delete) {
            c.execute(
                "INSERT INTO trash (original, stored, hash, size, trashed_at, changeset_id, seq, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    path_text(&r.change.path),
                    r.keep.as_deref().map(path_text),
                    r.change.before,
                    i64::try_from(r.change.size).unwrap_or(i64::MAX),
                    ids::now(),
                    cs.id,
                    r.seq,
                    format!("deleted by run {run}, step {step}")
                ],
            )?;
        }
        Ok(())
    })?;
    Ok(Applied {
        changeset: cs.id.clone(),
        count: rows.len(),
    })
}

/// Sources still hold what was hashed; targets are still free.
fn verify_unchanged(p: &Planned) -> Result<()> {
    let c = &p.change;
    match c.kind {
        ChangeKind::Create => {}
        _ => {
            let same = exists(&c.path).map_err(ChangeError::io(&c.path))?
                && !fs::symlink_metadata(&c.path).is_ok_and(|m| m.is_symlink())
                && same_content(&c.path, c.before.as_deref(), p.stamp.as_deref()).unwrap_or(false);
            if !same {
                return Err(ChangeError::Changed { path: c.path.clone() });
            }
        }
    }
    let target = c.target.as_deref().unwrap_or(&c.path);
    if matches!(c.kind, ChangeKind::Create | ChangeKind::Rename | ChangeKind::Move)
        && exists(target).map_err(ChangeError::io(target))?
    {
        return Err(ChangeError::Exists { path: target.into() });
    }
    Ok(())
}

fn intents(ws: &Workspace, cs: &Changeset) -> Vec<Row> {
    let state = ws.state_dir();
    cs.changes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let seq = i64::try_from(i).unwrap_or(i64::MAX);
            let c = &p.change;
            let temp = matches!(c.kind, ChangeKind::Create | ChangeKind::Overwrite).then(|| {
                c.path
                    .with_file_name(format!(".{}.deskhand-{}-{seq}.tmp", file_name(&c.path), cs.id))
            });
            let keep = match c.kind {
                ChangeKind::Overwrite => Some(
                    state
                        .join("versions")
                        .join(&cs.id)
                        .join(format!("{seq}-{}", file_name(&c.path))),
                ),
                ChangeKind::Delete => Some(
                    state
                        .join("trash")
                        .join(&cs.id)
                        .join(format!("{seq}-{}", file_name(&c.path))),
                ),
                _ => None,
            };
            Row {
                changeset: cs.id.clone(),
                seq,
                change: c.clone(),
                stamp: p.stamp.clone(),
                temp,
                keep,
            }
        })
        .collect()
}

fn make_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.is_dir()
    {
        fs::create_dir_all(dir).map_err(ChangeError::io(dir))?;
        if let Some(up) = dir.parent() {
            sync_dir(up).map_err(ChangeError::io(up))?;
        }
    }
    Ok(())
}

/// Makes one change. Each one is atomic: it is either done or not.
fn make(row: &Row, staged: Option<&Path>) -> Result<()> {
    let c = &row.change;
    for folder in &c.new_folders {
        match fs::create_dir(folder) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && folder.is_dir() => {}
            Err(e) => return Err(ChangeError::io(folder)(e)),
        }
        if let Some(up) = folder.parent() {
            sync_dir(up).map_err(ChangeError::io(up))?;
        }
    }
    let put_content = |temp: &Path| -> Result<()> {
        let staged = staged.ok_or_else(|| ChangeError::Missing {
            path: c.path.clone(),
            hint: " (the staged content is gone)",
        })?;
        let hash = stage_copy(staged, temp).map_err(ChangeError::io(temp))?;
        if Some(hash.as_str()) != c.after.as_deref() {
            let _ = fs::remove_file(temp);
            return Err(ChangeError::Changed { path: staged.into() });
        }
        Ok(())
    };
    match c.kind {
        ChangeKind::Create => {
            let temp = row.temp.as_deref().unwrap_or(Path::new(""));
            put_content(temp)?;
            rename_noreplace(temp, &c.path).map_err(ChangeError::io(&c.path))
        }
        ChangeKind::Overwrite => {
            let temp = row.temp.as_deref().unwrap_or(Path::new(""));
            let keep = row.keep.as_deref().unwrap_or(Path::new(""));
            put_content(temp)?;
            make_parent(keep)?;
            if !exists(keep).map_err(ChangeError::io(keep))? {
                // Keep the current version: a second name for it on the same
                // device, else a copy checked against its hash.
                if fs::hard_link(&c.path, keep).is_err() {
                    let partial = keep.with_extension("partial");
                    let _ = fs::remove_file(&partial);
                    fsops::copy_file_synced(&c.path, &partial).map_err(ChangeError::io(keep))?;
                    // Undo puts it back as the person had it, permissions too.
                    let mode = fs::metadata(&c.path).map_err(ChangeError::io(&c.path))?.permissions();
                    fs::set_permissions(&partial, mode).map_err(ChangeError::io(keep))?;
                    if hash_entry(&partial).ok().as_deref() != c.before.as_deref() {
                        return Err(ChangeError::Changed { path: c.path.clone() });
                    }
                    fs::rename(&partial, keep).map_err(ChangeError::io(keep))?;
                }
                if let Some(dir) = keep.parent() {
                    sync_dir(dir).map_err(ChangeError::io(dir))?;
                }
            }
            // The new version keeps the permissions the person gave the old one.
            let mode = fs::metadata(&c.path).map_err(ChangeError::io(&c.path))?.permissions();
            fs::set_permissions(temp, mode).map_err(ChangeError::io(temp))?;
            fs::rename(temp, &c.path).map_err(ChangeError::io(&c.path))
        }
        ChangeKind::Rename | ChangeKind::Move => {
            let target = row.target();
            move_entry(&c.path, target, c.before.as_deref().unwrap_or("")).map_err(ChangeError::io(target))
        }
        ChangeKind::Delete => {
            let keep = row.keep.as_deref().unwrap_or(Path::new(""));
            make_parent(keep)?;
            move_entry(&c.path, keep, c.before.as_deref().unwrap_or("")).map_err(ChangeError::io(&c.path))
        }
    }
}

fn sync_folders(rows: &[Row]) -> Result<()> {
    let dirs: BTreeSet<&Path> = rows
        .iter()
        .flat_map(|r| [r.source().parent(), r.target().parent()])
        .flatten()
        .collect();
    for dir in dirs {
        match sync_dir(dir) {
            // A folder a reversed change created is gone again; its parent was synced.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other.map_err(ChangeError::io(dir))?,
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reverse {
    /// Put back a changeset that failed or was interrupted while applying.
    Rollback,
    /// Undo an applied changeset; `force` restores over later edits (which go to the trash).
    Undo { force: bool },
}

/// Reverses `rows` (in reverse order). Each reversal looks at the files to
/// see what is done, so running it twice is harmless. Returns the number of
/// current versions moved to the trash.
fn reverse(ws: &Workspace, rows: &[Row], how: Reverse) -> Result<usize> {
    let mut trashed = 0;
    for row in rows.iter().rev() {
        trashed += reverse_one(ws, row, how)?;
    }
    sync_folders(rows)?;
    Ok(trashed)
}

fn reverse_one(ws: &Workspace, row: &Row, how: Reverse) -> Result<usize> {
    let trashed = reverse_entry(ws, row, how)?;
    // Folders the change created go again once empty (another change, or
    // the person, may have put something there: then they stay).
    for folder in row.change.new_folders.iter().rev() {
        if fs::remove_dir(folder).is_ok()
            && let Some(up) = folder.parent()
        {
            sync_dir(up).map_err(ChangeError::io(up))?;
        }
    }
    Ok(trashed)
}

fn reverse_entry(ws: &Workspace, row: &Row, how: Reverse) -> Result<usize> {
    let c = &row.change;
    let there = |p: &Path| exists(p).map_err(ChangeError::io(p));
    let mut trashed = 0;
    if let Some(temp) = &row.temp
        && there(temp)?
    {
        fs::remove_file(temp).map_err(ChangeError::io(temp))?;
    }
    match c.kind {
        ChangeKind::Create => {
            if there(&c.path)? {
                match how {
                    Reverse::Rollback => {
                        if hash_entry(&c.path).ok().as_deref() == c.after.as_deref() {
                            fs::remove_file(&c.path).map_err(ChangeError::io(&c.path))?;
                        }
                    }
                    Reverse::Undo { .. } => {
                        to_trash(ws, row, &c.path, "created by the run; removed by undo")?;
                    }
                }
            }
        }
        ChangeKind::Overwrite => {
            let keep = row.keep.as_deref().unwrap_or(Path::new(""));
            if there(keep)? {
                if let Reverse::Undo { force: true } = how
                    && there(&c.path)?
                    && hash_entry(&c.path).ok().as_deref() != c.after.as_deref()
                {
                    to_trash(ws, row, &c.path, "edited after the run; replaced by undo --force")?;
                    trashed += 1;
                }
                // Replaces the current content in one step. (When the keep is a
                // second name for the very same file, rename does nothing.)
                match fs::rename(keep, &c.path) {
                    // The person's folder is on another device than the
                    // workspace: copy beside the file, then replace it in one step.
                    Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                        let beside = c
                            .path
                            .with_file_name(format!(".{}.deskhand-restore", file_name(&c.path)));
                        if there(&beside)? {
                            fs::remove_file(&beside).map_err(ChangeError::io(&beside))?;
                        }
                        fsops::copy_file_synced(keep, &beside).map_err(ChangeError::io(&beside))?;
                        let mode = fs::metadata(keep).map_err(ChangeError::io(keep))?.permissions();
                        fs::set_permissions(&beside, mode).map_err(ChangeError::io(&beside))?;
                        fs::rename(&beside, &c.path).map_err(ChangeError::io(&c.path))?;
                    }
                    other => other.map_err(ChangeError::io(&c.path))?,
                }
                if there(keep)? {
                    fs::remove_file(keep).map_err(ChangeError::io(keep))?;
                }
            }
        }
        ChangeKind::Rename | ChangeKind::Move => {
            let target = row.target();
            if there(target)? {
                if there(&c.path)? {
                    if how == (Reverse::Undo { force: true }) {
                        to_trash(ws, row, &c.path, "was in the way of undo --force")?;
                        trashed += 1;
                    } else {
                        return Err(ChangeError::Exists { path: c.path.clone() });
                    }
                }
                move_entry(target, &c.path, &hash_entry(target).map_err(ChangeError::io(target))?)
                    .map_err(ChangeError::io(&c.path))?;
            }
        }
        ChangeKind::Delete => {
            let keep = row.keep.as_deref().unwrap_or(Path::new(""));
            if there(keep)? {
                if there(&c.path)? {
                    if how == (Reverse::Undo { force: true }) {
                        to_trash(ws, row, &c.path, "was in the way of undo --force")?;
                        trashed += 1;
                    } else {
                        return Err(ChangeError::Exists { path: c.path.clone() });
                    }
                }
                make_parent(&c.path)?;
                move_entry(keep, &c.path, c.before.as_deref().unwrap_or("")).map_err(ChangeError::io(&c.path))?;
                ws.journal().with(|db| {
                    db.execute(
                        "UPDATE trash SET state = 'restored' WHERE changeset_id = ?1 AND seq = ?2",
                        params![row.changeset, row.seq],
                    )
                })?;
            }
        }
    }
    Ok(trashed)
}

/// Moves an entry that undo must clear out of the way into the trash.
fn to_trash(ws: &Workspace, row: &Row, path: &Path, reason: &str) -> Result<()> {
    let hash = hash_entry(path).map_err(ChangeError::io(path))?;
    let size = fsops::entry_size(path).map_err(ChangeError::io(path))?;
    let dir = ws.state_dir().join("trash").join(format!("undo-{}", row.changeset));
    fs::create_dir_all(&dir).map_err(ChangeError::io(&dir))?;
    let mut stored = dir.join(format!("{}-{}", row.seq, file_name(path)));
    let mut n = 1;
    while exists(&stored).map_err(ChangeError::io(&stored))? {
        n += 1;
        stored = dir.join(format!("{}-{n}-{}", row.seq, file_name(path)));
    }
    move_entry(path, &stored, &hash).map_err(ChangeError::io(path))?;
    ws.journal().with(|c| {
        c.execute(
            "INSERT INTO trash (original, stored, hash, size, trashed_at, changeset_id, seq, reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                path_text(path),
                path_text(&stored),
                hash,
                i64::try_from(size).unwrap_or(i64::MAX),
                ids::now(),
                row.changeset,
                row.seq,
                reason
            ],
        )
    })?;
    Ok(())
}

/// What would stop undo from restoring `row` without losing work.
fn conflict(row: &Row, force: bool) -> Option<String> {
    let c = &row.change;
    let there = |p: &Path| exists(p).unwrap_or(true);
    let edited = |p: &Path, stamp: Option<&str>| !same_content(p, c.after.as_deref(), stamp).unwrap_or(false);
    let shown = |p: &Path| p.display().to_string();
    match c.kind {
        ChangeKind::Create => (!force && there(&c.path) && edited(&c.path, None))
            .then(|| format!("  {} was edited after the run created it", shown(&c.path))),
        ChangeKind::Overwrite => {
            let keep = row.keep.as_deref().unwrap_or(Path::new(""));
            if !there(keep) {
                let back = there(&c.path) && hash_entry(&c.path).ok().as_deref() == c.before.as_deref();
                (!back).then(|| {
                    format!(
                        "  the version of {} from before the run is no longer kept",
                        shown(&c.path)
                    )
                })
            } else {
                (!force && there(&c.path) && edited(&c.path, None))
                    .then(|| format!("  {} was edited after the run overwrote it", shown(&c.path)))
            }
        }
        ChangeKind::Rename | ChangeKind::Move => {
            let target = row.target();
            match (there(&c.path), there(target)) {
                (true, false) => None,
                (false, false) => Some(format!(
                    "  {} (renamed from {}) is gone: moved or deleted since",
                    shown(target),
                    shown(&c.path)
                )),
                (true, true) if !force => Some(format!(
                    "  something new is at {}, where {} would go back",
                    shown(&c.path),
                    shown(target)
                )),
                (_, true) => (!force && edited(target, row.stamp.as_deref()))
                    .then(|| format!("  {} was edited after the run renamed it", shown(target))),
            }
        }
        ChangeKind::Delete => {
            let keep = row.keep.as_deref().unwrap_or(Path::new(""));
            match (there(keep), there(&c.path)) {
                (true, false) | (false, true) => None,
                (false, false) => Some(format!(
                    "  {} was deleted by the run and its copy was emptied from the trash",
                    shown(&c.path)
                )),
                (true, true) => {
                    (!force).then(|| format!("  a new file is at {}, which the run deleted", shown(&c.path)))
                }
            }
        }
    }
}

fn set_status(ws: &Workspace, id: &str, status: ChangesetStatus) -> Result<()> {
    durable(ws, |c| {
        c.execute(
            "UPDATE changesets SET status = ?2, finished_at = ?3 WHERE id = ?1",
            params![id, status.as_str(), ids::now()],
        )
    })?;
    Ok(())
}

fn rows_of(ws: &Workspace, changeset: &str) -> Result<Vec<Row>> {
    Ok(ws.journal().with(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT seq, kind, path, target, before_hash, after_hash, size, stamp, temp, keep, new_folders \
             FROM changes WHERE changeset_id = ?1 ORDER BY seq",
        )?;
        stmt.query_map([changeset], |r| {
            let kind: String = r.get(1)?;
            Ok(Row {
                changeset: changeset.into(),
                seq: r.get(0)?,
                change: FileChange {
                    kind: ChangeKind::parse(&kind).unwrap_or(ChangeKind::Create),
                    path: PathBuf::from(r.get::<_, String>(2)?),
                    target: r.get::<_, Option<String>>(3)?.map(PathBuf::from),
                    before: r.get(4)?,
                    after: r.get(5)?,
                    size: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                    new_folders: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
                },
                stamp: r.get(7)?,
                temp: r.get::<_, Option<String>>(8)?.map(PathBuf::from),
                keep: r.get::<_, Option<String>>(9)?.map(PathBuf::from),
            })
        })?
        .collect()
    })?)
}

/// Finishes whatever a crash interrupted: an apply is reversed, an undo is
/// completed. Safe to call any time; waits for a changer in another process.
pub fn recover(ws: &Workspace) -> Result<Recovered> {
    let _lock = lock(ws)?;
    recover_locked(ws)
}

fn recover_locked(ws: &Workspace) -> Result<Recovered> {
    let pending: Vec<(String, String, String)> = ws.journal().with(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT id, task_id, status FROM changesets WHERE status IN ('applying', 'undoing') ORDER BY rowid DESC",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
    })?;
    let mut report = Recovered::default();
    for (id, task, status) in pending {
        let rows = rows_of(ws, &id)?;
        let run = RunId(task);
        if status == ChangesetStatus::Applying.as_str() {
            reverse(ws, &rows, Reverse::Rollback)?;
            set_status(ws, &id, ChangesetStatus::RolledBack)?;
            ws.journal().append(
                &run,
                &Event::ChangesRefused {
                    changeset: id.clone(),
                    reason: "deskhand stopped while applying these changes; they were put back as they were".into(),
                },
            )?;
            report.rolled_back.push(id);
        } else {
            reverse(ws, &rows, Reverse::Undo { force: true })?;
            set_status(ws, &id, ChangesetStatus::Undone)?;
            report.undone.push(id);
        }
    }
    Ok(report)
}

/// The changesets of a run and its sub-agents, newest first, with their status.
fn changesets_of(ws: &Workspace, run: &RunId) -> Result<Vec<(String, String)>> {
    Ok(ws.journal().with(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT id, status FROM changesets WHERE task_id = ?1 OR task_id LIKE ?2 ORDER BY rowid DESC",
        )?;
        stmt.query_map(params![run.0, format!("{}.%", run.0)], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    })?)
}

/// Every changeset of a run (and its sub-agents), oldest first: id, status, changes.
pub fn changes_of(ws: &Workspace, run: &RunId) -> Result<Vec<(String, ChangesetStatus, Vec<FileChange>)>> {
    let mut out = Vec::new();
    for (id, status) in changesets_of(ws, run)?.into_iter().rev() {
        let changes = rows_of(ws, &id)?.into_iter().map(|r| r.change).collect();
        let status = ChangesetStatus::parse(&status).unwrap_or(ChangesetStatus::Applying);
        out.push((id, status, changes));
    }
    Ok(out)
}

/// Restores everything `run` (and its sub-agents) changed, newest change
/// first. Refuses, changing nothing, where a file was changed since, unless
/// `force` (then the current versions go to the trash, never lost).
pub fn undo(ws: &Workspace, run: &RunId, force: bool) -> Result<UndoReport> {
    let _lock = lock(ws)?;
    recover_locked(ws)?;
    let all = changesets_of(ws, run)?;
    let applied: Vec<String> = all
        .iter()
        .filter(|(_, s)| s == ChangesetStatus::Applied.as_str())
        .map(|(id, _)| id.clone())
        .collect();
    if applied.is_empty() {
        return Err(ChangeError::Nothing(if all.is_empty() {
            format!("run {run} changed no files in your folders, so there is nothing to undo")
        } else {
            format!("run {run} has already been undone (or its changes were rolled back); nothing to undo")
        }));
    }
    let mut plans = Vec::new();
    let mut conflicts = Vec::new();
    for id in &applied {
        let rows = rows_of(ws, id)?;
        conflicts.extend(rows.iter().rev().filter_map(|r| conflict(r, force)));
        plans.push((id.clone(), rows));
    }
    if !conflicts.is_empty() {
        return Err(ChangeError::UndoConflicts {
            run: run.0.clone(),
            conflicts,
        });
    }
    let (mut restored, mut trashed) = (0, 0);
    for (id, rows) in &plans {
        set_status(ws, id, ChangesetStatus::Undoing)?;
        trashed += reverse(ws, rows, Reverse::Undo { force })?;
        set_status(ws, id, ChangesetStatus::Undone)?;
        restored += rows.len();
    }
    ws.journal().append(
        run,
        &Event::Undone {
            changesets: applied.clone(),
            restored,
            forced: force,
        },
    )?;
    Ok(UndoReport {
        run: run.clone(),
        changesets: applied,
        restored,
        trashed,
    })
}

/// What the trash holds, oldest first.
pub fn trash_list(ws: &Workspace) -> Result<Vec<TrashItem>> {
    Ok(ws.journal().with(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT id, original, stored, size, trashed_at, reason FROM trash WHERE state = 'held' ORDER BY id",
        )?;
        stmt.query_map([], |r| {
            Ok(TrashItem {
                id: r.get(0)?,
                original: PathBuf::from(r.get::<_, String>(1)?),
                stored: PathBuf::from(r.get::<_, String>(2)?),
                size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                trashed_at: r.get(4)?,
                reason: r.get(5)?,
            })
        })?
        .collect()
    })?)
}

/// Puts a trashed entry back where it was. Refuses if something is there now.
pub fn trash_restore(ws: &Workspace, id: i64) -> Result<TrashItem> {
    let _lock = lock(ws)?;
    let item = trash_list(ws)?.into_iter().find(|t| t.id == id).ok_or_else(|| {
        ChangeError::Nothing(format!(
            "the trash holds no item {id}; `deskhand trash list` shows what it holds"
        ))
    })?;
    let hash: String = ws
        .journal()
        .with(|c| {
            c.query_row("SELECT hash FROM trash WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        })?
        .unwrap_or_default();
    if exists(&item.original).map_err(ChangeError::io(&item.original))? {
        return Err(ChangeError::Exists {
            path: item.original.clone(),
        });
    }
    make_parent(&item.original)?;
    move_entry(&item.stored, &item.original, &hash).map_err(ChangeError::io(&item.original))?;
    if let Some(dir) = item.original.parent() {
        sync_dir(dir).map_err(ChangeError::io(dir))?;
    }
    ws.journal()
        .with(|c| c.execute("UPDATE trash SET state = 'restored' WHERE id = ?1", [id]))?;
    Ok(item)
}

/// Removes everything in the trash for good. The caller asks the person first.
/// Returns the number of items and bytes freed.
pub fn trash_empty(ws: &Workspace) -> Result<(usize, u64)> {
    let _lock = lock(ws)?;
    let items = trash_list(ws)?;
    let mut bytes = 0;
    for item in &items {
        if exists(&item.stored).map_err(ChangeError::io(&item.stored))? {
            fsops::remove_entry(&item.stored).map_err(ChangeError::io(&item.stored))?;
        }
        bytes += item.size;
        ws.journal()
            .with(|c| c.execute("UPDATE trash SET state = 'emptied' WHERE id = ?1", [item.id]))?;
        if let Some(dir) = item.stored.parent() {
            // Remove the changeset's trash folder once it is empty.
            let _ = fs::remove_dir(dir);
        }
    }
    Ok((items.len(), bytes))
}
