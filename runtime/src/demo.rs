//! The demo: a workspace with sample files of the kind people hand to
//! deskhand, and the task `deskhand demo` runs on it.

use std::path::Path;

use crate::error::{Error, Result};
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

/// What `deskhand demo` asks for; the offline planner picks the folder-inventory skill.
pub const DEMO_TASK: &str = "Make an inventory of the projects folder";

/// Creates the demo workspace at `dir` with its sample files. Returns false
/// (and changes nothing) if it is already a workspace.
pub fn create_demo_workspace(dir: &Path) -> Result<bool> {
    let (workspace, outcome) = Workspace::init(dir)?;
    if !matches!(outcome, InitOutcome::Created { .. }) {
        return Ok(false);
    }
    for (rel, content) in SAMPLES {
        let path = workspace.root().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        if !path.exists() {
            std::fs::write(&path, content).map_err(Error::io(&path))?;
        }
    }
    Ok(true)
}
