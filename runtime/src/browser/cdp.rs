//! A small Chrome DevTools Protocol client over `--remote-debugging-pipe`.
//!
//! Chromium started with `--remote-debugging-pipe` reads commands from its
//! fd 3 and writes answers and events to its fd 4, each message one JSON
//! object followed by a NUL byte. Driving it this way opens no debugging TCP
//! port: nothing else on the machine (nor a page inside the browser) can
//! reach the DevTools endpoint, and the browser's network namespace needs no
//! listener besides the egress relay. The few commands deskhand sends need no
//! CDP crate (the ones that exist want a TCP port).
//!
//! A reader thread splits the stream into messages and hands them over a
//! channel, so every wait here has a deadline: a hung or crashed browser
//! ends a call with an error, never a hung run.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The largest message deskhand accepts from the browser (a full-page
/// screenshot of a long page, base64, is the biggest thing it asks for).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Events kept while waiting for an answer; older ones are dropped.
const MAX_EVENTS: usize = 1024;

/// What went wrong talking to the browser.
#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("the browser closed its DevTools pipe (it exited or crashed)")]
    Closed,
    #[error("the browser did not answer {method} within {secs} s")]
    Timeout { method: String, secs: u64 },
    #[error("the browser refused {method}: {message}")]
    Protocol { method: String, message: String },
    #[error("writing to the browser failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One message from the browser, or the end of the stream.
enum Incoming {
    Message(Value),
    /// The stream ended or broke (with what the reader saw).
    Closed,
}

/// A connection to one browser over its pipe pair.
pub struct Cdp {
    to_browser: Box<dyn Write + Send>,
    from_browser: Receiver<Incoming>,
    next_id: u64,
    /// Events received while waiting for answers, oldest first.
    events: VecDeque<Value>,
    closed: bool,
}

impl std::fmt::Debug for Cdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cdp")
            .field("next_id", &self.next_id)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Cdp {
    /// Speaks CDP over `to_browser` (the browser's fd 3) and
    /// `from_browser` (its fd 4). A thread reads the latter until it ends.
    pub fn new(to_browser: impl Write + Send + 'static, from_browser: impl Read + Send + 'static) -> Cdp {
        let (tx, rx) = mpsc::channel();
        // Without the thread its sender is dropped, and every call ends `Closed`.
        let _reader = std::thread::Builder::new()
            .name("browser-cdp".into())
            .spawn(move || read_messages(from_browser, &tx));
        Cdp {
            to_browser: Box::new(to_browser),
            from_browser: rx,
            next_id: 1,
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// Sends `method` (to the page `session` when given, else to the
    /// browser) and waits up to `timeout` for its answer's `result`.
    pub fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        if self.closed {
            return Err(CdpError::Closed);
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).map_err(|e| CdpError::Protocol {
            method: method.into(),
            message: e.to_string(),
        })?;
        bytes.push(0);
        if let Err(e) = self.to_browser.write_all(&bytes).and_then(|()| self.to_browser.flush()) {
            self.closed = true;
            return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
                CdpError::Closed
            } else {
                CdpError::Io(e)
            });
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.next_message(deadline).map_err(|closed| {
                if closed {
                    CdpError::Closed
                } else {
                    CdpError::Timeout {
                        method: method.into(),
                        secs: timeout.as_secs(),
                    }
                }
            })?;
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = message.get("error") {
                    let text = error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("an unknown error");
                    return Err(CdpError::Protocol {
                        method: method.into(),
                        message: text.into(),
                    });
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
            if message.get("method").is_some() {
                self.keep_event(message);
            }
        }
    }

    /// Forgets the events received so far (before an action whose own
    /// events are then awaited).
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// Waits up to `timeout` for an event that `wanted` accepts (events
    /// already received count), and returns it; the events before it are
    /// dropped. `None` when none came in time or the browser went away.
    pub fn wait_event(&mut self, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        while let Some(event) = self.events.pop_front() {
            if wanted(&event) {
                return Some(event);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.next_message(deadline).ok()?;
            if message.get("method").is_some() && wanted(&message) {
                return Some(message);
            }
        }
    }

    /// The next message before `deadline`; Err(true) when the browser went
    /// away, Err(false) at the deadline.
    fn next_message(&mut self, deadline: Instant) -> Result<Value, bool> {
        if self.closed {
            return Err(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(Incoming::Message(m)) => Ok(m),
            Ok(Incoming::Closed) | Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                Err(true)
            }
            Err(RecvTimeoutError::Timeout) => Err(false),
        }
    }

    fn keep_event(&mut self, event: Value) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// Splits the browser's stream at NUL bytes until it ends, a message is
/// not JSON, or one grows past [`MAX_MESSAGE`].
fn read_messages(mut from: impl Read, tx: &mpsc::Sender<Incoming>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut start = 0;
        for (i, b) in chunk[..n].iter().enumerate() {
            if *b != 0 {
                continue;
            }
            pending.extend_from_slice(&chunk[start..i]);
            start = i + 1;
            let Ok(message) = serde_json::from_slice::<Value>(&pending) else {
                let _ = tx.send(Incoming::Closed);
                return;
            };
            pending.clear();
            if tx.send(Incoming::Message(message)).is_err() {
                return;
            }
        }
        pending.extend_from_slice(&chunk[start..n]);
        if pending.len() > MAX_MESSAGE {
            break;
        }
    }
    let _ = tx.send(Incoming::Closed);
}

/// Decodes standard base64 (CDP's encoding of binary results such as
/// screenshots); `None` for anything else.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for group in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in group.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..group.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_what_cdp_sends_and_refuses_the_rest() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGVsbG8h").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(decode_base64("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("a$==").as_deref(), None);
    }

    #[test]
    fn answers_are_matched_by_id_and_events_kept_for_later() {
        // The "browser": answers arrive after an unrelated event, split
        // across reads, each ended by a NUL.
        let stream = b"{\"method\":\"Page.loadEventFired\",\"params\":{}}\0{\"id\":1,\"res".to_vec();
        let rest = b"ult\":{\"ok\":true}}\0{\"id\":2,\"error\":{\"message\":\"nope\"}}\0".to_vec();
        let from = std::io::Cursor::new([stream, rest].concat());
        let mut cdp = Cdp::new(std::io::sink(), from);
        let ok = cdp.call(None, "A.b", json!({}), Duration::from_secs(5));
        assert_eq!(ok.ok(), Some(json!({"ok": true})));
        let refused = cdp.call(Some("s"), "A.c", json!({}), Duration::from_secs(5));
        assert!(matches!(refused, Err(CdpError::Protocol { ref message, .. }) if message == "nope"));
        let event = cdp.wait_event(Duration::from_secs(5), |e| e["method"] == "Page.loadEventFired");
        assert!(event.is_some());
        let after_end = cdp.call(None, "A.d", json!({}), Duration::from_secs(5));
        assert!(matches!(after_end, Err(CdpError::Closed)));
    }
}
