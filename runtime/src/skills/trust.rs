//! Which workspace skills the person trusts.
//!
//! A workspace's `.agents/skills/` comes with the folder: a repository the
//! person cloned, a shared drive, a prompt-injected download. Its skills are
//! found and shown, but neither offered to a model nor run, until the person
//! trusts them, and again after any change to what a skill declares it runs
//! (its entry, parameters, allowed tools) or to its component's code. The
//! record lives in the user's config folder, never in the workspace (a
//! workspace could otherwise bring its own).
//!
//! A trusted skill is remembered by its [`fingerprint`], per workspace
//! (by canonical path) and skill name, in `<config_dir>/trusted-skills.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Entry, Skill};

/// The file in the user's config folder.
pub const TRUST_FILE: &str = "trusted-skills.json";

/// Why a workspace skill is not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distrust {
    /// The person has not trusted it in this workspace.
    New,
    /// It changed since the person trusted it: its entry, parameters,
    /// allowed tools or component.
    Changed,
    /// There is no config folder to remember trust in.
    NoRecord,
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distrust::New => "it came with the workspace and you have not trusted it yet",
            Distrust::Changed => "it changed since you trusted it (what it runs, its parameters or its code)",
            Distrust::NoRecord => "there is no config folder to remember trusted skills in",
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// Canonical workspace path -> skill name -> fingerprint.
    workspaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// The person's trusted workspace skills, read from `<config_dir>/trusted-skills.json`.
#[derive(Debug)]
pub struct TrustStore {
    file: Option<PathBuf>,
    record: Record,
}

impl TrustStore {
    /// Reads the record; a missing file trusts nothing. A file that cannot
    /// be read or parsed is an error naming it (trust is never guessed).
    pub fn load(config_dir: Option<&Path>) -> Result<Self, String> {
        let Some(dir) = config_dir else {
            return Ok(Self::none());
        };
        let file = dir.join(TRUST_FILE);
        let record = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is not a trusted-skills record ({e}); move it away and trust the workspace's skills again",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
            Err(e) => return Err(format!("{} could not be read: {e}", file.display())),
        };
        Ok(TrustStore {
            file: Some(file),
            record,
        })
    }

    /// No record: no workspace skill is trusted.
    pub fn none() -> Self {
        TrustStore {
            file: None,
            record: Record::default(),
        }
    }

    /// Whether `skill`, found in `workspace_root`, may run; why not if not.
    pub fn check(&self, workspace_root: &Path, skill: &Skill) -> Result<(), Distrust> {
        if self.file.is_none() {
            return Err(Distrust::NoRecord);
        }
        match self
            .record
            .workspaces
            .get(&key(workspace_root))
            .and_then(|skills| skills.get(&skill.name))
        {
            None => Err(Distrust::New),
            Some(print) if *print == fingerprint(skill) => Ok(()),
            Some(_) => Err(Distrust::Changed),
        }
    }

    /// Trusts `skills` of `workspace_root` as they are now, and saves the
    /// record (a whole new file moved into place).
    pub fn trust(&mut self, workspace_root: &Path, skills: &[&Skill]) -> Result<(), String> {
        let entry = self.record.workspaces.entry(key(workspace_root)).or_default();
        for skill in skills {
            entry.insert(skill.name.clone(), fingerprint(skill));
        }
        self.save()
    }

    /// Forgets `names` (all of the workspace's when empty); returns how many were trusted.
    pub fn untrust(&mut self, workspace_root: &Path, names: &[String]) -> Result<usize, String> {
        let k = key(workspace_root);
        let removed = match self.record.workspaces.get_mut(&k) {
            None => 0,
            Some(skills) if names.is_empty() => {
                let n = skills.len();
                skills.clear();
                n
            }
            Some(skills) => names.iter().filter(|n| skills.remove(*n).is_some()).count(),
        };
        if self.record.workspaces.get(&k).is_some_and(BTreeMap::is_empty) {
            self.record.workspaces.remove(&k);
        }
        self.save()?;
        Ok(removed)
    }

    fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Err(format!("{}; set XDG_CONFIG_HOME or HOME", Distrust::NoRecord));
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{} could not be made: {e}", dir.display()))?;
        let text = serde_json::to_vec_pretty(&self.record).map_err(|e| e.to_string())?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::io::Write::write_all(&mut tmp, &text).map_err(|e| format!("{}: {e}", file.display()))?;
        tmp.persist(file).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(())
    }
}

/// The workspace as the record names it: its canonical path where it has one.
fn key(workspace_root: &Path) -> String {
    std::fs::canonicalize(workspace_root)
        .unwrap_or_else(|_| workspace_root.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// A component's size and SHA-256 (hex), as shown and trusted.
pub fn code_digest(path: &Path) -> std::io::Result<(usize, String)> {
    let bytes = std::fs::read(path)?;
    Ok((bytes.len(), hex::encode(Sha256::digest(&bytes))))
}

/// What trust is given to: the skill's name, what it runs, its parameters,
/// its allowed tools, and its component's bytes (a component that cannot be
/// read is fingerprinted as such, so it changes when it appears). The
/// description and body are words, shown to the person with the skill.
pub fn fingerprint(skill: &Skill) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "name {}", skill.name);
    match &skill.entry {
        Entry::Bundled { tool, operation } => {
            let _ = writeln!(text, "entry bundled {tool}.{operation}");
        }
        Entry::Component { path, operation } => {
            let code = code_digest(path).map_or_else(|e| format!("unreadable ({})", e.kind()), |(_, digest)| digest);
            let _ = writeln!(text, "entry component {operation} {code}");
        }
        Entry::Plan(steps) => {
            let _ = writeln!(text, "entry plan {}", serde_json::to_string(steps).unwrap_or_default());
        }
        Entry::None => {
            let _ = writeln!(text, "entry none");
        }
    }
    for p in &skill.params {
        let _ = writeln!(
            text,
            "param {} {:?} {} {:?} {:?}",
            p.name, p.kind, p.required, p.default, p.extensions
        );
    }
    let _ = writeln!(text, "allowed-tools {:?}", skill.allowed_tools);
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skills::{SkillSource, parse_skill};

    fn skill(dir: &Path, metadata: &str) -> Skill {
        let text = format!("---\nname: widgets\ndescription: d\nmetadata:\n{metadata}---\nbody\n");
        parse_skill(&text, SkillSource::Workspace, Some(&dir.join("widgets"))).unwrap()
    }

    #[test]
    fn trust_is_per_workspace_and_lost_when_what_runs_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, other, config) = (tmp.path().join("ws"), tmp.path().join("other"), tmp.path().join("cfg"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let s = skill(&ws, "  deskhand-entry: inventory.run\n");
        let mut store = TrustStore::load(Some(&config)).unwrap();
        assert_eq!(store.check(&ws, &s), Err(Distrust::New));
        store.trust(&ws, &[&s]).unwrap();

        let store = TrustStore::load(Some(&config)).unwrap();
        assert_eq!(store.check(&ws, &s), Ok(()));
        assert_eq!(store.check(&other, &s), Err(Distrust::New), "trust is per workspace");
        // Words may change; what runs may not.
        let reworded = Skill {
            description: "another description".into(),
            body: "other words".into(),
            ..s.clone()
        };
        assert_eq!(store.check(&ws, &reworded), Ok(()));
        let wider = skill(
            &ws,
            "  deskhand-entry: inventory.run\n  deskhand-params: folder\n  deskhand-param-folder: path, required, f\n",
        );
        assert_eq!(store.check(&ws, &wider), Err(Distrust::Changed));
        let other_entry = skill(&ws, "  deskhand-entry: fs.list\n");
        assert_eq!(store.check(&ws, &other_entry), Err(Distrust::Changed));
    }

    #[test]
    fn a_component_is_trusted_by_its_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("widgets");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tool.wasm"), b"one").unwrap();
        let s = skill(tmp.path(), "  deskhand-entry: component:tool.wasm#run\n");
        let mut store = TrustStore::load(Some(&tmp.path().join("cfg"))).unwrap();
        store.trust(tmp.path(), &[&s]).unwrap();
        assert_eq!(store.check(tmp.path(), &s), Ok(()));
        std::fs::write(dir.join("tool.wasm"), b"two").unwrap();
        assert_eq!(store.check(tmp.path(), &s), Err(Distrust::Changed));
    }

    #[test]
    fn untrust_and_a_broken_record() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("cfg");
        let s = skill(tmp.path(), "  deskhand-entry: inventory.run\n");
        let mut store = TrustStore::load(Some(&config)).unwrap();
        store.trust(tmp.path(), &[&s]).unwrap();
        assert_eq!(store.untrust(tmp.path(), &[]).unwrap(), 1);
        assert_eq!(store.check(tmp.path(), &s), Err(Distrust::New));
        assert_eq!(
            TrustStore::load(None).unwrap().check(tmp.path(), &s),
            Err(Distrust::NoRecord)
        );
        std::fs::write(config.join(TRUST_FILE), "{not json").unwrap();
        let e = TrustStore::load(Some(&config)).unwrap_err();
        assert!(e.contains("trusted-skills.json is not a trusted-skills record"), "{e}");
    }
}
