//! The workspace: the folder a person works in. It has `context/`
//! (standing instructions and reference material), `projects/` (work in
//! progress), `output/` (deliverables), an instruction file and a memory
//! file at its root, and `.deskhand/` (the journal, trash and state).
//!
//! This module also turns a task's grants into the [`Sandbox`] a tool call
//! sees, and checks the paths a call's arguments name against it.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use deskhand_types::{Access, Grant};

use crate::error::{Error, Result};
use crate::grants::GrantPolicy;
use crate::journal::Journal;
use crate::wasm::{Limits, Sandbox};

pub const INSTRUCTIONS_FILE: &str = "INSTRUCTIONS.md";
pub const MEMORY_FILE: &str = "MEMORY.md";
pub const STATE_DIR: &str = ".deskhand";
const JOURNAL_FILE: &str = "journal.db";

const INSTRUCTIONS_TEMPLATE: &str = "\
# Instructions

Standing instructions deskhand reads before every task in this workspace.
Write them as you would brief a careful assistant. For example:

- Dates in file names: YYYY-MM-DD.
- Currency: EUR, two decimals; spreadsheets keep totals as formulas.
- Never touch anything under projects/archive/.
- Deliverables go in output/, named after the task and the date.
";

const MEMORY_TEMPLATE: &str = "\
# Memory

What deskhand has learned from your feedback, one point per line. deskhand
shows you every change to this file before it is written; edit it freely.

";

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The workspace was created; these paths (relative) are new.
    Created { created: Vec<String> },
    /// It was already a workspace; nothing changed. `missing` lists standard
    /// parts that someone removed, for the person to restore if they want.
    AlreadyWorkspace { missing: Vec<String> },
}

#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    journal: Journal,
}

impl Workspace {
    /// Creates the layout in `dir` (creating `dir` if needed). Existing files
    /// are never overwritten; on an existing workspace nothing changes.
    pub fn init(dir: &Path) -> Result<(Workspace, InitOutcome)> {
        let journal_path = dir.join(STATE_DIR).join(JOURNAL_FILE);
        if journal_path.is_file() {
            let missing = ["context", "projects", "output", INSTRUCTIONS_FILE, MEMORY_FILE]
                .into_iter()
                .filter(|p| !dir.join(p).exists())
                .map(String::from)
                .collect();
            return Ok((Workspace::open(dir)?, InitOutcome::AlreadyWorkspace { missing }));
        }

        // What deskhand creates is the person's alone (0700 folders, 0600
        // files, whatever the umask): the journal holds whole conversations
        // and the workspace the person's documents. A folder that already
        // existed keeps its permissions.
        if !dir.exists() {
            private_dir_builder(true).create(dir).map_err(Error::io(dir))?;
        }
        let mut created = Vec::new();
        for sub in ["context", "projects", "output", STATE_DIR, ".deskhand/trash"] {
            let path = dir.join(sub);
            if !path.exists() {
                private_dir_builder(false).create(&path).map_err(Error::io(&path))?;
                created.push(format!("{sub}/"));
            }
        }
        for (name, template) in [
            (INSTRUCTIONS_FILE, INSTRUCTIONS_TEMPLATE),
            (MEMORY_FILE, MEMORY_TEMPLATE),
        ] {
            if write_new(&dir.join(name), template.as_bytes())? {
                created.push(name.into());
            }
        }
        // The journal comes last: its presence marks a finished init, so an
        // interrupted one is simply completed by running init again.
        Journal::open(&journal_path)?;
        created.push(format!("{STATE_DIR}/{JOURNAL_FILE}"));
        Ok((Workspace::open(dir)?, InitOutcome::Created { created }))
    }

    pub fn open(dir: &Path) -> Result<Workspace> {
        let journal_path = dir.join(STATE_DIR).join(JOURNAL_FILE);
        if !journal_path.is_file() {
            return Err(Error::NotAWorkspace { path: dir.into() });
        }
        let root = dir.canonicalize().map_err(Error::io(dir))?;
        let journal = Journal::open(&journal_path)?;
        Ok(Workspace { root, journal })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn output_dir(&self) -> PathBuf {
        self.root.join("output")
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The run's grants as one policy ([`GrantPolicy`]): each checked and
    /// made canonical. Relative grants are relative to the workspace root.
    pub fn policy(&self, grants: &[Grant]) -> Result<GrantPolicy> {
        Ok(GrantPolicy {
            output: self.canonical_output()?,
            folders: self.granted_folders(grants)?,
        })
    }

    /// The wasm sandbox of a call with these grants ([`GrantPolicy::sandbox`]).
    pub fn sandbox(&self, grants: &[Grant], limits: Limits) -> Result<Sandbox> {
        self.policy(grants)?.sandbox(limits)
    }

    /// The folders a run with these grants may change through changesets
    /// ([`GrantPolicy::change_roots`]): `output/` and every folder granted read-write.
    pub fn change_roots(&self, grants: &[Grant]) -> Result<Vec<PathBuf>> {
        Ok(self.policy(grants)?.change_roots())
    }

    /// The granted folders that lie in `output/`, relative to it (empty: all of it).
    pub fn granted_in_output(&self, grants: &[Grant]) -> Result<Vec<PathBuf>> {
        Ok(self.policy(grants)?.in_output())
    }

    fn canonical_output(&self) -> Result<PathBuf> {
        self.output_dir().canonicalize().map_err(|_| Error::GrantMissing {
            path: self.output_dir(),
        })
    }

    /// Each grant checked (it exists, is a folder, and a read-write grant
    /// does not hold the workspace's own files) and made canonical.
    fn granted_folders(&self, grants: &[Grant]) -> Result<Vec<(PathBuf, Access)>> {
        grants
            .iter()
            .map(|grant| {
                let path = if grant.path.is_absolute() {
                    grant.path.clone()
                } else {
                    self.root.join(&grant.path)
                };
                let canonical = path
                    .canonicalize()
                    .map_err(|_| Error::GrantMissing { path: path.clone() })?;
                if !canonical.is_dir() {
                    return Err(Error::GrantNotFolder { path });
                }
                // A grant holding the workspace would show tools its journal,
                // its trash and every run's deliverables: none of it is theirs.
                if self.root.starts_with(&canonical) {
                    return Err(Error::GrantTooWide { path });
                }
                Ok((canonical, grant.access))
            })
            .collect()
    }

    /// Resolves a path a call's arguments name to the absolute path the
    /// guest sees, refusing `..` and anything outside the sandbox's mounts.
    /// Symlinks are resolved here so a link cannot point a check elsewhere.
    pub fn resolve_read(&self, sandbox: &Sandbox, arg: &str) -> Result<PathBuf> {
        let path = self.resolve(arg)?;
        if sandbox.mounts.iter().any(|m| path.starts_with(&m.host)) {
            Ok(path)
        } else {
            Err(Error::OutsideGrants { path: arg.into() })
        }
    }

    /// Like [`resolve_read`](Self::resolve_read), for a path to be written:
    /// it must lie under `output/` or in a folder granted read-write (where
    /// the write arrives as a proposed change, applied by the host).
    pub fn resolve_write(&self, arg: &str, policy: &GrantPolicy) -> Result<PathBuf> {
        let path = self.resolve(arg)?;
        if policy.may_change(&path) {
            Ok(path)
        } else {
            Err(Error::WriteOutsideOutput {
                path: arg.into(),
                output: self.output_dir(),
            })
        }
    }

    /// The workspace's own state folder (`.deskhand/`).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Resolves a path as tool arguments are resolved (relative to the
    /// workspace, symlinks followed, `..` refused), without checking grants.
    pub fn resolve_path(&self, arg: &str) -> Result<PathBuf> {
        self.resolve(arg)
    }

    fn resolve(&self, arg: &str) -> Result<PathBuf> {
        if arg.is_empty() {
            return Err(Error::BadPath {
                path: arg.into(),
                reason: "it is empty",
            });
        }
        let raw = Path::new(arg);
        if raw.components().any(|c| c == Component::ParentDir) {
            return Err(Error::BadPath {
                path: arg.into(),
                reason: "`..` may not appear in a path; name the folder directly",
            });
        }
        let joined = if raw.is_absolute() {
            raw.to_path_buf()
        } else {
            self.root.join(raw)
        };
        // Canonicalize the longest existing prefix; keep the rest as written.
        let mut existing = joined.as_path();
        let mut rest = Vec::new();
        loop {
            match existing.canonicalize() {
                Ok(canonical) => {
                    let mut out = canonical;
                    out.extend(rest.iter().rev());
                    return Ok(out);
                }
                Err(_) => match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_owned());
                        existing = parent;
                    }
                    _ => return Ok(joined),
                },
            }
        }
    }

    /// Reads a file a tool wrote under `output/` through a capability handle:
    /// a symlink the guest planted there cannot lead the host outside.
    pub fn read_output(&self, relative: &Path) -> Result<Vec<u8>> {
        read_beneath(&self.output_dir(), relative)
    }
}

/// A builder of folders only the person can enter (0700 on Unix).
fn private_dir_builder(recursive: bool) -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

/// Creates `path` (0600) with `content` unless it exists; true if it was created.
fn write_new(path: &Path, content: &[u8]) -> Result<bool> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(content)
                .and_then(|()| f.sync_all())
                .map_err(Error::io(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::Io {
            path: path.into(),
            source: e,
        }),
    }
}

/// Reads `relative` beneath `dir` through a capability handle: nothing on the
/// way (a symbolic link a guest planted, `..`) can lead outside `dir`.
pub fn read_beneath(dir: &Path, relative: &Path) -> Result<Vec<u8>> {
    let handle = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority()).map_err(Error::io(dir))?;
    let mut file = handle.open(relative).map_err(Error::io(dir.join(relative)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(Error::io(dir.join(relative)))?;
    Ok(bytes)
}
