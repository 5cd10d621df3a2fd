//! The memory file grows from the person's feedback, always visibly: a
//! proposed update is shown as a diff and written only when accepted, and
//! only if the file has not changed since the proposal was made.

use std::io::Write;

use deskhand_types::model::{Message, StopReason};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{ModelProvider, ModelRequest};
use crate::workspace::{MEMORY_FILE, Workspace};

/// A proposed new MEMORY.md, with the diff the person reviews.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryProposal {
    pub old: String,
    pub new: String,
    /// A unified diff of old -> new.
    pub diff: String,
    old_hash: [u8; 32],
}

impl MemoryProposal {
    fn new(old: String, new: String) -> Self {
        let diff = similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header("MEMORY.md (now)", "MEMORY.md (proposed)")
            .to_string();
        let old_hash = Sha256::digest(old.as_bytes()).into();
        MemoryProposal {
            old,
            new,
            diff,
            old_hash,
        }
    }

    pub fn is_change(&self) -> bool {
        self.old != self.new
    }
}

const REWRITE_PROMPT: &str = "You maintain MEMORY.md, the file where deskhand keeps what the person has taught it. \
Fold the person's feedback into the file: keep every existing point unless the feedback replaces it, add short \
one-line points, keep the heading and the intro. Reply with the complete new file and nothing else.";

fn read_memory(workspace: &Workspace) -> Result<String> {
    let path = workspace.root().join(MEMORY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

/// Proposes how MEMORY.md should change after `feedback`. With a model, the
/// model rewrites the file; without one, the feedback becomes a new point.
pub fn propose(workspace: &Workspace, feedback: &str, model: Option<&dyn ModelProvider>) -> Result<MemoryProposal> {
    let feedback = feedback.trim();
    if feedback.is_empty() {
        return Err(Error::InvalidArgs(
            "the feedback is empty; say what deskhand should remember".into(),
        ));
    }
    let old = read_memory(workspace)?;
    let new = match model {
        None => {
            let mut new = old.clone();
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            let point = feedback.split_whitespace().collect::<Vec<_>>().join(" ");
            new.push_str(&format!("- {point}\n"));
            new
        }
        Some(model) => {
            let messages = [Message::user_text(format!(
                "Current MEMORY.md:\n<file>\n{old}</file>\n\nThe person's feedback:\n<feedback>\n{feedback}\n</feedback>"
            ))];
            let request = ModelRequest {
                system: REWRITE_PROMPT,
                messages: &messages,
                tools: &[],
                max_tokens: 4096,
                stop: None,
            };
            let response = model.complete(&request, &mut |_| {})?;
            if response.stop_reason == StopReason::MaxTokens {
                return Err(Error::InvalidArgs(
                    "the model's rewrite of MEMORY.md was cut off; shorten the file or the feedback".into(),
                ));
            }
            let mut text = Message {
                role: deskhand_types::model::Role::Assistant,
                content: response.content,
            }
            .text();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
    };
    Ok(MemoryProposal::new(old, new))
}

/// Writes an accepted proposal atomically (temp file, fsync, rename, fsync
/// of the folder), refusing if MEMORY.md changed after the proposal was made.
pub fn apply(workspace: &Workspace, proposal: &MemoryProposal) -> Result<()> {
    let current = read_memory(workspace)?;
    let current_hash: [u8; 32] = Sha256::digest(current.as_bytes()).into();
    if current_hash != proposal.old_hash {
        return Err(Error::InvalidArgs(
            "MEMORY.md changed after this update was proposed; nothing was written. Give the feedback again to get a fresh proposal".into(),
        ));
    }
    let root = workspace.root();
    let path = root.join(MEMORY_FILE);
    let mut tmp = tempfile::NamedTempFile::new_in(root).map_err(Error::io(root))?;
    tmp.write_all(proposal.new.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(Error::io(&path))?;
    tmp.persist(&path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e.error,
    })?;
    std::fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(root))?;
    Ok(())
}
