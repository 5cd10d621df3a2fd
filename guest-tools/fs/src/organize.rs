//! `sort` and `duplicates`: tidying a folder, as proposals.
//!
//! `sort` proposes moving each file directly in a folder into a sub-folder
//! by its type (`Documents`, `Images`, ...) or by its month (`2026-03`, from
//! a date in its name or else its modification time), and writes the list
//! as a CSV under `output/`. `duplicates` finds files with the same content
//! under a folder (same size, then the same SHA-256), writes a report, and,
//! when asked, proposes deleting every copy but the oldest of each group.
//! Neither changes anything itself: the moves and deletions go back to
//! deskhand as a proposed changeset, which the person sees (a deletion is
//! always asked for) and can undo.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use deskhand_guest::{
    Change, Output, PathPair, ToolError, csv_field, io_error, modified_rfc3339, proposal, walk, write_new,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// The date reading `rename-by-date` does, compiled in here too.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "sort needs `find`, not every helper of the module")
)]
#[path = "../../rename-by-date/src/dates.rs"]
mod dates;

const NOT_APPLIED: &str = "Nothing was changed yet: deskhand shows the proposal and applies it where the folder is granted read-write, undoably.";

/// The folders `sort` by type uses, with the extensions (lowercase) each takes.
const TYPES: &[(&str, &[&str])] = &[
    (
        "Documents",
        &["pdf", "doc", "docx", "odt", "rtf", "txt", "md", "pages", "tex", "epub"],
    ),
    ("Spreadsheets", &["xlsx", "xlsm", "xls", "ods", "csv", "tsv", "numbers"]),
    ("Presentations", &["pptx", "ppt", "odp", "key"]),
    (
        "Images",
        &[
            "jpg", "jpeg", "png", "gif", "heic", "heif", "webp", "tif", "tiff", "bmp", "svg", "raw", "cr2", "nef",
        ],
    ),
    ("Audio", &["mp3", "wav", "m4a", "aac", "flac", "ogg", "opus"]),
    ("Video", &["mp4", "mov", "mkv", "avi", "webm", "m4v"]),
    ("Archives", &["zip", "tar", "gz", "tgz", "7z", "rar", "bz2", "xz"]),
];
const OTHER: &str = "Other";

pub fn sort_schema() -> Value {
    json!({
        "type": "object", "required": ["folder", "output"], "additionalProperties": false,
        "properties": {
            "folder": {"type": "string", "description": "the folder whose files to sort, granted read-write"},
            "by": {
                "type": "string", "enum": ["type", "month"], "default": "type",
                "description": "type: Documents, Spreadsheets, Presentations, Images, Audio, Video, Archives, Other; month: YYYY-MM from a date in the name, else the modification time (UTC)"
            },
            "output": {"type": "string", "description": "the list of moves, a CSV to write under output/ (a free name is picked if it is taken)"}
        }
    })
}

pub fn duplicates_schema() -> Value {
    json!({
        "type": "object", "required": ["folder", "output"], "additionalProperties": false,
        "properties": {
            "folder": {"type": "string", "description": "the folder to search, with its sub-folders"},
            "output": {"type": "string", "description": "the report, a CSV to write under output/ (a free name is picked if it is taken)"},
            "action": {
                "type": "string", "enum": ["report", "remove", "delete"], "default": "report",
                "description": "report: only the report; remove (or delete): also propose deleting every copy but the oldest of each group (the person is always asked; deleted files go to the workspace trash)"
            }
        }
    })
}

#[derive(Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum By {
    #[default]
    Type,
    Month,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortArgs {
    folder: PathBuf,
    #[serde(default)]
    by: By,
    output: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesArgs {
    folder: PathBuf,
    output: PathBuf,
    #[serde(default)]
    action: Action,
}

/// What `duplicates` does besides its report.
#[derive(Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Action {
    #[default]
    Report,
    #[serde(alias = "delete")]
    Remove,
}

pub fn sort(args: SortArgs) -> Result<Output, ToolError> {
    let mut entries = Vec::new();
    let walked = walk(&args.folder, false, &mut |path, meta| {
        entries.push((path.to_path_buf(), meta.clone()));
        true
    })?;
    let mut csv = String::from("file,to_folder,why\r\n");
    let (mut moves, mut skipped, mut changes) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (path, meta) in &entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let decided = sort_one(&args, &name, meta);
        let (folder, why) = match decided {
            Ok((folder, why)) => {
                let target = args.folder.join(&folder).join(&name);
                moves.push(json!({"file": name, "folder": folder, "why": why}));
                changes.push(Change::Move(PathPair {
                    source: path.display().to_string(),
                    target: target.display().to_string(),
                }));
                *counts.entry(folder.clone()).or_default() += 1;
                (folder, why)
            }
            Err(reason) => {
                skipped.push(json!({"file": name, "reason": reason}));
                (String::new(), reason)
            }
        };
        csv.push_str(&format!(
            "{},{},{}\r\n",
            csv_field(&name),
            csv_field(&folder),
            csv_field(&why)
        ));
    }
    let written = write_new(&args.output, csv.as_bytes(), true)?;
    let into = counts
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "{} file(s) of {} to move into {} folder(s){}{}; {} left where they are{}; the list is in {}. {NOT_APPLIED}",
        moves.len(),
        args.folder.display(),
        counts.len(),
        if into.is_empty() { "" } else { ": " },
        into,
        skipped.len(),
        walked.note(),
        written.display()
    );
    Ok(proposal(
        &json!({
            "moves": moves,
            "skipped": skipped,
            "folders": counts,
            "unreadable_names": walked.json(),
            "path": written.display().to_string(),
        }),
        text,
        changes,
    ))
}

/// The sub-folder a file goes to and why, or why it stays.
fn sort_one(args: &SortArgs, name: &str, meta: &fs::Metadata) -> Result<(String, String), String> {
    if name.starts_with('.') {
        return Err("hidden; left alone".into());
    }
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err("a symbolic link; links are not followed or moved".into());
    }
    if ft.is_dir() {
        return Err("a folder; only files are sorted".into());
    }
    if !ft.is_file() {
        return Err("not a regular file".into());
    }
    let (folder, why) = match args.by {
        By::Type => {
            let ext = Path::new(name)
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            let folder = TYPES
                .iter()
                .find(|(_, exts)| exts.contains(&ext.as_str()))
                .map_or(OTHER, |(folder, _)| folder);
            let why = if ext.is_empty() {
                "no extension".to_owned()
            } else {
                format!(".{ext}")
            };
            (folder.to_owned(), why)
        }
        By::Month => month_of(name, meta)?,
    };
    let dir = args.folder.join(&folder);
    match fs::symlink_metadata(&dir) {
        Ok(m) if !m.is_dir() => return Err(format!("{folder} is there and is not a folder")),
        _ => {}
    }
    if fs::symlink_metadata(dir.join(name)).is_ok() {
        return Err(format!("{folder}/{name} exists already"));
    }
    Ok((folder, why))
}

/// `YYYY-MM` from a date in the name, else from the modification time.
fn month_of(name: &str, meta: &fs::Metadata) -> Result<(String, String), String> {
    match dates::find(name).map(|m| m.found) {
        Some(dates::Found::Date { year, month, .. } | dates::Found::Month { year, month }) => {
            Ok((format!("{year:04}-{month:02}"), "the date in its name".into()))
        }
        Some(dates::Found::Ambiguous(text)) => Err(format!(
            "{text} in its name is ambiguous (day-month or month-day); move it by hand"
        )),
        None => match modified_rfc3339(meta) {
            Some(stamp) if stamp.len() >= 7 => Ok((stamp[..7].to_owned(), "its modification time (UTC)".into())),
            _ => Err("no date in its name and no modification time".into()),
        },
    }
}

/// One file `duplicates` looks at.
struct Candidate {
    path: PathBuf,
    size: u64,
    modified: String,
}

pub fn duplicates(args: DuplicatesArgs) -> Result<Output, ToolError> {
    let remove = args.action == Action::Remove;
    let mut by_size: BTreeMap<u64, Vec<Candidate>> = BTreeMap::new();
    let mut files = 0usize;
    let walked = walk(&args.folder, true, &mut |path, meta| {
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        // Empty files are all alike; they are not anyone's copies.
        if meta.file_type().is_file() && !hidden && meta.len() > 0 {
            files += 1;
            by_size.entry(meta.len()).or_default().push(Candidate {
                path: path.to_path_buf(),
                size: meta.len(),
                modified: modified_rfc3339(meta).unwrap_or_default(),
            });
        }
        true
    })?;
    let mut groups: Vec<Vec<(Candidate, String)>> = Vec::new();
    for (_, same_size) in by_size.into_iter().filter(|(_, v)| v.len() > 1) {
        let mut by_hash: BTreeMap<String, Vec<(Candidate, String)>> = BTreeMap::new();
        for found in same_size {
            let (digest, _) = sha256_of(&found.path)?;
            by_hash.entry(digest.clone()).or_default().push((found, digest));
        }
        groups.extend(by_hash.into_values().filter(|g| g.len() > 1));
    }
    // Oldest first (then by path): the one kept.
    for group in &mut groups {
        group.sort_by(|(a, _), (b, _)| a.modified.cmp(&b.modified).then_with(|| a.path.cmp(&b.path)));
    }
    groups.sort_by(|a, b| a[0].0.path.cmp(&b[0].0.path));

    let mut csv = String::from("group,file,size_bytes,modified,sha256,keep\r\n");
    let (mut report, mut changes) = (Vec::new(), Vec::new());
    let mut spare_bytes = 0u64;
    for (i, group) in groups.iter().enumerate() {
        let mut files = Vec::new();
        for (j, (found, digest)) in group.iter().enumerate() {
            let keep = j == 0;
            csv.push_str(&format!(
                "{},{},{},{},{},{}\r\n",
                i + 1,
                csv_field(&found.path.display().to_string()),
                found.size,
                found.modified,
                digest,
                if keep { "yes" } else { "no" }
            ));
            files.push(json!({"file": found.path.display().to_string(), "modified": found.modified, "keep": keep}));
            if !keep {
                spare_bytes += found.size;
                if remove {
                    changes.push(Change::Delete(found.path.display().to_string()));
                }
            }
        }
        report.push(json!({"size": group[0].0.size, "sha256": group[0].1, "files": files}));
    }
    let written = write_new(&args.output, csv.as_bytes(), true)?;
    let copies: usize = groups.iter().map(|g| g.len() - 1).sum();
    let then = if copies == 0 {
        String::new()
    } else if remove {
        format!(" Proposed deleting the {copies} extra copies (the oldest of each group is kept). {NOT_APPLIED}")
    } else {
        " Nothing was deleted; ask to remove them and deskhand proposes deleting every copy but the oldest.".into()
    };
    let text = format!(
        "{} group(s) of identical files among {files} file(s) in {}: {copies} extra copies, {} bytes{}; the report is in {}.{then}",
        groups.len(),
        args.folder.display(),
        spare_bytes,
        walked.note(),
        written.display()
    );
    Ok(proposal(
        &json!({
            "groups": report,
            "files": files,
            "extra_copies": copies,
            "extra_bytes": spare_bytes,
            "unreadable_names": walked.json(),
            "path": written.display().to_string(),
        }),
        text,
        changes,
    ))
}

/// The SHA-256 of a regular file's content, as hex, and its size.
pub fn sha256_of(path: &Path) -> Result<(String, u64), ToolError> {
    let (mut file, meta) = deskhand_guest::open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| io_error(path, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        if done % (64 * 1024 * 1024) < n as u64 {
            deskhand_guest::progress(done, Some(meta.len()), "hashing");
        }
    }
    Ok((hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(), done))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for one test, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("deskhand-fs-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn set_mtime(path: &Path, secs: u64) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn sort_by_type_and_by_month_proposes_moves_and_skips_what_it_must() {
        let dir = TempDir::new("sort");
        let inbox = dir.path().join("inbox");
        fs::create_dir_all(inbox.join("Images")).unwrap();
        for name in [
            "report.PDF",
            "photo.jpg",
            "notes",
            "budget 2026-03-14.xlsx",
            ".hidden.txt",
        ] {
            fs::write(inbox.join(name), "x").unwrap();
        }
        fs::write(inbox.join("Images/photo.jpg"), "already there").unwrap();
        set_mtime(&inbox.join("report.PDF"), 1_767_225_600); // 2026-01-01
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let result = sort(SortArgs {
            folder: inbox.clone(),
            by: By::Type,
            output: out.join("sort.csv"),
        })
        .unwrap();
        let json: Value = serde_json::from_str(&result.json).unwrap();
        let moved: Vec<(&str, &str)> = json["moves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["file"].as_str().unwrap(), m["folder"].as_str().unwrap()))
            .collect();
        assert_eq!(
            moved,
            [
                ("budget 2026-03-14.xlsx", "Spreadsheets"),
                ("notes", "Other"),
                ("report.PDF", "Documents")
            ]
        );
        let skipped = json["skipped"].to_string();
        assert!(skipped.contains("Images/photo.jpg exists already"), "{skipped}");
        assert!(
            skipped.contains("hidden") && skipped.contains("only files are sorted"),
            "{skipped}"
        );
        assert_eq!(result.changes.len(), 3);
        assert!(
            fs::read_to_string(out.join("sort.csv"))
                .unwrap()
                .starts_with("file,to_folder,why\r\n")
        );
        assert!(inbox.join("report.PDF").exists(), "nothing moves by itself");

        let result = sort(SortArgs {
            folder: inbox.clone(),
            by: By::Month,
            output: out.join("sort.csv"),
        })
        .unwrap();
        let json: Value = serde_json::from_str(&result.json).unwrap();
        let by_file: BTreeMap<&str, &str> = json["moves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["file"].as_str().unwrap(), m["folder"].as_str().unwrap()))
            .collect();
        assert_eq!(by_file["budget 2026-03-14.xlsx"], "2026-03");
        assert_eq!(by_file["report.PDF"], "2026-01");
        assert!(out.join("sort-1.csv").exists(), "a second list gets a free name");
    }

    #[test]
    fn duplicates_are_grouped_by_content_and_all_but_the_oldest_proposed_for_deletion() {
        let dir = TempDir::new("duplicates");
        let root = dir.path().join("docs");
        fs::create_dir_all(root.join("old")).unwrap();
        fs::write(root.join("a.txt"), "same content").unwrap();
        fs::write(root.join("old/a copy.txt"), "same content").unwrap();
        fs::write(root.join("b.txt"), "same length!").unwrap(); // same size, other content
        fs::write(root.join("empty1"), "").unwrap();
        fs::write(root.join("empty2"), "").unwrap();
        set_mtime(&root.join("old/a copy.txt"), 1_700_000_000);
        set_mtime(&root.join("a.txt"), 1_750_000_000);
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();

        let report = duplicates(DuplicatesArgs {
            folder: root.clone(),
            output: out.join("dups.csv"),
            action: Action::Report,
        })
        .unwrap();
        let json: Value = serde_json::from_str(&report.json).unwrap();
        assert_eq!(json["extra_copies"], 1, "{json}");
        assert!(report.changes.is_empty(), "a report deletes nothing");
        let first = &json["groups"][0]["files"];
        assert!(
            first[0]["file"].as_str().unwrap().ends_with("old/a copy.txt"),
            "{first}"
        );
        assert_eq!(first[0]["keep"], true);
        assert!(report.text.contains("ask to remove them"), "{}", report.text);

        let removal = duplicates(DuplicatesArgs {
            folder: root.clone(),
            output: out.join("dups.csv"),
            action: Action::Remove,
        })
        .unwrap();
        assert_eq!(removal.changes.len(), 1);
        assert!(
            matches!(&removal.changes[0], Change::Delete(p) if p.ends_with("/a.txt")),
            "the newer copy goes"
        );
    }
}
