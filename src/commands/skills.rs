//! `deskhand skills list|show|trust|untrust`: the skills a workspace can
//! use, what each declares it runs, and the person's trust in the skills
//! that came with the workspace (`.agents/skills/`), which never run before
//! it.

use std::path::Path;

use deskhand_runtime::skills::{self, Discovery, Skill, SkillSource, TrustStore};

use crate::cli::SkillsCommand;
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::{config_dir, open_workspace};
use crate::terminal::{confirm, out};

pub fn skills(command: SkillsCommand) -> Result<(), Failure> {
    match command {
        SkillsCommand::List { workspace } => list(&workspace),
        SkillsCommand::Show { name, workspace } => show(&name, &workspace),
        SkillsCommand::Trust { names, workspace, yes } => trust(&names, &workspace, yes),
        SkillsCommand::Untrust { names, workspace } => untrust(&names, &workspace),
    }
}

fn found(workspace: &Path) -> Result<(std::path::PathBuf, Discovery), Failure> {
    let ws = open_workspace(workspace)?;
    let root = ws.root().to_path_buf();
    let discovery = skills::discover(&root, config_dir().as_deref());
    Ok((root, discovery))
}

fn source(s: SkillSource) -> &'static str {
    match s {
        SkillSource::Workspace => "workspace",
        SkillSource::User => "yours",
        SkillSource::Bundled => "bundled",
    }
}

fn list(workspace: &Path) -> Result<(), Failure> {
    let (_, d) = found(workspace)?;
    for s in &d.skills {
        out(&format!(
            "{:<26} {:<9} {}",
            render::line(&s.name),
            source(s.source),
            render::summary(&s.description)
        ));
    }
    for (s, why) in &d.untrusted {
        out(&format!(
            "{:<26} {:<9} not run: {why}. See what it runs: deskhand skills show {}; \
             trust it: deskhand skills trust {}",
            render::line(&s.name),
            "workspace",
            render::line(&s.name),
            render::line(&s.name)
        ));
    }
    for p in &d.problems {
        out(&format!("skipped: {}", render::line(&p.to_string())));
    }
    Ok(())
}

fn show(name: &str, workspace: &Path) -> Result<(), Failure> {
    let (_, d) = found(workspace)?;
    let (skill, why) = d
        .skills
        .iter()
        .map(|s| (s, None))
        .chain(d.untrusted.iter().map(|(s, w)| (s, Some(*w))))
        .find(|(s, _)| s.name == name)
        .ok_or_else(|| not_found(name, &d))?;
    out(&format!("{} ({})", render::line(&skill.name), source(skill.source)));
    if let Some(dir) = &skill.dir {
        out(&format!("folder: {}", render::line(&dir.display().to_string())));
    }
    out(&format!("\n{}\n", render::block(&skill.description)));
    out(&render::block(&skill.declarations().join("\n")));
    if let Some(why) = why {
        out(&format!(
            "\nNot run: {why}. To run it: deskhand skills trust {}",
            render::line(&skill.name)
        ));
    }
    Ok(())
}

fn not_found(name: &str, d: &Discovery) -> Failure {
    let names: Vec<&str> = d
        .skills
        .iter()
        .map(|s| s.name.as_str())
        .chain(d.untrusted.iter().map(|(s, _)| s.name.as_str()))
        .collect();
    user_error(format!(
        "no skill named {:?} here; the skills are: {}",
        render::line(name),
        names.join(", ")
    ))
}

fn trust(names: &[String], workspace: &Path, yes: bool) -> Result<(), Failure> {
    let (root, d) = found(workspace)?;
    let chosen: Vec<&Skill> = if names.is_empty() {
        d.untrusted.iter().map(|(s, _)| s).collect()
    } else {
        let mut chosen = Vec::new();
        for name in names {
            match d.untrusted.iter().find(|(s, _)| s.name == *name) {
                Some((s, _)) => chosen.push(s),
                None if d
                    .skills
                    .iter()
                    .any(|s| s.name == *name && s.source == SkillSource::Workspace) =>
                {
                    out(&format!("{} is already trusted.", render::line(name)));
                }
                None => return Err(not_found(name, &d)),
            }
        }
        chosen
    };
    if chosen.is_empty() {
        out("No workspace skills wait for your trust.");
        return Ok(());
    }
    for s in &chosen {
        out(&format!(
            "\n{} (from {})",
            render::line(&s.name),
            render::line(&s.dir.as_deref().unwrap_or(Path::new("?")).display().to_string())
        ));
        out(&format!("{}", render::summary(&s.description)));
        out(&render::block(&s.declarations().join("\n")));
    }
    let question = format!(
        "\nTrust {} skill(s) in this workspace? They run with the folders each task grants, \
         and ask again if what they run changes. [y/N] ",
        chosen.len()
    );
    let asked = || std::io::IsTerminal::is_terminal(&std::io::stdin()) && confirm(&question);
    if !(yes || asked()) {
        return Err(user_error(
            "nothing was trusted (answer y at the prompt, or pass --yes after reading what they run)",
        ));
    }
    let mut store = TrustStore::load(config_dir().as_deref()).map_err(user_error)?;
    store.trust(&root, &chosen).map_err(user_error)?;
    out(&format!("Trusted {} skill(s).", chosen.len()));
    Ok(())
}

fn untrust(names: &[String], workspace: &Path) -> Result<(), Failure> {
    let ws = open_workspace(workspace)?;
    let mut store = TrustStore::load(config_dir().as_deref()).map_err(user_error)?;
    let n = store.untrust(ws.root(), names).map_err(user_error)?;
    out(&format!(
        "{n} skill(s) of this workspace are no longer trusted; they will not run until trusted again."
    ));
    Ok(())
}
