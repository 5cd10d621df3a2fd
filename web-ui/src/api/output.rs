//! What the runs made in output/: the list, previews, downloads, and PDFs
//! shown inline from their inert copies. Downloads and the framed PDF are
//! navigations, so they answer refusals in plain text the browser shows.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use deskhand_runtime::tools::BundledTool;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::{PREVIEW_BYTES, blocking};
use crate::App;
use crate::files::{self, FileError};
use crate::inert::{self, NotShown};

/// A relative path under output/ with plain components only.
fn output_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))).then(|| p.to_path_buf())
}

fn not_under_output() -> ApiError {
    ApiError::text(StatusCode::BAD_REQUEST, "refused: name a file under output/")
}

pub(super) async fn output_list(State(app): State<Arc<App>>) -> ApiResult<Json<Vec<Value>>> {
    let out = app.workspace.output_dir();
    let files = blocking(move || {
        let mut files = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(out.join(&rel)) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let name = rel.join(e.file_name());
                if meta.is_dir() {
                    stack.push(name);
                } else if meta.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
                    files.push(json!({"path": name.display().to_string(), "size": meta.len()}));
                }
            }
        }
        files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        files
    })
    .await?;
    Ok(Json(files))
}

/// Opens a file under output/ off the async workers (see `files.rs`).
async fn open_output(app: &App, rel: PathBuf) -> ApiResult<(files::Opened, String)> {
    let out = app.workspace.output_dir();
    let shown = format!("output/{}", rel.display());
    let shown2 = shown.clone();
    match blocking(move || files::open_beneath(&out, &rel, &shown2)).await? {
        Ok(opened) => Ok((opened, shown)),
        Err(e @ FileError::Missing(_)) => Err(ApiError::text(StatusCode::NOT_FOUND, e.to_string())),
        Err(e) => Err(ApiError::text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
    }
}

/// A file under output/, streamed: its length from the open handle, its
/// bytes read in chunks on the blocking pool, never whole in memory.
pub(super) async fn download(State(app): State<Arc<App>>, UrlPath(path): UrlPath<String>) -> ApiResult {
    let rel = output_path(&path).ok_or_else(not_under_output)?;
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], ""))
        .unwrap_or_default();
    let (opened, shown) = open_output(&app, rel).await?;
    let size = opened.size;
    let mut r = Response::new(files::stream(opened, shown));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        name.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "_"),
        url_path(Path::new(&name))
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
pub(super) struct PreviewQuery {
    page: Option<u32>,
}

/// Runs a read-only operation of a bundled tool on a file in output/
/// through the toolbox's read-only path ([`deskhand_runtime::tools::Toolbox::read_only`]):
/// a sandbox that holds only output/, unjournaled (a preview is not a run).
fn sandboxed_read(app: &App, tool: BundledTool, op: &str, args: Value) -> Result<Value, String> {
    app.bundled_toolbox()?
        .read_only(&app.workspace, tool, op, &args)
        .map(|out| out.json)
        .map_err(|e| e.to_string())
}

/// A PDF under output/, shown inline so the page can frame it in the
/// browser's own PDF viewer (the security layer lets only this page frame
/// `/view/`): not the file itself, whose scripts that viewer would run, but
/// its inert copy (`inert.rs`), streamed. Anything that is not a PDF, or
/// cannot be made inert, is refused in words.
pub(super) async fn view_pdf(State(app): State<Arc<App>>, UrlPath(path): UrlPath<String>) -> ApiResult {
    let rel = output_path(&path).ok_or_else(not_under_output)?;
    if !rel.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")) {
        return Err(ApiError::text(
            StatusCode::BAD_REQUEST,
            "refused: only PDFs are shown inline; download other files",
        ));
    }
    let (opened, shown) = open_output(&app, rel).await?;
    let shown2 = shown.clone();
    let opened = blocking(move || {
        let (dir, copy) = inert::inert_copy(&app, opened, &shown2)?;
        files::open_beneath(&dir, &copy, &shown2).map_err(|e| NotShown::Failed(e.to_string()))
    })
    .await?
    .map_err(|e| match e {
        NotShown::Refused(_) => ApiError::text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        NotShown::Failed(_) => ApiError::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    let size = opened.size;
    let mut r = Response::new(files::stream(opened, shown));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(r)
}

/// A preview: CSV and xlsx as tables (xlsx read by the sandboxed xlsx tool),
/// a PDF page by page (its text, by the sandboxed pdf tool, and the page of
/// its inert copy in the browser's viewer, or why there is none), text as text.
pub(super) async fn preview(
    State(app): State<Arc<App>>,
    UrlPath(path): UrlPath<String>,
    Query(query): Query<PreviewQuery>,
) -> ApiResult<Json<Value>> {
    let rel = path
        .strip_prefix("output/")
        .and_then(output_path)
        .ok_or_else(|| ApiError::bad_request("name a file under output/"))?;
    let ext = rel
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let preview = blocking(move || -> Result<Value, String> {
        // Regular files only, for the tools too (a FIFO would hold their thread).
        let shown = format!("output/{}", rel.display());
        let opened = files::open_beneath(&app.workspace.output_dir(), &rel, &shown).map_err(|e| e.to_string())?;
        match ext.as_str() {
            "xlsx" | "xls" | "ods" => {
                let file = app.workspace.output_dir().join(&rel);
                let data = sandboxed_read(
                    &app,
                    BundledTool::Xlsx,
                    "read",
                    json!({"path": file.display().to_string(), "max_rows": 200}),
                )?;
                Ok(json!({"kind": "sheets", "data": data}))
            }
            "docx" | "docm" | "pptx" | "pptm" => {
                let file = app.workspace.output_dir().join(&rel);
                let word = ext.starts_with("doc");
                let tool = if word { BundledTool::Docx } else { BundledTool::Pptx };
                let data = sandboxed_read(
                    &app,
                    tool,
                    "text",
                    json!({"path": file.display().to_string(), "max_chars": 20_000}),
                )?;
                let text = if word {
                    data["text"].as_str().unwrap_or_default().to_owned()
                } else {
                    slides_text(&data)
                };
                Ok(json!({"kind": "text", "text": text, "truncated": data["truncated"]}))
            }
            "pdf" => {
                let file = app.workspace.output_dir().join(&rel);
                let page = query.page.unwrap_or(1).max(1);
                let data = sandboxed_read(
                    &app,
                    BundledTool::Pdf,
                    "text",
                    json!({"path": file.display().to_string(), "pages": page.to_string(), "max_chars": 20_000}),
                )?;
                let text = data["pages"][0]["text"].as_str().unwrap_or_default().to_owned();
                // Made (or found) now, so the frame's request is quick and a
                // file that cannot be made inert is explained in the page.
                let (view, not_shown) = match inert::inert_copy(&app, opened, &shown) {
                    Ok(_) => (
                        json!(format!("/view/output/{}#page={page}", url_path(&rel))),
                        Value::Null,
                    ),
                    Err(e) => (Value::Null, json!(e.to_string())),
                };
                Ok(json!({
                    "kind": "pdf",
                    "page": page,
                    "pages": data["page_count"],
                    "text": text,
                    "view": view,
                    "not_shown": not_shown,
                }))
            }
            _ => {
                let (bytes, more) = files::read_prefix(opened, PREVIEW_BYTES, &shown).map_err(|e| e.to_string())?;
                let text = files::utf8_prefix(bytes, more)
                    .ok_or_else(|| format!("{shown} is not text; download it to open it"))?;
                if ext == "csv" {
                    Ok(json!({"kind": "table", "rows": csv_rows(&text), "truncated": more}))
                } else {
                    Ok(json!({"kind": "text", "text": text, "truncated": more}))
                }
            }
        }
    })
    .await?
    .map_err(ApiError::unprocessable)?;
    Ok(Json(preview))
}

/// The pptx tool's slides as one text: each slide's number and title, its
/// text, and its speaker notes.
fn slides_text(data: &Value) -> String {
    let mut out = String::new();
    for s in data["slides"].as_array().into_iter().flatten() {
        let title = s["title"].as_str().unwrap_or_default();
        out.push_str(&format!(
            "## Slide {}{}{title}\n\n",
            s["slide"],
            if title.is_empty() { "" } else { ": " }
        ));
        let text = s["text"].as_str().unwrap_or_default();
        if !text.is_empty() {
            out.push_str(text);
            out.push_str("\n\n");
        }
        if let Some(notes) = s["notes"].as_str().filter(|n| !n.is_empty()) {
            out.push_str(&format!("Notes: {notes}\n\n"));
        }
    }
    out
}

/// What a URL path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A relative path as a URL path: each segment percent-encoded (`#`, `%`,
/// spaces and non-ASCII included), joined by `/`.
fn url_path(rel: &Path) -> String {
    rel.components()
        .map(|c| utf8_percent_encode(&c.as_os_str().to_string_lossy(), SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The first rows of a CSV text, each cut to 200 cells; a quoted cell may
/// span lines, and the text may end inside a row (the preview is a prefix).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .into_records()
        .map_while(Result::ok)
        .take(500)
        .map(|row| row.iter().take(200).map(str::to_owned).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_urls_encode_every_segment() {
        assert_eq!(
            url_path(Path::new("sub dir/report #2 50%.pdf")),
            "sub%20dir/report%20%232%2050%25.pdf"
        );
        assert_eq!(url_path(Path::new("café.pdf")), "caf%C3%A9.pdf");
    }

    #[test]
    fn output_paths_are_plain_relative_names() {
        assert_eq!(output_path("inventory.csv"), Some(PathBuf::from("inventory.csv")));
        assert_eq!(output_path("sub/x.txt"), Some(PathBuf::from("sub/x.txt")));
        for bad in ["", "../INSTRUCTIONS.md", "/etc/passwd", "a/../../b", "./x"] {
            assert_eq!(output_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_rows_split_with_quotes() {
        assert_eq!(csv_rows(r#"a,"b, c","say ""hi""""#), [["a", "b, c", r#"say "hi""#]]);
        assert_eq!(csv_rows("a,\"two\nlines\"\r\nb"), [vec!["a", "two\nlines"], vec!["b"]]);
        assert!(csv_rows("").is_empty());
    }
}
