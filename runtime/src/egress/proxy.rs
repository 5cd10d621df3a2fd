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
//! asked again), or read the tunnelled bytes.
//!
//! One decision per request: a plain-HTTP connection carries exactly one
//! request. Its head is rewritten to `Connection: close`, its body is
//! forwarded as far as its own framing says (`Content-Length` or chunked)
//! and not a byte further, the response head is rewritten to
//! `Connection: close` too, and the connection closes after the response. A
//! client's next request, to the same host or another, comes on a new
//! connection and is decided again. Connections outlive no step: the proxy
//! keeps a list of what is open, and [`Run::set_step`] and [`Run::end_step`]
//! close each one whose host the new state does not allow.
//!
//! Bounded: a head must arrive
//! within [`HEAD_TIMEOUT`] and fit [`MAX_HEAD`], a connect gives up after
//! [`CONNECT_TIMEOUT`], an idle tunnel closes after [`IDLE_TIMEOUT`], and at
//! most [`MAX_CONNECTIONS`] connections are open at once. Std threads rather
//! than an async stack: the runtime has no tokio, and the load is a few
//! connections of one sandboxed process.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    next: AtomicU64,
    /// The connections open to an upstream host now, by number.
    open: Mutex<HashMap<u64, Open>>,
}

/// An open connection, as far as closing it from outside needs.
struct Open {
    host: String,
    port: u16,
    client: UnixStream,
    upstream: TcpStream,
}

impl Open {
    fn close(&self) {
        let _ = self.client.shutdown(std::net::Shutdown::Both);
        let _ = self.upstream.shutdown(std::net::Shutdown::Both);
    }
}

/// A connection's place in the open list; leaving it takes the connection off.
struct Registered {
    state: Arc<State>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.state.open).remove(&self.id);
    }
}

impl State {
    fn register(
        self: &Arc<Self>,
        host: &str,
        port: u16,
        client: &UnixStream,
        upstream: &TcpStream,
    ) -> io::Result<Registered> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let open = Open {
            host: host.to_owned(),
            port,
            client: client.try_clone()?,
            upstream: upstream.try_clone()?,
        };
        lock(&self.open).insert(id, open);
        Ok(Registered {
            state: Arc::clone(self),
            id,
        })
    }
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

    /// Closes every open connection and tunnel whose host `allowed` refuses;
    /// returns how many were closed.
    pub(super) fn close_unless(&self, allowed: impl Fn(&str, u16) -> bool) -> usize {
        let mut open = lock(&self.state.open);
        let before = open.len();
        open.retain(|_, conn| {
            let keep = allowed(&conn.host, conn.port);
            if !keep {
                conn.close();
            }
            keep
        });
        before - open.len()
    }

    /// How many connections are open to an upstream host now.
    pub fn open_connections(&self) -> usize {
        lock(&self.state.open).len()
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
                let _ = serve(stream, &run, &exit, &slot);
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
    /// How far the request's body goes (nothing for CONNECT).
    pub(crate) body: Body,
    /// A HEAD request: its response has a head only, whatever its headers say.
    pub(crate) head_only: bool,
}

/// Where an absolute-form request's body ends: the proxy forwards that much and no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    Length(u64),
    Chunked,
}

/// Hop-by-hop request headers the proxy drops (it sends its own `Connection: close`).
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "upgrade",
    "te",
];

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
            body: Body::Length(0),
            head_only: false,
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
    let (mut length, mut chunked) = (None::<u64>, false);
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("not a header line: {line:?}"));
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if DROPPED.contains(&name.as_str()) {
            continue;
        }
        if name == "content-length" {
            let n = value
                .parse::<u64>()
                .map_err(|_| format!("the Content-Length {value:?} is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err("the request has two different Content-Length headers".into());
            }
            length = Some(n);
        }
        if name == "transfer-encoding" {
            if chunked || !value.to_ascii_lowercase().trim_end().ends_with("chunked") {
                return Err(format!(
                    "the Transfer-Encoding {value:?} is not supported through deskhand's proxy; send a Content-Length or chunked body"
                ));
            }
            chunked = true;
        }
        forward.push_str(line);
        forward.push_str("\r\n");
    }
    let body = match (chunked, length) {
        (true, Some(_)) => return Err("the request has both Content-Length and Transfer-Encoding".into()),
        (true, None) => Body::Chunked,
        (false, n) => Body::Length(n.unwrap_or(0)),
    };
    forward.push_str("Connection: close\r\n\r\n");
    Ok(Target {
        host,
        port,
        forward: Some(forward.into_bytes()),
        body,
        head_only: method == "HEAD",
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
fn serve(mut client: UnixStream, run: &Weak<Run>, exit: &Exit, state: &Arc<State>) -> io::Result<()> {
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
    let mut up = match connect(&target.host, target.port) {
        Ok(s) => s,
        Err(e) => {
            return respond(
                &mut client,
                502,
                &format!("could not connect to {}:{}: {e}", target.host, target.port),
            );
        }
    };
    // On the open list before a byte goes through, then asked again: a step
    // that changed while this connection was being made either finds it on
    // the list or is seen here.
    let _registered = state.register(&target.host, target.port, &client, &up)?;
    if !run.upgrade().is_some_and(|run| run.allows(&target.host, target.port)) {
        return respond(
            &mut client,
            403,
            &format!(
                "the step that allowed {}:{} ended before the connection was made",
                target.host, target.port
            ),
        );
    }
    client.set_read_timeout(Some(IDLE_TIMEOUT))?;
    up.set_read_timeout(Some(IDLE_TIMEOUT))?;
    match &target.forward {
        None => {
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            up.write_all(&rest)?;
            super::splice(client, up)
        }
        Some(head) => {
            up.write_all(head)?;
            one_exchange(client, up, rest, &target)
        }
    }
}

/// Carries one request's body upstream and its response back, then closes
/// both: whatever the client sends after its request's body is read and
/// dropped, and whatever the host sends after its response is not carried.
fn one_exchange(client: UnixStream, up: TcpStream, rest: Vec<u8>, target: &Target) -> io::Result<()> {
    let (mut up_read, mut client_write) = (up.try_clone()?, client.try_clone()?);
    let head_only = target.head_only;
    let response = std::thread::Builder::new()
        .name("egress-response".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = carry_response(&mut up_read, &mut client_write, head_only);
            // The client has the whole response; this also ends the reading below.
            let _ = client_write.shutdown(std::net::Shutdown::Both);
            let _ = up_read.shutdown(std::net::Shutdown::Both);
        })?;
    let mut request = io::Cursor::new(rest).chain(client.try_clone()?);
    let mut up_write = up.try_clone()?;
    let sent = copy_body(&mut request, &mut up_write, target.body);
    if sent.is_ok() {
        // A pipelined second request is never forwarded: read and dropped until the exchange ends.
        let _ = io::copy(&mut request, &mut io::sink());
    }
    if sent.is_err() {
        let _ = up.shutdown(std::net::Shutdown::Both);
        let _ = client.shutdown(std::net::Shutdown::Both);
    }
    let _ = response.join();
    sent
}

/// Copies one response: its head rewritten to `Connection: close` (after
/// any `1xx` heads, passed as they are), then its body as far as its own
/// framing says, or until the host closes when it gives none.
fn carry_response(up: &mut TcpStream, client: &mut UnixStream, head_only: bool) -> io::Result<()> {
    let mut pending = Vec::new();
    let (head, after) = loop {
        let Some(end) = read_until_head_end(up, &mut pending)? else {
            // Not an HTTP head within bounds: pass what came as it is, and nothing more.
            client.write_all(&pending)?;
            return client.flush();
        };
        let after = pending.split_off(end);
        // `1xx` but not 101 (a protocol switch): an interim answer, the real one follows.
        if status_of(&pending).is_some_and(|s| (100..200).contains(&s) && s != 101) {
            client.write_all(&pending)?;
            pending = after;
            continue;
        }
        break (pending, after);
    };
    client.write_all(&close_response_head(&head))?;
    let mut body = io::Cursor::new(after).chain(up.try_clone()?);
    match response_body(&head) {
        _ if head_only || matches!(status_of(&head), Some(204 | 304)) => {}
        Some(framing) => copy_body(&mut body, client, framing)?,
        None => {
            io::copy(&mut body, client)?;
        }
    }
    client.flush()
}

/// A response head's status code (`HTTP/1.1 200 ...` is 200).
fn status_of(head: &[u8]) -> Option<u16> {
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// A response's body framing; None when it runs until the host closes.
fn response_body(head: &[u8]) -> Option<Body> {
    let text = String::from_utf8_lossy(head);
    let mut length = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "transfer-encoding" {
            return value
                .to_ascii_lowercase()
                .trim_end()
                .ends_with("chunked")
                .then_some(Body::Chunked);
        }
        if name == "content-length" {
            length = value.trim().parse::<u64>().ok().map(Body::Length);
        }
    }
    length
}

/// Reads into `buf` until it holds a whole head; returns where the head ends,
/// or None if the stream ended or the head passed [`MAX_HEAD`].
fn read_until_head_end(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(end + 4));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A response head with its connection headers replaced by `Connection: close`.
pub(crate) fn close_response_head(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 20);
    for (i, line) in text.split("\r\n").filter(|l| !l.is_empty()).enumerate() {
        let name = line.split_once(':').map(|(n, _)| n.trim().to_ascii_lowercase());
        if i > 0
            && name
                .as_deref()
                .is_some_and(|n| ["connection", "keep-alive", "proxy-connection"].contains(&n))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// The longest chunk-size or trailer line read.
const MAX_LINE: usize = 4096;

/// Copies exactly one request body, as its framing says.
pub(crate) fn copy_body(from: &mut impl Read, to: &mut impl Write, body: Body) -> io::Result<()> {
    match body {
        Body::Length(n) => {
            let copied = io::copy(&mut from.by_ref().take(n), to)?;
            if copied < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the request body ended early",
                ));
            }
        }
        Body::Chunked => loop {
            let line = read_line(from)?;
            to.write_all(&line)?;
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text
                .trim_end()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let size = u64::from_str_radix(&size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a chunk size is not hexadecimal"))?;
            if size == 0 {
                // Trailers, up to the blank line that ends the body.
                loop {
                    let line = read_line(from)?;
                    to.write_all(&line)?;
                    if line == b"\r\n" {
                        break;
                    }
                }
                break;
            }
            let copied = io::copy(&mut from.by_ref().take(size.saturating_add(2)), to)?;
            if copied < size.saturating_add(2) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the request body ended early",
                ));
            }
        },
    }
    to.flush()
}

/// One line up to and including its LF, read a byte at a time (nothing past it is consumed).
fn read_line(from: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if from.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the request body ended early",
            ));
        }
        line.push(byte[0]);
        if line.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a chunk line is too long"));
        }
    }
    Ok(line)
}

/// Connects to an allowed `host:port`. A name (not an address literal) never
/// leads to this machine or its link (loopback, unspecified, link-local such
/// as a cloud's metadata service at 169.254.169.254): a declared name that
/// resolves there is refused, and reaching such a service takes declaring
/// its address itself, which the person sees.
fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for addr in (host, port).to_socket_addrs()? {
        if !literal && on_this_machine_or_link(addr.ip()) {
            last = io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the name {host} resolves to {}, an address of this machine or its link; a step that means it \
                     declares the address itself",
                    addr.ip()
                ),
            );
            continue;
        }
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Loopback, unspecified or link-local (IPv4 169.254/16, IPv6 fe80::/10,
/// and IPv4-mapped forms of them).
pub(crate) fn on_this_machine_or_link(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => on_this_machine_or_link(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_never_leads_to_this_machine_or_its_link() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "169.254.169.254",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(on_this_machine_or_link(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "10.0.0.5", "2001:db8::1", "::ffff:93.184.216.34"] {
            assert!(!on_this_machine_or_link(ip.parse().unwrap()), "{ip}");
        }
        // "localhost" is a name: refused, though declared; the literal address is the way.
        let e = connect("localhost", 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("declares the address itself"), "{e}");
    }

    #[test]
    fn connect_and_absolute_form_heads_are_parsed_and_rewritten() {
        let t = parse_head(b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n");
        assert_eq!(
            t,
            Ok(Target {
                host: "api.example.com".into(),
                port: 443,
                forward: None,
                body: Body::Length(0),
                head_only: false,
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
            Some("GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8123\r\nConnection: close\r\n\r\n".into())
        );
        let t = parse_head(b"GET http://example.com HTTP/1.0\r\n\r\n").map(|t| (t.port, t.forward));
        assert_eq!(
            t,
            Ok((80, Some(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n".to_vec())))
        );
    }

    #[test]
    fn a_request_is_rewritten_to_close_and_its_body_framed() {
        let t = parse_head(
            b"POST http://h:80/u HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\n",
        );
        let Ok(t) = t else { panic!("{t:?}") };
        assert_eq!(t.body, Body::Length(5));
        assert_eq!(
            String::from_utf8_lossy(t.forward.as_deref().unwrap_or_default()),
            "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
        );
        let t = parse_head(b"PUT http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").map(|t| t.body);
        assert_eq!(t, Ok(Body::Chunked));
        for smuggled in [
            &b"POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST http://h/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST http://h/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(parse_head(smuggled).is_err(), "{}", String::from_utf8_lossy(smuggled));
        }
    }

    #[test]
    fn exactly_one_body_is_forwarded_and_a_pipelined_request_is_not() {
        let mut out = Vec::new();
        let mut from = &b"hello GET http://other:81/ HTTP/1.1\r\n\r\n"[..];
        assert!(copy_body(&mut from, &mut out, Body::Length(5)).is_ok());
        assert_eq!(out, b"hello");
        let mut out = Vec::new();
        let mut from = &b"5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\nGET http://other:81/ HTTP/1.1\r\n\r\n"[..];
        assert!(copy_body(&mut from, &mut out, Body::Chunked).is_ok());
        assert_eq!(out, b"5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\n");
        assert!(from.starts_with(b"GET http://other"), "the next request stays unread");
        let mut short = &b"hel"[..];
        assert!(copy_body(&mut short, &mut Vec::new(), Body::Length(5)).is_err());
    }

    #[test]
    fn a_response_ends_where_its_framing_says() {
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Some(Body::Length(12))
        );
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(Body::Chunked)
        );
        assert_eq!(response_body(b"HTTP/1.0 200 OK\r\n\r\n"), None, "until the host closes");
    }

    #[test]
    fn a_response_head_is_rewritten_to_close() {
        let head = close_response_head(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n",
        );
        assert_eq!(
            String::from_utf8_lossy(&head),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
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
