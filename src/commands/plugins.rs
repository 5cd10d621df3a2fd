//! `deskhand plugins list|show|install|remove`: bundles of skills, slash
//! commands and connector definitions, shown in full before they are
//! installed into the user's config folder.

use std::path::Path;

use deskhand_runtime::plugins::{self, Plugin};

use crate::cli::PluginsCommand;
use crate::failure::{Failure, user_error};
use crate::render;
use crate::setup::config_dir;
use crate::terminal::{confirm, out};

pub fn plugins(command: PluginsCommand) -> Result<(), Failure> {
    let config =
        config_dir().ok_or_else(|| user_error("there is no config folder for plugins: set XDG_CONFIG_HOME or HOME"))?;
    match command {
        PluginsCommand::List => {
            let (found, problems) = plugins::installed(&config);
            if found.is_empty() && problems.is_empty() {
                out("No plugins installed. Install one with: deskhand plugins install FOLDER");
            }
            for p in &found {
                out(&format!(
                    "{:<24} {} skill(s), commands: {}",
                    render::line(&p.name),
                    p.skills.len(),
                    render::line(
                        &p.commands
                            .iter()
                            .map(|c| format!("/{}", c.name))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                ));
            }
            for e in problems {
                out(&format!("skipped: {}", render::line(&e)));
            }
            Ok(())
        }
        PluginsCommand::Show { name } => {
            let p = find(&config, &name)?;
            show(&p);
            Ok(())
        }
        PluginsCommand::Install { dir, replace, yes } => {
            let p = plugins::load(&dir).map_err(|e| user_error(format!("not installed: {e}")))?;
            show(&p);
            let question = format!("\nInstall the plugin {}? [y/N] ", p.name);
            let asked = || std::io::IsTerminal::is_terminal(&std::io::stdin()) && confirm(&question);
            if !(yes || asked()) {
                return Err(user_error(
                    "not installed (answer y at the prompt, or pass --yes after reading what it brings)",
                ));
            }
            // Its connectors first: a name clash refuses the whole plugin before anything is written.
            let added = plugins::add_connectors(&p, &config).map_err(|e| user_error(format!("not installed: {e}")))?;
            let at = match plugins::install(&p, &config, replace) {
                Ok(at) => at,
                Err(e) => {
                    let _ = plugins::remove_connectors(&p, &config);
                    return Err(user_error(e));
                }
            };
            out(&format!(
                "Installed {} at {}. Its skills are yours now; its commands start tasks: deskhand run \"/{} ...\"",
                render::line(&p.name),
                at.display(),
                p.commands.first().map_or("command", |c| c.name.as_str())
            ));
            for name in added {
                out(&format!(
                    "Connector {0} added to yours, not started: read its tools and approve them with \
                     deskhand connectors approve {0}",
                    render::line(&name)
                ));
            }
            Ok(())
        }
        PluginsCommand::Remove { name } => {
            let p = find(&config, &name)?;
            let removed = plugins::remove_connectors(&p, &config).map_err(user_error)?;
            if !removed.is_empty() {
                out(&format!(
                    "Removed its connectors: {}.",
                    render::line(&removed.join(", "))
                ));
            }
            let aside = deskhand_runtime::skill_creator::set_aside(&p.dir).map_err(user_error)?;
            out(&format!(
                "Removed {}: moved to {} (move it back to restore it).",
                render::line(&name),
                aside.display()
            ));
            Ok(())
        }
    }
}

fn find(config: &Path, name: &str) -> Result<Plugin, Failure> {
    let (found, _) = plugins::installed(config);
    let names: Vec<String> = found.iter().map(|p| p.name.clone()).collect();
    found.into_iter().find(|p| p.name == name).ok_or_else(|| {
        user_error(format!(
            "no plugin named {:?} is installed; installed: {}",
            render::line(name),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ))
    })
}

fn show(p: &Plugin) {
    out(&render::block(&p.summary().join("\n")));
}
