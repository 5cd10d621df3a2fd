//! The component: operations, their argument schemas and declared effects,
//! and the file handling around the library functions (size-capped reads
//! that refuse links, never-overwrite writes under output/).

use std::fs;
use std::path::{Path, PathBuf};

use deskhand_guest::document::{Block, Document as Report, document_properties};
use deskhand_guest::{Description, Guest, Output, ToolError, operation, output, parse_args, path_error};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{FONTS_CJK, FONTS_LATIN, Fonts, MAX_PDF_BYTES, PageTexts, PdfError, info, open, parse_ranges, sanitize};

/// `text`'s cap on returned characters when the call names none, and the highest it may name.
const DEFAULT_MAX_CHARS: usize = 100_000;
const MAX_MAX_CHARS: usize = 2_000_000;
/// The most files one merge reads, and the most one split writes.
const MAX_MERGE_INPUTS: usize = 200;
const MAX_SPLIT_OUTPUTS: usize = 1000;

struct Pdf;

impl Guest for Pdf {
    fn describe() -> Description {
        Description {
            name: "pdf".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Reads PDFs (text per page, page count, metadata), merges and splits them, and writes \
                      report PDFs (headings, paragraphs, lists, tables, images, bar charts) with embedded fonts."
                .into(),
            operations: vec![
                operation(
                    "info",
                    "Page count, PDF version, metadata (title, author, subject, creator, producer, dates), \
                     whether it is encrypted, and page sizes in points.",
                    json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                        "path": {"type": "string", "description": "a PDF file"},
                        "password": {"type": "string", "description": "the password of an encrypted PDF"}}}),
                    &["path"],
                    &[],
                ),
                operation(
                    "text",
                    "The text of each page, lines kept apart. Long results are cut at max_chars, saying so.",
                    json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                        "path": {"type": "string", "description": "a PDF file"},
                        "pages": {"type": "string", "description": "which pages, e.g. \"1-3\", \"2\", \"4-\", \"1,3,5-7\"; default all"},
                        "password": {"type": "string", "description": "the password of an encrypted PDF"},
                        "max_chars": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_CHARS, "default": DEFAULT_MAX_CHARS}}}),
                    &["path"],
                    &[],
                ),
                operation(
                    "merge",
                    "All pages of several PDFs, in order, as one new PDF under output/. Never overwrites a file.",
                    json!({"type": "object", "required": ["inputs", "path"], "additionalProperties": false, "properties": {
                        "inputs": {"type": "array", "minItems": 1, "maxItems": MAX_MERGE_INPUTS, "items": {"type": "string"}, "description": "the PDFs to merge, in order"},
                        "passwords": {"type": "object", "additionalProperties": {"type": "string"}, "description": "passwords of encrypted inputs, by their path as given in inputs"},
                        "path": {"type": "string", "description": "the new PDF, under the workspace's output/ folder"},
                        "unique": {"type": "boolean", "default": false, "description": "pick a free name instead of failing when the file exists"}}}),
                    &["inputs[]"],
                    &["path"],
                ),
                operation(
                    "merge_folder",
                    "Every PDF directly in a folder (not its sub-folders, hidden names or links), in name order \
                     (\"2\" before \"10\"), as one new PDF under output/. Picks a free name (merged-1.pdf) when \
                     the file exists, unless unique is false.",
                    json!({"type": "object", "required": ["folder", "path"], "additionalProperties": false, "properties": {
                        "folder": {"type": "string", "description": "the folder whose PDFs are merged"},
                        "path": {"type": "string", "description": "the new PDF, under the workspace's output/ folder"},
                        "unique": {"type": "boolean", "default": true, "description": "pick a free name when the file exists; false fails instead"}}}),
                    &["folder"],
                    &["path"],
                ),
                operation(
                    "to_text",
                    "The text of a PDF as a new UTF-8 .txt file under output/, pages apart by a blank line. \
                     A PDF without text (scanned images) is an error: this tool does no OCR. Picks a free name \
                     when the file exists, unless unique is false.",
                    json!({"type": "object", "required": ["input", "path"], "additionalProperties": false, "properties": {
                        "input": {"type": "string", "description": "the PDF to read"},
                        "password": {"type": "string", "description": "the password of an encrypted PDF"},
                        "path": {"type": "string", "description": "the new .txt file, under the workspace's output/ folder"},
                        "unique": {"type": "boolean", "default": true, "description": "pick a free name when the file exists; false fails instead"}}}),
                    &["input"],
                    &["path"],
                ),
                operation(
                    "split",
                    "Pages of one PDF as new PDFs under output/: one file per range (\"1-3\", \"4\", \"5-\", \"1,3\"), \
                     or one per page with \"each\". Files are named <path stem>-p<pages>.pdf. Never overwrites a file.",
                    json!({"type": "object", "required": ["input", "ranges", "path"], "additionalProperties": false, "properties": {
                        "input": {"type": "string", "description": "the PDF to split"},
                        "ranges": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}],
                                   "description": "\"each\", or a list of page ranges, one output file per range (as one string: ranges separated by ;)"},
                        "password": {"type": "string"},
                        "path": {"type": "string", "description": "the base name of the new files under output/, e.g. output/contract.pdf gives output/contract-p1-3.pdf"},
                        "unique": {"type": "boolean", "default": false}}}),
                    &["input"],
                    &["path"],
                ),
                operation(
                    "report",
                    "Write a new report PDF under output/ from structured blocks (heading, paragraph, list, table \
                     with its header repeated across pages, image (a PNG or JPEG file in a granted folder or \
                     output/), bar chart, page_break), with page numbers and embedded fonts (any language \
                     the installed fonts cover, e.g. é ß ₫ 中文). Never overwrites a file.",
                    report_schema(),
                    &["blocks[].path"],
                    &["path"],
                ),
            ],
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        match op.as_str() {
            "info" => info_op(parse_args(&args)?),
            "text" => text_op(parse_args(&args)?),
            "merge" => merge_op(parse_args(&args)?),
            "split" => split_op(parse_args(&args)?),
            "merge_folder" => merge_folder_op(parse_args(&args)?),
            "to_text" => to_text_op(parse_args(&args)?),
            "report" => report_op(&args),
            "sanitize" => sanitize_op(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Pdf with_types_in deskhand_guest::bindings);

fn report_schema() -> Value {
    let mut props = document_properties();
    if let Some(p) = props.as_object_mut() {
        p.insert(
            "path".into(),
            json!({"type": "string", "description": "a new .pdf file under the workspace's output/ folder"}),
        );
        p.insert("unique".into(), json!({"type": "boolean", "default": false}));
    }
    json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": props})
}

/// Reads a file for this tool: a regular file (not a link) under the size cap.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ToolError> {
    deskhand_guest::read_capped(path, cap, |size| {
        PdfError::TooLarge { size, limit: cap }.to_tool_error(path)
    })
}

fn open_file(path: &Path, password: Option<&str>) -> Result<lopdf::Document, ToolError> {
    let bytes = read_capped(path, MAX_PDF_BYTES)?;
    open(&bytes, password).map_err(|e| e.to_tool_error(path))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoArgs {
    path: PathBuf,
    password: Option<String>,
}

fn info_op(args: InfoArgs) -> Result<Output, ToolError> {
    let doc = open_file(&args.path, args.password.as_deref())?;
    let i = info(&doc);
    let mut j = serde_json::to_value(&i).unwrap_or_default();
    j["path"] = json!(args.path.display().to_string());
    let text = format!(
        "{}: {} page{}, PDF {}{}{}",
        args.path.display(),
        i.pages,
        if i.pages == 1 { "" } else { "s" },
        i.version,
        i.title.as_deref().map(|t| format!(", title {t:?}")).unwrap_or_default(),
        if i.encrypted { ", encrypted" } else { "" }
    );
    Ok(output(&j, text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextArgs {
    path: PathBuf,
    pages: Option<String>,
    password: Option<String>,
    max_chars: Option<usize>,
}

fn text_op(args: TextArgs) -> Result<Output, ToolError> {
    let max_chars = args.max_chars.unwrap_or(DEFAULT_MAX_CHARS);
    if !(1..=MAX_MAX_CHARS).contains(&max_chars) {
        return Err(ToolError::InvalidArgs(format!(
            "max_chars must be between 1 and {MAX_MAX_CHARS}"
        )));
    }
    let path = args.path.as_path();
    let doc = open_file(path, args.password.as_deref())?;
    let total = u32::try_from(doc.get_pages().len()).unwrap_or(u32::MAX);
    let pages = match args.pages.as_deref() {
        None => (1..=total).collect(),
        Some(spec) => parse_ranges(spec, total).map_err(|e| e.to_tool_error(path))?,
    };
    let mut notes = Vec::new();
    let mut out = Vec::new();
    let mut used = 0usize;
    let mut cut_at = None;
    // Page by page, stopping at the cap: a long document is not read past what is returned.
    let mut reader = PageTexts::new(&doc);
    for (i, n) in pages.iter().enumerate() {
        let text = reader.page(*n).unwrap_or_else(|e| {
            notes.push(format!("page {n}: {e}"));
            String::new()
        });
        let chars = text.chars().count();
        if used + chars > max_chars {
            let keep: String = text.chars().take(max_chars - used).collect();
            used = max_chars;
            out.push(json!({"page": n, "text": keep, "truncated": true}));
            cut_at = Some((*n, pages.len() - i - 1));
            break;
        }
        used += chars;
        out.push(json!({"page": n, "text": text}));
    }
    let truncated = cut_at.is_some();
    if let Some((page, unread)) = cut_at {
        notes.push(format!(
            "the text was cut at {max_chars} characters, in page {page}{}; ask for fewer pages with \"pages\" \
             (e.g. \"{}-\") or raise \"max_chars\" (up to {MAX_MAX_CHARS})",
            if unread > 0 {
                format!(", and {unread} more page(s) were not read")
            } else {
                String::new()
            },
            page
        ));
    }
    if used == 0 {
        notes.push("no text was found: the pages may be scanned images (this tool does not do OCR)".to_owned());
    }
    let mut j = json!({"path": path.display().to_string(), "page_count": total, "pages": out, "truncated": truncated});
    if !notes.is_empty() {
        j["notes"] = json!(notes);
    }
    let text = format!(
        "read {} character{} from {} page{} of {}{}",
        used,
        if used == 1 { "" } else { "s" },
        pages.len(),
        if pages.len() == 1 { "" } else { "s" },
        path.display(),
        if truncated { " (cut; see notes)" } else { "" }
    );
    Ok(output(&j, text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeArgs {
    inputs: Vec<PathBuf>,
    #[serde(default)]
    passwords: std::collections::BTreeMap<String, String>,
    path: PathBuf,
    #[serde(default)]
    unique: bool,
}

/// The target must be a .pdf file name.
fn check_pdf_target(path: &Path) -> Result<(), ToolError> {
    let ok = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    if !ok {
        return Err(ToolError::InvalidArgs(format!("{} must end in .pdf", path.display())));
    }
    Ok(())
}

fn merge_op(args: MergeArgs) -> Result<Output, ToolError> {
    check_pdf_target(&args.path)?;
    if args.inputs.is_empty() || args.inputs.len() > MAX_MERGE_INPUTS {
        return Err(ToolError::InvalidArgs(format!(
            "inputs must name 1 to {MAX_MERGE_INPUTS} PDFs"
        )));
    }
    let mut docs = Vec::with_capacity(args.inputs.len());
    let mut pages = 0;
    for input in &args.inputs {
        // Passwords are keyed by the path as the call gave it; the host resolves paths, so match either form.
        let password = args
            .passwords
            .iter()
            .find(|(k, _)| Path::new(k) == input.as_path() || input.ends_with(k.as_str()))
            .map(|(_, v)| v.as_str());
        let doc = match open_file(input, password) {
            // merge takes its passwords by input path: say so.
            Err(ToolError::BadContent(mut e)) if e.message.contains("\"password\" argument") => {
                e.message = format!(
                    "{}; for merge, give it in \"passwords\": {{\"{}\": \"...\"}}",
                    e.message,
                    input.display()
                );
                return Err(ToolError::BadContent(e));
            }
            other => other?,
        };
        pages += doc.get_pages().len();
        docs.push(doc);
    }
    let bytes = crate::merge(docs).map_err(|e| e.to_tool_error(&args.path))?;
    let written = deskhand_guest::write_new(&args.path, &bytes, args.unique)?;
    let j = json!({"path": written.display().to_string(), "pages": pages, "inputs": args.inputs.len(), "bytes": bytes.len()});
    Ok(output(
        &j,
        format!(
            "merged {} PDFs ({pages} pages) into {}",
            args.inputs.len(),
            written.display()
        ),
    ))
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeFolderArgs {
    folder: PathBuf,
    path: PathBuf,
    #[serde(default = "yes")]
    unique: bool,
}

fn merge_folder_op(args: MergeFolderArgs) -> Result<Output, ToolError> {
    check_pdf_target(&args.path)?;
    let inputs =
        crate::pdfs_in(&args.folder, Some(&args.path)).map_err(|e| deskhand_guest::io_error(&args.folder, &e))?;
    if inputs.is_empty() {
        return Err(ToolError::NotFound(path_error(
            &args.folder,
            "has no PDF directly in it (sub-folders, hidden names and links are not merged)",
        )));
    }
    if inputs.len() > MAX_MERGE_INPUTS {
        return Err(ToolError::InvalidArgs(format!(
            "{} holds {} PDFs; one merge takes at most {MAX_MERGE_INPUTS}",
            args.folder.display(),
            inputs.len()
        )));
    }
    let mut docs = Vec::with_capacity(inputs.len());
    let mut pages = 0;
    for input in &inputs {
        let doc = open_file(input, None)?;
        pages += doc.get_pages().len();
        docs.push(doc);
    }
    let bytes = crate::merge(docs).map_err(|e| e.to_tool_error(&args.path))?;
    let written = deskhand_guest::write_new(&args.path, &bytes, args.unique)?;
    let names: Vec<String> = inputs
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let j = json!({"path": written.display().to_string(), "pages": pages, "inputs": names, "bytes": bytes.len()});
    Ok(output(
        &j,
        format!(
            "merged {} PDFs ({pages} pages) from {} into {}, in this order: {}",
            inputs.len(),
            args.folder.display(),
            written.display(),
            names.join(", ")
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToTextArgs {
    input: PathBuf,
    password: Option<String>,
    path: PathBuf,
    #[serde(default = "yes")]
    unique: bool,
}

fn to_text_op(args: ToTextArgs) -> Result<Output, ToolError> {
    if !args.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
        return Err(ToolError::InvalidArgs(format!(
            "{} must end in .txt",
            args.path.display()
        )));
    }
    let doc = open_file(&args.input, args.password.as_deref())?;
    let total = u32::try_from(doc.get_pages().len()).unwrap_or(u32::MAX);
    let mut reader = PageTexts::new(&doc);
    let mut pages = Vec::new();
    let mut unreadable = Vec::new();
    for n in 1..=total {
        match reader.page(n) {
            Ok(text) => pages.push(text.trim_end().to_owned()),
            Err(e) => {
                unreadable.push(format!("page {n}: {e}"));
                pages.push(String::new());
            }
        }
    }
    if pages.iter().all(String::is_empty) {
        return Err(ToolError::BadContent(path_error(
            &args.input,
            "has no text to extract: its pages may be scanned images (this tool does not do OCR)",
        )));
    }
    let mut text = pages.join("\n\n");
    text.push('\n');
    let written = deskhand_guest::write_new(&args.path, text.as_bytes(), args.unique)?;
    let chars = text.chars().count();
    let mut j = json!({"path": written.display().to_string(), "input": args.input.display().to_string(),
                       "pages": total, "chars": chars});
    if !unreadable.is_empty() {
        j["notes"] = json!(unreadable);
    }
    Ok(output(
        &j,
        format!(
            "wrote the text of {} ({total} page{}, {chars} characters) to {}{}",
            args.input.display(),
            if total == 1 { "" } else { "s" },
            written.display(),
            if unreadable.is_empty() {
                String::new()
            } else {
                format!("; {} page(s) could not be read (see notes)", unreadable.len())
            }
        ),
    ))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Ranges {
    Each(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitArgs {
    input: PathBuf,
    ranges: Ranges,
    password: Option<String>,
    path: PathBuf,
    #[serde(default, deserialize_with = "lenient_bool")]
    unique: bool,
}

/// A boolean, or its word (`"true"`, `"false"`), as the offline planner
/// passes every parameter as text.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Word(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Word(w) if w.eq_ignore_ascii_case("true") => Ok(true),
        Flag::Word(w) if w.eq_ignore_ascii_case("false") => Ok(false),
        Flag::Word(w) => Err(serde::de::Error::custom(format!("expected true or false, got {w:?}"))),
    }
}

fn split_op(args: SplitArgs) -> Result<Output, ToolError> {
    check_pdf_target(&args.path)?;
    let doc = open_file(&args.input, args.password.as_deref())?;
    let total = u32::try_from(doc.get_pages().len()).unwrap_or(u32::MAX);
    let specs: Vec<String> = match args.ranges {
        Ranges::Each(s) if s.trim().eq_ignore_ascii_case("each") => (1..=total).map(|p| p.to_string()).collect(),
        // `1-3;4-6`: one file per range, as the offline skill passes them.
        Ranges::Each(s) => s
            .split(';')
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        Ranges::List(l) => l,
    };
    if specs.is_empty() || specs.len() > MAX_SPLIT_OUTPUTS {
        return Err(ToolError::InvalidArgs(format!(
            "ranges must give 1 to {MAX_SPLIT_OUTPUTS} files"
        )));
    }
    let stem = args
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "split".into());
    let mut parts = Vec::with_capacity(specs.len());
    for spec in &specs {
        let pages = parse_ranges(spec, total).map_err(|e| e.to_tool_error(&args.input))?;
        let label: String = spec
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| if c == ',' { '_' } else { c })
            .collect();
        let target = args.path.with_file_name(format!("{stem}-p{label}.pdf"));
        parts.push((target, pages));
    }
    // Build every file before writing any; refuse taken names up front.
    let mut built = Vec::with_capacity(parts.len());
    for (target, pages) in parts {
        if !args.unique && fs::symlink_metadata(&target).is_ok() {
            return Err(ToolError::AlreadyExists(path_error(
                &target,
                "already exists; deskhand never overwrites a file (pass \"unique\": true to pick a free name)",
            )));
        }
        let bytes = crate::split(&doc, &pages).map_err(|e| e.to_tool_error(&args.input))?;
        built.push((target, pages, bytes));
    }
    let mut written = Vec::with_capacity(built.len());
    for (target, pages, bytes) in &built {
        match deskhand_guest::write_new(target, bytes, args.unique) {
            Ok(p) => written.push((p, pages.len())),
            Err(e) => {
                // Nothing half way: take back what this call wrote.
                for (p, _) in &written {
                    let _ = fs::remove_file(p);
                }
                return Err(e);
            }
        }
    }
    let files: Vec<Value> = written
        .iter()
        .map(|(p, n)| json!({"path": p.display().to_string(), "pages": n}))
        .collect();
    let j = json!({"input": args.input.display().to_string(), "files": files});
    Ok(output(
        &j,
        format!(
            "split {} into {} file{}",
            args.input.display(),
            written.len(),
            if written.len() == 1 { "" } else { "s" }
        ),
    ))
}

fn report_op(args: &str) -> Result<Output, ToolError> {
    let mut value: Value = serde_json::from_str(args).map_err(|e| ToolError::InvalidArgs(e.to_string()))?;
    let Some(map) = value.as_object_mut() else {
        return Err(ToolError::InvalidArgs("arguments must be a JSON object".into()));
    };
    let path = match map.remove("path") {
        Some(Value::String(p)) => PathBuf::from(p),
        _ => {
            return Err(ToolError::InvalidArgs(
                "path (a new .pdf file under output/) is required".into(),
            ));
        }
    };
    let unique = match map.remove("unique") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(ToolError::InvalidArgs(format!(
                "unique must be true or false, got {other}"
            )));
        }
    };
    check_pdf_target(&path)?;
    let doc: Report = serde_json::from_value(value).map_err(|e| ToolError::InvalidArgs(e.to_string()))?;
    doc.validate()?;
    let fonts =
        Fonts::from_dirs(Path::new(FONTS_LATIN), Some(Path::new(FONTS_CJK))).map_err(|e| e.to_tool_error(&path))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut image_error = None;
    let result = crate::render_report(&doc, &fonts, |p| {
        let file = Path::new(p);
        let file = if file.is_absolute() {
            file.to_path_buf()
        } else {
            base.join(file)
        };
        let block = doc
            .blocks
            .iter()
            .position(|b| matches!(b, Block::Image { path, .. } if path == p))
            .unwrap_or_default();
        deskhand_guest::image::read_image_file(&file, &format!("blocks[{block}].path")).map_err(|e| {
            let message = format!("{e:?}");
            image_error = Some(e);
            PdfError::Image {
                path: file.display().to_string(),
                message,
            }
        })
    });
    let bytes = match result {
        Ok(b) => b,
        Err(e) => return Err(image_error.unwrap_or_else(|| e.to_tool_error(&path))),
    };
    let written = deskhand_guest::write_new(&path, &bytes, unique)?;
    let pages = open(&bytes, None).map(|d| d.get_pages().len()).unwrap_or(0);
    let j = json!({"path": written.display().to_string(), "pages": pages, "bytes": bytes.len()});
    Ok(output(
        &j,
        format!(
            "wrote {} ({pages} page{})",
            written.display(),
            if pages == 1 { "" } else { "s" }
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SanitizeArgs {
    path: PathBuf,
    out: PathBuf,
}

/// The host's step before a PDF is shown in a browser (web-ui's `/view/`):
/// an inert copy of `path` written as `out`, in the call's scratch folder
/// only. Not in the tool's description, so no model or `tool run` calls it.
fn sanitize_op(args: SanitizeArgs) -> Result<Output, ToolError> {
    if !args.out.starts_with(deskhand_guest::SCRATCH) {
        return Err(ToolError::InvalidArgs(format!(
            "out must lie in {}; the inert copy is the host's, never a deliverable",
            deskhand_guest::SCRATCH
        )));
    }
    let bytes = read_capped(&args.path, MAX_PDF_BYTES)?;
    let (inert, removed) = sanitize(&bytes).map_err(|e| e.to_tool_error(&args.path))?;
    let written = deskhand_guest::write_new(&args.out, &inert, false)?;
    let j = json!({"path": written.display().to_string(), "bytes": inert.len(), "removed": removed});
    Ok(output(
        &j,
        format!(
            "wrote an inert copy of {} ({} action(s), {} script or event entries, {} annotation(s) removed)",
            args.path.display(),
            removed.actions,
            removed.entries,
            removed.annotations
        ),
    ))
}
