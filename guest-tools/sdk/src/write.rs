//! Writing new files under `output/`: never over an existing file, and never
//! so that a reader could see half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::{ToolError, io_error, path_error};

/// How many names `unique` tries (`name.ext`, then `name-1.ext` up to
/// `name-999.ext`) before giving up.
const MAX_TRIES: u32 = 1000;

/// Writes `content` as a new file at `target` and returns the path written;
/// see [`write_new_with`] for how, and for what `unique` does.
pub fn write_new(target: &Path, content: &[u8], unique: bool) -> Result<PathBuf, ToolError> {
    let ((), written) = write_new_with(target, unique, |tmp, file| {
        file.write_all(content).map_err(|e| io_error(tmp, &e))
    })?;
    Ok(written)
}

/// Writes a new file at `target`, its content produced by `fill`, and
/// returns what `fill` returned with the path written.
///
/// `target`'s folder must exist. `fill` writes to a new temporary file
/// (`.name.deskhand-tmp-…`, its path passed along so that a walk can skip it)
/// in the same folder; the file is then synced and hard-linked into place.
/// The link fails if the target exists, so a file is never overwritten and a
/// reader never sees half of one. A taken name is `already-exists`, or with
/// `unique` moves on to `name-1.ext`, `name-2.ext`, … (up to 999). The
/// temporary file is removed whatever happens.
pub fn write_new_with<T>(
    target: &Path,
    unique: bool,
    fill: impl FnOnce(&Path, &mut fs::File) -> Result<T, ToolError>,
) -> Result<(T, PathBuf), ToolError> {
    let (dir, name) = target_parts(target)?;
    let tmp = dir.join(format!(".{name}.deskhand-tmp-{}", unique_suffix()));
    let result = fill_tmp(&tmp, target, fill).and_then(|value| Ok((value, link_into_place(&tmp, target, unique)?)));
    let _ = fs::remove_file(&tmp);
    result
}

/// The folder `target` goes in, which must exist, and its file name.
fn target_parts(target: &Path) -> Result<(&Path, String), ToolError> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(ToolError::InvalidArgs(format!(
            "{} does not name a file",
            target.display()
        )));
    };
    let dir_meta = fs::metadata(dir).map_err(|e| io_error(dir, &e))?;
    if !dir_meta.is_dir() {
        return Err(ToolError::InvalidArgs(format!("{} is not a folder", dir.display())));
    }
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// Creates `tmp` (it must not exist), lets `fill` write it, and syncs it.
/// A folder the sandbox holds read-only is named as `target`'s problem,
/// with what to do instead, not as the temporary file's.
fn fill_tmp<T>(
    tmp: &Path,
    target: &Path,
    fill: impl FnOnce(&Path, &mut fs::File) -> Result<T, ToolError>,
) -> Result<T, ToolError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                ToolError::Denied(path_error(
                    target,
                    "its folder is read-only in the sandbox: tools write new files under output/ only; \
                     a file in a folder granted read-write is created or changed by proposing it \
                     (fs save), which deskhand applies after its checks and your approval",
                ))
            }
            _ => io_error(tmp, &e),
        })?;
    let value = fill(tmp, &mut file)?;
    file.sync_all().map_err(|e| io_error(tmp, &e))?;
    Ok(value)
}

/// Hard-links the synced temporary file to `target`, or with `unique` to
/// the first free `name-N.ext`.
fn link_into_place(tmp: &Path, target: &Path, unique: bool) -> Result<PathBuf, ToolError> {
    let stem = target
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    for n in 0..MAX_TRIES {
        let candidate = if n == 0 {
            target.to_path_buf()
        } else {
            target.with_file_name(format!("{stem}-{n}{ext}"))
        };
        match fs::hard_link(tmp, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && unique => continue,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ToolError::AlreadyExists(path_error(
                    target,
                    "already exists; deskhand never overwrites a file (pass \"unique\": true to pick a free name)",
                )));
            }
            Err(e) => return Err(io_error(&candidate, &e)),
        }
    }
    Err(ToolError::AlreadyExists(path_error(
        target,
        format!("no free name after {MAX_TRIES} tries"),
    )))
}

/// A suffix that keeps concurrent temporary files apart: the time in
/// nanoseconds, in hex.
fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}
