//! `deskhand skill new NAME --component` and `deskhand skill build NAME|DIR`:
//! a skill with its own code, a Rust crate for the `deskhand:tool` world
//! that is built for wasm32-wasip2 and installed into the skill's
//! `scripts/` (`deskhand_runtime::skills::component`), then loaded into the
//! toolbox to show what its `describe` says it may touch.

use std::path::{Path, PathBuf};

use deskhand_runtime::skills::component::{self, BuildOptions, ComponentError};
use deskhand_runtime::skills::{self, SkillSource};
use deskhand_runtime::tools::BundledTool;

use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::{config_dir, default_cache_dir, open_workspace, toolbox};
use crate::terminal::out;

pub fn new(
    name: &str,
    component: bool,
    dir: Option<PathBuf>,
    workspace: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> Result<(), Failure> {
    if !component {
        return Err(user_error(
            "`skill new` makes skills with their own code: add --component. To make a skill from a task that went \
             well, use `deskhand skill create --from RUN`",
        ));
    }
    if BundledTool::from_name(name).is_some() {
        return Err(user_error(format!(
            "{name:?} is the name of one of deskhand's own tools; give the skill another name"
        )));
    }
    let parent = match (dir, &workspace) {
        (Some(d), _) => d,
        (None, Some(w)) => open_workspace(w)?.root().join(".agents").join("skills"),
        (None, None) => skills::user_skills_dir(&config_dir().ok_or_else(|| {
            user_error("there is no config folder for your skills: set XDG_CONFIG_HOME or HOME, or give --dir")
        })?),
    };
    let skill_dir = parent.join(name);
    let options = build_options(target_dir, cache_dir.clone())?;
    component::scaffold(&skill_dir, name).map_err(|e| user_error(format!("no skill was made: {e}")))?;
    out(&format!(
        "Made the skill {} in {}:\n  SKILL.md, evals/evals.json, and its Rust crate in {}/ (the deskhand SDK and WIT \
         beside it, in {}/deskhand-guest/)",
        render::line(name),
        render::line(&skill_dir.display().to_string()),
        component::CRATE_DIR,
        component::CRATE_DIR
    ));
    build_and_show(&skill_dir, name, &options, cache_dir).map_err(|mut f| {
        f.message.push_str(&format!(
            "\nThe skill's folder is kept; fix the crate in {} and run: deskhand skill build {}",
            skill_dir.join(component::CRATE_DIR).display(),
            skill_dir.display()
        ));
        f
    })?;
    let in_workspace = workspace
        .as_ref()
        .map(|w| format!(" --workspace {}", w.display()))
        .unwrap_or_default();
    if workspace.is_some() {
        out(&format!(
            "It is the workspace's, so it runs once you trust it: deskhand skills trust {name}{in_workspace}"
        ));
    }
    out(&format!(
        "Try it: deskhand run \"count the words in projects\" --grant projects{in_workspace}\n\
         Change it: edit {}, then deskhand skill build {}\n\
         Check it: deskhand skill test {name}{in_workspace}",
        skill_dir
            .join(component::CRATE_DIR)
            .join("src")
            .join("lib.rs")
            .display(),
        skill_dir.display()
    ));
    Ok(())
}

pub fn build(
    skill: &str,
    workspace: &Path,
    target_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> Result<(), Failure> {
    let options = build_options(target_dir, cache_dir.clone())?;
    let (dir, name) = find(skill, workspace)?;
    build_and_show(&dir, &name, &options, cache_dir)
}

/// The skill folder `skill` names: a folder holding a SKILL.md, or the name
/// of a skill of the workspace's or yours that has a folder.
fn find(skill: &str, workspace: &Path) -> Result<(PathBuf, String), Failure> {
    let as_dir = Path::new(skill);
    if as_dir.join(skills::SKILL_FILE).is_file() {
        let text = std::fs::read_to_string(as_dir.join(skills::SKILL_FILE))
            .map_err(|e| user_error(format!("{}: {e}", as_dir.display())))?;
        let parsed =
            skills::parse_skill(&text, SkillSource::User, Some(as_dir)).map_err(|e| user_error(e.to_string()))?;
        return Ok((as_dir.to_path_buf(), parsed.name));
    }
    let ws = open_workspace(workspace)?;
    let d = skills::discover(ws.root(), config_dir().as_deref());
    d.skills
        .iter()
        .chain(d.untrusted.iter().map(|(s, _)| s))
        .find(|s| s.name == skill)
        .and_then(|s| Some((s.dir.clone()?, s.name.clone())))
        .ok_or_else(|| {
            user_error(format!(
                "no skill of yours or of this workspace is named {:?}, and no folder {:?} holds a SKILL.md; \
                 `deskhand skills list` shows them",
                render::line(skill),
                render::line(skill)
            ))
        })
}

fn build_options(target_dir: Option<PathBuf>, cache_dir: Option<PathBuf>) -> Result<BuildOptions, Failure> {
    let target_dir = match target_dir {
        Some(t) => t,
        None => cache_dir
            .or_else(default_cache_dir)
            .and_then(|c| c.parent().map(|p| p.join("component-builds")))
            .ok_or_else(|| user_error("there is no cache folder to build in: give --target-dir"))?,
    };
    Ok(BuildOptions {
        cargo: PathBuf::from("cargo"),
        target_dir,
    })
}

fn build_and_show(dir: &Path, name: &str, options: &BuildOptions, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    out(&format!(
        "Building its component for {} (about a minute the first time) ...",
        component::TARGET
    ));
    let built = component::build(dir, name, options).map_err(|e| match e {
        ComponentError::Failed { .. } => user_error(e.to_string()),
        _ => user_error(format!("the component was not built: {e}")),
    })?;
    out(&format!(
        "Installed {} ({} bytes, sha256 {}).",
        render::line(&built.installed.display().to_string()),
        built.bytes,
        built.sha256
    ));
    // Loaded as a run would load it: what it declares is what deskhand checks each call against.
    let mut tb = toolbox(cache_dir)?;
    tb.add_component(name, &built.installed)?;
    let description = tb.by_name(name)?.description().clone();
    out("What it may touch (its own declaration, checked before every call against the folders a task grants):");
    out(&render::block(&component::touches(&description).join("\n")));
    let text = std::fs::read_to_string(dir.join(skills::SKILL_FILE))
        .map_err(|e| user_error(format!("{}: {e}", dir.join(skills::SKILL_FILE).display())))?;
    let skill = skills::parse_skill(&text, SkillSource::User, Some(dir)).map_err(|e| user_error(e.to_string()))?;
    let problems = component::mismatches(&skill, &description);
    if !problems.is_empty() {
        return Err(user_error(format!(
            "the component is installed, but the skill cannot use it as it is:\n  {}",
            render::block(&problems.join("\n  "))
        )));
    }
    Ok(())
}

/// What the component of the skill `name` at `path` may touch, from its own
/// `describe` (loaded into a toolbox as a run would load it; describing
/// itself is all the code does here, in the sandbox, with no folders).
pub fn touches_of(name: &str, path: &Path, cache_dir: Option<PathBuf>) -> Result<Vec<String>, Failure> {
    let mut tb = toolbox(cache_dir)?;
    tb.add_component(name, path)?;
    Ok(component::touches(tb.by_name(name)?.description()))
}

/// For `skills show` and `skills trust`: what a skill's component may
/// touch, or why it cannot be loaded; nothing for a skill without one.
pub fn say_touches(skill: &skills::Skill, cache_dir: Option<PathBuf>) {
    let skills::Entry::Component { path, .. } = &skill.entry else {
        return;
    };
    out("what its code may touch (its own declaration, checked before every call):");
    match touches_of(&skill.name, path, cache_dir) {
        Ok(lines) => out(&render::block(&lines.join("\n"))),
        Err(e) => out(&format!("  it cannot be loaded: {}", render::line(&e.message))),
    }
}

/// Before the first run that uses one of your own component skills (and
/// again once its code changed): shows what its code may touch and asks
/// you to confirm it once, whatever the mode. With the offline planner that
/// is the skill the task picks; a model may call any, so each one waiting is
/// shown. Without a terminal nothing is started, and the error says how to
/// confirm it (`deskhand skills trust NAME`).
pub fn confirm_first_use(
    ws: &deskhand_runtime::workspace::Workspace,
    task: &deskhand_types::Task,
    offline: bool,
    cache_dir: Option<PathBuf>,
) -> Result<(), Failure> {
    let Some(config) = config_dir() else {
        return Ok(());
    };
    let found = skills::discover(ws.root(), Some(&config));
    let yours = |s: &skills::Skill| s.source == SkillSource::User && matches!(s.entry, skills::Entry::Component { .. });
    if !found.skills.iter().any(yours) {
        return Ok(());
    }
    let confirmed = component::Confirmed::load(&config).map_err(user_error)?;
    let waiting = |s: &skills::Skill| yours(s) && !confirmed.is_confirmed(s);
    let asked: Vec<&skills::Skill> = if offline {
        let ctx = skills::MatchContext::for_workspace(ws.root(), &task.grants);
        match skills::match_task(&task.outcome, &found.skills, &ctx) {
            skills::Match::Matched { skill, .. } => {
                found.skills.get(skill).filter(|s| waiting(s)).into_iter().collect()
            }
            skills::Match::NoMatch { .. } => Vec::new(),
        }
    } else {
        found.skills.iter().filter(|s| waiting(s)).collect()
    };
    for skill in asked {
        confirm_component(skill, false, cache_dir.clone(), "Nothing was started")?;
    }
    Ok(())
}

/// Shows what `skill`'s code may touch and records the person's yes (at the
/// terminal, or `yes`); otherwise a failure that starts with `refused`.
pub fn confirm_component(
    skill: &skills::Skill,
    yes: bool,
    cache_dir: Option<PathBuf>,
    refused: &str,
) -> Result<(), Failure> {
    let skills::Entry::Component { path, .. } = &skill.entry else {
        return Ok(());
    };
    let config = config_dir().ok_or_else(|| user_error("there is no config folder: set XDG_CONFIG_HOME or HOME"))?;
    let (bytes, digest) = skills::trust::code_digest(path).map_err(|e| {
        user_error(format!(
            "{refused}: the skill {}'s component {} cannot be read ({e}); build it with: deskhand skill build {}",
            skill.name,
            path.display(),
            skill.name
        ))
    })?;
    eprintln!(
        "\nThe skill {} runs its own code, {} ({bytes} bytes, sha256 {digest}), which has not run before.\n\
         What it may touch (its own declaration, checked before every call against the folders the task grants):\n{}",
        render::line(&skill.name),
        render::line(&path.display().to_string()),
        render::block(&touches_of(&skill.name, path, cache_dir)?.join("\n"))
    );
    let question = format!("Let {}'s code run with what it declares? [y/N] ", skill.name);
    if !(yes || crate::terminal::confirm(&question)) {
        return Err(user_error(format!(
            "{refused}: you have not confirmed what the skill {}'s code may touch (shown above). Answer y at the \
             prompt on a terminal, or confirm it with: deskhand skills trust {} --yes",
            skill.name, skill.name
        )));
    }
    let mut record = component::Confirmed::load(&config).map_err(user_error)?;
    record.confirm(skill).map_err(user_error)?;
    eprintln!("Confirmed; it is not asked again until its code changes.");
    Ok(())
}
