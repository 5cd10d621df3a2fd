//! Reading a granted folder: the one walk every tool uses, so that `fs list`,
//! an inventory and a rename proposal see the same entries in the same order.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{ToolError, io_error};

/// The kind of an entry as the tools report it: `symlink`, `dir`, `file` or
/// `other`. Pass the type from [`fs::symlink_metadata`], so that a link is
/// reported as one rather than as what it points to.
pub fn kind(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    }
}

/// The modification time in RFC 3339, UTC, to the second
/// (`2026-03-14T09:30:00Z`); `None` where the file system keeps none.
pub fn modified_rfc3339(meta: &fs::Metadata) -> Option<String> {
    meta.modified()
        .ok()
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
}

/// Checks that `path` is itself a folder (a symlink to one is not), and
/// returns its metadata; anything else is `invalid-args`.
pub fn require_folder(path: &Path) -> Result<fs::Metadata, ToolError> {
    let meta = fs::symlink_metadata(path).map_err(|e| io_error(path, &e))?;
    if !meta.is_dir() {
        return Err(ToolError::InvalidArgs(format!("{} is not a folder", path.display())));
    }
    Ok(meta)
}

/// Walks `root` depth-first in name order (a folder, then its contents)
/// without following symlinks, calling `visit` with each entry's path
/// (`root` joined with its relative path) and its own, unfollowed metadata,
/// until `visit` returns false. Only `root`'s direct entries are visited
/// unless `recursive`; `root` itself is not visited.
///
/// `root` must itself be a folder (see [`require_folder`]). A folder that
/// cannot be read, or an entry whose metadata cannot be, ends the walk with
/// its error.
pub fn walk(
    root: &Path,
    recursive: bool,
    visit: &mut dyn FnMut(&Path, &fs::Metadata) -> bool,
) -> Result<(), ToolError> {
    require_folder(root)?;
    let mut pending = sorted_entries(root)?;
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, &e))?;
        if !visit(&path, &meta) {
            return Ok(());
        }
        if recursive && meta.is_dir() {
            pending.extend(sorted_entries(&path)?);
        }
    }
    Ok(())
}

/// A folder's entries in reverse name order, ready to pop in name order.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_error(dir, &e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| io_error(dir, &e))?;
    names.sort_by(|a, b| b.cmp(a));
    Ok(names)
}
