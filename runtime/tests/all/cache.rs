//! Compiled components are cached on disk; a bad cache entry is rebuilt.

use deskhand_runtime::wasm::{CacheStatus, WasmHost};

use crate::common::HOSTILE;

fn cache_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[test]
fn a_corrupted_or_truncated_cache_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let host = WasmHost::new(Some(dir.path().into())).unwrap();
    let bytes = std::fs::read(HOSTILE).unwrap();

    assert_eq!(
        host.load("hostile", &bytes).unwrap().cache_status(),
        CacheStatus::Compiled
    );
    assert_eq!(host.load("hostile", &bytes).unwrap().cache_status(), CacheStatus::Hit);
    let files = cache_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let good = std::fs::read(file).unwrap();

    // Flip a byte in the middle of the code.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(file, &bad).unwrap();
    let tool = host.load("hostile", &bytes).unwrap();
    assert_eq!(tool.cache_status(), CacheStatus::Rebuilt);
    assert!(tool.call(&Default::default(), "env", "{}", None).result.is_ok());
    assert_eq!(
        std::fs::read(file).unwrap(),
        good,
        "the rebuilt entry replaced the bad one"
    );

    // Truncated, empty, and garbage files are rebuilt too.
    for broken in [&good[..good.len() / 3], &[][..], &b"not a cache file at all"[..]] {
        std::fs::write(file, broken).unwrap();
        assert_eq!(
            host.load("hostile", &bytes).unwrap().cache_status(),
            CacheStatus::Rebuilt
        );
        assert_eq!(host.load("hostile", &bytes).unwrap().cache_status(), CacheStatus::Hit);
    }
}

#[test]
fn an_unwritable_cache_dir_is_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where the cache dir should be").unwrap();
    let host = WasmHost::new(Some(blocker.join("wasm"))).unwrap();
    let tool = host.load("hostile", &std::fs::read(HOSTILE).unwrap()).unwrap();
    assert_eq!(tool.cache_status(), CacheStatus::Compiled);
}

#[test]
fn something_that_is_not_a_component_is_refused_clearly() {
    let host = WasmHost::new(None).unwrap();
    let err = host.load("junk", b"\0asm\x01\0\0\0").unwrap_err();
    assert!(
        err.to_string().contains("junk: not a valid deskhand tool component"),
        "{err}"
    );
}

#[test]
fn storing_a_new_entry_removes_the_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let host = WasmHost::new(Some(dir.path().into())).unwrap();
    let name = |p: &std::path::PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    host.load("hostile", &std::fs::read(HOSTILE).unwrap()).unwrap();
    let first = cache_files(dir.path());
    assert_eq!(first.len(), 1);
    assert!(name(&first[0]).starts_with("hostile@"), "{first:?}");
    // Entries another tool owns stay; an older wasmtime's and the old naming go.
    for planted in [
        "inventory@0123-wasmtime48.0.8-00000000000000aa.cwasm",
        "fs@0123-wasmtime47.0.1-00000000000000aa.cwasm",
        "0123-wasmtime47.0.1-00000000000000aa.cwasm",
    ] {
        std::fs::write(dir.path().join(planted), b"old").unwrap();
    }
    // The same tool rebuilt (other bytes under the same name): its old entry
    // stays while it may still be in use (another build, another workspace)...
    let rebuilt = std::fs::read(env!("DESKHAND_GUEST_INVENTORY")).unwrap();
    let tool = host.load("hostile", &rebuilt).unwrap();
    assert_eq!(tool.cache_status(), CacheStatus::Compiled);
    let other_tool = "inventory@0123-wasmtime48.0.8-00000000000000aa.cwasm".to_owned();
    let left: Vec<String> = cache_files(dir.path()).iter().map(name).collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.contains(&name(&first[0])) && left.contains(&other_tool),
        "{left:?}"
    );
    // ...and goes once unused for two weeks, when the tool next stores an entry.
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 24 * 3600);
    let old = std::fs::OpenOptions::new().append(true).open(&first[0]).unwrap();
    old.set_modified(month_ago).unwrap();
    drop(old);
    let newest = left
        .iter()
        .find(|n| n.starts_with("hostile@") && **n != name(&first[0]))
        .unwrap()
        .clone();
    std::fs::remove_file(dir.path().join(&newest)).unwrap();
    assert_eq!(
        host.load("hostile", &rebuilt).unwrap().cache_status(),
        CacheStatus::Compiled
    );
    let mut left: Vec<String> = cache_files(dir.path()).iter().map(name).collect();
    left.sort();
    assert_eq!(
        left,
        [newest, other_tool],
        "the unused entry went, the other tool's stayed"
    );
}
