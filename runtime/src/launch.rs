//! Starting or resuming a run the way every front end does (the CLI, the
//! browser UI): the model configuration, the installed skills and their
//! components, the offline planner when no model is configured, and the
//! agent itself. The front end brings the gate, the observer and the shell;
//! a schedule brings an [`Envelope`] instead of a person to ask (the run is
//! then unattended: [`crate::envelope::Unattended`] is its gate).

use std::path::{Path, PathBuf};

use deskhand_types::{Mode, RunId, Task};

use crate::agent::offline::OfflinePlanner;
use crate::agent::{Agent, AgentSettings, Gate, RunObserver, RunReport};
use crate::envelope::{Envelope, Unattended};
use crate::error::{Error, Result};
use crate::model::ModelProvider;
use crate::model::config::{ModelConfig, ProviderKind};
use crate::skills::{self, MatchContext};
use crate::tools::Toolbox;
use crate::workspace::Workspace;

/// The model configuration: the user's file (`<config_dir>/config.toml`),
/// the workspace's (`.deskhand/config.toml`), the environment (`env`), then
/// `model` (a model name, or "offline" for the offline planner).
pub fn model_config(
    ws: &Workspace,
    config_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    model: Option<&str>,
) -> Result<ModelConfig> {
    let user_config = config_dir.map(|d| d.join("config.toml"));
    let ws_config = ws.state_dir().join("config.toml");
    let mut config = ModelConfig::load(user_config.as_deref(), Some(&ws_config), env)
        .map_err(|e| Error::InvalidArgs(e.to_string()))?;
    match model {
        Some("offline") => config = ModelConfig::default(),
        // A model name alone does not say where to send it; the offline
        // planner in its place would not be what was asked for.
        Some(m) if config.provider == ProviderKind::Offline => {
            let files: Vec<String> = user_config
                .iter()
                .chain([&ws_config])
                .map(|f| f.display().to_string())
                .collect();
            return Err(Error::ModelWithoutProvider {
                model: m.to_owned(),
                config_files: files.join(" or "),
            });
        }
        Some(m) => {
            config.with_model(m);
        }
        None => {}
    }
    Ok(config)
}

/// What a run needs from the front end that starts it.
pub struct Launch<'a> {
    pub workspace: &'a Workspace,
    pub config: ModelConfig,
    /// The user's config folder (its `skills/` holds their own skills).
    pub config_dir: Option<PathBuf>,
    /// Skill parameters given outright (`--param name=value`).
    pub params: Vec<(String, String)>,
    pub gate: &'a dyn Gate,
    pub observer: Option<RunObserver>,
    /// The native shell, offered to a configured model.
    pub shell: Option<&'a (dyn deskhand_host_vm::ShellBackend + Sync)>,
    /// Where problems that do not stop the run go (a broken skill, say).
    pub warn: &'a dyn Fn(String),
    /// Set to stop the run (the UI's Stop button).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// What the person approved beforehand for a run no one watches (a
    /// schedule's, made by [`crate::envelope::draft`] and saved with it).
    /// `Some` makes the run unattended: `gate` is never asked; every step,
    /// grant and changeset is decided by [`crate::gate::assess`] with the
    /// envelope, and what it does not cover (a step it does not hold, a
    /// grant beyond it, a deletion, a question) stops the run for the person
    /// (`NeedsInput`, resumable with `deskhand resume`, notified) without
    /// doing it. Sub-agents inherit it. `None`: the person is there to ask.
    pub envelope: Option<Envelope>,
}

/// A new task, or a run to pick up again (with the person's answer, if it
/// asked, and in another mode, if the person chose one).
#[derive(Debug, Clone)]
pub enum Start {
    New(Task),
    Resume {
        run: RunId,
        answer: Option<String>,
        mode: Option<Mode>,
    },
    /// A new instruction on a run that ended ("now in USD"): a new turn
    /// with the run's context, under the same policy (see [`Agent::follow_up`]).
    FollowUp {
        run: RunId,
        say: String,
        mode: Option<Mode>,
    },
}

/// Sets up the provider (configured model or offline planner) and the
/// skills (their components loaded into `tb`), then runs or resumes.
pub fn launch(l: Launch<'_>, tb: &mut Toolbox, start: Start) -> Result<RunReport> {
    let discovery = discover(&l);
    add_components(tb, &discovery.skills, l.warn);
    run(l, tb, discovery, start)
}

/// [`launch`] for a front end that shares one toolbox between runs (the
/// browser UI): the skills' components must already be in `tb` (see
/// [`add_components`]); a skill whose component is not fails when called.
pub fn launch_shared(l: Launch<'_>, tb: &Toolbox, start: Start) -> Result<RunReport> {
    let discovery = discover(&l);
    run(l, tb, discovery, start)
}

/// Loads the components that `skills` ship into `tb`, each under its
/// skill's name; one that cannot load is reported through `warn` and skipped.
pub fn add_components(tb: &mut Toolbox, skills: &[skills::Skill], warn: &dyn Fn(String)) {
    for skill in skills {
        if let skills::Entry::Component { path, .. } = &skill.entry
            && let Err(e) = tb.add_component(&skill.name, path)
        {
            warn(format!("the skill {} cannot run its component: {e}", skill.name));
        }
    }
}

fn discover(l: &Launch<'_>) -> skills::Discovery {
    discover_skills(l.workspace, l.config_dir.as_deref(), l.warn)
}

/// A task that starts with an installed plugin's `/command` becomes the
/// task the command's template says ([`crate::plugins::expand`]); any other
/// task (a path like `/home/...` too) is left as it is.
pub fn expand_command(task: &mut Task, config_dir: Option<&Path>) {
    if !task.outcome.trim_start().starts_with('/') {
        return;
    }
    if let Some(dir) = config_dir
        && let Some(expanded) = crate::plugins::expand(&task.outcome, &crate::plugins::installed(dir).0)
    {
        task.outcome = expanded;
    }
}

fn run(l: Launch<'_>, tb: &Toolbox, discovery: skills::Discovery, start: Start) -> Result<RunReport> {
    let ws = l.workspace;
    let start = match start {
        Start::New(mut task) => {
            expand_command(&mut task, l.config_dir.as_deref());
            Start::New(task)
        }
        other => other,
    };
    let grants = match &start {
        Start::New(task) => task.grants.clone(),
        Start::Resume { run, .. } | Start::FollowUp { run, .. } => ws.journal().task_grants(run)?,
    };
    // What the person gave outright: with the task (kept in the journal, so
    // a run resumed with an answer still has it), and now.
    let mut given = match &start {
        Start::New(task) => task.params.clone(),
        Start::Resume { run, .. } => crate::view::RunView::load(ws.journal(), run)
            .ok()
            .and_then(|v| v.task)
            .map(|t| t.params)
            .unwrap_or_default(),
        // A new instruction says anew what it wants.
        Start::FollowUp { .. } => std::collections::BTreeMap::new(),
    };
    given.extend(l.params);
    let planner = Planner::new(ws, &l.config, &discovery, &grants, given)?;
    let unattended = l.envelope.map(Unattended::new);
    let gate: &dyn Gate = match &unattended {
        Some(u) => u,
        None => l.gate,
    };
    let agent = Agent {
        workspace: ws,
        toolbox: tb,
        provider: planner.provider(),
        gate,
        settings: AgentSettings {
            max_tokens: l.config.max_tokens,
            context_tokens: l.config.context_tokens,
            stop: l.stop,
            skills: std::sync::Arc::new(discovery.skills.clone()),
            // A model may browse where this machine has Chromium and bubblewrap.
            browser: planner.is_model().then(crate::browser::Browser::find).flatten(),
            // A model may use the connectors listed for the person and the workspace.
            connectors: if planner.is_model() {
                crate::connectors::Connectors::for_workspace(ws, l.config_dir.as_deref())
                    .map_err(|e| (l.warn)(format!("connectors are not offered in this run: {e}")))
                    .ok()
                    .map(std::sync::Arc::new)
            } else {
                None
            },
            ..AgentSettings::default()
        },
        observer: l.observer,
        // A model sees the skills' names and descriptions and reads the rest on demand.
        skills_prompt: if planner.is_model() {
            skills::catalogue(&discovery.skills)
        } else {
            OfflinePlanner::capabilities(&discovery.skills)
        },
        // The offline planner never asks for a shell; a model may.
        shell: l.shell.filter(|_| planner.is_model()),
    };
    match start {
        Start::Resume { run, answer, mode } => agent.resume_with_mode(&run, answer.as_deref(), mode),
        Start::FollowUp { run, say, mode } => agent.follow_up(&run, &say, mode),
        Start::New(task) => agent.run(task),
    }
}

/// The run's model: the configured provider, or the offline planner fitted
/// to the run's grants, skills and parameters.
pub(crate) enum Planner {
    Model(Box<dyn ModelProvider>),
    Offline(Box<OfflinePlanner>),
}

impl Planner {
    pub(crate) fn new(
        ws: &Workspace,
        config: &ModelConfig,
        discovery: &skills::Discovery,
        grants: &[deskhand_types::Grant],
        given: std::collections::BTreeMap<String, String>,
    ) -> Result<Planner> {
        if let Some(model) = crate::model::config::connect(config)? {
            return Ok(Planner::Model(model));
        }
        let context = MatchContext::for_workspace(ws.root(), grants);
        let granted: Vec<PathBuf> = grants.iter().map(|g| g.path.clone()).collect();
        // Where things are, as the person taught it; a file that cannot be read tells nothing.
        let memory = std::fs::read_to_string(ws.root().join(crate::workspace::MEMORY_FILE)).unwrap_or_default();
        let offline = OfflinePlanner::new(discovery.skills.clone(), context)
            .with_params(given)
            .with_grants(&granted, memory);
        Ok(Planner::Offline(Box::new(offline)))
    }

    pub(crate) fn provider(&self) -> &dyn ModelProvider {
        match self {
            Planner::Model(p) => p.as_ref(),
            Planner::Offline(o) => o.as_ref(),
        }
    }

    /// Whether a configured model plans (the offline planner never asks for a shell).
    pub(crate) fn is_model(&self) -> bool {
        matches!(self, Planner::Model(_))
    }
}

/// The skills for `ws`: the workspace's, the user's in `config_dir`, the
/// bundled ones; one that cannot be read is reported through `warn`.
/// The skills a run may use, as every front end and the envelope's draft
/// find them: a skill that could not be read, a workspace's skill the
/// person has not trusted, and one of the person's component skills whose
/// code they have not confirmed (`deskhand skills trust`, or the terminal's
/// question on first use) are left out, each said through `warn`.
pub(crate) fn discover_skills(ws: &Workspace, config_dir: Option<&Path>, warn: &dyn Fn(String)) -> skills::Discovery {
    let mut discovery = skills::discover(ws.root(), config_dir);
    for problem in &discovery.problems {
        warn(format!("skipped a skill: {problem}"));
    }
    for (skill, why) in &discovery.untrusted {
        warn(format!(
            "the workspace's skill {} was not used: {why}. See what it runs with `deskhand skills show {}`, \
             and let it run with `deskhand skills trust {}`",
            skill.name, skill.name, skill.name
        ));
    }
    let is_component =
        |s: &skills::Skill| s.source == skills::SkillSource::User && matches!(s.entry, skills::Entry::Component { .. });
    if discovery.skills.iter().any(is_component) {
        let confirmed = config_dir.map(skills::component::Confirmed::load);
        discovery.skills.retain(|s| {
            if !is_component(s) {
                return true;
            }
            let ok = matches!(&confirmed, Some(Ok(c)) if c.is_confirmed(s));
            if !ok {
                warn(format!(
                    "your skill {} was not used: what its code may touch has not been confirmed. See it with \
                     `deskhand skills show {}`, and confirm it with `deskhand skills trust {}`",
                    s.name, s.name, s.name
                ));
            }
            ok
        });
    }
    discovery
}
