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

/// Entries of one folder that a walk could not see because their names are
/// not valid UTF-8 (a name written in Latin-1, say). The sandbox passes names
/// to tools as UTF-8 only, so the host refuses to hand such a name over and
/// the tool never learns it; it learns only how many there were, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableNames {
    pub folder: PathBuf,
    pub count: usize,
}

impl UnreadableNames {
    /// The sentence a person reads: where, how many, and what to do.
    pub fn why(&self) -> String {
        let (what, it) = match self.count {
            1 => ("1 entry has a name that is".to_owned(), "it"),
            n => (format!("{n} entries have names that are"), "them"),
        };
        format!(
            "in {}, {what} not valid UTF-8, which the sandbox cannot pass to a tool; rename {it} to read {it}",
            self.folder.display()
        )
    }
}

/// What a walk left out; every tool that walks reports it the same way, as
/// `unreadable_names` in its JSON ([`Walked::json`]) and in its text
/// ([`Walked::note`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    pub unreadable_names: Vec<UnreadableNames>,
}

impl Walked {
    /// How many entries were left out.
    pub fn skipped(&self) -> usize {
        self.unreadable_names.iter().map(|u| u.count).sum()
    }

    /// `[{"folder": ..., "count": ..., "why": ...}]`, one per folder.
    pub fn json(&self) -> serde_json::Value {
        self.unreadable_names
            .iter()
            .map(|u| serde_json::json!({"folder": u.folder.display().to_string(), "count": u.count, "why": u.why()}))
            .collect()
    }

    /// `"; skipped: ..."` to end a tool's one-line text with, or nothing.
    pub fn note(&self) -> String {
        if self.unreadable_names.is_empty() {
            return String::new();
        }
        let why: Vec<String> = self.unreadable_names.iter().map(UnreadableNames::why).collect();
        format!("; skipped {} entries: {}", self.skipped(), why.join("; "))
    }
}

/// Walks `root` depth-first in name order (a folder, then its contents)
/// without following symlinks, calling `visit` with each entry's path
/// (`root` joined with its relative path) and its own, unfollowed metadata,
/// until `visit` returns false. Only `root`'s direct entries are visited
/// unless `recursive`; `root` itself is not visited.
///
/// `root` must itself be a folder (see [`require_folder`]). A folder that
/// cannot be read, or an entry whose metadata cannot be, ends the walk with
/// its error. An entry whose name is not valid UTF-8 is skipped and counted
/// in what the walk returns, so one such name does not hide the rest.
pub fn walk(
    root: &Path,
    recursive: bool,
    visit: &mut dyn FnMut(&Path, &fs::Metadata) -> bool,
) -> Result<Walked, ToolError> {
    require_folder(root)?;
    let mut walked = Walked::default();
    let mut pending = sorted_entries(root, &mut walked)?;
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, &e))?;
        if !visit(&path, &meta) {
            return Ok(walked);
        }
        if recursive && meta.is_dir() {
            pending.extend(sorted_entries(&path, &mut walked)?);
        }
    }
    Ok(walked)
}

/// A folder's entries in reverse name order, ready to pop in name order;
/// those whose names are not UTF-8 are counted in `walked` instead.
fn sorted_entries(dir: &Path, walked: &mut Walked) -> Result<Vec<PathBuf>, ToolError> {
    let (names, unreadable) = names::read(dir)?;
    if unreadable > 0 {
        walked.unreadable_names.push(UnreadableNames {
            folder: dir.to_path_buf(),
            count: unreadable,
        });
    }
    let mut paths: Vec<PathBuf> = names.into_iter().map(|n| dir.join(n)).collect();
    paths.sort_by(|a, b| b.cmp(a));
    Ok(paths)
}

/// A folder's entry names, and how many it holds whose names are not UTF-8.
#[cfg(target_os = "wasi")]
mod names {
    use std::path::{Component, Path, PathBuf};

    use wasip2::filesystem::preopens::get_directories;
    use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

    use crate::{ToolError, path_error};

    /// Reads the folder through `wasi:filesystem` itself: the standard
    /// library ends a listing at the first name the host cannot pass (it
    /// answers `illegal-byte-sequence` for it), which would hide every entry
    /// after it; the host's listing goes on past it.
    pub fn read(dir: &Path) -> Result<(Vec<String>, usize), ToolError> {
        let folder = open(dir)?;
        let stream = folder.read_directory().map_err(|e| error(dir, e))?;
        let (mut names, mut unreadable) = (Vec::new(), 0);
        loop {
            match stream.read_directory_entry() {
                Ok(Some(entry)) if entry.name == "." || entry.name == ".." => {}
                Ok(Some(entry)) => names.push(entry.name),
                Ok(None) => return Ok((names, unreadable)),
                Err(ErrorCode::IllegalByteSequence) => unreadable += 1,
                Err(e) => return Err(error(dir, e)),
            }
        }
    }

    /// Opens `dir` beneath the preopened folder that holds it (the longest
    /// match, as the C library finds it for every other call).
    fn open(dir: &Path) -> Result<Descriptor, ToolError> {
        let absolute = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(dir)
        };
        let outside = || ToolError::Denied(path_error(dir, "outside the folders granted to this call"));
        let (base, rest) = get_directories()
            .into_iter()
            .filter_map(|(descriptor, at)| {
                let rest = absolute.strip_prefix(&at).ok()?.to_path_buf();
                Some((at.len(), descriptor, rest))
            })
            .max_by_key(|(len, ..)| *len)
            .map(|(_, descriptor, rest)| (descriptor, rest))
            .ok_or_else(outside)?;
        if rest.components().all(|c| c == Component::CurDir) {
            return Ok(base);
        }
        let rest = rest.to_str().ok_or_else(outside)?;
        base.open_at(PathFlags::empty(), rest, OpenFlags::DIRECTORY, DescriptorFlags::READ)
            .map_err(|e| error(dir, e))
    }

    fn error(dir: &Path, code: ErrorCode) -> ToolError {
        let pe = path_error(dir, code.message());
        match code {
            ErrorCode::NoEntry => ToolError::NotFound(pe),
            ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => ToolError::Denied(pe),
            _ => ToolError::Io(pe),
        }
    }
}

/// A folder's entry names, and how many it holds whose names are not UTF-8.
#[cfg(not(target_os = "wasi"))]
mod names {
    use std::path::Path;

    use crate::{ToolError, io_error};

    pub fn read(dir: &Path) -> Result<(Vec<String>, usize), ToolError> {
        let (mut names, mut unreadable) = (Vec::new(), 0);
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))? {
            match entry.map_err(|e| io_error(dir, &e))?.file_name().into_string() {
                Ok(name) => names.push(name),
                // The same as in the sandbox, where the host never passes such a name.
                Err(_) => unreadable += 1,
            }
        }
        Ok((names, unreadable))
    }
}

/// Compares names ignoring case, runs of digits by their value.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    let (mut x, mut y) = (a.as_str(), b.as_str());
    loop {
        match (x.chars().next(), y.chars().next()) {
            (None, None) => return a.cmp(&b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (n, rest_x) = split_digits(x);
                let (m, rest_y) = split_digits(y);
                let (n, m) = (n.trim_start_matches('0'), m.trim_start_matches('0'));
                match n.len().cmp(&m.len()).then_with(|| n.cmp(m)) {
                    std::cmp::Ordering::Equal => (x, y) = (rest_x, rest_y),
                    other => return other,
                }
            }
            (Some(c), Some(d)) if c == d => (x, y) = (&x[c.len_utf8()..], &y[d.len_utf8()..]),
            (Some(c), Some(d)) => return c.cmp(&d),
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}
