//! `deskhand trash list|restore|empty`: what deskhand deleted or displaced
//! in the person's folders: list it, put an item back, or empty the trash
//! for good (asking first).

use deskhand_runtime::changeset;

use crate::cli::TrashCommand;
use crate::failure::{Failure, change_failure, user_error};
use crate::render;
use crate::setup::open_workspace;
use crate::terminal::{confirm, out};

pub fn trash(command: TrashCommand) -> Result<(), Failure> {
    match command {
        TrashCommand::List { workspace } => {
            let ws = open_workspace(&workspace)?;
            let items = changeset::trash_list(&ws).map_err(change_failure)?;
            if items.is_empty() {
                out("The trash is empty.");
            }
            for t in items {
                out(&format!(
                    "{:>4}  {}  {} ({} bytes)\n      {}",
                    t.id,
                    t.trashed_at,
                    render::line(&t.original.display().to_string()),
                    t.size,
                    render::line(&t.reason)
                ));
            }
            Ok(())
        }
        TrashCommand::Restore { id, workspace } => {
            let ws = open_workspace(&workspace)?;
            let item = changeset::trash_restore(&ws, id).map_err(change_failure)?;
            out(&format!(
                "Restored {}",
                render::line(&item.original.display().to_string())
            ));
            Ok(())
        }
        TrashCommand::Empty { workspace, yes } => {
            let ws = open_workspace(&workspace)?;
            let items = changeset::trash_list(&ws).map_err(change_failure)?;
            if items.is_empty() {
                out("The trash is already empty.");
                return Ok(());
            }
            let bytes: u64 = items.iter().map(|t| t.size).sum();
            let question = format!(
                "Delete {} item(s) ({bytes} bytes) for good? Runs that deleted them can no longer be undone. [y/N] ",
                items.len()
            );
            let asked = || std::io::IsTerminal::is_terminal(&std::io::stdin()) && confirm(&question);
            if !(yes || asked()) {
                return Err(user_error(
                    "the trash was not emptied (answer y at the prompt, or pass --yes to empty it without asking)",
                ));
            }
            let (count, bytes) = changeset::trash_empty(&ws).map_err(change_failure)?;
            out(&format!("Emptied the trash: {count} item(s), {bytes} bytes."));
            Ok(())
        }
    }
}
