//! The Connectors page: the person's and the workspace's connectors (MCP
//! servers, in the `mcpServers` lists of `deskhand_runtime::connectors`),
//! their approved tools, and what `deskhand connectors` does on the terminal:
//! test (start a server in its sandbox and list its tools), approve tools
//! (pin their definitions), enable or disable a tool, revoke an "always
//! allow", remove, add from pasted `mcpServers` JSON, and sign in to (or
//! out of) a remote connector that asks for it.
//!
//! Nothing here is decided on trust of the page: adding saves exactly the
//! text the person was shown (its hash comes back with it), and approving a
//! tool pins it only if the server, started again, still gives the definition
//! the person saw (its hash). Everything a server wrote (names, descriptions,
//! schemas) goes to the page as data, which shows it as text only.
//!
//! Signing in happens in the person's own browser ([`oauth`]): the page gets
//! the authorization server's address and opens it in a new tab, and a
//! thread of this server waits for that tab to come back to deskhand's
//! loopback listener. The page never sees a token: the list says only
//! whether a connector is signed in, to which server and until when, or why
//! the last sign-in failed (kept here, in memory, per connector).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use deskhand_runtime::connectors::allow::Allowed;
use deskhand_runtime::connectors::config::{self, List};
use deskhand_runtime::connectors::oauth::{self, SignIns};
use deskhand_runtime::connectors::pins::Pins;
use deskhand_runtime::connectors::session::Binds;
use deskhand_runtime::connectors::{self, Access, Connector, ConnectorTool, Connectors, Scope, Transport};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::blocking;
use super::error::{ApiError, ApiResult};
use crate::App;

/// What pasted JSON is called in the messages about it.
const PASTED: &str = "the pasted JSON";

/// Which list a connector is in, as the page names it ("user" or "workspace").
fn scope_of(app: &App, which: &str) -> ApiResult<(Scope, PathBuf)> {
    match which {
        "workspace" => Ok((
            Scope::Workspace(app.root.clone()),
            config::workspace_file(&app.workspace.state_dir()),
        )),
        "user" => {
            let dir = app.options.config_dir.as_deref().ok_or_else(|| {
                ApiError::bad_request(
                    "there is no config folder for your own connectors: start deskhand with XDG_CONFIG_HOME or HOME \
                     set, or add them to this workspace instead",
                )
            })?;
            Ok((Scope::User, config::user_file(dir)))
        }
        other => Err(ApiError::bad_request(format!(
            "{other:?} is not a connector list: choose \"user\" (yours) or \"workspace\" (this workspace's)"
        ))),
    }
}

fn scope_name(scope: &Scope) -> &'static str {
    match scope {
        Scope::User => "user",
        Scope::Workspace(_) => "workspace",
    }
}

fn load(app: &App, which: &str) -> ApiResult<List> {
    let (scope, file) = scope_of(app, which)?;
    List::load(&file, scope).map_err(ApiError::unprocessable)
}

/// The listed connector `name` in list `which`.
fn find(app: &App, which: &str, name: &str) -> ApiResult<(List, Connector)> {
    let list = load(app, which)?;
    let found = list.get(name).map_err(ApiError::unprocessable)?;
    let connector = found.ok_or_else(|| {
        ApiError::not_found(format!(
            "no connector named {name:?} in {}; reload the page",
            list.scope
        ))
    })?;
    Ok((list, connector))
}

/// What a connector runs, for the person: the command and its arguments,
/// or the URL and the headers sent with every request, and the names of the
/// variables it gets (never their values). `env` holds the names the list
/// gives values itself; `pass_env` and a header's `variables` are taken from
/// deskhand's own environment (a key there may be sent where the list says).
fn transport_json(c: &Connector) -> Value {
    match &c.transport {
        Transport::Stdio { command, args, env } => json!({
            "kind": "local",
            "command": command,
            "args": args,
            "env": env.keys().collect::<Vec<_>>(),
            "pass_env": c.settings.pass_env,
        }),
        Transport::Remote { url, headers } => json!({
            "kind": "remote",
            "url": url,
            "headers": headers
                .iter()
                .map(|(name, value)| json!({
                    "name": name,
                    "value": masked(value),
                    "variables": connectors::mcp::http::variables(value),
                }))
                .collect::<Vec<_>>(),
            "env": Vec::<String>::new(),
            "pass_env": c.settings.pass_env,
        }),
    }
}

/// Every variable of deskhand's own environment `c` is given: its `passEnv`
/// and the `${VAR}`s of its headers, by name.
fn from_env(c: &Connector) -> Vec<String> {
    let mut names = c.settings.pass_env.clone();
    if let Transport::Remote { headers, .. } = &c.transport {
        names.extend(headers.values().flat_map(|v| connectors::mcp::http::variables(v)));
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// A header's value as the page shows it: each `${VAR}` as written, an
/// authorization scheme word (`Bearer`) as is, every other literal masked.
fn masked(value: &str) -> String {
    const SCHEMES: [&str; 4] = ["Bearer", "Basic", "Token", "Bot"];
    let mask = |literal: &str| -> String {
        literal
            .split_inclusive(' ')
            .map(|word| {
                let w = word.trim_end();
                if w.is_empty() || SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(w)) {
                    word.to_owned()
                } else {
                    format!("\u{2022}\u{2022}\u{2022}\u{2022}{}", &word[w.len()..])
                }
            })
            .collect()
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else { break };
        out.push_str(&mask(&rest[..start]));
        out.push_str(&rest[start..start + end + 1]);
        rest = &rest[start + end + 1..];
    }
    out.push_str(&mask(rest));
    out
}

fn access(a: Access) -> &'static str {
    match a {
        Access::ReadOnly => "read-only",
        Access::ReadWrite => "read-write",
    }
}

/// One tool as the page shows it.
fn tool_json(c: &Connector, t: &ConnectorTool, allowed: &Allowed) -> Value {
    json!({
        "name": t.name,
        "title": t.title,
        "description": t.description,
        "annotations": t.annotations.describe(),
        "writes": connectors::is_write(c, t),
        "destructive": connectors::is_destructive(c, t),
        "enabled": !c.settings.disabled_tools.contains(&t.name),
        "offered_as": connectors::model_name(&c.name, &t.name),
        "always_allowed": allowed.is_allowed(&c.key(), &t.name),
    })
}

/// Whether `c` signs in with OAuth on this page: a remote connector that
/// does not pass its own Authorization header.
fn signs_in(c: &Connector) -> bool {
    matches!(&c.transport, Transport::Remote { headers, .. }
        if !headers.keys().any(|k| k.eq_ignore_ascii_case("authorization")))
}

/// What the card says about signing in (never the token): null for a local
/// connector or one passing its own Authorization header.
fn sign_in_json(c: &Connector, sign_ins: &SignIns, underway: &SignInsUnderway) -> Value {
    if !signs_in(c) {
        return Value::Null;
    }
    let waiting_at = underway.waiting_at(&c.key());
    match sign_ins.for_connector(c) {
        Some(s) => json!({
            "signed_in": true,
            "words": s.describe(),
            "issuer": s.issuer,
            "again": s.expired() && s.refresh_token.is_none(),
            "waiting_at": waiting_at,
        }),
        None => json!({
            "signed_in": false,
            "words": "not signed in",
            "issuer": null,
            "again": false,
            "waiting_at": waiting_at,
        }),
    }
}

fn connector_json(
    c: &Connector,
    pins: &Pins,
    allowed: &Allowed,
    sign_ins: &SignIns,
    underway: &SignInsUnderway,
    shadowed: bool,
) -> Value {
    let key = c.key();
    let tools: Vec<Value> = pins.tools(&key).iter().map(|t| tool_json(c, t, allowed)).collect();
    json!({
        "sign_in": sign_in_json(c, sign_ins, underway),
        "sign_in_error": if signs_in(c) {
            // A failure older than the sign-in kept now (made since, on the terminal say) is over.
            underway.failure(&key, sign_ins.for_connector(c).map(|s| s.signed_in_at))
        } else {
            None
        },
        "name": c.name,
        "scope": scope_name(&c.scope),
        "listed": c.scope.to_string(),
        "transport": transport_json(c),
        "access": access(c.settings.access),
        "private": c.settings.private,
        "from_env": from_env(c),
        "approved": pins.approved_any(&key),
        "definition_changed": pins.connector_changed(c),
        "tools": tools,
        "always_allowed": allowed.tools(&key),
        "shadowed": shadowed,
    })
}

/// Every connector of both lists, with its approved tools. A list that cannot
/// be read is named with its problem; the other is still shown.
pub(super) async fn list(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let config_dir = app.options.config_dir.as_deref();
        let mut problems = Vec::new();
        let pins = Pins::load(config_dir).unwrap_or_else(|e| {
            problems.push(e);
            Pins::default()
        });
        let allowed = Allowed::load(config_dir).unwrap_or_else(|e| {
            problems.push(e);
            Allowed::default()
        });
        let sign_ins = SignIns::load(config_dir).unwrap_or_else(|e| {
            problems.push(e);
            SignIns::default()
        });
        let mut lists = Vec::new();
        for which in ["workspace", "user"] {
            if which == "user" && config_dir.is_none() {
                continue;
            }
            let Ok((scope, file)) = scope_of(&app, which) else {
                continue;
            };
            match List::load(&file, scope).and_then(|l| l.connectors()) {
                Ok(cs) => lists.push((which, cs)),
                Err(e) => problems.push(e),
            }
        }
        let workspace_names: Vec<String> = lists
            .iter()
            .filter(|(w, _)| *w == "workspace")
            .flat_map(|(_, cs)| cs.iter().map(|c| c.name.clone()))
            .collect();
        let all: Vec<Value> = lists
            .iter()
            .flat_map(|(which, cs)| {
                cs.iter().map(|c| {
                    let shadowed = *which == "user" && workspace_names.contains(&c.name);
                    connector_json(c, &pins, &allowed, &sign_ins, &app.sign_ins_underway, shadowed)
                })
            })
            .collect();
        Json(json!({
            "connectors": all,
            "problems": problems,
            "user_list": config_dir.is_some(),
        }))
    })
    .await
}

/// The hash the page sends back with what it was shown.
fn seen_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[derive(Deserialize)]
pub(super) struct Paste {
    text: String,
    scope: String,
    access: String,
}

fn access_of(a: &str) -> ApiResult<Access> {
    match a {
        "read-only" => Ok(Access::ReadOnly),
        "read-write" => Ok(Access::ReadWrite),
        other => Err(ApiError::bad_request(format!(
            "{other:?} is not an access: choose \"read-only\" or \"read-write\""
        ))),
    }
}

/// The pasted connectors, checked against the list they would join: every
/// entry well formed, no name already listed there.
fn pasted(app: &App, p: &Paste) -> ApiResult<(List, Vec<Connector>)> {
    let access = access_of(&p.access)?;
    let list = load(app, &p.scope)?;
    if p.text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "paste an mcpServers JSON first: {\"mcpServers\": {\"name\": {\"command\": \"npx\", \"args\": [...]}}}",
        ));
    }
    let mut found = config::import(&p.text, Path::new(PASTED), list.scope.clone()).map_err(ApiError::bad_request)?;
    if found.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{PASTED} lists no connectors under \"mcpServers\"; add at least one"
        )));
    }
    let taken: Vec<&str> = found
        .iter()
        .filter(|c| list.get(&c.name).ok().flatten().is_some())
        .map(|c| c.name.as_str())
        .collect();
    if !taken.is_empty() {
        return Err(ApiError::conflict(format!(
            "{} already has a connector named {}; remove it first, or give the pasted one another name",
            list.scope,
            taken.join(", ")
        )));
    }
    for c in &mut found {
        c.settings.access = access;
    }
    Ok((list, found))
}

/// What pasted JSON would add, before anything is saved.
pub(super) async fn preview(State(app): State<Arc<App>>, Json(p): Json<Paste>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (list, found) = pasted(&app, &p)?;
        let entries: Vec<Value> = found
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "transport": transport_json(c),
                    "access": access(c.settings.access),
                    "private": c.settings.private,
                    "from_env": from_env(c),
                })
            })
            .collect();
        Ok(Json(json!({
            "listed": list.scope.to_string(),
            "file": list.file.display().to_string(),
            "connectors": entries,
            "hash": seen_hash(&p.text),
        })))
    })
    .await?
}

#[derive(Deserialize)]
pub(super) struct AddReq {
    #[serde(flatten)]
    paste: Paste,
    /// The hash of the text the preview showed.
    hash: String,
}

/// Adds the pasted connectors as the preview showed them, all or none. Their
/// tools are not approved: the page starts each and the person picks.
pub(super) async fn add(State(app): State<Arc<App>>, Json(req): Json<AddReq>) -> ApiResult<Json<Value>> {
    blocking(move || {
        if seen_hash(&req.paste.text) != req.hash {
            return Err(ApiError::conflict(
                "the JSON changed since it was shown; show what it would run again, then add",
            ));
        }
        let (mut list, found) = pasted(&app, &req.paste)?;
        for c in &found {
            list.put(c).map_err(ApiError::bad_request)?;
        }
        list.save().map_err(ApiError::internal)?;
        let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
        Ok(Json(json!({"added": names, "scope": req.paste.scope})))
    })
    .await?
}

/// Starts `connector` in its sandbox for the person, as `deskhand
/// connectors test` does: no network, only the folders its arguments name,
/// read-only.
fn probe(app: &App, c: &Connector) -> Result<(Vec<ConnectorTool>, String), String> {
    let env = |k: &str| std::env::var(k).ok();
    let run = Connectors::new(app.options.config_dir.as_deref(), vec![c.clone()], &env, None)?;
    run.probe(c, &Binds::for_probe(c))
}

/// "Test": starts the server and compares each live tool with what the
/// person approved. A tool not as approved comes with the diff of its
/// definition and the hash to approve it by.
pub(super) async fn test(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (_, c) = find(&app, &which, &name)?;
        let config_dir = app.options.config_dir.as_deref();
        let pins = Pins::load(config_dir).map_err(ApiError::internal)?;
        let allowed = Allowed::load(config_dir).map_err(ApiError::internal)?;
        let (live, protocol) = match probe(&app, &c) {
            Ok(found) => found,
            Err(e) => {
                // A server that asks for a sign-in is not broken: the page offers Sign in.
                // (Signed in but refused: revoked or expired at the service.)
                let needs_sign_in =
                    signs_in(&c) && (e.contains("asks you to sign in") || e.contains("refused deskhand's sign-in"));
                return Ok(Json(json!({
                    "started": false,
                    "needs_sign_in": needs_sign_in,
                    "problem": if needs_sign_in {
                        format!("{name} asks you to sign in before deskhand can list its tools.")
                    } else {
                        format!("{name} did not start: {e}")
                    },
                })));
            }
        };
        let key = c.key();
        let tools: Vec<Value> = live
            .iter()
            .map(|t| {
                let change = pins.check(&c, t);
                let mut v = tool_json(&c, t, &allowed);
                v["hash"] = connectors::pins::hash(t).into();
                v["pinned"] = change.is_none().into();
                v["change"] = change.as_ref().map(|ch| ch.as_str()).into();
                v["diff"] = change
                    .as_ref()
                    .filter(|_| pins.approved_any(&key))
                    .map(|_| pins.diff(&key, t))
                    .into();
                v["input_schema"] = t.input_schema.clone();
                v
            })
            .collect();
        let gone: Vec<String> = pins
            .tools(&key)
            .into_iter()
            .filter(|p| !live.iter().any(|t| t.name == p.name))
            .map(|p| p.name)
            .collect();
        Ok(Json(json!({
            "started": true,
            "definition_changed": pins.connector_changed(&c),
            "protocol": protocol,
            "tools": tools,
            "gone": gone,
        })))
    })
    .await?
}

#[derive(Deserialize)]
pub(super) struct ToolSeen {
    name: String,
    hash: String,
}

#[derive(Deserialize)]
pub(super) struct ApproveReq {
    tools: Vec<ToolSeen>,
}

/// Pins the tools the person approved, as they saw them: the server is
/// started again and each tool must still have the definition shown (its
/// hash); otherwise nothing is pinned.
pub(super) async fn approve(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
    Json(req): Json<ApproveReq>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        if req.tools.is_empty() {
            return Err(ApiError::bad_request("choose at least one tool to approve"));
        }
        let (_, c) = find(&app, &which, &name)?;
        let config_dir = app.options.config_dir.as_deref().ok_or_else(|| {
            ApiError::bad_request(
                "there is no config folder to keep approved tools in: start deskhand with XDG_CONFIG_HOME or HOME set",
            )
        })?;
        let (live, _) = probe(&app, &c).map_err(|e| ApiError::unprocessable(format!("{name} did not start: {e}")))?;
        let mut chosen = Vec::new();
        for seen in &req.tools {
            let tool = live.iter().find(|t| t.name == seen.name).ok_or_else(|| {
                ApiError::conflict(format!(
                    "{name} no longer has a tool named {:?}; test it again and approve what it has now",
                    seen.name
                ))
            })?;
            if connectors::pins::hash(tool) != seen.hash {
                return Err(ApiError::conflict(format!(
                    "the tool {:?} of {name} changed since this page showed it; nothing was approved: test it again \
                     and read what it says now",
                    seen.name
                )));
            }
            chosen.push(tool);
        }
        let mut pins = Pins::load(Some(config_dir)).map_err(ApiError::internal)?;
        for tool in &chosen {
            pins.pin(&c, tool);
        }
        pins.save().map_err(ApiError::internal)?;
        let names: Vec<&str> = chosen.iter().map(|t| t.name.as_str()).collect();
        Ok(Json(json!({"approved": names})))
    })
    .await?
}

#[derive(Deserialize)]
pub(super) struct EnableReq {
    tool: String,
    enabled: bool,
}

/// Offers a tool to the model again, or stops offering it.
pub(super) async fn enable(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
    Json(req): Json<EnableReq>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (mut list, mut c) = find(&app, &which, &name)?;
        if req.enabled {
            c.settings.disabled_tools.remove(&req.tool);
        } else {
            c.settings.disabled_tools.insert(req.tool.clone());
        }
        list.put(&c).map_err(ApiError::bad_request)?;
        list.save().map_err(ApiError::internal)?;
        Ok(Json(json!({"tool": req.tool, "enabled": req.enabled})))
    })
    .await?
}

#[derive(Deserialize)]
pub(super) struct ToolReq {
    tool: String,
}

/// Revokes "always allow" for one tool: its calls ask again.
pub(super) async fn disallow(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
    Json(req): Json<ToolReq>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (_, c) = find(&app, &which, &name)?;
        let mut allowed = Allowed::load(app.options.config_dir.as_deref()).map_err(ApiError::internal)?;
        if !allowed.set(&c.key(), &req.tool, false) {
            return Err(ApiError::conflict(format!(
                "{}.{} was not always allowed; reload the page",
                name, req.tool
            )));
        }
        allowed.save().map_err(ApiError::internal)?;
        Ok(Json(json!({"revoked": req.tool})))
    })
    .await?
}

/// Removes a connector from its list, with its approved tools and "always
/// allow" answers (added again, it is approved again).
pub(super) async fn remove(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (mut list, c) = find(&app, &which, &name)?;
        app.sign_ins_underway.stop(&c.key());
        connectors::remove(&mut list, &name, app.options.config_dir.as_deref()).map_err(ApiError::internal)?;
        Ok(Json(json!({"removed": name})))
    })
    .await?
}

/// Sign-ins started from the page, by connector key: the one waiting for the
/// person's browser, and why the last one failed. A second sign-in for the
/// same connector replaces the first, whose thread then stops waiting.
#[derive(Default)]
pub(crate) struct SignInsUnderway(Mutex<HashMap<String, Underway>>);

#[derive(Default)]
struct Underway {
    waiting: Option<Waiting>,
    /// Why, and when (seconds since 1970).
    failed: Option<(String, u64)>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Waiting {
    issuer: String,
    cancel: Arc<AtomicBool>,
}

impl SignInsUnderway {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Underway>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the sign-in waiting for `key` sends the person, if one waits.
    fn waiting_at(&self, key: &str) -> Option<String> {
        self.lock().get(key)?.waiting.as_ref().map(|w| w.issuer.clone())
    }

    /// Why the last sign-in of `key` failed, if it did after `signed_in_at`
    /// (when the sign-in kept now was made).
    fn failure(&self, key: &str, signed_in_at: Option<u64>) -> Option<String> {
        let (why, at) = self.lock().get(key)?.failed.clone()?;
        signed_in_at.is_none_or(|s| at > s).then_some(why)
    }

    /// A new sign-in of `key` waits (the one before, if any, stops waiting).
    fn start(&self, key: &str, issuer: &str, cancel: Arc<AtomicBool>) {
        let mut all = self.lock();
        let entry = all.entry(key.to_owned()).or_default();
        if let Some(old) = entry.waiting.take() {
            old.cancel.store(true, Ordering::SeqCst);
        }
        entry.failed = None;
        entry.waiting = Some(Waiting {
            issuer: issuer.to_owned(),
            cancel,
        });
    }

    /// The sign-in holding `cancel` ended: kept only if it is still the one
    /// waiting (a replaced or stopped one says nothing).
    fn ended(&self, key: &str, cancel: &Arc<AtomicBool>, result: Result<(), String>) {
        let mut all = self.lock();
        let Some(entry) = all.get_mut(key) else { return };
        if !entry.waiting.as_ref().is_some_and(|w| Arc::ptr_eq(&w.cancel, cancel)) {
            return;
        }
        entry.waiting = None;
        entry.failed = result.err().map(|e| (e, now_secs()));
    }

    /// Stops `key`'s waiting sign-in and forgets its failure; true if one was waiting.
    fn stop(&self, key: &str) -> bool {
        let Some(entry) = self.lock().remove(key) else {
            return false;
        };
        entry.waiting.is_some_and(|w| {
            w.cancel.store(true, Ordering::SeqCst);
            true
        })
    }
}

/// The connector `name` as one that signs in here, and the config folder the
/// token is kept in; else why not, in words.
fn to_sign_in(app: &App, which: &str, name: &str) -> ApiResult<(Connector, PathBuf)> {
    let (_, c) = find(app, which, name)?;
    let Transport::Remote { .. } = &c.transport else {
        return Err(ApiError::bad_request(format!(
            "{name} runs on this machine: only remote connectors (servers at a URL) sign in"
        )));
    };
    if !signs_in(&c) {
        return Err(ApiError::conflict(format!(
            "{name} sends its own Authorization header, so deskhand does not sign in to it; to sign in here \
             instead, remove it and add it again without that header"
        )));
    }
    let config_dir = app.options.config_dir.clone().ok_or_else(|| {
        ApiError::bad_request(
            "there is no config folder to keep the sign-in in: start deskhand with XDG_CONFIG_HOME or HOME set",
        )
    })?;
    Ok((c, config_dir))
}

/// "Sign in": finds the connector's authorization server, registers deskhand
/// there and opens a loopback listener for the answer (blocking work), then
/// leaves a thread waiting for the person's browser and answers with the
/// address the page opens in a new tab.
pub(super) async fn sign_in(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (c, config_dir) = to_sign_in(&app, &which, &name)?;
        let pending = oauth::begin(&c, None).map_err(ApiError::unprocessable)?;
        let answer = json!({"authorize_url": pending.authorize_url, "issuer": pending.issuer});
        let key = c.key();
        let cancel = pending.canceller();
        app.sign_ins_underway.start(&key, &pending.issuer, Arc::clone(&cancel));
        let waiter = Arc::clone(&app);
        let spawned = std::thread::Builder::new()
            .name(format!("sign-in {name}"))
            .spawn(move || {
                let result = pending.finish(&config_dir, oauth::WAIT).map(|_| ());
                waiter.sign_ins_underway.ended(&key, &cancel, result);
            });
        if let Err(e) = spawned {
            app.sign_ins_underway.stop(&c.key());
            return Err(ApiError::internal(format!(
                "deskhand could not wait for the sign-in: {e}"
            )));
        }
        Ok(Json(answer))
    })
    .await?
}

/// "Sign out": forgets the connector's token (and stops a sign-in still waiting).
pub(super) async fn sign_out(
    State(app): State<Arc<App>>,
    UrlPath((which, name)): UrlPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    blocking(move || {
        let (c, config_dir) = to_sign_in(&app, &which, &name)?;
        let stopped = app.sign_ins_underway.stop(&c.key());
        // Under the sign-ins' lock: a run renewing the token cannot bring it back.
        let forgot = SignIns::locked(&config_dir, |all| {
            let forgot = all.forget(&c.key());
            if forgot {
                all.save()?;
            }
            Ok(forgot)
        })
        .map_err(ApiError::internal)?;
        if !forgot && !stopped {
            return Err(ApiError::conflict(format!("{name} was not signed in; reload the page")));
        }
        Ok(Json(json!({"signed_out": name, "forgot_token": forgot})))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request, StatusCode, header};
    use deskhand_runtime::connectors::allow::Allowed;
    use deskhand_runtime::connectors::config::{self, List};
    use deskhand_runtime::connectors::oauth::{SignIn, SignIns};
    use deskhand_runtime::connectors::{Access, Connector, Scope, Settings, Transport};
    use deskhand_runtime::workspace::Workspace;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::session::{HEADER, Sessions};
    use crate::{App, Lifetimes, Options};

    const PORT: u16 = 47_124;

    struct Page {
        _dir: tempfile::TempDir,
        app: Arc<App>,
        session: String,
        config: std::path::PathBuf,
    }

    impl Page {
        fn new() -> Page {
            let dir = tempfile::tempdir().expect("temp dir");
            let ws = dir.path().join("ws");
            let config = dir.path().join("cfg");
            std::fs::create_dir_all(&config).expect("config dir");
            let (workspace, _) = Workspace::init(&ws).expect("workspace");
            let options = Options {
                workspace: ws,
                port: PORT,
                cache_dir: None,
                config_dir: Some(config.clone()),
                lifetimes: Lifetimes::default(),
            };
            let app = Arc::new(App::new(
                workspace,
                PORT,
                crate::random_hex(32),
                Sessions::new(Lifetimes::default()),
                options,
            ));
            let session = {
                let mut s = app.sessions();
                let token = s.new_launch_token(Instant::now());
                s.exchange(&token, Instant::now()).expect("a fresh token")
            };
            Page {
                _dir: dir,
                app,
                session,
                config,
            }
        }

        async fn send(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::HOST, format!("127.0.0.1:{PORT}"))
                .header(header::ORIGIN, format!("http://127.0.0.1:{PORT}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(HEADER, &self.session)
                .body(Body::from(body.to_string()))
                .expect("request");
            let response = crate::api::router(self.app.clone())
                .oneshot(request)
                .await
                .expect("infallible");
            let status = response.status();
            let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }

        fn workspace_list(&self) -> List {
            List::load(
                &config::workspace_file(&self.app.workspace.state_dir()),
                Scope::Workspace(self.app.root.clone()),
            )
            .expect("the workspace's list reads")
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    const GOOD: &str = r#"{"mcpServers": {
        "mail": {"command": "/usr/bin/node", "args": ["/opt/mail/server.js", "--inbox"], "env": {"MAIL_TOKEN": "secret-token-value"}},
        "docs": {"url": "https://docs.example.com/mcp"}
    }}"#;

    #[test]
    fn pasted_json_is_shown_without_variable_values_and_added_only_as_shown() {
        run(async {
            let p = Page::new();
            let paste = json!({"text": GOOD, "scope": "workspace", "access": "read-only"});
            let (status, shown) = p.send(Method::POST, "/api/connectors/preview", paste.clone()).await;
            assert_eq!(status, StatusCode::OK, "{shown}");
            assert!(
                !shown.to_string().contains("secret-token-value"),
                "a variable's value was shown: {shown}"
            );
            assert_eq!(shown["connectors"][1]["name"], "mail");
            assert_eq!(shown["connectors"][1]["transport"]["env"], json!(["MAIL_TOKEN"]));
            assert_eq!(
                shown["connectors"][1]["transport"]["args"],
                json!(["/opt/mail/server.js", "--inbox"])
            );
            assert!(
                p.workspace_list().connectors().expect("list").is_empty(),
                "a preview saved something"
            );

            // The text changed since it was shown: nothing is added.
            let mut changed = paste.clone();
            changed["text"] = GOOD.replace("--inbox", "--all").into();
            changed["hash"] = shown["hash"].clone();
            let (status, body) = p.send(Method::POST, "/api/connectors", changed).await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert!(p.workspace_list().connectors().expect("list").is_empty());

            let mut add = paste.clone();
            add["hash"] = shown["hash"].clone();
            let (status, body) = p.send(Method::POST, "/api/connectors", add.clone()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let listed = p.workspace_list().connectors().expect("list");
            assert_eq!(listed.len(), 2);
            assert!(listed.iter().all(|c| c.settings.access == Access::ReadOnly));

            // Listed on the page, with no tool approved yet; added twice, refused by name.
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            let mail = page["connectors"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == "mail"))
                .cloned()
                .expect("mail is listed");
            assert_eq!(mail["approved"], false);
            assert_eq!(mail["access"], "read-only");
            assert!(!page.to_string().contains("secret-token-value"));
            let (status, body) = p.send(Method::POST, "/api/connectors", add).await;
            assert_eq!(status, StatusCode::CONFLICT);
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("already has a connector named docs, mail")),
                "{body}"
            );
        });
    }

    #[test]
    fn a_remote_connectors_headers_and_the_variables_it_takes_from_deskhands_environment_are_shown() {
        run(async {
            let p = Page::new();
            let text = r#"{"mcpServers": {
                "docs": {"url": "https://docs.example.com/mcp",
                         "headers": {"Authorization": "Bearer ${ANTHROPIC_API_KEY}", "X-Api-Key": "literal-secret-42"}}
            }, "deskhand": {"docs": {"passEnv": ["GITHUB_TOKEN"], "private": true}}}"#;
            let paste = json!({"text": text, "scope": "workspace", "access": "read-write"});
            let (status, shown) = p.send(Method::POST, "/api/connectors/preview", paste.clone()).await;
            assert_eq!(status, StatusCode::OK, "{shown}");
            assert!(
                !shown.to_string().contains("literal-secret-42"),
                "a literal value was shown: {shown}"
            );
            let docs = &shown["connectors"][0];
            assert_eq!(docs["transport"]["kind"], "remote");
            assert_eq!(docs["transport"]["url"], "https://docs.example.com/mcp");
            assert_eq!(
                docs["transport"]["headers"],
                json!([
                    {"name": "Authorization", "value": "Bearer ${ANTHROPIC_API_KEY}", "variables": ["ANTHROPIC_API_KEY"]},
                    {"name": "X-Api-Key", "value": "\u{2022}\u{2022}\u{2022}\u{2022}", "variables": []},
                ])
            );
            assert_eq!(docs["transport"]["pass_env"], json!(["GITHUB_TOKEN"]));
            assert_eq!(docs["from_env"], json!(["GITHUB_TOKEN", "ANTHROPIC_API_KEY"]));
            assert_eq!(docs["access"], "read-write");
            assert_eq!(docs["private"], true);

            // The same on its card once added.
            let mut add = paste;
            add["hash"] = shown["hash"].clone();
            let (status, body) = p.send(Method::POST, "/api/connectors", add).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            let card = &page["connectors"][0];
            assert_eq!(card["transport"]["headers"], docs["transport"]["headers"]);
            assert_eq!(card["from_env"], docs["from_env"]);
            assert_eq!(card["definition_changed"], false);
            assert!(!page.to_string().contains("literal-secret-42"));
        });
    }

    #[test]
    fn header_values_are_masked_except_their_variables_and_scheme() {
        assert_eq!(super::masked("Bearer ${T}"), "Bearer ${T}");
        assert_eq!(super::masked("${A}:${B}"), "${A}\u{2022}\u{2022}\u{2022}\u{2022}${B}");
        assert_eq!(super::masked("Basic abc"), "Basic \u{2022}\u{2022}\u{2022}\u{2022}");
        assert_eq!(super::masked("${UNCLOSED"), "\u{2022}\u{2022}\u{2022}\u{2022}");
    }

    #[test]
    fn without_the_session_or_from_another_origin_nothing_is_listed_or_added() {
        run(async {
            let p = Page::new();
            let send = |uri: &str, session: Option<&str>, origin: &str, method: Method, body: Value| {
                let mut r = Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(header::HOST, format!("127.0.0.1:{PORT}"))
                    .header(header::ORIGIN, origin)
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(s) = session {
                    r = r.header(HEADER, s);
                }
                let request = r.body(Body::from(body.to_string())).expect("request");
                let router = crate::api::router(p.app.clone());
                async move { router.oneshot(request).await.expect("infallible").status() }
            };
            let here = format!("http://127.0.0.1:{PORT}");
            let add =
                json!({"text": GOOD, "scope": "workspace", "access": "read-write", "hash": super::seen_hash(GOOD)});
            assert_eq!(
                send("/api/connectors", None, &here, Method::GET, Value::Null).await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                send("/api/connectors", None, &here, Method::POST, add.clone()).await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                send(
                    "/api/connectors",
                    Some(&p.session),
                    "http://evil.example",
                    Method::POST,
                    add.clone()
                )
                .await,
                StatusCode::FORBIDDEN
            );
            assert!(p.workspace_list().connectors().expect("list").is_empty());
            assert_eq!(
                send("/api/connectors", Some(&p.session), &here, Method::POST, add).await,
                StatusCode::OK
            );
        });
    }

    #[test]
    fn bad_pastes_name_the_problem_and_save_nothing() {
        run(async {
            let p = Page::new();
            let cases = [
                ("{\"mcpServers\": {", "the pasted JSON is not valid JSON"),
                ("[1, 2]", "is not a connector list"),
                ("{\"servers\": {}}", "has no \"mcpServers\" object"),
                ("{\"mcpServers\": {}}", "lists no connectors"),
                (
                    "{\"mcpServers\": {\"x\": {\"comand\": \"a\"}}}",
                    "not in a shape deskhand knows",
                ),
                (
                    "{\"mcpServers\": {\"my mail\": {\"command\": \"a\"}}}",
                    "may hold only letters",
                ),
                ("{\"mcpServers\": {\"x\": {\"args\": []}}}", "has no command"),
                ("   ", "paste an mcpServers JSON first"),
            ];
            for (text, expected) in cases {
                for uri in ["/api/connectors/preview", "/api/connectors"] {
                    let body = json!({"text": text, "scope": "workspace", "access": "read-write",
                                      "hash": super::seen_hash(text)});
                    let (status, answer) = p.send(Method::POST, uri, body).await;
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{text} at {uri}: {answer}");
                    let error = answer["error"].as_str().unwrap_or_default();
                    assert!(error.contains(expected), "{text}: {error}");
                }
            }
            let (status, answer) = p
                .send(
                    Method::POST,
                    "/api/connectors/preview",
                    json!({"text": GOOD, "scope": "theirs", "access": "read-write"}),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(answer["error"].as_str().is_some_and(|e| e.contains("choose \"user\"")));
            assert!(!config::workspace_file(&p.app.workspace.state_dir()).exists());
        });
    }

    #[test]
    fn a_tool_is_disabled_and_enabled_again_an_always_allow_revoked_and_a_connector_removed() {
        run(async {
            let p = Page::new();
            let mut list = List::load(&config::user_file(&p.config), Scope::User).expect("list");
            let mail = Connector {
                name: "mail".into(),
                scope: Scope::User,
                transport: Transport::Stdio {
                    command: "/usr/bin/true".into(),
                    args: Vec::new(),
                    env: Default::default(),
                },
                settings: Settings::default(),
            };
            list.put(&mail).expect("put");
            list.save().expect("save");
            let mut allowed = Allowed::load(Some(&p.config)).expect("allowed");
            allowed.set(&mail.key(), "send", true);
            allowed.save().expect("save");

            let (status, body) = p
                .send(
                    Method::POST,
                    "/api/connectors/user/mail/enabled",
                    json!({"tool": "purge", "enabled": false}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let saved = || {
                List::load(&config::user_file(&p.config), Scope::User)
                    .and_then(|l| l.get("mail"))
                    .expect("read")
                    .expect("listed")
            };
            assert!(saved().settings.disabled_tools.contains("purge"));
            p.send(
                Method::POST,
                "/api/connectors/user/mail/enabled",
                json!({"tool": "purge", "enabled": true}),
            )
            .await;
            assert!(saved().settings.disabled_tools.is_empty());

            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(page["connectors"][0]["always_allowed"], json!(["send"]));
            let (status, _) = p
                .send(
                    Method::POST,
                    "/api/connectors/user/mail/disallow",
                    json!({"tool": "send"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                !Allowed::load(Some(&p.config))
                    .expect("allowed")
                    .is_allowed(&mail.key(), "send")
            );
            let (status, _) = p
                .send(
                    Method::POST,
                    "/api/connectors/user/mail/disallow",
                    json!({"tool": "send"}),
                )
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "revoked twice");

            let (status, _) = p
                .send(Method::DELETE, "/api/connectors/workspace/mail", json!({}))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "mail is not the workspace's");
            let (status, _) = p.send(Method::DELETE, "/api/connectors/user/mail", json!({})).await;
            assert_eq!(status, StatusCode::OK);
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(page["connectors"], json!([]));
        });
    }

    fn remote(name: &str, url: &str, headers: &[(&str, &str)]) -> Connector {
        Connector {
            name: name.into(),
            scope: Scope::User,
            transport: Transport::Remote {
                url: url.into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            settings: Settings::default(),
        }
    }

    fn local(name: &str) -> Connector {
        Connector {
            name: name.into(),
            scope: Scope::User,
            transport: Transport::Stdio {
                command: "/usr/bin/true".into(),
                args: Vec::new(),
                env: Default::default(),
            },
            settings: Settings::default(),
        }
    }

    fn listed(p: &Page, cs: &[&Connector]) {
        let mut list = List::load(&config::user_file(&p.config), Scope::User).expect("list");
        for c in cs {
            list.put(c).expect("put");
        }
        list.save().expect("save");
    }

    fn signed_in(url: &str) -> SignIn {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        SignIn {
            resource: url.into(),
            issuer: "https://auth.example.com".into(),
            token_endpoint: "https://auth.example.com/token".into(),
            client_id: "deskhand-client".into(),
            client_secret: Some("client-secret-3".into()),
            access_token: "access-token-1".into(),
            refresh_token: Some("refresh-token-2".into()),
            expires_at: Some(now + 3600),
            scope: None,
            signed_in_at: now,
        }
    }

    fn card<'a>(page: &'a Value, name: &str) -> &'a Value {
        page["connectors"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("{name} is not listed: {page}"))
    }

    #[test]
    fn a_remote_connectors_card_says_whether_it_is_signed_in_waiting_or_failed_and_never_carries_the_token() {
        run(async {
            let p = Page::new();
            let docs = remote("docs", "https://docs.example.com/mcp", &[]);
            let plain = remote("plain", "https://plain.example.com/mcp", &[]);
            let own = remote(
                "own",
                "https://own.example.com/mcp",
                &[("Authorization", "Bearer ${OWN_TOKEN}")],
            );
            let moved = remote("moved", "https://new.example.com/mcp", &[]);
            let mail = local("mail");
            listed(&p, &[&docs, &plain, &own, &moved, &mail]);
            SignIns::update(&p.config, &docs.key(), Some(signed_in("https://docs.example.com/mcp"))).expect("kept");
            // A sign-in for the address the connector had before is not its sign-in now.
            SignIns::update(&p.config, &moved.key(), Some(signed_in("https://old.example.com/mcp"))).expect("kept");

            let (status, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let text = page.to_string();
            for secret in ["access-token-1", "refresh-token-2", "client-secret-3"] {
                assert!(!text.contains(secret), "{secret} reached the page: {page}");
            }
            let d = card(&page, "docs");
            assert_eq!(d["sign_in"]["signed_in"], true);
            assert_eq!(d["sign_in"]["issuer"], "https://auth.example.com");
            assert_eq!(d["sign_in"]["again"], false);
            assert_eq!(d["sign_in"]["waiting_at"], Value::Null);
            let words = d["sign_in"]["words"].as_str().unwrap_or_default();
            assert!(
                words.starts_with("signed in") && words.contains("https://auth.example.com (the token ends in"),
                "{words}"
            );
            assert_eq!(d["sign_in_error"], Value::Null);
            for name in ["plain", "moved"] {
                assert_eq!(
                    card(&page, name)["sign_in"],
                    json!({"signed_in": false, "words": "not signed in", "issuer": null, "again": false, "waiting_at": null}),
                    "{name}"
                );
            }
            // Passing its own Authorization header, or running here: nothing to sign in to.
            assert_eq!(card(&page, "own")["sign_in"], Value::Null);
            assert_eq!(card(&page, "mail")["sign_in"], Value::Null);

            // A sign-in waits; a second one replaces it (the first stops waiting, and its end says nothing).
            let underway = &p.app.sign_ins_underway;
            let first = Arc::new(AtomicBool::new(false));
            let second = Arc::new(AtomicBool::new(false));
            underway.start(&plain.key(), "https://auth.example.com", first.clone());
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(
                card(&page, "plain")["sign_in"]["waiting_at"],
                "https://auth.example.com"
            );
            underway.start(&plain.key(), "https://auth2.example.com", second.clone());
            assert!(first.load(Ordering::SeqCst), "the first sign-in was not told to stop");
            underway.ended(&plain.key(), &first, Err("replaced by a newer one".into()));
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(
                card(&page, "plain")["sign_in"]["waiting_at"],
                "https://auth2.example.com"
            );
            assert_eq!(card(&page, "plain")["sign_in_error"], Value::Null);
            underway.ended(
                &plain.key(),
                &second,
                Err("the sign-in to plain was not completed (access_denied)".into()),
            );
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(card(&page, "plain")["sign_in"]["waiting_at"], Value::Null);
            assert_eq!(
                card(&page, "plain")["sign_in_error"],
                "the sign-in to plain was not completed (access_denied)"
            );
        });
    }

    /// A server on loopback that answers every request with 200 and `{}`: one that does not ask for a sign-in.
    fn open_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 8192];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                let _ = std::io::Write::write_all(
                    &mut stream,
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        format!("http://127.0.0.1:{port}/mcp")
    }

    #[test]
    fn sign_in_is_refused_in_words_for_a_local_connector_its_own_header_or_a_server_that_does_not_ask() {
        run(async {
            let p = Page::new();
            let url = open_server();
            listed(
                &p,
                &[
                    &local("mail"),
                    &remote(
                        "own",
                        "https://own.example.com/mcp",
                        &[("authorization", "Bearer ${T}")],
                    ),
                    &remote("open", &url, &[]),
                ],
            );
            let cases = [
                (
                    "mail",
                    StatusCode::BAD_REQUEST,
                    "mail runs on this machine: only remote connectors",
                ),
                ("own", StatusCode::CONFLICT, "own sends its own Authorization header"),
                ("open", StatusCode::UNPROCESSABLE_ENTITY, "does not ask for a sign-in"),
                ("nobody", StatusCode::NOT_FOUND, "no connector named \"nobody\""),
            ];
            for (name, status, words) in cases {
                let (got, body) = p
                    .send(Method::POST, &format!("/api/connectors/user/{name}/sign-in"), json!({}))
                    .await;
                assert_eq!(got, status, "{name}: {body}");
                let error = body["error"].as_str().unwrap_or_default();
                assert!(error.contains(words), "{name}: {error}");
            }
            let (_, page) = p.send(Method::GET, "/api/connectors", Value::Null).await;
            assert_eq!(card(&page, "open")["sign_in"]["waiting_at"], Value::Null);
        });
    }

    #[test]
    fn sign_out_forgets_the_token_and_stops_a_waiting_sign_in_only_from_this_page() {
        run(async {
            let p = Page::new();
            let docs = remote("docs", "https://docs.example.com/mcp", &[]);
            let plain = remote("plain", "https://plain.example.com/mcp", &[]);
            listed(&p, &[&docs, &plain]);
            SignIns::update(&p.config, &docs.key(), Some(signed_in("https://docs.example.com/mcp"))).expect("kept");
            let kept = || {
                SignIns::load(Some(&p.config))
                    .expect("sign-ins")
                    .for_connector(&docs)
                    .is_some()
            };

            // From another origin: refused before the handler, the token kept.
            let request = Request::builder()
                .method(Method::POST)
                .uri("/api/connectors/user/docs/sign-out")
                .header(header::HOST, format!("127.0.0.1:{PORT}"))
                .header(header::ORIGIN, "http://evil.example")
                .header(header::CONTENT_TYPE, "application/json")
                .header(HEADER, &p.session)
                .body(Body::from("{}"))
                .expect("request");
            let response = crate::api::router(p.app.clone())
                .oneshot(request)
                .await
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert!(kept());

            let (status, body) = p
                .send(Method::POST, "/api/connectors/user/docs/sign-out", json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(!kept(), "the token is still kept");
            let (status, body) = p
                .send(Method::POST, "/api/connectors/user/docs/sign-out", json!({}))
                .await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("docs was not signed in"))
            );

            // A sign-in still waiting is stopped by Sign out, and by removing the connector.
            let waiting = Arc::new(AtomicBool::new(false));
            p.app
                .sign_ins_underway
                .start(&plain.key(), "https://auth.example.com", waiting.clone());
            let (status, body) = p
                .send(Method::POST, "/api/connectors/user/plain/sign-out", json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(waiting.load(Ordering::SeqCst));
            let again = Arc::new(AtomicBool::new(false));
            p.app
                .sign_ins_underway
                .start(&plain.key(), "https://auth.example.com", again.clone());
            let (status, _) = p.send(Method::DELETE, "/api/connectors/user/plain", json!({})).await;
            assert_eq!(status, StatusCode::OK);
            assert!(again.load(Ordering::SeqCst));
        });
    }
}
