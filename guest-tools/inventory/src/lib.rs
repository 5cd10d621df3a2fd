//! The `inventory` tool: lists a granted folder recursively and writes a CSV
//! inventory of it (`path,kind,size_bytes,modified`) as a new file under the
//! workspace's `output/`. It sees only what the host preopened for the call.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use deskhand_guest::{Description, Guest, Output, ToolError, io_error, operation, output, parse_args, path_error};
use serde::Deserialize;
use serde_json::json;

const DEFAULT_OUTPUT: &str = "output/inventory.csv";
const PROGRESS_EVERY: u64 = 1000;

struct Inventory;

impl Guest for Inventory {
    fn describe() -> Description {
        Description {
            name: "inventory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Writes a CSV inventory of a granted folder (every entry, recursively) as a new file under output/."
                    .into(),
            operations: vec![operation(
                "run",
                "List the folder recursively and write path,kind,size_bytes,modified to a new CSV; never overwrites.",
                json!({
                    "type": "object", "required": ["folder", "output"], "additionalProperties": false,
                    "properties": {
                        "folder": {"type": "string", "description": "the folder to inventory, inside a granted folder"},
                        "output": {
                            "type": "string",
                            "description": format!("the CSV to write under output/ (the skill's default: {DEFAULT_OUTPUT}); a free name such as inventory-1.csv is picked if it is taken")
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
            "run" => run(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Inventory with_types_in deskhand_guest::bindings);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunArgs {
    folder: PathBuf,
    output: PathBuf,
}

#[derive(Default)]
struct Totals {
    files: u64,
    folders: u64,
    bytes: u64,
    entries: u64,
}

fn run(args: RunArgs) -> Result<Output, ToolError> {
    let meta = fs::symlink_metadata(&args.folder).map_err(|e| io_error(&args.folder, &e))?;
    if !meta.is_dir() {
        return Err(ToolError::InvalidArgs(format!(
            "{} is not a folder",
            args.folder.display()
        )));
    }
    let (dir, name) = target_parts(&args.output)?;
    let tmp = dir.join(format!(".{name}.deskhand-tmp-{}", unique_suffix()));
    let result = write_inventory(&args.folder, &tmp).and_then(|totals| {
        let written = link_into_place(&tmp, &args.output)?;
        Ok((totals, written))
    });
    let _ = fs::remove_file(&tmp);
    let (totals, written) = result?;
    let text = format!(
        "inventory of {}: {} files, {} folders, {} bytes in files; written to {}",
        args.folder.display(),
        totals.files,
        totals.folders,
        totals.bytes,
        written.display()
    );
    Ok(output(
        &json!({
            "path": written.display().to_string(),
            "files": totals.files,
            "folders": totals.folders,
            "bytes": totals.bytes,
        }),
        text,
    ))
}

/// Streams the CSV into `tmp` while walking, then syncs it. The temporary
/// file is skipped if it lies inside the folder being listed.
fn write_inventory(root: &Path, tmp: &Path) -> Result<Totals, ToolError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| io_error(tmp, &e))?;
    let mut csv = BufWriter::new(file);
    let mut totals = Totals::default();
    let mut failed = None;
    csv.write_all(b"path,kind,size_bytes,modified\r\n")
        .map_err(|e| io_error(tmp, &e))?;
    walk(root, &mut |path, meta| {
        if path == tmp {
            return true;
        }
        let rel = path.strip_prefix(root).unwrap_or(path);
        let kind = kind(meta.file_type());
        let size = if meta.is_file() {
            totals.files += 1;
            totals.bytes += meta.len();
            meta.len().to_string()
        } else {
            if meta.is_dir() {
                totals.folders += 1;
            }
            String::new()
        };
        let modified = meta
            .modified()
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_default();
        let row = format!("{},{kind},{size},{modified}\r\n", csv_field(&rel.to_string_lossy()));
        if let Err(e) = csv.write_all(row.as_bytes()) {
            failed = Some(io_error(tmp, &e));
            return false;
        }
        totals.entries += 1;
        if totals.entries.is_multiple_of(PROGRESS_EVERY) {
            deskhand_guest::progress(totals.entries, None, "listing");
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let file = csv.into_inner().map_err(|e| io_error(tmp, e.error()))?;
    file.sync_all().map_err(|e| io_error(tmp, &e))?;
    Ok(totals)
}

fn kind(ft: fs::FileType) -> &'static str {
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

/// Quotes a field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Walks `root` depth-first in name order (a folder, then its contents)
/// without following symlinks, calling `visit` for every entry until it
/// returns false. The same order as the fs tool's `list`.
fn walk(root: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata) -> bool) -> Result<(), ToolError> {
    let mut pending = sorted_entries(root)?;
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, &e))?;
        if !visit(&path, &meta) {
            return Ok(());
        }
        if meta.is_dir() {
            pending.extend(sorted_entries(&path)?);
        }
    }
    Ok(())
}

/// A folder's entries in reverse name order, ready to pop in name order.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_error(dir, &e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| io_error(dir, &e))?;
    names.sort_by(|a, b| b.cmp(a));
    Ok(names)
}

fn target_parts(target: &Path) -> Result<(&Path, String), ToolError> {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(ToolError::InvalidArgs(format!(
            "{} does not name a file",
            target.display()
        )));
    };
    let dir_meta = fs::metadata(dir).map_err(|e| io_error(dir, &e))?;
    if !dir_meta.is_dir() {
        return Err(ToolError::InvalidArgs(format!("{} is not a folder", dir.display())));
    }
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// Hard-links the synced temporary file into place. The link fails if the
/// target exists, so a file is never overwritten and a reader never sees
/// half of one; a taken name moves on to `name-1.ext`, `name-2.ext`, ...
fn link_into_place(tmp: &Path, target: &Path) -> Result<PathBuf, ToolError> {
    let stem = target
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    for n in 0..1000u32 {
        let candidate = if n == 0 {
            target.to_path_buf()
        } else {
            target.with_file_name(format!("{stem}-{n}{ext}"))
        };
        match fs::hard_link(tmp, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&candidate, &e)),
        }
    }
    Err(ToolError::AlreadyExists(path_error(
        target,
        "no free name after 1000 tries",
    )))
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}
