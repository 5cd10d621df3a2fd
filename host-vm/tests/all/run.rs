//! Running: the check, output streams, exit codes and signals, and the typed errors.

use deskhand_host_vm::bwrap::BwrapBackend;
use deskhand_host_vm::{BackendProblem, Mount, ShellBackend, ShellError, ShellPolicy, Stream, Termination};

use crate::common::{Fixture, backend_or_skip, run, sh, try_run};

#[test]
fn missing_bwrap_is_a_problem_with_a_fix() {
    let backend = BwrapBackend::with_program("/nonexistent/bwrap");
    let problem = backend.check().err();
    assert!(
        matches!(problem, Some(BackendProblem::BubblewrapMissing { .. })),
        "{problem:?}"
    );
    let message = problem.map(|p| p.to_string()).unwrap_or_default();
    assert!(message.contains("apt-get install bubblewrap"), "{message}");
    let plan = backend.plan(&ShellPolicy::new(["true"]));
    let result = plan.map(|plan| backend.run(&plan, &mut |_| {}));
    assert!(matches!(
        result,
        Ok(Err(ShellError::Unavailable(BackendProblem::BubblewrapMissing { .. })))
    ));
}

#[test]
fn output_streams_arrive_labelled() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    assert_eq!(backend.name(), "bubblewrap");
    let run = run(backend, &sh("echo out; echo err >&2; exit 3"))?;
    assert_eq!(run.outcome.termination, Termination::Exited { code: 3 });
    assert_eq!(run.stdout, "out\n");
    assert_eq!(run.stderr, "err\n");
    assert!(run.chunks.iter().any(|(s, b)| *s == Stream::Stderr && b == b"err\n"));
    assert_eq!(
        (run.outcome.output.stdout_bytes, run.outcome.output.stderr_bytes),
        (4, 4)
    );
    assert!(run.outcome.limits_hit.is_empty());
    Ok(())
}

#[test]
fn signal_death_is_reported_as_a_signal() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let run = run(backend, &sh("kill -TERM $$"))?;
    assert_eq!(run.outcome.termination, Termination::Signaled { signal: 15 }, "{run:?}");
    Ok(())
}

#[test]
fn unknown_command_exits_127() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let run = run(backend, &ShellPolicy::new(["no-such-command-here"]))?;
    assert_eq!(run.outcome.termination, Termination::Exited { code: 127 }, "{run:?}");
    Ok(())
}

#[test]
fn workdir_inside_a_grant_is_the_start_directory() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let data = fx.dir("data")?;
    fx.file("data/a.txt", "a")?;
    let run = run(
        backend,
        &sh("pwd; ls")
            .grant(Mount::read_only(&data, "/work/data"))
            .workdir("/work/data"),
    )?;
    assert_eq!(run.stdout, "/work/data\na.txt\n");
    Ok(())
}

#[test]
fn missing_grant_is_a_typed_error() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let result = try_run(
        backend,
        &sh("true").grant(Mount::read_only(fx.root.join("gone"), "/work/gone")),
    );
    assert!(matches!(result, Err(ShellError::GrantMissing { .. })), "{result:?}");
    Ok(())
}

#[test]
fn symlinked_grant_path_is_refused() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let real = fx.dir("real")?;
    let link = fx.root.join("link");
    std::os::unix::fs::symlink(&real, &link)?;
    let result = try_run(backend, &sh("true").grant(Mount::read_only(&link, "/work/data")));
    assert!(
        matches!(result, Err(ShellError::GrantNotCanonical { .. })),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn sandbox_setup_failure_is_a_typed_error() -> anyhow::Result<()> {
    let backend = backend_or_skip!();
    let fx = Fixture::new()?;
    let data = fx.dir("data")?;
    let policy = sh("true")
        .grant(Mount::read_only(&data, "/work/data"))
        .workdir("/work/data/missing");
    let result = try_run(backend, &policy);
    match result {
        Err(ShellError::Setup { message }) => assert!(message.starts_with("bwrap: "), "{message}"),
        other => panic!("expected a setup error: {other:?}"),
    }
    Ok(())
}
