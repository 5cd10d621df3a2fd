//! The one toolbox every run and preview of this server shares: one wasmtime
//! engine and epoch ticker, each bundled tool loaded once and its
//! `InstancePre` reused for every later call.
//!
//! The skills' own components live in the toolbox too, so it is rebuilt when
//! they change (a skill added, removed or its component file rewritten);
//! runs already going keep the toolbox they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use deskhand_runtime::launch;
use deskhand_runtime::skills::{self, Entry};
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::wasm::WasmHost;

/// A skill's component as it was when loaded: name, file, size, modified.
type ComponentKey = (String, PathBuf, u64, Option<SystemTime>);

pub(crate) struct SharedToolbox {
    cache_dir: Option<PathBuf>,
    current: Mutex<Option<(Vec<ComponentKey>, Arc<Toolbox>)>>,
}

impl SharedToolbox {
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        SharedToolbox {
            cache_dir,
            current: Mutex::new(None),
        }
    }

    /// A toolbox for the bundled tools alone (previews): the current one if
    /// any, without looking at the skills again (every toolbox holds them).
    pub fn bundled(&self, root: &Path, config_dir: Option<&Path>) -> Result<Arc<Toolbox>, String> {
        if let Some((_, tb)) = self.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(tb.clone());
        }
        self.get(root, config_dir)
    }

    /// The toolbox, built on first use and again only when the skills'
    /// components (of `root`'s skills and `config_dir`'s) changed.
    pub fn get(&self, root: &Path, config_dir: Option<&Path>) -> Result<Arc<Toolbox>, String> {
        let discovery = skills::discover(root, config_dir);
        let key: Vec<ComponentKey> = discovery
            .skills
            .iter()
            .filter_map(|s| match &s.entry {
                Entry::Component { path, .. } => {
                    let meta = std::fs::metadata(path).ok();
                    Some((
                        s.name.clone(),
                        path.clone(),
                        meta.as_ref().map_or(0, |m| m.len()),
                        meta.and_then(|m| m.modified().ok()),
                    ))
                }
                _ => None,
            })
            .collect();
        // Held while building, so requests that arrive meanwhile wait for this one.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((loaded, tb)) = current.as_ref()
            && *loaded == key
        {
            return Ok(tb.clone());
        }
        let host = WasmHost::new(self.cache_dir.clone()).map_err(|e| e.to_string())?;
        let office = deskhand_runtime::office::LibreOffice::find_for_cache(self.cache_dir.as_deref());
        let mut tb = Toolbox::new(host).with_office(office);
        launch::add_components(&mut tb, &discovery.skills, &|w| eprintln!("warning: {w}"));
        let tb = Arc::new(tb);
        *current = Some((key, tb.clone()));
        Ok(tb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_component_skill(skills: &Path, component: &[u8]) {
        let dir = skills.join("my-tool");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("SKILL.md"),
            "---\nname: my-tool\ndescription: d\nmetadata:\n  deskhand-entry: component:tool.wasm#run\n---\nbody\n",
        )
        .unwrap();
        std::fs::write(dir.join("tool.wasm"), component).unwrap();
    }

    #[test]
    fn runs_and_previews_share_one_toolbox_until_a_component_changes() {
        let root = tempfile::tempdir().unwrap();
        let config_dir = tempfile::tempdir().unwrap();
        let config = Some(config_dir.path());
        let shared = SharedToolbox::new(None);
        let first = shared.get(root.path(), config).unwrap();
        let again = shared.get(root.path(), config).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a second use must reuse the toolbox");

        // A component the workspace brought is not loaded until trusted.
        write_component_skill(&root.path().join(".agents/skills"), b"not wasm");
        assert!(Arc::ptr_eq(&first, &shared.get(root.path(), config).unwrap()));

        // Not a valid component: loading it only warns, but the toolbox is
        // rebuilt for it, and then reused again.
        let user = skills::user_skills_dir(config_dir.path());
        std::fs::remove_dir_all(root.path().join(".agents")).unwrap();
        write_component_skill(&user, b"not wasm");
        let with_skill = shared.get(root.path(), config).unwrap();
        assert!(!Arc::ptr_eq(&first, &with_skill), "a new component needs a new toolbox");
        assert!(Arc::ptr_eq(&with_skill, &shared.get(root.path(), config).unwrap()));
        // Previews take whichever toolbox is current, without rediscovering skills.
        assert!(Arc::ptr_eq(&with_skill, &shared.bundled(root.path(), config).unwrap()));

        write_component_skill(&user, b"not wasm, longer");
        assert!(!Arc::ptr_eq(&with_skill, &shared.get(root.path(), config).unwrap()));
    }
}
