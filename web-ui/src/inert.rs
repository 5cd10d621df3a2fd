//! What `/view/` gives the browser's PDF viewer instead of a PDF from
//! output/: an inert copy, since that viewer runs a PDF's own JavaScript and
//! actions (alerts, prompts, links that launch or submit). The sandboxed pdf
//! tool writes it (its host-only `sanitize` operation) in a folder of its
//! own that holds only a copy of the file, unjournaled like every preview.
//!
//! Copies are cached in `.deskhand/pdf-view/` under the SHA-256 of the
//! original's bytes (so reopening a file costs one read to hash it, not a
//! sandboxed call), as are the reasons a file cannot be made inert. Nothing
//! is ever written into output/. At most [`KEPT`] entries are kept.
//!
//! Every function here blocks: callers run them with `spawn_blocking`.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use deskhand_runtime::tools::BundledTool;
use deskhand_runtime::wasm::{CallError, Limits, SCRATCH_GUEST, Sandbox};
use deskhand_types::ToolError;
use sha2::{Digest, Sha256};

use crate::App;
use crate::files::Opened;

/// The largest PDF shown inline: the pdf tool reads files up to this size.
pub const MAX_VIEW_BYTES: u64 = 256 * 1024 * 1024;
/// Entries (copies and reasons) the cache keeps; the least recently used go first.
const KEPT: usize = 64;
const CHUNK: usize = 64 * 1024;

/// Why a PDF is not shown inline, in words for the page.
#[derive(Debug, thiserror::Error)]
pub enum NotShown {
    /// The file cannot be made inert (a password, damage, its size).
    #[error("{0}")]
    Refused(String),
    /// deskhand failed while making the copy.
    #[error("{0}")]
    Failed(String),
}

/// The cache folder, made private to the person on first use.
fn cache_dir(app: &App) -> Result<PathBuf, NotShown> {
    let dir = app.workspace.state_dir().join("pdf-view");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| NotShown::Failed(format!("cannot make {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The inert copy of the PDF `opened` (shown to the person as `shown`):
/// the cache folder and the copy's name in it.
pub fn inert_copy(app: &App, mut opened: Opened, shown: &str) -> Result<(PathBuf, PathBuf), NotShown> {
    let io = |e: std::io::Error| NotShown::Failed(format!("could not read {shown}: {e}"));
    if opened.size > MAX_VIEW_BYTES {
        return Err(NotShown::Refused(format!(
            "{shown} is {:.1} MiB; PDFs up to {} MiB are shown here, download it to open it",
            opened.size as f64 / 1_048_576.0,
            MAX_VIEW_BYTES / 1_048_576
        )));
    }
    let dir = cache_dir(app)?;
    let key = hash_of(&mut opened.file, opened.size, None).map_err(io)?;
    let copy = PathBuf::from(format!("{key}.pdf"));
    let reason = dir.join(format!("{key}.refused"));
    if is_file(&dir.join(&copy)) {
        touch(&dir.join(&copy));
        return Ok((dir, copy));
    }
    if let Ok(why) = std::fs::read_to_string(&reason) {
        touch(&reason);
        return Err(NotShown::Refused(format!("{shown} {why}")));
    }

    // The sandbox holds one folder: the call's own, with a copy of the file.
    let work = tempfile::Builder::new()
        .prefix("work-")
        .tempdir_in(&dir)
        .map_err(|e| NotShown::Failed(format!("cannot make a folder in {}: {e}", dir.display())))?;
    let input = work.path().join("in.pdf");
    opened.file.rewind().map_err(io)?;
    let mut file = std::fs::File::create(&input).map_err(io)?;
    // Named by what was copied: the original may change meanwhile.
    let key = hash_of(&mut opened.file, opened.size, Some(&mut file)).map_err(io)?;
    drop(file);
    let copy = PathBuf::from(format!("{key}.pdf"));
    let sandbox = Sandbox {
        mounts: Vec::new(),
        limits: Limits::default(),
        scratch: Some(work.path().to_path_buf()),
        network: None,
    };
    let args = serde_json::json!({
        "path": format!("{SCRATCH_GUEST}/in.pdf"),
        "out": format!("{SCRATCH_GUEST}/out.pdf"),
    });
    let tb = app.bundled_toolbox().map_err(NotShown::Failed)?;
    let pdf = tb.get(BundledTool::Pdf).map_err(|e| NotShown::Failed(e.to_string()))?;
    let why = match pdf.call(&sandbox, "sanitize", &args.to_string(), None).result {
        Ok(_) => {
            let out = work.path().join("out.pdf");
            // Only a regular file the tool wrote (not a link it planted) is kept.
            if !is_file(&out) {
                return Err(NotShown::Failed(format!("the pdf tool made no inert copy of {shown}")));
            }
            std::fs::rename(&out, dir.join(&copy))
                .map_err(|e| NotShown::Failed(format!("cannot keep the inert copy of {shown}: {e}")))?;
            evict(&dir);
            return Ok((dir, copy));
        }
        Err(CallError::Tool(ToolError::BadContent { message, .. } | ToolError::TooLarge { message, .. })) => message,
        // Not remembered: a busy machine may be why.
        Err(CallError::Deadline { .. } | CallError::MemoryCap { .. }) => {
            return Err(NotShown::Refused(format!(
                "{shown} makes the PDF reader work too long or use too much memory to be made safe to show here; \
                 download it to open it"
            )));
        }
        Err(e) => {
            return Err(NotShown::Failed(format!(
                "{shown} could not be made safe to show here ({e}); download it to open it"
            )));
        }
    };
    // The same bytes give the same answer: remembered, so a reopen is quick.
    let _ = std::fs::write(&reason, &why);
    evict(&dir);
    Err(NotShown::Refused(format!("{shown} {why}")))
}

/// SHA-256 of the first `size` bytes of `file`, read in chunks, also written to `copy`.
fn hash_of(file: &mut std::fs::File, size: u64, mut copy: Option<&mut std::fs::File>) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut limited = file.take(size);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = limited.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(c) = copy.as_deref_mut() {
            c.write_all(&buf[..n])?;
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A regular file, not a link.
fn is_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Marks a cache entry as used just now (eviction goes by modification time).
fn touch(path: &Path) {
    if let Ok(file) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Keeps the [`KEPT`] most recently used entries; leftover work folders of
/// calls that died go too.
fn evict(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut kept: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Ok(meta) = e.metadata() else { continue };
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        if meta.is_dir() {
            let stale = modified.elapsed().is_ok_and(|age| age.as_secs() > 3600);
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        } else {
            kept.push((modified, e.path()));
        }
    }
    kept.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in kept.into_iter().skip(KEPT) {
        let _ = std::fs::remove_file(path);
    }
}
