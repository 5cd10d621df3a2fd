//! `deskhand demo [DIR]`: creates a demo workspace with sample files and
//! runs the demo task on it with the offline planner, in act mode.

use std::path::{Path, PathBuf};

use deskhand_runtime::launch;
use deskhand_runtime::workspace::Workspace;
use deskhand_types::{Grant, Mode, Task};

use crate::commands::run::{finish_report, run_agent};
use crate::failure::Failure;
use crate::setup::{WORKSPACE_FOLDER, toolbox};
use crate::terminal::out;

pub fn demo(dir: &Path, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    let created = deskhand_runtime::demo::create_demo_workspace(dir)
        .map_err(|e| e.on_named_path(dir, "the demo workspace", WORKSPACE_FOLDER))?;
    let ws = Workspace::open(dir)?;
    out(&format!("The demo workspace is {}", ws.root().display()));
    if !created {
        out("(the workspace already existed; its files were left as they were)");
    }
    let mut tb = toolbox(cache_dir)?;
    let task = deskhand_runtime::demo::DEMO_TASK;
    out(&format!(
        "Task: {task}\nGranted: projects/ (read-only). Planner: offline. Mode: act without asking.\n"
    ));
    let grants = vec![Grant::read_only("projects")];
    let task = Task {
        outcome: task.into(),
        grants,
        mode: Mode::Act,
        params: Default::default(),
    };
    let report = run_agent(&ws, &mut tb, launch::Start::New(task), None, Vec::new())?;
    finish_report(&ws, &report, None)
}
