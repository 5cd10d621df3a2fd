//! A changeset as the journal, the ledger, the CLI and the UI see it: the
//! file changes a step made (or proposes) to the person's folders, with the
//! content hashes that let `undo` tell whether a file changed since.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Create,
    Overwrite,
    Rename,
    Move,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Overwrite => "overwrite",
            ChangeKind::Rename => "rename",
            ChangeKind::Move => "move",
            ChangeKind::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ChangeKind::Create,
            ChangeKind::Overwrite,
            ChangeKind::Rename,
            ChangeKind::Move,
            ChangeKind::Delete,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// True for a change that moves an existing entry to a new name.
    pub fn is_move(self) -> bool {
        matches!(self, ChangeKind::Rename | ChangeKind::Move)
    }
}

/// One file change. `path` is the entry it acts on (the source of a rename
/// or move); `target` is where a rename or move puts it. Hashes are SHA-256
/// in hex: `before` of what was at `path`, `after` of what ends up at
/// `target` (or `path`). A folder's hash covers its names and contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub kind: ChangeKind,
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Bytes of the content the change leaves (or removes, for a delete).
    pub size: u64,
    /// Folders the change creates to hold its new entry, outermost first;
    /// undo removes them again when they are empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_folders: Vec<PathBuf>,
}

impl FileChange {
    /// Where the entry lives once the change is made.
    pub fn result_path(&self) -> &PathBuf {
        self.target.as_ref().unwrap_or(&self.path)
    }
}

/// A changeset's state in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangesetStatus {
    /// Intents recorded, changes under way (or interrupted: rolled back on the next open).
    Applying,
    Applied,
    /// Interrupted or failed half way, and put back as it was.
    RolledBack,
    /// Being undone (an interrupted undo is finished on the next open).
    Undoing,
    Undone,
}

impl ChangesetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangesetStatus::Applying => "applying",
            ChangesetStatus::Applied => "applied",
            ChangesetStatus::RolledBack => "rolled_back",
            ChangesetStatus::Undoing => "undoing",
            ChangesetStatus::Undone => "undone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ChangesetStatus::Applying,
            ChangesetStatus::Applied,
            ChangesetStatus::RolledBack,
            ChangesetStatus::Undoing,
            ChangesetStatus::Undone,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}
