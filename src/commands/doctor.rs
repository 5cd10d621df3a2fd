//! `deskhand doctor`: checks that this machine can run deskhand (the wasm
//! sandbox, the shell sandbox, the workspace's journal, changesets and
//! trash, the model, optional engines), one line per check.

use std::path::{Path, PathBuf};

use deskhand_runtime::changeset;
use deskhand_runtime::workspace::Workspace;

use crate::failure::Failure;
use crate::setup::{load_config, toolbox};
use crate::terminal::out;

/// One line per check: what, and either "ok" with a detail or the problem and its fix.
pub fn doctor(workspace: &Path, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let mut failed = 0;
    let mut report = |what: &str, result: Result<String, String>, required: bool| match result {
        Ok(detail) => out(&format!("ok    {what}: {detail}")),
        Err(problem) => {
            if required {
                failed += 1;
                out(&format!("FAIL  {what}: {problem}"));
            } else {
                out(&format!("note  {what}: {problem}"));
            }
        }
    };

    // The wasm sandbox: one engine, the bundled tools compiled (or loaded from the cache).
    let started = std::time::Instant::now();
    let sandbox = toolbox(cache_dir)
        .map_err(|f| f.message)
        .and_then(|tb| tb.descriptions().map(|d| d.len()).map_err(|e| e.to_string()));
    report(
        "WebAssembly sandbox",
        sandbox.map(|n| format!("{n} bundled tools ready in {} ms", started.elapsed().as_millis())),
        true,
    );

    // The native shell sandbox.
    #[cfg(target_os = "linux")]
    let shell = {
        use deskhand_host_vm::ShellBackend;
        let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
        backend
            .check()
            .map(|()| "bubblewrap works here".to_owned())
            .map_err(|p| p.to_string())
    };
    #[cfg(not(target_os = "linux"))]
    let shell: Result<String, String> = Err(deskhand_host_vm::BackendProblem::UnsupportedPlatform.to_string());
    report("shell sandbox (deskhand shell)", shell, false);

    // The workspace, when there is one here.
    match Workspace::open(workspace) {
        Ok(ws) => {
            let journal = ws.journal();
            report(
                "journal",
                journal
                    .integrity()
                    .map_err(|e| e.to_string())
                    .and_then(|r| {
                        r.map_err(|e| format!("SQLite reports damage: {e}; copy .deskhand/ aside before anything else"))
                    })
                    .map(|()| format!("{} runs, intact", journal.tasks().map(|t| t.len()).unwrap_or(0))),
                true,
            );
            report(
                "changesets",
                match journal.unfinished_changesets() {
                    Ok(0) => Ok("none left unfinished".into()),
                    Ok(n) => Err(format!(
                        "{n} were interrupted; the next `deskhand run`, `resume`, `undo` or `shell` puts them back"
                    )),
                    Err(e) => Err(e.to_string()),
                },
                true,
            );
            match changeset::trash_list(&ws) {
                Ok(items) => report(
                    "trash",
                    Ok(format!(
                        "{} item(s), {} bytes (`deskhand trash list`)",
                        items.len(),
                        items.iter().map(|t| t.size).sum::<u64>()
                    )),
                    false,
                ),
                Err(e) => report("trash", Err(e.to_string()), true),
            }
            let model = load_config(&ws, None).map(|c| match c.provider {
                deskhand_runtime::model::config::ProviderKind::Offline => {
                    "none configured: the offline planner runs the installed skills".to_owned()
                }
                _ => format!(
                    "{:?} {}",
                    c.provider,
                    c.model.unwrap_or_else(|| "(no model name; pass --model)".into())
                ),
            });
            report("model", model.map_err(|f| f.message), true);
        }
        // A workspace whose journal cannot be read is still a workspace, and broken.
        Err(e @ deskhand_runtime::Error::Journal { .. }) => report("journal", Err(e.to_string()), true),
        Err(e) => report("workspace", Err(e.to_string()), false),
    }

    // OpenTelemetry export, and the spans it could not deliver.
    let config_file = crate::setup::config_dir().map(|d| d.join("config.toml"));
    let env = |name: &str| std::env::var(name).ok();
    let dropped = crate::telemetry_drop_file()
        .map(|f| deskhand_runtime::telemetry::DropCount::read(&f))
        .unwrap_or_default();
    let telemetry = match deskhand_runtime::telemetry::TelemetryConfig::load(config_file.as_deref(), &env) {
        Ok(None) => Ok("off (set OTEL_EXPORTER_OTLP_ENDPOINT, or endpoint in config.toml's [telemetry])".to_owned()),
        Ok(Some(c)) if dropped.dropped == 0 => Ok(format!(
            "exporting spans to {} as {}; none dropped",
            c.endpoint_shown(),
            c.service_name
        )),
        Ok(Some(c)) => Err(format!(
            "exporting spans to {} as {}; {} span(s) could not be delivered so far (the last at {}): \
             check that the receiver is up and answers within the timeout",
            c.endpoint_shown(),
            c.service_name,
            dropped.dropped,
            dropped.last
        )),
        Err(e) => Err(e.to_string()),
    };
    report("telemetry (OpenTelemetry)", telemetry, false);

    // Optional engines that check deliverables.
    let soffice = ["soffice", "libreoffice"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    report(
        "LibreOffice (recalculates spreadsheets)",
        soffice
            .map(|p| format!("{p} found"))
            .ok_or_else(|| "not installed; `sudo apt-get install libreoffice-calc` (or run scripts/setup)".to_owned()),
        false,
    );
    if failed > 0 {
        return Err(Failure {
            message: format!("{failed} check(s) failed; see the lines marked FAIL"),
            code: 1,
        });
    }
    Ok(())
}
