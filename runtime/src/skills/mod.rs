//! Skills in the Agent Skills format, their discovery, and matching a
//! task's text to one for the offline planner.
//!
//! A skill is a folder with a `SKILL.md`: YAML frontmatter with `name` and
//! `description`, deskhand's own fields as strings under `metadata`
//! (`deskhand-entry`, `deskhand-keywords`, `deskhand-params`,
//! `deskhand-param-<name>`; see `skills/README.md`), then a Markdown body.
//! [`parse_skill`] reads one, [`discover`] finds them all (workspace, then the
//! user's folder, then the [`bundled`] ones), and [`match_task`] picks the one
//! a task asks for and fills its parameters from the task's words.

pub mod component;
mod matching;
mod pages;
mod parse;
pub mod period;
pub mod trust;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use matching::{MIN_SCORE, Match, MatchContext, match_task, match_task_on};
pub use parse::{parse_skill, parse_skill_strict};
pub use trust::{Distrust, TrustStore};

/// The file a skill folder must hold.
pub const SKILL_FILE: &str = "SKILL.md";

/// Where a skill was found; earlier sources override later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkillSource {
    /// `<workspace>/.agents/skills/<name>/SKILL.md`
    Workspace,
    /// `<user skills folder>/<name>/SKILL.md`
    User,
    /// Shipped in the binary (the repository's `skills/`).
    Bundled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub source: SkillSource,
    /// The skill's folder; `None` for bundled skills, which live in the binary.
    pub dir: Option<PathBuf>,
    pub entry: Entry,
    pub params: Vec<ParamSpec>,
    /// Lowercased phrases from `deskhand-keywords`.
    pub keywords: Vec<String>,
    /// `license`: a licence name or a file in the skill's folder.
    pub license: Option<String>,
    /// `compatibility`: what the skill needs to run (at most 500 characters).
    pub compatibility: Option<String>,
    /// `allowed-tools`, split at spaces.
    pub allowed_tools: Vec<String>,
    /// `metadata` other than deskhand's own `deskhand-*` fields.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// What in the frontmatter is outside the Agent Skills format (another
    /// agent's own fields, metadata that is not text): ignored when the skill
    /// loads, refused by [`parse_skill_strict`].
    pub outside_format: Vec<String>,
    /// The Markdown after the frontmatter.
    pub body: String,
}

impl Skill {
    /// What a skill declares, in the person's words: what runs, with which
    /// parameters, what else it asks for, and the files it ships.
    pub fn declarations(&self) -> Vec<String> {
        let skill = self;
        let mut lines = Vec::new();
        lines.push(match &skill.entry {
            Entry::Bundled { tool, operation } => {
                format!("runs: deskhand's {tool} tool ({tool}.{operation}), sandboxed")
            }
            Entry::Component { path, operation } => {
                let code = trust::code_digest(path).map_or_else(
                    |e| format!("cannot be read: {e}"),
                    |(len, digest)| format!("{len} bytes, sha256 {digest}"),
                );
                format!(
                    "runs: its own code, {} ({operation}), sandboxed; {code}",
                    path.display()
                )
            }
            Entry::Plan(steps) => {
                let calls: Vec<&str> = steps.iter().flat_map(|s| &s.calls).map(|c| c.call.as_str()).collect();
                format!(
                    "runs: a recorded plan of {} step(s), deskhand's tools in the sandbox: {}",
                    steps.len(),
                    calls.join(", ")
                )
            }
            Entry::None => "runs: nothing by itself; its instructions guide a model".into(),
        });
        for p in &skill.params {
            let kind = match &p.kind {
                ParamKind::Path => "a folder or file".to_owned(),
                ParamKind::File => match p.extensions.as_slice() {
                    [] => "a file".to_owned(),
                    e => format!("a .{} file", e.join("/.")),
                },
                ParamKind::Date => "a date".into(),
                ParamKind::Period => "a period".into(),
                ParamKind::Pages => "pages".into(),
                ParamKind::Text => "text".into(),
                ParamKind::Format(o) => format!("one of {}", o.join(", ")),
            };
            let need = match (&p.default, p.required) {
                (_, true) => "required".to_owned(),
                (Some(d), _) => format!("default {}", d),
                (None, false) => "optional".into(),
            };
            lines.push(format!("  {} ({kind}, {need}): {}", p.name, p.description));
        }
        if !skill.allowed_tools.is_empty() {
            lines.push(format!(
                "allowed tools (for other agents; deskhand asks as its mode says): {}",
                skill.allowed_tools.join(" ")
            ));
        }
        if let Some(c) = &skill.compatibility {
            lines.push(format!("needs: {}", c));
        }
        for problem in &skill.outside_format {
            lines.push(format!("ignored, outside the Agent Skills format: {problem}"));
        }
        if let Some(l) = &skill.license {
            lines.push(format!("licence: {}", l));
        }
        if let Some(dir) = &skill.dir {
            for sub in ["scripts", "references", "assets"] {
                let files = files_in(&dir.join(sub));
                if !files.is_empty() {
                    lines.push(format!("{sub}/: {}", files.join(", ")));
                }
            }
        }
        lines
    }
}

/// The names of the files directly in `dir`, sorted (none if it is not a folder).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The catalogue a model sees: each skill's name and description (its
/// instructions and files are read on demand with `read_skill`, [`disclose`]).
pub fn catalogue(skills: &[Skill]) -> String {
    let mut text = String::from(
        "Read a skill's instructions with read_skill {\"name\"} before following it, and a file it names with \
         read_skill {\"name\", \"file\"}.\n",
    );
    for s in skills {
        text.push_str(&format!("- {}: {}\n", s.name, s.description));
    }
    text
}

/// Bytes of a skill's file `read_skill` returns at most.
const MAX_DISCLOSED: u64 = 64 * 1024;

/// `read_skill`: a skill's `SKILL.md` body (and the files it ships), or one
/// of its files under `scripts/`, `references/` or `assets/`, never a path
/// that leaves that folder or follows a link.
pub fn disclose(skills: &[Skill], input: &serde_json::Value) -> Result<String, String> {
    let name = input
        .get("name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let skill = skills.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
        format!("no skill named {name:?}; the skills are: {}", names.join(", "))
    })?;
    let Some(file) = input.get("file").and_then(serde_json::Value::as_str) else {
        let mut text = format!("# Skill {}\n\n{}", skill.name, skill.body);
        if let Some(dir) = &skill.dir {
            for sub in ["scripts", "references", "assets"] {
                let files = files_in(&dir.join(sub));
                if !files.is_empty() {
                    text.push_str(&format!("\n\nFiles in {sub}/: {}", files.join(", ")));
                }
            }
        }
        return Ok(text);
    };
    let Some(dir) = &skill.dir else {
        return Err(format!("{} is bundled with deskhand and ships no files", skill.name));
    };
    let rel = Path::new(file);
    let mut parts = rel.components();
    let inside = matches!(parts.next(), Some(std::path::Component::Normal(first))
            if ["scripts", "references", "assets"].iter().any(|d| first == *d))
        && parts.all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Err(format!(
            "{file:?} is not a file of the skill: name one under scripts/, references/ or assets/"
        ));
    }
    // No link anywhere on the way: what is read is the skill's own file.
    let mut at = dir.clone();
    for c in rel.components() {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).map_err(|e| format!("{file}: {e}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!("{file} is a link; read_skill reads only the skill's own files"));
        }
    }
    let meta = std::fs::metadata(&at).map_err(|e| format!("{file}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{file} is not a file"));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(&at).map_err(|e| format!("{file}: {e}"))?,
            MAX_DISCLOSED,
        ),
        &mut bytes,
    )
    .map_err(|e| format!("{file}: {e}"))?;
    match String::from_utf8(bytes) {
        Ok(text) if meta.len() > MAX_DISCLOSED => Ok(format!(
            "{text}\n[cut: the file has {} bytes; the first {MAX_DISCLOSED} are shown]",
            meta.len()
        )),
        Ok(text) => Ok(text),
        Err(_) => Ok(format!(
            "{file} is a binary file of {} bytes; it is not shown as text",
            meta.len()
        )),
    }
}

/// What runs when the skill is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An operation of a tool bundled into deskhand (`inventory.run`).
    Bundled { tool: String, operation: String },
    /// An operation of a WIT component shipped in the skill's folder
    /// (`component:scripts/tool.wasm#run`); the path is resolved against
    /// the skill's folder when it has one.
    Component { path: PathBuf, operation: String },
    /// A recorded plan (`deskhand-entry: plan`, `deskhand-step-<n>`): the
    /// steps of a run that went well, each with its calls in order, whose
    /// `{{param}}` placeholders the offline planner fills with the
    /// parameters' values ([`RecordedStep::filled`]).
    Plan(Vec<RecordedStep>),
    /// No sandboxed entry point: the skill's instructions need a model.
    None,
}

/// One step of a recorded plan: its title, the folders it reads and writes,
/// and its calls; any text in them may hold `{{param}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedStep {
    pub title: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
    pub calls: Vec<RecordedCall>,
}

/// One call of a recorded step: `tool.operation` and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedCall {
    pub call: String,
    #[serde(default)]
    pub args: serde_json::Map<String, serde_json::Value>,
}

impl RecordedCall {
    /// The tool and the operation (`inventory`, `run`).
    pub fn tool_operation(&self) -> (&str, &str) {
        self.call.split_once('.').unwrap_or((self.call.as_str(), ""))
    }
}

impl RecordedStep {
    /// The step with each `{{name}}` replaced by the parameter's value. An
    /// argument that is only a placeholder of a parameter without a value
    /// is left out (the tool's default holds), as is a read or write of one.
    pub fn filled(&self, params: &std::collections::BTreeMap<String, String>) -> RecordedStep {
        let list = |v: &[String]| -> Vec<String> { v.iter().filter_map(|t| fill_text(t, params)).collect() };
        RecordedStep {
            title: fill_text(&self.title, params).unwrap_or_else(|| self.title.clone()),
            reads: list(&self.reads),
            writes: list(&self.writes),
            calls: self
                .calls
                .iter()
                .map(|c| RecordedCall {
                    call: c.call.clone(),
                    args: c
                        .args
                        .iter()
                        .filter_map(|(k, v)| fill_value(v, params).map(|v| (k.clone(), v)))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// `text` with its `{{name}}` placeholders filled; `None` when it is one
/// placeholder alone whose parameter has no value.
fn fill_text(text: &str, params: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else { break };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        match params.get(name.trim()) {
            Some(v) => out.push_str(v),
            None if text.trim() == format!("{{{{{name}}}}}") => return None,
            None => {}
        }
        rest = &rest[start + 4 + len..];
    }
    out.push_str(rest);
    Some(out)
}

fn fill_value(v: &serde_json::Value, params: &std::collections::BTreeMap<String, String>) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match v {
        Value::String(s) => Value::String(fill_text(s, params)?),
        Value::Array(items) => Value::Array(items.iter().filter_map(|i| fill_value(i, params)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| fill_value(v, params).map(|v| (k.clone(), v)))
                .collect(),
        ),
        other => other.clone(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    pub required: bool,
    pub default: Option<String>,
    pub description: String,
    /// For a `file(docx|pptx)` parameter: the extensions its file may have,
    /// lowercased, so a task naming two files gives each parameter its own
    /// whatever their order. Empty: any.
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamKind {
    /// A folder (or a file), relative to the workspace or absolute.
    Path,
    /// A file, relative to the workspace or absolute: never guessed from
    /// the granted folders, as a folder may be.
    File,
    /// `YYYY-MM-DD`, or `YYYY-MM` when only a month is named.
    Date,
    /// One of a fixed list of words, lowercased.
    Format(Vec<String>),
    /// Free text.
    Text,
    /// A span of days, `YYYY-MM-DD..YYYY-MM-DD`, from the task's words
    /// ("in March", "last week", "since 2026-02-01"; see [`period`]).
    Period,
    /// Pages: `each`, or one range per new file, `1-3;4-6` ("pages 1-3 and
    /// 4-6", "each page"; read by `skills/pages.rs`).
    Pages,
}

/// Fills a parameter's `{name}` with the name of the file or folder that
/// parameter `name` holds, without its extension: the default
/// `output/{input}.txt` with `input` = `projects/inbox/contract.pdf` becomes
/// `output/contract.txt`, so a deliverable is named after what it was made
/// from. A template whose parameter is not filled yet stays as it is (the
/// planner resolves again once the person has answered).
pub fn resolve_templates(params: &mut std::collections::BTreeMap<String, String>) {
    let stems: Vec<(String, String)> = params
        .iter()
        .filter_map(|(name, value)| {
            let path = Path::new(value.trim_end_matches('/'));
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            (!stem.is_empty() && !value.contains('{')).then(|| (format!("{{{name}}}"), stem))
        })
        .collect();
    for value in params.values_mut() {
        for (template, stem) in &stems {
            if value.contains(template.as_str()) {
                *value = value.replace(template.as_str(), stem);
            }
        }
    }
}

impl ParamKind {
    /// Whether the value names something on disk (a folder or a file).
    pub fn is_path(&self) -> bool {
        matches!(self, ParamKind::Path | ParamKind::File)
    }
}

/// A `SKILL.md` that could not be used, naming the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("{}: could not be read: {source}", .file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: {message}", .file.display())]
    Frontmatter { file: PathBuf, message: String },
    #[error("{}: the frontmatter has no `{field}`; every skill needs a name and a description", .file.display())]
    MissingField { file: PathBuf, field: &'static str },
    #[error("{}: the name {name:?} {reason}", .file.display())]
    BadName {
        file: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error("{}: the name {name:?} does not match its folder {folder:?}; make them the same", .file.display())]
    NameMismatch {
        file: PathBuf,
        name: String,
        folder: String,
    },
    #[error("{}: metadata `{key}`: {message}", .file.display())]
    BadMetadata {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// The record of trusted workspace skills could not be read: none of
    /// the workspace's skills run.
    #[error("{message}")]
    TrustRecord { file: PathBuf, message: String },
}

impl SkillError {
    /// The `SKILL.md` the error is about.
    pub fn file(&self) -> &Path {
        match self {
            SkillError::Read { file, .. }
            | SkillError::Frontmatter { file, .. }
            | SkillError::MissingField { file, .. }
            | SkillError::BadName { file, .. }
            | SkillError::NameMismatch { file, .. }
            | SkillError::BadMetadata { file, .. }
            | SkillError::TrustRecord { file, .. } => file,
        }
    }
}

/// The repository's `skills/` folder, embedded: (folder name, SKILL.md).
const BUNDLED: &[(&str, &str)] = &[
    (
        "folder-inventory",
        include_str!("../../../skills/folder-inventory/SKILL.md"),
    ),
    (
        "rename-by-date",
        include_str!("../../../skills/rename-by-date/SKILL.md"),
    ),
    ("merge-pdfs", include_str!("../../../skills/merge-pdfs/SKILL.md")),
    ("pdf-to-text", include_str!("../../../skills/pdf-to-text/SKILL.md")),
    ("split-pdf", include_str!("../../../skills/split-pdf/SKILL.md")),
    ("csv-to-xlsx", include_str!("../../../skills/csv-to-xlsx/SKILL.md")),
    ("xlsx-to-csv", include_str!("../../../skills/xlsx-to-csv/SKILL.md")),
    (
        "sort-into-folders",
        include_str!("../../../skills/sort-into-folders/SKILL.md"),
    ),
    (
        "find-duplicates",
        include_str!("../../../skills/find-duplicates/SKILL.md"),
    ),
    ("notes-digest", include_str!("../../../skills/notes-digest/SKILL.md")),
    (
        "combine-workbooks",
        include_str!("../../../skills/combine-workbooks/SKILL.md"),
    ),
    (
        "convert-to-pdf",
        include_str!("../../../skills/convert-to-pdf/SKILL.md"),
    ),
    ("fill-template", include_str!("../../../skills/fill-template/SKILL.md")),
    (
        "receipts-to-spreadsheet",
        include_str!("../../../skills/receipts-to-spreadsheet/SKILL.md"),
    ),
];

fn parse_bundled() -> impl Iterator<Item = Result<Skill, SkillError>> {
    BUNDLED.iter().map(|(folder, text)| {
        let file = Path::new("skills").join(folder).join(SKILL_FILE);
        parse::parse_at(text, SkillSource::Bundled, None, &file, Some(folder))
    })
}

/// The skills shipped in the binary. A unit test keeps them all parseable;
/// [`discover`] reports any that are not.
pub fn bundled() -> Vec<Skill> {
    parse_bundled().filter_map(Result::ok).collect()
}

/// Every skill found, and the `SKILL.md` files that could not be used.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The skills that may be offered and run.
    pub skills: Vec<Skill>,
    /// Workspace skills found but not run until the person trusts them
    /// (`deskhand skills trust`), and why.
    pub untrusted: Vec<(Skill, Distrust)>,
    pub problems: Vec<SkillError>,
}

/// The user's own skills folder in their config folder.
pub fn user_skills_dir(config_dir: &Path) -> PathBuf {
    config_dir.join("skills")
}

/// Finds the skills for a workspace: its `.agents/skills/*/SKILL.md`, then
/// the user's (`<config_dir>/skills/*/SKILL.md`, then those of installed
/// plugins, `<config_dir>/plugins/*/skills/*/SKILL.md`), then the bundled ones. A
/// name found earlier overrides the same name later; a broken `SKILL.md`
/// becomes a problem and the others are still found. Folders are read in
/// name order; hidden ones are ignored, and a missing skills folder is not a
/// problem. A workspace skill the person has not trusted as it is now
/// ([`trust`]) is listed in `untrusted`, overrides nothing, and is not run.
pub fn discover(workspace_root: &Path, config_dir: Option<&Path>) -> Discovery {
    let mut found = Discovery::default();
    let store = TrustStore::load(config_dir).unwrap_or_else(|message| {
        found.problems.push(SkillError::TrustRecord {
            file: config_dir.map(|d| d.join(trust::TRUST_FILE)).unwrap_or_default(),
            message,
        });
        TrustStore::none()
    });
    let workspace_dir = workspace_root.join(".agents").join("skills");
    let mut candidates = skill_files(&workspace_dir, SkillSource::Workspace, &mut found.problems);
    if let Some(dir) = config_dir {
        candidates.extend(skill_files(
            &user_skills_dir(dir),
            SkillSource::User,
            &mut found.problems,
        ));
        // Installed plugins' skills are the user's too (`crate::plugins`).
        for (plugin, _) in skill_files(&dir.join("plugins"), SkillSource::User, &mut found.problems) {
            candidates.extend(skill_files(
                &plugin.join("skills"),
                SkillSource::User,
                &mut found.problems,
            ));
        }
    }
    let mut seen = BTreeSet::new();
    let parsed = candidates
        .into_iter()
        .map(|(dir, source)| read_skill(&dir, source))
        .chain(parse_bundled());
    for result in parsed {
        match result {
            Ok(skill) if skill.source == SkillSource::Workspace => match store.check(workspace_root, &skill) {
                Ok(()) => {
                    if seen.insert(skill.name.clone()) {
                        found.skills.push(skill);
                    }
                }
                Err(why) => found.untrusted.push((skill, why)),
            },
            Ok(skill) => {
                if seen.insert(skill.name.clone()) {
                    found.skills.push(skill);
                }
            }
            Err(e) => found.problems.push(e),
        }
    }
    found
}

/// The skill folders directly in `dir`, in name order.
fn skill_files(dir: &Path, source: SkillSource, problems: &mut Vec<SkillError>) -> Vec<(PathBuf, SkillSource)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(source) => {
            problems.push(SkillError::Read {
                file: dir.to_path_buf(),
                source,
            });
            return Vec::new();
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter().map(|d| (d, source)).collect()
}

fn read_skill(dir: &Path, source: SkillSource) -> Result<Skill, SkillError> {
    let file = dir.join(SKILL_FILE);
    let text = std::fs::read_to_string(&file).map_err(|source| SkillError::Read {
        file: file.clone(),
        source,
    })?;
    parse_skill(&text, source, Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_skill(root: &Path, name: &str, description: &str) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(SKILL_FILE),
            format!("---\nname: {name}\ndescription: {description}\n---\nbody\n"),
        )
        .unwrap();
    }

    #[test]
    fn templates_take_the_name_of_the_file_or_folder() {
        let mut params: std::collections::BTreeMap<String, String> = [
            ("input", "projects/inbox/contract.v2.pdf"),
            ("path", "output/{input}.txt"),
            ("folder", "projects/scans/"),
            ("merged", "output/{folder}.pdf"),
            ("later", "output/{missing}.csv"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        resolve_templates(&mut params);
        assert_eq!(params["path"], "output/contract.v2.txt");
        assert_eq!(params["merged"], "output/scans.pdf");
        assert_eq!(params["later"], "output/{missing}.csv");
    }

    #[test]
    fn bundled_skills_all_parse() {
        let errors: Vec<String> = parse_bundled().filter_map(Result::err).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let skills = bundled();
        let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "folder-inventory",
                "rename-by-date",
                "merge-pdfs",
                "pdf-to-text",
                "split-pdf",
                "csv-to-xlsx",
                "xlsx-to-csv",
                "sort-into-folders",
                "find-duplicates",
                "notes-digest",
                "combine-workbooks",
                "convert-to-pdf",
                "fill-template",
                "receipts-to-spreadsheet"
            ]
        );
        // Every `{name}` in a default names one of the skill's parameters.
        for skill in &skills {
            for default in skill.params.iter().filter_map(|p| p.default.as_deref()) {
                for name in default
                    .split('{')
                    .skip(1)
                    .filter_map(|t| t.split_once('}'))
                    .map(|t| t.0)
                {
                    assert!(
                        skill.params.iter().any(|p| p.name == name),
                        "{}: {{{name}}}",
                        skill.name
                    );
                }
            }
        }
        assert_eq!(
            skills[0].entry,
            Entry::Bundled {
                tool: "inventory".into(),
                operation: "run".into()
            }
        );
        assert_eq!(
            skills[1].entry,
            Entry::Bundled {
                tool: "rename-by-date".into(),
                operation: "propose".into()
            }
        );
        assert!(
            skills
                .iter()
                .all(|s| s.source == SkillSource::Bundled && s.dir.is_none())
        );
    }

    #[test]
    fn discovery_order_overrides_and_problems() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let config = tmp.path().join("config");
        let user = user_skills_dir(&config);
        let ws_skills = ws.join(".agents/skills");
        write_skill(&ws_skills, "folder-inventory", "the workspace's own inventory");
        write_skill(&ws_skills, "team-report", "weekly report");
        write_skill(&user, "team-report", "the user's report, overridden");
        write_skill(&user, "my-notes", "notes");
        std::fs::create_dir_all(ws_skills.join("broken")).unwrap();
        std::fs::write(ws_skills.join("broken").join(SKILL_FILE), "no frontmatter here").unwrap();
        std::fs::create_dir_all(ws_skills.join(".hidden")).unwrap();

        // Untrusted, the workspace's skills override nothing and do not run.
        let found = discover(&ws, Some(&config));
        let untrusted: Vec<(&str, Distrust)> = found.untrusted.iter().map(|(s, d)| (s.name.as_str(), *d)).collect();
        assert_eq!(
            untrusted,
            [("folder-inventory", Distrust::New), ("team-report", Distrust::New)]
        );
        let first: Vec<(&str, SkillSource)> = found
            .skills
            .iter()
            .map(|s| (s.name.as_str(), s.source))
            .take(3)
            .collect();
        assert_eq!(
            first,
            [
                ("my-notes", SkillSource::User),
                ("team-report", SkillSource::User),
                ("folder-inventory", SkillSource::Bundled),
            ]
        );

        let trusted: Vec<Skill> = found.untrusted.iter().map(|(s, _)| s.clone()).collect();
        TrustStore::load(Some(&config))
            .unwrap()
            .trust(&ws, &trusted.iter().collect::<Vec<_>>())
            .unwrap();
        let found = discover(&ws, Some(&config));
        assert!(found.untrusted.is_empty());
        let names: Vec<(&str, SkillSource)> = found.skills.iter().map(|s| (s.name.as_str(), s.source)).collect();
        assert_eq!(
            names,
            [
                ("folder-inventory", SkillSource::Workspace),
                ("team-report", SkillSource::Workspace),
                ("my-notes", SkillSource::User),
                ("rename-by-date", SkillSource::Bundled),
                ("merge-pdfs", SkillSource::Bundled),
                ("pdf-to-text", SkillSource::Bundled),
                ("split-pdf", SkillSource::Bundled),
                ("csv-to-xlsx", SkillSource::Bundled),
                ("xlsx-to-csv", SkillSource::Bundled),
                ("sort-into-folders", SkillSource::Bundled),
                ("find-duplicates", SkillSource::Bundled),
                ("notes-digest", SkillSource::Bundled),
                ("combine-workbooks", SkillSource::Bundled),
                ("convert-to-pdf", SkillSource::Bundled),
                ("fill-template", SkillSource::Bundled),
                ("receipts-to-spreadsheet", SkillSource::Bundled),
            ]
        );
        assert_eq!(found.skills[0].description, "the workspace's own inventory");
        assert_eq!(
            found.skills[0].dir.as_deref(),
            Some(ws_skills.join("folder-inventory").as_path())
        );
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        assert_eq!(found.problems[0].file(), ws_skills.join("broken").join(SKILL_FILE));

        // A broken record trusts nothing, and says so.
        std::fs::write(config.join(trust::TRUST_FILE), "[").unwrap();
        let found = discover(&ws, Some(&config));
        assert_eq!(found.untrusted.len(), 2);
        assert!(
            found
                .problems
                .iter()
                .any(|p| matches!(p, SkillError::TrustRecord { .. }))
        );
    }

    #[test]
    fn a_model_reads_a_skill_on_demand_and_only_its_own_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("skills");
        write_skill(&root, "forms", "Fill forms");
        let dir = root.join("forms");
        std::fs::create_dir_all(dir.join("references")).unwrap();
        std::fs::write(dir.join("references/forms.md"), "# Forms\nUse the blue pen.\n").unwrap();
        std::fs::write(dir.join("references/logo.bin"), [0xff, 0xfe, 0x00]).unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "private").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dir.join("references/link.md")).unwrap();
        let skills = vec![read_skill(&dir, SkillSource::User).unwrap()];
        let read = |v: serde_json::Value| disclose(&skills, &v);

        let catalogue = catalogue(&skills);
        assert!(catalogue.contains("- forms: Fill forms"), "{catalogue}");
        assert!(!catalogue.contains("body"), "the body is read on demand: {catalogue}");
        let body = read(serde_json::json!({"name": "forms"})).unwrap();
        assert!(
            body.contains("body") && body.contains("Files in references/: forms.md, link.md, logo.bin"),
            "{body}"
        );
        assert_eq!(
            read(serde_json::json!({"name": "forms", "file": "references/forms.md"})).unwrap(),
            "# Forms\nUse the blue pen.\n"
        );
        assert!(
            read(serde_json::json!({"name": "forms", "file": "references/logo.bin"}))
                .unwrap()
                .contains("binary")
        );
        for escape in [
            "../secret.txt",
            "references/../../secret.txt",
            "/etc/passwd",
            "SKILL.md",
            "references/link.md",
        ] {
            let e = read(serde_json::json!({"name": "forms", "file": escape})).unwrap_err();
            assert!(!e.contains("private"), "{escape}: {e}");
        }
        assert!(
            read(serde_json::json!({"name": "nope"}))
                .unwrap_err()
                .contains("the skills are: forms")
        );
    }

    #[test]
    fn discovery_without_skill_folders_finds_the_bundled_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let found = discover(tmp.path(), Some(&tmp.path().join("nowhere")));
        assert!(found.problems.is_empty());
        assert_eq!(found.skills, bundled());
    }

    #[test]
    fn a_folder_without_skill_md_is_a_problem() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(".agents/skills/empty")).unwrap();
        let found = discover(tmp.path(), None);
        assert_eq!(found.problems.len(), 1);
        assert!(matches!(found.problems[0], SkillError::Read { .. }));
        assert!(found.problems[0].to_string().contains("empty/SKILL.md"));
    }
}
