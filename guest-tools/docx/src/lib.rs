//! The `docx` tool: reads a Word document's text with its structure
//! (`text`, in [`read`]) and writes a Word document under output/ from the shared
//! document model (`deskhand_guest::document`): a Title paragraph, headings
//! styled Heading 1-3 in `styles.xml`, paragraphs, bulleted and numbered
//! lists through `numbering.xml`, tables with a repeated, shaded header row
//! and borders, PNG/JPEG images at their aspect ratio, native bar charts and
//! page breaks; title, subject and author go to the core properties.
//!
//! The whole package is built in memory, then saved with the sdk's
//! never-overwrite write: a bad block or image leaves no file behind.
//!
//! `edit` (in [`edit`]) changes an existing document as a proposed
//! overwrite, rewriting only the parts it touches; `fill` (in [`fill`])
//! makes new documents from a .docx or .pptx template and a CSV or JSON file.

mod build;
mod digest;
mod edit;
mod fill;
mod read;

use std::path::PathBuf;

use deskhand_guest::document::{Block, Document, document_properties};
use deskhand_guest::{Description, Guest, Output, ToolError, operation, output, parse_args};
use serde::Deserialize;
use serde_json::{Value, json};

struct Docx;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: PathBuf,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    blocks: Vec<Block>,
}

fn schema() -> Value {
    let mut props = document_properties();
    props["path"] = json!({"type": "string", "description": "a new .docx file under the workspace's output/ folder"});
    props["unique"] = json!({"type": "boolean", "default": false,
        "description": "pick a free name (name-1.docx, ...) instead of failing when the file exists"});
    props["title"]["description"] = json!("shown first in the Title style, and the document's title property");
    json!({"type": "object", "required": ["path", "blocks"], "additionalProperties": false, "properties": props})
}

impl Guest for Docx {
    fn describe() -> Description {
        Description {
            name: "docx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Reads Word (.docx) documents as Markdown text (headings, lists, tables, comments, tracked \
                      changes, footnotes), writes new ones under output/ (headings, paragraphs, lists, tables, \
                      images, bar charts and page breaks), changes existing ones as proposals the person approves \
                      (replace text, fill {{placeholders}}, append blocks) and fills templates from a CSV or JSON \
                      file, one new document per row."
                .into(),
            operations: vec![
                operation("text", read::SUMMARY, read::schema(), &["path"], &[]),
                operation(
                    "write",
                    "Create a new .docx document under output/ from blocks (heading level 1-3, paragraph, list with \
                 items and numbered, table with header and rows, image from a PNG/JPEG path in a granted folder or \
                 output/, chart with labels and values drawn as bars, page_break). Never overwrites a file.",
                    schema(),
                    &["blocks[].path"],
                    &["path"],
                ),
                operation("edit", edit::SUMMARY, edit::schema(), &["path"], &[]),
                operation(
                    "fill",
                    fill::SUMMARY,
                    fill::schema(),
                    &["template", "values"],
                    &["path"],
                ),
                operation(
                    "digest",
                    "Create a new .docx under output/ listing the notes (.md, .txt) in a folder and its sub-folders, \
                     optionally only those dated in a period: each note's title, date and first lines, oldest first. \
                     It does not summarise them.",
                    digest::schema(),
                    &["folder"],
                    &["path"],
                ),
            ],
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        match op.as_str() {
            "text" => read::text(parse_args(&args)?),
            "write" => write(parse_args(&args)?),
            "digest" => digest::digest(parse_args(&args)?),
            "edit" => edit::edit(parse_args(&args)?),
            "fill" => fill::fill(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Docx with_types_in deskhand_guest::bindings);

fn write(args: WriteArgs) -> Result<Output, ToolError> {
    deskhand_ooxml::check_extension(&args.path, "docx")?;
    let doc = Document {
        title: args.title,
        author: args.author,
        subject: args.subject,
        blocks: args.blocks,
    };
    doc.validate()?;
    if doc.blocks.is_empty() && doc.title.is_none() {
        return Err(ToolError::InvalidArgs(
            "blocks: the document is empty; give at least one block (or a title)".into(),
        ));
    }
    let (bytes, stats) = build::build(&doc, &mut deskhand_ooxml::read_image)?;
    let written = deskhand_ooxml::save(&args.path, "docx", &bytes, args.unique)?;
    let size = bytes.len();
    let text = format!(
        "wrote {} ({} blocks: {} tables, {} images, {} charts; {size} bytes)",
        written.display(),
        doc.blocks.len(),
        stats.tables,
        stats.images,
        stats.charts
    );
    Ok(output(
        &json!({"path": written.display().to_string(), "size": size, "blocks": doc.blocks.len(),
                "tables": stats.tables, "images": stats.images, "charts": stats.charts}),
        text,
    ))
}
