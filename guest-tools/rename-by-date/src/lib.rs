//! The `rename-by-date` tool: proposes `YYYY-MM-DD rest of name` for each
//! entry directly in a granted folder, taking the date from the name or
//! else from the modification time, and writes the proposal as a CSV under
//! the workspace's `output/`. It renames nothing itself: the renames go back
//! to deskhand as a proposed changeset, which the host applies (undoably)
//! only where the folder is granted read-write.
//!
//! The rules, in order, for each entry in name order:
//! - hidden names (a leading `.`), symlinks and special files are skipped;
//! - a name that already starts with a valid `YYYY-MM-DD` is skipped;
//! - a date in the name (see [`dates`]) is used and removed from the rest;
//!   a month without a day (`March 2026`) becomes the 1st, and the note says
//!   so; an ambiguous one (`03-04-2026`) is skipped with the reason;
//! - otherwise, with `use_modified_time`, the modification date (UTC);
//! - a proposal onto a name that exists in the folder (compared ignoring
//!   case, as many file systems do) or onto the same name as another
//!   proposal is skipped as a collision, all of its parties alike.

mod dates;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use deskhand_guest::{
    Change, Description, Guest, Output, PathPair, ToolError, csv_field, modified_rfc3339, operation, parse_args,
    proposal, walk, write_new,
};
use serde::Deserialize;
use serde_json::json;

use crate::dates::Found;

const DEFAULT_OUTPUT: &str = "output/rename-proposal.csv";
const NOT_APPLIED: &str = "The tool renamed nothing itself: the renames go back to deskhand as a proposed changeset, applied only where the folder is granted read-write.";

struct RenameByDate;

impl Guest for RenameByDate {
    fn describe() -> Description {
        Description {
            name: "rename-by-date".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Proposes date-prefixed names (YYYY-MM-DD name) for a folder's entries, as a CSV under output/ and as renames deskhand applies where the folder is granted read-write."
                .into(),
            operations: vec![operation(
                "propose",
                "For each entry directly in the folder, propose `YYYY-MM-DD rest` from a date in its name or its modification time; write from,to,date_source,note to a new CSV.",
                json!({
                    "type": "object", "required": ["folder", "output"], "additionalProperties": false,
                    "properties": {
                        "folder": {"type": "string", "description": "the folder whose entries to rename, inside a granted folder"},
                        "output": {
                            "type": "string",
                            "description": format!("the proposal CSV to write under output/ (the skill's default: {DEFAULT_OUTPUT}); a free name is picked if it is taken")
                        },
                        "use_modified_time": {
                            "type": "boolean", "default": true,
                            "description": "date an entry with no date in its name by its modification time (UTC)"
                        }
                    }
                }),
                &["folder"],
                &["output"],
            )],
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        match op.as_str() {
            "propose" => propose(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(RenameByDate with_types_in deskhand_guest::bindings);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeArgs {
    folder: PathBuf,
    output: PathBuf,
    #[serde(default = "yes")]
    use_modified_time: bool,
}

fn yes() -> bool {
    true
}

/// What happens to one entry.
enum Plan {
    Rename {
        to: String,
        source: &'static str,
        note: String,
    },
    Skip(String),
}

struct Row {
    name: String,
    plan: Plan,
}

fn propose(args: ProposeArgs) -> Result<Output, ToolError> {
    let mut entries = Vec::new();
    let walked = walk(&args.folder, false, &mut |path, meta| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        entries.push((name.unwrap_or_default(), meta.clone()));
        true
    })?;

    let mut rows: Vec<Row> = entries
        .iter()
        .map(|(name, meta)| Row {
            name: name.clone(),
            plan: plan(name, meta, args.use_modified_time),
        })
        .collect();
    mark_collisions(&mut rows);

    let mut csv = String::from("from,to,date_source,note\r\n");
    let mut proposals = Vec::new();
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    for row in &rows {
        let (to, source, note) = match &row.plan {
            Plan::Rename { to, source, note } => {
                proposals.push(json!({"from": row.name, "to": to, "date_source": source}));
                changes.push(Change::Rename(PathPair {
                    source: args.folder.join(&row.name).display().to_string(),
                    target: args.folder.join(to).display().to_string(),
                }));
                (to.as_str(), *source, note.as_str())
            }
            Plan::Skip(reason) => {
                skipped.push(json!({"name": row.name, "reason": reason}));
                ("", "", reason.as_str())
            }
        };
        csv.push_str(&format!(
            "{},{},{},{}\r\n",
            csv_field(&row.name),
            csv_field(to),
            source,
            csv_field(note)
        ));
    }

    let written = write_new(&args.output, csv.as_bytes(), true)?;
    let text = format!(
        "{} renames proposed for {}, {} entries skipped{}; the proposal is in {}. {NOT_APPLIED}",
        proposals.len(),
        args.folder.display(),
        skipped.len(),
        walked.note(),
        written.display()
    );
    Ok(proposal(
        &json!({
            "proposals": proposals,
            "skipped": skipped,
            "unreadable_names": walked.json(),
            "path": written.display().to_string(),
        }),
        text,
        changes,
    ))
}

fn plan(name: &str, meta: &fs::Metadata, use_modified_time: bool) -> Plan {
    let ft = meta.file_type();
    if name.starts_with('.') {
        return Plan::Skip("hidden; left alone".into());
    }
    if ft.is_symlink() {
        return Plan::Skip("a symbolic link; links are not followed or renamed".into());
    }
    if !ft.is_file() && !ft.is_dir() {
        return Plan::Skip("not a file or a folder".into());
    }
    if dates::has_date_prefix(name) {
        return Plan::Skip("already starts with a date".into());
    }
    let (stem, ext) = if ft.is_file() {
        split_extension(name)
    } else {
        (name, "")
    };
    let (date, rest, source, note) = match dates::find(stem) {
        Some(m) => {
            let rest = tidy(&stem[..m.start], &stem[m.end..]);
            match m.found {
                Found::Date { year, month, day } => (ymd(year, month, day), rest, "name", String::new()),
                Found::Month { year, month } => (
                    ymd(year, month, 1),
                    rest,
                    "name-month",
                    "the name gives no day; the 1st of the month is used".into(),
                ),
                Found::Ambiguous(text) => {
                    return Plan::Skip(format!(
                        "{text} is ambiguous (day-month or month-day); rename it by hand"
                    ));
                }
            }
        }
        None if use_modified_time => match modified_rfc3339(meta) {
            Some(stamp) => (
                stamp.chars().take(10).collect(),
                tidy(stem, ""),
                "modified",
                "no date in the name; the modification date (UTC) is used".into(),
            ),
            None => return Plan::Skip("no date in the name and no modification time".into()),
        },
        None => return Plan::Skip("no date in the name (modification times not allowed)".into()),
    };
    let to = if rest.is_empty() {
        format!("{date}{ext}")
    } else {
        format!("{date} {rest}{ext}")
    };
    Plan::Rename { to, source, note }
}

fn ymd(year: u32, month: u32, day: u32) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// Splits `name.ext` when the extension looks like one (up to 10
/// alphanumerics with at least one letter), so `notes 14.03.2026` keeps its
/// date and `.tar.gz` stays whole as far as the date is concerned.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 => {
            let ext = &name[dot + 1..];
            let looks_like_one = (1..=10).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric())
                && ext.bytes().any(|b| b.is_ascii_alphabetic());
            if looks_like_one { name.split_at(dot) } else { (name, "") }
        }
        _ => (name, ""),
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '_' | '-' | '.' | ',')
}

/// Joins what was before and after the date: the separators at the seam
/// become one (all underscores: `_`; all hyphens: `-`; anything else: a
/// space), brackets left empty go, runs of spaces collapse, and the ends are
/// trimmed.
fn tidy(before: &str, after: &str) -> String {
    let mut left = before.trim_end_matches(is_separator);
    let mut right = after.trim_start_matches(is_separator);
    let seam_chars = format!("{}{}", &before[left.len()..], &after[..after.len() - right.len()]);
    let seam = ['_', '-']
        .into_iter()
        .find(|c| !seam_chars.is_empty() && seam_chars.chars().all(|s| s == *c))
        .unwrap_or(' ');
    for (open, close) in [('(', ')'), ('[', ']'), ('{', '}')] {
        if let (Some(l), Some(r)) = (left.strip_suffix(open), right.strip_prefix(close)) {
            left = l.trim_end_matches(is_separator);
            right = r.trim_start_matches(is_separator);
        }
    }
    let joined = match (left.is_empty(), right.is_empty()) {
        (false, false) => format!("{left}{seam}{right}"),
        _ => format!("{left}{right}"),
    };
    joined
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_matches(is_separator)
        .to_owned()
}

/// Turns proposals that would land on an existing name, or on the same
/// name as another proposal, into skips naming what they collide with.
fn mark_collisions(rows: &mut [Row]) {
    let existing: BTreeSet<String> = rows.iter().map(|r| r.name.to_lowercase()).collect();
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows.iter() {
        if let Plan::Rename { to, .. } = &row.plan {
            targets.entry(to.to_lowercase()).or_default().push(row.name.clone());
        }
    }
    for row in rows.iter_mut() {
        let Plan::Rename { to, .. } = &row.plan else { continue };
        let key = to.to_lowercase();
        let reason = if existing.contains(&key) {
            Some(format!("collision: {to} already exists in the folder"))
        } else {
            targets.get(&key).filter(|names| names.len() > 1).map(|names| {
                let others: Vec<&str> = names.iter().filter(|n| **n != row.name).map(String::as_str).collect();
                format!("collision: {} would also become {to}", others.join(", "))
            })
        };
        if let Some(reason) = reason {
            row.plan = Plan::Skip(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidies_the_seam() {
        assert_eq!(tidy("lunch ", ""), "lunch");
        assert_eq!(tidy("IMG_", "_123456"), "IMG_123456");
        assert_eq!(tidy("Report (", ")"), "Report");
        assert_eq!(tidy("a  -", "-  b"), "a b");
        assert_eq!(tidy("", " taxi"), "taxi");
        assert_eq!(tidy("", ""), "");
    }

    #[test]
    fn splits_extensions() {
        assert_eq!(split_extension("lunch 14.03.2026.txt"), ("lunch 14.03.2026", ".txt"));
        assert_eq!(split_extension("notes 14.03.2026"), ("notes 14.03.2026", ""));
        assert_eq!(split_extension(".profile"), (".profile", ""));
    }
}
