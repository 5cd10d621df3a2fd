//! A skill's own code as a WIT component: the crate `deskhand skill new
//! NAME --component` writes ([`scaffold`]), its build for wasm32-wasip2 and
//! install into the skill's `scripts/` ([`build`]), and what a built
//! component may touch, in words ([`touches`]).
//!
//! What holds: the crate builds without deskhand's repository. The guest SDK
//! (`deskhand-guest`) and the `deskhand:tool` WIT are embedded in the binary
//! and written beside the crate (`component/deskhand-guest/`), with the
//! dependency versions and the `Cargo.lock` the bundled tools build with, so
//! a machine whose cargo has those crates cached builds it offline. The
//! build's target folder is outside the skill (a skill stays small enough
//! to share), and a component is installed whole or not at all: the built
//! file is copied beside `scripts/NAME.wasm` and moved into place. Once
//! built, the component is a skill like any other: its entry is
//! `component:scripts/NAME.wasm#run`, and it runs under the same grants,
//! declared effects and changesets as the bundled tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use deskhand_types::tool::ToolDescription;

use super::{SKILL_FILE, SkillSource, parse_skill};

/// The target the component is built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The skill's crate, inside the skill's folder.
pub const CRATE_DIR: &str = "component";
/// The SDK's copy, inside the crate.
const SDK_DIR: &str = "deskhand-guest";

/// The guest SDK's sources and the WIT, as the binary was built with them:
/// (path inside the SDK copy, text).
const SDK_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../guest-tools/sdk/Cargo.toml")),
    ("src/lib.rs", include_str!("../../../guest-tools/sdk/src/lib.rs")),
    ("src/csv.rs", include_str!("../../../guest-tools/sdk/src/csv.rs")),
    (
        "src/document.rs",
        include_str!("../../../guest-tools/sdk/src/document.rs"),
    ),
    ("src/image.rs", include_str!("../../../guest-tools/sdk/src/image.rs")),
    ("src/walk.rs", include_str!("../../../guest-tools/sdk/src/walk.rs")),
    ("src/write.rs", include_str!("../../../guest-tools/sdk/src/write.rs")),
    ("wit/tool.wit", include_str!("../../../wit/tool/tool.wit")),
];
/// Where the SDK finds the WIT in the repository, and in its copy.
const WIT_IN_REPO: &str = "\"../../wit/tool\"";
const WIT_IN_COPY: &str = "\"wit\"";
/// The guest workspace's manifest (dependency versions, lints, the release
/// profile) and lock file (the versions the bundled tools build with).
const GUEST_WORKSPACE: &str = include_str!("../../../guest-tools/Cargo.toml");
const GUEST_LOCK: &str = include_str!("../../../guest-tools/Cargo.lock");

const GUEST_TEMPLATE: &str = include_str!("component/guest.rs.txt");
const SKILL_TEMPLATE: &str = include_str!("component/SKILL.md.txt");
const EVALS_TEMPLATE: &str = include_str!("component/evals.json.txt");

/// Why a component skill could not be made or built, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{} already exists; choose another name, or another folder with --dir", .0.display())]
    Exists(PathBuf),
    #[error("{0}")]
    BadSkill(String),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{} has no {CRATE_DIR}/Cargo.toml, so there is no component to build; a skill made with \
         `deskhand skill new NAME --component` has one", .0.display()
    )]
    NoCrate(PathBuf),
    #[error(
        "cargo could not be started ({0}): building a component needs Rust. Install it from https://rustup.rs, \
         then run `rustup target add {TARGET}`"
    )]
    NoCargo(String),
    #[error(
        "Rust cannot build for {TARGET} here: the target is not installed. Run `rustup target add {TARGET}`, \
         then build again"
    )]
    NoTarget,
    #[error("the component in {} did not build:\n{log}", .dir.display())]
    Failed { dir: PathBuf, log: String },
    #[error("cargo built {} but named no .wasm for it; look in {}", .dir.display(), .target_dir.display())]
    NoArtifact { dir: PathBuf, target_dir: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ComponentError + '_ {
    move |source| ComponentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a new component skill named `name` into `dir` (which must not
/// exist): `SKILL.md` (its entry `component:scripts/NAME.wasm#run`, its
/// parameters, keywords and what it may touch), `evals/evals.json`, and the
/// crate in `component/` with the SDK beside it. Nothing is built. The
/// SKILL.md is parsed before anything is written, so a bad name is refused
/// with the rule it breaks and nothing is left behind.
pub fn scaffold(dir: &Path, name: &str) -> Result<(), ComponentError> {
    if dir.exists() {
        return Err(ComponentError::Exists(dir.to_path_buf()));
    }
    let fill = |template: &str| template.replace("{{name}}", name);
    let skill_md = fill(SKILL_TEMPLATE);
    parse_skill(&skill_md, SkillSource::User, Some(dir)).map_err(|e| ComponentError::BadSkill(e.to_string()))?;
    let crate_dir = dir.join(CRATE_DIR);
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join(SKILL_FILE), skill_md),
        (dir.join("evals").join("evals.json"), fill(EVALS_TEMPLATE)),
        (crate_dir.join("Cargo.toml"), crate_manifest(name)?),
        (crate_dir.join("Cargo.lock"), GUEST_LOCK.to_owned()),
        (crate_dir.join("src").join("lib.rs"), fill(GUEST_TEMPLATE)),
        (crate_dir.join(".gitignore"), "/target\n".to_owned()),
    ];
    for (path, text) in SDK_FILES {
        let text = if *path == "src/lib.rs" {
            text.replace(WIT_IN_REPO, WIT_IN_COPY)
        } else {
            (*text).to_owned()
        };
        files.push((crate_dir.join(SDK_DIR).join(path), text));
    }
    // Written into a hidden sibling and moved into place, so a failure leaves no half skill.
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(parent)
        .map_err(io(parent))?;
    for (path, text) in &files {
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let at = staging.path().join(rel);
        if let Some(folder) = at.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        std::fs::write(&at, text).map_err(io(&at))?;
    }
    std::fs::create_dir_all(staging.path().join("scripts")).map_err(io(staging.path()))?;
    let staged = staging.keep();
    std::fs::rename(&staged, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        io(dir)(e)
    })
}

/// The crate's `Cargo.toml`: the skill's package, and a workspace of its own
/// holding what the SDK copy inherits (its dependencies' versions, lints and
/// the release profile), taken from deskhand's guest workspace.
fn crate_manifest(name: &str) -> Result<String, ComponentError> {
    let bad = |what: &str| ComponentError::BadSkill(format!("deskhand's embedded guest workspace has no {what}"));
    let guest: toml::Table = GUEST_WORKSPACE.parse().map_err(|_| bad("valid Cargo.toml"))?;
    let sdk: toml::Table = SDK_FILES[0].1.parse().map_err(|_| bad("valid SDK Cargo.toml"))?;
    let workspace = guest
        .get("workspace")
        .and_then(toml::Value::as_table)
        .ok_or_else(|| bad("[workspace]"))?;
    let versions = workspace
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .ok_or_else(|| bad("[workspace.dependencies]"))?;
    // Every dependency the SDK takes from the workspace, wherever it lists it; and the crate's own.
    let mut wanted: Vec<String> = vec!["serde".into(), "serde_json".into()];
    let mut tables: Vec<&toml::Table> = sdk
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .into_iter()
        .collect();
    if let Some(targets) = sdk.get("target").and_then(toml::Value::as_table) {
        tables.extend(
            targets
                .values()
                .filter_map(|t| t.get("dependencies").and_then(toml::Value::as_table)),
        );
    }
    for deps in tables {
        wanted.extend(deps.keys().cloned());
    }
    wanted.sort();
    wanted.dedup();
    let mut deps = String::new();
    for dep in &wanted {
        let version = versions.get(dep).ok_or_else(|| bad(&format!("version of {dep}")))?;
        deps.push_str(&format!("{dep} = {version}\n"));
    }
    let section = |key: &str| -> Result<String, ComponentError> {
        let value = workspace.get(key).ok_or_else(|| bad(&format!("[workspace.{key}]")))?;
        toml::to_string(value).map_err(|_| bad(&format!("[workspace.{key}]")))
    };
    let lints = workspace
        .get("lints")
        .and_then(toml::Value::as_table)
        .ok_or_else(|| bad("[workspace.lints]"))?;
    let mut lint_text = String::new();
    for (group, table) in lints {
        lint_text.push_str(&format!(
            "\n[workspace.lints.{group}]\n{}",
            toml::to_string(table).map_err(|_| bad("[workspace.lints]"))?
        ));
    }
    let profile = guest
        .get("profile")
        .and_then(|p| p.get("release"))
        .ok_or_else(|| bad("[profile.release]"))?;
    let profile = toml::to_string(profile).map_err(|_| bad("[profile.release]"))?;
    Ok(format!(
        "# The {name} skill's component. `deskhand skill build {name}` builds it for {TARGET}\n\
         # and installs it as ../scripts/{name}.wasm.\n\
         [package]\n\
         name = \"{name}\"\n\
         version = \"0.1.0\"\n\
         edition.workspace = true\n\
         rust-version.workspace = true\n\
         publish = false\n\
         \n\
         [lib]\n\
         crate-type = [\"cdylib\"]\n\
         \n\
         [dependencies]\n\
         deskhand-guest = {{ path = \"{SDK_DIR}\" }}\n\
         serde.workspace = true\n\
         serde_json.workspace = true\n\
         \n\
         [lints]\n\
         workspace = true\n\
         \n\
         # A workspace of its own, wherever the skill is: {SDK_DIR}/ (deskhand's guest SDK\n\
         # and the deskhand:tool WIT, as this deskhand was built with them) takes its\n\
         # dependencies from here, at the versions deskhand's own tools build with.\n\
         [workspace]\n\
         resolver = \"3\"\n\
         \n\
         [workspace.package]\n{}\n\
         [workspace.dependencies]\n{deps}{lint_text}\n\
         [profile.release]\n{profile}",
        section("package")?,
    ))
}

/// How to build: which cargo, and where its target folder goes (outside the
/// skill, so the skill stays small).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub cargo: PathBuf,
    pub target_dir: PathBuf,
}

/// A component built and installed.
#[derive(Debug, Clone)]
pub struct Built {
    /// `scripts/NAME.wasm` in the skill's folder.
    pub installed: PathBuf,
    pub bytes: usize,
    pub sha256: String,
}

/// Builds the crate in `skill_dir/component/` for wasm32-wasip2 (release)
/// and installs the component as `skill_dir/scripts/<name>.wasm`, replacing
/// the one there only once the new one is complete.
pub fn build(skill_dir: &Path, name: &str, options: &BuildOptions) -> Result<Built, ComponentError> {
    let crate_dir = skill_dir.join(CRATE_DIR);
    if !crate_dir.join("Cargo.toml").is_file() {
        return Err(ComponentError::NoCrate(skill_dir.to_path_buf()));
    }
    let mut cmd = Command::new(&options.cargo);
    cmd.current_dir(&crate_dir)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--target-dir")
        .arg(&options.target_dir)
        .stdin(Stdio::null());
    // Flags meant for the machine's own programs are not for a wasm component.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .map_err(|e| ComponentError::NoCargo(format!("{}: {e}", options.cargo.display())))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if log.contains("may not be installed") {
            return Err(ComponentError::NoTarget);
        }
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        return Err(ComponentError::Failed {
            dir: crate_dir,
            log: tail,
        });
    }
    let manifest = std::fs::canonicalize(crate_dir.join("Cargo.toml")).unwrap_or_else(|_| crate_dir.join("Cargo.toml"));
    let wasm =
        built_wasm(&String::from_utf8_lossy(&out.stdout), &manifest).ok_or_else(|| ComponentError::NoArtifact {
            dir: crate_dir.clone(),
            target_dir: options.target_dir.clone(),
        })?;
    let scripts = skill_dir.join("scripts");
    std::fs::create_dir_all(&scripts).map_err(io(&scripts))?;
    let installed = scripts.join(format!("{name}.wasm"));
    let partial = scripts.join(format!(".{name}.wasm.partial"));
    std::fs::copy(&wasm, &partial).map_err(io(&partial))?;
    std::fs::rename(&partial, &installed).map_err(io(&installed))?;
    let (bytes, sha256) = super::trust::code_digest(&installed).map_err(io(&installed))?;
    Ok(Built {
        installed,
        bytes,
        sha256,
    })
}

/// The `.wasm` cargo's JSON messages name for the package at `manifest`.
fn built_wasm(messages: &str, manifest: &Path) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().is_some_and(|p| Path::new(p) == manifest))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .map(|files| {
                    files
                        .iter()
                        .filter_map(|f| f.as_str().map(PathBuf::from))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// What a component may touch, from its own `describe`, in the person's
/// words: per operation, the arguments whose paths it reads and writes, and
/// whether it wants the network. deskhand checks each call against these and
/// the task's grants before it runs.
pub fn touches(description: &ToolDescription) -> Vec<String> {
    let list = |fields: &[String]| fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
    let mut lines = Vec::new();
    for op in &description.operations {
        let e = &op.effects;
        let mut parts = Vec::new();
        if !e.reads.is_empty() {
            parts.push(format!(
                "reads the paths given as {} (only inside the folders a task grants)",
                list(&e.reads)
            ));
        }
        if !e.writes.is_empty() {
            parts.push(format!(
                "writes the paths given as {} (new files under output/, or changes you approve)",
                list(&e.writes)
            ));
        }
        if parts.is_empty() {
            parts.push("declares no paths: it sees only a copy of output/".into());
        }
        parts.push(if e.network {
            "asks for the network".into()
        } else {
            "no network".into()
        });
        lines.push(format!("  {}: {}", op.name, parts.join("; ")));
    }
    lines
}

/// What does not fit between a skill's SKILL.md and its component's own
/// `describe`, in words, each with what to change: an entry operation the
/// component does not have, a path it declares that no parameter fills.
pub fn mismatches(skill: &super::Skill, description: &ToolDescription) -> Vec<String> {
    let super::Entry::Component { operation, .. } = &skill.entry else {
        return Vec::new();
    };
    let Some(op) = description.operation(operation) else {
        return vec![format!(
            "SKILL.md's deskhand-entry names the operation {operation:?}, which the component does not \
             have (it has: {}); change one of them",
            description.operation_names().join(", ")
        )];
    };
    op.effects
        .reads
        .iter()
        .chain(&op.effects.writes)
        .filter(|field| !skill.params.iter().any(|p| p.name == **field))
        .map(|field| {
            format!(
                "the operation {operation:?} reads or writes the path given as {field:?}, but SKILL.md has no \
                 parameter {field:?} (deskhand-params), so no task can give it one"
            )
        })
        .collect()
}

/// The file in the user's config folder that remembers which of their
/// component skills' code they confirmed.
pub const CONFIRMED_FILE: &str = "confirmed-components.json";

/// The person's own component skills whose code they have seen and let run:
/// each skill's folder (canonical) with the SHA-256 of the component they
/// confirmed. Rebuilt or replaced code is new code and is asked about again,
/// as trust of a workspace's skills is ([`super::trust`]).
#[derive(Debug)]
pub struct Confirmed {
    file: PathBuf,
    record: std::collections::BTreeMap<String, String>,
}

impl Confirmed {
    /// Reads the record in `config_dir`; a missing file confirms nothing, a
    /// broken one is an error naming it.
    pub fn load(config_dir: &Path) -> Result<Self, String> {
        let file = config_dir.join(CONFIRMED_FILE);
        let record = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is not a record of confirmed components ({e}); move it away and confirm your skills again",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => return Err(format!("{} could not be read: {e}", file.display())),
        };
        Ok(Confirmed { file, record })
    }

    /// Whether `skill`'s component, as it is now, was confirmed; a skill
    /// without a component needs no confirmation.
    pub fn is_confirmed(&self, skill: &super::Skill) -> bool {
        let super::Entry::Component { path, .. } = &skill.entry else {
            return true;
        };
        let Some(key) = key(skill) else { return false };
        super::trust::code_digest(path).is_ok_and(|(_, digest)| self.record.get(&key).is_some_and(|d| *d == digest))
    }

    /// Remembers `skill`'s component as it is now, and saves the record (a
    /// whole new file moved into place).
    pub fn confirm(&mut self, skill: &super::Skill) -> Result<(), String> {
        let (super::Entry::Component { path, .. }, Some(key)) = (&skill.entry, key(skill)) else {
            return Ok(());
        };
        let (_, digest) = super::trust::code_digest(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.record.insert(key, digest);
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = serde_json::to_vec_pretty(&self.record).map_err(|e| e.to_string())?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::io::Write::write_all(&mut tmp, &text).map_err(|e| format!("{}: {e}", self.file.display()))?;
        tmp.persist(&self.file)
            .map_err(|e| format!("{}: {e}", self.file.display()))?;
        Ok(())
    }
}

/// A skill as the record names it: its folder's canonical path.
fn key(skill: &super::Skill) -> Option<String> {
    let dir = skill.dir.as_ref()?;
    Some(
        std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.clone())
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sdk_is_all_of_it_and_finds_its_wit() {
        let sdk_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-tools/sdk/src");
        let mut in_repo: Vec<String> = std::fs::read_dir(&sdk_src)
            .unwrap()
            .map(|e| format!("src/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        in_repo.sort();
        let mut embedded: Vec<String> = SDK_FILES
            .iter()
            .map(|(p, _)| (*p).to_owned())
            .filter(|p| p.starts_with("src/"))
            .collect();
        embedded.sort();
        assert_eq!(
            embedded, in_repo,
            "every SDK source is embedded (add new ones to SDK_FILES)"
        );
        assert!(
            SDK_FILES[1].1.contains(WIT_IN_REPO),
            "the SDK's lib.rs names the WIT where the copy rewrites it"
        );
    }

    #[test]
    fn a_scaffold_is_a_valid_skill_with_its_crate_and_a_bad_name_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("word-count");
        scaffold(&dir, "word-count").unwrap();
        let text = std::fs::read_to_string(dir.join(SKILL_FILE)).unwrap();
        let skill = parse_skill(&text, SkillSource::User, Some(&dir)).unwrap();
        assert_eq!(
            skill.entry,
            super::super::Entry::Component {
                path: dir.join("scripts/word-count.wasm"),
                operation: "run".into()
            }
        );
        let manifest: toml::Table = std::fs::read_to_string(dir.join("component/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("word-count"));
        assert!(manifest["workspace"]["dependencies"].get("wit-bindgen").is_some());
        let lib = std::fs::read_to_string(dir.join("component/deskhand-guest/src/lib.rs")).unwrap();
        assert!(lib.contains("path: \"wit\""), "the SDK copy reads the WIT beside it");
        assert!(dir.join("component/deskhand-guest/wit/tool.wit").is_file());
        assert!(dir.join("evals/evals.json").is_file() && dir.join("scripts").is_dir());

        let e = scaffold(&dir, "word-count").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let bad = tmp.path().join("Bad--Name");
        let e = scaffold(&bad, "Bad--Name").unwrap_err();
        assert!(matches!(e, ComponentError::BadSkill(_)), "{e}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the first skill: {left:?}");
    }

    #[test]
    fn a_skill_and_its_component_that_disagree_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("word-count");
        scaffold(&dir, "word-count").unwrap();
        let text = std::fs::read_to_string(dir.join(SKILL_FILE)).unwrap();
        let skill = parse_skill(&text, SkillSource::User, Some(&dir)).unwrap();
        let op = |name: &str, reads: &[&str]| deskhand_types::tool::Operation {
            name: name.into(),
            summary: String::new(),
            args_schema: serde_json::json!({}),
            effects: deskhand_types::tool::Effects {
                reads: reads.iter().map(|r| (*r).to_owned()).collect(),
                writes: vec!["output".into()],
                network: false,
            },
        };
        let described = |ops| ToolDescription {
            name: "word-count".into(),
            version: "0.1.0".into(),
            summary: String::new(),
            operations: ops,
        };
        assert!(mismatches(&skill, &described(vec![op("run", &["folder"])])).is_empty());
        let other = mismatches(&skill, &described(vec![op("count", &["folder"])]));
        assert!(
            other[0].contains("does not have") && other[0].contains("count"),
            "{other:?}"
        );
        let unfilled = mismatches(&skill, &described(vec![op("run", &["folder", "glossary"])]));
        assert!(unfilled[0].contains("no parameter \"glossary\""), "{unfilled:?}");
    }

    #[test]
    fn confirmed_code_is_remembered_by_its_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("word-count");
        scaffold(&dir, "word-count").unwrap();
        let wasm = dir.join("scripts/word-count.wasm");
        std::fs::write(&wasm, b"one").unwrap();
        let text = std::fs::read_to_string(dir.join(SKILL_FILE)).unwrap();
        let skill = parse_skill(&text, SkillSource::User, Some(&dir)).unwrap();
        let config = tmp.path().join("config");
        let mut record = Confirmed::load(&config).unwrap();
        assert!(!record.is_confirmed(&skill));
        record.confirm(&skill).unwrap();
        assert!(Confirmed::load(&config).unwrap().is_confirmed(&skill));
        std::fs::write(&wasm, b"two").unwrap();
        assert!(
            !Confirmed::load(&config).unwrap().is_confirmed(&skill),
            "new code is asked about again"
        );
        std::fs::write(config.join(CONFIRMED_FILE), "[").unwrap();
        assert!(
            Confirmed::load(&config)
                .unwrap_err()
                .contains("confirmed-components.json")
        );
    }

    #[test]
    fn a_missing_crate_or_cargo_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let options = BuildOptions {
            cargo: tmp.path().join("no-cargo-here"),
            target_dir: tmp.path().join("target"),
        };
        let e = build(tmp.path(), "x", &options).unwrap_err();
        assert!(e.to_string().contains("skill new NAME --component"), "{e}");
        scaffold(&tmp.path().join("x"), "x").unwrap();
        let e = build(&tmp.path().join("x"), "x", &options).unwrap_err();
        assert!(e.to_string().contains("rustup target add wasm32-wasip2"), "{e}");
    }

    /// A cargo that says what cargo says when the target is missing.
    #[cfg(unix)]
    #[test]
    fn a_missing_target_names_the_rustup_fix() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let cargo = tmp.path().join("cargo");
        std::fs::write(
            &cargo,
            "#!/bin/sh\necho 'error[E0463]: cannot find crate for `core`' >&2\n\
             echo '  = note: the `wasm32-wasip2` target may not be installed' >&2\nexit 101\n",
        )
        .unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        scaffold(&tmp.path().join("x"), "x").unwrap();
        let options = BuildOptions {
            cargo,
            target_dir: tmp.path().join("target"),
        };
        let e = build(&tmp.path().join("x"), "x", &options).unwrap_err();
        assert!(matches!(e, ComponentError::NoTarget), "{e}");
        assert!(e.to_string().contains("`rustup target add wasm32-wasip2`"), "{e}");
        assert!(!tmp.path().join("x/scripts/x.wasm").exists());
    }
}
