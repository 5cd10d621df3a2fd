//! `deskhand connectors ...`: the person's and a workspace's MCP servers.
//!
//! `add` starts the server in its sandbox, shows its tools with their
//! annotations and pins them on the person's yes; `approve` shows a
//! quarantined tool's definition as a diff and pins it again; `test` starts
//! it and reports what changed; `allow`/`disallow` remember or revoke
//! "always allow"; `enable`/`disable` choose the tools offered to the model;
//! `import` reads an `mcpServers` file pasted from another client (nothing
//! is started or approved by importing); `login`/`logout` sign in to a
//! remote connector that asks for it (OAuth in the person's browser) and
//! forget the token. What a server says (names,
//! descriptions) is shown as inert text.

use std::path::Path;
use std::time::Instant;

use deskhand_runtime::connectors::config::{self, List};
use deskhand_runtime::connectors::oauth::{self, SignIns};
use deskhand_runtime::connectors::pins::Pins;
use deskhand_runtime::connectors::session::Binds;
use deskhand_runtime::connectors::{
    self as conn, Access, Connector, ConnectorTool, Connectors, Scope, Settings, Transport,
};
use deskhand_runtime::workspace::Workspace;

use crate::cli::ConnectorsCommand;
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::config_dir;
use crate::terminal::{confirm, out};

/// Lets connectors pass the variables the person listed for them (`--env VAR`)
/// from deskhand's own environment; only those names are ever read.
pub fn offer_env() {
    conn::session::set_env_source(Box::new(|name| std::env::var(name).ok()));
}

pub fn connectors(command: ConnectorsCommand) -> Result<(), Failure> {
    let config = config_dir()
        .ok_or_else(|| user_error("there is no config folder for connectors: set XDG_CONFIG_HOME or HOME"))?;
    match command {
        ConnectorsCommand::Add {
            name,
            workspace,
            read_only,
            read_write: _,
            env,
            private,
            url,
            header,
            yes,
            client_id,
            no_browser,
            command,
        } => add(
            &config,
            &name,
            workspace.as_deref(),
            read_only,
            &env,
            private,
            Remote {
                url,
                header: &header,
                client_id: client_id.as_deref(),
                browser: !no_browser,
            },
            yes,
            command,
        ),
        ConnectorsCommand::List { workspace } => list(&config, workspace.as_deref()),
        ConnectorsCommand::Show { name, workspace } => show(&config, &name, workspace.as_deref()),
        ConnectorsCommand::Remove { name, workspace } => {
            let mut l = list_file(&config, workspace.as_deref())?;
            if conn::remove(&mut l, &name, Some(&config))
                .map_err(user_error)?
                .is_none()
            {
                return Err(user_error(format!(
                    "there is no connector named {name} in {}",
                    l.file.display()
                )));
            }
            out(&format!("Removed {name}; its approvals are forgotten."));
            Ok(())
        }
        ConnectorsCommand::Test { name, workspace } => test(&config, &name, workspace.as_deref()),
        ConnectorsCommand::Enable { name, tool, workspace } => {
            toggle(&config, &name, &tool, workspace.as_deref(), true)
        }
        ConnectorsCommand::Disable { name, tool, workspace } => {
            toggle(&config, &name, &tool, workspace.as_deref(), false)
        }
        ConnectorsCommand::Approve {
            name,
            tool,
            workspace,
            yes,
        } => approve(&config, &name, tool.as_deref(), workspace.as_deref(), yes),
        ConnectorsCommand::Allow { name, tool, workspace } => allow(&config, &name, &tool, workspace.as_deref(), true),
        ConnectorsCommand::Disallow { name, tool, workspace } => {
            allow(&config, &name, &tool, workspace.as_deref(), false)
        }
        ConnectorsCommand::Import { file, workspace } => import(&config, &file, workspace.as_deref()),
        ConnectorsCommand::Login {
            name,
            workspace,
            client_id,
            no_browser,
        } => {
            let c = find(&config, &name, workspace.as_deref())?;
            sign_in(&config, &c, client_id.as_deref(), !no_browser)
        }
        ConnectorsCommand::Logout { name, workspace } => {
            let c = find(&config, &name, workspace.as_deref())?;
            let was = SignIns::locked(&config, |all| {
                let was = all.forget(&c.key());
                all.save()?;
                Ok(was)
            })
            .map_err(user_error)?;
            if !was {
                out(&format!("{name} was not signed in."));
                return Ok(());
            }
            out(&format!(
                "Signed out of {name}: deskhand forgot its token. The service may still list deskhand among the \
                 applications you allowed; remove it there to revoke it everywhere."
            ));
            Ok(())
        }
    }
}

/// Signs the person in to the remote connector `c` in their browser (opened
/// for them when `open`), and keeps the token in the config folder.
fn sign_in(config: &Path, c: &Connector, client_id: Option<&str>, open: bool) -> Result<(), Failure> {
    let pending = oauth::begin(c, client_id).map_err(|e| user_error(render::block(&e)))?;
    out(&format!(
        "Signing in to {} at {}.",
        c.name,
        render::line(&pending.issuer)
    ));
    let opened = open && oauth::open_in_browser(&pending.authorize_url);
    out(&format!(
        "{}\n  {}\nWaiting for the browser to come back (up to {} minutes)...",
        if opened {
            "Your browser was opened at this address; if it did not open, copy it into one:"
        } else {
            "Open this address in your browser and sign in:"
        },
        pending.authorize_url,
        oauth::WAIT.as_secs() / 60
    ));
    let done = pending
        .finish(config, oauth::WAIT)
        .map_err(|e| user_error(render::block(&e)))?;
    out(&format!(
        "Signed in to {}: {}. The token is kept in {}, readable only by you, sent only to {} and renewed at {}.",
        c.name,
        done.describe(),
        config.join(oauth::FILE).display(),
        render::line(&done.resource),
        render::line(&done.token_endpoint)
    ));
    Ok(())
}

/// The list `--workspace` names (the workspace's), else the person's.
fn list_file(config: &Path, workspace: Option<&Path>) -> Result<List, Failure> {
    match workspace {
        Some(w) => {
            let ws = Workspace::open(w)?;
            List::load(
                &config::workspace_file(&ws.state_dir()),
                Scope::Workspace(ws.root().to_owned()),
            )
            .map_err(user_error)
        }
        None => List::load(&config::user_file(config), Scope::User).map_err(user_error),
    }
}

fn find(config: &Path, name: &str, workspace: Option<&Path>) -> Result<Connector, Failure> {
    let l = list_file(config, workspace)?;
    l.get(name).map_err(user_error)?.ok_or_else(|| {
        user_error(format!(
            "there is no connector named {name} in {}; `deskhand connectors list{}` shows them",
            l.file.display(),
            if workspace.is_some() { " --workspace W" } else { "" }
        ))
    })
}

fn session(config: &Path, c: &Connector) -> Result<Connectors, Failure> {
    Connectors::new(
        Some(config),
        vec![c.clone()],
        &|name| std::env::var(name).ok(),
        deskhand_runtime::egress::Settings::default().relay,
    )
    .map_err(user_error)
}

fn start(config: &Path, c: &Connector) -> Result<(Vec<ConnectorTool>, String), Failure> {
    let s = session(config, c)?;
    let started = Instant::now();
    let (failed, done) = match c.transport {
        Transport::Stdio { .. } => ("did not start in its sandbox", "Started {} in its sandbox"),
        Transport::Remote { .. } => ("could not be connected to", "Connected to {}"),
    };
    let (tools, protocol) = s
        .probe(c, &Binds::for_probe(c))
        .map_err(|e| user_error(format!("the connector {} {failed}: {}", c.name, render::block(&e))))?;
    out(&format!(
        "{} (protocol {}, {} ms): {} tool(s).",
        done.replace("{}", &c.name),
        render::line(&protocol),
        started.elapsed().as_millis(),
        tools.len()
    ));
    Ok((tools, protocol))
}

fn tool_line(c: &Connector, t: &ConnectorTool) -> String {
    let offered = match conn::model_name(&c.name, &t.name) {
        Some(_) => String::new(),
        None => " (not offered to models: its name does not fit their 64-character rule)".into(),
    };
    let kind = if conn::is_write(c, t) {
        format!("action {}", conn::action(&c.name, &t.name))
    } else {
        "read".into()
    };
    format!(
        "  {:<28} [{}; {}]{offered}\n      {}",
        render::line(&t.name),
        t.annotations.describe(),
        kind,
        render::line(&t.description)
    )
}

/// `add`'s options for a remote server.
struct Remote<'a> {
    url: Option<String>,
    header: &'a [String],
    /// For a sign-in, if it asks for one.
    client_id: Option<&'a str>,
    browser: bool,
}

#[expect(clippy::too_many_arguments, reason = "one argument per command-line option")]
fn add(
    config: &Path,
    name: &str,
    workspace: Option<&Path>,
    read_only: bool,
    env: &[String],
    private: bool,
    remote: Remote<'_>,
    yes: bool,
    command: Vec<String>,
) -> Result<(), Failure> {
    let Remote {
        url,
        header,
        client_id,
        browser,
    } = remote;
    config::check_name(name).map_err(user_error)?;
    let mut values = std::collections::BTreeMap::new();
    let mut pass_env = Vec::new();
    for e in env {
        match e.split_once('=') {
            Some((k, v)) => {
                values.insert(k.to_owned(), v.to_owned());
            }
            None => pass_env.push(e.clone()),
        }
    }
    let transport = match (url, command.split_first()) {
        (Some(_), Some(_)) => return Err(user_error("give either --url URL or -- COMMAND ARGS..., not both")),
        (Some(url), None) => Transport::Remote {
            url,
            headers: headers(header)?,
        },
        (None, Some((program, args))) => Transport::Stdio {
            command: program.clone(),
            args: args.to_vec(),
            env: values,
        },
        (None, None) => {
            return Err(user_error(
                "say how to start it: deskhand connectors add NAME -- COMMAND ARGS... (or --url URL)",
            ));
        }
    };
    let connector = Connector {
        name: name.to_owned(),
        scope: Scope::User,
        transport,
        settings: Settings {
            access: if read_only { Access::ReadOnly } else { Access::ReadWrite },
            private,
            pass_env,
            ..Settings::default()
        },
    };
    let mut l = list_file(config, workspace)?;
    let connector = Connector {
        scope: l.scope.clone(),
        ..connector
    };
    if let Transport::Remote { url, headers } = &connector.transport
        && !headers.keys().any(|k| k.eq_ignore_ascii_case("authorization"))
        && SignIns::load(Some(config))
            .map_err(user_error)?
            .for_connector(&connector)
            .is_none()
        && oauth::ask(name, url).map_err(user_error)?.is_some()
    {
        out(&format!("{name} asks you to sign in."));
        sign_in(config, &connector, client_id, browser)?;
    }
    let (tools, _) = start(config, &connector).inspect_err(|_| {
        // Not added: a sign-in made for it is not kept either.
        let _ = SignIns::update(config, &connector.key(), None);
    })?;
    l.put(&connector).map_err(user_error)?;
    l.save().map_err(user_error)?;
    out(&format!("Added {name} to {}.", l.file.display()));
    for t in &tools {
        out(&tool_line(&connector, t));
    }
    let question = format!("\nApprove these {} tool(s) as they are now? [y/N] ", tools.len());
    if yes || confirm(&question) {
        pin(config, &connector, &tools)?;
        out(&format!(
            "Approved. A later change to any of them is held back until you approve it again: deskhand connectors \
             approve {name}"
        ));
    } else {
        out(&format!(
            "Not approved: models are not offered its tools until you run deskhand connectors approve {name}"
        ));
    }
    Ok(())
}

/// `--header 'NAME: VALUE'`s: a value's secret is written as `${VAR}`, so
/// the list keeps the variable's name, never the token.
fn headers(given: &[String]) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    let mut out = std::collections::BTreeMap::new();
    for h in given {
        let Some((name, value)) = h.split_once(':') else {
            return Err(user_error(format!(
                "the header {h:?} is not NAME: VALUE; write it like --header 'Authorization: Bearer ${{TOKEN_VAR}}'"
            )));
        };
        let (name, value) = (name.trim(), value.trim());
        config::check_header(name, value).map_err(user_error)?;
        if !value.contains("${") {
            return Err(user_error(format!(
                "the header {name} holds its value itself; write the secret as ${{VAR}} (--header '{name}: Bearer \
                 ${{TOKEN_VAR}}'): deskhand reads VAR from its environment when it connects, and the list keeps only \
                 the name"
            )));
        }
        out.insert(name.to_owned(), value.to_owned());
    }
    Ok(out)
}

fn pin(config: &Path, c: &Connector, tools: &[ConnectorTool]) -> Result<(), Failure> {
    let mut pins = Pins::load(Some(config)).map_err(user_error)?;
    for t in tools {
        pins.pin(c, t);
    }
    pins.save().map_err(user_error)
}

fn list(config: &Path, workspace: Option<&Path>) -> Result<(), Failure> {
    let mut lists = vec![list_file(config, None)?];
    if workspace.is_some() {
        lists.insert(0, list_file(config, workspace)?);
    }
    let pins = Pins::load(Some(config)).map_err(user_error)?;
    let signed = SignIns::load(Some(config)).map_err(user_error)?;
    let mut any = false;
    for l in &lists {
        for c in l.connectors().map_err(user_error)? {
            any = true;
            let how = match &c.transport {
                Transport::Stdio { command, args, .. } => format!("{} {}", command, args.join(" ")),
                Transport::Remote { url, .. } => match signed.for_connector(&c) {
                    Some(_) => format!("{url} (signed in)"),
                    None => url.clone(),
                },
            };
            let approved = pins.tools(&c.key()).len();
            out(&format!(
                "{:<16} {:<10} {} approved tool(s)  {}  ({})",
                c.name,
                match c.settings.access {
                    Access::ReadOnly => "read-only",
                    Access::ReadWrite => "read-write",
                },
                approved,
                render::line(&how),
                c.scope
            ));
        }
    }
    if !any {
        out("No connectors. Add one with: deskhand connectors add NAME -- COMMAND ARGS...");
    }
    Ok(())
}

fn show(config: &Path, name: &str, workspace: Option<&Path>) -> Result<(), Failure> {
    let c = find(config, name, workspace)?;
    match &c.transport {
        Transport::Stdio { command, args, env } => {
            out(&format!(
                "{name}: {}",
                render::line(&format!("{command} {}", args.join(" ")))
            ));
            if !env.is_empty() {
                let names: Vec<&str> = env.keys().map(String::as_str).collect();
                out(&format!("  variables set: {} (values not shown)", names.join(", ")));
            }
        }
        Transport::Remote { url, headers } => {
            out(&format!("{name}: {} (remote, over Streamable HTTP)", render::line(url)));
            for (k, v) in headers {
                out(&format!("  header {}: {}", render::line(k), render::line(v)));
            }
            let signed = SignIns::load(Some(config)).map_err(user_error)?;
            match signed.for_connector(&c) {
                Some(s) => out(&format!(
                    "  {} (deskhand connectors logout {name} forgets it)",
                    render::line(&s.describe())
                )),
                None if !headers.keys().any(|k| k.eq_ignore_ascii_case("authorization")) => {
                    out(&format!(
                        "  not signed in (if it asks: deskhand connectors login {name})"
                    ));
                }
                None => {}
            }
        }
    }
    if !c.settings.pass_env.is_empty() {
        out(&format!(
            "  variables passed from deskhand's environment: {}",
            c.settings.pass_env.join(", ")
        ));
    }
    out(&format!(
        "  {}{}",
        match c.settings.access {
            Access::ReadOnly => "read-only: every tool runs as a read, its folders shown read-only",
            Access::ReadWrite => "read-write: tools that write are actions a step declares",
        },
        if c.settings.private {
            "; its results are private (reading one seals the run's network)"
        } else {
            ""
        }
    ));
    let pins = Pins::load(Some(config)).map_err(user_error)?;
    let allowed = conn::allow::Allowed::load(Some(config)).map_err(user_error)?;
    let tools = pins.tools(&c.key());
    if tools.is_empty() {
        out(&format!("  no approved tools: deskhand connectors approve {name}"));
    }
    for t in &tools {
        let mut flags = Vec::new();
        if c.settings.disabled_tools.contains(&t.name) {
            flags.push("disabled");
        }
        if allowed.is_allowed(&c.key(), &t.name) {
            flags.push("always allowed");
        }
        let mut line = tool_line(&c, t);
        if !flags.is_empty() {
            line = line.replacen(']', &format!("; {}]", flags.join(", ")), 1);
        }
        out(&line);
    }
    out(&format!(
        "  (approved definitions; `deskhand connectors test {name}` starts it and shows what changed)"
    ));
    Ok(())
}

fn test(config: &Path, name: &str, workspace: Option<&Path>) -> Result<(), Failure> {
    let c = find(config, name, workspace)?;
    let (tools, _) = start(config, &c)?;
    let pins = Pins::load(Some(config)).map_err(user_error)?;
    let mut held = 0;
    for t in &tools {
        let status = match pins.check(&c, t) {
            None => "approved".to_owned(),
            Some(change) => {
                held += 1;
                format!("quarantined: {}", change.as_str())
            }
        };
        out(&format!("{}  ({status})", tool_line(&c, t)));
    }
    if held > 0 {
        out(&format!(
            "{held} tool(s) are held back from models; see what changed and approve: deskhand connectors approve {name}"
        ));
    }
    Ok(())
}

fn approve(config: &Path, name: &str, tool: Option<&str>, workspace: Option<&Path>, yes: bool) -> Result<(), Failure> {
    let c = find(config, name, workspace)?;
    let (tools, _) = start(config, &c)?;
    let mut pins = Pins::load(Some(config)).map_err(user_error)?;
    let chosen: Vec<&ConnectorTool> = tools
        .iter()
        .filter(|t| tool.is_none_or(|n| n == t.name))
        .filter(|t| pins.check(&c, t).is_some())
        .collect();
    if let Some(n) = tool
        && !tools.iter().any(|t| t.name == n)
    {
        return Err(user_error(format!("the connector {name} has no tool named {n} now")));
    }
    if chosen.is_empty() {
        out("Nothing to approve: every tool is as you approved it.");
        return Ok(());
    }
    if pins.connector_changed(&c) {
        out(&render::block(&format!(
            "The connector {name} changed in the list since you approved it (what it runs, its headers, variables, \
             access, private or passEnv): every tool is held back until you approve it again. It now {}; {}; \
             passes from deskhand's environment: {}",
            match &c.transport {
                Transport::Stdio { command, args, env } => format!(
                    "runs {command} {} with the variables {}",
                    args.join(" "),
                    env.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                Transport::Remote { url, headers } => format!(
                    "reaches {url} with the headers {}",
                    headers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            },
            match c.settings.access {
                Access::ReadOnly => "read-only",
                Access::ReadWrite => "read-write",
            },
            c.settings.pass_env.join(", ")
        )));
    }
    let mut approved = 0;
    for t in chosen {
        out(&render::block(&pins.diff(&c.key(), t)));
        if yes || confirm(&format!("Approve {} as it is now? [y/N] ", render::line(&t.name))) {
            pins.pin(&c, t);
            approved += 1;
        }
    }
    pins.save().map_err(user_error)?;
    out(&format!("Approved {approved} tool(s)."));
    Ok(())
}

fn toggle(config: &Path, name: &str, tool: &str, workspace: Option<&Path>, enable: bool) -> Result<(), Failure> {
    let mut l = list_file(config, workspace)?;
    let mut c = l
        .get(name)
        .map_err(user_error)?
        .ok_or_else(|| user_error(format!("there is no connector named {name} in {}", l.file.display())))?;
    if enable {
        c.settings.disabled_tools.remove(tool);
    } else {
        c.settings.disabled_tools.insert(tool.to_owned());
    }
    l.put(&c).map_err(user_error)?;
    l.save().map_err(user_error)?;
    out(&format!(
        "{tool} of {name} is {} models.",
        if enable { "offered to" } else { "no longer offered to" }
    ));
    Ok(())
}

fn allow(config: &Path, name: &str, tool: &str, workspace: Option<&Path>, on: bool) -> Result<(), Failure> {
    let c = find(config, name, workspace)?;
    let mut allowed = conn::allow::Allowed::load(Some(config)).map_err(user_error)?;
    allowed.set(&c.key(), tool, on);
    allowed.save().map_err(user_error)?;
    out(&if on {
        format!(
            "{name}.{tool} runs without asking in ask mode when its step declares it (a tool that says it destroys \
             data still asks). Revoke: deskhand connectors disallow {name} {tool}"
        )
    } else {
        format!("{name}.{tool} asks again before each call in ask mode.")
    });
    Ok(())
}

fn import(config: &Path, file: &Path, workspace: Option<&Path>) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| user_error(format!("cannot read {}: {e}", file.display())))?;
    let mut l = list_file(config, workspace)?;
    let found = config::import(&text, file, l.scope.clone()).map_err(user_error)?;
    for c in &found {
        l.put(c).map_err(user_error)?;
    }
    l.save().map_err(user_error)?;
    for c in &found {
        out(&format!("Imported {} (not started, no tools approved yet).", c.name));
    }
    out(&format!(
        "Added {} connector(s) to {}. Approve each one's tools: deskhand connectors approve NAME",
        found.len(),
        l.file.display()
    ));
    Ok(())
}
