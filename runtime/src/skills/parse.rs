//! Reading one `SKILL.md`: the frontmatter's required fields, the Agent
//! Skills naming rules, and deskhand's fields under `metadata`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{Entry, ParamKind, ParamSpec, SKILL_FILE, Skill, SkillError, SkillSource};
use crate::tools::BundledTool;

/// deskhand's own tools a skill may name as its entry besides the bundled
/// sandboxed ones (`office.to_pdf`: LibreOffice in the native sandbox).
const RUNTIME_TOOLS: &[&str] = &["office"];
const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 1024;
const PREFIX: &str = "deskhand-";
const ENTRY: &str = "deskhand-entry";
const KEYWORDS: &str = "deskhand-keywords";
const PARAMS: &str = "deskhand-params";
const PARAM: &str = "deskhand-param-";
/// `deskhand-step-<n>`: one step of a recorded plan (`deskhand-entry: plan`).
const STEP: &str = "deskhand-step-";

/// The frontmatter fields the Agent Skills specification defines; any other
/// is an error, as in the reference validator (`agentskills validate`).
const FIELDS: &[&str] = &[
    "name",
    "description",
    "license",
    "compatibility",
    "metadata",
    "allowed-tools",
];
const MAX_COMPATIBILITY: usize = 500;

/// Parses a `SKILL.md`. `dir` is the skill's folder: the name must match
/// it, and a component entry is resolved against it.
pub fn parse_skill(text: &str, source: SkillSource, dir: Option<&Path>) -> Result<Skill, SkillError> {
    let file = dir.map_or_else(|| PathBuf::from(SKILL_FILE), |d| d.join(SKILL_FILE));
    let folder = dir.and_then(Path::file_name).map(|f| f.to_string_lossy().into_owned());
    parse_at(text, source, dir, &file, folder.as_deref())
}

/// [`parse_skill`] with the file to name in errors and the folder name the
/// skill's name must equal given separately (bundled skills have no folder
/// on disk).
pub(super) fn parse_at(
    text: &str,
    source: SkillSource,
    dir: Option<&Path>,
    file: &Path,
    folder: Option<&str>,
) -> Result<Skill, SkillError> {
    let fail = |message: String| SkillError::Frontmatter {
        file: file.to_path_buf(),
        message,
    };
    let (yaml, body) = split_frontmatter(text).ok_or_else(|| {
        fail(
            "no frontmatter: the file must start with a `---` line, then `name:` and `description:`, then `---`".into(),
        )
    })?;
    let mut front = Front::read(yaml, file)?;

    let missing = |field| SkillError::MissingField {
        file: file.to_path_buf(),
        field,
    };
    let name = front
        .string("name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| missing("name"))?;
    let description = front
        .string("description")?
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| missing("description"))?;
    check_name(&name, file)?;
    if let Some(folder) = folder
        && folder != name
    {
        return Err(SkillError::NameMismatch {
            file: file.to_path_buf(),
            name,
            folder: folder.into(),
        });
    }
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(front.bad(
            "description",
            format!(
                "is {} characters; the limit is {MAX_DESCRIPTION}: say what the skill does and when to use it, \
                 and move the rest into the body",
                description.chars().count()
            ),
        ));
    }
    let license = front.string("license")?.map(|l| l.trim().to_owned());
    if license.as_deref() == Some("") {
        return Err(front.bad(
            "license",
            "is empty: name a licence (`Apache-2.0`) or a file in the skill's folder, or leave the field out",
        ));
    }
    let compatibility = front.string("compatibility")?.map(|c| c.trim().to_owned());
    match compatibility.as_deref().map(|c| c.chars().count()) {
        Some(0) => {
            return Err(front.bad(
                "compatibility",
                "is empty: say what the skill needs (a product, packages, network), or leave the field out",
            ));
        }
        Some(n) if n > MAX_COMPATIBILITY => {
            return Err(front.bad(
                "compatibility",
                format!("is {n} characters; the limit is {MAX_COMPATIBILITY}"),
            ));
        }
        _ => {}
    }
    let allowed_tools = front
        .string("allowed-tools")?
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();

    let (own, metadata) = front.metadata()?;
    let meta = Metadata::new(own, file)?;
    Ok(Skill {
        name,
        description,
        source,
        dir: dir.map(Path::to_path_buf),
        entry: meta.entry(dir)?,
        params: meta.params()?,
        keywords: meta.keywords(),
        license,
        compatibility,
        allowed_tools,
        metadata,
        outside_format: front.outside,
        body: body.to_owned(),
    })
}

/// [`parse_skill`], then refuses anything outside the Agent Skills format
/// (other agents' fields, metadata that is not text) that loading lets
/// pass: for what deskhand installs or writes.
pub fn parse_skill_strict(text: &str, source: SkillSource, dir: Option<&Path>) -> Result<Skill, SkillError> {
    let skill = parse_skill(text, source, dir)?;
    match skill.outside_format.first() {
        None => Ok(skill),
        Some(problem) => Err(SkillError::Frontmatter {
            file: dir.map_or_else(|| PathBuf::from(SKILL_FILE), |d| d.join(SKILL_FILE)),
            message: problem.clone(),
        }),
    }
}

/// The frontmatter as a YAML mapping whose keys are the specification's fields.
struct Front<'a> {
    fields: serde_yaml_ng::Mapping,
    file: &'a Path,
    /// What is outside the format but does not stop the skill loading.
    outside: Vec<String>,
}

impl<'a> Front<'a> {
    fn read(yaml: &str, file: &'a Path) -> Result<Self, SkillError> {
        let fail = |message: String| SkillError::Frontmatter {
            file: file.to_path_buf(),
            message,
        };
        let fields = if yaml.trim().is_empty() {
            serde_yaml_ng::Mapping::new()
        } else {
            match serde_yaml_ng::from_str(yaml) {
                Ok(serde_yaml_ng::Value::Mapping(m)) => m,
                Ok(_) => {
                    return Err(fail(
                        "the frontmatter must be `field: value` lines, like `name: my-skill`".into(),
                    ));
                }
                Err(e) => return Err(fail(format!("the frontmatter is not valid YAML: {e}"))),
            }
        };
        // Other agents' own fields (`version`, `model`, ...) are outside the
        // format: the skill still loads, and strict checks name them.
        let mut outside = Vec::new();
        for key in fields.keys() {
            let known = key.as_str().is_some_and(|k| FIELDS.contains(&k));
            if !known {
                let key = match key {
                    serde_yaml_ng::Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_owned(),
                };
                outside.push(format!(
                    "the field `{key}` is not in the Agent Skills format, which allows {}; \
                     put your own fields under `metadata` as strings",
                    FIELDS.join(", ")
                ));
            }
        }
        Ok(Front { fields, file, outside })
    }

    fn bad(&self, field: &str, rule: impl std::fmt::Display) -> SkillError {
        SkillError::Frontmatter {
            file: self.file.to_path_buf(),
            message: format!("`{field}` {rule}"),
        }
    }

    /// A field that must be a string when present (YAML `~` counts as absent).
    fn string(&self, field: &str) -> Result<Option<String>, SkillError> {
        match self.fields.get(field) {
            None | Some(serde_yaml_ng::Value::Null) => Ok(None),
            Some(serde_yaml_ng::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad(
                field,
                format!("must be text, not {}; put the value in quotes", yaml_kind(other)),
            )),
        }
    }

    /// `metadata`: a mapping of strings to strings. Returns deskhand's own
    /// keys (`deskhand-*`) and the others.
    #[allow(clippy::type_complexity)]
    fn metadata(&mut self) -> Result<(BTreeMap<String, serde_yaml_ng::Value>, BTreeMap<String, String>), SkillError> {
        let (mut own, mut other) = (BTreeMap::new(), BTreeMap::new());
        let map = match self.fields.get("metadata") {
            None | Some(serde_yaml_ng::Value::Null) => return Ok((own, other)),
            Some(serde_yaml_ng::Value::Mapping(m)) => m,
            Some(v) => {
                return Err(self.bad(
                    "metadata",
                    format!("must be `key: value` lines indented under it, not {}", yaml_kind(v)),
                ));
            }
        };
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                return Err(self.bad("metadata", "has a key that is not text; quote it"));
            };
            if key.starts_with(PREFIX) {
                own.insert(key.to_owned(), value.clone());
                continue;
            }
            match value {
                serde_yaml_ng::Value::String(s) => {
                    other.insert(key.to_owned(), s.clone());
                }
                v => self.outside.push(format!(
                    "metadata `{key}`: must be a string, not {} (Agent Skills metadata maps strings to strings; \
                     quote the value)",
                    yaml_kind(v)
                )),
            }
        }
        Ok((own, other))
    }
}

/// What a YAML value is, in words.
fn yaml_kind(value: &serde_yaml_ng::Value) -> &'static str {
    match value {
        serde_yaml_ng::Value::Null => "empty",
        serde_yaml_ng::Value::Bool(_) => "true/false",
        serde_yaml_ng::Value::Number(_) => "a number",
        serde_yaml_ng::Value::String(_) => "text",
        serde_yaml_ng::Value::Sequence(_) => "a list",
        serde_yaml_ng::Value::Mapping(_) => "a mapping",
        serde_yaml_ng::Value::Tagged(_) => "a tagged value",
    }
}

/// The YAML between the opening and closing `---` lines, and the rest.
fn split_frontmatter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text.strip_prefix("---")?;
    let rest = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .or_else(|| rest.trim_start_matches([' ', '\t']).strip_prefix('\n'))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let body = &rest[offset + line.len()..];
            return Some((&rest[..offset], body.trim_start_matches(['\r', '\n'])));
        }
        offset += line.len();
    }
    None
}

/// The Agent Skills rule: 1-64 lowercase letters, digits and single
/// hyphens, not starting or ending with a hyphen.
fn check_name(name: &str, file: &Path) -> Result<(), SkillError> {
    let reason = if name.len() > MAX_NAME {
        Some("is over 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("must be lowercase letters, digits and hyphens (like `folder-inventory`)")
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        Some("may not start or end with a hyphen or have two in a row")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SkillError::BadName {
            file: file.to_path_buf(),
            name: name.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// deskhand's string fields under `metadata`; other keys are left alone.
struct Metadata<'a> {
    fields: BTreeMap<String, String>,
    file: &'a Path,
}

impl<'a> Metadata<'a> {
    fn new(raw: BTreeMap<String, serde_yaml_ng::Value>, file: &'a Path) -> Result<Self, SkillError> {
        let mut fields = BTreeMap::new();
        for (key, value) in raw {
            if !key.starts_with(PREFIX) {
                continue;
            }
            let serde_yaml_ng::Value::String(text) = value else {
                return Err(SkillError::BadMetadata {
                    file: file.to_path_buf(),
                    key,
                    message: "must be a string (Agent Skills metadata maps strings to strings; quote the value)".into(),
                });
            };
            let known =
                [ENTRY, KEYWORDS, PARAMS].contains(&key.as_str()) || key.starts_with(PARAM) || key.starts_with(STEP);
            if !known {
                return Err(SkillError::BadMetadata {
                    file: file.to_path_buf(),
                    key,
                    message: format!(
                        "is not a deskhand field; deskhand reads {ENTRY}, {KEYWORDS}, {PARAMS}, {PARAM}<name> and \
                         {STEP}<n>"
                    ),
                });
            }
            fields.insert(key, text.trim().to_owned());
        }
        Ok(Metadata { fields, file })
    }

    fn bad(&self, key: &str, message: impl Into<String>) -> SkillError {
        SkillError::BadMetadata {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn entry(&self, dir: Option<&Path>) -> Result<Entry, SkillError> {
        let Some(spec) = self.fields.get(ENTRY) else {
            return Ok(Entry::None);
        };
        if spec == "plan" {
            return self.plan();
        }
        if let Some(component) = spec.strip_prefix("component:") {
            let (path, operation) = component
                .split_once('#')
                .ok_or_else(|| self.bad(ENTRY, "a component entry is `component:scripts/tool.wasm#operation`"))?;
            let path = Path::new(path.trim());
            let inside = path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside || path.as_os_str().is_empty() {
                return Err(self.bad(
                    ENTRY,
                    "the component's path must be relative and inside the skill's folder",
                ));
            }
            if operation.trim().is_empty() {
                return Err(self.bad(ENTRY, "the component entry names no operation after `#`"));
            }
            return Ok(Entry::Component {
                path: dir.map_or_else(|| path.to_path_buf(), |d| d.join(path)),
                operation: operation.trim().into(),
            });
        }
        let (tool, operation) = spec
            .split_once('.')
            .map(|(t, o)| (t.trim(), o.trim()))
            .filter(|(t, o)| !t.is_empty() && !o.is_empty())
            .ok_or_else(|| {
                self.bad(
                    ENTRY,
                    "must be `tool.operation` for a bundled tool or `component:path.wasm#operation`",
                )
            })?;
        if BundledTool::from_name(tool).is_none() && !RUNTIME_TOOLS.contains(&tool) {
            let mut known: Vec<&str> = BundledTool::ALL.iter().map(|t| t.name()).collect();
            known.extend(RUNTIME_TOOLS);
            return Err(self.bad(
                ENTRY,
                format!("no bundled tool named {tool:?}; bundled: {}", known.join(", ")),
            ));
        }
        Ok(Entry::Bundled {
            tool: tool.into(),
            operation: operation.into(),
        })
    }

    /// A recorded plan: `deskhand-step-1`, `deskhand-step-2`, ... in order,
    /// each `{"title", "reads", "writes", "calls": [{"call": "tool.operation", "args"}]}`.
    fn plan(&self) -> Result<Entry, SkillError> {
        let mut numbered: Vec<(usize, &str, &String)> = Vec::new();
        for (key, value) in &self.fields {
            let Some(n) = key.strip_prefix(STEP) else { continue };
            let n = n.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                self.bad(
                    key,
                    "a step is numbered from 1: `deskhand-step-1`, `deskhand-step-2`, ...",
                )
            })?;
            numbered.push((n, key, value));
        }
        numbered.sort_by_key(|(n, ..)| *n);
        if numbered.is_empty() {
            return Err(self.bad(
                ENTRY,
                format!("a `plan` entry needs its steps as {STEP}1, {STEP}2, ..."),
            ));
        }
        let mut steps = Vec::new();
        for (i, (n, key, value)) in numbered.into_iter().enumerate() {
            if n != i + 1 {
                return Err(self.bad(
                    key,
                    format!(
                        "the steps must be numbered 1, 2, 3 ... without a gap; {STEP}{} is missing",
                        i + 1
                    ),
                ));
            }
            let step: super::RecordedStep = serde_json::from_str(value).map_err(|e| {
                self.bad(
                    key,
                    format!(
                        "is not a step ({e}); a step is {{\"title\": ..., \"reads\": [...], \"writes\": [...], \
                         \"calls\": [{{\"call\": \"tool.operation\", \"args\": {{...}}}}]}}"
                    ),
                )
            })?;
            if step.calls.is_empty() {
                return Err(self.bad(key, "a step of a recorded plan makes at least one call"));
            }
            for call in &step.calls {
                let (tool, operation) = call.tool_operation();
                if operation.is_empty() {
                    return Err(self.bad(key, format!("{:?} is not `tool.operation`", call.call)));
                }
                if BundledTool::from_name(tool).is_none() && !RUNTIME_TOOLS.contains(&tool) {
                    return Err(self.bad(
                        key,
                        format!("no bundled tool named {tool:?}; a recorded plan calls deskhand's own tools"),
                    ));
                }
            }
            steps.push(step);
        }
        Ok(Entry::Plan(steps))
    }

    fn keywords(&self) -> Vec<String> {
        self.fields
            .get(KEYWORDS)
            .map(|k| {
                k.split(',')
                    .map(|w| w.trim().to_lowercase())
                    .filter(|w| !w.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn params(&self) -> Result<Vec<ParamSpec>, SkillError> {
        let names: Vec<&str> = self
            .fields
            .get(PARAMS)
            .map(|p| p.split(',').map(str::trim).filter(|n| !n.is_empty()).collect())
            .unwrap_or_default();
        let mut params: Vec<ParamSpec> = Vec::new();
        for name in &names {
            let valid = name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid {
                return Err(self.bad(
                    PARAMS,
                    format!("{name:?} is not a parameter name (lowercase letters, digits, `_` and `-`)"),
                ));
            }
            if params.iter().any(|p| p.name == *name) {
                return Err(self.bad(PARAMS, format!("{name:?} is listed twice")));
            }
            let key = format!("{PARAM}{name}");
            let spec = self.fields.get(&key).ok_or_else(|| {
                self.bad(
                    &key,
                    format!("missing: {PARAMS} lists {name:?} but does not describe it"),
                )
            })?;
            params.push(self.param(name, &key, spec)?);
        }
        if let Some(stray) = self
            .fields
            .keys()
            .filter_map(|k| k.strip_prefix(PARAM))
            .find(|n| !names.contains(n))
        {
            return Err(self.bad(
                &format!("{PARAM}{stray}"),
                format!("describes {stray:?}, which {PARAMS} does not list"),
            ));
        }
        Ok(params)
    }

    /// `kind, [required | optional | default=value,]* description`.
    fn param(&self, name: &str, key: &str, spec: &str) -> Result<ParamSpec, SkillError> {
        let mut parts = spec.split(',').map(str::trim).peekable();
        let mut extensions = Vec::new();
        let kind = match parts.next().unwrap_or_default() {
            "path" => ParamKind::Path,
            "file" => ParamKind::File,
            "date" => ParamKind::Date,
            "text" => ParamKind::Text,
            "period" => ParamKind::Period,
            "pages" => ParamKind::Pages,
            other if other.starts_with("file(") => {
                let Some(list) = other.strip_prefix("file(").and_then(|o| o.strip_suffix(')')) else {
                    return Err(self.bad(key, format!("{other:?} is not closed; write file(docx|pptx)")));
                };
                extensions = options(Some(list));
                if extensions.is_empty() {
                    return Err(self.bad(
                        key,
                        "file(...) lists no extensions; write file(docx|pptx), or file for any",
                    ));
                }
                ParamKind::File
            }
            other => match other.strip_prefix("format(").and_then(|o| o.strip_suffix(')')) {
                Some(options) => {
                    let options = self::options(Some(options));
                    if options.is_empty() {
                        return Err(self.bad(key, "format(...) lists no options"));
                    }
                    ParamKind::Format(options)
                }
                None => {
                    return Err(self.bad(
                        key,
                        format!("unknown kind {other:?}; kinds are path, file, file(ext|ext), date, period, pages, format(a|b|c) and text"),
                    ));
                }
            },
        };
        let (mut required, mut default) = (false, None);
        while let Some(flag) = parts.peek() {
            if *flag == "required" {
                required = true;
            } else if *flag == "optional" {
                required = false;
            } else if let Some(value) = flag.strip_prefix("default=") {
                default = Some(value.trim().to_owned());
            } else {
                break;
            }
            parts.next();
        }
        let description = parts.collect::<Vec<_>>().join(", ");
        if description.is_empty() {
            return Err(self.bad(
                key,
                "no description; it is what the person is asked when the value is missing",
            ));
        }
        if required && default.is_some() {
            return Err(self.bad(key, "a required parameter cannot have a default"));
        }
        if let (ParamKind::Format(options), Some(value)) = (&kind, &default)
            && !options.contains(&value.to_lowercase())
        {
            return Err(self.bad(key, format!("the default {value:?} is not one of its formats")));
        }
        Ok(ParamSpec {
            name: name.into(),
            kind,
            required,
            default,
            description,
            extensions,
        })
    }
}

/// The `a|b|c` of `format(a|b|c)` or `file(a|b)`, lowercased; none when unclosed.
fn options(list: Option<&str>) -> Vec<String> {
    list.map(|l| {
        l.split('|')
            .map(|o| o.trim().trim_start_matches('.').to_lowercase())
            .filter(|o| !o.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---
name: folder-inventory
description: Make a CSV inventory of every file in a folder.
license: Apache-2.0
metadata:
  author: someone
  deskhand-entry: inventory.run
  deskhand-keywords: Inventory, catalogue,, list files
  deskhand-params: folder, output, since, style
  deskhand-param-folder: path, required, The folder to inventory
  deskhand-param-output: path, default=output/inventory.csv, Where to write the CSV, one file
  deskhand-param-since: date, Only entries modified since then
  deskhand-param-style: format(csv|XLSX), default=csv, The file format
---

# Folder inventory
Body text.
";

    fn parse(text: &str) -> Result<Skill, SkillError> {
        parse_skill(
            text,
            SkillSource::Workspace,
            Some(Path::new("/ws/.agents/skills/folder-inventory")),
        )
    }

    fn with_metadata(lines: &str) -> String {
        format!("---\nname: folder-inventory\ndescription: d\nmetadata:\n{lines}---\nbody\n")
    }

    fn error(text: &str) -> String {
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.starts_with("/ws/.agents/skills/folder-inventory/SKILL.md: "),
            "the error must name the file: {e}"
        );
        e
    }

    #[test]
    fn parses_frontmatter_metadata_and_body() {
        let skill = parse(GOOD).unwrap();
        assert_eq!(skill.name, "folder-inventory");
        assert_eq!(skill.description, "Make a CSV inventory of every file in a folder.");
        assert_eq!(
            skill.entry,
            Entry::Bundled {
                tool: "inventory".into(),
                operation: "run".into()
            }
        );
        assert_eq!(skill.keywords, ["inventory", "catalogue", "list files"]);
        assert_eq!(skill.body, "# Folder inventory\nBody text.\n");
        let p = &skill.params;
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[0],
            ParamSpec {
                name: "folder".into(),
                kind: ParamKind::Path,
                required: true,
                default: None,
                description: "The folder to inventory".into(),
                extensions: Vec::new(),
            }
        );
        assert_eq!(p[1].default.as_deref(), Some("output/inventory.csv"));
        assert_eq!(p[1].description, "Where to write the CSV, one file");
        assert!(!p[1].required);
        assert_eq!(p[2].kind, ParamKind::Date);
        assert_eq!(p[3].kind, ParamKind::Format(vec!["csv".into(), "xlsx".into()]));
    }

    #[test]
    fn entries() {
        let none = parse("---\nname: folder-inventory\ndescription: d\n---\n").unwrap();
        assert_eq!(none.entry, Entry::None);
        assert!(none.params.is_empty() && none.keywords.is_empty());
        let component = parse(&with_metadata("  deskhand-entry: component:scripts/tool.wasm#run\n")).unwrap();
        assert_eq!(
            component.entry,
            Entry::Component {
                path: "/ws/.agents/skills/folder-inventory/scripts/tool.wasm".into(),
                operation: "run".into()
            }
        );
    }

    #[test]
    fn missing_fields() {
        assert!(error("---\ndescription: d\n---\n").contains("no `name`"));
        assert!(error("---\nname: folder-inventory\n---\n").contains("no `description`"));
        assert!(error("---\nname: folder-inventory\ndescription: '  '\n---\n").contains("no `description`"));
        assert!(error("---\n---\n").contains("no `name`"));
        assert!(error("# just markdown\n").contains("no frontmatter"));
        assert!(error("---\nname: folder-inventory\ndescription: d\n").contains("no frontmatter"));
        assert!(error("---\nname: [unclosed\n---\n").contains("not valid YAML"));
    }

    #[test]
    fn names() {
        assert!(error("---\nname: Folder-Inventory\ndescription: d\n---\n").contains("lowercase"));
        assert!(error("---\nname: folder--inventory\ndescription: d\n---\n").contains("two in a row"));
        assert!(error("---\nname: -folder\ndescription: d\n---\n").contains("hyphen"));
        let e = error("---\nname: other-skill\ndescription: d\n---\n");
        assert!(e.contains("does not match its folder \"folder-inventory\""), "{e}");
        // Without a folder there is nothing to match.
        assert!(parse_skill("---\nname: other-skill\ndescription: d\n---\n", SkillSource::User, None).is_ok());
    }

    #[test]
    fn bad_metadata() {
        let cases = [
            ("  deskhand-entry: 3\n", "deskhand-entry`: must be a string"),
            ("  deskhand-entyr: inventory.run\n", "is not a deskhand field"),
            ("  deskhand-entry: inventory\n", "must be `tool.operation`"),
            (
                "  deskhand-entry: nosuchtool.run\n",
                "no bundled tool named \"nosuchtool\"",
            ),
            (
                "  deskhand-entry: component:../tool.wasm#run\n",
                "inside the skill's folder",
            ),
            (
                "  deskhand-entry: component:/abs/tool.wasm#run\n",
                "inside the skill's folder",
            ),
            ("  deskhand-entry: component:tool.wasm#\n", "no operation"),
            (
                "  deskhand-params: folder\n",
                "lists \"folder\" but does not describe it",
            ),
            (
                "  deskhand-params: folder\n  deskhand-param-folder: path, required, f\n  deskhand-param-extra: text, e\n",
                "which deskhand-params does not list",
            ),
            (
                "  deskhand-params: Folder\n  deskhand-param-Folder: path, f\n",
                "not a parameter name",
            ),
            ("  deskhand-params: a, a\n  deskhand-param-a: path, f\n", "listed twice"),
            (
                "  deskhand-params: a\n  deskhand-param-a: number, f\n",
                "unknown kind \"number\"",
            ),
            (
                "  deskhand-params: a\n  deskhand-param-a: path, required\n",
                "no description",
            ),
            (
                "  deskhand-params: a\n  deskhand-param-a: path, required, default=x, f\n",
                "cannot have a default",
            ),
            (
                "  deskhand-params: a\n  deskhand-param-a: format(), f\n",
                "lists no options",
            ),
            (
                "  deskhand-params: a\n  deskhand-param-a: format(csv|pdf), default=doc, f\n",
                "not one of its formats",
            ),
        ];
        for (lines, expected) in cases {
            let e = error(&with_metadata(lines));
            assert!(e.contains(expected), "{lines:?}: {e}");
        }
    }

    #[test]
    fn other_metadata_is_kept_as_strings() {
        let skill = parse(&with_metadata("  author: x\n  version: '1'\n")).unwrap();
        assert_eq!(skill.entry, Entry::None);
        assert_eq!(skill.metadata["version"], "1");
        assert_eq!(skill.metadata.len(), 2);
    }

    #[test]
    fn the_optional_fields_of_the_format() {
        let text = "---\nname: folder-inventory\ndescription: d\nlicense: Apache-2.0\ncompatibility: Needs LibreOffice\n\
                    allowed-tools: Bash(git:*) Read\n---\n";
        let skill = parse(text).unwrap();
        assert_eq!(skill.license.as_deref(), Some("Apache-2.0"));
        assert_eq!(skill.compatibility.as_deref(), Some("Needs LibreOffice"));
        assert_eq!(skill.allowed_tools, ["Bash(git:*)", "Read"]);
        let none = parse("---\nname: folder-inventory\ndescription: d\n---\n").unwrap();
        assert_eq!((none.license, none.compatibility), (None, None));
    }

    /// Each rule of the format, and the words that name the field and the rule.
    #[test]
    fn format_errors_name_the_field_and_the_rule() {
        let long = "x".repeat(1025);
        let wide = "y".repeat(501);
        let cases = [
            ("model: opus\n", "the field `model` is not in the Agent Skills format"),
            ("version: 2\n", "put your own fields under `metadata`"),
            ("license: 2\n", "`license` must be text, not a number"),
            ("license: ''\n", "`license` is empty"),
            ("compatibility: [a, b]\n", "`compatibility` must be text, not a list"),
            ("compatibility: ' '\n", "`compatibility` is empty"),
            ("allowed-tools: true\n", "`allowed-tools` must be text, not true/false"),
            ("metadata: just text\n", "`metadata` must be `key: value` lines"),
            (
                "metadata:\n  version: 1.0\n",
                "metadata `version`: must be a string, not a number",
            ),
            (
                "metadata:\n  tags: [a]\n",
                "metadata `tags`: must be a string, not a list",
            ),
        ];
        for (extra, expected) in cases {
            let text = format!("---\nname: folder-inventory\ndescription: d\n{extra}---\n");
            let e = parse_skill_strict(
                &text,
                SkillSource::Workspace,
                Some(Path::new("/ws/.agents/skills/folder-inventory")),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(expected), "{extra:?}: {e}");
            // Loading is lenient only with other agents' fields and metadata that is not text.
            let loads = parse(&text);
            let lenient =
                extra.starts_with("model") || extra.starts_with("version") || extra.starts_with("metadata:\n");
            assert_eq!(loads.is_ok(), lenient, "{extra:?}: {loads:?}");
            if let Ok(skill) = loads {
                assert!(skill.outside_format[0].contains(expected), "{:?}", skill.outside_format);
            }
        }
        let e = error(&format!("---\nname: folder-inventory\ndescription: {long}\n---\n"));
        assert!(e.contains("`description` is 1025 characters; the limit is 1024"), "{e}");
        let e = error(&format!(
            "---\nname: folder-inventory\ndescription: d\ncompatibility: {wide}\n---\n"
        ));
        assert!(e.contains("`compatibility` is 501 characters; the limit is 500"), "{e}");
        let e = error("---\nname: 3\ndescription: d\n---\n");
        assert!(e.contains("`name` must be text, not a number"), "{e}");
        let e = error("---\n- name\n---\n");
        assert!(e.contains("`field: value` lines"), "{e}");
        let e = error(&format!("---\nname: {}\ndescription: d\n---\n", "a".repeat(65)));
        assert!(e.contains("over 64 characters"), "{e}");
    }

    #[test]
    fn crlf_and_bom() {
        let text = "\u{feff}---\r\nname: folder-inventory\r\ndescription: d\r\n---\r\n\r\nbody\r\n";
        let skill = parse(text).unwrap();
        assert_eq!(skill.description, "d");
        assert_eq!(skill.body, "body\r\n");
    }

    #[test]
    fn a_recorded_plan_is_read_step_by_step_and_its_errors_name_the_step() {
        let step = r#"{"title": "List {{folder}}", "reads": ["{{folder}}"], "writes": ["output"], "calls": [{"call": "inventory.run", "args": {"folder": "{{folder}}", "output": "output/list.csv", "period": "{{period}}"}}]}"#;
        let skill = parse(&with_metadata(&format!(
            "  deskhand-entry: plan\n  deskhand-step-1: '{step}'\n"
        )))
        .unwrap();
        let Entry::Plan(steps) = &skill.entry else {
            panic!("{:?}", skill.entry)
        };
        let params = BTreeMap::from([("folder".to_owned(), "projects/receipts".to_owned())]);
        let filled = steps[0].filled(&params);
        assert_eq!(filled.title, "List projects/receipts");
        assert_eq!(filled.calls[0].args["folder"], "projects/receipts");
        assert!(
            !filled.calls[0].args.contains_key("period"),
            "a parameter without a value leaves its argument out"
        );
        for (metadata, says) in [
            ("  deskhand-entry: plan\n", "needs its steps as deskhand-step-1"),
            (
                "  deskhand-entry: plan\n  deskhand-step-2: '{}'\n",
                "deskhand-step-1 is missing",
            ),
            (
                "  deskhand-entry: plan\n  deskhand-step-1: '{\"title\": \"x\"}'\n",
                "is not a step",
            ),
            (
                "  deskhand-entry: plan\n  deskhand-step-1: '{\"title\": \"x\", \"calls\": [{\"call\": \"nosuch.run\"}]}'\n",
                "no bundled tool named \"nosuch\"",
            ),
        ] {
            let e = parse(&with_metadata(metadata)).unwrap_err().to_string();
            assert!(e.contains(says), "{metadata}: {e}");
        }
    }
}
