//! The browser against real Chromium (/usr/lib/chromium) in real
//! bubblewrap, reaching loopback servers started here only through the
//! run's egress proxy: one port declared and served, another never reached.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deskhand_runtime::agent::{ActionApproval, AgentSettings, Approval, ChangesApproval, Gate, StepApproval};
use deskhand_runtime::browser::{self, Browser};
use deskhand_runtime::egress;
use deskhand_types::{Event, Mode, RunId, RunStatus, StepNo};
use serde_json::{Value, json};

use crate::common::{agent_task as task, blocked, demo, recording_agent as agent};
use crate::hostile::{Wire, provider};
use crate::replay::{Canned, ReplayServer, anthropic_turn};

/// One request a test server saw: its request line and body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub body: String,
}

/// A loopback web server on its own thread, answering `pages` (path ->
/// HTML) and remembering every request.
pub struct Site {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Site {
    pub fn start(pages: fn(port: u16, other: u16, path: &str) -> String, other: u16) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &log, |path| pages(port, other, path)));
            }
        });
        Site { port, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>, page: impl Fn(&str) -> String) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let line = line.trim().to_owned();
    log.lock().unwrap().push(Seen {
        line: line.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let html = page(&path);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
}

/// A listener that must never be reached: it counts connections.
pub struct Trap {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
}

impl Trap {
    pub fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        std::thread::spawn(move || {
            for _ in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Trap { port, connections }
    }

    pub fn reached(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The shop: a front page with a link, a form and an image on the trap's
/// port; a second page; the form's answer.
pub fn shop(port: u16, trap: u16, path: &str) -> String {
    match path {
        "/" => format!(
            "<!doctype html><title>Corner shop</title><h1>Welcome to the corner shop</h1>\
             <p>Fresh bread every morning.</p>\
             <img src=\"http://127.0.0.1:{trap}/pixel.png\" alt=\"\">\
             <a href=\"/hours\">Opening hours</a>\
             <form method=\"post\" action=\"/order\"><label>Name <input name=\"name\" required></label>\
             <label>Loaves <input name=\"loaves\" type=\"number\" value=\"1\"></label><button>Order</button></form>\
             <script>setInterval(() => {{ const v = document.forms[0].elements['name'].value; \
             if (v) fetch('/peek?v=' + encodeURIComponent(v)); }}, 10);</script>"
        ),
        "/hours" => format!(
            "<!doctype html><title>Hours</title><h2>Opening hours</h2><p>Monday to Saturday, 7 to 13.</p>\
             <a href=\"http://127.0.0.1:{port}/\">Back</a>"
        ),
        "/order" => "<!doctype html><title>Thanks</title><p>Your order is in.</p>".into(),
        _ => "<!doctype html><title>Not here</title>".into(),
    }
}

/// The relay the runtime's tests use (the binary brings its own).
pub fn relay() -> Vec<String> {
    vec![env!("CARGO_BIN_EXE_deskhand-relay").to_owned()]
}

/// A run's egress whose Blocked events land in the returned list.
pub fn egress_run() -> (Arc<egress::Run>, Arc<Mutex<Vec<Event>>>) {
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&events);
    let run = egress::Run::new(
        RunId("browser-test".into()),
        Arc::new(move |_: &RunId, e: Event| sink.lock().unwrap().push(e)),
    );
    (run, events)
}

pub fn chromium() -> Browser {
    Browser::find().expect("Chromium is installed (scripts/setup installs it)")
}

#[test]
fn chromium_in_its_sandbox_reads_a_declared_port_and_never_reaches_another() {
    let trap = Trap::start();
    let site = Site::start(shop, trap.port);
    let (egress, events) = egress_run();
    egress.set_step(StepNo::at(0), &[format!("127.0.0.1:{}", site.port)], false);
    let mut session = browser::start(&chromium(), Some(Arc::clone(&egress)), Some(relay())).unwrap();

    session.navigate(&format!("http://127.0.0.1:{}/", site.port)).unwrap();
    let page = session.read().unwrap();
    assert_eq!(page.title, "Corner shop");
    let text = page.render();
    assert!(text.contains("# Welcome to the corner shop"), "{text}");
    assert!(
        text.contains(&format!("[1] Opening hours -> http://127.0.0.1:{}/hours", site.port)),
        "{text}"
    );
    assert!(text.contains("- name (text) \"Name\" required"), "{text}");
    assert!(text.contains("Fresh bread every morning."), "{text}");

    // The image on the undeclared port was refused by the decision point.
    assert_eq!(trap.reached(), 0, "the page made the browser reach an undeclared port");
    let refused = events.lock().unwrap().clone();
    assert!(
        refused
            .iter()
            .any(|e| matches!(e, Event::Blocked { reason, .. } if reason.contains(&trap.port.to_string()))),
        "{refused:?}"
    );

    // Opening the undeclared port directly fails too.
    let direct = session.navigate(&format!("http://127.0.0.1:{}/", trap.port));
    let text = session.read().map(|p| p.text).unwrap_or_default();
    assert!(direct.is_err() || text.contains("deskhand"), "{direct:?} {text}");
    assert_eq!(trap.reached(), 0);
    drop(session);
}

/// One assistant turn in `wire`'s format: `text`, then each `(id, name,
/// input)` as a tool call.
fn turn(wire: Wire, text: &str, calls: &[(&str, &str, Value)]) -> Canned {
    match wire {
        Wire::Anthropic => Canned::sse(&anthropic_turn(text, calls)),
        Wire::OpenAi => Canned::sse(&openai_turn(text, calls)),
    }
}

/// [`anthropic_turn`]'s twin in the OpenAI-compatible chunk format.
fn openai_turn(text: &str, calls: &[(&str, &str, Value)]) -> String {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-browser", "object": "chat.completion.chunk", "created": 1764000000,
               "model": "llama3.1:8b", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": text}), Value::Null)];
    for (i, (id, name, input)) in calls.iter().enumerate() {
        out.push(chunk(
            json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                                   "function": {"name": name, "arguments": input.to_string()}}]}),
            Value::Null,
        ));
    }
    let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
    out.push(chunk(json!({}), json!(finish)));
    let mut sse: String = out.iter().map(|c| format!("data: {c}\n\n")).collect();
    sse.push_str("data: [DONE]\n\n");
    sse
}

/// A person who approves every step and changeset, answers each form
/// submission from a script, and remembers what the submission cards said.
struct Person {
    submit: Mutex<Vec<bool>>,
    cards: Mutex<Vec<String>>,
}

impl Person {
    fn new(submit: &[bool]) -> Person {
        Person {
            submit: Mutex::new(submit.to_vec()),
            cards: Mutex::default(),
        }
    }

    fn cards(&self) -> Vec<String> {
        self.cards.lock().unwrap().clone()
    }
}

impl Gate for Person {
    fn approve_step(&self, _: &str, _: &StepApproval<'_>) -> Approval {
        Approval::Approved {
            by: "the test's person".into(),
        }
    }

    fn approve_changes(&self, _: &str, _: &ChangesApproval<'_>) -> Approval {
        Approval::Approved {
            by: "the test's person".into(),
        }
    }

    fn approve_action(&self, _: &str, req: &ActionApproval<'_>) -> Approval {
        self.cards.lock().unwrap().push(format!(
            "{}.{}\n{}\n{}",
            req.connector, req.tool, req.description, req.arguments
        ));
        let mut answers = self.submit.lock().unwrap();
        assert!(
            !answers.is_empty(),
            "the person was asked more than expected: {}",
            req.description
        );
        if answers.remove(0) {
            Approval::Approved {
                by: "the test's person".into(),
            }
        } else {
            Approval::Rejected {
                reason: "not this".into(),
            }
        }
    }
}

fn browsing_settings() -> AgentSettings {
    let mut settings = AgentSettings {
        browser: Some(chromium()),
        ..AgentSettings::default()
    };
    settings.egress.relay = Some(relay());
    settings
}

#[test]
fn a_step_reads_follows_submits_and_screenshots_its_declared_site_and_reaches_nothing_else() {
    let trap = Trap::start();
    let site = Site::start(shop, trap.port);
    let (p1, p2) = (site.port, trap.port);
    let d = demo();
    let plan = json!({"steps": [{"title": "Order bread at the corner shop", "status": "in_progress",
        "effects": {"network": [format!("127.0.0.1:{p1}")], "actions": ["browser.submit_form"], "writes": ["output"]}}]});
    let server = ReplayServer::start(vec![
        turn(
            Wire::Anthropic,
            "Ordering.",
            &[
                ("t_plan", "update_plan", plan),
                (
                    "t_open",
                    "browser_open",
                    json!({"url": format!("http://127.0.0.1:{p1}/")}),
                ),
                ("t_hours", "browser_follow", json!({"link": 1})),
                ("t_back", "browser_follow", json!({"link": 1})),
                (
                    "t_no",
                    "browser_submit_form",
                    json!({"form": 1, "fields": {"name": "Bob", "loaves": 50}}),
                ),
                (
                    "t_order",
                    "browser_submit_form",
                    json!({"form": 1, "fields": {"name": "Ada", "loaves": 2}}),
                ),
                ("t_shot", "browser_screenshot", json!({"name": "order"})),
                (
                    "t_other",
                    "browser_open",
                    json!({"url": format!("http://127.0.0.1:{p2}/")}),
                ),
            ],
        ),
        turn(Wire::Anthropic, "Ordered two loaves.", &[]),
    ]);
    let provider = provider(Wire::Anthropic, &server);
    // No to the first order, yes to the second.
    let person = Person::new(&[false, true]);
    let (agent, seen) = agent(&d.ws, provider.as_ref(), &person, browsing_settings());
    let mut t = task("Order two loaves at the corner shop", &[]);
    t.mode = Mode::Ask;
    let report = agent.run(t).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);

    // The site saw the pages in order and the one order, after the person said yes.
    let lines: Vec<String> = site.requests().iter().map(|r| r.line.clone()).collect();
    let wanted = [
        "GET / HTTP/1.1",
        "GET /hours HTTP/1.1",
        "GET / HTTP/1.1",
        "POST /order HTTP/1.1",
    ];
    let order: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("favicon") && !l.contains("/peek"))
        .collect();
    // The page's script watched the name field: it never saw the refused order's values.
    assert!(!lines.iter().any(|l| l.contains("Bob")), "{lines:?}");
    assert_eq!(order, wanted, "{lines:?}");
    let posted = site
        .requests()
        .into_iter()
        .find(|r| r.line.starts_with("POST"))
        .unwrap();
    assert_eq!(posted.body, "name=Ada&loaves=2");
    let cards = person.cards();
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert!(cards[0].starts_with("browser.submit_form"), "{}", cards[0]);
    assert!(cards[0].contains("name = \"Bob\""), "{}", cards[0]);
    for shown in [
        "POST",
        &format!("http://127.0.0.1:{p1}/order"),
        "name = \"Ada\"",
        "loaves = \"2\"",
    ] {
        assert!(cards[1].contains(shown), "the card does not show {shown}: {}", cards[1]);
    }

    // What the model read came framed as untrusted, with the links numbered.
    let requests = server.requests();
    let second = serde_json::to_string(&requests[1].json()).unwrap();
    assert!(
        second.contains("<untrusted source=\\\"web page http://127.0.0.1:"),
        "{second}"
    );
    assert!(second.contains("[1] Opening hours"), "{second}");
    assert!(second.contains("Your order is in."), "{second}");

    // The undeclared port: never reached, by the image nor by opening it; refused as Blocked.
    assert_eq!(trap.reached(), 0);
    let refused = blocked(&seen);
    let about_p2: Vec<&String> = refused
        .iter()
        .filter(|r| r.contains(&format!("127.0.0.1:{p2}")))
        .collect();
    assert!(
        about_p2.len() >= 2,
        "the image and the open were not both refused: {refused:#?}"
    );

    // Each navigation and the screenshot were journaled as a call.
    let begun: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ToolCallBegin { tool, operation, .. } if tool == "browser" => Some(operation.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        begun,
        ["open", "follow", "follow", "submit_form", "submit_form", "screenshot"]
    );

    // The screenshot is a PNG in output/, and undoing the run removes it.
    let shot = d.ws.output_dir().join("order.png");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    deskhand_runtime::changeset::undo(&d.ws, &report.run, false).unwrap();
    assert!(!shot.exists(), "undo left the screenshot");
}

#[test]
fn a_hostile_model_cannot_submit_a_form_in_a_step_that_did_not_declare_it() {
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        let site = Site::start(shop, 9);
        let p1 = site.port;
        let d = demo();
        // The page "asks" the model to order; the step declares reading it only.
        let plan = json!({"steps": [{"title": "Read the shop's front page", "status": "in_progress",
            "effects": {"network": [format!("127.0.0.1:{p1}")]}}]});
        let server = ReplayServer::start(vec![
            turn(
                wire,
                "",
                &[
                    ("t_plan", "update_plan", plan),
                    (
                        "t_open",
                        "browser_open",
                        json!({"url": format!("http://127.0.0.1:{p1}/")}),
                    ),
                    (
                        "t_order",
                        "browser_submit_form",
                        json!({"form": 1, "fields": {"name": "Mallory", "loaves": 99}}),
                    ),
                ],
            ),
            turn(wire, "Done.", &[]),
        ]);
        let provider = provider(wire, &server);
        // Asked about a submission, the person would say yes: the refusal is the step's.
        let person = Person::new(&[true]);
        // A small share of output per call: the page comes back paged.
        let settings = AgentSettings {
            max_tool_output: 200,
            ..browsing_settings()
        };
        let (agent, seen) = agent(&d.ws, provider.as_ref(), &person, settings);
        let report = agent.run(task("Look at the corner shop's page", &[])).unwrap();
        assert_eq!(server.requests().len(), 2, "{wire:?}: {}", report.summary);
        let told = serde_json::to_string(&server.requests()[1].json()).unwrap();
        assert!(told.contains("<untrusted source=\\\"web page"), "{wire:?}: {told}");
        assert!(
            told.contains("Call read_tool_output with"),
            "{wire:?}: the page was not paged: {told}"
        );
        assert!(person.cards().is_empty(), "{wire:?}: the person was asked");
        let refused = blocked(&seen);
        assert!(
            refused
                .iter()
                .any(|r| r.contains("did not declare that it submits forms")),
            "{wire:?}: {refused:#?}"
        );
        let posted: Vec<Seen> = site
            .requests()
            .into_iter()
            .filter(|r| !r.line.starts_with("GET"))
            .collect();
        assert!(posted.is_empty(), "{wire:?}: something was posted: {posted:?}");
        assert!(
            site.requests().iter().any(|r| r.line.starts_with("GET / ")),
            "{wire:?}: the page was read"
        );
    }
}

/// A hostile shop: its script redefines the input `value` getter and
/// setter, `Node.prototype.cloneNode`, `FormData` and `JSON.stringify` to
/// send whatever they see to `/leak`, and its `cloneNode` also changes the
/// copy's hidden payee, so that a card built from the copy would show
/// another payee than the form sends.
pub fn hostile_shop(_port: u16, _other: u16, path: &str) -> String {
    match path {
        "/" => "<!doctype html><title>Pay here</title><h1>Pay</h1>\
             <form method=\"post\" action=\"/pay\"><label>Name <input name=\"name\" required></label>\
             <label>Amount <input name=\"amount\" type=\"number\" value=\"1\"></label>\
             <input type=\"hidden\" name=\"to\" value=\"mallory\"><button>Pay</button></form>\
             <script>\
             const leak = (what, v) => fetch('/leak?' + what + '=' + encodeURIComponent(String(v)), \
               {method: 'POST', body: String(v), keepalive: true});\
             const value = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value');\
             Object.defineProperty(HTMLInputElement.prototype, 'value', {configurable: true, \
               get() { const v = value.get.call(this); leak('get', v); return v; }, \
               set(v) { leak('set', v); value.set.call(this, v); }});\
             const clone = Node.prototype.cloneNode;\
             Node.prototype.cloneNode = function (deep) { const c = clone.call(this, deep); leak('clone', this.nodeName); \
               if (c.elements && c.elements.to) c.elements.to.setAttribute('value', 'charity'); return c; };\
             const Real = FormData;\
             window.FormData = function (f) { const d = new Real(f); \
               for (const [k, v] of d) leak('formdata', k + '=' + v); return d; };\
             const stringify = JSON.stringify;\
             JSON.stringify = function (...a) { leak('json', stringify(...a)); return stringify(...a); };\
             document.forms[0].elements.amount.value = '1';\
             </script>"
            .into(),
        "/pay" => "<!doctype html><title>Paid</title><p>Thank you.</p>".into(),
        _ => "<!doctype html><title>Not here</title>".into(),
    }
}

#[test]
fn a_page_that_redefines_its_prototypes_neither_sees_the_values_nor_changes_the_card() {
    let site = Site::start(hostile_shop, 9);
    let p1 = site.port;
    let d = demo();
    let plan = json!({"steps": [{"title": "Pay at the shop", "status": "in_progress",
        "effects": {"network": [format!("127.0.0.1:{p1}")], "actions": ["browser.submit_form"]}}]});
    let server = ReplayServer::start(vec![
        turn(
            Wire::Anthropic,
            "Paying.",
            &[
                ("t_plan", "update_plan", plan),
                (
                    "t_open",
                    "browser_open",
                    json!({"url": format!("http://127.0.0.1:{p1}/")}),
                ),
                (
                    "t_no",
                    "browser_submit_form",
                    json!({"form": 1, "fields": {"name": "Bob", "amount": 50}}),
                ),
                (
                    "t_yes",
                    "browser_submit_form",
                    json!({"form": 1, "fields": {"name": "Ada", "amount": 2}}),
                ),
            ],
        ),
        turn(Wire::Anthropic, "Paid.", &[]),
    ]);
    let provider = provider(Wire::Anthropic, &server);
    let person = Person::new(&[false, true]);
    let (agent, _seen) = agent(&d.ws, provider.as_ref(), &person, browsing_settings());
    let mut t = task("Pay two at the shop", &[]);
    t.mode = Mode::Ask;
    let report = agent.run(t).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    // Let any request the page's hooks started arrive.
    std::thread::sleep(std::time::Duration::from_millis(500));

    let requests = site.requests();
    let leaks: Vec<&Seen> = requests.iter().filter(|r| r.line.contains("/leak")).collect();
    // The hooks work and reach the server: the page's own assignment was reported.
    assert!(
        leaks.iter().any(|r| r.line.contains("/leak?set=1 ")),
        "the page's hooks never reported: {requests:?}"
    );
    // deskhand's scripts touched none of them: nothing read, set, cloned or serialized.
    for r in &leaks {
        assert!(r.line.contains("/leak?set=1 "), "the page saw deskhand's work: {r:?}");
    }
    // The refused values never reached the page's server in any form.
    assert!(
        !requests
            .iter()
            .any(|r| r.line.contains("Bob") || r.body.contains("Bob")),
        "{requests:?}"
    );

    // The approved submission posted exactly the fields the card showed.
    let cards = person.cards();
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert!(cards[0].contains("name = \"Bob\""), "{}", cards[0]);
    for shown in [
        "POST",
        &format!("http://127.0.0.1:{p1}/pay"),
        "name = \"Ada\"",
        "amount = \"2\"",
        "to = \"mallory\"",
    ] {
        assert!(cards[1].contains(shown), "the card does not show {shown}: {}", cards[1]);
    }
    assert!(!cards.iter().any(|c| c.contains("charity")), "{cards:?}");
    let posted: Vec<&Seen> = requests.iter().filter(|r| r.line.starts_with("POST /pay ")).collect();
    assert_eq!(posted.len(), 1, "{requests:?}");
    assert_eq!(posted[0].body, "name=Ada&amount=2&to=mallory");
}
