//! `deskhand serve` and `deskhand open` (and a bare `deskhand` in a
//! workspace): serve the plan UI at 127.0.0.1, and open it in the browser.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::failure::Failure;
use crate::setup::{config_dir, default_cache_dir, open_workspace};
use crate::terminal::out;

/// Serves the plan UI. `open`: Some(open the browser?) reuses a server
/// already running for the workspace; None (`serve`) always starts one.
pub fn serve(workspace: &Path, port: u16, cache_dir: Option<PathBuf>, open: Option<bool>) -> Result<(), Failure> {
    let ws = open_workspace(workspace)?;
    let root = ws.root().to_path_buf();
    drop(ws);
    if let Some(browser) = open
        && let Some(url) = deskhand_web_ui::running_url(&root)
    {
        out(&format!("deskhand is already serving {}: {url}", root.display()));
        if browser {
            open_browser(&url);
        }
        return Ok(());
    }
    let cache_dir = cache_dir.or_else(default_cache_dir);
    let server = deskhand_web_ui::start(deskhand_web_ui::Options {
        workspace: root.clone(),
        port,
        cache_dir: cache_dir.clone(),
        config_dir: config_dir(),
        lifetimes: deskhand_web_ui::Lifetimes::default(),
    })
    .map_err(|e| Failure {
        code: if matches!(e, deskhand_web_ui::Error::Bind { .. }) {
            2
        } else {
            1
        },
        message: e.to_string(),
    })?;
    out(&format!("deskhand serves {} at {}", root.display(), server.url));
    // While it is up, it also runs every workspace's due schedules.
    crate::commands::schedule::run_due_every_minute(cache_dir);
    out(
        "The link works once, for 10 minutes; `deskhand open` in the workspace gives a new one. Keep this running; press Ctrl-C to stop.",
    );
    let _ = std::io::stdout().flush();
    if open == Some(true) {
        open_browser(&server.url);
    }
    server.wait().map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })
}

/// Opens `url` in the person's browser ($BROWSER, else the system's opener).
fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open".into()
            } else if cfg!(windows) {
                "explorer".into()
            } else {
                "xdg-open".into()
            }
        });
    let spawned = std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("Could not start a browser ({opener}); open this URL yourself: {url}");
    }
}
