//! `deskhand init DIR`: creates a workspace (context/, projects/, output/,
//! INSTRUCTIONS.md, MEMORY.md and .deskhand/), or says what an existing one
//! lacks without changing it.

use std::path::Path;

use deskhand_runtime::workspace::{InitOutcome, Workspace};

use crate::failure::Failure;
use crate::setup::WORKSPACE_FOLDER;
use crate::terminal::out;

pub fn init(dir: &Path) -> Result<(), Failure> {
    let (ws, outcome) = Workspace::init(dir).map_err(|e| e.on_named_path(dir, "a workspace", WORKSPACE_FOLDER))?;
    match outcome {
        InitOutcome::Created { created } => {
            out(&format!("Created a deskhand workspace at {}:", ws.root().display()));
            for p in created {
                out(&format!("  {p}"));
            }
            out("Put reference material in context/, work in projects/; deliverables appear in output/.");
        }
        InitOutcome::AlreadyWorkspace { missing } => {
            out(&format!(
                "{} is already a deskhand workspace; nothing was changed.",
                ws.root().display()
            ));
            if !missing.is_empty() {
                out(&format!(
                    "Missing standard parts (create them if you want them back): {}",
                    missing.join(", ")
                ));
            }
        }
    }
    Ok(())
}
