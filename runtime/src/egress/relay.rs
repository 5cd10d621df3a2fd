//! The in-namespace relay: `deskhand-relay SOCKET LISTEN_ADDR -- PROGRAM ARGS...`.
//!
//! Why it exists: a sandbox's network namespace has only its own loopback,
//! so programs inside cannot reach the host's proxy by TCP. The relay runs
//! inside the namespace, listens on `LISTEN_ADDR` (`127.0.0.1:3128`), and
//! carries every connection, unread, to the proxy's Unix socket `SOCKET`,
//! bound into the sandbox; the proxy decides. It does nothing else: no
//! parsing, no resolving. It starts `PROGRAM` with the relay's own stdio
//! (so an MCP server's stdio passes straight through) once it listens, and
//! exits with the program's status (128 + N for a signal N, as a shell says).
//!
//! It is the deskhand executable itself (`deskhand __egress-relay ...`) in the
//! product, and the small `deskhand-relay` binary in the runtime's tests.

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections carried at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;

/// What the relay was told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayArgs {
    pub socket: PathBuf,
    pub listen: String,
    pub program: OsString,
    pub args: Vec<OsString>,
}

const USAGE: &str = "usage: deskhand-relay SOCKET LISTEN_ADDR -- PROGRAM [ARGS...]";

/// Parses `SOCKET LISTEN_ADDR -- PROGRAM ARGS...`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<RelayArgs, String> {
    let mut args = args.into_iter();
    let (Some(socket), Some(listen), Some(dashes), Some(program)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        return Err(USAGE.into());
    };
    if dashes != "--" {
        return Err(USAGE.into());
    }
    let listen = listen.into_string().map_err(|_| USAGE.to_owned())?;
    Ok(RelayArgs {
        socket: socket.into(),
        listen,
        program,
        args: args.collect(),
    })
}

/// Runs the relay with `args` (without the program name); returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    match parse(args).and_then(|a| run(&a)) {
        Ok(code) => code,
        Err(message) => {
            // The relay's own failure, on the stderr the sandbox's owner reads.
            eprintln!("deskhand-relay: {message}");
            125
        }
    }
}

fn run(a: &RelayArgs) -> Result<i32, String> {
    let listener =
        TcpListener::bind(&a.listen).map_err(|e| format!("cannot listen on {} inside the sandbox: {e}", a.listen))?;
    let socket = a.socket.clone();
    std::thread::Builder::new()
        .name("relay-accept".into())
        .stack_size(64 * 1024)
        .spawn(move || accept(listener, socket))
        .map_err(|e| format!("cannot start the relay: {e}"))?;
    let status = Command::new(&a.program)
        .args(&a.args)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", a.program.to_string_lossy()))?;
    Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
}

fn accept(listener: TcpListener, socket: PathBuf) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            // Closing it is the clearest answer a relay that does not speak HTTP can give.
            drop(conn);
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (socket, slot) = (socket.clone(), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("relay-conn".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                carry(conn, &socket);
                slot.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn carry(conn: TcpStream, socket: &PathBuf) {
    // Unreachable proxy: the client sees the connection close.
    if let Ok(proxy) = UnixStream::connect(socket) {
        let _ = super::splice(conn, proxy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_socket_address_dashes_and_the_program() {
        let a = parse(["/s", "127.0.0.1:3128", "--", "node", "server.js", "--x"].map(OsString::from));
        assert_eq!(
            a,
            Ok(RelayArgs {
                socket: "/s".into(),
                listen: "127.0.0.1:3128".into(),
                program: "node".into(),
                args: vec!["server.js".into(), "--x".into()],
            })
        );
        assert!(parse(["/s", "127.0.0.1:3128", "node"].map(OsString::from)).is_err());
        assert!(parse(["/s", "127.0.0.1:3128", "--"].map(OsString::from)).is_err());
    }
}
