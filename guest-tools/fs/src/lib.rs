//! The `fs` tool: reads the granted folders and writes new files under the
//! workspace's `output/`. It sees only what the host preopened for the call,
//! so every path check here is a courtesy; the sandbox is the guarantee.
//! Granted folders are read-only in the sandbox: `move`, `delete` and `save`
//! only propose changes, which the host checks, shows and applies.

mod organize;
mod unpack;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use deskhand_guest::{
    Change, Description, Guest, Output, PathPair, SCRATCH, StagedFile, ToolError, io_error, kind, modified_rfc3339,
    operation, output, parse_args, path_error, proposal, walk, write_new,
};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_LIST_LIMIT: usize = 10_000;
const DEFAULT_READ_BYTES: u64 = 1024 * 1024;
const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;
const MAX_WRITE_BYTES: usize = 64 * 1024 * 1024;

struct Fs;

impl Guest for Fs {
    fn describe() -> Description {
        let path = json!({"type": "string", "description": "a path inside a granted folder"});
        Description {
            name: "fs".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Lists, inspects, reads and hashes files in the granted folders; writes new files under output/; proposes moves, deletions and saves in folders granted read-write."
                .into(),
            operations: vec![
                operation(
                    "list",
                    "List a folder's entries with size and modification time (optionally recursive).",
                    json!({
                        "type": "object", "required": ["path"], "additionalProperties": false,
                        "properties": {
                            "path": path,
                            "recursive": {"type": "boolean", "default": false},
                            "limit": {"type": "integer", "minimum": 1, "default": DEFAULT_LIST_LIMIT}
                        }
                    }),
                    &["path"],
                    &[],
                ),
                operation(
                    "stat",
                    "Kind, size, modification time and permissions of one path (symlinks are not followed).",
                    json!({
                        "type": "object", "required": ["path"], "additionalProperties": false,
                        "properties": {"path": path}
                    }),
                    &["path"],
                    &[],
                ),
                operation(
                    "read_text",
                    "Read a UTF-8 text file, up to max_bytes (the rest is reported as truncated).",
                    json!({
                        "type": "object", "required": ["path"], "additionalProperties": false,
                        "properties": {
                            "path": path,
                            "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_READ_BYTES, "default": DEFAULT_READ_BYTES}
                        }
                    }),
                    &["path"],
                    &[],
                ),
                operation(
                    "find",
                    "Find files under a folder whose relative path matches a glob such as **/*.csv.",
                    json!({
                        "type": "object", "required": ["path", "pattern"], "additionalProperties": false,
                        "properties": {
                            "path": path,
                            "pattern": {"type": "string"},
                            "limit": {"type": "integer", "minimum": 1, "default": DEFAULT_LIST_LIMIT}
                        }
                    }),
                    &["path"],
                    &[],
                ),
                operation(
                    "hash",
                    "SHA-256 of a file's content.",
                    json!({
                        "type": "object", "required": ["path"], "additionalProperties": false,
                        "properties": {"path": path}
                    }),
                    &["path"],
                    &[],
                ),
                operation(
                    "write",
                    "Write a new file under output/; never overwrites. With unique, picks a free name instead of failing.",
                    json!({
                        "type": "object", "required": ["path", "content"], "additionalProperties": false,
                        "properties": {
                            "path": {"type": "string", "description": "a path under the workspace's output/ folder"},
                            "content": {"type": "string"},
                            "unique": {"type": "boolean", "default": false}
                        }
                    }),
                    &[],
                    &["path"],
                ),
                operation(
                    "move",
                    "Propose renaming or moving a file or folder inside a folder granted read-write. deskhand checks, shows and applies it (undoable); nothing moves if it is refused.",
                    json!({
                        "type": "object", "required": ["path", "to"], "additionalProperties": false,
                        "properties": {
                            "path": {"type": "string", "description": "the entry to move, in a folder granted read-write"},
                            "to": {"type": "string", "description": "its new path, which must not exist"}
                        }
                    }),
                    &[],
                    &["path", "to"],
                ),
                operation(
                    "delete",
                    "Propose deleting a file in a folder granted read-write. The person is always asked; a deleted file goes to the workspace trash.",
                    json!({
                        "type": "object", "required": ["path"], "additionalProperties": false,
                        "properties": {"path": {"type": "string", "description": "the file to delete"}}
                    }),
                    &[],
                    &["path"],
                ),
                operation(
                    "sort",
                    "Propose moving each file directly in a folder into a sub-folder by type (Documents, Spreadsheets, Images, ...) or by month (YYYY-MM, from a date in its name or its modification time); the list goes to a new CSV under output/. Files whose place is taken are left, with the reason.",
                    organize::sort_schema(),
                    &["folder"],
                    &["output"],
                ),
                operation(
                    "duplicates",
                    "Find files with identical content under a folder (and its sub-folders), write a report CSV under output/, and with remove, propose deleting every copy but the oldest of each group (always asked).",
                    organize::duplicates_schema(),
                    &["folder"],
                    &["output"],
                ),
                operation(
                    "unpack",
                    "Unpack a zip archive (a shared skill or plugin) as new files in a new folder under output/; names that would leave the folder and links are left out and listed.",
                    unpack::schema(),
                    &["path"],
                    &["to"],
                ),
                operation(
                    "save",
                    "Propose writing a text file in a folder granted read-write (or output/): a new file, or an overwrite whose previous version deskhand keeps for undo.",
                    json!({
                        "type": "object", "required": ["path", "content"], "additionalProperties": false,
                        "properties": {
                            "path": {"type": "string", "description": "the file to write"},
                            "content": {"type": "string"}
                        }
                    }),
                    &[],
                    &["path"],
                ),
            ],
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        match op.as_str() {
            "list" => list(parse_args(&args)?),
            "stat" => stat(parse_args(&args)?),
            "read_text" => read_text(parse_args(&args)?),
            "find" => find(parse_args(&args)?),
            "hash" => hash(parse_args(&args)?),
            "write" => write(parse_args(&args)?),
            "move" => propose_move(parse_args(&args)?),
            "delete" => propose_delete(parse_args(&args)?),
            "save" => propose_save(parse_args(&args)?),
            "sort" => organize::sort(parse_args(&args)?),
            "duplicates" => organize::duplicates(parse_args(&args)?),
            "unpack" => unpack::unpack(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Fs with_types_in deskhand_guest::bindings);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    path: PathBuf,
    #[serde(default)]
    recursive: bool,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: PathBuf,
    max_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindArgs {
    path: PathBuf,
    pattern: String,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: PathBuf,
    content: String,
    #[serde(default)]
    unique: bool,
}

fn entry_json(path: &Path, meta: &fs::Metadata) -> Value {
    json!({
        "path": path.display().to_string(),
        "kind": kind(meta.file_type()),
        "size": meta.len(),
        "mtime": modified_rfc3339(meta),
    })
}

fn list(args: ListArgs) -> Result<Output, ToolError> {
    let limit = args.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let mut entries = Vec::new();
    let mut truncated = false;
    let mut total_size = 0u64;
    let walked = walk(&args.path, args.recursive, &mut |path, meta| {
        if entries.len() == limit {
            truncated = true;
            return false;
        }
        if meta.is_file() {
            total_size += meta.len();
        }
        entries.push(entry_json(path, meta));
        if entries.len() % 1000 == 0 {
            deskhand_guest::progress(entries.len() as u64, None, "listing");
        }
        true
    })?;
    let text = format!(
        "{} entries in {} ({} bytes in files){}{}",
        entries.len(),
        args.path.display(),
        total_size,
        if truncated {
            format!(", stopped at the limit of {limit}")
        } else {
            String::new()
        },
        walked.note()
    );
    Ok(output(
        &json!({"entries": entries, "truncated": truncated, "unreadable_names": walked.json()}),
        text,
    ))
}

fn stat(args: PathArgs) -> Result<Output, ToolError> {
    let meta = fs::symlink_metadata(&args.path).map_err(|e| io_error(&args.path, &e))?;
    let mut value = entry_json(&args.path, &meta);
    value["readonly"] = json!(meta.permissions().readonly());
    let text = format!(
        "{}: {}, {} bytes",
        args.path.display(),
        kind(meta.file_type()),
        meta.len()
    );
    Ok(output(&value, text))
}

fn read_text(args: ReadArgs) -> Result<Output, ToolError> {
    let max = args.max_bytes.unwrap_or(DEFAULT_READ_BYTES).min(MAX_READ_BYTES);
    let (file, meta) = deskhand_guest::open_regular(&args.path)?;
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(&args.path, &e))?;
    let truncated = meta.len() > bytes.len() as u64;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) if truncated && e.utf8_error().error_len().is_none() => {
            // The cap cut a multi-byte character in half; drop the partial tail.
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).map_err(|_| ToolError::BadContent(path_error(&args.path, "is not UTF-8 text")))?
        }
        Err(_) => {
            return Err(ToolError::BadContent(path_error(
                &args.path,
                "is not UTF-8 text; use `hash` or a tool for its format",
            )));
        }
    };
    let summary = format!(
        "{}: {} bytes of text{}",
        args.path.display(),
        text.len(),
        if truncated {
            format!(" (first {max} of {} bytes)", meta.len())
        } else {
            String::new()
        }
    );
    Ok(output(
        &json!({"text": text, "size": meta.len(), "truncated": truncated}),
        summary,
    ))
}

fn find(args: FindArgs) -> Result<Output, ToolError> {
    let glob = globset::GlobBuilder::new(&args.pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| ToolError::InvalidArgs(format!("bad glob pattern {:?}: {e}", args.pattern)))?
        .compile_matcher();
    let limit = args.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let mut matches = Vec::new();
    let mut truncated = false;
    let walked = walk(&args.path, true, &mut |path, meta| {
        let rel = path.strip_prefix(&args.path).unwrap_or(path);
        if glob.is_match(rel) {
            if matches.len() == limit {
                truncated = true;
                return false;
            }
            matches.push(entry_json(path, meta));
        }
        true
    })?;
    let text = format!(
        "{} matches for {} in {}{}",
        matches.len(),
        args.pattern,
        args.path.display(),
        walked.note()
    );
    Ok(output(
        &json!({"matches": matches, "truncated": truncated, "unreadable_names": walked.json()}),
        text,
    ))
}

fn hash(args: PathArgs) -> Result<Output, ToolError> {
    let (digest, size) = organize::sha256_of(&args.path)?;
    let text = format!("sha256 {digest}  {}", args.path.display());
    Ok(output(&json!({"sha256": digest, "size": size}), text))
}

/// Writes a new file under output/ with [`write_new`]: never over an
/// existing file, and never half of one.
fn write(args: WriteArgs) -> Result<Output, ToolError> {
    if args.content.len() > MAX_WRITE_BYTES {
        return Err(ToolError::TooLarge(path_error(
            &args.path,
            format!("content is over {MAX_WRITE_BYTES} bytes"),
        )));
    }
    let written = write_new(&args.path, args.content.as_bytes(), args.unique)?;
    let text = format!("wrote {} ({} bytes)", written.display(), args.content.len());
    Ok(output(
        &json!({"path": written.display().to_string(), "size": args.content.len()}),
        text,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveArgs {
    path: PathBuf,
    to: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveArgs {
    path: PathBuf,
    content: String,
}

/// The entry at `path` must exist (symlinks are not followed); the host checks the rest.
fn existing(path: &Path) -> Result<fs::Metadata, ToolError> {
    fs::symlink_metadata(path).map_err(|e| io_error(path, &e))
}

fn propose_move(args: MoveArgs) -> Result<Output, ToolError> {
    existing(&args.path)?;
    let pair = PathPair {
        source: args.path.display().to_string(),
        target: args.to.display().to_string(),
    };
    let same_folder = args.path.parent() == args.to.parent();
    let (verb, change) = if same_folder {
        ("rename", Change::Rename(pair))
    } else {
        ("move", Change::Move(pair))
    };
    let text = format!("proposed to {verb} {} to {}", args.path.display(), args.to.display());
    Ok(proposal(
        &json!({"proposed": verb, "path": args.path.display().to_string(), "to": args.to.display().to_string()}),
        text,
        vec![change],
    ))
}

fn propose_delete(args: PathArgs) -> Result<Output, ToolError> {
    let meta = existing(&args.path)?;
    let text = format!("proposed to delete {} ({} bytes)", args.path.display(), meta.len());
    Ok(proposal(
        &json!({"proposed": "delete", "path": args.path.display().to_string()}),
        text,
        vec![Change::Delete(args.path.display().to_string())],
    ))
}

/// Stages the content in the call's scratch folder and proposes it as a new
/// file or an overwrite, depending on what is at `path` now.
fn propose_save(args: SaveArgs) -> Result<Output, ToolError> {
    if args.content.len() > MAX_WRITE_BYTES {
        return Err(ToolError::TooLarge(path_error(
            &args.path,
            format!("content is over {MAX_WRITE_BYTES} bytes"),
        )));
    }
    let staged = Path::new(SCRATCH).join("save");
    fs::write(&staged, args.content.as_bytes()).map_err(|e| io_error(&staged, &e))?;
    let file = StagedFile {
        path: args.path.display().to_string(),
        staged: staged.display().to_string(),
    };
    let (verb, change) = match fs::symlink_metadata(&args.path) {
        Ok(_) => ("overwrite", Change::Overwrite(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ("create", Change::Create(file)),
        Err(e) => return Err(io_error(&args.path, &e)),
    };
    let text = format!(
        "proposed to {verb} {} ({} bytes)",
        args.path.display(),
        args.content.len()
    );
    Ok(proposal(
        &json!({"proposed": verb, "path": args.path.display().to_string(), "size": args.content.len()}),
        text,
        vec![change],
    ))
}
