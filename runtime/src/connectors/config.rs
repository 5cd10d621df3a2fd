//! The connector lists: the person's (`<config dir>/connectors.json`) and a
//! workspace's (`.deskhand/connectors.json`), both in the `mcpServers` JSON
//! shape other MCP clients use, so people can paste theirs.
//!
//! deskhand's own settings for each connector (read-only or read-write,
//! disabled tools, private results, variables passed from deskhand's
//! environment) live beside `mcpServers` under a `deskhand` key, so the file
//! stays one other clients read. Any key deskhand does not know is kept as
//! it was when the file is written back. Bad input names the file, the
//! connector and what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name of both lists.
pub const FILE: &str = "connectors.json";

/// Where a connector was listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The person's own list, for every workspace.
    User,
    /// One workspace's list (its canonical root).
    Workspace(PathBuf),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::User => f.write_str("your connectors"),
            Scope::Workspace(p) => write!(f, "the workspace {}", p.display()),
        }
    }
}

/// How a connector is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A local server over stdio: started in its sandbox.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Variables with their values, as the person wrote them.
        env: BTreeMap<String, String>,
    },
    /// A remote server over Streamable HTTP, reached through the run's egress.
    Remote {
        url: String,
        /// HTTP headers sent with every request (`Authorization`, ...). A
        /// value may name variables of deskhand's environment as `${VAR}`,
        /// read when it connects, so a token stays out of the file.
        headers: BTreeMap<String, String>,
    },
}

/// What the person lets a connector do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Every tool runs within its approved step, as a read.
    ReadOnly,
    /// Tools not annotated read-only are actions: declared by the step and approved per the mode.
    #[default]
    ReadWrite,
}

/// deskhand's own settings for one connector, kept under `deskhand` beside `mcpServers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub access: Access,
    /// Tools not offered to the model (large servers would flood its context).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disabled_tools: BTreeSet<String>,
    /// Its results are the person's private data: reading one seals the run's egress.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// Variables passed from deskhand's own environment when it starts (by name; keys stay out of the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
}

/// One connector as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub name: String,
    pub scope: Scope,
    pub transport: Transport,
    pub settings: Settings,
}

impl Connector {
    /// The key its pins and "always allow" answers are kept under.
    pub fn key(&self) -> String {
        match &self.scope {
            Scope::User => format!("user/{}", self.name),
            Scope::Workspace(p) => format!("{}/{}", p.display(), self.name),
        }
    }
}

/// Longest connector name: `mcp__NAME__TOOL` must fit the model's 64 characters with a tool name.
pub const MAX_NAME: usize = 24;

/// Why a name cannot be a connector's: it becomes the prefix of its tools' names.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "the connector name {name:?} must have 1 to {MAX_NAME} characters (it prefixes its tools' names)"
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || name.contains("__") {
        return Err(format!(
            "the connector name {name:?} may hold only letters, digits, '-' and single '_' (it prefixes its \
             tools' names, mcp__{name}__TOOL); choose another name, such as \"mail\" or \"files\""
        ));
    }
    Ok(())
}

/// One list file as read: its connectors in file order, and the raw JSON to write back.
#[derive(Debug, Clone)]
pub struct List {
    pub file: PathBuf,
    pub scope: Scope,
    raw: serde_json::Map<String, serde_json::Value>,
}

/// The list files for a person (`config_dir`) and a workspace (its `.deskhand/` folder).
pub fn user_file(config_dir: &Path) -> PathBuf {
    config_dir.join(FILE)
}

pub fn workspace_file(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl List {
    /// Reads `file`; a missing file is an empty list.
    pub fn load(file: &Path, scope: Scope) -> Result<List, String> {
        let raw = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read the connector list {}: {e}", file.display())),
        };
        let list = List::parse(&raw, file, scope)?;
        list.connectors()?;
        Ok(list)
    }

    /// Parses a list's text (`file` only names it in errors).
    pub fn parse(text: &str, file: &Path, scope: Scope) -> Result<List, String> {
        let raw = if text.trim().is_empty() {
            serde_json::Map::new()
        } else {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => {
                    return Err(format!(
                        "{} is not a connector list: expected {{\"mcpServers\": {{\"name\": {{\"command\": ..., \
                         \"args\": [...]}}}}}}",
                        file.display()
                    ));
                }
                Err(e) => return Err(format!("{} is not valid JSON: {e}", file.display())),
            }
        };
        let list = List {
            file: file.to_owned(),
            scope,
            raw,
        };
        list.connectors()?;
        Ok(list)
    }

    fn servers(&self) -> Result<Option<&serde_json::Map<String, serde_json::Value>>, String> {
        match self.raw.get("mcpServers") {
            None => Ok(None),
            Some(serde_json::Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(format!(
                "{}: \"mcpServers\" must be an object of connectors by name",
                self.file.display()
            )),
        }
    }

    fn settings_of(&self, name: &str) -> Result<Settings, String> {
        let Some(v) = self.raw.get("deskhand").and_then(|d| d.get(name)) else {
            return Ok(Settings::default());
        };
        serde_json::from_value(v.clone()).map_err(|e| {
            format!(
                "{}: deskhand's settings for the connector {name:?} are not understood: {e} (known: access \
                 \"read-only\"/\"read-write\", disabledTools, private, passEnv)",
                self.file.display()
            )
        })
    }

    /// The connectors, checked: each name usable as a tool prefix, each entry a command or a URL.
    pub fn connectors(&self) -> Result<Vec<Connector>, String> {
        let Some(servers) = self.servers()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, entry) in servers {
            check_name(name).map_err(|e| format!("{}: {e}", self.file.display()))?;
            let transport = parse_entry(name, entry).map_err(|e| format!("{}: {e}", self.file.display()))?;
            out.push(Connector {
                name: name.clone(),
                scope: self.scope.clone(),
                transport,
                settings: self.settings_of(name)?,
            });
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Option<Connector>, String> {
        Ok(self.connectors()?.into_iter().find(|c| c.name == name))
    }

    /// Adds or replaces `connector`, keeping every other key of the file.
    pub fn put(&mut self, connector: &Connector) -> Result<(), String> {
        check_name(&connector.name)?;
        let entry = match &connector.transport {
            Transport::Stdio { command, args, env } => {
                let mut e = serde_json::json!({"command": command, "args": args});
                if !env.is_empty() {
                    e["env"] = serde_json::json!(env);
                }
                e
            }
            Transport::Remote { url, headers } => {
                let mut e = serde_json::json!({"url": url});
                if !headers.is_empty() {
                    e["headers"] = serde_json::json!(headers);
                }
                e
            }
        };
        object(&mut self.raw, "mcpServers").insert(connector.name.clone(), entry);
        let settings = serde_json::to_value(&connector.settings).map_err(|e| e.to_string())?;
        object(&mut self.raw, "deskhand").insert(connector.name.clone(), settings);
        Ok(())
    }

    /// Removes `name`; false if it was not listed.
    pub fn remove(&mut self, name: &str) -> bool {
        let found = object(&mut self.raw, "mcpServers").remove(name).is_some();
        object(&mut self.raw, "deskhand").remove(name);
        found
    }

    /// Writes the list atomically (a temp file, then a rename).
    pub fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.raw).map_err(|e| e.to_string())?;
        write_atomic(&self.file, &text)
    }
}

fn object<'m>(
    raw: &'m mut serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> &'m mut serde_json::Map<String, serde_json::Value> {
    let v = raw
        .entry(key.to_owned())
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !v.is_object() {
        *v = serde_json::Value::Object(serde_json::Map::new());
    }
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("made an object just above"),
    }
}

/// One `mcpServers` entry: `{"command", "args", "env"}` or `{"url"}`.
fn parse_entry(name: &str, entry: &serde_json::Value) -> Result<Transport, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Local {
        command: Option<String>,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        url: Option<String>,
        // Other clients' fields deskhand has no use for.
        #[serde(default, rename = "type")]
        _kind: Option<String>,
        #[serde(default, rename = "cwd")]
        _cwd: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default, rename = "disabled")]
        _disabled: Option<bool>,
    }
    let local: Local = serde_json::from_value(entry.clone()).map_err(|e| {
        format!(
            "the connector {name:?} is not in a shape deskhand knows ({e}); a local server is {{\"command\": \
             \"npx\", \"args\": [...], \"env\": {{...}}}}, a remote one {{\"url\": \"https://...\"}}"
        )
    })?;
    match (local.command, local.url) {
        (Some(_), Some(_)) => Err(format!(
            "the connector {name:?} has both a command and a url; keep the one it is"
        )),
        (Some(command), None) if command.trim().is_empty() => {
            Err(format!("the connector {name:?} has an empty command"))
        }
        (Some(command), None) => Ok(Transport::Stdio {
            command,
            args: local.args,
            env: local.env,
        }),
        (None, Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
            for (header, value) in &local.headers {
                check_header(header, value).map_err(|e| format!("the connector {name:?}: {e}"))?;
            }
            Ok(Transport::Remote {
                url,
                headers: local.headers,
            })
        }
        (None, Some(url)) => Err(format!(
            "the connector {name:?} has the url {url:?}, which is not http(s)"
        )),
        (None, None) => Err(format!(
            "the connector {name:?} has no command (a local server) and no url (a remote one); add one"
        )),
    }
}

/// Why a remote connector's header cannot be sent as written.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "the header name {name:?} is not a valid HTTP header name (letters, digits and -, such as Authorization)"
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!(
            "the value of the header {name} holds a line break or another control character"
        ));
    }
    Ok(())
}

/// Reads an `mcpServers` file pasted from another client and returns its connectors, checked.
pub fn import(text: &str, file: &Path, scope: Scope) -> Result<Vec<Connector>, String> {
    let list = List::parse(text, file, scope)?;
    if list.servers()?.is_none() {
        return Err(format!(
            "{} has no \"mcpServers\" object; it is not a connector list another MCP client wrote",
            file.display()
        ));
    }
    list.connectors()
}

/// Writes `text` to `path` through a temp file in the same folder.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Every connector a run in a workspace sees: the workspace's first, then the
/// person's (a workspace connector shadows a person's of the same name).
pub fn all(config_dir: Option<&Path>, workspace_state: &Path, workspace_root: &Path) -> Result<Vec<Connector>, String> {
    let mut out = List::load(
        &workspace_file(workspace_state),
        Scope::Workspace(workspace_root.to_owned()),
    )?
    .connectors()?;
    if let Some(dir) = config_dir {
        for c in List::load(&user_file(dir), Scope::User)?.connectors()? {
            if !out.iter().any(|o| o.name == c.name) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Connector>, String> {
        List::parse(text, Path::new("/c/connectors.json"), Scope::User)?.connectors()
    }

    #[test]
    fn the_mcp_servers_shape_with_deskhands_settings_beside_it() {
        let text = r#"{
          "mcpServers": {
            "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
            "mail": {"command": "mail-mcp", "env": {"MAIL_TOKEN": "t"}, "type": "stdio"},
            "docs": {"url": "https://docs.example.com/mcp", "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}}
          },
          "deskhand": {"mail": {"access": "read-only", "private": true, "disabledTools": ["purge"], "passEnv": ["HOME_SERVER"]}},
          "otherClient": {"theme": "dark"}
        }"#;
        let Ok(list) = parse(text) else { panic!("refused") };
        assert_eq!(list.len(), 3);
        let by = |n: &str| list.iter().find(|c| c.name == n).cloned();
        let (Some(mail), Some(files), Some(docs)) = (by("mail"), by("files"), by("docs")) else {
            panic!("{list:?}")
        };
        assert_eq!(mail.settings.access, Access::ReadOnly);
        assert!(mail.settings.private);
        assert_eq!(files.settings, Settings::default());
        assert!(matches!(&docs.transport, Transport::Remote { url, headers }
            if url.contains("docs") && headers["Authorization"] == "Bearer ${DOCS_TOKEN}"));
        // Written back, the other client's keys are kept.
        let Ok(mut l) = List::parse(text, Path::new("/c/connectors.json"), Scope::User) else {
            panic!()
        };
        l.remove("docs");
        assert!(l.raw.contains_key("otherClient"));
        assert_eq!(l.connectors().map(|c| c.len()), Ok(2));
    }

    #[test]
    fn bad_lists_name_the_problem() {
        let cases = [
            (r#"[1]"#, "is not a connector list"),
            (r#"{"mcpServers": []}"#, "must be an object"),
            (r#"{"mcpServers": {"x": {"args": ["a"]}}}"#, "has no command"),
            (
                r#"{"mcpServers": {"x": {"command": "a", "url": "https://b"}}}"#,
                "both a command and a url",
            ),
            (
                r#"{"mcpServers": {"x": {"comand": "a"}}}"#,
                "not in a shape deskhand knows",
            ),
            (
                r#"{"mcpServers": {"my mail": {"command": "a"}}}"#,
                "may hold only letters",
            ),
            (r#"{"mcpServers": {"a__b": {"command": "a"}}}"#, "may hold only letters"),
            (
                r#"{"mcpServers": {"x": {"command": "a"}}, "deskhand": {"x": {"acess": "read-only"}}}"#,
                "not understood",
            ),
            (r#"{"mcpServers": {"x": {"url": "file:///etc"}}}"#, "not http"),
            (
                r#"{"mcpServers": {"x": {"url": "https://a", "headers": {"A B": "c"}}}}"#,
                "not a valid HTTP header name",
            ),
        ];
        for (text, expected) in cases {
            match parse(text) {
                Ok(_) => panic!("{text} was accepted"),
                Err(e) => assert!(e.contains(expected) && e.contains("connectors.json"), "{text}: {e}"),
            }
        }
        assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn a_workspace_list_sits_in_its_state_folder_and_shadows_the_persons() {
        let Ok(tmp) = tempfile::tempdir() else { panic!() };
        let (config, state, root) = (
            tmp.path().join("config"),
            tmp.path().join("ws/.deskhand"),
            tmp.path().join("ws"),
        );
        let write = |file: PathBuf, text: &str| {
            std::fs::create_dir_all(file.parent().unwrap_or(Path::new("."))).ok();
            std::fs::write(file, text).ok();
        };
        write(
            user_file(&config),
            r#"{"mcpServers": {"mail": {"command": "a"}, "chat": {"command": "b"}}}"#,
        );
        write(workspace_file(&state), r#"{"mcpServers": {"mail": {"command": "c"}}}"#);
        let Ok(all) = all(Some(&config), &state, &root) else {
            panic!()
        };
        let names: Vec<(&str, &Scope)> = all.iter().map(|c| (c.name.as_str(), &c.scope)).collect();
        assert_eq!(
            names,
            [("mail", &Scope::Workspace(root.clone())), ("chat", &Scope::User)]
        );
        assert_ne!(
            all[0].key(),
            Connector {
                scope: Scope::User,
                ..all[0].clone()
            }
            .key()
        );
    }
}
