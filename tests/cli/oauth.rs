//! `deskhand connectors login/logout`: a person adds the MCP reference SDK's
//! example server with its demo OAuth server (npm, installed by
//! scripts/setup); deskhand sees it asks for a sign-in, opens the person's
//! browser (here `$BROWSER`, a script that follows the redirects as a browser
//! would), keeps the token out of the list, and uses it; signing out forgets
//! it; `--no-browser` prints the address instead.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{assert_ok, assert_user_error, command, deskhand, stdout};

/// The SDK's example server with `--oauth`, killed when dropped.
struct OAuthServer(std::process::Child, String);

impl OAuthServer {
    fn start() -> OAuthServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js");
        assert!(
            script.exists(),
            "{} is missing: run scripts/setup, which installs the MCP servers the connector tests start",
            script.display()
        );
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (mcp, auth) = (port(), port());
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .arg("--oauth")
            .env("MCP_PORT", mcp.to_string())
            .env("MCP_AUTH_PORT", auth.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("MCP Streamable HTTP Server listening") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        OAuthServer(child, format!("http://localhost:{mcp}/mcp"))
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stand-in for the person's browser: opens the address, follows redirects
/// back to deskhand's loopback listener, and keeps the last page in `page`.
fn browser(dir: &Path) -> (String, PathBuf) {
    let script = dir.join("browser.py");
    let page = dir.join("page.html");
    std::fs::write(
        &script,
        "import sys, urllib.request\n\
         body = urllib.request.urlopen(sys.argv[1], timeout=60).read().decode()\n\
         open(sys.argv[2], 'w').write(body)\n",
    )
    .unwrap();
    (format!("python3 {} %s {}", script.display(), page.display()), page)
}

#[test]
fn a_person_signs_in_to_a_remote_connector_that_asks_and_signs_out() {
    let server = OAuthServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let (browse, page) = browser(cwd);
    let with_browser = |args: &[&str]| command(args, cwd).env("BROWSER", &browse).output().unwrap();

    let o = with_browser(&["connectors", "add", "demo", "--url", &server.1, "--yes"]);
    assert_ok(&o);
    let text = stdout(&o);
    for words in [
        "demo asks you to sign in.",
        "Your browser was opened at this address",
        "Signed in to demo: signed in with http://localhost:",
        "readable only by you",
        "Connected to demo (protocol",
        "greet",
        "Approved.",
    ] {
        assert!(text.contains(words), "{words:?} not in:\n{text}");
    }
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("Signed in: deskhand can use demo now")
    );
    let config = cwd.join(".test-config/deskhand");
    let sign_ins = std::fs::read_to_string(config.join("connector-sign-ins.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&sign_ins).unwrap();
    let token = kept["user/demo"]["accessToken"].as_str().unwrap().to_owned();
    let list = std::fs::read_to_string(config.join("connectors.json")).unwrap();
    assert!(!list.contains(&token) && list.contains(&server.1), "{list}");
    assert!(!text.contains(&token), "the token is never printed");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.join("connector-sign-ins.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let o = deskhand(&["connectors", "show", "demo"], cwd);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("signed in with http://localhost:"),
        "{}",
        stdout(&o)
    );
    let o = deskhand(&["connectors", "list"], cwd);
    assert!(stdout(&o).contains("(signed in)"), "{}", stdout(&o));
    let o = deskhand(&["connectors", "test", "demo"], cwd);
    assert_ok(&o);
    assert!(stdout(&o).contains("(approved)"), "{}", stdout(&o));

    let o = deskhand(&["connectors", "logout", "demo"], cwd);
    assert_ok(&o);
    assert!(stdout(&o).contains("Signed out of demo"), "{}", stdout(&o));
    assert!(
        !std::fs::read_to_string(config.join("connector-sign-ins.json"))
            .unwrap()
            .contains(&token)
    );
    assert_user_error(&deskhand(&["connectors", "test", "demo"], cwd), "connectors login demo");

    // Without a browser: the address is printed, and the person opens it themselves.
    let mut login = command(&["connectors", "login", "demo", "--no-browser"], cwd)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(login.stdout.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.trim().starts_with("http://localhost:").then(|| l.trim().to_owned()))
        .expect("the sign-in address is printed");
    let script = cwd.join("browser.py");
    let opened = std::process::Command::new("python3")
        .arg(&script)
        .arg(&address)
        .arg(&page)
        .status()
        .unwrap();
    assert!(opened.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(login.wait().unwrap().success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("Signed in to demo")), "{rest:?}");
    let o = deskhand(&["connectors", "test", "demo"], cwd);
    assert_ok(&o);

    // Removing the connector forgets its sign-in too.
    assert_ok(&deskhand(&["connectors", "remove", "demo"], cwd));
    let left = std::fs::read_to_string(config.join("connector-sign-ins.json")).unwrap();
    assert!(!left.contains("user/demo"), "{left}");
}

#[test]
fn signing_in_to_a_connector_that_cannot_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    assert_user_error(
        &deskhand(&["connectors", "login", "nothing"], cwd),
        "no connector named nothing",
    );
    let node = std::process::Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .unwrap();
    let node = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let list = cwd.join(".test-config/deskhand/connectors.json");
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    std::fs::write(
        &list,
        serde_json::json!({"mcpServers": {"local": {"command": node, "args": ["server.js"]}}}).to_string(),
    )
    .unwrap();
    assert_user_error(
        &deskhand(&["connectors", "login", "local"], cwd),
        "only remote connectors (--url) sign in",
    );
}
