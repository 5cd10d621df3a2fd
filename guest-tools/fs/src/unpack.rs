//! `unpack`: the files of a zip archive (a skill or plugin someone shared)
//! written as new files under a folder of output/, so that the host, not
//! this guest, decides what is kept. The archive is a stranger's file: it
//! is read here, in the sandbox, with caps on entries and bytes; names are
//! taken only when they stay inside the target (`..`, absolute paths and
//! links are left out and listed); one folder that holds everything is
//! stripped, so `my-skill.zip` holding `my-skill/SKILL.md` unpacks as
//! `SKILL.md`.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use deskhand_guest::{Output, ToolError, io_error, output, path_error, write_new};
use serde::Deserialize;
use serde_json::{Value, json};

/// Entries an archive may hold.
const MAX_ENTRIES: usize = 2000;
/// Bytes all its files may unpack to.
const MAX_TOTAL: u64 = 64 * 1024 * 1024;
/// Bytes of the archive itself.
const MAX_ARCHIVE: u64 = 64 * 1024 * 1024;

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["path", "to"], "additionalProperties": false,
        "properties": {
            "path": {"type": "string", "description": "a .zip (or .skill) archive in a granted folder"},
            "to": {"type": "string", "description": "a new folder under output/ to unpack into"}
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnpackArgs {
    path: PathBuf,
    to: PathBuf,
}

pub fn unpack(args: UnpackArgs) -> Result<Output, ToolError> {
    let meta = fs::metadata(&args.path).map_err(|e| io_error(&args.path, &e))?;
    if meta.len() > MAX_ARCHIVE {
        return Err(ToolError::TooLarge(path_error(
            &args.path,
            format!("the archive is over {} MiB", MAX_ARCHIVE >> 20),
        )));
    }
    if args.to.exists() {
        return Err(ToolError::InvalidArgs(format!(
            "{} already exists; unpack into a new folder",
            args.to.display()
        )));
    }
    let file = fs::File::open(&args.path).map_err(|e| io_error(&args.path, &e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        ToolError::InvalidArgs(format!(
            "{} is not a zip archive ({e}); give a .zip or .skill file",
            args.path.display()
        ))
    })?;
    if archive.len() > MAX_ENTRIES {
        return Err(ToolError::TooLarge(path_error(
            &args.path,
            format!(
                "the archive holds {} entries; at most {MAX_ENTRIES} are unpacked",
                archive.len()
            ),
        )));
    }
    // First pass: which names are kept, and the one folder they share, if any.
    let mut kept: Vec<(usize, PathBuf)> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| bad(&args.path, &e))?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("entry {i}"));
        if entry.is_dir() {
            continue;
        }
        let safe = entry
            .enclosed_name()
            .filter(|p| p.components().all(|c| matches!(c, Component::Normal(_))) && !p.as_os_str().is_empty());
        match safe {
            Some(p) if !entry.is_symlink() => {
                total = total.saturating_add(entry.size());
                kept.push((i, p));
            }
            _ => left_out.push(name),
        }
    }
    if total > MAX_TOTAL {
        return Err(ToolError::TooLarge(path_error(
            &args.path,
            format!("the archive unpacks to more than {} MiB", MAX_TOTAL >> 20),
        )));
    }
    if kept.is_empty() {
        return Err(ToolError::InvalidArgs(format!(
            "{} holds no file that can be unpacked safely",
            args.path.display()
        )));
    }
    let top = shared_folder(kept.iter().map(|(_, p)| p.as_path()));
    let mut written = Vec::new();
    let mut bytes = 0u64;
    for (i, name) in &kept {
        let rel = match &top {
            Some(t) => name.strip_prefix(t).unwrap_or(name).to_path_buf(),
            None => name.clone(),
        };
        let target = args.to.join(&rel);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        }
        let mut entry = archive.by_index(*i).map_err(|e| bad(&args.path, &e))?;
        let mut content = Vec::new();
        // Never more than the entry says, nor than is left of the cap.
        (&mut entry)
            .take(MAX_TOTAL - bytes + 1)
            .read_to_end(&mut content)
            .map_err(|e| bad(&args.path, &e))?;
        bytes += content.len() as u64;
        if bytes > MAX_TOTAL {
            return Err(ToolError::TooLarge(path_error(
                &args.path,
                format!("the archive unpacks to more than {} MiB", MAX_TOTAL >> 20),
            )));
        }
        write_new(&target, &content, false)?;
        written.push(rel.display().to_string());
    }
    written.sort();
    let mut text = format!("unpacked {} file(s) into {}", written.len(), args.to.display());
    if !left_out.is_empty() {
        text.push_str(&format!(
            "; left out (links or names outside the folder): {}",
            left_out.join(", ")
        ));
    }
    Ok(output(
        &json!({"to": args.to.display().to_string(), "files": written, "left_out": left_out, "bytes": bytes}),
        text,
    ))
}

fn bad(path: &Path, e: &dyn std::fmt::Display) -> ToolError {
    ToolError::InvalidArgs(format!("{}: the archive is damaged ({e})", path.display()))
}

/// The one folder every path starts with, if there is one (and a path deeper than it).
fn shared_folder<'a>(mut paths: impl Iterator<Item = &'a Path>) -> Option<PathBuf> {
    let first = paths.next()?;
    let mut parts = first.components();
    let top = parts.next()?;
    parts.next()?;
    let top = PathBuf::from(top.as_os_str());
    for p in paths {
        let mut c = p.components();
        if c.next().map(|c| c.as_os_str()) != Some(top.as_os_str()) || c.next().is_none() {
            return None;
        }
    }
    Some(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_folder_that_holds_everything_is_stripped() {
        let p = |s: &str| PathBuf::from(s);
        let all = [p("my-skill/SKILL.md"), p("my-skill/scripts/a.py")];
        assert_eq!(shared_folder(all.iter().map(PathBuf::as_path)), Some(p("my-skill")));
        let flat = [p("SKILL.md"), p("scripts/a.py")];
        assert_eq!(shared_folder(flat.iter().map(PathBuf::as_path)), None);
        let two = [p("a/SKILL.md"), p("b/SKILL.md")];
        assert_eq!(shared_folder(two.iter().map(PathBuf::as_path)), None);
    }
}
