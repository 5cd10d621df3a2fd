//! A run's grants as one policy: `output/` and each granted folder, checked
//! (it exists, is a folder, does not hold the workspace) and made canonical
//! once, by [`crate::workspace::Workspace::policy`]. Everything that
//! confines a call is made from it: the wasm sandbox's mounts
//! ([`GrantPolicy::sandbox`]), the folders changes may land in
//! ([`GrantPolicy::change_roots`]), what of `output/` a run may see, and the
//! native shell's mounts ([`GrantPolicy::shell_mounts`]).

use std::path::{Path, PathBuf};

use deskhand_types::Access;

use crate::error::{Error, Result};
use crate::wasm::{Limits, Mount, Sandbox};

/// What a run may read and where its changes may land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPolicy {
    /// `output/`, canonical: always readable, changed only through changesets.
    pub output: PathBuf,
    /// The granted folders, canonical, with their access, in the order granted.
    pub folders: Vec<(PathBuf, Access)>,
}

/// How the native shell sees one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellMount {
    /// Bound as it is, read-only.
    ReadOnly(PathBuf),
    /// A folder changes may land in: the command gets a copy, compared
    /// afterwards (the first is `output/`, staged with only what the run may see).
    Copied(PathBuf),
}

impl GrantPolicy {
    /// The wasm sandbox: each granted folder at its canonical path,
    /// read-only even when granted read-write (a tool proposes changes there;
    /// the host applies them as a changeset), and `output/` read-only (a call
    /// that may write gets its own copy in its place: see
    /// [`crate::call::prepare`]); a grant inside `output/` is seen through it.
    pub fn sandbox(&self, limits: Limits) -> Result<Sandbox> {
        let mut mounts = vec![mount(self.output.clone())?];
        for (canonical, _) in &self.folders {
            if !canonical.starts_with(&self.output) && !mounts.iter().any(|m| m.host == *canonical) {
                mounts.push(mount(canonical.clone())?);
            }
        }
        Ok(Sandbox {
            mounts,
            limits,
            scratch: None,
            network: None,
        })
    }

    /// The folders changes may land in: `output/` first, then every folder
    /// granted read-write.
    pub fn change_roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.output.clone()];
        for (canonical, access) in &self.folders {
            if access.is_writable() && !roots.contains(canonical) {
                roots.push(canonical.clone());
            }
        }
        roots
    }

    /// The granted folders that lie in `output/`, relative to it (empty: all of it).
    pub fn in_output(&self) -> Vec<PathBuf> {
        self.folders
            .iter()
            .filter_map(|(canonical, _)| canonical.strip_prefix(&self.output).ok().map(Path::to_path_buf))
            .collect()
    }

    /// The native shell's view, from the same folders as the wasm sandbox:
    /// what it may only read, bound as it is; `output/` and each folder
    /// granted read-write, as copies.
    pub fn shell_mounts(&self) -> Result<Vec<ShellMount>> {
        let roots = self.change_roots();
        let mut mounts: Vec<ShellMount> = self
            .sandbox(Limits::default())?
            .mounts
            .into_iter()
            .filter(|m| !roots.contains(&m.host))
            .map(|m| ShellMount::ReadOnly(m.host))
            .collect();
        mounts.extend(roots.into_iter().map(ShellMount::Copied));
        Ok(mounts)
    }

    /// Whether `path` (canonical) lies where a change may land (never a root itself).
    pub fn may_change(&self, path: &Path) -> bool {
        self.change_roots().iter().any(|r| path.starts_with(r) && path != r)
    }
}

fn mount(host: PathBuf) -> Result<Mount> {
    let guest = host
        .to_str()
        .ok_or_else(|| Error::BadPath {
            path: host.display().to_string(),
            reason: "folder names must be valid UTF-8 to be granted",
        })?
        .to_owned();
    Ok(Mount {
        host,
        guest,
        access: Access::ReadOnly,
    })
}
