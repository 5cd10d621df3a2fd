//! A loopback HTTP/1.1 server that answers with canned responses, in order,
//! and records every request: model providers (and the agent loop on top of
//! them) are tested over real HTTP without a model API.
//!
//! ```ignore
//! let server = ReplayServer::start(vec![
//!     Canned::json(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#)
//!         .header("retry-after", "0"),
//!     Canned::sse(include_str!("../transcripts/anthropic/text.sse")),
//! ]);
//! let provider = AnthropicProvider::new(server.url(), "claude-sonnet-4-5", key);
//! // ... provider.complete(...) ...
//! let sent = server.requests(); // method, path, headers, body of each request
//! assert_eq!(sent[1].json()["stream"], true);
//! ```
//!
//! Each connection carries one request and is closed after the response
//! (`connection: close`). When the queue is empty the server answers
//! `418` with a body saying so, which surfaces as a `Rejected` error.
//!
//! Tests only (a dev-dependency of the providers, the runtime and the
//! binary): one crate, so the three test suites share one server.

#![expect(clippy::unwrap_used, reason = "test support: a failed unwrap is a failed test")]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One response to serve.
#[derive(Debug, Clone)]
pub struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// `Some(n)`: `transfer-encoding: chunked` in pieces of `n` bytes;
    /// `None`: a `content-length` body.
    chunk_size: Option<usize>,
    cut_after: Option<usize>,
    /// Wait this long before answering: a slow model, or one to kill a run during.
    delay: Option<Duration>,
    /// Served only to a conversation whose first user message contains this
    /// (sub-agents running at once each get their own answers).
    task: Option<String>,
    /// After the body, send this chunk again and again, a pause apart, until
    /// the client hangs up: a stream that stalls but keeps its connection alive.
    trickle: Option<(Vec<u8>, Duration)>,
}

impl Canned {
    /// `200` with `content-type: text/event-stream`, sent chunked in 37-byte
    /// pieces so lines and events fall across reads as they do on a network.
    pub fn sse(body: &str) -> Self {
        Canned::status(200)
            .header("content-type", "text/event-stream")
            .body(body)
            .chunked(37)
    }

    /// A JSON body (an API error, say) with `content-length`.
    pub fn json(status: u16, body: &str) -> Self {
        Canned::status(status)
            .header("content-type", "application/json")
            .body(body)
    }

    /// This status and an empty body.
    pub fn status(status: u16) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            chunk_size: None,
            cut_after: None,
            delay: None,
            task: None,
            trickle: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send the body chunked in pieces of `size` bytes.
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk_size = Some(size.max(1));
        self
    }

    /// Wait `delay` before sending anything.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Close the connection after `bytes` bytes of the body (not counting
    /// chunk framing): a stream that breaks off mid-way.
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.cut_after = Some(bytes);
        self
    }

    /// After the body, keep sending `piece` every `every` (a ping, say)
    /// until the client hangs up; the body is sent chunked.
    pub fn trickle(mut self, piece: &str, every: Duration) -> Self {
        self.chunk_size.get_or_insert(37);
        self.trickle = Some((piece.as_bytes().to_vec(), every));
        self
    }

    /// Serve this only to a conversation whose first user message contains
    /// `outcome`; other requests pass it by. Unrouted responses go to any.
    pub fn for_task(mut self, outcome: &str) -> Self {
        self.task = Some(outcome.into());
        self
    }
}

/// The text of a request's first user message (Anthropic or OpenAI shape).
fn first_user_message(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    json["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .map(|m| m["content"].to_string())
        .unwrap_or_default()
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Canned>,
    requests: Vec<Recorded>,
}

/// The server; it stops when dropped.
pub struct ReplayServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReplayServer {
    /// Listens on 127.0.0.1 at a free port and serves `responses` in order.
    pub fn start(responses: Vec<Canned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            queue: responses.into(),
            requests: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // One thread a connection: a delayed answer to one
                        // sub-agent does not hold up its siblings. A client
                        // that hangs up early is part of some tests.
                        let (state, stop) = (state.clone(), stop.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &state, &stop);
                        });
                    }
                }
            })
        };
        ReplayServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many canned responses have not been served.
    pub fn unserved(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(request) = read_request(&mut reader)? else {
        return Ok(());
    };
    let canned = {
        let mut state = state.lock().unwrap();
        // Parsed only when some answer is routed: bodies grow large in long runs.
        let routed = state.queue.iter().any(|c| c.task.is_some());
        let first = if routed {
            first_user_message(&request.body)
        } else {
            String::new()
        };
        state.requests.push(request);
        let served = state.requests.len();
        let next = state
            .queue
            .iter()
            .position(|c| c.task.as_ref().is_none_or(|t| first.contains(t.as_str())));
        next.and_then(|i| state.queue.remove(i)).unwrap_or_else(|| {
            Canned::json(
                418,
                &format!(r#"{{"error":{{"message":"replay server: no canned response left for request {served}"}}}}"#),
            )
        })
    };
    write_response(stream, &canned, stop)
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Recorded>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(length) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(Some(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }))
}

fn write_response(mut stream: TcpStream, canned: &Canned, stop: &AtomicBool) -> std::io::Result<()> {
    if let Some(delay) = canned.delay {
        // Sleep in slices so that dropping the server ends the wait.
        let until = std::time::Instant::now() + delay;
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", canned.status, reason(canned.status));
    for (name, value) in &canned.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match canned.chunk_size {
        Some(_) => head.push_str("transfer-encoding: chunked\r\n"),
        None => head.push_str(&format!("content-length: {}\r\n", canned.body.len())),
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;

    let mut budget = canned.cut_after.unwrap_or(usize::MAX);
    let pieces: Vec<&[u8]> = match canned.chunk_size {
        Some(size) => canned.body.chunks(size).collect(),
        None => vec![&canned.body[..]],
    };
    for piece in pieces {
        if canned.chunk_size.is_some() {
            write!(stream, "{:x}\r\n", piece.len())?;
        }
        let sent = piece.len().min(budget);
        stream.write_all(&piece[..sent])?;
        budget -= sent;
        if sent < piece.len() || (budget == 0 && canned.cut_after.is_some()) {
            stream.flush()?;
            return stream.shutdown(Shutdown::Both);
        }
        if canned.chunk_size.is_some() {
            stream.write_all(b"\r\n")?;
        }
        stream.flush()?;
    }
    if let Some((piece, every)) = &canned.trickle {
        while !stop.load(Ordering::SeqCst) {
            let until = std::time::Instant::now() + *every;
            while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            write!(stream, "{:x}\r\n", piece.len())?;
            stream.write_all(piece)?;
            stream.write_all(b"\r\n")?;
            stream.flush()?;
        }
    }
    if canned.chunk_size.is_some() {
        stream.write_all(b"0\r\n\r\n")?;
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

/// One assistant turn as an Anthropic stream: `text` (when not empty), then
/// each `(id, name, input)` as a tool use. For a turn a test writes itself
/// (hostile text, say) rather than a recorded one.
pub fn anthropic_turn(text: &str, tool_uses: &[(&str, &str, serde_json::Value)]) -> String {
    use serde_json::json;
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_test", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if !text.is_empty() {
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""}}),
        ));
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "text_delta", "text": text}}),
        ));
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (id, name, input) in tool_uses {
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ));
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
        ));
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    let stop = if tool_uses.is_empty() { "end_turn" } else { "tool_use" };
    events.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 20}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}
