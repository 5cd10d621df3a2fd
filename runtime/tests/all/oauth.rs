//! Signing in to a remote connector with OAuth: against the MCP reference
//! SDK's example server and its demo authorization server (npm, installed by
//! scripts/setup), whose `/authorize` sends the browser straight back with a
//! code; and against small hostile servers in the tests, for what a real
//! server would not do (name another resource, offer no S256, refuse a
//! renewal, point a refused token elsewhere).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskhand_runtime::agent::ApproveAll;
use deskhand_runtime::connectors::oauth::{self, SignIn, SignIns};
use deskhand_runtime::connectors::session::Binds;
use deskhand_types::{Event, RunStatus, StepNo};
use serde_json::json;

use crate::common::{agent_task, blocked, demo, recording, recording_agent, respond};
use crate::connectors::{
    Child, approve_all, blocked_in, connectors, egress_run, in_step, offered_names, remote, started_when, text, turn,
    with_connectors,
};
use crate::hostile::{Wire, provider};
use crate::replay::ReplayServer;

const CALL: Duration = Duration::from_secs(30);

fn sdk_example() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup, which installs the MCP servers the connector tests start",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SDK's example server with `--oauth`: the MCP server at
/// `http://localhost:PORT/mcp` (its URL, returned) and its authorization server beside it.
fn oauth_server() -> (Child, String, u16) {
    let (port, auth) = (free_port(), free_port());
    let mut node = std::process::Command::new("/usr/bin/node");
    node.arg(sdk_example())
        .arg("--oauth")
        .env("MCP_PORT", port.to_string())
        .env("MCP_AUTH_PORT", auth.to_string());
    let child = started_when(node, "MCP Streamable HTTP Server listening");
    (child, format!("http://localhost:{port}/mcp"), port)
}

/// The person's browser: opens `url` and follows the authorization server's redirects
/// (back to deskhand's loopback listener). Returns the last page's text.
fn browse(url: &str) -> String {
    let mut answer = ureq::get(url).call().unwrap();
    answer.body_mut().read_to_string().unwrap_or_default()
}

/// Signs in to `c` with the SDK's demo authorization server; meanwhile a local
/// caller holds a silent connection to the loopback listener, and a page that
/// is not the authorization server knocks with a state of its own and is turned away.
fn sign_in(config: &Path, c: &deskhand_runtime::connectors::Connector) -> SignIn {
    let pending = oauth::begin(c, None).unwrap();
    let authorize = pending.authorize_url.clone();
    let redirect = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // Another local process connects and says nothing: it must not hold the real answer up.
    let callback = url::Url::parse(&redirect).unwrap();
    let silent = std::net::TcpStream::connect(("127.0.0.1", callback.port().unwrap())).unwrap();
    let person = std::thread::spawn(move || {
        let forged = ureq::get(&format!("{redirect}?code=forged&state=not-yours"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        assert_eq!(
            forged.status().as_u16(),
            400,
            "a callback without the sign-in's state is refused"
        );
        browse(&authorize)
    });
    let done = pending.finish(config, Duration::from_secs(60)).unwrap();
    let page = person.join().unwrap();
    assert!(page.contains("Signed in"), "{page}");
    drop(silent);
    done
}

#[test]
fn a_person_signs_in_with_the_reference_sdks_oauth_server_and_the_token_goes_only_to_that_url() {
    let (_server, url, port) = oauth_server();
    let config = tempfile::tempdir().unwrap();
    let demo_c = remote("demo", &url, &[]);
    // Not signed in: the server asks, and the words say how.
    let err = connectors(config.path(), vec![demo_c.clone()])
        .probe(&demo_c, &Binds::default())
        .unwrap_err();
    assert!(
        err.contains("asks you to sign in") && err.contains("connectors login demo"),
        "{err}"
    );
    assert!(
        oauth::ask("demo", &url)
            .unwrap()
            .is_some_and(|c| c.resource_metadata.is_some())
    );

    let s = sign_in(config.path(), &demo_c);
    assert_eq!(s.resource, url);
    let file = config.path().join(oauth::FILE);
    let kept = std::fs::read_to_string(&file).unwrap();
    assert!(kept.contains(&s.access_token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the sign-ins are readable by the person only");
    }
    assert!(!format!("{s:?}").contains(&s.access_token));

    // The person's command connects with the token; a run's step that declares the host calls a tool.
    let (tools, _) = connectors(config.path(), vec![demo_c.clone()])
        .probe(&demo_c, &Binds::default())
        .unwrap();
    assert!(tools.iter().any(|t| t.name == "greet"), "{tools:?}");
    approve_all(config.path(), &demo_c);
    let c = connectors(config.path(), vec![demo_c.clone()]);
    let (_run, queue, binds) = in_step(&[format!("localhost:{port}")]);
    let (_, r) = c.call(&demo_c, binds, "greet", &json!({"name": "Ada"}), CALL);
    let (out, failed) = text(r);
    assert!(!failed && out.contains("Ada"), "{out}");
    assert!(blocked_in(&queue).is_empty());
    let journaled = format!("{:?}", queue.lock().unwrap());
    assert!(!journaled.contains(&s.access_token), "the token is never journaled");

    // The list's URL changed (to another server): the token is not sent there.
    let (other, heads) = recording(|_| respond(401, &[("WWW-Authenticate", "Bearer")], ""));
    let moved = remote("demo", &format!("http://127.0.0.1:{other}/mcp"), &[]);
    let err = connectors(config.path(), vec![moved.clone()])
        .probe(&moved, &Binds::default())
        .unwrap_err();
    assert!(err.contains("asks you to sign in"), "{err}");
    let seen = heads.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|h| !h.to_ascii_lowercase().contains("authorization")),
        "{seen:?}"
    );

    // Signed out: forgotten, and asked again.
    SignIns::update(config.path(), &demo_c.key(), None).unwrap();
    assert!(
        SignIns::load(Some(config.path()))
            .unwrap()
            .for_connector(&demo_c)
            .is_none()
    );
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&s.access_token));
}

#[test]
fn a_replayed_model_uses_a_signed_in_connector_and_never_sees_its_token() {
    let (_server, url, port) = oauth_server();
    let config = tempfile::tempdir().unwrap();
    let demo_c = remote("demo", &url, &[]);
    let s = sign_in(config.path(), &demo_c);
    approve_all(config.path(), &demo_c);
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        let d = demo();
        // The model also asks for the token file and to send the token somewhere: neither is possible.
        let plan = json!({"steps": [{"title": "Greet through the service", "status": "in_progress",
                                     "effects": {"network": [format!("localhost:{port}")]}}]});
        let server = ReplayServer::start(vec![
            turn(
                wire,
                "Greeting.",
                &[
                    ("t_plan", "update_plan", plan),
                    ("t_greet", "mcp__demo__greet", json!({"name": "Grace"})),
                    (
                        "t_read",
                        "fs__read_text",
                        json!({"path": config.path().join(oauth::FILE).to_string_lossy()}),
                    ),
                ],
            ),
            turn(wire, "Done.", &[]),
        ]);
        let provider = provider(wire, &server);
        let settings = with_connectors(config.path(), vec![demo_c.clone()]);
        let (agent, seen) = recording_agent(&d.ws, provider.as_ref(), &ApproveAll, settings);
        let report = agent.run(agent_task("Greet Grace through the service", &[])).unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{wire:?}: {}", report.summary);
        let requests = server.requests();
        assert!(offered_names(&requests[0].json()).contains(&"mcp__demo__greet".to_owned()));
        let second = requests[1].body.clone();
        assert!(second.contains("Grace"), "{wire:?}: {second}");
        for r in &requests {
            assert!(
                !r.body.contains(&s.access_token),
                "{wire:?}: the model never sees the token"
            );
        }
        let events = format!("{:?}", seen.lock().unwrap());
        assert!(
            !events.contains(&s.access_token),
            "{wire:?}: the token is never journaled"
        );
        assert!(
            blocked(&seen).iter().all(|r| !r.contains("the remote connector demo")),
            "{wire:?}"
        );
    }
}

// ---- Hostile servers ----

/// A protected resource and its authorization server in one, with
/// `metadata` changing what a careful client must refuse.
fn auth_server(metadata: impl Fn(u16) -> (serde_json::Value, serde_json::Value) + Send + 'static) -> u16 {
    let (port, _) = recording(move |r| {
        let me = r.port;
        let (prm, asm) = metadata(me);
        match r.path.as_str() {
            "/mcp" => respond(
                401,
                &[(
                    "WWW-Authenticate",
                    &format!(
                        "Bearer resource_metadata=\"http://127.0.0.1:{me}/.well-known/oauth-protected-resource/mcp\""
                    ),
                )],
                "",
            ),
            "/.well-known/oauth-protected-resource/mcp" => respond(200, &[], &prm.to_string()),
            "/.well-known/oauth-authorization-server" => respond(200, &[], &asm.to_string()),
            _ => respond(404, &[], ""),
        }
    });
    port
}

fn good_metadata(me: u16) -> (serde_json::Value, serde_json::Value) {
    let base = format!("http://127.0.0.1:{me}");
    (
        json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}),
        json!({"issuer": base, "authorization_endpoint": format!("{base}/authorize"),
               "token_endpoint": format!("{base}/token"), "code_challenge_methods_supported": ["S256"]}),
    )
}

#[test]
fn a_sign_in_is_refused_when_the_metadata_names_another_resource_or_issuer_or_offers_no_s256() {
    type Twist = fn(&mut serde_json::Value, &mut serde_json::Value);
    let cases: [(Twist, &str); 5] = [
        (
            |prm, _| prm["resource"] = json!("https://mail.example.com/mcp"),
            "not http://127.0.0.1",
        ),
        (
            |_, asm| asm["issuer"] = json!("https://other.example.com"),
            "names another issuer",
        ),
        (
            |_, asm| asm["code_challenge_methods_supported"] = json!(["plain"]),
            "S256",
        ),
        (
            |_, asm| asm["token_endpoint"] = json!("http://auth.example.com/token"),
            "plain http",
        ),
        (|_, _| {}, "register deskhand there"),
    ];
    for (twist, words) in cases {
        let port = auth_server(move |me| {
            let (mut prm, mut asm) = good_metadata(me);
            twist(&mut prm, &mut asm);
            (prm, asm)
        });
        let c = remote("mail", &format!("http://127.0.0.1:{port}/mcp"), &[]);
        let err = oauth::begin(&c, None).unwrap_err();
        assert!(err.contains(words), "{words}: {err}");
    }
    // A connector that passes its own Authorization header does not sign in.
    let c = remote(
        "mail",
        "https://mail.example.com/mcp",
        &[("Authorization", "Bearer ${T}")],
    );
    assert!(oauth::begin(&c, None).unwrap_err().contains("own Authorization header"));
}

/// A small MCP server that takes only the bearer token `fresh`, and the token
/// endpoint of its authorization server, which renews `r1` into `fresh` and
/// refuses any other refresh token with `invalid_grant`.
fn renewing_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    recording(|r| {
        if r.path == "/token" {
            return if r.body.contains("grant_type=refresh_token") && r.body.contains("refresh_token=r1") {
                respond(
                    200,
                    &[("Content-Type", "application/json")],
                    r#"{"access_token":"fresh","token_type":"Bearer","expires_in":3600}"#,
                )
            } else {
                respond(
                    400,
                    &[("Content-Type", "application/json")],
                    r#"{"error":"invalid_grant"}"#,
                )
            };
        }
        if r.method != "POST" {
            return respond(405, &[], "");
        }
        if !r
            .head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("authorization: bearer fresh"))
        {
            return respond(
                401,
                &[(
                    "WWW-Authenticate",
                    "Bearer resource_metadata=\"http://127.0.0.2:9/elsewhere\"",
                )],
                "",
            );
        }
        let m: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        let id = m.get("id").cloned();
        let result = match m["method"].as_str().unwrap_or_default() {
            "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                   "serverInfo": {"name": "renewing", "version": "1"}}),
            "tools/list" => json!({"tools": [{"name": "whoami", "description": "Says who is signed in.",
                                              "inputSchema": {"type": "object"}}]}),
            "tools/call" => json!({"content": [{"type": "text", "text": "signed in as ada"}]}),
            _ if id.is_none() => return respond(202, &[], ""),
            _ => {
                let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}});
                return respond(200, &[("Content-Type", "application/json")], &e.to_string());
            }
        };
        let body = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        respond(200, &[("Content-Type", "application/json")], &body)
    })
}

fn stale(port: u16, refresh: &str) -> SignIn {
    SignIn {
        resource: format!("http://127.0.0.1:{port}/mcp"),
        issuer: format!("http://127.0.0.1:{port}"),
        token_endpoint: format!("http://127.0.0.1:{port}/token"),
        client_id: "deskhand-test".into(),
        client_secret: None,
        access_token: "stale".into(),
        refresh_token: Some(refresh.into()),
        expires_at: None,
        scope: None,
        signed_in_at: 0,
    }
}

#[test]
fn a_refused_token_is_renewed_once_in_a_step_journaled_and_never_sent_where_the_server_points() {
    let (port, heads) = renewing_server();
    let config = tempfile::tempdir().unwrap();
    let svc = remote("svc", &format!("http://127.0.0.1:{port}/mcp"), &[]);
    let host = format!("127.0.0.1:{port}");

    // Outside a step, a run does not renew (nor connect).
    approve_all_with_fresh(config.path(), &svc, port);
    SignIns::update(config.path(), &svc.key(), Some(stale(port, "r1"))).unwrap();
    let (run, queue) = egress_run();
    let binds = Binds {
        network: Some(Arc::clone(&run)),
        ..Binds::default()
    };
    let c = connectors(config.path(), vec![svc.clone()]);
    let (_, r) = c.call(&svc, binds.clone(), "whoami", &json!({}), CALL);
    let (out, failed) = text(r);
    assert!(failed && out.contains("no step of the run was running"), "{out}");
    assert!(!blocked_in(&queue).is_empty());
    assert_eq!(
        SignIns::load(Some(config.path()))
            .unwrap()
            .for_connector(&svc)
            .map(|s| s.access_token.clone()),
        Some("stale".into())
    );

    // An expired token in a step that does not declare the server: nothing is renewed, nothing sent.
    let mut expired = stale(port, "r1");
    expired.expires_at = Some(1);
    SignIns::update(config.path(), &svc.key(), Some(expired)).unwrap();
    let c = connectors(config.path(), vec![svc.clone()]);
    let (run, _queue) = egress_run();
    run.set_step(StepNo(1), &["example.com:443".to_owned()], false);
    let before = heads.lock().unwrap().len();
    let binds = Binds {
        network: Some(Arc::clone(&run)),
        ..Binds::default()
    };
    let (_, r) = c.call(&svc, binds, "whoami", &json!({}), CALL);
    let (out, failed) = text(r);
    assert!(failed && out.contains("does not declare"), "{out}");
    assert_eq!(
        heads.lock().unwrap().len(),
        before,
        "nothing reached the server or its token endpoint"
    );

    // In a step that declares the server: the stale token is refused, renewed once, the call goes through.
    SignIns::update(config.path(), &svc.key(), Some(stale(port, "r1"))).unwrap();
    let c = connectors(config.path(), vec![svc.clone()]);
    let (_run, queue, binds) = in_step(std::slice::from_ref(&host));
    let (_, r) = c.call(&svc, binds, "whoami", &json!({}), CALL);
    let (out, failed) = text(r);
    assert!(!failed && out.contains("signed in as ada"), "{out}");
    let events = queue.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(e, Event::Notice { message } if message.contains("renewing the sign-in of the remote connector svc"))),
        "{events:?}"
    );
    assert!(!format!("{events:?}").contains("fresh") && !format!("{events:?}").contains("r1"));
    let kept = SignIns::load(Some(config.path())).unwrap();
    assert_eq!(kept.for_connector(&svc).map(|s| s.access_token.as_str()), Some("fresh"));

    // Renewals and sign-ins do not undo each other: a sign-in changed meanwhile is used as it is
    // (no request), and one the person signed out of stays out.
    let before = heads.lock().unwrap().len();
    let renewed = oauth::renew(Some(config.path()), &svc.key(), "svc", &stale(port, "r1")).unwrap();
    assert_eq!(renewed.access_token, "fresh");
    assert_eq!(heads.lock().unwrap().len(), before);
    SignIns::update(config.path(), &svc.key(), None).unwrap();
    let err = oauth::renew(Some(config.path()), &svc.key(), "svc", &stale(port, "r1")).unwrap_err();
    assert!(err.contains("was signed out"), "{err}");
    assert!(
        SignIns::load(Some(config.path()))
            .unwrap()
            .for_connector(&svc)
            .is_none()
    );

    // A refresh token the server refuses: forgotten, the person is asked to sign in again, and the
    // address the server's 401 points at is never contacted (no sign-in starts inside a run).
    SignIns::update(config.path(), &svc.key(), Some(stale(port, "revoked"))).unwrap();
    let c = connectors(config.path(), vec![svc.clone()]);
    let (run, _queue, binds) = in_step(std::slice::from_ref(&host));
    let (_, r) = c.call(&svc, binds, "whoami", &json!({}), CALL);
    let (out, failed) = text(r);
    assert!(
        failed && out.contains("invalid_grant") && out.contains("connectors login svc"),
        "{out}"
    );
    assert!(
        SignIns::load(Some(config.path()))
            .unwrap()
            .for_connector(&svc)
            .is_none()
    );
    assert_eq!(run.contacted(), [host]);
}

/// Pins the renewing server's tools (with a good token, as the person's `approve` would).
fn approve_all_with_fresh(config: &Path, svc: &deskhand_runtime::connectors::Connector, port: u16) {
    let mut s = stale(port, "r1");
    s.access_token = "fresh".into();
    SignIns::update(config, &svc.key(), Some(s)).unwrap();
    approve_all(config, svc);
}
