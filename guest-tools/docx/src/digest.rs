//! `digest`: a Word document listing the notes in a folder (`.md`, `.txt`)
//! from a period: each note's title, date and first lines, newest last. It
//! does not summarise (that needs a model) and says so in the document.
//!
//! A note's date is the date in its name (the rules `rename-by-date` reads
//! names by), else its modification date (UTC); its title is its first
//! Markdown heading, else its first line, else its file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use deskhand_guest::document::{Block, Document};
use deskhand_guest::{Output, ToolError, io_error, modified_rfc3339, output, walk};
use serde::Deserialize;
use serde_json::{Value, json};

// The date reading `rename-by-date` does, compiled in here too.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "digest needs `find`, not every helper of the module")
)]
#[path = "../../rename-by-date/src/dates.rs"]
mod dates;

/// Notes listed at most, and the bytes read of each.
const MAX_NOTES: usize = 500;
const READ_BYTES: u64 = 64 * 1024;
/// First lines shown per note, and characters per line.
const FIRST_LINES: usize = 3;
const LINE_CHARS: usize = 200;

pub fn schema() -> Value {
    json!({
        "type": "object", "required": ["folder", "path"], "additionalProperties": false,
        "properties": {
            "folder": {"type": "string", "description": "the folder of notes (.md, .txt), with its sub-folders"},
            "period": {"type": "string", "description": "only notes dated in YYYY-MM-DD..YYYY-MM-DD (both days included); all notes when left out"},
            "path": {"type": "string", "description": "the new .docx under output/ (a free name is picked if it is taken)"}
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestArgs {
    folder: PathBuf,
    #[serde(default)]
    period: Option<String>,
    path: PathBuf,
}

struct Note {
    date: String,
    rel: String,
    title: String,
    lines: Vec<String>,
}

pub fn digest(args: DigestArgs) -> Result<Output, ToolError> {
    deskhand_ooxml::check_extension(&args.path, "docx")?;
    let period = match args.period.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(parse_period(p)?),
        None => None,
    };
    let mut found = Vec::new();
    let walked = walk(&args.folder, true, &mut |path, meta| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_note = Path::new(&name)
            .extension()
            .is_some_and(|e| ["md", "markdown", "txt"].iter().any(|x| e.eq_ignore_ascii_case(x)));
        if meta.is_file() && is_note && !name.starts_with('.') {
            let date = match dates::find(&name).map(|m| m.found) {
                Some(dates::Found::Date { year, month, day }) => Some(format!("{year:04}-{month:02}-{day:02}")),
                Some(dates::Found::Month { year, month }) => Some(format!("{year:04}-{month:02}-01")),
                _ => modified_rfc3339(meta).map(|s| s.chars().take(10).collect()),
            };
            if let Some(date) = date {
                found.push((date, path.to_path_buf()));
            }
        }
        true
    })?;
    let in_period = |d: &str| period.as_ref().is_none_or(|(a, b)| a.as_str() <= d && d <= b.as_str());
    let mut notes: Vec<(String, PathBuf)> = found.into_iter().filter(|(d, _)| in_period(d)).collect();
    notes.sort();
    let when = match &period {
        Some((a, b)) => format!("dated {a} to {b}"),
        None => "of any date".to_owned(),
    };
    if notes.is_empty() {
        return Err(ToolError::InvalidArgs(format!(
            "{} holds no notes (.md or .txt files) {when}; nothing was written. Check the folder, or name another period",
            args.folder.display()
        )));
    }
    let total = notes.len();
    notes.truncate(MAX_NOTES);
    let notes = notes
        .into_iter()
        .map(|(date, path)| read_note(&args.folder, date, &path))
        .collect::<Result<Vec<_>, _>>()?;

    let mut blocks = vec![Block::Paragraph {
        text: format!(
            "{total} note(s) in {} {when}{}. Each is listed with its title, date and first lines; this digest \
             does not summarise them (that needs a model).",
            args.folder.display(),
            if total > MAX_NOTES {
                format!(", the first {MAX_NOTES} shown")
            } else {
                String::new()
            }
        ),
    }];
    for note in &notes {
        blocks.push(Block::Heading {
            text: note.title.clone(),
            level: 2,
        });
        blocks.push(Block::Paragraph {
            text: format!("{} · {}", note.date, note.rel),
        });
        if !note.lines.is_empty() {
            blocks.push(Block::List {
                items: note.lines.clone(),
                numbered: false,
            });
        }
    }
    let title = match &period {
        Some((a, b)) => format!("Notes digest, {a} to {b}"),
        None => "Notes digest".to_owned(),
    };
    let doc = Document {
        title: Some(title),
        author: None,
        subject: Some(format!("Notes in {}", args.folder.display())),
        blocks,
    };
    doc.validate()?;
    let (bytes, _) = crate::build::build(&doc, &mut deskhand_ooxml::read_image)?;
    let written = deskhand_ooxml::save(&args.path, "docx", &bytes, true)?;
    let text = format!(
        "wrote {} listing {} note(s) {when}{}",
        written.display(),
        notes.len(),
        walked.note()
    );
    Ok(output(
        &json!({
            "path": written.display().to_string(),
            "notes": notes.iter().map(|n| json!({"file": n.rel, "date": n.date, "title": n.title})).collect::<Vec<_>>(),
            "total": total,
            "unreadable_names": walked.json(),
        }),
        text,
    ))
}

/// `YYYY-MM-DD..YYYY-MM-DD`, or one day or month.
fn parse_period(p: &str) -> Result<(String, String), ToolError> {
    let bad = || {
        ToolError::InvalidArgs(format!(
            "period {p:?} is not YYYY-MM-DD..YYYY-MM-DD (or one day YYYY-MM-DD, or a month YYYY-MM)"
        ))
    };
    let day = |s: &str| -> Option<String> {
        let b = s.as_bytes();
        let ok = b.len() == 10 && b[4] == b'-' && b[7] == b'-' && s.chars().filter(char::is_ascii_digit).count() == 8;
        ok.then(|| s.to_owned())
    };
    match p.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (day(a.trim()).ok_or_else(bad)?, day(b.trim()).ok_or_else(bad)?);
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None if p.len() == 7 && p.as_bytes()[4] == b'-' => Ok((format!("{p}-01"), format!("{p}-31"))),
        None => {
            let d = day(p).ok_or_else(bad)?;
            Ok((d.clone(), d))
        }
    }
}

fn read_note(folder: &Path, date: String, path: &Path) -> Result<Note, ToolError> {
    let (file, _) = deskhand_guest::open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(READ_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let heading = lines.iter().position(|l| l.starts_with('#'));
    let (title, rest): (String, Vec<&str>) = match heading {
        Some(i) => (
            lines[i].trim_start_matches('#').trim().to_owned(),
            lines
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect(),
        ),
        None => match lines.split_first() {
            Some((first, rest)) => ((*first).to_owned(), rest.to_vec()),
            None => (
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                Vec::new(),
            ),
        },
    };
    let short = |s: &str| -> String {
        let mut out: String = s.chars().take(LINE_CHARS).collect();
        if s.chars().count() > LINE_CHARS {
            out.push('…');
        }
        out
    };
    let rel = path.strip_prefix(folder).unwrap_or(path).display().to_string();
    let title = if title.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        title
    };
    Ok(Note {
        date,
        rel,
        title: short(&title),
        lines: rest.iter().take(FIRST_LINES).map(|l| short(l)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_day_spans() {
        assert_eq!(
            parse_period("2026-03-01..2026-03-15").unwrap(),
            ("2026-03-01".into(), "2026-03-15".into())
        );
        assert_eq!(
            parse_period("2026-03").unwrap(),
            ("2026-03-01".into(), "2026-03-31".into())
        );
        assert!(parse_period("last week").is_err());
        assert!(parse_period("2026-03-15..2026-03-01").is_err());
    }
}
