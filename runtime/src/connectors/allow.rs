//! "Always allow this tool": the person's standing answer for one connector
//! tool, so ask mode stops asking for each of its calls. Kept in the person's
//! config folder (`connector-allow.json`, never in a workspace), revocable
//! (`deskhand connectors disallow`). It never covers a tool annotated
//! destructive (each call asks, like a deletion), a quarantined one, or an
//! action the step did not declare.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The file, in the person's config folder.
pub const FILE: &str = "connector-allow.json";

/// The allowed tools by connector key ([`super::Connector::key`]).
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    file: Option<PathBuf>,
    by_connector: BTreeMap<String, BTreeSet<String>>,
}

impl Allowed {
    pub fn load(config_dir: Option<&Path>) -> Result<Allowed, String> {
        let Some(dir) = config_dir else {
            return Ok(Allowed::default());
        };
        let file = dir.join(FILE);
        let by_connector = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is damaged ({e}); remove it (the tools you always allowed will ask again)",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(Allowed {
            file: Some(file),
            by_connector,
        })
    }

    pub fn is_allowed(&self, key: &str, tool: &str) -> bool {
        self.by_connector.get(key).is_some_and(|s| s.contains(tool))
    }

    /// Remembers (`allow`) or revokes the answer; true if it changed anything.
    pub fn set(&mut self, key: &str, tool: &str, allow: bool) -> bool {
        if allow {
            self.by_connector
                .entry(key.to_owned())
                .or_default()
                .insert(tool.to_owned())
        } else {
            let removed = self.by_connector.get_mut(key).is_some_and(|s| s.remove(tool));
            self.by_connector.retain(|_, s| !s.is_empty());
            removed
        }
    }

    pub fn tools(&self, key: &str) -> Vec<String> {
        self.by_connector
            .get(key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn forget(&mut self, key: &str) {
        self.by_connector.remove(key);
    }

    pub fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Err("there is no config folder to remember allowed tools in (set XDG_CONFIG_HOME)".into());
        };
        let text = serde_json::to_string_pretty(&self.by_connector).map_err(|e| e.to_string())?;
        super::config::write_atomic(file, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowed_tool_is_remembered_and_can_be_revoked() {
        let Ok(dir) = tempfile::tempdir() else { panic!() };
        let Ok(mut a) = Allowed::load(Some(dir.path())) else {
            panic!()
        };
        assert!(a.set("user/mail", "send", true));
        assert_eq!(a.save(), Ok(()));
        let Ok(mut b) = Allowed::load(Some(dir.path())) else {
            panic!()
        };
        assert!(b.is_allowed("user/mail", "send"));
        assert!(!b.is_allowed("user/chat", "send"));
        assert!(b.set("user/mail", "send", false));
        assert_eq!(b.save(), Ok(()));
        let Ok(c) = Allowed::load(Some(dir.path())) else {
            panic!()
        };
        assert!(!c.is_allowed("user/mail", "send"));
    }
}
