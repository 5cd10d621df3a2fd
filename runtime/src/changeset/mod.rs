//! Changesets: the only way deskhand changes the person's folders.
//!
//! A tool never writes a granted folder: it proposes changes (create,
//! overwrite, rename, move, delete). [`propose`] checks them against the
//! guard rails (inside a folder granted read-write, no `..`, no symlinks, no
//! names Windows or macOS cannot hold, no case-folding collisions, nothing
//! renamed onto an existing entry, no path touched twice) and hashes what
//! they touch, before anything moves. [`apply`] records the
//! intents in the journal, makes every change (atomic writes, renames that
//! never replace), and on any failure, or after a crash, puts back what it
//! had done: all or nothing. [`undo`] reverses a run's
//! changesets; overwritten versions are kept and deleted files go to the
//! workspace trash, never unlinked.

mod engine;
mod fsops;
pub mod names;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use deskhand_types::{ChangeKind, FileChange, ProposedChange};

pub use engine::{
    Applied, ApplyOptions, Recovered, TrashItem, UndoReport, apply, changes_of, recover, trash_empty, trash_list,
    trash_restore, undo,
};
pub use fsops::hash_entry;

/// Why a changeset was refused or could not be made. Every variant names
/// the path and what to do; none leaves a folder half changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{}: {reason}", .path.display())]
    BadPath { path: PathBuf, reason: String },
    #[error("{} is not inside a folder granted read-write ({}); grant its folder with :rw to let deskhand change it", .path.display(), .roots)]
    Outside { path: PathBuf, roots: String },
    #[error("{} is a symlink (or lies under one); deskhand does not change files through links. Change the file it points to directly", .path.display())]
    Symlink { path: PathBuf },
    #[error("{} does not exist{hint}", .path.display())]
    Missing { path: PathBuf, hint: &'static str },
    #[error("{} already exists; deskhand never renames or writes onto an existing entry. Pick a free name, or propose an overwrite", .path.display())]
    Exists { path: PathBuf },
    #[error("{} and {} differ only in letter case; on macOS and Windows they are the same name. Pick another name", .path.display(), .other.display())]
    CaseCollision { path: PathBuf, other: PathBuf },
    #[error("{} is touched twice by one changeset ({}); each entry may change once", .path.display(), .what)]
    Twice { path: PathBuf, what: String },
    #[error("{} changed after the tool looked at it; nothing was changed. Run the step again to propose changes against the current files", .path.display())]
    Changed { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("undo would lose work, so nothing was restored:\n{}\nPut those files back, or run `deskhand undo {run} --force` to restore anyway (the current versions go to the trash)", .conflicts.join("\n"))]
    UndoConflicts { run: String, conflicts: Vec<String> },
    #[error("{0}")]
    Nothing(String),
    #[error(transparent)]
    Journal(Box<crate::error::Error>),
}

impl ChangeError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChangeError + '_ {
        move |source| ChangeError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the proposal or the request was at fault, not deskhand.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ChangeError::Io { .. } | ChangeError::Journal(_))
    }
}

impl From<crate::error::Error> for ChangeError {
    fn from(e: crate::error::Error) -> Self {
        ChangeError::Journal(Box::new(e))
    }
}

pub type Result<T, E = ChangeError> = std::result::Result<T, E>;

/// One checked change, ready to apply.
#[derive(Debug, Clone)]
pub struct Planned {
    pub change: FileChange,
    /// The staged content of a create or overwrite (in the call's scratch folder).
    pub staged: Option<PathBuf>,
    /// The fingerprint of the source when it was hashed.
    stamp: Option<String>,
}

/// A checked changeset. Its paths are absolute host paths.
#[derive(Debug, Clone)]
pub struct Changeset {
    pub id: String,
    pub changes: Vec<Planned>,
}

impl Changeset {
    pub fn file_changes(&self) -> Vec<FileChange> {
        self.changes.iter().map(|p| p.change.clone()).collect()
    }

    pub fn deletions(&self) -> usize {
        self.changes
            .iter()
            .filter(|p| p.change.kind == ChangeKind::Delete)
            .count()
    }

    /// The changes as a person reads them: renames as a before/after
    /// table, deletions marked, then the other writes.
    pub fn render(&self) -> String {
        render(&self.file_changes())
    }

    /// The folders the changes write to (sources' and targets' parents).
    pub fn touched_paths(&self) -> Vec<&Path> {
        self.changes
            .iter()
            .flat_map(|p| std::iter::once(p.change.path.as_path()).chain(p.change.target.as_deref()))
            .collect()
    }
}

/// Renders changes for a person (CLI prompt, ledger, UI).
pub fn render(changes: &[FileChange]) -> String {
    let mut out = String::new();
    let moves: Vec<&FileChange> = changes.iter().filter(|c| c.kind.is_move()).collect();
    if !moves.is_empty() {
        let width = moves
            .iter()
            .map(|c| c.path.display().to_string().chars().count())
            .max()
            .unwrap_or(0)
            .clamp(6, 60);
        let _ = writeln!(out, "  {:<width$}  ->  after", "before");
        for c in &moves {
            let _ = writeln!(
                out,
                "  {:<width$}  ->  {}",
                c.path.display().to_string(),
                c.target.as_deref().unwrap_or(Path::new("?")).display()
            );
        }
    }
    for c in changes.iter().filter(|c| c.kind == ChangeKind::Delete) {
        let _ = writeln!(
            out,
            "  !! DELETE {} ({} bytes; kept in the workspace trash)",
            c.path.display(),
            c.size
        );
    }
    for c in changes
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Create | ChangeKind::Overwrite))
    {
        let what = if c.kind == ChangeKind::Create {
            "create   "
        } else {
            "overwrite"
        };
        let note = if c.kind == ChangeKind::Overwrite {
            "; the current version is kept for undo"
        } else {
            ""
        };
        let _ = writeln!(out, "  {what} {} ({} bytes{note})", c.path.display(), c.size);
    }
    out
}

/// Checks proposed changes against the guard rails and hashes what they
/// touch. `roots` are the folders the run may change (granted read-write,
/// canonical); `staged` maps a guest's staged path to its host path.
pub fn propose(
    proposed: &[ProposedChange],
    roots: &[PathBuf],
    staged: &dyn Fn(&str) -> crate::error::Result<PathBuf>,
) -> Result<Changeset> {
    let mut checker = Checker {
        roots,
        listings: HashMap::new(),
        touched: HashMap::new(),
        new_names: HashMap::new(),
    };
    let mut changes = Vec::with_capacity(proposed.len());
    for p in proposed {
        changes.push(checker.check(p, staged)?);
    }
    checker.no_overlaps()?;
    Ok(Changeset {
        id: crate::ids::changeset_id(),
        changes,
    })
}

struct Checker<'a> {
    roots: &'a [PathBuf],
    /// Case-folded names of each folder's entries, read once.
    listings: HashMap<PathBuf, HashMap<String, PathBuf>>,
    /// Every path the changeset touches, with what touches it.
    touched: HashMap<PathBuf, String>,
    /// Case-folded new names per folder, to catch two targets that collide.
    new_names: HashMap<(PathBuf, String), PathBuf>,
}

impl Checker<'_> {
    fn check(&mut self, p: &ProposedChange, staged: &dyn Fn(&str) -> crate::error::Result<PathBuf>) -> Result<Planned> {
        let (kind, path, target, content) = match p {
            ProposedChange::Create { path, staged } => (ChangeKind::Create, path, None, Some(staged)),
            ProposedChange::Overwrite { path, staged } => (ChangeKind::Overwrite, path, None, Some(staged)),
            ProposedChange::Rename { source, target } => (ChangeKind::Rename, source, Some(target), None),
            ProposedChange::Move { source, target } => (ChangeKind::Move, source, Some(target), None),
            ProposedChange::Delete { path } => (ChangeKind::Delete, path, None, None),
        };
        let creates = kind == ChangeKind::Create;
        let (path, mut new_folders) = self.inside_root(path, creates)?;
        let target = match target {
            Some(t) => {
                let (t, folders) = self.inside_root(t, kind == ChangeKind::Move)?;
                new_folders = folders;
                Some(t)
            }
            None => None,
        };
        let staged = content
            .map(|s| {
                let host = staged(s).map_err(|e| ChangeError::BadPath {
                    path: s.into(),
                    reason: e.to_string(),
                })?;
                match std::fs::symlink_metadata(&host) {
                    Ok(m) if m.is_file() => Ok(host),
                    _ => Err(ChangeError::Missing {
                        path: s.into(),
                        hint: " (the tool named staged content that is not a file it wrote)",
                    }),
                }
            })
            .transpose()?;

        let mut change = FileChange {
            kind,
            path: path.clone(),
            target: target.clone(),
            before: None,
            after: None,
            size: 0,
            new_folders,
        };
        let mut stamp = None;
        match kind {
            ChangeKind::Create => {
                self.new_entry(&path, None)?;
                let staged = staged.as_deref().unwrap_or(Path::new(""));
                change.after = Some(hash_entry(staged).map_err(ChangeError::io(staged))?);
                change.size = fsops::entry_size(staged).map_err(ChangeError::io(staged))?;
                self.touch(&path, "created")?;
            }
            ChangeKind::Overwrite => {
                self.existing(&path, true)?;
                change.before = Some(hash_entry(&path).map_err(ChangeError::io(&path))?);
                stamp = Some(fsops::stamp(&path).map_err(ChangeError::io(&path))?);
                let staged = staged.as_deref().unwrap_or(Path::new(""));
                change.after = Some(hash_entry(staged).map_err(ChangeError::io(staged))?);
                change.size = fsops::entry_size(staged).map_err(ChangeError::io(staged))?;
                self.touch(&path, "overwritten")?;
            }
            ChangeKind::Rename | ChangeKind::Move => {
                let target = target.as_deref().unwrap_or(Path::new(""));
                self.existing(&path, false)?;
                if kind == ChangeKind::Rename && path.parent() != target.parent() {
                    return Err(ChangeError::BadPath {
                        path: target.into(),
                        reason: "a rename keeps the entry in its folder; propose a move to change folders".into(),
                    });
                }
                self.new_entry(target, Some(&path))?;
                let hash = hash_entry(&path).map_err(ChangeError::io(&path))?;
                stamp = Some(fsops::stamp(&path).map_err(ChangeError::io(&path))?);
                change.before = Some(hash.clone());
                change.after = Some(hash);
                change.size = fsops::entry_size(&path).map_err(ChangeError::io(&path))?;
                self.touch(&path, &format!("{} from", kind.as_str()))?;
                self.touch(target, &format!("{} to", kind.as_str()))?;
            }
            ChangeKind::Delete => {
                self.existing(&path, true)?;
                change.before = Some(hash_entry(&path).map_err(ChangeError::io(&path))?);
                stamp = Some(fsops::stamp(&path).map_err(ChangeError::io(&path))?);
                change.size = fsops::entry_size(&path).map_err(ChangeError::io(&path))?;
                self.touch(&path, "deleted")?;
            }
        }
        Ok(Planned { change, staged, stamp })
    }

    /// The path as written, if it is absolute, plain (no `.`/`..`) and inside
    /// a root, with the folders that must be created to hold it (only when
    /// `new_folders_ok`, for the target of a create or move).
    fn inside_root(&self, raw: &str, new_folders_ok: bool) -> Result<(PathBuf, Vec<PathBuf>)> {
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(ChangeError::BadPath {
                path: path.into(),
                reason: "changes name paths as the tool sees them, starting with `/`".into(),
            });
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(ChangeError::BadPath {
                path: path.into(),
                reason: "`..` and `.` may not appear in a changed path; name the entry directly".into(),
            });
        }
        let Some(root) = self.roots.iter().find(|r| path.starts_with(r) && path != r.as_path()) else {
            return Err(ChangeError::Outside {
                path: path.into(),
                roots: if self.roots.is_empty() {
                    "none is granted read-write".into()
                } else {
                    self.roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        };
        // Every folder between the root and the entry must be a real folder.
        let mut dir = root.clone();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let parts: Vec<_> = rel.components().collect();
        let mut new_folders = Vec::new();
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push(part);
            if !new_folders.is_empty() {
                new_folders.push(dir.clone());
                continue;
            }
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_symlink() => return Err(ChangeError::Symlink { path: dir }),
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(ChangeError::BadPath {
                        path: dir,
                        reason: "is a file, not a folder".into(),
                    });
                }
                Err(_) if new_folders_ok => new_folders.push(dir.clone()),
                Err(_) => {
                    return Err(ChangeError::Missing {
                        path: dir,
                        hint: "; changes go into existing folders, so create the folder first",
                    });
                }
            }
        }
        for folder in &new_folders {
            let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(reason) = names::unportable(name) {
                return Err(ChangeError::BadPath {
                    path: folder.clone(),
                    reason,
                });
            }
        }
        Ok((path.into(), new_folders))
    }

    /// The source of an overwrite, rename, move or delete: it must exist
    /// and not be a symlink (and be a file when `file_only`).
    fn existing(&mut self, path: &Path, file_only: bool) -> Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_symlink() => Err(ChangeError::Symlink { path: path.into() }),
            Ok(m) if file_only && !m.is_file() => Err(ChangeError::BadPath {
                path: path.into(),
                reason: "is a folder; only files can be overwritten or deleted, one by one".into(),
            }),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ChangeError::Missing {
                path: path.into(),
                hint: "",
            }),
            Err(e) => Err(ChangeError::io(path)(e)),
        }
    }

    /// A new name: portable, free, and not a case variant of an existing
    /// entry in its folder (other than `source`, for a case-only rename).
    fn new_entry(&mut self, path: &Path, source: Option<&Path>) -> Result<()> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ChangeError::BadPath {
                path: path.into(),
                reason: "names must be valid UTF-8".into(),
            })?;
        if let Some(reason) = names::unportable(name) {
            return Err(ChangeError::BadPath {
                path: path.into(),
                reason,
            });
        }
        if fsops::exists(path).map_err(ChangeError::io(path))? {
            return Err(ChangeError::Exists { path: path.into() });
        }
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let folded = names::case_fold(name);
        if !self.listings.contains_key(&dir) {
            let mut listing = HashMap::new();
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries.collect(),
                // A folder the changeset creates holds nothing yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(ChangeError::io(&dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(ChangeError::io(&dir))?;
                listing.insert(names::case_fold(&entry.file_name().to_string_lossy()), entry.path());
            }
            self.listings.insert(dir.clone(), listing);
        }
        if let Some(other) = self.listings[&dir].get(&folded)
            && Some(other.as_path()) != source
        {
            return Err(ChangeError::CaseCollision {
                path: path.into(),
                other: other.clone(),
            });
        }
        if let Some(other) = self.new_names.insert((dir, folded), path.into()) {
            return Err(if other == path {
                ChangeError::Twice {
                    path: path.into(),
                    what: "two changes put an entry there".into(),
                }
            } else {
                ChangeError::CaseCollision {
                    path: path.into(),
                    other,
                }
            });
        }
        Ok(())
    }

    fn touch(&mut self, path: &Path, what: &str) -> Result<()> {
        if let Some(earlier) = self.touched.get(path) {
            return Err(ChangeError::Twice {
                path: path.into(),
                what: format!("{earlier}, then {what}"),
            });
        }
        self.touched.insert(path.into(), what.into());
        Ok(())
    }

    /// No change may act inside a folder another change moves or renames.
    fn no_overlaps(&self) -> Result<()> {
        let mut sorted: Vec<(&PathBuf, &String)> = self.touched.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let paths: HashSet<&Path> = sorted.iter().map(|(p, _)| p.as_path()).collect();
        for (path, what) in sorted {
            for ancestor in path.ancestors().skip(1) {
                if paths.contains(ancestor) {
                    return Err(ChangeError::Twice {
                        path: path.clone(),
                        what: format!(
                            "{what} inside {}, which the same changeset also changes",
                            ancestor.display()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
