//! Plugins: one installable bundle of skills, slash commands and connector
//! definitions, with a manifest.
//!
//! A plugin is a folder in the layout other agents use, so people can bring
//! theirs: a manifest (`plugin.json`, or `.claude-plugin/plugin.json`) with
//! `name` (the Agent Skills naming rule), `version`, `description`;
//! `skills/<name>/SKILL.md` (each read by the same rules as any skill);
//! `commands/<name>.md` (a slash command: optional frontmatter with
//! `description` and `argument-hint`, then the task it starts, where
//! `$ARGUMENTS` is what follows the command and `$1`, `$2`, ... its words);
//! and `.mcp.json` (connector definitions, checked as the connector lists
//! are, shown with what each would run, and added to the person's list on
//! install, none approved: [`add_connectors`]). Hooks and agent definitions
//! run commands or change the model's instructions, so a plugin that has
//! them is refused by name.
//!
//! [`load`] reads and checks everything before anything is installed;
//! [`install`] copies a checked plugin into `<config_dir>/plugins/<name>/`
//! (beside, then moved into place); discovery reads installed plugins'
//! skills as the user's ([`crate::skills::discover`]); [`expand`] turns a
//! task that starts with `/command` into the task its template says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::skills::{self, Skill, SkillSource};

/// Where installed plugins live in the user's config folder.
pub fn plugins_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("plugins")
}

/// Bytes a command template may have.
const MAX_COMMAND: u64 = 64 * 1024;

/// A checked plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub dir: PathBuf,
    pub skills: Vec<Skill>,
    pub commands: Vec<Command>,
    /// Its `.mcp.json`'s connectors, checked; added to the person's list on
    /// install, each started only after the person approves its tools.
    pub connectors: Vec<crate::connectors::Connector>,
}

/// A slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Without the slash: `weekly-report`.
    pub name: String,
    pub description: String,
    pub argument_hint: Option<String>,
    /// The task it starts, with `$ARGUMENTS`, `$1`, ...
    pub template: String,
}

#[derive(Deserialize)]
struct Manifest {
    name: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
    description: Option<serde_json::Value>,
}

/// Reads and checks the plugin folder `dir`: its manifest, every skill, every
/// command, its connector list. The first problem is the error, naming the
/// file and the rule.
pub fn load(dir: &Path) -> Result<Plugin, String> {
    let manifest_file = [dir.join("plugin.json"), dir.join(".claude-plugin").join("plugin.json")]
        .into_iter()
        .find(|f| f.is_file())
        .ok_or_else(|| {
            format!(
                "{} has no plugin manifest: a plugin needs plugin.json (or .claude-plugin/plugin.json) with its \
                 name, version and description",
                dir.display()
            )
        })?;
    let text = std::fs::read_to_string(&manifest_file).map_err(|e| format!("{}: {e}", manifest_file.display()))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a JSON manifest ({e})", manifest_file.display()))?;
    let text_field = |field: &str, v: Option<serde_json::Value>| -> Result<Option<String>, String> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{}: `{field}` must be text", manifest_file.display())),
        }
    };
    let name = text_field("name", m.name)?
        .ok_or_else(|| format!("{}: the manifest has no `name`", manifest_file.display()))?;
    check_name(&name).map_err(|rule| format!("{}: the name {name:?} {rule}", manifest_file.display()))?;
    let version = text_field("version", m.version)?;
    let description = text_field("description", m.description)?;

    for refused in ["hooks", "agents"] {
        if dir.join(refused).exists() {
            return Err(format!(
                "{}: this plugin has {refused}/, which would run commands or change the model's instructions; \
                 deskhand installs skills, commands and connector definitions only. Remove {refused}/ to install \
                 the rest",
                dir.display()
            ));
        }
    }

    let mut skills = Vec::new();
    for skill_dir in folders(&dir.join("skills"))? {
        let file = skill_dir.join(skills::SKILL_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        skills.push(skills::parse_skill_strict(&text, SkillSource::User, Some(&skill_dir)).map_err(|e| e.to_string())?);
    }
    let mut commands = Vec::new();
    let commands_dir = dir.join("commands");
    if commands_dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&commands_dir)
            .map_err(|e| format!("{}: {e}", commands_dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        files.sort();
        for file in files {
            commands.push(command(&file)?);
        }
    }
    let connectors = connectors(&dir.join(".mcp.json"))?;
    if skills.is_empty() && commands.is_empty() && connectors.is_empty() {
        return Err(format!(
            "{}: the plugin has no skills/, commands/ or .mcp.json, so it would add nothing",
            dir.display()
        ));
    }
    Ok(Plugin {
        name,
        version,
        description,
        dir: dir.to_path_buf(),
        skills,
        commands,
        connectors,
    })
}

/// The Agent Skills naming rule, used for plugins and commands too.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        Err("must be 1 to 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Err("must be lowercase letters, digits and hyphens")
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        Err("may not start or end with a hyphen or have two in a row")
    } else {
        Ok(())
    }
}

/// The folders directly in `dir` (none if it does not exist), in name order.
fn folders(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    Ok(found)
}

fn command(file: &Path) -> Result<Command, String> {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_name(&name).map_err(|rule| format!("{}: the command name {name:?} {rule}", file.display()))?;
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    if size > MAX_COMMAND {
        return Err(format!(
            "{}: {size} bytes; a command's template may have at most {MAX_COMMAND}",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let (front, body) = match text.strip_prefix("---\n").and_then(|rest| rest.split_once("\n---")) {
        Some((front, body)) => (Some(front), body.trim_start_matches(['-', '\r', '\n'])),
        None => (None, text.as_str()),
    };
    let fields: BTreeMap<String, serde_yaml_ng::Value> = match front {
        Some(f) if !f.trim().is_empty() => serde_yaml_ng::from_str(f)
            .map_err(|e| format!("{}: the frontmatter is not valid YAML: {e}", file.display()))?,
        _ => BTreeMap::new(),
    };
    let field = |k: &str| fields.get(k).and_then(serde_yaml_ng::Value::as_str).map(str::to_owned);
    let template = body.trim().to_owned();
    if template.is_empty() {
        return Err(format!(
            "{}: the command says no task; write the task after the frontmatter",
            file.display()
        ));
    }
    Ok(Command {
        description: field("description").unwrap_or_else(|| template.lines().next().unwrap_or_default().to_owned()),
        argument_hint: field("argument-hint"),
        name,
        template,
    })
}

/// The connectors of an `mcpServers` file, checked as a connector list is
/// (none if there is no file).
fn connectors(file: &Path) -> Result<Vec<crate::connectors::Connector>, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    crate::connectors::config::import(&text, file, crate::connectors::Scope::User)
}

/// Adds the plugin's connectors to the person's list (`<config_dir>/connectors.json`),
/// none approved: each is started only after the person approves its tools
/// (`deskhand connectors approve NAME`, or the Connectors page). A name the
/// list already has refuses them all, before anything is written.
pub fn add_connectors(plugin: &Plugin, config_dir: &Path) -> Result<Vec<String>, String> {
    use crate::connectors::config::{List, user_file};
    if plugin.connectors.is_empty() {
        return Ok(Vec::new());
    }
    let file = user_file(config_dir);
    let mut list = List::load(&file, crate::connectors::Scope::User)?;
    for c in &plugin.connectors {
        if list.get(&c.name)?.is_some() {
            return Err(format!(
                "your connectors already have one named {} ({}); remove it first (deskhand connectors remove {}) \
                 or install the plugin without it",
                c.name,
                file.display(),
                c.name
            ));
        }
    }
    for c in &plugin.connectors {
        list.put(c)?;
    }
    list.save()?;
    Ok(plugin.connectors.iter().map(|c| c.name.clone()).collect())
}

/// Takes out of the person's list the connectors the plugin added (those
/// still as the plugin defined them; one the person changed is kept), with
/// their approvals. Returns their names.
pub fn remove_connectors(plugin: &Plugin, config_dir: &Path) -> Result<Vec<String>, String> {
    use crate::connectors::config::{List, user_file};
    let mut list = List::load(&user_file(config_dir), crate::connectors::Scope::User)?;
    let mut removed = Vec::new();
    for c in &plugin.connectors {
        if list.get(&c.name)?.is_some_and(|now| now.transport == c.transport)
            && crate::connectors::remove(&mut list, &c.name, Some(config_dir))?.is_some()
        {
            removed.push(c.name.clone());
        }
    }
    Ok(removed)
}

impl Plugin {
    /// What the plugin brings, in the person's words, for before it is installed.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{}{}{}",
            self.name,
            self.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
            self.description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )];
        for s in &self.skills {
            lines.push(format!("skill {}: {}", s.name, s.description));
            lines.extend(s.declarations().into_iter().map(|l| format!("  {l}")));
        }
        for c in &self.commands {
            lines.push(format!(
                "command /{}{}: {}",
                c.name,
                c.argument_hint.as_deref().map(|h| format!(" {h}")).unwrap_or_default(),
                c.description
            ));
            lines.push(format!(
                "  starts the task: {}",
                c.template.lines().next().unwrap_or_default()
            ));
        }
        for c in &self.connectors {
            let runs = match &c.transport {
                crate::connectors::Transport::Stdio { command, args, env } => {
                    let mut line = format!("runs {command} {}", args.join(" "));
                    if !env.is_empty() {
                        // Names only: a value may be a key.
                        let names: Vec<&str> = env.keys().map(String::as_str).collect();
                        line.push_str(&format!(" with the variables {}", names.join(", ")));
                    }
                    line
                }
                crate::connectors::Transport::Remote { url, headers } => {
                    let mut line = format!("reaches {url}");
                    for (name, value) in headers {
                        // By name, with the variables its value takes; never a value.
                        let vars = crate::connectors::mcp::http::variables(value);
                        if vars.is_empty() {
                            line.push_str(&format!(", sending the header {name} (its value is in the plugin)"));
                        } else {
                            line.push_str(&format!(
                                ", sending the header {name} with {} from deskhand's environment",
                                vars.join(", ")
                            ));
                        }
                    }
                    line
                }
            };
            lines.push(format!(
                "connector {}: {}; added to your connectors, started only after you approve its tools",
                c.name,
                runs.trim_end()
            ));
            if !c.settings.pass_env.is_empty() {
                lines.push(format!(
                    "  passes from deskhand's environment: {}",
                    c.settings.pass_env.join(", ")
                ));
            }
            lines.push(format!(
                "  access: {}{}",
                match c.settings.access {
                    crate::connectors::Access::ReadOnly => "read-only",
                    crate::connectors::Access::ReadWrite => "read-write",
                },
                if c.settings.private { ", private results" } else { "" }
            ));
        }
        lines
    }
}

/// Installs the checked plugin into `<config_dir>/plugins/<name>/`; a plugin
/// of that name already there is refused unless `replace` (then moved aside).
pub fn install(plugin: &Plugin, config_dir: &Path, replace: bool) -> Result<PathBuf, String> {
    let target = plugins_dir(config_dir).join(&plugin.name);
    if target.exists() && !replace {
        return Err(format!(
            "a plugin named {} is already installed at {}; remove it first, or replace it",
            plugin.name,
            target.display()
        ));
    }
    crate::skill_creator::place(&plugin.dir, &target, 256 << 20)?;
    Ok(target)
}

/// The installed plugins, and the ones that could not be read.
pub fn installed(config_dir: &Path) -> (Vec<Plugin>, Vec<String>) {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    match folders(&plugins_dir(config_dir)) {
        Ok(dirs) => {
            for d in dirs {
                match load(&d) {
                    Ok(p) => ok.push(p),
                    Err(e) => problems.push(e),
                }
            }
        }
        Err(e) => problems.push(e),
    }
    (ok, problems)
}

/// The task a slash command starts: `/name words...` becomes its template
/// with `$ARGUMENTS` the words and `$1`, `$2`, ... each word (missing ones
/// empty). `None` when `task` does not start with a known command.
pub fn expand(task: &str, plugins: &[Plugin]) -> Option<String> {
    let rest = task.trim_start().strip_prefix('/')?;
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let command = plugins.iter().flat_map(|p| &p.commands).find(|c| c.name == name)?;
    let args = args.trim();
    let words: Vec<String> = shlex::split(args).unwrap_or_else(|| args.split_whitespace().map(str::to_owned).collect());
    let mut out = command.template.replace("$ARGUMENTS", args);
    for i in (1..=9).rev() {
        out = out.replace(&format!("${i}"), words.get(i - 1).map(String::as_str).unwrap_or(""));
    }
    Some(out.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(root: &Path) -> PathBuf {
        let dir = root.join("team-kit");
        std::fs::create_dir_all(dir.join(".claude-plugin")).unwrap();
        std::fs::write(
            dir.join(".claude-plugin/plugin.json"),
            r#"{"name": "team-kit", "version": "1.0.0", "description": "Our team's reports"}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("commands")).unwrap();
        std::fs::write(
            dir.join("commands/weekly-report.md"),
            "---\ndescription: The week's notes as a digest\nargument-hint: FOLDER\n---\n\nRound up the notes in $1 from last week\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("skills/team-inventory")).unwrap();
        std::fs::write(
            dir.join("skills/team-inventory/SKILL.md"),
            "---\nname: team-inventory\ndescription: List the team's files.\nmetadata:\n  deskhand-entry: inventory.run\n---\nbody\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".mcp.json"),
            r#"{"mcpServers": {"calendar": {"command": "npx", "args": ["cal"]}}}"#,
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_plugin_is_read_checked_installed_and_its_commands_expand() {
        let tmp = tempfile::tempdir().unwrap();
        let p = load(&plugin(tmp.path())).unwrap();
        assert_eq!(p.name, "team-kit");
        assert_eq!(p.skills.len(), 1);
        assert_eq!(
            p.connectors.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["calendar"]
        );
        assert_eq!(p.commands[0].argument_hint.as_deref(), Some("FOLDER"));
        let summary = p.summary().join("\n");
        assert!(
            summary.contains("command /weekly-report FOLDER: The week's notes as a digest"),
            "{summary}"
        );
        assert!(
            summary
                .contains("connector calendar: runs npx cal; added to your connectors, started only after you approve"),
            "{summary}"
        );

        let config = tmp.path().join("config");
        let at = install(&p, &config, false).unwrap();
        assert!(at.join("skills/team-inventory/SKILL.md").is_file());
        assert!(install(&p, &config, false).unwrap_err().contains("already installed"));
        let (found, problems) = installed(&config);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            expand("/weekly-report 'context/team notes'", &found).as_deref(),
            Some("Round up the notes in context/team notes from last week")
        );
        assert_eq!(expand("/nope x", &found), None);
        assert_eq!(expand("no slash", &found), None);
    }

    #[test]
    fn a_plugins_remote_connector_shows_its_headers_variables_and_access_before_install() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = plugin(tmp.path());
        std::fs::write(
            dir.join(".mcp.json"),
            r#"{"mcpServers": {
                 "calendar": {"command": "npx", "args": ["cal"], "env": {"CAL_REGION": "eu"}},
                 "docs": {"url": "https://docs.example.com/mcp",
                          "headers": {"Authorization": "Bearer ${ANTHROPIC_API_KEY}", "X-Team": "literal-secret-42"}}
               },
               "deskhand": {"docs": {"access": "read-only", "passEnv": ["GITHUB_TOKEN"], "private": true}}}"#,
        )
        .unwrap();
        let p = load(&dir).unwrap();
        let summary = p.summary().join("\n");
        assert!(!summary.contains("literal-secret-42"), "{summary}");
        assert!(
            summary.contains(
                "connector docs: reaches https://docs.example.com/mcp, sending the header Authorization with \
                 ANTHROPIC_API_KEY from deskhand's environment, sending the header X-Team (its value is in the plugin)"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("connector docs: reaches https://docs.example.com/mcp")
                && summary.contains(
                    "  passes from deskhand's environment: GITHUB_TOKEN\n  access: read-only, private results"
                ),
            "{summary}"
        );
        assert!(
            summary.contains("runs npx cal with the variables CAL_REGION;") && summary.contains("  access: read-write"),
            "{summary}"
        );
    }

    #[test]
    fn what_a_plugin_may_not_bring_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = plugin(tmp.path());
        std::fs::create_dir_all(dir.join("hooks")).unwrap();
        assert!(load(&dir).unwrap_err().contains("has hooks/, which would run commands"));
        std::fs::remove_dir(dir.join("hooks")).unwrap();
        std::fs::write(dir.join("commands/Bad Name.md"), "task").unwrap();
        assert!(load(&dir).unwrap_err().contains("the command name \"Bad Name\""));
        std::fs::remove_file(dir.join("commands/Bad Name.md")).unwrap();
        std::fs::write(
            dir.join("skills/team-inventory/SKILL.md"),
            "---\nname: team-inventory\ndescription: d\nmodel: x\n---\n",
        )
        .unwrap();
        assert!(
            load(&dir)
                .unwrap_err()
                .contains("`model` is not in the Agent Skills format")
        );
        std::fs::write(dir.join(".claude-plugin/plugin.json"), r#"{"name": "Team Kit"}"#).unwrap();
        assert!(load(&dir).unwrap_err().contains("must be lowercase"));
        std::fs::remove_dir_all(dir.join(".claude-plugin")).unwrap();
        assert!(load(&dir).unwrap_err().contains("has no plugin manifest"));
    }
}
