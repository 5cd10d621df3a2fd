//! Tasks and their plans: the visible checklist a run follows. Each step
//! declares its effects up front; a tool call that does more is refused.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::grant::Grant;

/// The two permission modes of the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every step waits for the person's approval.
    #[default]
    Ask,
    /// The plan runs on its own (deletions still ask, always).
    Act,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Ask => "ask before acting",
            Mode::Act => "act without asking",
        })
    }
}

/// What a person asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub outcome: String,
    pub grants: Vec<Grant>,
    pub mode: Mode,
    /// Skill parameters the person gave outright (`--param name=value`),
    /// kept with the task so a resumed run still has them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
}

/// What a step says it will touch: folders or files read and written,
/// network hosts, and actions outside the workspace. Paths are as the plan
/// wrote them (relative to the workspace or absolute).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEffects {
    #[serde(default)]
    pub reads: Vec<PathBuf>,
    #[serde(default)]
    pub writes: Vec<PathBuf>,
    #[serde(default)]
    pub network: Vec<String>,
    /// What the step may do outside the workspace through a connector or the
    /// browser, as `connector.tool` (`mail.send_message`, `browser.submit_form`).
    /// Left out when empty, so approvals and journals made before it stay valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    InProgress,
    Done,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, StepStatus::Done | StepStatus::Failed | StepStatus::Skipped)
    }

    /// A checklist mark for terminals.
    pub fn mark(self) -> &'static str {
        match self {
            StepStatus::Pending => "[ ]",
            StepStatus::InProgress => "[>]",
            StepStatus::Done => "[x]",
            StepStatus::Failed => "[!]",
            StepStatus::Skipped => "[-]",
        }
    }
}

/// A step of a plan as people count it and events record it: 1 is the
/// first step; 0 is no step (an attempt refused before any plan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepNo(pub usize);

impl StepNo {
    /// No step.
    pub const NONE: StepNo = StepNo(0);

    /// The step at `index` (0-based) of a plan's list.
    pub fn at(index: usize) -> StepNo {
        StepNo(index.saturating_add(1))
    }

    /// Its place in a plan's list (0-based); None for [`StepNo::NONE`].
    pub fn index(self) -> Option<usize> {
        self.0.checked_sub(1)
    }
}

impl fmt::Display for StepNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub title: String,
    #[serde(default)]
    pub effects: StepEffects,
    #[serde(default)]
    pub status: StepStatus,
}

impl PlanStep {
    /// What an approval is bound to: the step's title and declared effects,
    /// canonically encoded. A revised step needs a new approval.
    pub fn approval_subject(&self) -> String {
        serde_json::json!({"title": self.title, "effects": self.effects}).to_string()
    }
}

/// An ordered checklist. Revision 1 is the first plan; each later revision
/// carries the reason it was revised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub revision: u32,
    pub steps: Vec<PlanStep>,
    pub reason: Option<String>,
}

impl Plan {
    /// The step tool calls are attributed to: the one in progress, else the
    /// first that has not finished.
    pub fn current_step(&self) -> Option<StepNo> {
        self.steps
            .iter()
            .position(|s| s.status == StepStatus::InProgress)
            .or_else(|| self.steps.iter().position(|s| !s.status.is_finished()))
            .map(StepNo::at)
    }

    /// Step `n`, if the plan has it.
    pub fn step(&self, n: StepNo) -> Option<&PlanStep> {
        n.index().and_then(|i| self.steps.get(i))
    }

    pub fn step_mut(&mut self, n: StepNo) -> Option<&mut PlanStep> {
        n.index().and_then(|i| self.steps.get_mut(i))
    }

    pub fn all_done(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.status == StepStatus::Done)
    }
}

/// Step `n` of the plan; panics where the plan has no such step, as a
/// slice index does (callers take `n` from [`Plan::current_step`]).
impl std::ops::Index<StepNo> for Plan {
    type Output = PlanStep;

    fn index(&self, n: StepNo) -> &PlanStep {
        &self.steps[n.0.wrapping_sub(1)]
    }
}

impl std::ops::IndexMut<StepNo> for Plan {
    fn index_mut(&mut self, n: StepNo) -> &mut PlanStep {
        &mut self.steps[n.0.wrapping_sub(1)]
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// Waiting for the person to supply something (a parameter, an answer).
    NeedsInput,
    /// Stopped by the person (a rejected step) or cancelled.
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::NeedsInput => "needs_input",
            RunStatus::Stopped => "stopped",
        }
    }
}
