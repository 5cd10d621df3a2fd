//! The installed product's egress: `deskhand run` starts its own executable
//! (`deskhand __egress-relay`) inside the shell sandbox, so a step that
//! declares a host reaches it through the run's proxy and nothing else.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{Wire, assert_ok, command, deskhand};
use crate::replay::{Canned, ReplayServer, anthropic_turn};

/// A loopback HTTP server answering `body`; returns its port and its connection count.
fn listener(body: &'static str) -> (u16, Arc<Mutex<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            *count.lock().unwrap() += 1;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn a_shell_step_reaches_its_declared_host_through_deskhands_own_relay_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let (allowed, allowed_seen) = listener("status: all green");
    let (other, other_seen) = listener("never");
    let step = json!({"title": "Fetch the status page", "effects": {"network": [format!("127.0.0.1:{allowed}")]},
        "status": "in_progress"});
    let fetch = format!(
        "curl -sS --max-time 20 http://127.0.0.1:{allowed}/; echo; \
         curl -sS --max-time 20 -o /dev/null -w 'other:%{{http_code}}' http://127.0.0.1:{other}/"
    );
    let server = ReplayServer::start(vec![
        Canned::sse(&anthropic_turn(
            "Fetching the status page.",
            &[
                ("toolu_N1Plan", "update_plan", json!({"steps": [step]})),
                ("toolu_N1Get", "shell", json!({"command": fetch})),
            ],
        )),
        Canned::sse(&anthropic_turn("The status is all green.", &[])),
    ]);
    let o = Wire::Anthropic
        .talking_to(
            command(
                &["run", "Fetch the status page", "--workspace", "ws", "--mode", "act"],
                tmp.path(),
            ),
            &server,
        )
        .output()
        .unwrap();
    assert_ok(&o);
    let second = &server.requests()[1].body;
    assert!(second.contains("status: all green"), "{second}");
    assert!(second.contains("other:403"), "{second}");
    assert_eq!(*allowed_seen.lock().unwrap(), 1);
    assert_eq!(*other_seen.lock().unwrap(), 0);
}
