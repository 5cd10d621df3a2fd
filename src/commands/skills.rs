//! `deskhand skills list|show|trust|untrust`: the skills a workspace can
//! use, what each declares it runs, and the person's trust in the skills
//! that came with the workspace (`.agents/skills/`), which never run before
//! it.

use std::path::Path;

use deskhand_runtime::skill_creator::{self, Draft, EvalCheck, facts_words};
use deskhand_runtime::skills::{self, Discovery, Skill, SkillSource, TrustStore};
use deskhand_types::RunId;

use crate::cli::SkillsCommand;
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::{config_dir, open_workspace, toolbox};
use crate::terminal::{confirm, out};

pub fn skills(command: SkillsCommand, cache_dir: Option<std::path::PathBuf>) -> Result<(), Failure> {
    match command {
        SkillsCommand::List { workspace } => list(&workspace),
        SkillsCommand::Show { name, workspace } => show(&name, &workspace, cache_dir),
        SkillsCommand::Trust { names, workspace, yes } => trust(&names, &workspace, yes, cache_dir),
        SkillsCommand::Untrust { names, workspace } => untrust(&names, &workspace),
        SkillsCommand::Create {
            run,
            workspace,
            name,
            description,
            yes,
        } => create(&run, &workspace, name, description, yes, cache_dir),
        SkillsCommand::Install {
            dir,
            workspace,
            replace,
            yes,
        } => install(&dir, &workspace, replace, yes, cache_dir),
        SkillsCommand::Remove { name } => remove(&name),
        SkillsCommand::Test { name, workspace } => test(&name, &workspace, cache_dir),
        SkillsCommand::New {
            name,
            component,
            dir,
            workspace,
            target_dir,
        } => super::skill_new::new(&name, component, dir, workspace, target_dir, cache_dir),
        SkillsCommand::Build {
            skill,
            workspace,
            target_dir,
        } => super::skill_new::build(&skill, &workspace, target_dir, cache_dir),
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

fn show(name: &str, workspace: &Path, cache_dir: Option<std::path::PathBuf>) -> Result<(), Failure> {
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
    super::skill_new::say_touches(skill, cache_dir);
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

fn trust(names: &[String], workspace: &Path, yes: bool, cache_dir: Option<std::path::PathBuf>) -> Result<(), Failure> {
    let (root, d) = found(workspace)?;
    // Your own component skills are confirmed once, by their code, rather than trusted per workspace.
    let mine = |n: &String| {
        d.skills.iter().find(|s| {
            s.name == *n && s.source == SkillSource::User && matches!(s.entry, skills::Entry::Component { .. })
        })
    };
    if !names.is_empty() && names.iter().all(|n| mine(n).is_some()) {
        for skill in names.iter().filter_map(mine) {
            super::skill_new::confirm_component(skill, yes, cache_dir.clone(), "Nothing was confirmed")?;
        }
        return Ok(());
    }
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
        out(&render::summary(&s.description));
        out(&render::block(&s.declarations().join("\n")));
        super::skill_new::say_touches(s, cache_dir.clone());
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

/// The user's config folder, or a failure saying how to have one.
fn config() -> Result<std::path::PathBuf, Failure> {
    config_dir().ok_or_else(|| user_error("there is no config folder for your skills: set XDG_CONFIG_HOME or HOME"))
}

fn create(
    run: &str,
    workspace: &Path,
    name: Option<String>,
    description: Option<String>,
    yes: bool,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<(), Failure> {
    let ws = open_workspace(workspace)?;
    let config_dir = config()?;
    let tb = toolbox(cache_dir)?;
    let found = skills::discover(ws.root(), Some(&config_dir));
    let mut draft = skill_creator::draft(&ws, &RunId(run.to_owned()), &found.skills, &tb)
        .map_err(|e| user_error(format!("no skill was made: {e}")))?;
    // With a model configured, it drafts the words; the person sees them before anything is installed.
    let config = crate::setup::load_config(&ws, None)?;
    if let Some(model) = deskhand_runtime::model::config::connect(&config).map_err(|e| user_error(e.to_string()))? {
        match skill_creator::words_from_model(&mut draft, model.as_ref()) {
            Ok(()) => out(&format!("The name and description are {}'s words.", model.describe())),
            Err(e) => out(&format!("Kept deskhand's own words: {}", render::line(&e))),
        }
    }
    if let Some(n) = name {
        draft.name = n;
    }
    if let Some(d) = description {
        draft.description = d;
    }
    if let Err(e) = draft.parsed() {
        return Err(user_error(format!(
            "the draft is not a valid skill: {e}. Give another --name or --description"
        )));
    }
    if let Some(other) = found
        .skills
        .iter()
        .find(|s| s.name == draft.name && s.source == SkillSource::User)
    {
        return Err(user_error(format!(
            "you already have a skill named {} ({}); give the new one another --name",
            other.name,
            other.dir.as_deref().unwrap_or(Path::new("?")).display()
        )));
    }
    out(&render::block(&describe_draft(&draft)));

    out("\nReplaying the draft on a scratch copy of the run's folders ...");
    let replay = skill_creator::replay(&ws, &draft, &tb).map_err(|e| user_error(format!("the replay failed: {e}")))?;
    let mut lines = Vec::new();
    for (run_file, again) in &replay.files {
        lines.push(format!(
            "  {}\n    the run:    {}\n    the replay: {}",
            run_file.path,
            facts_words(run_file),
            again.as_ref().map_or("not delivered".to_owned(), facts_words)
        ));
    }
    out(&render::block(&lines.join("\n")));
    // The values side by side: what differs, cell by cell and line by line.
    let mut differences = Vec::new();
    for d in &replay.diffs {
        if d.is_empty() {
            differences.push(format!("  {}: the same values as the run", d.path));
            continue;
        }
        differences.push(format!("  {}: {} difference(s) from the run", d.path, d.count()));
        differences.extend(d.differences.iter().map(|l| format!("    {l}")));
        if d.more > 0 {
            differences.push(format!("    ... and {} more", d.more));
        }
    }
    out(&render::block(&differences.join("\n")));
    let differ = replay.differences();
    if replay.matches() && differ > 0 {
        out(&format!(
            "The replay delivered the same files, sheets, rows, formulas and pages as the run, but {differ} value(s) \
             differ (above): read them before you install it."
        ));
    } else if replay.matches() {
        out("The replay delivered the same files, sheets, rows, formulas and pages as the run, and the same values.");
    } else {
        out(&format!(
            "The replay does not match the run: {}",
            render::line(&replay.summary)
        ));
    }

    // The draft stays where the person can edit it, whatever they answer.
    let drafts = ws.root().join(".deskhand").join("skill-drafts").join(&draft.name);
    if drafts.exists() {
        skill_creator::set_aside(&drafts).map_err(user_error)?;
    }
    draft
        .write_to(&drafts)
        .map_err(|e| user_error(format!("the draft could not be saved at {}: {e}", drafts.display())))?;
    out(&format!(
        "\nThe draft is in {}; edit its SKILL.md (name, description, parameters) or evals/evals.json (checks) there, \
         then install it with: deskhand skills install {}",
        drafts.display(),
        drafts.display()
    ));
    if !replay.matches() && !yes {
        return Err(user_error(
            "not installed: the replay did not deliver what the run did (see above). Edit the draft and install it \
             yourself if it is what you want",
        ));
    }
    let question = format!(
        "\nInstall {} into your skills ({})? [y/N] ",
        draft.name,
        config_dir.display()
    );
    let asked = || std::io::IsTerminal::is_terminal(&std::io::stdin()) && confirm(&question);
    if !(yes || asked()) {
        return Err(user_error(
            "not installed (answer y at the prompt, or pass --yes after reading the draft and its replay)",
        ));
    }
    let installed = skill_creator::install(&drafts, &config_dir, &ws, false).map_err(user_error)?;
    say_installed(&installed.skill, &installed.checks)
}

fn describe_draft(d: &Draft) -> String {
    let mut t = format!(
        "Draft skill: {}\n{}\nMade from run {} (\"{}\")\nRuns: {}{}{}\n",
        d.name,
        d.description,
        d.run,
        d.task,
        d.tool,
        if d.plan.is_empty() {
            format!(".{}", d.operation)
        } else {
            format!(", a recorded plan of {} step(s):", d.plan.len())
        },
        d.from_skill
            .as_ref()
            .filter(|_| d.plan.is_empty())
            .map_or(String::new(), |s| format!(", as the {s} skill does"))
    );
    for (i, s) in d.plan.iter().enumerate() {
        let calls: Vec<&str> = s.calls.iter().map(|c| c.call.as_str()).collect();
        t.push_str(&format!("  step {}: {} ({})\n", i + 1, s.title, calls.join(", ")));
    }
    t.push_str("Parameters:\n");
    for p in &d.params {
        let example = if p.example.is_empty() {
            String::new()
        } else {
            format!(" (in the run: {})", p.example)
        };
        t.push_str(&format!("  {}: {}{example}\n", p.name, p.spec));
    }
    t.push_str(&format!(
        "Picked for: {}\nDelivers (checked by its evals):\n",
        d.keywords.join("; ")
    ));
    for f in &d.delivered {
        t.push_str(&format!("  {} ({})\n", f.path, facts_words(f)));
    }
    t
}

fn say_installed(skill: &Skill, checks: &[EvalCheck]) -> Result<(), Failure> {
    out(&format!(
        "Installed {} at {} and read it back from there.",
        render::line(&skill.name),
        render::line(&skill.dir.as_deref().unwrap_or(Path::new("?")).display().to_string())
    ));
    say_checks(skill, checks)
}

fn say_checks(skill: &Skill, checks: &[EvalCheck]) -> Result<(), Failure> {
    if checks.is_empty() {
        out("It has no evals (evals/evals.json), so nothing proves which tasks pick it.");
        return Ok(());
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    for c in checks {
        out(&format!(
            "  {} {}{}",
            if c.passed { "ok  " } else { "FAIL" },
            render::line(&c.prompt),
            c.problem
                .as_deref()
                .map_or(String::new(), |p| format!(": {}", render::line(p)))
        ));
    }
    if passed == checks.len() {
        out(&format!("{} passes all {} of its evals.", skill.name, checks.len()));
        Ok(())
    } else {
        Err(user_error(format!(
            "{} of {} evals of {} failed (see above): where another skill or none is picked, add keywords \
             (deskhand-keywords) those tasks use; where a delivery is short, fix the skill or its evals",
            checks.len() - passed,
            checks.len(),
            skill.name
        )))
    }
}

fn install(
    source: &Path,
    workspace: &Path,
    replace: bool,
    yes: bool,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<(), Failure> {
    let ws = open_workspace(workspace)?;
    let config_dir = config()?;
    // An archive is unpacked in the sandbox first; the folder it becomes is what is shown and installed.
    let source_text = source.to_string_lossy();
    let unpacked = if skill_creator::is_archive(&source_text) {
        let tb = toolbox(cache_dir)?;
        Some(skill_creator::unpack_archive(&source_text, &tb).map_err(|e| user_error(format!("not installed: {e}")))?)
    } else {
        None
    };
    let dir = unpacked.as_ref().map_or(source, |(_, d)| d.as_path());
    let text = std::fs::read_to_string(dir.join(skills::SKILL_FILE)).map_err(|e| {
        user_error(format!(
            "{} is not a skill folder: {e}. Give the folder that holds SKILL.md",
            dir.display()
        ))
    })?;
    let skill =
        skills::parse_skill_strict(&text, SkillSource::User, Some(dir)).map_err(|e| user_error(e.to_string()))?;
    out(&format!(
        "{}\n{}\n",
        render::line(&skill.name),
        render::summary(&skill.description)
    ));
    out(&render::block(&skill.declarations().join("\n")));
    let question = format!("\nInstall {} into your skills? [y/N] ", skill.name);
    let asked = || std::io::IsTerminal::is_terminal(&std::io::stdin()) && confirm(&question);
    if !(yes || asked()) {
        return Err(user_error("not installed (answer y at the prompt, or pass --yes)"));
    }
    let installed = skill_creator::install(dir, &config_dir, &ws, replace).map_err(user_error)?;
    say_installed(&installed.skill, &installed.checks)
}

fn remove(name: &str) -> Result<(), Failure> {
    let config_dir = config()?;
    let dir = skills::user_skills_dir(&config_dir).join(name);
    if name.contains(['/', '\\']) || name.starts_with('.') || !dir.join(skills::SKILL_FILE).is_file() {
        return Err(user_error(format!(
            "you have no skill named {:?} in {}; `deskhand skills list` shows yours as \"yours\"",
            render::line(name),
            skills::user_skills_dir(&config_dir).display()
        )));
    }
    let aside = skill_creator::set_aside(&dir).map_err(user_error)?;
    out(&format!(
        "Removed {}: moved to {} (move it back to restore it).",
        render::line(name),
        aside.display()
    ));
    Ok(())
}

fn test(name: &str, workspace: &Path, cache_dir: Option<std::path::PathBuf>) -> Result<(), Failure> {
    let ws = open_workspace(workspace)?;
    let d = skills::discover(ws.root(), config_dir().as_deref());
    let skill = d
        .skills
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| not_found(name, &d))?;
    let mut checks = skill_creator::check_evals(skill, &d.skills, ws.root()).map_err(user_error)?;
    let mut tb = toolbox(cache_dir)?;
    deskhand_runtime::launch::add_components(&mut tb, std::slice::from_ref(skill), &|w| {
        out(&format!("warning: {}", render::line(&w)))
    });
    checks.extend(skill_creator::check_deliveries(&ws, skill, &tb).map_err(user_error)?);
    say_checks(skill, &checks)
}
