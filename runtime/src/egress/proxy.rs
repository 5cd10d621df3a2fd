//! The host-side filtering proxy: HTTP `CONNECT host:port` (and plain
//! absolute-form requests such as `GET http://host/`) over Unix sockets,
//! each target asked of [`Run::decide`] before anything is resolved or
//! connected.
//!
//! Why a Unix socket: a sandbox's network namespace has no route out, only
//! its own loopback, so the one way out is a file bound into it. The relay
//! inside ([`super::relay`]) carries each connection to that file. One
//! socket per [`Exit`], so the decision knows which exit asked.
//!
//! What it never does: resolve or connect to a host the decision point did
//! not allow, follow a redirect (a redirect is the client's next request,
//! asked again), or read the tunnelled bytes. Bounded: a head must arrive
//! within [`HEAD_TIMEOUT`] and fit [`MAX_HEAD`], a connect gives up after
//! [`CONNECT_TIMEOUT`], an idle tunnel closes after [`IDLE_TIMEOUT`], and at
//! most [`MAX_CONNECTIONS`] connections are open at once. Std threads rather
//! than an async stack: the runtime has no tokio, and the load is a few
//! connections of one sandboxed process.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{Exit, Run, lock};
use crate::error::{Error, Result};

/// How long a client has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to an allowed host may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A tunnel with no bytes either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest request head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Connections open at once through one run's proxy; more are refused (503).
pub const MAX_CONNECTIONS: usize = 64;

/// One run's proxy: a private 0700 folder holding one listening socket per exit.
pub struct Proxy {
    dir: tempfile::TempDir,
    run: Weak<Run>,
    endpoints: Mutex<HashMap<Exit, PathBuf>>,
    state: Arc<State>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    stop: AtomicBool,
    active: AtomicUsize,
}

impl Proxy {
    pub(super) fn start(run: Weak<Run>) -> Result<Proxy> {
        // tempfile makes the folder 0700: no other user can connect through it.
        let dir = tempfile::Builder::new()
            .prefix("deskhand-egress-")
            .tempdir()
            .map_err(Error::io(std::env::temp_dir()))?;
        Ok(Proxy {
            dir,
            run,
            endpoints: Mutex::default(),
            state: Arc::default(),
        })
    }

    /// The private folder the sockets are in (bind it into a sandbox read-only).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The socket that connections from `exit` come through, listening from
    /// the first call on (it lies in [`Proxy::dir`]).
    pub fn endpoint(&self, exit: &Exit) -> Result<PathBuf> {
        let mut endpoints = lock(&self.endpoints);
        if let Some(path) = endpoints.get(exit) {
            return Ok(path.clone());
        }
        let path = self.dir.path().join(format!("exit-{}.sock", endpoints.len()));
        let listener = UnixListener::bind(&path).map_err(Error::io(&path))?;
        let (run, state, for_exit) = (self.run.clone(), Arc::clone(&self.state), exit.clone());
        std::thread::Builder::new()
            .name("egress-proxy".into())
            .spawn(move || accept(listener, run, state, for_exit))
            .map_err(Error::io(&path))?;
        endpoints.insert(exit.clone(), path.clone());
        Ok(path)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake each accept loop so it sees the flag and ends.
        for path in lock(&self.endpoints).values() {
            let _ = UnixStream::connect(path);
        }
    }
}

fn accept(listener: UnixListener, run: Weak<Run>, state: Arc<State>, exit: Exit) {
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        if state.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            state.active.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(
                &mut stream,
                503,
                "too many connections through deskhand's proxy at once; try again",
            );
            continue;
        }
        let (run, slot, exit) = (run.clone(), Arc::clone(&state), exit.clone());
        let spawned = std::thread::Builder::new()
            .name("egress-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = serve(stream, &run, &exit);
                slot.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The thread never ran (the stream went with it, closed): free its slot.
            state.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A parsed request head: where to, and what to send upstream first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `None` for CONNECT (a tunnel); the rewritten head for an absolute-form request.
    pub(crate) forward: Option<Vec<u8>>,
}

/// Parses a request head (everything up to and including the blank line).
pub(crate) fn parse_head(head: &[u8]) -> std::result::Result<Target, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not text".to_owned())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("not an HTTP request line: {first:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported HTTP version {version:?}"));
    }
    if method == "CONNECT" {
        let (host, port) = split_host_port(target, None)?;
        return Ok(Target {
            host,
            port,
            forward: None,
        });
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!(
            "{method} {target}: a proxy request must be CONNECT host:port or name an http:// URL"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err("a URL with credentials in it is refused".into());
    }
    let (host, port) = split_host_port(authority, Some(80))?;
    let mut forward = format!("{method} {path} {version}\r\n");
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("proxy-connection:") || lower.starts_with("proxy-authorization:") {
            continue;
        }
        forward.push_str(line);
        forward.push_str("\r\n");
    }
    // `lines` ended with the two empty strings after the final CRLF CRLF; keep exactly one blank line.
    while forward.ends_with("\r\n\r\n") {
        forward.truncate(forward.len() - 2);
    }
    forward.push_str("\r\n");
    Ok(Target {
        host,
        port,
        forward: Some(forward.into_bytes()),
    })
}

fn split_host_port(authority: &str, default: Option<u16>) -> std::result::Result<(String, u16), String> {
    let bad = || format!("{authority:?} is not host:port");
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad()),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn respond(stream: &mut UnixStream, status: u16, body: &str) -> io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let body = format!("deskhand: {body}\n");
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Reads up to the end of the head; returns the head and any bytes after it.
fn read_head(stream: &mut UnixStream) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// One client connection. The run is held only while deciding: a long
/// tunnel does not keep a finished run (and so this proxy) alive.
fn serve(mut client: UnixStream, run: &Weak<Run>, exit: &Exit) -> io::Result<()> {
    client.set_read_timeout(Some(HEAD_TIMEOUT))?;
    let Some((head, rest)) = read_head(&mut client)? else {
        return respond(&mut client, 400, "no complete request head arrived");
    };
    let target = match parse_head(&head) {
        Ok(t) => t,
        Err(why) => return respond(&mut client, 400, &why),
    };
    let verdict = match run.upgrade() {
        Some(run) => run.decide(exit, &target.host, target.port),
        None => Err("the run this connection belonged to has ended".to_owned()),
    };
    if let Err(reason) = verdict {
        return respond(&mut client, 403, &reason);
    }
    // Only now, for an allowed name, is anything resolved.
    let upstream = match connect(&target.host, target.port) {
        Ok(s) => s,
        Err(e) => {
            return respond(
                &mut client,
                502,
                &format!("could not connect to {}:{}: {e}", target.host, target.port),
            );
        }
    };
    let mut up = upstream;
    match &target.forward {
        None => client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?,
        Some(head) => up.write_all(head)?,
    }
    up.write_all(&rest)?;
    client.set_read_timeout(Some(IDLE_TIMEOUT))?;
    up.set_read_timeout(Some(IDLE_TIMEOUT))?;
    super::splice(client, up)
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_form_heads_are_parsed_and_rewritten() {
        let t = parse_head(b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n");
        assert_eq!(
            t,
            Ok(Target {
                host: "api.example.com".into(),
                port: 443,
                forward: None
            })
        );
        let t = parse_head(b"CONNECT [::1]:8080 HTTP/1.1\r\n\r\n").map(|t| (t.host, t.port));
        assert_eq!(t, Ok(("::1".into(), 8080)));
        let t = parse_head(
            b"GET http://127.0.0.1:8123/a?b HTTP/1.1\r\nHost: 127.0.0.1:8123\r\nProxy-Connection: keep-alive\r\n\r\n",
        );
        let Ok(t) = t else { panic!("{t:?}") };
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8123));
        assert_eq!(
            t.forward.as_deref().map(String::from_utf8_lossy),
            Some("GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8123\r\n\r\n".into())
        );
        let t = parse_head(b"GET http://example.com HTTP/1.0\r\n\r\n").map(|t| (t.port, t.forward));
        assert_eq!(t, Ok((80, Some(b"GET / HTTP/1.0\r\n\r\n".to_vec()))));
    }

    #[test]
    fn what_is_not_a_proxy_request_is_refused() {
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET https://example.com/ HTTP/1.1\r\n\r\n",
            b"CONNECT example.com HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            b"GET http://user:pw@example.com/ HTTP/1.1\r\n\r\n",
            b"CONNECT a:1 HTTP/2\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(parse_head(head).is_err(), "{}", String::from_utf8_lossy(head));
        }
    }
}
