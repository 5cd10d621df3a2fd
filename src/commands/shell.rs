//! `deskhand shell -- COMMAND`: runs one native command in the shell
//! sandbox (bubblewrap or a QEMU microVM); its changes to granted folders
//! come back as a changeset for approval.

use std::io::Write;
use std::time::Duration;

use deskhand_runtime::shell::{ShellChanges, ShellRequest, run_shell};

use crate::cli::{BackendArg, MAX_TIMEOUT_SECS, ShellArgs};
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::open_workspace;
use crate::terminal::TerminalGate;

/// The shell backend the person chose: bubblewrap (default) or the QEMU microVM.
fn shell_backend(choice: BackendArg) -> Result<Box<dyn deskhand_host_vm::ShellBackend>, Failure> {
    #[cfg(target_os = "linux")]
    {
        Ok(match choice {
            BackendArg::Bwrap => Box::new(deskhand_host_vm::bwrap::BwrapBackend::new()),
            BackendArg::Vm => {
                let home = std::env::var_os("HOME")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_default();
                let xdg = std::env::var_os("XDG_CACHE_HOME").map(std::path::PathBuf::from);
                let dir = deskhand_host_vm::qemu::default_assets_dir(&home, xdg.as_deref());
                Box::new(deskhand_host_vm::qemu::QemuBackend::new(
                    deskhand_host_vm::qemu::VmConfig::in_dir(dir),
                ))
            }
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = choice;
        Err(user_error(
            deskhand_host_vm::BackendProblem::UnsupportedPlatform.to_string(),
        ))
    }
}

pub fn shell(args: ShellArgs) -> Result<(), Failure> {
    let ShellArgs {
        workspace,
        grants,
        mode,
        timeout,
        workdir,
        backend,
        command,
    } = args;
    let ws = open_workspace(&workspace)?;
    let backend = shell_backend(backend)?;
    let workdir = workdir.map(|w| ws.resolve_path(&w.to_string_lossy())).transpose()?;
    let req = ShellRequest {
        command,
        grants: &grants,
        mode: mode.into(),
        limits: deskhand_host_vm::Limits {
            wall_clock: Duration::from_secs(timeout),
            ..deskhand_host_vm::Limits::default()
        },
        workdir,
    };
    let mut show = |chunk: deskhand_host_vm::OutputChunk| {
        let _ = match chunk.stream {
            deskhand_host_vm::Stream::Stdout => std::io::stdout().write_all(&chunk.bytes),
            deskhand_host_vm::Stream::Stderr => std::io::stderr().write_all(&chunk.bytes),
        };
    };
    let report = run_shell(&ws, backend.as_ref(), &req, &TerminalGate, &mut show)?;
    let _ = std::io::stdout().flush();
    if let Some(outcome) = &report.outcome
        && !outcome.limits_hit.is_empty()
    {
        eprintln!("deskhand: limits hit: {:?}", outcome.limits_hit);
        if outcome.limits_hit.contains(&deskhand_host_vm::LimitHit::WallClock) {
            eprintln!(
                "deskhand: the command ran past --timeout {timeout} and was stopped; allow more with --timeout SECONDS, \
                 up to {MAX_TIMEOUT_SECS}"
            );
        }
    }
    match &report.changes {
        ShellChanges::None => eprintln!(
            "deskhand: the command changed nothing in your folders ({}).",
            report.run
        ),
        ShellChanges::Applied { count, .. } => eprintln!(
            "deskhand: applied {count} change(s):\n{}Undo them with `deskhand undo {} --workspace {}`.",
            render::block(&report.shown),
            report.run,
            ws.root().display()
        ),
        ShellChanges::Refused { reason } => {
            return Err(user_error(format!("{reason} (run {})", report.run)));
        }
    }
    match report.outcome.map(|o| o.termination) {
        Some(deskhand_host_vm::Termination::Exited { code: 0 }) | None => Ok(()),
        Some(t) => Err(Failure {
            message: format!("the command failed: {t:?}"),
            code: 1,
        }),
    }
}
