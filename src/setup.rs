//! What commands share before they start: the workspace (opened with
//! recovery), the toolbox, and the config and cache folders and model
//! settings read from the environment and handed to the runtime as values.

use std::path::{Path, PathBuf};

use deskhand_runtime::changeset;
use deskhand_runtime::launch;
use deskhand_runtime::model::ModelConfig;
use deskhand_runtime::tools::Toolbox;
use deskhand_runtime::wasm::WasmHost;
use deskhand_runtime::workspace::Workspace;

use crate::failure::Failure;

/// What to do when the folder given to `init` or `demo` cannot be used.
pub const WORKSPACE_FOLDER: &str = "Choose a folder that does not exist yet (deskhand creates it) or an existing folder \
     (deskhand adds its layout there and overwrites nothing)";

/// `deskhand` in `$XDG_CONFIG_HOME` if set, else in the system's config folder
/// (`~/.config` on Linux, `~/Library/Application Support` on macOS, the
/// roaming AppData folder on Windows).
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(dirs::config_dir)
        .map(|d| d.join("deskhand"))
}

/// `deskhand/wasm` in `$XDG_CACHE_HOME` if set, else in the system's cache
/// folder (`~/.cache`, `~/Library/Caches`, the local AppData folder).
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(dirs::cache_dir)?;
    Some(base.join("deskhand").join("wasm"))
}

/// The model configuration: user file, workspace file, environment, then `--model`.
pub fn load_config(ws: &Workspace, model: Option<&str>) -> Result<ModelConfig, Failure> {
    let env = |k: &str| std::env::var(k).ok();
    Ok(launch::model_config(ws, config_dir().as_deref(), &env, model)?)
}

pub fn toolbox(cache_dir: Option<PathBuf>) -> Result<Toolbox, Failure> {
    let cache_dir = cache_dir.or_else(default_cache_dir);
    let office = deskhand_runtime::office::LibreOffice::find_for_cache(cache_dir.as_deref());
    let host = WasmHost::new(cache_dir)
        .map_err(deskhand_runtime::Error::from)?
        .on_compile(std::sync::Arc::new(tell_compiling));
    Ok(Toolbox::new(host).with_office(office))
}

/// The first use of a tool on this machine compiles it (seconds, up to a
/// minute for the python tool); the person sees why nothing else happens.
fn tell_compiling(news: deskhand_runtime::wasm::Compiling<'_>) {
    match news {
        deskhand_runtime::wasm::Compiling::Started { name } => {
            eprintln!("Preparing the {name} tool for this machine (only the first time; it is kept for next time)...");
        }
        deskhand_runtime::wasm::Compiling::Finished { name, elapsed } => {
            eprintln!("The {name} tool is ready ({:.1} s).", elapsed.as_secs_f64());
        }
    }
}

/// Opens a workspace and finishes anything a crash interrupted there: a
/// half-applied changeset is put back, a half-done undo completed.
pub fn open_workspace(dir: &Path) -> Result<Workspace, Failure> {
    let ws = Workspace::open(dir)?;
    let recovered = changeset::recover(&ws).map_err(deskhand_runtime::Error::from)?;
    for id in &recovered.rolled_back {
        eprintln!("deskhand stopped while applying changeset {id} earlier; it was put back as it was");
    }
    for id in &recovered.undone {
        eprintln!("deskhand stopped while undoing changeset {id} earlier; the undo was completed");
    }
    Ok(ws)
}
