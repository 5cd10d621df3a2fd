//! Copies of the folders a guest may change, and what it changed in them.
//!
//! No guest writes the person's folders or `output/` directly. A sandboxed
//! tool call sees, at `output/`'s own path, a fresh folder holding copies
//! of only the files its run may see there (the files the run itself wrote,
//! and what the person granted); the native shell sees a copy of each folder
//! it may change. Afterwards the copy is compared with what was put in:
//! new files become creates, changed ones overwrites, missing ones deletes,
//! a delete and a create of the same content a rename or a move. (Where
//! another run's file holds a name the call declares it writes, or one of
//! that name's free-name variants, an empty stand-in is there, so a tool
//! choosing a free name does not choose a taken one; touching a stand-in
//! refuses the call's changes.) Those go
//! through the changeset engine like every other change: journaled,
//! approved as the run's mode requires (a deletion always asks), undoable.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use deskhand_types::ProposedChange;

use crate::grants::GrantPolicy;
use deskhand_types::{ChangeKind, ChangesetStatus, RunId};

use crate::changeset;
use crate::error::Result;
use crate::workspace::Workspace;

/// What a call of `run` may see in `output/`, relative to it: the files its
/// run, the run's parent and their sub-agents put there (and that are still
/// theirs), and the folders the person granted there. Nothing else: a run
/// granted one folder cannot read what an earlier run made of another.
pub fn visible_output(ws: &Workspace, run: Option<&RunId>, policy: &GrantPolicy) -> Result<Vec<PathBuf>> {
    let mut visible = policy.in_output();
    let Some(run) = run else {
        return Ok(visible);
    };
    let output = &policy.output;
    // Sub-agents are `parent.n`: the whole family shares what it wrote.
    let family = RunId(run.0.split('.').next().unwrap_or(&run.0).to_owned());
    // Replayed in order: a file the family moved away or deleted is no
    // longer its own, whoever put something at that name since.
    let mut own = std::collections::BTreeSet::new();
    for (_, status, changes) in changeset::changes_of(ws, &family)? {
        if status != ChangesetStatus::Applied {
            continue;
        }
        for change in changes {
            match change.kind {
                ChangeKind::Create | ChangeKind::Overwrite => {
                    own.insert(change.path);
                }
                ChangeKind::Rename | ChangeKind::Move => {
                    own.remove(&change.path);
                    own.extend(change.target);
                }
                ChangeKind::Delete => {
                    own.remove(&change.path);
                }
            }
        }
    }
    visible.extend(
        own.iter()
            .filter_map(|p| p.strip_prefix(output).ok().map(Path::to_path_buf)),
    );
    visible.sort();
    visible.dedup();
    Ok(visible)
}

/// Bytes of new or changed content one call may leave for the host to hash
/// and copy. A guest can make a sparse file of many GiB in a moment; the
/// host's work on it is bounded by this, checked from the sizes before any
/// byte is read.
pub const CALL_BYTE_BUDGET: u64 = 1 << 30;

/// Bytes of new or changed content one top-level run (with its sub-agents)
/// may write in all.
pub const RUN_BYTE_BUDGET: u64 = 8 << 30;

/// Bytes the run's family has written through applied changesets so far.
pub fn bytes_written(ws: &Workspace, run: &RunId) -> Result<u64> {
    let family = RunId(run.0.split('.').next().unwrap_or(&run.0).to_owned());
    Ok(changeset::changes_of(ws, &family)?
        .into_iter()
        .filter(|(_, status, _)| *status == ChangesetStatus::Applied)
        .flat_map(|(_, _, changes)| changes)
        .filter(|c| matches!(c.kind, ChangeKind::Create | ChangeKind::Overwrite))
        .fold(0u64, |sum, c| sum.saturating_add(c.size)))
}

/// One entry of a folder listing, as the comparison sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    File { size: u64, modified: std::time::SystemTime },
    Link(PathBuf),
    Folder,
}

pub type Listing = BTreeMap<PathBuf, Entry>;

/// `output/` as one call sees it: `dir` is mounted at `real`'s path.
#[derive(Debug)]
pub struct OutputStage {
    /// The workspace's `output/` (canonical).
    pub real: PathBuf,
    /// The folder the guest sees in its place.
    pub dir: PathBuf,
    before: Listing,
    /// Entries of other runs, present by name only (empty files), so that a
    /// tool picking a free name does not pick theirs; never applied back.
    placeholders: Vec<PathBuf>,
}

/// Names tried after a declared file's own (`name-1.ext` ...), as the
/// guest sdk's `unique` writes try them.
const MAX_TAKEN: usize = 1000;

impl OutputStage {
    /// Makes `dir` (or takes it if it is an empty folder, not a link) and copies into it each of
    /// `visible` (paths relative to `real`: files, or folders copied whole),
    /// keeping their modification times. A visible path that is missing, a
    /// link or not a regular file or folder is skipped: the guest sees only
    /// what it can safely be given.
    /// `declared` lists the files (relative to `real`) the call says it
    /// writes: where another run's file already holds that name or one of
    /// its free-name variants, an empty stand-in takes its place.
    pub fn populate(
        real: &Path,
        dir: &Path,
        visible: &[PathBuf],
        declared: &[PathBuf],
    ) -> std::io::Result<OutputStage> {
        match fs::create_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let folder = fs::symlink_metadata(dir)?.file_type().is_dir();
                if !folder || fs::read_dir(dir)?.next().is_some() {
                    return Err(e);
                }
            }
            made => made?,
        }
        let mut copied = 0u64;
        for rel in visible {
            if rel.as_os_str().is_empty() {
                copy_tree_into(real, dir, &mut copied)?;
                continue;
            }
            if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                continue;
            }
            let Some(src) = beneath_without_links(real, rel) else {
                continue;
            };
            let dst = dir.join(rel);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)?;
            }
            let meta = fs::symlink_metadata(&src)?;
            if meta.is_dir() {
                if !dst.exists() {
                    fs::create_dir(&dst)?;
                }
                copy_tree_into(&src, &dst, &mut copied)?;
            } else if meta.is_file() && !dst.exists() {
                copy_file(&src, &dst, &meta, &mut copied)?;
            }
        }
        let mut placeholders = Vec::new();
        for target in declared {
            mark_taken(real, dir, target, &mut placeholders)?;
        }
        let before = listing(dir)?;
        Ok(OutputStage {
            real: real.to_path_buf(),
            dir: dir.to_path_buf(),
            before,
            placeholders,
        })
    }

    /// What the call changed, as proposals against `real` whose staged
    /// content lies in `dir`.
    pub fn changes(&self, budget: u64) -> Result<Vec<ProposedChange>, String> {
        let mut after = listing(&self.dir).map_err(|e| format!("reading {} failed: {e}", self.dir.display()))?;
        let mut before = self.before.clone();
        for rel in &self.placeholders {
            if after.get(rel) != before.get(rel) {
                return Err(format!(
                    "it changed or removed {}, a file of another run that this one cannot see",
                    self.real.join(rel).display()
                ));
            }
            after.remove(rel);
            before.remove(rel);
        }
        diff(&self.real, &before, &self.dir, &after, budget)
    }

    /// Whether the guest was given nothing here: no copies, no stand-ins.
    pub fn given_nothing(&self) -> bool {
        self.before.is_empty() && self.placeholders.is_empty()
    }

    /// The host path of what the guest sees at `guest` (a path under `real`).
    pub fn host_path(&self, guest: &Path) -> Option<PathBuf> {
        let rel = guest.strip_prefix(&self.real).ok()?;
        rel.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
            .then(|| self.dir.join(rel))
    }
}

/// Puts an empty stand-in in `dir` for `target` and each `stem-N.ext`
/// after it that another run's file holds in `real`, up to the first free
/// one, and for each file of the target's folder named `stem-...`: a tool
/// writing `target` (or files named after it) under a free name then picks
/// one that is free in `real` too. Nothing else of `real` is shown, not
/// even its names.
fn mark_taken(real: &Path, dir: &Path, target: &Path, placeholders: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if target
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Ok(());
    }
    let stem = target
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    for n in 0..=MAX_TAKEN {
        let candidate = if n == 0 {
            target.to_path_buf()
        } else {
            target.with_file_name(format!("{stem}-{n}{ext}"))
        };
        if fs::symlink_metadata(real.join(&candidate)).is_err() {
            break;
        }
        stand_in(dir, candidate, placeholders)?;
    }
    // A tool that names several files after the target (`letter.docx` gives
    // `letter-Acme.docx`, `contract.pdf` gives `contract-p1-3.pdf`) must see
    // those names taken too: the names (never the content) of the files in
    // the target's folder that start with its stem and a hyphen.
    let folder = target.parent().unwrap_or(Path::new(""));
    let prefix = format!("{stem}-");
    if stem.is_empty() {
        return Ok(());
    }
    let Some(Ok(entries)) = beneath_without_links(real, folder).map(fs::read_dir) else {
        return Ok(());
    };
    let named_after = entries.flatten().filter(|entry| {
        entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix))
            && entry.file_type().is_ok_and(|t| t.is_file())
    });
    for entry in named_after.take(10 * MAX_TAKEN) {
        stand_in(dir, folder.join(entry.file_name()), placeholders)?;
    }
    Ok(())
}

/// An empty file at `candidate` in `dir`, unless something is there already.
fn stand_in(dir: &Path, candidate: PathBuf, placeholders: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let staged = dir.join(&candidate);
    if fs::symlink_metadata(&staged).is_ok() {
        return Ok(());
    }
    if let Some(parent) = staged.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::File::create(&staged)?;
    placeholders.push(candidate);
    Ok(())
}

/// `root/rel` if nothing on the way to it, nor it, is a symbolic link.
fn beneath_without_links(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for part in rel.components() {
        path.push(part);
        if fs::symlink_metadata(&path).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    Some(path)
}

fn copy_file(src: &Path, dst: &Path, meta: &fs::Metadata, copied: &mut u64) -> std::io::Result<()> {
    *copied = copied.saturating_add(meta.len());
    if *copied > CALL_BYTE_BUDGET {
        return Err(std::io::Error::other(format!(
            "this run's files in output/ come to more than {} MiB, more than one call can be given a copy of; \
             start a new run for further work on them (they stay in output/)",
            CALL_BYTE_BUDGET >> 20
        )));
    }
    fs::copy(src, dst)?;
    fs::File::options()
        .write(true)
        .open(dst)?
        .set_modified(meta.modified()?)
}

/// Copies the regular files and folders of `from` into the existing `to`;
/// links and other kinds are left out.
fn copy_tree_into(from: &Path, to: &Path, copied: &mut u64) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            if !dst.exists() {
                fs::create_dir(&dst)?;
            }
            copy_tree_into(&src, &dst, copied)?;
        } else if meta.is_file() && !dst.exists() {
            copy_file(&src, &dst, &meta, copied)?;
        }
    }
    Ok(())
}

/// Copies a folder tree, keeping modification times (so unchanged files
/// compare equal without reading them) and symlinks as symlinks.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src)?;
        if meta.is_symlink() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else if meta.is_file() {
            fs::copy(&src, &dst)?;
            fs::File::options()
                .write(true)
                .open(&dst)?
                .set_modified(meta.modified()?)?;
        }
    }
    Ok(())
}

/// Every entry beneath `root`, by path relative to it. Entries that are not
/// files, folders or links (a FIFO, a socket) are left out.
pub fn listing(root: &Path) -> std::io::Result<Listing> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)?;
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let e = if meta.is_symlink() {
                Entry::Link(fs::read_link(&path)?)
            } else if meta.is_dir() {
                stack.push(path);
                Entry::Folder
            } else if meta.is_file() {
                Entry::File {
                    size: meta.len(),
                    modified: meta.modified()?,
                }
            } else {
                continue;
            };
            out.insert(rel, e);
        }
    }
    Ok(out)
}

/// The changes that turn `root` (as `before` lists it) into `copy` (as
/// `after` lists it), as proposals whose staged content lies in `copy`.
/// Symlinks and files that became folders (or the reverse) are refused: they
/// cannot be applied safely. Content over `budget` bytes is refused from the
/// sizes alone, before any of it is hashed.
pub fn diff(
    root: &Path,
    before: &Listing,
    copy: &Path,
    after: &Listing,
    budget: u64,
) -> std::result::Result<Vec<ProposedChange>, String> {
    let hash = |p: &Path| changeset::hash_entry(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut creates, mut deletes, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0u64;
    for (rel, new) in after {
        if rel.to_str().is_none() {
            return Err(format!(
                "{} has a name that is not valid UTF-8, which deskhand cannot carry over; use another name",
                root.join(rel).display()
            ));
        }
        match (before.get(rel), new) {
            (None, Entry::File { size, .. }) => {
                bytes = bytes.saturating_add(*size);
                creates.push(rel.clone());
            }
            (None, Entry::Folder) => {}
            (None, Entry::Link(_)) => {
                return Err(format!("it created the symlink {}", root.join(rel).display()));
            }
            (Some(Entry::File { size, modified }), Entry::File { size: s2, modified: m2 }) => {
                if (size, modified) != (s2, m2) {
                    bytes = bytes.saturating_add(*s2);
                    changed.push(rel.clone());
                }
            }
            (Some(Entry::Folder), Entry::Folder) => {}
            (Some(Entry::Link(a)), Entry::Link(b)) if a == b => {}
            (Some(_), _) => {
                return Err(format!(
                    "it replaced {} with something of another kind (a file, folder or symlink)",
                    root.join(rel).display()
                ));
            }
        }
    }
    if bytes > budget {
        return Err(format!(
            "it left {} MiB of new or changed files, more than the {} MiB one call may write",
            bytes >> 20,
            budget >> 20
        ));
    }
    let mut changes = Vec::new();
    for rel in changed {
        // Changed in the folder itself since the copy was made (the person
        // edited it meanwhile): theirs wins, and nothing is applied.
        if let Some(Entry::File { size, modified }) = before.get(&rel) {
            let now =
                fs::symlink_metadata(root.join(&rel)).map_err(|e| format!("{}: {e}", root.join(&rel).display()))?;
            if now.len() != *size || now.modified().ok() != Some(*modified) {
                return Err(format!(
                    "{} changed while the command ran; run it again to work on the current file",
                    root.join(&rel).display()
                ));
            }
        }
        if hash(&root.join(&rel))? != hash(&copy.join(&rel))? {
            changes.push(ProposedChange::Overwrite {
                path: root.join(&rel).display().to_string(),
                staged: copy.join(&rel).display().to_string(),
            });
        }
    }
    for (rel, old) in before {
        if after.contains_key(rel) {
            continue;
        }
        match old {
            Entry::File { .. } => deletes.push(rel.clone()),
            Entry::Folder => {}
            Entry::Link(_) => return Err(format!("it removed the symlink {}", root.join(rel).display())),
        }
    }
    // A delete and a create of the same content are a rename or a move.
    let mut created: Vec<(PathBuf, String)> = creates
        .into_iter()
        .map(|rel| hash(&copy.join(&rel)).map(|h| (rel, h)))
        .collect::<std::result::Result<_, _>>()?;
    for rel in deletes {
        let h = hash(&root.join(&rel))?;
        let source = root.join(&rel).display().to_string();
        if let Some(i) = created.iter().position(|(_, c)| *c == h) {
            let (to, _) = created.remove(i);
            let target = root.join(&to).display().to_string();
            changes.push(if rel.parent() == to.parent() {
                ProposedChange::Rename { source, target }
            } else {
                ProposedChange::Move { source, target }
            });
        } else {
            changes.push(ProposedChange::Delete { path: source });
        }
    }
    for (rel, _) in created {
        changes.push(ProposedChange::Create {
            path: root.join(&rel).display().to_string(),
            staged: copy.join(&rel).display().to_string(),
        });
    }
    Ok(changes)
}
