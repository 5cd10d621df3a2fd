//! Compiled components on disk, keyed by the component's content hash, the
//! wasmtime version and the engine's compatibility hash. Each file carries a
//! SHA-256 of its body; a file that is truncated, corrupted or stale is
//! compiled again and replaced, never trusted and never fatal. A lock file
//! beside each entry makes processes (and threads) that need the same
//! component at once compile it once: the rest wait, then load the entry.
//! Entries are named `<tool>@<key>.cwasm`; storing a tool's new entry removes
//! entries left by another wasmtime version, and the same tool's other
//! entries once unused for [`STALE_AFTER`] (another build or workspace may
//! still load them), so the folder does not grow with every upgrade.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime this host is pinned to (`=48.0.8` in Cargo.toml).
const WASMTIME_VERSION: &str = "48.0.8";
const MAGIC: &[u8; 8] = b"DHCWASM1";
/// A tool's other entries unused this long are removed when it stores a new one.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from a valid cache file.
    Hit,
    /// No cache file yet: compiled and stored.
    Compiled,
    /// A cache file existed but was unusable: compiled again and replaced.
    Rebuilt,
    /// No cache directory configured: compiled in memory only.
    Uncached,
}

#[derive(Debug)]
pub(super) struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    pub(super) fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir }
    }

    pub(super) fn load_or_compile(
        &self,
        engine: &Engine,
        name: &str,
        wasm: &[u8],
        compiling: &dyn Fn(),
    ) -> Result<(Component, CacheStatus), String> {
        let Some(dir) = &self.dir else {
            compiling();
            return compile(engine, wasm).map(|c| (c, CacheStatus::Uncached));
        };
        let key = format!("{}@{}", file_safe(name), key(engine, wasm));
        let path = dir.join(format!("{key}.cwasm"));
        let _compiling = lock(dir, &key);
        let status = match std::fs::read(&path) {
            Ok(bytes) => match deserialize_verified(engine, &bytes) {
                Some(component) => {
                    mark_used(&path);
                    return Ok((component, CacheStatus::Hit));
                }
                None => CacheStatus::Rebuilt,
            },
            Err(_) => CacheStatus::Compiled,
        };
        compiling();
        let component = compile(engine, wasm)?;
        // A cache that cannot be written only costs the next process a compile.
        if let Ok(code) = component.serialize()
            && store_atomically(dir, &path, &code).is_ok()
        {
            prune(dir, &key);
        }
        Ok((component, status))
    }
}

/// A tool name as a file name: letters, digits, `-` and `_` kept, the rest `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An entry's modification time is when it was last loaded: a day's
/// precision is enough to tell what is still in use.
fn mark_used(path: &std::path::Path) {
    let now = std::time::SystemTime::now();
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > std::time::Duration::from_secs(24 * 3600));
    if old && let Ok(file) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = file.set_modified(now);
    }
}

/// Removes what `current` (a `<tool>@<key>` just stored) makes stale:
/// entries of another wasmtime version, entries named before tools were in
/// the name, and the same tool's other entries unused for [`STALE_AFTER`];
/// each with its lock file (no live process holds the lock of an entry this
/// old or this foreign). Best effort: a file that cannot be removed stays.
fn prune(dir: &std::path::Path, current: &str) {
    let Some((tool, _)) = current.split_once('@') else {
        return;
    };
    let this_version = format!("-wasmtime{WASMTIME_VERSION}-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(stem) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(".cwasm").or_else(|| n.strip_suffix(".lock")))
        else {
            continue;
        };
        let unused = || {
            std::fs::metadata(dir.join(format!("{stem}.cwasm")))
                .and_then(|m| m.modified())
                .map_or(true, |t| now.duration_since(t).unwrap_or_default() > STALE_AFTER)
        };
        let stale = match stem.split_once('@') {
            Some(_) if stem == current => false,
            Some(_) if !stem.contains(&this_version) => true,
            Some((other, _)) => other == tool && unused(),
            None => stem.contains("-wasmtime"),
        };
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// An exclusive lock on `<key>.lock`, released when dropped; `None` (no
/// waiting, each compiles) if the cache folder cannot hold one.
fn lock(dir: &std::path::Path, key: &str) -> Option<std::fs::File> {
    std::fs::create_dir_all(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{key}.lock")))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, String> {
    Component::new(engine, wasm).map_err(|e| format!("{e:#}"))
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let content = hex::encode(Sha256::digest(wasm));
    format!("{content}-wasmtime{WASMTIME_VERSION}-{:016x}", engine_hash.finish())
}

/// File layout: MAGIC, SHA-256 of the body, body (wasmtime's serialized code).
fn deserialize_verified(engine: &Engine, bytes: &[u8]) -> Option<Component> {
    let rest = bytes.strip_prefix(MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, body) = rest.split_at(32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    #[expect(unsafe_code, reason = "wasmtime requires it to load precompiled code")]
    // SAFETY: the body was produced by `Component::serialize` of this same
    // wasmtime version and engine configuration (both are in the file name)
    // and its checksum matches, so it is the exact code this host wrote.
    let component = unsafe { Component::deserialize(engine, body) };
    component.ok()
}

fn store_atomically(dir: &std::path::Path, path: &std::path::Path, code: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(MAGIC)?;
    tmp.write_all(&Sha256::digest(code))?;
    tmp.write_all(code)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The version in cache keys is the one Cargo.lock pins.
    #[test]
    fn the_version_in_cache_keys_is_the_locked_wasmtime() {
        let lock = include_str!("../../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"'));
        assert_eq!(locked, Some(super::WASMTIME_VERSION));
    }
}
