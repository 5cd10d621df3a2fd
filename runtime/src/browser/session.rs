//! One headless Chromium for one run: started on the run's first browser
//! call, reused by the calls after it, shut down when the run ends (the
//! session is dropped with the run's state).
//!
//! Each session gets a fresh profile in a private temporary folder (no
//! cookies, history or logins of the person's own browser, and nothing left
//! behind), and one page. Chromium's DevTools endpoint is the pipe pair of
//! [`super::cdp`]: the sandbox's stdin and stdout are the pipes, and a
//! one-line shell inside the sandbox moves them to the fds 3 and 4 that
//! `--remote-debugging-pipe` uses (std's `Command` sets only fds 0-2, and
//! moving fds by hand needs `unsafe`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::cdp::{Cdp, CdpError};
use super::{BrowserError, Form, Page};

/// How long Chromium may take to start and answer.
const START: Duration = Duration::from_secs(30);
/// How long one command may take (a page's load is waited for separately).
const COMMAND: Duration = Duration::from_secs(30);
/// How long a page may take to load after its navigation was committed.
const LOAD: Duration = Duration::from_secs(30);
/// The viewport screenshots are taken at.
const WINDOW: (u32, u32) = (1280, 800);
/// The tallest full-page screenshot, in CSS pixels.
const MAX_SCREENSHOT_HEIGHT: f64 = 16_384.0;
/// The name of the isolated world deskhand's scripts run in.
const WORLD: &str = "deskhand";

/// Inside the sandbox: moves stdin and stdout (the DevTools pipes) to fds 3
/// and 4, points 0 and 1 elsewhere, and starts Chromium with the arguments.
const MOVE_PIPES: &str = "exec 3<&0 4>&1 0</dev/null 1>&2; exec \"$@\"";

/// The flags Chromium runs with. Every one of them is a limit or keeps the
/// browser quiet: no background requests (update checks, sync, metrics,
/// component downloads), no GPU, no first-run UI.
pub(super) fn chromium_args(profile: &Path, proxy: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--password-store=basic",
        "--remote-debugging-pipe",
    ]
    .map(String::from)
    .into();
    args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
    args.push(format!("--user-data-dir={}", profile.display()));
    // Chromium's own sandbox cannot start inside deskhand's: it needs a new
    // user namespace (which the sandbox forbids, `--disable-userns`) or its
    // setuid helper (which no-new-privileges disables). Tried on Debian's
    // Chromium 156 as root and as an unprivileged user: "No usable sandbox"
    // either way. The namespace sandbox around every Chromium process is the
    // boundary: no network but the egress relay, the system read-only, only
    // the session's own profile folder writable.
    args.push("--no-sandbox".into());
    // Every request through the relay to the egress proxy, loopback included
    // (Chromium otherwise sends loopback requests directly). Without egress
    // the namespace has no route at all, and the proxy is one that is never there.
    args.push(format!("--proxy-server={}", proxy.unwrap_or("http://0.0.0.0:9")));
    args.push("--proxy-bypass-list=<-loopback>".into());
    args.push("about:blank".into());
    args
}

/// The program and arguments to run inside the sandbox: `/bin/sh`, moving
/// the pipes into place, then Chromium.
pub(super) fn sandboxed_argv(chromium: &Path, chromium_args: Vec<String>) -> (PathBuf, Vec<String>) {
    let mut args = vec![
        "-c".to_owned(),
        MOVE_PIPES.to_owned(),
        "sh".to_owned(),
        chromium.display().to_string(),
    ];
    args.extend(chromium_args);
    (PathBuf::from("/bin/sh"), args)
}

/// A running browser and its one page.
#[derive(Debug)]
pub struct Session {
    child: Child,
    cdp: Cdp,
    /// The page's flattened DevTools session.
    page: String,
    /// Where Chromium's own messages go (read back when it fails to start).
    log: PathBuf,
    /// The address of the page last read.
    url: String,
    /// The links of the page last read, numbered from 1 as the model saw them.
    links: Vec<String>,
    /// The forms of the page last read, numbered from 1.
    forms: Vec<Form>,
    /// The isolated world deskhand's scripts run in: the main frame's
    /// loader (one per document) it was made for, and its execution context.
    world: Option<(String, i64)>,
    /// Holds the profile and the log; removed when the session ends.
    _dir: tempfile::TempDir,
}

impl Session {
    /// Starts `command` (Chromium in its sandbox, wrapped as `sandboxed_argv` says),
    /// whose stdin and stdout become the DevTools pipes, and opens a page.
    /// `dir` holds the profile and is removed with the session.
    pub fn start(mut command: Command, dir: tempfile::TempDir) -> Result<Session, BrowserError> {
        let log = dir.path().join("chromium.log");
        let stderr = std::fs::File::create(&log).map_err(|e| BrowserError::Start(format!("{}: {e}", log.display())))?;
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = command
            .spawn()
            .map_err(|e| BrowserError::Start(format!("the sandbox could not be started: {e}")))?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BrowserError::Start("its pipes were not set up".into()));
        };
        let cdp = Cdp::new(to, from);
        let mut session = Session {
            child,
            cdp,
            page: String::new(),
            log,
            url: String::new(),
            links: Vec::new(),
            forms: Vec::new(),
            world: None,
            _dir: dir,
        };
        session.open_page().map_err(|e| {
            let tail = session.log_tail();
            BrowserError::Start(format!("{e}{tail}"))
        })?;
        Ok(session)
    }

    fn open_page(&mut self) -> Result<(), CdpError> {
        self.cdp.call(None, "Browser.getVersion", json!({}), START)?;
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({"url": "about:blank"}), COMMAND)?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_owned();
        let attached = self.cdp.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
            COMMAND,
        )?;
        self.page = attached["sessionId"].as_str().unwrap_or_default().to_owned();
        self.page_call("Page.enable", json!({}))?;
        // A link to a file saves nothing, not even in the throwaway profile.
        self.cdp.call(
            None,
            "Browser.setDownloadBehavior",
            json!({"behavior": "deny"}),
            COMMAND,
        )?;
        Ok(())
    }

    fn page_call(&mut self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.cdp.call(Some(&self.page), method, params, COMMAND)
    }

    /// The last lines Chromium wrote, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("dbus") && !l.trim().is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; Chromium said:\n{tail}")
        }
    }

    /// Navigates the page to `url` and waits for it to load. Err when the
    /// navigation failed (the proxy refused it, the server did not answer).
    pub fn navigate(&mut self, url: &str) -> Result<(), BrowserError> {
        self.cdp.clear_events();
        let answer = self.page_call("Page.navigate", json!({"url": url}))?;
        if let Some(error) = answer
            .get("errorText")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            return Err(BrowserError::Navigation {
                url: url.into(),
                error: error.into(),
            });
        }
        self.wait_for_load();
        Ok(())
    }

    /// Waits for the page's load event (a page that never finishes loading
    /// is read as it is when the wait ends).
    fn wait_for_load(&mut self) {
        let session = self.page.clone();
        self.cdp.wait_event(LOAD, |e| {
            e["method"] == "Page.loadEventFired" && e["sessionId"].as_str() == Some(&session)
        });
    }

    /// Reads the current page: its text, headings, links and forms.
    /// Remembers the links and forms for [`Session::link`] and [`Session::form`].
    pub fn read(&mut self) -> Result<Page, BrowserError> {
        let value = self.evaluate(super::READ_PAGE)?;
        let page: Page = serde_json::from_str(value.as_str().unwrap_or_default())
            .map_err(|e| BrowserError::Page(format!("the page could not be read: {e}")))?;
        self.url = page.url.clone();
        self.links = page.links.iter().map(|l| l.href.clone()).collect();
        self.forms = page.forms.clone();
        Ok(page)
    }

    /// Whether Chromium still runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The address of the page last read.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address of link `n` (from 1) of the page last read.
    pub fn link(&self, n: usize) -> Option<&str> {
        n.checked_sub(1).and_then(|i| self.links.get(i)).map(String::as_str)
    }

    /// Form `n` (from 1) of the page last read.
    pub fn form(&self, n: usize) -> Option<&Form> {
        n.checked_sub(1).and_then(|i| self.forms.get(i))
    }

    /// What form `n` (from 1) would send filled with `values` (its method,
    /// action and every name=value). A detached copy is filled, in
    /// deskhand's isolated world: the page's scripts cannot read the values
    /// before they are approved, nor change what this reports.
    pub fn preview(&mut self, n: usize, values: &serde_json::Map<String, Value>) -> Result<Filled, BrowserError> {
        self.fill(n, values, None)
    }

    /// Fills form `n` (from 1) with `values` and, when it would send exactly
    /// `shown` (what [`Session::preview`] said and the person approved),
    /// submits it and waits for the page it leads to; returns what it sent.
    /// Err, with nothing sent, when the form would now send anything else.
    pub fn submit(
        &mut self,
        n: usize,
        values: &serde_json::Map<String, Value>,
        shown: &Filled,
    ) -> Result<Filled, BrowserError> {
        self.cdp.clear_events();
        let sent = self.fill(n, values, Some(shown))?;
        self.wait_for_load();
        Ok(sent)
    }

    fn fill(
        &mut self,
        n: usize,
        values: &serde_json::Map<String, Value>,
        shown: Option<&Filled>,
    ) -> Result<Filled, BrowserError> {
        let shown = serde_json::to_value(shown)
            .map_err(|e| BrowserError::Page(format!("the form could not be filled: {e}")))?;
        let script = format!(
            "({})({}, {}, {shown})",
            super::FILL_FORM,
            n.saturating_sub(1),
            Value::Object(values.clone())
        );
        let value = self.evaluate(&script)?;
        let answer: Value = serde_json::from_str(value.as_str().unwrap_or_default())
            .map_err(|e| BrowserError::Page(format!("the form could not be filled: {e}")))?;
        if let Some(error) = answer["error"].as_str() {
            return Err(BrowserError::Page(error.into()));
        }
        serde_json::from_value(answer).map_err(|e| BrowserError::Page(format!("the form could not be filled: {e}")))
    }

    /// A PNG of the page: the viewport, or the whole page (up to
    /// 16,384 CSS pixels tall).
    pub fn screenshot(&mut self, full_page: bool) -> Result<Vec<u8>, BrowserError> {
        let mut params = json!({"format": "png"});
        if full_page {
            let metrics = self.page_call("Page.getLayoutMetrics", json!({}))?;
            let size = &metrics["cssContentSize"];
            let width = size["width"].as_f64().unwrap_or(f64::from(WINDOW.0)).max(1.0);
            let height = size["height"]
                .as_f64()
                .unwrap_or(f64::from(WINDOW.1))
                .clamp(1.0, MAX_SCREENSHOT_HEIGHT);
            params["captureBeyondViewport"] = json!(true);
            params["clip"] = json!({"x": 0, "y": 0, "width": width, "height": height, "scale": 1});
        }
        let shot = self.page_call("Page.captureScreenshot", params)?;
        let data = shot["data"].as_str().unwrap_or_default();
        super::cdp::decode_base64(data).ok_or_else(|| BrowserError::Page("the screenshot was not valid base64".into()))
    }

    /// The execution context of deskhand's isolated world in the page's
    /// main frame, made once per document (a navigation, by deskhand or by
    /// the page, gives the frame a new loader and ends the old context).
    ///
    /// An isolated world shares the page's DOM but none of its JavaScript:
    /// its own `HTMLInputElement.prototype`, `Node.prototype.cloneNode`,
    /// `FormData` and `JSON`, which the page's scripts cannot redefine.
    fn world(&mut self) -> Result<i64, BrowserError> {
        let tree = self.page_call("Page.getFrameTree", json!({}))?;
        let frame = &tree["frameTree"]["frame"];
        let frame_id = frame["id"].as_str().unwrap_or_default().to_owned();
        let loader = format!("{frame_id}/{}", frame["loaderId"].as_str().unwrap_or_default());
        if let Some((made_for, context)) = &self.world
            && *made_for == loader
        {
            return Ok(*context);
        }
        let world = self.page_call(
            "Page.createIsolatedWorld",
            json!({"frameId": frame_id, "worldName": WORLD, "grantUniveralAccess": false}),
        )?;
        let context = world["executionContextId"]
            .as_i64()
            .ok_or_else(|| BrowserError::Page("the browser made no isolated world for the page".into()))?;
        self.world = Some((loader, context));
        Ok(context)
    }

    /// Runs `expression` in deskhand's isolated world of the page (never in
    /// the page's own JavaScript) and returns its value.
    fn evaluate(&mut self, expression: &str) -> Result<Value, BrowserError> {
        let context = self.world()?;
        let answer = self.page_call(
            "Runtime.evaluate",
            json!({"expression": expression, "contextId": context, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(exception) = answer.get("exceptionDetails") {
            let text = exception["exception"]["description"]
                .as_str()
                .or_else(|| exception["text"].as_str())
                .unwrap_or("an error");
            return Err(BrowserError::Page(format!("the page's script failed: {text}")));
        }
        Ok(answer["result"]["value"].clone())
    }
}

/// What a filled form would send.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Filled {
    pub method: String,
    pub action: String,
    /// Every name and value the form would send, in order.
    pub fields: Vec<(String, String)>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ask politely, then make sure: the sandbox dies with its first process.
        let _ = self.cdp.call(None, "Browser.close", json!({}), Duration::from_secs(2));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
