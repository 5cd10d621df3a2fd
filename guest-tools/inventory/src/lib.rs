//! The `inventory` tool: lists a granted folder recursively and writes a CSV
//! inventory of it (`path,kind,size_bytes,modified`) as a new file under the
//! workspace's `output/`. It sees only what the host preopened for the call.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use deskhand_guest::{
    Description, Guest, Output, ToolError, Walked, csv_field, io_error, kind, modified_rfc3339, operation, output,
    parse_args, require_folder, walk, write_new_with,
};
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
    walked: Walked,
}

fn run(args: RunArgs) -> Result<Output, ToolError> {
    // Checked before the output, so a bad folder is the error reported first.
    require_folder(&args.folder)?;
    let (totals, written) = write_new_with(&args.output, true, |tmp, file| write_inventory(&args.folder, tmp, file))?;
    let text = format!(
        "inventory of {}: {} files, {} folders, {} bytes in files; written to {}{}",
        args.folder.display(),
        totals.files,
        totals.folders,
        totals.bytes,
        written.display(),
        totals.walked.note()
    );
    Ok(output(
        &json!({
            "path": written.display().to_string(),
            "files": totals.files,
            "folders": totals.folders,
            "bytes": totals.bytes,
            "unreadable_names": totals.walked.json(),
        }),
        text,
    ))
}

/// Streams the CSV into `file` (the temporary `tmp`) while walking. The
/// temporary file is skipped if it lies inside the folder being listed.
fn write_inventory(root: &Path, tmp: &Path, file: &mut fs::File) -> Result<Totals, ToolError> {
    let mut csv = BufWriter::new(file);
    let mut totals = Totals::default();
    let mut failed = None;
    csv.write_all(b"path,kind,size_bytes,modified\r\n")
        .map_err(|e| io_error(tmp, &e))?;
    let walked = walk(root, true, &mut |path, meta| {
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
        let modified = modified_rfc3339(meta).unwrap_or_default();
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
    csv.into_inner().map_err(|e| io_error(tmp, e.error()))?;
    totals.walked = walked;
    Ok(totals)
}
