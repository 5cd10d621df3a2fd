//! `fill`: new documents from a template with `{{name}}` placeholders, one
//! per data row: the template is a .docx (placeholders in the body,
//! headers, footers, footnotes and endnotes) or a .pptx (slides and their
//! speaker notes); the values come from a .csv file (the header row names
//! the placeholders) or a .json file (an object, or an array of objects).
//! Each document is the template with only its text parts rewritten, every
//! other zip entry copied raw, saved under output/ with the never-overwrite
//! write; a failure takes back the files this call wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use deskhand_guest::{Output, ToolError, output, path_error};
use deskhand_ooxml::edit::{Flavor, placeholder_forms, rewrite};
use deskhand_ooxml::read::{self, Kind, Opened};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::{Value, json};

use crate::edit::{fill_parts, value_text, word_text_parts};

/// The most documents one call makes.
pub const MAX_ROWS: usize = 1_000;
/// The largest values file read.
const MAX_VALUES_BYTES: u64 = 16 * 1024 * 1024;
/// The longest part of a file name taken from a value.
const MAX_NAME_CHARS: usize = 60;
/// The most one call writes in all (the host takes at most 1 GiB from a call).
const MAX_WRITTEN_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillArgs {
    template: PathBuf,
    values: PathBuf,
    path: PathBuf,
    #[serde(default = "yes")]
    unique: bool,
}

fn yes() -> bool {
    true
}

pub const SUMMARY: &str = "Make one new document per data row from a template with {{name}} placeholders: the \
     template a .docx (body, headers, footers, notes) or .pptx (slides and speaker notes); the values a .csv (header \
     row = placeholder names, one document per row) or .json (an object, or an array of objects). path is the base \
     name under output/: output/letter.docx gives output/letter-<first column's value>.docx. Formatting and \
     everything else in the template are kept. Never overwrites a file.";

pub fn schema() -> Value {
    json!({"type": "object", "required": ["template", "values", "path"], "additionalProperties": false, "properties": {
        "template": {"type": "string", "description": "a .docx or .pptx file with {{name}} placeholders"},
        "values": {"type": "string", "description": "a .csv file (header row = placeholder names) or a .json file (an object, or an array of objects)"},
        "path": {"type": "string", "description": "the base name of the new files under output/, with the template's extension or none (output/letter.docx, output/letter)"},
        "unique": {"type": "boolean", "default": true, "description": "pick free names (name-1.docx, ...) when a file exists; false fails instead"}
    }})
}

/// A JSON object with its keys in the order written (the first names the files).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of placeholder names and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonValues {
    One(Ordered),
    Many(Vec<Ordered>),
}

/// The data: column names in order, and the rows (each as long as the columns).
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn invalid(path: &Path, message: impl Into<String>) -> ToolError {
    ToolError::InvalidArgs(format!("{}: {}", path.display(), message.into()))
}

fn ext_of(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

fn read_values(path: &Path) -> Result<Table, ToolError> {
    let ext = ext_of(path);
    if ext != "csv" && ext != "json" {
        return Err(invalid(
            path,
            "values must be a .csv file (header row = placeholder names) or a .json file",
        ));
    }
    let bytes = deskhand_guest::read_capped(path, MAX_VALUES_BYTES, |size| {
        ToolError::TooLarge(path_error(
            path,
            format!(
                "is {size} bytes; fill reads values files up to {} MiB",
                MAX_VALUES_BYTES >> 20
            ),
        ))
    })?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        read::bad(
            path,
            "is not UTF-8 text; save it as UTF-8 (in Excel: CSV UTF-8) and try again",
        )
    })?;
    let table = if ext == "csv" {
        let mut records = parse_csv(text).map_err(|e| read::bad(path, e))?.into_iter();
        let Some(header) = records.next() else {
            return Err(read::bad(
                path,
                "is empty; give a header row of placeholder names and a row per document",
            ));
        };
        // A header may name a column `{{client}}`, as the placeholder reads.
        let columns: Vec<String> = header
            .iter()
            .map(|h| {
                h.trim()
                    .trim_start_matches("{{")
                    .trim_end_matches("}}")
                    .trim()
                    .to_owned()
            })
            .collect();
        let mut rows = Vec::new();
        for (i, r) in records.enumerate() {
            if r.len() > columns.len() && r[columns.len()..].iter().any(|f| !f.trim().is_empty()) {
                return Err(read::bad(
                    path,
                    format!(
                        "row {} has {} fields but the header names {} columns; quote values that hold the separator",
                        i + 2,
                        r.len(),
                        columns.len()
                    ),
                ));
            }
            let mut r = r;
            r.resize(columns.len(), String::new());
            rows.push(r);
        }
        Table { columns, rows }
    } else {
        let parsed: JsonValues = serde_json::from_str(text)
            .map_err(|e| read::bad(path, format!("is not a JSON object or an array of objects ({e})")))?;
        let objects = match parsed {
            JsonValues::One(o) => vec![o],
            JsonValues::Many(v) => v,
        };
        let mut columns: Vec<String> = Vec::new();
        for o in &objects {
            for (k, _) in &o.0 {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let mut rows = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            let mut row = vec![String::new(); columns.len()];
            for (k, v) in &o.0 {
                let text = value_text(k, v).map_err(|e| read::bad(path, format!("element {}: {e}", i + 1)))?;
                if let Some(c) = columns.iter().position(|c| c == k) {
                    row[c] = text;
                }
            }
            rows.push(row);
        }
        Table { columns, rows }
    };
    if table.columns.iter().all(String::is_empty) {
        return Err(read::bad(
            path,
            "names no placeholders (its header row or keys are empty)",
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = table.columns.iter().find(|c| !c.is_empty() && !seen.insert(c.as_str())) {
        return Err(read::bad(
            path,
            format!("names the column {dup:?} twice; each placeholder once"),
        ));
    }
    if table.rows.is_empty() {
        return Err(read::bad(
            path,
            "has no data rows; add a row per document under the header",
        ));
    }
    if table.rows.len() > MAX_ROWS {
        return Err(read::bad(
            path,
            format!(
                "has {} rows; fill makes at most {MAX_ROWS} documents in one call (split the file)",
                table.rows.len()
            ),
        ));
    }
    Ok(table)
}

/// CSV records (RFC 4180: quoted fields, doubled quotes, CRLF or LF); the
/// separator is the one of `,` `;` and tab the header line uses most.
/// Blank lines are skipped.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let first = text.lines().next().unwrap_or("");
    let count = |c: char| first.chars().filter(|&x| x == c).count();
    let sep = [',', ';', '\t']
        .into_iter()
        .max_by_key(|&c| (count(c), c == ','))
        .unwrap_or(',');
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let end_record =
        |record: &mut Vec<String>, field: &mut String, records: &mut Vec<Vec<String>>, was_quoted: bool| {
            record.push(std::mem::take(field));
            let r = std::mem::take(record);
            if !(r.len() == 1 && r[0].is_empty() && !was_quoted) {
                records.push(r);
            }
        };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            c if c == sep => {
                record.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                end_record(&mut record, &mut field, &mut records, was_quoted);
                was_quoted = false;
                line += 1;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!(
            "has a quoted field that never closes (from line {line} or before); close the quote"
        ));
    }
    if !field.is_empty() || !record.is_empty() || was_quoted {
        end_record(&mut record, &mut field, &mut records, was_quoted);
    }
    Ok(records)
}

/// A value as part of a file name: no folder separators or characters
/// Windows refuses, no leading or trailing dots and spaces, kept short.
fn safe_name(value: &str) -> Option<String> {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .take(MAX_NAME_CHARS)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c.is_whitespace() || c == '.');
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The template's parts with text, and the flavor of their paragraphs.
fn template_parts(pkg: &mut Opened, kind: Kind) -> Result<(Vec<String>, Flavor), ToolError> {
    match kind {
        Kind::Docx => Ok((word_text_parts(pkg)?, Flavor::Word)),
        Kind::Pptx => {
            let main = pkg.main.clone();
            let mut parts = Vec::new();
            for r in pkg.rels(&main)? {
                if r.kind == "slide" && !r.external && pkg.has_part(&r.target) && !parts.contains(&r.target) {
                    let slide = r.target.clone();
                    parts.push(slide.clone());
                    for n in pkg.rels(&slide)? {
                        if n.kind == "notesSlide"
                            && !n.external
                            && pkg.has_part(&n.target)
                            && !parts.contains(&n.target)
                        {
                            parts.push(n.target);
                        }
                    }
                }
            }
            Ok((parts, Flavor::Drawing))
        }
    }
}

pub fn fill(args: FillArgs) -> Result<Output, ToolError> {
    let ext = ext_of(&args.template);
    let kind = match ext.as_str() {
        "docx" | "docm" => Kind::Docx,
        "pptx" | "pptm" => Kind::Pptx,
        _ => {
            return Err(invalid(
                &args.template,
                "the template must be a .docx or .pptx file with {{name}} placeholders",
            ));
        }
    };
    // A base name without an extension (output/offer) takes the template's.
    let named_ext = args.path.extension().is_some();
    if named_ext {
        deskhand_ooxml::check_extension(&args.path, &ext)
    } else {
        Ok(())
    }
    .map_err(|_| {
        invalid(
            &args.path,
            format!("the new files take the template's extension: give a path ending in .{ext}"),
        )
    })?;
    let bytes = crate::read::read_file(&args.template)?;
    let mut pkg = read::open(&args.template, &bytes, kind)?;
    let (names, flavor) = template_parts(&mut pkg, kind)?;
    let mut originals: BTreeMap<String, String> = BTreeMap::new();
    for name in names {
        if let Some(xml) = pkg.part(&name)? {
            originals.insert(name, xml);
        }
    }
    let mut placeholders: BTreeSet<String> = BTreeSet::new();
    for xml in originals.values() {
        placeholders.extend(placeholder_forms(xml, flavor).into_keys());
    }
    if placeholders.is_empty() {
        return Err(invalid(
            &args.template,
            "has no {{name}} placeholders; type them where the values go (e.g. Dear {{client}},)",
        ));
    }
    let table = read_values(&args.values)?;
    let missing: Vec<String> = placeholders
        .iter()
        .filter(|p| !table.columns.contains(p))
        .map(|p| format!("{{{{{p}}}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(
            &args.values,
            format!(
                "has no column for the template's placeholders {}; its columns are {:?}. Add the columns (or rename \
                 them to match)",
                missing.join(", "),
                table.columns
            ),
        ));
    }
    let unused: Vec<&String> = table
        .columns
        .iter()
        .filter(|c| !c.is_empty() && !placeholders.contains(*c))
        .collect();

    // The names of the new files, each free, before anything is written.
    let stem = args
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".into());
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut targets = Vec::with_capacity(table.rows.len());
    for (i, row) in table.rows.iter().enumerate() {
        let by_value = row.first().and_then(|v| safe_name(v)).map(|v| format!("{stem}-{v}"));
        let candidates = by_value
            .into_iter()
            .chain(std::iter::once(format!("{stem}-{}", i + 1)))
            .chain((1..).map(|k| format!("{stem}-{}-{k}", i + 1)));
        let mut chosen = None;
        for c in candidates.take(1000) {
            if taken.insert(c.to_lowercase()) {
                chosen = Some(c);
                break;
            }
        }
        let name = chosen.ok_or_else(|| invalid(&args.values, "too many rows give the same file name"))?;
        let target = args.path.with_file_name(format!("{name}.{ext}"));
        if !args.unique && fs::symlink_metadata(&target).is_ok() {
            return Err(ToolError::AlreadyExists(path_error(
                &target,
                "already exists; deskhand never overwrites a file (pass \"unique\": true to pick free names, or \
                 another path)",
            )));
        }
        targets.push(target);
    }

    let mut written: Vec<PathBuf> = Vec::with_capacity(targets.len());
    let mut total = 0u64;
    let mut made = Vec::with_capacity(targets.len());
    let result = (|| -> Result<(), ToolError> {
        for (row, target) in table.rows.iter().zip(&targets) {
            let values: BTreeMap<String, String> = table
                .columns
                .iter()
                .cloned()
                .zip(row.iter().cloned())
                .filter(|(c, _)| placeholders.contains(c))
                .collect();
            let mut parts = originals.clone();
            let filled = fill_parts(
                &args.template,
                &mut parts,
                flavor,
                &values,
                &args.values.display().to_string(),
            )?;
            let changed: BTreeMap<String, Vec<u8>> = parts
                .into_iter()
                .filter(|(n, x)| originals.get(n) != Some(x))
                .map(|(n, x)| (n, deskhand_ooxml::edit::as_utf8(&x)))
                .collect();
            let doc = rewrite(&args.template, &bytes, &changed, &BTreeSet::new())?;
            total += doc.len() as u64;
            if total > MAX_WRITTEN_BYTES {
                return Err(ToolError::TooLarge(deskhand_guest::path_error(
                    &args.template,
                    format!(
                        "filled for {} rows makes more than {} MiB of documents, more than one call writes; \
                         fill it from fewer rows at a time",
                        table.rows.len(),
                        MAX_WRITTEN_BYTES >> 20
                    ),
                )));
            }
            let path = deskhand_ooxml::save(target, &ext, &doc, args.unique)?;
            made.push(json!({"path": path.display().to_string(), "placeholders_filled": filled, "size": doc.len()}));
            written.push(path);
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Nothing half way: take back what this call wrote.
        for p in &written {
            let _ = fs::remove_file(p);
        }
        return Err(e);
    }
    let mut j = json!({
        "template": args.template.display().to_string(),
        "values": args.values.display().to_string(),
        "files": made,
        "placeholders": placeholders,
    });
    if !unused.is_empty() {
        j["unused_columns"] = json!(unused);
    }
    let text = format!(
        "filled {} into {} new file{} ({} placeholder{} each){}",
        args.template.display(),
        written.len(),
        if written.len() == 1 { "" } else { "s" },
        placeholders.len(),
        if placeholders.len() == 1 { "" } else { "s" },
        if unused.is_empty() {
            String::new()
        } else {
            format!("; columns with no placeholder, not used: {unused:?}")
        }
    );
    Ok(output(&j, text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn csv_reads_quotes_separators_and_blank_lines() {
        let rows = parse_csv("name,amount\r\n\"Acme, Inc.\",\"1 \"\"000\"\"\"\n\nZed,\"multi\nline\"\n").unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["name".to_owned(), "amount".into()],
                vec!["Acme, Inc.".into(), "1 \"000\"".into()],
                vec!["Zed".into(), "multi\nline".into()]
            ]
        );
        assert_eq!(parse_csv("a;b\n1;2").unwrap()[1], ["1", "2"]);
        assert!(parse_csv("a\n\"open").unwrap_err().contains("never closes"));
        assert!(parse_csv("").unwrap().is_empty());
    }

    /// A fresh folder for one test's files, under the target directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/guest-native/docx-fill-tests")
            .join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_docx_template_and_a_csv_make_one_document_per_row() {
        let dir = scratch("csv");
        let doc: deskhand_guest::document::Document = serde_json::from_value(json!({"blocks": [
            {"type": "paragraph", "text": "Dear {{client}}, you owe {{ amount }}."}
        ]}))
        .unwrap();
        let (bytes, _) = crate::build::build(&doc, &mut |_: &str, _: &str| unreachable!()).unwrap();
        fs::write(dir.join("t.docx"), &bytes).unwrap();
        fs::write(dir.join("v.csv"), "{{client}};amount\nAcme;10\nAcme;20\n").unwrap();
        let args = |values: &str, path: &str| FillArgs {
            template: dir.join("t.docx"),
            values: dir.join(values),
            path: dir.join(path),
            unique: false,
        };
        let out = fill(args("v.csv", "out.docx")).unwrap();
        let j: Value = serde_json::from_str(&out.json).unwrap();
        assert_eq!(j["files"].as_array().unwrap().len(), 2);
        for (name, amount) in [("out-Acme.docx", "10"), ("out-2.docx", "20")] {
            let b = fs::read(dir.join(name)).unwrap();
            let text = crate::read::render(Path::new(name), &b, 0, 10_000).unwrap().text;
            assert!(
                text.contains(&format!("Dear Acme, you owe {amount}.")),
                "{name}: {text}"
            );
        }
        // Taken names are refused before anything is written.
        let err = fill(args("v.csv", "out.docx")).err().unwrap();
        assert!(format!("{err:?}").contains("already exists"), "{err:?}");
        fs::write(dir.join("few.json"), r#"{"client": "Zed"}"#).unwrap();
        let err = fill(args("few.json", "z.docx")).err().unwrap();
        assert!(format!("{err:?}").contains("{{amount}}"), "{err:?}");
        fs::write(dir.join("empty.csv"), "").unwrap();
        let err = fill(args("empty.csv", "e.docx")).err().unwrap();
        assert!(format!("{err:?}").contains("is empty"), "{err:?}");
        let rows: String = (0..=MAX_ROWS).map(|i| format!("{i},1\n")).collect();
        fs::write(dir.join("many.csv"), format!("client,amount\n{rows}")).unwrap();
        let err = fill(args("many.csv", "m.docx")).err().unwrap();
        assert!(format!("{err:?}").contains("at most 1000"), "{err:?}");
        let err = fill(args("v.csv", "out.pptx")).err().unwrap();
        assert!(format!("{err:?}").contains(".docx"), "{err:?}");
    }

    #[test]
    fn a_pptx_template_and_a_json_array_fill_slides_and_keep_the_rest() {
        let dir = scratch("pptx");
        let corpus =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/docx-pptx/python-pptx-txt-text.pptx");
        let bytes = fs::read(&corpus).unwrap();
        let mut pkg = read::open(&corpus, &bytes, Kind::Pptx).unwrap();
        let (parts, flavor) = template_parts(&mut pkg, Kind::Pptx).unwrap();
        assert_eq!(flavor, Flavor::Drawing);
        let slide = parts[0].clone();
        let xml = pkg.part(&slide).unwrap().unwrap();
        // The slide's first text becomes a placeholder.
        let first = xml
            .split("<a:t>")
            .nth(1)
            .unwrap()
            .split("</a:t>")
            .next()
            .unwrap()
            .to_owned();
        let (with_placeholder, counts) = deskhand_ooxml::edit::replace_in_part(
            &xml,
            Flavor::Drawing,
            &[(first.clone(), "Hello {{name}}".to_owned())],
            true,
        )
        .unwrap();
        assert!(counts[0] >= 1);
        let changed = BTreeMap::from([(slide.clone(), with_placeholder.into_bytes())]);
        let template = rewrite(&corpus, &bytes, &changed, &BTreeSet::new()).unwrap();
        fs::write(dir.join("t.pptx"), &template).unwrap();
        fs::write(dir.join("v.json"), r#"[{"name": "Ann & Bo"}, {"name": "Cy"}]"#).unwrap();
        fill(FillArgs {
            template: dir.join("t.pptx"),
            values: dir.join("v.json"),
            path: dir.join("deck.pptx"),
            unique: false,
        })
        .unwrap();
        let out = fs::read(dir.join("deck-Ann & Bo.pptx")).unwrap();
        let mut filled = read::open(&corpus, &out, Kind::Pptx).unwrap();
        assert!(filled.part(&slide).unwrap().unwrap().contains("Hello Ann &amp; Bo"));
        assert!(dir.join("deck-Cy.pptx").exists());
    }

    #[test]
    fn file_names_from_values_are_safe() {
        assert_eq!(safe_name("Acme / Sons: \"Ltd\"").as_deref(), Some("Acme _ Sons_ _Ltd_"));
        assert_eq!(safe_name(" .. "), None);
        assert_eq!(safe_name("../../etc").as_deref(), Some("_.._etc"));
    }
}
