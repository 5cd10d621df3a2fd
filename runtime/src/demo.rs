//! The demo: a workspace with sample files, and an inventory of its
//! `projects/` folder taken through the sandbox into `output/inventory.csv`.

use std::path::{Path, PathBuf};

use deskhand_types::Grant;
use serde_json::json;

use crate::error::{Error, Result};
use crate::tools::{CallRequest, Observer, Toolbox, run_call};
use crate::wasm::Limits;
use crate::workspace::{InitOutcome, Workspace};

/// Sample files: a small, believable mess of the kind people hand to deskhand.
const SAMPLES: &[(&str, &str)] = &[
    (
        "projects/2026 offsite/agenda.md",
        "# Offsite agenda\n\n- 09:00 Welcome\n- 10:00 Roadmap review\n- 14:00 Workshops\n",
    ),
    (
        "projects/2026 offsite/budget.csv",
        "item,amount_eur\nvenue,4200\ncatering,1850.50\ntravel,3120\n",
    ),
    (
        "projects/2026 offsite/attendees.txt",
        "Ana Lima\nBjörn Weiß\nChen Wei\nDana Okafor\n",
    ),
    (
        "projects/receipts/2026-03-02 taxi.txt",
        "Taxi Lisboa\nTotal: 18.40 EUR\n",
    ),
    (
        "projects/receipts/hotel march 2026.txt",
        "Hotel Avenida\n3 nights\nTotal: 412.00 EUR\n",
    ),
    (
        "projects/receipts/lunch 14.03.2026.txt",
        "Cafe Central\nTotal: 23.90 EUR\n",
    ),
    (
        "projects/website refresh/notes.md",
        "Ideas: lighter header, fewer fonts, a real pricing page.\n",
    ),
    (
        "projects/website refresh/drafts/home-v2.html",
        "<h1>Welcome</h1>\n<p>Draft two.</p>\n",
    ),
    (
        "context/about-us.md",
        "We are a five-person studio. Fiscal year = calendar year. Currency: EUR.\n",
    ),
];

#[derive(Debug)]
pub struct DemoReport {
    pub workspace: PathBuf,
    pub created: bool,
    pub inventory: PathBuf,
    pub files: usize,
    pub folders: usize,
    pub bytes: u64,
}

/// Creates (or reuses) the demo workspace at `dir` and writes the inventory.
pub fn run_demo(dir: &Path, toolbox: &Toolbox, observer: Option<Observer>) -> Result<DemoReport> {
    let (workspace, outcome) = Workspace::init(dir)?;
    let created = matches!(outcome, InitOutcome::Created { .. });
    if created {
        for (rel, content) in SAMPLES {
            let path = workspace.root().join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
            }
            if !path.exists() {
                std::fs::write(&path, content).map_err(Error::io(&path))?;
            }
        }
    }
    inventory(&workspace, toolbox, "projects", observer).map(|inv| DemoReport {
        workspace: workspace.root().into(),
        created,
        ..inv
    })
}

/// Lists `folder` recursively in the sandbox and writes a CSV inventory of
/// it under `output/`, never overwriting an earlier one.
pub fn inventory(
    workspace: &Workspace,
    toolbox: &Toolbox,
    folder: &str,
    observer: Option<Observer>,
) -> Result<DemoReport> {
    let grants = [Grant::read_only(folder)];
    let listing = run_call(
        workspace,
        toolbox,
        &CallRequest {
            tool: "fs",
            operation: "list",
            args: json!({"path": folder, "recursive": true}),
            grants: &grants,
            limits: Limits::default(),
        },
        observer.clone(),
    )?;
    let base = workspace
        .root()
        .join(folder)
        .canonicalize()
        .map_err(Error::io(workspace.root().join(folder)))?;
    let entries = listing.output.json["entries"].as_array().cloned().unwrap_or_default();
    let mut csv = String::from("path,kind,size_bytes,modified\n");
    let (mut files, mut folders, mut bytes) = (0, 0, 0);
    for e in &entries {
        let path = e["path"].as_str().unwrap_or_default();
        let rel = Path::new(path)
            .strip_prefix(&base)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.into());
        let kind = e["kind"].as_str().unwrap_or("other");
        let size = e["size"].as_u64().unwrap_or(0);
        match kind {
            "file" => {
                files += 1;
                bytes += size;
            }
            "dir" => folders += 1,
            _ => {}
        }
        csv.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(&rel),
            kind,
            if kind == "file" {
                size.to_string()
            } else {
                String::new()
            },
            e["mtime"].as_str().unwrap_or_default()
        ));
    }
    let written = run_call(
        workspace,
        toolbox,
        &CallRequest {
            tool: "fs",
            operation: "write",
            args: json!({"path": "output/inventory.csv", "content": csv, "unique": true}),
            grants: &[],
            limits: Limits::default(),
        },
        observer,
    )?;
    let inventory = PathBuf::from(written.output.json["path"].as_str().unwrap_or_default());
    Ok(DemoReport {
        workspace: workspace.root().into(),
        created: false,
        inventory,
        files,
        folders,
        bytes,
    })
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
