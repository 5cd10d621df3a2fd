//! OAuth sign-in for remote connectors, as the MCP authorization spec asks:
//! OAuth 2.1 with PKCE, found through the server's protected resource
//! metadata (RFC 9728) and its authorization server's metadata (RFC 8414, or
//! OpenID discovery), deskhand registered as a public client (RFC 7591) unless
//! the person gives a client id, and every token bound to the connector's URL
//! (`resource`, RFC 8707).
//!
//! Why it is shaped this way:
//! - The person signs in in their own browser; deskhand never sees a
//!   password. The answer comes back to a listener on this machine's loopback
//!   (`http://127.0.0.1:PORT/callback`, a port chosen per sign-in, RFC 8252)
//!   and is taken only with the random `state` deskhand sent; the code is
//!   exchanged with a PKCE verifier only deskhand holds (S256: an authorization
//!   server that does not offer it is refused, as the spec says).
//! - A token is sent only to the URL it was issued for: a sign-in is kept with
//!   the connector's URL, and a list whose URL changed no longer uses it. The
//!   protected resource metadata must name that same URL, and the
//!   authorization server's metadata its own issuer (a server cannot send the
//!   sign-in to another server's metadata).
//! - Tokens live in the person's config folder (`connector-sign-ins.json`,
//!   created readable by the person only), never in a workspace, the journal,
//!   the ledger, or anything a model reads. `Debug` never prints them.
//! - Every address the sign-in reaches is `https://` or plain `http://` to
//!   this machine's loopback, and redirects are not followed, like the
//!   connector's own requests ([`super::mcp::http`]).
//! - Renewal (a refresh token) happens when a token has expired or the
//!   server refuses it; in a run it is decided by the run's egress
//!   ([`crate::egress::Run::decide_renewal`]): only deskhand's fixed renewal
//!   request goes to the token endpoint the person signed in with.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Connector;
use super::config::Transport;
use super::mcp::http;

/// The file, in the person's config folder.
pub const FILE: &str = "connector-sign-ins.json";
/// How long a sign-in waits for the browser to come back, unless told.
pub const WAIT: Duration = Duration::from_secs(300);
/// Largest metadata or token answer read.
const MAX_ANSWER: u64 = 1 << 20;
/// A token this close to its end is renewed before it is used.
const EARLY: u64 = 60;

/// One connector's sign-in.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn {
    /// The connector's URL when the person signed in: the token is sent only there.
    pub resource: String,
    /// The authorization server (its issuer).
    pub issuer: String,
    pub token_endpoint: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds since 1970 when the access token ends, if the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub signed_in_at: u64,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("renewable", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SignIn {
    /// Whether the access token has ended (or is about to).
    pub fn expired(&self) -> bool {
        self.expires_at.is_some_and(|t| t <= now() + EARLY)
    }

    /// The token endpoint's host and port (for the run's egress).
    pub fn token_host(&self) -> Result<(String, u16), String> {
        let e = checked_url("the token endpoint", &self.token_endpoint)?;
        Ok((e.host, e.port))
    }

    /// Words for the person: signed in until when, or expired.
    pub fn describe(&self) -> String {
        let until = match self.expires_at {
            Some(t) if t <= now() => {
                if self.refresh_token.is_some() {
                    "the token has expired and is renewed at next use".to_owned()
                } else {
                    "the token has expired: sign in again".to_owned()
                }
            }
            Some(t) if t - now() < 60 => format!(
                "the token ends in less than a minute{}",
                if self.refresh_token.is_some() {
                    " and is renewed then"
                } else {
                    ""
                }
            ),
            Some(t) => format!(
                "the token ends in {}{}",
                humantime::format_duration(Duration::from_secs((t - now()) / 60 * 60)),
                if self.refresh_token.is_some() {
                    " and is renewed then"
                } else {
                    ""
                }
            ),
            None => "the token has no end date".to_owned(),
        };
        format!("signed in with {} ({until})", self.issuer)
    }
}

/// Every sign-in, by connector key ([`Connector::key`]).
#[derive(Debug, Default)]
pub struct SignIns {
    file: Option<PathBuf>,
    by_key: BTreeMap<String, SignIn>,
}

impl SignIns {
    /// The sign-ins in `config_dir` (none without a config folder or file).
    pub fn load(config_dir: Option<&Path>) -> Result<SignIns, String> {
        let Some(dir) = config_dir else {
            return Ok(SignIns::default());
        };
        let file = dir.join(FILE);
        let by_key = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is damaged ({e}); remove it and sign in to your remote connectors again (`deskhand \
                     connectors login NAME`)",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(SignIns {
            file: Some(file),
            by_key,
        })
    }

    /// The sign-in `c` uses: one kept for its key and its current URL.
    pub fn for_connector(&self, c: &Connector) -> Option<&SignIn> {
        let Transport::Remote { url, .. } = &c.transport else {
            return None;
        };
        self.by_key.get(&c.key()).filter(|s| &s.resource == url)
    }

    pub fn put(&mut self, key: &str, sign_in: SignIn) {
        self.by_key.insert(key.to_owned(), sign_in);
    }

    /// Forgets `key`'s sign-in; true if there was one.
    pub fn forget(&mut self, key: &str) -> bool {
        self.by_key.remove(key).is_some()
    }

    /// Writes the file (a new file is readable by the person only).
    pub fn save(&self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(&self.by_key).map_err(|e| e.to_string())?;
        super::config::write_atomic(file, &text)
    }

    /// Loads the file again, changes `key`'s entry and saves it, locked
    /// against every other writer ([`SignIns::locked`]).
    pub fn update(config_dir: &Path, key: &str, sign_in: Option<SignIn>) -> Result<(), String> {
        SignIns::locked(config_dir, |all| {
            match sign_in {
                Some(s) => all.put(key, s),
                None => {
                    all.forget(key);
                }
            }
            all.save()
        })
    }

    /// Runs `f` on the sign-ins read now, with the file locked against every
    /// other writer: runs renewing, the person signing in or out on the
    /// terminal or the page. (Without it a run's renewal could bring back a
    /// token the person just signed out of, or drop one they just got.)
    pub fn locked<T>(config_dir: &Path, f: impl FnOnce(&mut SignIns) -> Result<T, String>) -> Result<T, String> {
        std::fs::create_dir_all(config_dir).map_err(|e| format!("cannot create {}: {e}", config_dir.display()))?;
        let path = config_dir.join(LOCK);
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        let mut all = SignIns::load(Some(config_dir))?;
        f(&mut all)
    }
}

/// The lock file beside [`FILE`].
const LOCK: &str = "connector-sign-ins.lock";

/// What a server's `WWW-Authenticate: Bearer ...` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

/// Reads the Bearer challenge of a `WWW-Authenticate` value; None for another scheme.
pub fn challenge(header: &str) -> Option<Challenge> {
    let rest = header.trim_start();
    let (scheme, params) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = Challenge::default();
    let mut s = params.trim();
    while !s.is_empty() {
        let Some((key, after)) = s.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, rest) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        match key.as_str() {
            "resource_metadata" => out.resource_metadata = Some(value),
            "scope" => out.scope = Some(value),
            "error" => out.error = Some(value),
            _ => {}
        }
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

/// An address the sign-in may reach: `https://`, or plain http to loopback.
fn checked_url(what: &str, url: &str) -> Result<http::Endpoint, String> {
    http::endpoint(what, url).map_err(|e| format!("{e} (an address the sign-in would reach)"))
}

/// How close to this machine an address is: its loopback or link (cloud
/// metadata lives at link-local addresses), a private network, or elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Nearness {
    Elsewhere,
    Private,
    ThisMachine,
}

fn nearness(ip: std::net::IpAddr) -> Nearness {
    use std::net::IpAddr;
    if crate::egress::proxy::on_this_machine_or_link(ip) {
        return Nearness::ThisMachine;
    }
    let private = match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => return nearness(IpAddr::V4(v4)),
            None => (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    };
    if private {
        Nearness::Private
    } else {
        Nearness::Elsewhere
    }
}

/// The nearest address `host` is (an address itself, or what its name resolves to now).
fn nearest(host: &str, port: u16) -> Nearness {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return nearness(ip);
    }
    if host == "localhost" {
        return Nearness::ThisMachine;
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map(|addrs| addrs.map(|a| nearness(a.ip())).max().unwrap_or(Nearness::Elsewhere))
        .unwrap_or(Nearness::Elsewhere)
}

/// An address a server's metadata chose, checked against the connector's own
/// (`resource`): never nearer to this machine than the connector is, so a
/// server on the internet cannot turn a sign-in (or a run's renewal) into
/// requests to this machine's own services, its cloud metadata address or
/// the person's private network.
fn chosen_url(what: &str, url: &str, resource: &str) -> Result<http::Endpoint, String> {
    let e = checked_url(what, url)?;
    let own = checked_url("the connector", resource)?;
    let (theirs, ours) = (nearest(&e.host, e.port), nearest(&own.host, own.port));
    if theirs > ours {
        return Err(format!(
            "{what} {url} leads to {} while the connector itself is {}; deskhand does not follow a server's metadata \
             there",
            match theirs {
                Nearness::ThisMachine => "this machine (or its link, where cloud metadata lives)",
                _ => "a private network",
            },
            match ours {
                Nearness::Elsewhere => "on the internet",
                _ => "on a private network",
            }
        ));
    }
    Ok(e)
}

fn agent() -> ureq::Agent {
    http::agent(Duration::from_secs(30))
}

/// GETs a JSON document at `url` (checked against the connector's
/// `resource`); None when the server has none there (any answer but 2xx:
/// the next well-known place is tried).
fn get_json(what: &str, url: &str, resource: &str) -> Result<Option<serde_json::Value>, String> {
    chosen_url(what, url, resource)?;
    let mut answer = agent()
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("{what} at {url} could not be reached: {e}"))?;
    let status = answer.status().as_u16();
    if !(200..300).contains(&status) {
        return Ok(None);
    }
    let bytes = body_of(what, url, &mut answer)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{what} at {url} is not JSON ({e})"))
}

/// The body of `answer` from `what` at `url` (at most [`MAX_ANSWER`] bytes).
fn body_of(what: &str, url: &str, answer: &mut ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, String> {
    answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .map_err(|e| format!("{what} at {url} could not be read: {e}"))
}

/// POSTs a form to `url` (checked against the connector's `resource`) and
/// reads the JSON answer, successful or an OAuth error.
fn post_form(what: &str, url: &str, resource: &str, form: &[(&str, &str)]) -> Result<(u16, serde_json::Value), String> {
    chosen_url(what, url, resource)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut answer = agent()
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .send(body.as_bytes())
        .map_err(|e| format!("{what} at {url} could not be reached: {e}"))?;
    let status = answer.status().as_u16();
    let bytes = body_of(what, url, &mut answer)?;
    let value =
        serde_json::from_slice(&bytes).map_err(|_| format!("{what} at {url} answered HTTP {status} without JSON"))?;
    Ok((status, value))
}

/// An OAuth error answer, in words for the person signing in (the server's
/// description included).
fn oauth_error(v: &serde_json::Value) -> String {
    let code = error_code(v);
    match v.get("error_description").and_then(|e| e.as_str()) {
        Some(d) => format!("{code}: {}", d.chars().take(300).collect::<String>()),
        None => code,
    }
}

/// An OAuth error's code alone, when the words may reach a model (a run's
/// renewal): a code is one of a few plain words, a description is the server's text.
fn error_code(v: &serde_json::Value) -> String {
    v.get("error")
        .and_then(|e| e.as_str())
        .filter(|c| c.len() <= 40 && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or("an error")
        .to_owned()
}

/// The two URLs name the same resource (ignoring a trailing slash and the
/// case of scheme and host).
fn same_resource(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        url::Url::parse(s)
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_else(|_| s.trim_end_matches('/').to_owned())
    };
    norm(a) == norm(b)
}

/// `/.well-known/NAME` URLs to try for `base`, path-inserted first (RFC 8414 §3.1, RFC 9728 §3.1).
fn well_known(base: &str, names: &[&str], path_after: bool) -> Result<Vec<String>, String> {
    let u = url::Url::parse(base).map_err(|e| format!("{base:?} is not a URL ({e})"))?;
    let origin = u.origin().ascii_serialization();
    let path = u.path().trim_end_matches('/');
    let mut out = Vec::new();
    for name in names {
        if !path.is_empty() {
            out.push(format!("{origin}/.well-known/{name}{path}"));
            if path_after {
                out.push(format!("{origin}{path}/.well-known/{name}"));
            }
        }
    }
    for name in names {
        out.push(format!("{origin}/.well-known/{name}"));
    }
    Ok(out)
}

/// What discovery found: where to send the person and where to get the token.
#[derive(Debug, Clone)]
struct Server {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    registration_endpoint: Option<String>,
    scope: Option<String>,
    iss_in_answer: bool,
}

/// Asks the connector's server whether it needs a sign-in: an unauthenticated
/// `initialize`. Its Bearer challenge, or None when it answered without one.
pub fn ask(name: &str, url: &str) -> Result<Option<Challenge>, String> {
    http::endpoint(name, url)?;
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "deskhand", "version": env!("CARGO_PKG_VERSION")}}
    });
    let answer = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .send(body.to_string().as_bytes())
        .map_err(|e| format!("the remote connector {name} could not be reached at {url}: {e}"))?;
    if answer.status().as_u16() != 401 {
        return Ok(None);
    }
    let header = answer
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Bearer");
    Ok(Some(challenge(header).unwrap_or_default()))
}

fn discover(name: &str, url: &str, found: &Challenge) -> Result<Server, String> {
    // The protected resource metadata: where the server said, else the well-known places.
    let candidates = match &found.resource_metadata {
        Some(u) => vec![u.clone()],
        None => well_known(url, &["oauth-protected-resource"], false)?,
    };
    let mut prm = None;
    for c in &candidates {
        if let Some(v) = get_json("the connector's protected resource metadata", c, url)? {
            prm = Some(v);
            break;
        }
    }
    let prm = prm.ok_or_else(|| {
        format!(
            "the remote connector {name} asks for a sign-in but publishes no protected resource metadata (looked at \
             {}); sign in on the service's site and pass its token as a header instead: deskhand connectors add \
             {name} --url {url} --header 'Authorization: Bearer ${{TOKEN_VAR}}'",
            candidates.join(", ")
        )
    })?;
    let resource = prm.get("resource").and_then(|r| r.as_str()).unwrap_or_default();
    if !same_resource(resource, url) {
        return Err(format!(
            "the remote connector {name}'s metadata says it is {resource:?}, not {url}; deskhand signs in only to the \
             address in your list (check the URL you added)"
        ));
    }
    let issuer = prm
        .get("authorization_servers")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .and_then(|s| s.as_str())
        .ok_or_else(|| format!("the remote connector {name}'s metadata names no authorization server"))?
        .to_owned();
    chosen_url("the authorization server", &issuer, url)?;
    let mut meta = None;
    for c in well_known(&issuer, &["oauth-authorization-server", "openid-configuration"], true)? {
        if let Some(v) = get_json("the authorization server's metadata", &c, url)? {
            meta = Some(v);
            break;
        }
    }
    let meta = meta.ok_or_else(|| format!("the authorization server {issuer} publishes no metadata"))?;
    let field = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    // RFC 8414 §3.3: the metadata's issuer is the one it was looked up for, exactly.
    if field("issuer").as_deref() != Some(issuer.as_str()) {
        return Err(format!(
            "the authorization server {issuer}'s metadata names another issuer ({:?}); deskhand does not sign in there",
            field("issuer").unwrap_or_default()
        ));
    }
    let s256 = meta
        .get("code_challenge_methods_supported")
        .and_then(|m| m.as_array())
        .is_some_and(|m| m.iter().any(|x| x == "S256"));
    if !s256 {
        return Err(format!(
            "the authorization server {issuer} does not offer PKCE with S256, which a safe sign-in needs; deskhand \
             does not sign in there. If the service gives you a token, pass it as a header instead"
        ));
    }
    let authorization_endpoint = field("authorization_endpoint")
        .ok_or_else(|| format!("the authorization server {issuer} names no authorization endpoint"))?;
    let token_endpoint =
        field("token_endpoint").ok_or_else(|| format!("the authorization server {issuer} names no token endpoint"))?;
    // The authorization endpoint is opened in the person's browser, not by
    // deskhand: only its scheme is checked.
    checked_url("the authorization endpoint", &authorization_endpoint)?;
    chosen_url("the token endpoint", &token_endpoint, url)?;
    let registration_endpoint = field("registration_endpoint");
    if let Some(r) = &registration_endpoint {
        chosen_url("the registration endpoint", r, url)?;
    }
    let scope = found.scope.clone().or_else(|| {
        prm.get("scopes_supported")
            .and_then(|s| s.as_array())
            .map(|s| s.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
    });
    Ok(Server {
        issuer,
        authorization_endpoint,
        token_endpoint,
        registration_endpoint,
        scope,
        iss_in_answer: meta
            .get("authorization_response_iss_parameter_supported")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).unwrap_or_else(|e| panic!("the system's random source failed: {e}"));
    hex::encode(buf)
}

/// A sign-in waiting for the person's browser.
pub struct Pending {
    /// Where the person signs in (opened in their browser).
    pub authorize_url: String,
    /// The authorization server, for the words around the link.
    pub issuer: String,
    connector: String,
    key: String,
    url: String,
    server: Server,
    client_id: String,
    client_secret: Option<String>,
    redirect_uri: String,
    state: String,
    verifier: String,
    listener: TcpListener,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("connector", &self.connector)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Starts signing in to the remote connector `c`: finds its authorization
/// server, registers deskhand there (unless `client_id` is given) and opens a
/// loopback listener for the answer. The person then opens
/// [`Pending::authorize_url`], and [`Pending::finish`] waits for them.
pub fn begin(c: &Connector, client_id: Option<&str>) -> Result<Pending, String> {
    let Transport::Remote { url, headers } = &c.transport else {
        return Err(format!(
            "the connector {} runs on this machine; only remote connectors (--url) sign in",
            c.name
        ));
    };
    if headers.keys().any(|k| k.eq_ignore_ascii_case("authorization")) {
        return Err(format!(
            "the connector {} already passes its own Authorization header; remove that header (add it again \
             without --header) to sign in with OAuth instead",
            c.name
        ));
    }
    let found = ask(&c.name, url)?.ok_or_else(|| {
        format!(
            "the remote connector {} does not ask for a sign-in (it answered without HTTP 401); it is used as it is",
            c.name
        )
    })?;
    let server = discover(&c.name, url, &found)?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot listen on this machine's loopback for the sign-in's answer: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let (client_id, client_secret) = match client_id {
        Some(id) => (id.to_owned(), None),
        None => register(&c.name, &server, &redirect_uri)?,
    };
    let state = random_hex(16);
    let verifier = random_hex(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut authorize = url::Url::parse(&server.authorization_endpoint)
        .map_err(|e| format!("the authorization endpoint is not a URL ({e})"))?;
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", url);
        if let Some(s) = &server.scope {
            q.append_pair("scope", s);
        }
    }
    Ok(Pending {
        authorize_url: authorize.to_string(),
        issuer: server.issuer.clone(),
        connector: c.name.clone(),
        key: c.key(),
        url: url.clone(),
        server,
        client_id,
        client_secret,
        redirect_uri,
        state,
        verifier,
        listener,
        cancel: Arc::default(),
    })
}

/// Registers deskhand as a public client with the loopback `redirect_uri`.
fn register(name: &str, server: &Server, redirect_uri: &str) -> Result<(String, Option<String>), String> {
    let Some(endpoint) = &server.registration_endpoint else {
        return Err(format!(
            "the authorization server {} does not let applications register themselves; register deskhand there \
             as an application with the redirect address http://127.0.0.1/callback and give its client id: \
             deskhand connectors login {name} --client-id ID",
            server.issuer
        ));
    };
    let mut body = serde_json::json!({
        "client_name": "deskhand",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let Some(s) = &server.scope {
        body["scope"] = s.clone().into();
    }
    let mut answer = agent()
        .post(endpoint)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|e| format!("the registration at {endpoint} could not be reached: {e}"))?;
    let status = answer.status().as_u16();
    let bytes = body_of("the registration", endpoint, &mut answer)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(format!(
            "the authorization server {} refused deskhand's registration (HTTP {status}, {}); register deskhand \
             there yourself and give its client id: deskhand connectors login {name} --client-id ID",
            server.issuer,
            oauth_error(&v)
        ));
    }
    let id = v
        .get("client_id")
        .and_then(|c| c.as_str())
        .ok_or_else(|| format!("the registration at {endpoint} gave no client id"))?;
    let secret = v.get("client_secret").and_then(|c| c.as_str()).map(str::to_owned);
    Ok((id.to_owned(), secret))
}

/// The loopback request's query, if it is `GET /callback?...`.
fn callback_query(request: &str) -> Option<BTreeMap<String, String>> {
    let line = request.lines().next()?;
    let mut parts = line.split_whitespace();
    if parts.next()? != "GET" {
        return None;
    }
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        return None;
    }
    Some(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
}

/// Reads one request's head from a loopback caller: at most 16 KiB, within
/// two seconds in all; None for a caller that does not finish in time.
fn read_request(mut stream: &TcpStream) -> Option<String> {
    let _ = stream.set_nonblocking(false);
    let limit = Instant::now() + Duration::from_secs(2);
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0;
    while got < buf.len() {
        let left = limit.checked_duration_since(Instant::now())?;
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf[..got]).into_owned())
}

fn answer_browser(stream: &mut TcpStream, status: &str, words: &str) {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>deskhand</title><body style=\"font-family:sans-serif;margin:3em\">\
         <p>{}</p></body>",
        words.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: \
         no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Pending {
    /// A handle that stops [`Pending::finish`] waiting (another sign-in started).
    pub fn canceller(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Waits (up to `wait`) for the browser to come back with the code,
    /// exchanges it for a token and keeps the sign-in in `config_dir`.
    pub fn finish(self, config_dir: &Path, wait: Duration) -> Result<SignIn, String> {
        let code = self.wait_for_code(wait)?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.client_id.as_str()),
            ("code_verifier", self.verifier.as_str()),
            ("resource", self.url.as_str()),
        ];
        if let Some(s) = &self.client_secret {
            form.push(("client_secret", s.as_str()));
        }
        let (status, v) = post_form("the token endpoint", &self.server.token_endpoint, &self.url, &form)?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "the authorization server {} did not give a token (HTTP {status}, {})",
                self.server.issuer,
                oauth_error(&v)
            ));
        }
        let sign_in = token(&v, None).map(|t| SignIn {
            resource: self.url.clone(),
            issuer: self.server.issuer.clone(),
            token_endpoint: self.server.token_endpoint.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            access_token: t.access,
            refresh_token: t.refresh,
            expires_at: t.expires_at,
            scope: t.scope.or_else(|| self.server.scope.clone()),
            signed_in_at: now(),
        })?;
        // Signed out (or another sign-in started) while the code was exchanged: keep nothing.
        SignIns::locked(config_dir, |all| {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(format!(
                    "the sign-in to {} was stopped before it finished; nothing was kept",
                    self.connector
                ));
            }
            all.put(&self.key, sign_in.clone());
            all.save()
        })?;
        Ok(sign_in)
    }

    fn wait_for_code(&self, wait: Duration) -> Result<String, String> {
        self.listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + wait;
        // Each caller is read on its own thread with a short total limit, so
        // another local process that connects and says nothing (or says it
        // slowly) cannot keep the browser's answer waiting.
        let (tx, rx) = std::sync::mpsc::channel::<(TcpStream, String)>();
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(format!("the sign-in to {} was replaced by a newer one", self.connector));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the sign-in to {} was not finished within {} (the browser did not come back); start it again",
                    self.connector,
                    humantime::format_duration(wait)
                ));
            }
            let pause = match self.listener.accept() {
                Ok((stream, _)) => {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        if let Some(request) = read_request(&stream) {
                            let _ = tx.send((stream, request));
                        }
                    });
                    Duration::ZERO
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Duration::from_millis(50),
                Err(e) => return Err(format!("the sign-in's loopback listener failed: {e}")),
            };
            let Ok((mut stream, request)) = rx.recv_timeout(pause) else {
                continue;
            };
            let Some(q) = callback_query(&request) else {
                answer_browser(&mut stream, "404 Not Found", "Nothing here.");
                continue;
            };
            // Anything not carrying this sign-in's state is not its answer (another
            // page can reach a loopback port too): refused, and the wait goes on.
            if q.get("state") != Some(&self.state) {
                answer_browser(
                    &mut stream,
                    "400 Bad Request",
                    "This is not the answer to deskhand's sign-in (its state does not match).",
                );
                continue;
            }
            if let Some(iss) = q.get("iss") {
                if !same_resource(iss, &self.server.issuer) {
                    answer_browser(&mut stream, "400 Bad Request", "The answer came from another server.");
                    return Err(format!(
                        "the sign-in's answer names the issuer {iss:?}, not {}; nothing was kept",
                        self.server.issuer
                    ));
                }
            } else if self.server.iss_in_answer {
                answer_browser(
                    &mut stream,
                    "400 Bad Request",
                    "The answer does not say which server sent it.",
                );
                return Err(format!(
                    "the sign-in's answer does not name its issuer, which {} promised to; nothing was kept",
                    self.server.issuer
                ));
            }
            if let Some(e) = q.get("error") {
                let words = match q.get("error_description") {
                    Some(d) => format!("{e}: {}", d.chars().take(300).collect::<String>()),
                    None => e.clone(),
                };
                answer_browser(
                    &mut stream,
                    "200 OK",
                    "The sign-in was not completed. You can close this tab.",
                );
                return Err(format!("the sign-in to {} was not completed ({words})", self.connector));
            }
            let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
                answer_browser(&mut stream, "400 Bad Request", "The answer carries no code.");
                return Err(format!(
                    "the sign-in's answer for {} carried no code; start it again",
                    self.connector
                ));
            };
            answer_browser(
                &mut stream,
                "200 OK",
                &format!(
                    "Signed in: deskhand can use {} now. You can close this tab.",
                    self.connector
                ),
            );
            return Ok(code.clone());
        }
    }
}

/// A token answer's parts.
struct Token {
    access: String,
    refresh: Option<String>,
    expires_at: Option<u64>,
    scope: Option<String>,
}

fn token(v: &serde_json::Value, old_refresh: Option<&str>) -> Result<Token, String> {
    let access = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty() && !t.chars().any(char::is_control))
        .ok_or("the token answer has no usable access token")?;
    let kind = v.get("token_type").and_then(|t| t.as_str()).unwrap_or("bearer");
    if !kind.eq_ignore_ascii_case("bearer") {
        return Err(format!(
            "the token is of type {kind:?}; deskhand sends only bearer tokens"
        ));
    }
    Ok(Token {
        access: access.to_owned(),
        refresh: v
            .get("refresh_token")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .or_else(|| old_refresh.map(str::to_owned)),
        // At most ten years: a hostile answer cannot overflow the clock.
        expires_at: v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .map(|s| now().saturating_add(s.min(10 * 365 * 86_400))),
        scope: v.get("scope").and_then(|s| s.as_str()).map(str::to_owned),
    })
}

/// Renews `old` with its refresh token; the new sign-in is kept in
/// `config_dir` under `key`, all under the file's lock: a sign-in changed
/// meanwhile (another run renewed it, the person signed in again) is used as
/// it is, one signed out of stays out, and a refresh token the server
/// refuses (`invalid_grant`) is forgotten, so the person signs in again.
/// The words name the OAuth error code only: they may reach a model.
pub fn renew(config_dir: Option<&Path>, key: &str, connector: &str, old: &SignIn) -> Result<SignIn, String> {
    let again = format!("sign in again: deskhand connectors login {connector} (or Sign in on the Connectors page)");
    let Some(dir) = config_dir else {
        return refresh(connector, old, &again).map_err(|(_, words)| words);
    };
    SignIns::locked(dir, |all| {
        let current = match all.by_key.get(key) {
            Some(now) if now.resource == old.resource => now.clone(),
            _ => return Err(format!("the remote connector {connector} was signed out; {again}")),
        };
        if current != *old && !current.expired() {
            return Ok(current);
        }
        match refresh(connector, &current, &again) {
            Ok(new) => {
                all.put(key, new.clone());
                all.save()?;
                Ok(new)
            }
            Err((true, words)) => {
                all.forget(key);
                all.save()?;
                Err(words)
            }
            Err((false, words)) => Err(words),
        }
    })
}

/// One refresh-token request. Err: whether the server refused the refresh
/// token itself (`invalid_grant`), and words.
fn refresh(connector: &str, old: &SignIn, again: &str) -> Result<SignIn, (bool, String)> {
    let Some(refresh) = &old.refresh_token else {
        return Err((
            false,
            format!("the sign-in of the remote connector {connector} has expired; {again}"),
        ));
    };
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", old.client_id.as_str()),
        ("resource", old.resource.as_str()),
    ];
    if let Some(s) = &old.client_secret {
        form.push(("client_secret", s.as_str()));
    }
    let (status, v) =
        post_form("the token endpoint", &old.token_endpoint, &old.resource, &form).map_err(|e| (false, e))?;
    if !(200..300).contains(&status) {
        let code = error_code(&v);
        return Err((
            code == "invalid_grant",
            format!("the sign-in of the remote connector {connector} could not be renewed ({code}); {again}"),
        ));
    }
    let t = token(&v, Some(refresh)).map_err(|e| (false, e))?;
    Ok(SignIn {
        access_token: t.access,
        refresh_token: t.refresh,
        expires_at: t.expires_at,
        scope: t.scope.or_else(|| old.scope.clone()),
        ..old.clone()
    })
}

/// Opens `url` in the person's browser: `$BROWSER` if set (a command; `%s`
/// stands for the URL, else it comes last), else the desktop's opener. The
/// URL is one argument, never read by a shell. False when nothing could be started.
pub fn open_in_browser(url: &str) -> bool {
    let command: Vec<String> = match std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
        Some(b) => {
            let mut parts: Vec<String> = b.split_whitespace().map(str::to_owned).collect();
            if parts.iter().any(|p| p.contains("%s")) {
                for p in &mut parts {
                    *p = p.replace("%s", url);
                }
            } else {
                parts.push(url.to_owned());
            }
            parts
        }
        None if cfg!(target_os = "macos") => vec!["open".into(), url.into()],
        None => vec!["xdg-open".into(), url.into()],
    };
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            // Reaped when it ends (an opener returns at once; a browser may stay).
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_is_read_with_quoted_and_plain_values() {
        let c = challenge(
            r#"Bearer error="invalid_token", error_description="No \"token\"", resource_metadata="http://localhost:3/.well-known/oauth-protected-resource/mcp", scope=files:read"#,
        );
        assert_eq!(
            c,
            Some(Challenge {
                resource_metadata: Some("http://localhost:3/.well-known/oauth-protected-resource/mcp".into()),
                scope: Some("files:read".into()),
                error: Some("invalid_token".into()),
            })
        );
        assert_eq!(challenge("Basic realm=\"x\""), None);
        assert_eq!(challenge("Bearer"), Some(Challenge::default()));
    }

    #[test]
    fn well_known_places_follow_the_path_insertion_rule() {
        assert_eq!(
            well_known(
                "https://auth.example.com/tenant1",
                &["oauth-authorization-server", "openid-configuration"],
                true
            )
            .unwrap_or_default(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/tenant1/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            well_known("http://localhost:3000/mcp", &["oauth-protected-resource"], false).unwrap_or_default(),
            [
                "http://localhost:3000/.well-known/oauth-protected-resource/mcp",
                "http://localhost:3000/.well-known/oauth-protected-resource",
            ]
        );
    }

    #[test]
    fn only_this_sign_ins_callback_is_read() {
        let q = callback_query("GET /callback?code=abc&state=s1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(q.as_ref().and_then(|q| q.get("code")).map(String::as_str), Some("abc"));
        assert_eq!(callback_query("GET /favicon.ico HTTP/1.1\r\n\r\n"), None);
        assert_eq!(callback_query("POST /callback?code=abc HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn a_server_on_the_internet_cannot_send_the_sign_in_to_this_machine_or_a_private_network() {
        let internet = "https://93.184.216.34/mcp";
        for (url, words) in [
            ("http://127.0.0.1:9/token", "this machine"),
            ("https://169.254.169.254/latest", "this machine"),
            ("https://[::1]:8443/token", "this machine"),
            ("https://localhost/token", "this machine"),
            ("https://10.0.0.5/token", "a private network"),
            ("https://192.168.1.1/register", "a private network"),
        ] {
            let err = chosen_url("the token endpoint", url, internet)
                .map(|e| e.host)
                .unwrap_err();
            assert!(err.contains(words) && err.contains("on the internet"), "{url}: {err}");
        }
        assert!(chosen_url("the token endpoint", "https://93.184.216.35/token", internet).is_ok());
        // A connector on this machine (a local test server) may use an authorization server beside it.
        assert!(
            chosen_url(
                "the token endpoint",
                "http://127.0.0.1:9/token",
                "http://localhost:8/mcp"
            )
            .is_ok()
        );
        // One on a private network may not lead to this machine either.
        assert!(chosen_url("the token endpoint", "http://127.0.0.1:9/token", "https://10.0.0.2/mcp").is_err());
        assert!(chosen_url("the token endpoint", "https://10.0.0.3/token", "https://10.0.0.2/mcp").is_ok());
    }

    #[test]
    fn a_hostile_expiry_cannot_overflow_the_clock() {
        let t = token(&serde_json::json!({"access_token": "a", "expires_in": u64::MAX}), None);
        assert!(t.is_ok_and(|t| t.expires_at.is_some_and(|e| e > now())));
    }

    #[test]
    fn a_token_is_never_printed_and_only_bearer_tokens_are_taken() {
        let s = SignIn {
            resource: "https://mcp.example.com/mcp".into(),
            issuer: "https://auth.example.com".into(),
            token_endpoint: "https://auth.example.com/token".into(),
            client_id: "c".into(),
            client_secret: Some("very-secret".into()),
            access_token: "tok-123".into(),
            refresh_token: Some("ref-456".into()),
            expires_at: Some(0),
            scope: None,
            signed_in_at: 0,
        };
        let shown = format!("{s:?} {}", s.describe());
        assert!(
            !shown.contains("tok-123") && !shown.contains("ref-456") && !shown.contains("very-secret"),
            "{shown}"
        );
        assert!(s.expired());
        assert!(token(&serde_json::json!({"access_token": "a", "token_type": "mac"}), None).is_err());
        let t = token(
            &serde_json::json!({"access_token": "a", "token_type": "Bearer"}),
            Some("r"),
        );
        assert_eq!(t.ok().and_then(|t| t.refresh).as_deref(), Some("r"));
    }
}
