//! The one egress policy through real bubblewrap, the real relay and the
//! run's filtering proxy, against real loopback listeners on the host:
//! off by default, declared hosts only, 403 and a Blocked event for the rest,
//! and sealed after a private read.

use crate::common::listener;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use deskhand_runtime::confine::Confined;
use deskhand_runtime::egress::{self, Exit, Journaler};
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{Event, RunId, StepNo};

/// The relay, built as its own small binary for these tests.
const RELAY: &str = env!("CARGO_BIN_EXE_deskhand-relay");

/// A run's egress whose Blocked events are queued, as the agent's are, for the run's writer.
fn egress_run(run: &RunId) -> (Arc<egress::Run>, Arc<Mutex<Vec<Event>>>) {
    let queue = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&queue);
    let journal: Journaler = Arc::new(move |_, e| sink.lock().unwrap().push(e));
    (egress::Run::new(run.clone(), journal), queue)
}

/// Runs `script` with /bin/sh in its own sandbox, its output captured.
fn sandboxed(script: &str, network: Option<(Arc<egress::Run>, Exit)>) -> Output {
    let mut c = Confined::new("/bin/sh");
    c.args = vec!["-c".into(), script.into()];
    c.network = network;
    c.relay = Some(vec![RELAY.to_owned()]);
    let mut cmd = c.command().expect("a sandbox command");
    cmd.stdin(Stdio::null()).output().expect("bwrap runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn curl(args: &str) -> String {
    format!("curl -sS --max-time 20 {args}")
}

#[test]
fn without_network_a_confined_process_reaches_nothing_not_even_the_hosts_loopback() {
    let (port, seen) = listener("host");
    let out = sandboxed(&format!("{} http://127.0.0.1:{port}/", curl("")), None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("host"), "{}", text(&out));
    // No variables pointing anywhere either: the environment is exactly the given one.
    let env = sandboxed("env", None);
    let env_text = String::from_utf8_lossy(&env.stdout);
    assert!(!env_text.to_lowercase().contains("proxy"), "{env_text}");
    assert_eq!(*seen.lock().unwrap(), 0, "the host's listener was never reached");
}

#[test]
fn a_step_reaches_its_declared_loopback_port_through_the_proxy_and_is_refused_another() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = Workspace::init(&tmp.path().join("ws")).unwrap();
    let run = ws.journal().begin_task("fetch a page", &[]).unwrap();
    let (allowed, allowed_seen) = listener("hello from the allowed port");
    let (other, other_seen) = listener("must never be read");
    let (r, queue) = egress_run(&run);
    r.set_step(StepNo(1), &[format!("127.0.0.1:{allowed}")], false);
    let script = [
        // Plain http through HTTP_PROXY (absolute form), then a CONNECT tunnel (-p).
        curl(&format!("http://127.0.0.1:{allowed}/a")),
        "echo".into(),
        curl(&format!("-p http://127.0.0.1:{allowed}/b")),
        "echo".into(),
        curl(&format!(
            "-o /dev/null -w 'refused:%{{http_code}}' http://127.0.0.1:{other}/"
        )),
        "echo".into(),
        curl(&format!("-p http://127.0.0.1:{other}/ || echo tunnel-refused")),
        // Around the proxy: the namespace's own loopback has nothing on that port.
        curl(&format!(
            "--noproxy '*' http://127.0.0.1:{allowed}/ || echo direct-refused"
        )),
    ]
    .join("; ");
    let out = sandboxed(&script, Some((Arc::clone(&r), Exit::Connector("test".into()))));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("hello from the allowed port").count(),
        2,
        "{}",
        text(&out)
    );
    assert!(stdout.contains("refused:403"), "{}", text(&out));
    assert!(stdout.contains("tunnel-refused"), "{}", text(&out));
    assert!(stdout.contains("direct-refused"), "{}", text(&out));
    assert!(!stdout.contains("must never be read"), "{}", text(&out));
    assert_eq!(*other_seen.lock().unwrap(), 0, "nothing reached the undeclared port");
    assert_eq!(*allowed_seen.lock().unwrap(), 2);
    assert_eq!(r.contacted(), [format!("127.0.0.1:{allowed}")]);

    // The refusals, written by the run's writer, are Blocked events of step 1 in the journal.
    ws.journal().append_all(&run, &queue.lock().unwrap()).unwrap();
    let blocked: Vec<String> = ws
        .journal()
        .events(&run)
        .unwrap()
        .into_iter()
        .filter_map(|row| match row.event {
            Event::Blocked {
                step: StepNo(1),
                reason,
            } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    assert!(
        blocked
            .iter()
            .all(|b| b.contains(&format!("127.0.0.1:{other}")) && b.contains("the connector test")),
        "{blocked:?}"
    );
}

#[test]
fn after_a_private_read_a_new_host_is_refused_until_the_person_approves_the_step() {
    let (first, _) = listener("first host");
    let (second, second_seen) = listener("second host");
    let (r, _) = egress_run(&RunId("sealed".into()));
    let hosts = [format!("127.0.0.1:{first}"), format!("127.0.0.1:{second}")];
    r.set_step(StepNo(1), &hosts[..1], false);
    let get = |port: u16| {
        curl(&format!(
            "-o /dev/null -w 'code:%{{http_code}}' http://127.0.0.1:{port}/"
        ))
    };
    let out = sandboxed(&get(first), Some((Arc::clone(&r), Exit::Shell)));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("code:200"),
        "{}",
        text(&out)
    );

    r.mark_private_read("projects/notes/salaries.csv");
    r.set_step(StepNo(2), &hosts, false);
    let script = format!("{}; echo; {}", get(first), get(second));
    let out = sandboxed(&script, Some((Arc::clone(&r), Exit::Shell)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("code:200\ncode:403"), "{}", text(&out));
    assert_eq!(*second_seen.lock().unwrap(), 0);

    // The person approved step 3 knowing the run had read private files.
    r.set_step(StepNo(3), &hosts, true);
    let out = sandboxed(&get(second), Some((Arc::clone(&r), Exit::Shell)));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("code:200"),
        "{}",
        text(&out)
    );
}

/// A loopback HTTP server that keeps connections alive: it answers every
/// request on a connection with `body` and `Connection: keep-alive`.
/// Returns its port and the requests and connections it saw.
fn keep_alive_listener(body: &'static str) -> (u16, Arc<Mutex<(usize, usize)>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = l.local_addr().expect("its address").port();
    let seen = Arc::new(Mutex::new((0, 0)));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            count.lock().unwrap().1 += 1;
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                        head.push(byte[0]);
                    }
                    if !head.ends_with(b"\r\n\r\n") {
                        return;
                    }
                    count.lock().unwrap().0 += 1;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// The Blocked reasons a run's egress queued.
fn blocked(queue: &Mutex<Vec<Event>>) -> Vec<String> {
    queue
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Blocked { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_second_request_on_a_kept_alive_connection_to_an_undeclared_port_is_refused_and_journaled() {
    let (allowed, allowed_seen) = keep_alive_listener("first answer");
    let (other, other_seen) = keep_alive_listener("must never be read");
    let (r, queue) = egress_run(&RunId("keepalive".into()));
    r.set_step(StepNo(1), &[format!("127.0.0.1:{allowed}")], false);

    // curl, told to keep its proxy connection alive, asks twice: the second URL on an undeclared port.
    let script = curl(&format!(
        "-H 'Proxy-Connection: keep-alive' -w ' code:%{{http_code}}\\n' http://127.0.0.1:{allowed}/one http://127.0.0.1:{other}/two"
    ));
    let out = sandboxed(&script, Some((Arc::clone(&r), Exit::Shell)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("first answer code:200"), "{}", text(&out));
    assert!(stdout.contains("code:403"), "{}", text(&out));
    assert!(!stdout.contains("must never be read"), "{}", text(&out));
    assert_eq!(
        *other_seen.lock().unwrap(),
        (0, 0),
        "nothing reached the undeclared port"
    );

    // A client that ignores `Connection: close` and pipelines a second request
    // on the same connection, straight at the proxy's socket: only the first goes anywhere.
    let socket = r.proxy().unwrap().endpoint(&Exit::Shell).unwrap();
    let mut conn = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        conn,
        "GET http://127.0.0.1:{allowed}/a HTTP/1.1\r\nHost: 127.0.0.1:{allowed}\r\nConnection: keep-alive\r\n\r\n\
         GET http://127.0.0.1:{other}/b HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n\r\n\
         GET http://127.0.0.1:{allowed}/c HTTP/1.1\r\nHost: 127.0.0.1:{allowed}\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 1, "{answer}");
    assert!(
        answer.contains("Connection: close") && !answer.contains("keep-alive"),
        "{answer}"
    );
    assert_eq!(*other_seen.lock().unwrap(), (0, 0));
    assert_eq!(
        *allowed_seen.lock().unwrap(),
        (2, 2),
        "one request per connection: curl's first and the socket's first"
    );

    let refusals = blocked(&queue);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].contains(&format!("127.0.0.1:{other}")) && refusals[0].contains("step 1"),
        "{refusals:?}"
    );
}

/// What a [`recorder`]'s connections sent: each chunk, then `None` when one closes.
type Received = std::sync::mpsc::Receiver<Option<Vec<u8>>>;

/// A loopback server that records what each connection sends until it
/// closes; each chunk (and `None` at the end) comes on the channel.
fn recorder() -> (u16, Received, Arc<Mutex<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = l.local_addr().expect("its address").port();
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = Arc::new(Mutex::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            *count.lock().unwrap() += 1;
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    let _ = tx.send(Some(buf[..n].to_vec()));
                }
                let _ = tx.send(None);
            });
        }
    });
    (port, rx, seen)
}

#[test]
fn a_tunnel_opened_in_one_step_is_closed_when_the_next_step_starts_without_its_host() {
    let (port, received, connections) = recorder();
    let (other, _) = listener("step 2's host");
    let (r, _) = egress_run(&RunId("tunnel".into()));
    r.set_step(StepNo(1), &[format!("127.0.0.1:{port}")], false);

    // A client holds a tunnel (CONNECT through HTTPS_PROXY) open and sends each line of its stdin.
    let client = r#"
import os, socket, sys
host, port = os.environ["HTTPS_PROXY"].rsplit("/", 1)[1].split(":")
s = socket.create_connection((host, int(port)))
s.sendall(("CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % sys.argv[1]).encode())
print(s.recv(1024).decode().splitlines()[0], flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode())
    except OSError as e:
        print("send failed:", e, flush=True)
"#;
    let mut c = Confined::new("/usr/bin/python3");
    c.args = vec!["-c".into(), client.into(), port.to_string()];
    c.network = Some((Arc::clone(&r), Exit::Shell));
    c.relay = Some(vec![RELAY.to_owned()]);
    let mut child = c
        .command()
        .unwrap()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"before the step changed\n").unwrap();
    stdin.flush().unwrap();
    // A guard against a hang, not a measurement: the data arrives within milliseconds.
    let wait = std::time::Duration::from_secs(60);
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("before the step changed") {
        match received.recv_timeout(wait) {
            Ok(Some(chunk)) => got.extend(chunk),
            other => panic!("the tunnel closed or stalled before the data arrived: {other:?}"),
        }
    }
    assert_eq!(r.proxy().unwrap().open_connections(), 1);

    r.set_step(StepNo(2), &[format!("127.0.0.1:{other}")], false);
    assert_eq!(r.proxy().unwrap().open_connections(), 0);
    // The listener sees the tunnel end: nothing sent from now on can reach it.
    loop {
        match received.recv_timeout(wait) {
            Ok(Some(chunk)) => got.extend(chunk),
            Ok(None) => break,
            Err(e) => panic!("the tunnel was not closed when step 2 started: {e}"),
        }
    }
    let _ = stdin.write_all(b"after the step changed\n");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains("after"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(received.try_recv().is_err(), "nothing more arrived");
    assert_eq!(*connections.lock().unwrap(), 1, "{}", text(&out));

    // A plain request in a step that ends is cut the same way, by end_step.
    let (r2, _) = egress_run(&RunId("tunnel2".into()));
    let (port2, received2, _) = recorder();
    r2.set_step(StepNo(1), &[format!("127.0.0.1:{port2}")], false);
    let socket = r2.proxy().unwrap().endpoint(&Exit::Browser).unwrap();
    let mut conn = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(conn, "CONNECT 127.0.0.1:{port2} HTTP/1.1\r\n\r\nhello").unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"hello") {
        match received2.recv_timeout(wait) {
            Ok(Some(chunk)) => got.extend(chunk),
            other => panic!("the tunnel closed or stalled: {other:?}"),
        }
    }
    r2.end_step();
    assert_eq!(
        received2.recv_timeout(wait).ok(),
        Some(None),
        "the tunnel ended with the step"
    );
    let mut rest = String::new();
    let _ = conn.read_to_string(&mut rest);
    assert_eq!(
        rest, "HTTP/1.1 200 Connection established\r\n\r\n",
        "and the client saw it close"
    );
}

#[test]
fn the_first_contact_of_each_host_is_journaled_for_a_resumed_run() {
    let (allowed, _) = listener("contacted");
    let (r, queue) = egress_run(&RunId("contacts".into()));
    r.set_step(StepNo(1), &[format!("127.0.0.1:{allowed}")], false);
    let get = curl(&format!("-o /dev/null http://127.0.0.1:{allowed}/"));
    let out = sandboxed(&format!("{get}; {get}"), Some((Arc::clone(&r), Exit::Shell)));
    assert!(out.status.success(), "{}", text(&out));
    let notices: Vec<String> = queue
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Notice { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "once per host: {notices:?}");
    assert_eq!(
        egress::contacted_in_notice(&notices[0]),
        Some(format!("127.0.0.1:{allowed}"))
    );
}

#[test]
fn a_confined_fork_bomb_is_stopped_at_the_process_cap() {
    // Bounded, so a broken cap cannot take the machine down: 2000 sleepers
    // are asked for, in a sandbox that may have 512 processes and threads.
    // The shell that forks stops at the first fork refused; its parent counts what runs.
    let script = "(i=0; while [ $i -lt 2000 ]; do sleep 600 & i=$((i+1)); done) 2>/dev/null; \
                  set -- /proc/[0-9]*; echo \"running $#\"";
    let out = sandboxed(script, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let running: usize = stdout
        .trim()
        .strip_prefix("running ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(
        running <= deskhand_runtime::confine::MAX_PROCESSES as usize + 2,
        "{running} processes ran; {}",
        text(&out)
    );
    assert!(running > 100, "the sandbox ran processes up to its cap: {}", text(&out));
    assert!(out.status.success(), "and ended when its shell did: {}", text(&out));
}

#[test]
fn the_relay_passes_stdio_through_and_exits_with_the_programs_status() {
    let (r, _) = egress_run(&RunId("stdio".into()));
    r.set_step(StepNo(1), &[], false);
    let mut c = Confined::new("/bin/sh");
    c.args = vec!["-c".into(), "read line; echo \"got $line\"; exit 7".into()];
    c.network = Some((r, Exit::Connector("echo".into())));
    c.relay = Some(vec![RELAY.to_owned()]);
    let mut child = c
        .command()
        .unwrap()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got ping\n");
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn network_without_a_relay_is_a_clear_error() {
    let (r, _) = egress_run(&RunId("norelay".into()));
    let mut c = Confined::new("/bin/true");
    c.network = Some((r, Exit::Browser));
    let err = c.command().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("no relay"), "{err}");
}

// ---------------------------------------------------------------------------
// Through the agent: a model's shell steps in act mode
// ---------------------------------------------------------------------------

mod agent_runs {
    use std::sync::Mutex;

    use deskhand_host_vm::ShellBackend;
    use deskhand_runtime::agent::{AgentSettings, Approval, ChangesApproval, Gate, StepApproval};
    use deskhand_runtime::model::Secret;
    use deskhand_runtime::model::anthropic::AnthropicProvider;
    use std::sync::Arc;

    use deskhand_runtime::envelope::{self, Envelope};
    use deskhand_types::{Event, Grant, PlanStep, RunStatus, StepEffects, StepStatus};
    use serde_json::{Value, json};

    use super::{RELAY, listener};
    use crate::common::{agent_task, demo, fast_retries, recording_agent};
    use crate::replay::{Canned, ReplayServer};

    /// One model turn as the Anthropic Messages API streams it.
    fn turn(text: &str, calls: &[(&str, &str, Value)]) -> Canned {
        Canned::sse(&crate::replay::anthropic_turn(text, calls))
    }

    /// A person who answers every step question with `yes` and remembers the steps asked about.
    struct Person {
        yes: bool,
        asked: Mutex<Vec<String>>,
    }

    impl Person {
        fn new(yes: bool) -> Person {
            Person {
                yes,
                asked: Mutex::default(),
            }
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl Gate for Person {
        fn approve_step(&self, _: &str, req: &StepApproval<'_>) -> Approval {
            self.asked.lock().unwrap().push(req.plan_step.title.clone());
            match self.yes {
                true => Approval::Approved {
                    by: "the test's person".into(),
                },
                false => Approval::Rejected {
                    reason: "not to that address".into(),
                },
            }
        }
        fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
            Approval::Rejected {
                reason: "no changes expected".into(),
            }
        }
    }

    const READ: &str = "Read the notes";
    const SEND: &str = "Send the summary";

    /// The two loopback listeners: the declared port and another.
    struct Hosts {
        allowed: u16,
        other: u16,
        seen: (Arc<Mutex<usize>>, Arc<Mutex<usize>>),
    }

    fn hosts() -> Hosts {
        let (allowed, allowed_seen) = listener("received");
        let (other, other_seen) = listener("must never be read");
        Hosts {
            allowed,
            other,
            seen: (allowed_seen, other_seen),
        }
    }

    /// The plan: read the notes, then send to the declared port.
    fn plan(h: &Hosts, second: StepStatus) -> Vec<PlanStep> {
        let first = match second {
            StepStatus::Pending => StepStatus::InProgress,
            _ => StepStatus::Done,
        };
        vec![
            PlanStep {
                title: READ.into(),
                effects: StepEffects {
                    reads: vec!["projects/notes".into()],
                    ..StepEffects::default()
                },
                status: first,
            },
            PlanStep {
                title: SEND.into(),
                effects: StepEffects {
                    network: vec![format!("127.0.0.1:{}", h.allowed)],
                    ..StepEffects::default()
                },
                status: second,
            },
        ]
    }

    /// Reads the notes (step 1), then sends to a declared loopback port and
    /// tries another (step 2), in act mode, asking `gate` what the policy leaves to it.
    fn read_then_send(gate: &dyn Gate, h: &Hosts) -> Ran {
        let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
        if let Err(problem) = backend.check() {
            panic!("the shell sandbox cannot run here ({problem}); run scripts/setup, which installs bubblewrap");
        }
        let d = demo();
        let notes = d.ws.root().join("projects/notes");
        std::fs::create_dir_all(&notes).unwrap();
        std::fs::write(notes.join("salaries.txt"), "alice 100\n").unwrap();
        let (allowed, other) = (h.allowed, h.other);
        let server = ReplayServer::start(vec![
            turn(
                "Reading the notes.",
                &[
                    (
                        "toolu_E1Plan",
                        "update_plan",
                        json!({"steps": plan(h, StepStatus::Pending)}),
                    ),
                    ("toolu_E1Cat", "shell", json!({"command": "cat salaries.txt"})),
                ],
            ),
            turn(
                "Sending the summary.",
                &[
                    (
                        "toolu_E2Plan",
                        "update_plan",
                        json!({"steps": plan(h, StepStatus::InProgress)}),
                    ),
                    (
                        "toolu_E2Send",
                        "shell",
                        json!({"command": format!(
                            "curl -sS --max-time 20 http://127.0.0.1:{allowed}/; echo; \
                             curl -sS --max-time 20 -o /dev/null -w 'code:%{{http_code}}' http://127.0.0.1:{other}/")}),
                    ),
                ],
            ),
            turn("Sent.", &[]),
        ]);
        let provider = AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test"))
            .with_retry(fast_retries());
        let mut settings = AgentSettings::default();
        settings.egress.relay = Some(vec![RELAY.to_owned()]);
        let (mut agent, seen) = recording_agent(&d.ws, &provider, gate, settings);
        agent.shell = Some(&backend);
        let mut task = agent_task("Send the notes' summary", &[]);
        task.grants.push(Grant::read_only("projects/notes"));
        let report = agent.run(task).unwrap();
        let events = seen.lock().unwrap().clone();
        let requests = server
            .requests()
            .iter()
            .map(|r| r.body.clone())
            .collect::<Vec<_>>()
            .join("\n");
        let questions =
            d.ws.journal()
                .events(&report.run)
                .unwrap()
                .into_iter()
                .filter_map(|row| match row.event {
                    Event::AwaitingApproval { details, .. } => Some(details),
                    _ => None,
                })
                .collect();
        let reached = (*h.seen.0.lock().unwrap(), *h.seen.1.lock().unwrap());
        Ran {
            questions,
            events,
            status: report.status,
            reached,
            requests,
        }
    }

    struct Ran {
        /// The questions' details, as the journal holds them.
        questions: Vec<String>,
        events: Vec<(deskhand_types::RunId, Event)>,
        status: RunStatus,
        /// Connections the allowed and the other listener accepted.
        reached: (usize, usize),
        /// What the model was sent.
        requests: String,
    }

    #[test]
    fn after_reading_private_files_a_shell_step_contacting_a_new_host_is_asked_in_act_mode_then_filtered() {
        let person = Person::new(true);
        let ran = read_then_send(&person, &hosts());
        assert_eq!(person.asked(), [SEND], "only the sending step was asked, in act mode");
        assert_eq!(ran.questions.len(), 1, "{:?}", ran.questions);
        assert!(
            ran.questions[0].contains("127.0.0.1:") && ran.questions[0].contains("private files"),
            "{:?}",
            ran.questions
        );
        assert_eq!(ran.status, RunStatus::Succeeded);
        assert_eq!(ran.reached, (1, 0), "the declared port was reached, the other never");
        assert!(
            ran.requests.contains("received") && ran.requests.contains("code:403"),
            "{}",
            ran.requests
        );
        let events = ran.events;
        let blocked: Vec<_> = events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Blocked { step, reason } if reason.contains("the shell tried to reach") => Some(*step),
                _ => None,
            })
            .collect();
        assert_eq!(blocked, [deskhand_types::StepNo(2)], "{events:#?}");
    }

    #[test]
    fn a_resumed_sealed_run_remembers_the_hosts_it_contacted_before() {
        let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
        if let Err(problem) = backend.check() {
            panic!("the shell sandbox cannot run here ({problem}); run scripts/setup, which installs bubblewrap");
        }
        let h = hosts();
        let d = demo();
        let notes = d.ws.root().join("projects/notes");
        std::fs::create_dir_all(&notes).unwrap();
        std::fs::write(notes.join("salaries.txt"), "alice 100\n").unwrap();
        let send = json!({"command": format!("curl -sS --max-time 20 http://127.0.0.1:{}/", h.allowed)});
        let mut again = plan(&h, StepStatus::Done);
        again.push(PlanStep {
            title: "Send it again".into(),
            effects: again[1].effects.clone(),
            status: StepStatus::InProgress,
        });
        let server = ReplayServer::start(vec![
            turn(
                "Reading the notes.",
                &[
                    (
                        "toolu_R1Plan",
                        "update_plan",
                        json!({"steps": plan(&h, StepStatus::Pending)}),
                    ),
                    ("toolu_R1Cat", "shell", json!({"command": "cat salaries.txt"})),
                ],
            ),
            turn(
                "Sending the summary.",
                &[
                    (
                        "toolu_R2Plan",
                        "update_plan",
                        json!({"steps": plan(&h, StepStatus::InProgress)}),
                    ),
                    ("toolu_R2Send", "shell", send.clone()),
                ],
            ),
            turn(
                "Asking first.",
                &[("toolu_R3Ask", "ask_person", json!({"question": "Send it again?"}))],
            ),
            turn(
                "Sending again.",
                &[
                    (
                        "toolu_R4Plan",
                        "update_plan",
                        json!({"steps": again, "reason": "the person asked for it again"}),
                    ),
                    ("toolu_R4Send", "shell", send),
                ],
            ),
            turn("Sent twice.", &[]),
        ]);
        let provider = AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test"))
            .with_retry(fast_retries());
        let person = Person::new(true);
        let mut settings = AgentSettings::default();
        settings.egress.relay = Some(vec![RELAY.to_owned()]);
        let (mut agent, _) = recording_agent(&d.ws, &provider, &person, settings);
        agent.shell = Some(&backend);
        let mut task = agent_task("Send the notes' summary", &[]);
        task.grants.push(Grant::read_only("projects/notes"));
        let report = agent.run(task).unwrap();
        assert_eq!(report.status, RunStatus::NeedsInput);
        assert_eq!(person.asked(), [SEND]);

        // Resumed (sealed: step 1 read the notes), a step to the host the run already reached is not asked again.
        let report = agent.resume(&report.run, Some("yes")).unwrap();
        assert_eq!(report.status, RunStatus::Succeeded);
        assert_eq!(
            person.asked(),
            [SEND],
            "the resumed run remembered the host it had contacted"
        );
        assert_eq!((*h.seen.0.lock().unwrap(), *h.seen.1.lock().unwrap()), (2, 0));
    }

    #[test]
    fn a_person_who_refuses_the_sending_step_stops_it_before_anything_is_sent() {
        let person = Person::new(false);
        let ran = read_then_send(&person, &hosts());
        assert_eq!(person.asked(), [SEND]);
        assert_ne!(ran.status, RunStatus::Succeeded);
        assert_eq!(ran.reached, (0, 0));
    }

    #[test]
    fn an_unattended_run_stops_for_the_person_before_sending_what_it_read_to_a_new_host() {
        // The schedule's envelope approved both steps and the shell; it cannot approve sending private data.
        let h = hosts();
        let envelope = Envelope {
            grants: vec![Grant::read_only("projects/notes")],
            steps: plan(&h, StepStatus::Pending)
                .into_iter()
                .map(|s| envelope::EnvelopeStep {
                    hash: envelope::step_hash(&s),
                    title: s.title,
                    effects: s.effects,
                })
                .collect(),
            tools: vec!["shell".into()],
            ..Envelope::default()
        };
        let ran = read_then_send(&envelope::Unattended::new(envelope), &h);
        assert_eq!(ran.status, RunStatus::NeedsInput);
        assert_eq!(ran.reached, (0, 0), "nothing was sent");
        let held = ran.events.iter().find_map(|(_, e)| match e {
            Event::NeedsInput { question } => Some(question.clone()),
            _ => None,
        });
        assert!(
            held.as_deref()
                .is_some_and(|q| q.contains("private files") && q.contains("127.0.0.1:")),
            "{held:?}"
        );
    }
}

#[test]
fn a_wasm_guest_connects_only_to_its_steps_declared_host() {
    use deskhand_runtime::wasm::NetworkCheck;
    let fx = crate::common::Fixture::new();
    let (allowed, _) = listener("wasm allowed");
    let (other, other_seen) = listener("wasm other");
    let (r, queue) = egress_run(&RunId("wasm".into()));
    r.set_step(StepNo(1), &[format!("127.0.0.1:{allowed}")], false);
    let mut sandbox = fx.sandbox(&[]);
    let check = Arc::clone(&r);
    sandbox.network = Some(NetworkCheck(Arc::new(move |addr, connect| {
        check.decide_addr(&Exit::Wasm, addr, connect).is_ok()
    })));
    let hostile = crate::common::hostile();
    let connect = |port: u16| {
        hostile
            .call(
                &sandbox,
                "connect",
                &serde_json::json!({"path": format!("127.0.0.1:{port}")}).to_string(),
                None,
            )
            .result
            .map(|o| o.text)
    };
    assert_eq!(connect(allowed).ok().as_deref(), Some("connected"));
    assert!(connect(other).is_err());
    assert_eq!(*other_seen.lock().unwrap(), 0);
    assert!(
        queue
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Blocked { reason, .. }
            if reason.contains(&format!("127.0.0.1:{other}")) && reason.contains("a sandboxed tool"))),
        "{:?}",
        queue.lock().unwrap()
    );
    // Without a check (the default) the same guest reaches nothing.
    let (port, seen) = listener("no network");
    let plain = fx.sandbox(&[]);
    let refused = hostile
        .call(
            &plain,
            "connect",
            &serde_json::json!({"path": format!("127.0.0.1:{port}")}).to_string(),
            None,
        )
        .result;
    assert!(refused.is_err());
    assert_eq!(*seen.lock().unwrap(), 0);
}

#[test]
fn a_wasm_guest_never_listens_and_each_attempt_is_blocked() {
    use deskhand_runtime::wasm::NetworkCheck;
    let fx = crate::common::Fixture::new();
    let (allowed, _) = listener("wasm allowed");
    let (r, queue) = egress_run(&RunId("wasm-listen".into()));
    // Even a step that declares a host gets no listening socket.
    r.set_step(StepNo(1), &[format!("127.0.0.1:{allowed}")], false);
    let mut sandbox = fx.sandbox(&[]);
    let check = Arc::clone(&r);
    sandbox.network = Some(NetworkCheck(Arc::new(move |addr, connect| {
        check.decide_addr(&Exit::Wasm, addr, connect).is_ok()
    })));
    let hostile = crate::common::hostile();
    let listen = |addr: &str| {
        hostile
            .call(
                &sandbox,
                "listen",
                &serde_json::json!({ "path": addr }).to_string(),
                None,
            )
            .result
            .map(|o| o.text)
    };
    let listens = |queue: &Mutex<Vec<Event>>| {
        queue
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Blocked { step, reason } if reason.contains("tried to listen on") => {
                    Some((*step, reason.clone()))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // On the loopback, and on the declared port itself: refused at the bind.
    for addr in ["127.0.0.1:0".to_owned(), format!("127.0.0.1:{allowed}")] {
        let before = listens(&queue).len();
        let refused = listen(&addr);
        assert!(refused.is_err(), "{addr}: {refused:?}");
        let blocked = listens(&queue);
        assert_eq!(blocked.len(), before + 1, "{addr}: {blocked:?}");
        let (step, reason) = &blocked[before];
        assert_eq!(*step, StepNo(1));
        assert!(
            reason.contains("a sandboxed tool") && reason.contains("127.0.0.1:"),
            "{reason}"
        );
    }
    // On every interface: the bind a connect would make passes, the listen
    // that follows (now on a real port) is refused and Blocked all the same.
    let before = listens(&queue).len();
    let refused = listen("0.0.0.0:0");
    assert!(refused.is_err(), "{refused:?}");
    let blocked = listens(&queue);
    assert_eq!(blocked.len(), before + 1, "{blocked:?}");
    assert!(blocked[before].1.contains("0.0.0.0:"), "{blocked:?}");
    // Nothing was contacted, and no sockets at all without a check (the default).
    assert!(r.contacted().is_empty());
    let plain = fx.sandbox(&[]);
    let refused = hostile
        .call(
            &plain,
            "listen",
            &serde_json::json!({"path": "127.0.0.1:0"}).to_string(),
            None,
        )
        .result;
    assert!(refused.is_err());
}
