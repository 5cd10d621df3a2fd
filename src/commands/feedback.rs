//! `deskhand feedback TEXT`: proposes an update to MEMORY.md, shows it as a
//! diff, and writes it only if the person accepts.

use deskhand_runtime::workspace::Workspace;

use crate::cli::FeedbackArgs;
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::load_config;
use crate::terminal::{confirm, out};

pub fn feedback(args: FeedbackArgs) -> Result<(), Failure> {
    let FeedbackArgs {
        text,
        workspace,
        yes,
        model,
    } = args;
    let ws = Workspace::open(&workspace)?;
    let config = load_config(&ws, model.as_deref())?;
    let connected = deskhand_runtime::model::config::connect(&config).map_err(deskhand_runtime::Error::from)?;
    let proposal = deskhand_runtime::memory::propose(&ws, &text, connected.as_deref())?;
    if !proposal.is_change() {
        out("MEMORY.md already says that; nothing to change.");
        return Ok(());
    }
    out(&render::block(&proposal.diff));
    if !yes && !confirm("Write this to MEMORY.md? [y/N] ") {
        return Err(user_error(
            "MEMORY.md was not changed (run again with --yes to accept without a prompt)",
        ));
    }
    deskhand_runtime::memory::apply(&ws, &proposal)?;
    out("MEMORY.md updated.");
    Ok(())
}
