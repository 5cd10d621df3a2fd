//! `deskhand __egress-relay SOCKET LISTEN_ADDR -- PROGRAM ARGS...`: the relay
//! that runs inside a sandbox's network namespace (see
//! `deskhand_runtime::egress::relay`). The installed product uses its own
//! executable for it, so nothing else needs installing.

/// Runs the relay with the raw arguments after `__egress-relay` (clap would
/// swallow the `--` that separates the program) and exits with its status.
pub fn relay() -> ! {
    let args = std::env::args_os().skip_while(|a| a != "__egress-relay").skip(1);
    std::process::exit(deskhand_runtime::egress::relay::main(args))
}

/// Makes this executable the relay every run's sandboxes start.
pub fn offer_self_as_relay() {
    if let Ok(exe) = std::env::current_exe().and_then(|e| e.canonicalize())
        && let Some(exe) = exe.to_str()
    {
        deskhand_runtime::egress::set_process_relay(vec![exe.to_owned(), "__egress-relay".to_owned()]);
    }
}
