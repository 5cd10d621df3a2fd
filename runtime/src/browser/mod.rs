//! The browser, for pages no connector covers: headless Chromium inside the
//! same namespace sandbox as connectors and the shell, driven over a pipe.
//!
//! Why it is shaped this way:
//! - **No DevTools port.** Chromium is driven over `--remote-debugging-pipe`
//!   ([`cdp`]); a TCP debugging port would let anything on the machine, or a
//!   page, drive the browser.
//! - **No route but the egress policy.** The browser runs in
//!   [`crate::confine::Confined`] with its own network namespace: its only way
//!   out is the relay to the run's egress proxy, whose every CONNECT (or
//!   request) the one decision point ([`crate::egress::Run::decide`]) answers.
//!   Chromium is also told to send loopback through the proxy
//!   (`--proxy-bypass-list=<-loopback>`), so a page cannot reach even the
//!   namespace's own loopback behind the policy's back.
//! - **One browser per run** ([`session::Session`]): started on first use,
//!   reused, gone with the run; a fresh profile each time.
//! - **What a page says is data.** The reader ([`READ_PAGE`]) turns a page
//!   into plain text, headings, numbered links and forms; the agent frames
//!   it as untrusted like every tool output. Links are followed by number,
//!   so the model acts on what the page offered, not on a URL the page
//!   spelled out in its text.
//!
//! The model-facing tools (`browser_open`, `browser_read`, `browser_follow`,
//! `browser_submit_form`, `browser_screenshot`) are in `agent/browser_calls.rs`:
//! the step checks, the journal, approvals and the change pipeline live
//! there, the browser itself here.

pub mod cdp;
pub mod session;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::confine::Confined;
use crate::egress::Exit;

pub use session::{Filled, Session};

/// Where Chromium's binary is found on the systems deskhand knows (the
/// launcher scripts in `/usr/bin` are shell wrappers around these).
const CHROMIUM_CANDIDATES: &[&str] = &[
    "/usr/lib/chromium/chromium",
    "/usr/lib/chromium-browser/chromium-browser",
    "/usr/lib64/chromium-browser/chromium-browser",
    "/opt/google/chrome/chrome",
];

/// The read-only trees Chromium needs inside the sandbox beyond the
/// system folders every sandboxed process gets: fonts and their
/// configuration (pages are rendered), shared MIME data.
const CHROMIUM_TREES: &[&str] = &[
    "/etc/fonts",
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "/usr/share/fontconfig",
    "/usr/share/mime",
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
];

/// The most text of one page the reader returns.
pub const MAX_PAGE_TEXT: usize = 200_000;

/// This machine's Chromium, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    /// The Chromium binary itself (not a launcher script).
    pub chromium: PathBuf,
}

impl Browser {
    /// Looks for Chromium where distributions install it; `None` also
    /// where bubblewrap is missing (the browser runs only inside it).
    pub fn find() -> Option<Browser> {
        #[cfg(target_os = "linux")]
        let sandbox = deskhand_host_vm::bwrap::BWRAP_LOCATIONS
            .iter()
            .any(|p| Path::new(p).is_file());
        #[cfg(not(target_os = "linux"))]
        let sandbox = false;
        if !sandbox {
            return None;
        }
        CHROMIUM_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .map(|chromium| Browser { chromium })
    }

    /// The folders Chromium reads besides the system's: its own install
    /// folder and the fonts (those that exist here).
    pub fn read_only_trees(&self) -> Vec<PathBuf> {
        let own = self.chromium.parent().map(Path::to_path_buf);
        own.into_iter()
            .chain(CHROMIUM_TREES.iter().map(PathBuf::from))
            .filter(|p| p.exists())
            .collect()
    }
}

/// Starts `browser` in its sandbox ([`Confined`]): its install folder and
/// fonts read-only, a fresh profile in a private temporary folder, and
/// either no network at all or, with `network`, only the run's egress
/// (through `relay`, the program that carries connections out of the
/// namespace; see [`crate::confine`]).
pub fn start(
    browser: &Browser,
    network: Option<Arc<crate::egress::Run>>,
    relay: Option<Vec<String>>,
) -> Result<Session, BrowserError> {
    let dir = tempfile::Builder::new()
        .prefix("deskhand-browser-")
        .tempdir()
        .map_err(|e| BrowserError::Start(format!("no private folder for its profile: {e}")))?;
    let profile = dir.path().join("profile");
    std::fs::create_dir(&profile).map_err(|e| BrowserError::Start(format!("{}: {e}", profile.display())))?;
    let proxy = network.as_ref().map(|_| crate::confine::proxy_url());
    let args = session::chromium_args(&profile, proxy.as_deref());
    let (program, args) = session::sandboxed_argv(&browser.chromium, args);
    let confined = Confined {
        program,
        args,
        env: vec![("HOME".into(), dir.path().display().to_string())],
        read_only: browser.read_only_trees(),
        read_write: vec![dir.path().to_path_buf()],
        cwd: None,
        network: network.map(|run| (run, Exit::Browser)),
        relay,
    };
    let command = confined.command().map_err(|e| BrowserError::Start(e.to_string()))?;
    Session::start(command, dir)
}

/// What went wrong in the browser, as the model and the person read it.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("the browser could not be started: {0}")]
    Start(String),
    #[error("{url} could not be opened ({error})")]
    Navigation { url: String, error: String },
    #[error("{0}")]
    Page(String),
    #[error("the browser stopped answering: {0}")]
    Cdp(#[from] cdp::CdpError),
}

/// A page as the reader sees it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Page {
    pub url: String,
    pub title: String,
    #[serde(default)]
    pub headings: Vec<Heading>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub forms: Vec<Form>,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Heading {
    pub level: u8,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Link {
    pub text: String,
    pub href: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Form {
    pub method: String,
    pub action: String,
    #[serde(default)]
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub checked: Option<bool>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub options: Vec<String>,
}

impl Page {
    /// The page as text for the model: title and address, headings, the
    /// numbered links and forms (what `browser_follow` and
    /// `browser_submit_form` take), then the page's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Title: {}", one_line(&self.title));
        let _ = writeln!(out, "Address: {}", self.url);
        if !self.headings.is_empty() {
            out.push_str("\nHeadings:\n");
            for h in &self.headings {
                let _ = writeln!(
                    out,
                    "{} {}",
                    "#".repeat(usize::from(h.level.clamp(1, 6))),
                    one_line(&h.text)
                );
            }
        }
        if !self.links.is_empty() {
            out.push_str("\nLinks (browser_follow takes the number):\n");
            for (i, l) in self.links.iter().enumerate() {
                let _ = writeln!(out, "[{}] {} -> {}", i + 1, one_line(&l.text), l.href);
            }
        }
        if !self.forms.is_empty() {
            out.push_str("\nForms (browser_submit_form takes the number and field values):\n");
            for (i, f) in self.forms.iter().enumerate() {
                let _ = writeln!(out, "form {}: {} {}", i + 1, f.method.to_uppercase(), f.action);
                for field in &f.fields {
                    let mut line = format!("  - {} ({})", field.name, field.kind);
                    if !field.label.is_empty() {
                        let _ = write!(line, " \"{}\"", one_line(&field.label));
                    }
                    if field.required {
                        line.push_str(" required");
                    }
                    if let Some(checked) = field.checked {
                        let _ = write!(line, " value={:?} checked={checked}", field.value);
                    } else if !field.value.is_empty() {
                        let _ = write!(line, " = {:?}", field.value);
                    }
                    if !field.options.is_empty() {
                        let _ = write!(line, " options: {}", field.options.join(", "));
                    }
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
        out.push_str("\nText:\n");
        out.push_str(self.text.trim());
        out.push('\n');
        out
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The host and port a URL connects to (default ports by scheme); only
/// `http` and `https` are opened.
pub fn host_port(url: &str) -> Result<(String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a web address: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?} is not an http or https address; the browser opens web pages only"
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("{url:?} has no port"))?;
    Ok((host, port))
}

/// The page reader: run in the page, returns a JSON string of [`Page`].
/// Links are absolute http(s) addresses in document order; password values
/// are never read out.
pub const READ_PAGE: &str = r#"(() => {
  const clip = (s, n) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  const links = [];
  for (const a of document.querySelectorAll('a[href]')) {
    if (!/^https?:/i.test(a.href)) continue;
    links.push({text: clip(a.innerText || a.getAttribute('aria-label') || a.title, 200), href: a.href});
    if (links.length >= 500) break;
  }
  const headings = [...document.querySelectorAll('h1,h2,h3,h4')].slice(0, 200)
    .map(h => ({level: +h.tagName[1], text: clip(h.innerText, 300)}));
  const skip = ['submit', 'button', 'reset', 'image', 'file'];
  const forms = [...document.forms].slice(0, 50).map(f => ({
    method: (f.getAttribute('method') || 'get').toLowerCase(),
    action: f.action,
    fields: [...f.elements].filter(e => e.name && !skip.includes(e.type)).slice(0, 200).map(e => {
      const label = clip((e.labels && e.labels[0] && e.labels[0].innerText) || e.placeholder || e.getAttribute('aria-label') || '', 200);
      const d = {name: e.name, type: e.type || e.tagName.toLowerCase(), label, required: !!e.required};
      if (e.type === 'password') d.value = e.value ? '(set)' : '';
      else if (e.type === 'checkbox' || e.type === 'radio') { d.value = e.value; d.checked = e.checked; }
      else d.value = clip(e.value, 500);
      if (e.tagName === 'SELECT') d.options = [...e.options].slice(0, 100).map(o => o.value);
      return d;
    })
  }));
  const text = document.body ? document.body.innerText : '';
  return JSON.stringify({url: location.href, title: document.title, headings, links, forms, text: text.slice(0, 200000)});
})()"#;

/// Form `index` (from 0) filled with an object of name -> value. Run in
/// deskhand's isolated world (see `Session::world`), never the page's own:
/// the DOM is shared, the prototypes and globals are not. With `shown`
/// null, a detached copy is filled (the page's own scripts never see the
/// values) and a JSON string of what it would send is returned (`method`,
/// `action`, `fields` as [name, value] pairs) or `{error}`. With `shown`
/// (what the preview said and the person approved), the page's form is
/// filled and, only when it would send exactly `shown`, submitted as a
/// person pressing its button would; the same JSON is returned.
pub const FILL_FORM: &str = r#"((index, values, shown) => {
  const submit = shown !== null;
  const live = document.forms[index];
  if (!live) return JSON.stringify({error: 'the page has no form ' + (index + 1) + '; read the page to see its forms'});
  const f = submit ? live : live.cloneNode(true);
  for (const [name, value] of Object.entries(values)) {
    const els = [...f.elements].filter(e => e.name === name);
    if (!els.length) return JSON.stringify({error: 'form ' + (index + 1) + ' has no field named ' + JSON.stringify(name)});
    for (const e of els) {
      if (e.type === 'file') return JSON.stringify({error: 'the browser does not upload files (field ' + JSON.stringify(name) + ')'});
      if (e.type === 'checkbox') e.checked = value === true || value === 'on' || value === 'true' || value === e.value;
      else if (e.type === 'radio') e.checked = e.value === String(value);
      else e.value = String(value);
    }
  }
  if (!f.checkValidity()) {
    const bad = [...f.elements].filter(e => e.willValidate && !e.checkValidity()).map(e => e.name + ': ' + e.validationMessage);
    return JSON.stringify({error: 'form ' + (index + 1) + ' is not complete: ' + bad.join('; ')});
  }
  const fields = [];
  for (const [k, v] of new FormData(f)) fields.push([k, typeof v === 'string' ? v : '(file)']);
  const answer = JSON.stringify({method: (f.getAttribute('method') || 'get').toLowerCase(), action: f.action, fields});
  if (submit && answer !== JSON.stringify({method: shown.method, action: shown.action, fields: shown.fields}))
    return JSON.stringify({error: 'form ' + (index + 1) + ' changed after it was shown for approval (it would now send ' + answer + '); it was not submitted'});
  if (submit) { if (f.requestSubmit) f.requestSubmit(); else f.submit(); }
  return answer;
})"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_addresses_are_opened_and_their_ports_are_known() {
        assert_eq!(host_port("http://127.0.0.1:8080/a"), Ok(("127.0.0.1".into(), 8080)));
        assert_eq!(host_port("https://example.com/"), Ok(("example.com".into(), 443)));
        assert_eq!(host_port("http://example.com"), Ok(("example.com".into(), 80)));
        assert_eq!(host_port("http://[::1]:9/"), Ok(("::1".into(), 9)));
        assert!(host_port("file:///etc/passwd").is_err());
        assert!(host_port("javascript:alert(1)").is_err());
        assert!(host_port("chrome://settings").is_err());
        assert!(host_port("not a url").is_err());
    }

    #[test]
    fn a_page_reads_as_numbered_links_and_forms() {
        let page = Page {
            url: "http://127.0.0.1:1/".into(),
            title: "Shop\n  front".into(),
            headings: vec![Heading {
                level: 1,
                text: "Welcome".into(),
            }],
            links: vec![Link {
                text: "Next".into(),
                href: "http://127.0.0.1:1/next".into(),
            }],
            forms: vec![Form {
                method: "post".into(),
                action: "http://127.0.0.1:1/order".into(),
                fields: vec![Field {
                    name: "qty".into(),
                    kind: "number".into(),
                    label: "Quantity".into(),
                    value: "1".into(),
                    checked: None,
                    required: true,
                    options: Vec::new(),
                }],
            }],
            text: "Hello".into(),
        };
        let text = page.render();
        assert!(text.contains("Title: Shop front"), "{text}");
        assert!(text.contains("# Welcome"), "{text}");
        assert!(text.contains("[1] Next -> http://127.0.0.1:1/next"), "{text}");
        assert!(text.contains("form 1: POST http://127.0.0.1:1/order"), "{text}");
        assert!(text.contains("- qty (number) \"Quantity\" required = \"1\""), "{text}");
        assert!(text.ends_with("Text:\nHello\n"), "{text}");
    }

    #[test]
    fn chromium_sends_even_loopback_through_the_proxy_and_opens_no_port() {
        let args = session::chromium_args(Path::new("/p"), Some("http://127.0.0.1:3128"));
        assert!(args.contains(&"--proxy-server=http://127.0.0.1:3128".to_owned()));
        assert!(args.contains(&"--proxy-bypass-list=<-loopback>".to_owned()));
        assert!(args.contains(&"--remote-debugging-pipe".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--remote-debugging-port")));
        for quiet in [
            "--headless",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-gpu",
        ] {
            assert!(args.contains(&quiet.to_owned()), "{quiet} missing");
        }
        let offline = session::chromium_args(Path::new("/p"), None);
        assert!(offline.contains(&"--proxy-server=http://0.0.0.0:9".to_owned()));
    }
}
