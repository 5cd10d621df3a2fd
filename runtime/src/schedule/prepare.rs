//! What every front end does before a schedule is saved, in one place: the
//! person's words for when (a phrase or cron) read into a [`When`] in a
//! zone, the grants checked, the runs' envelope drafted (planned without
//! acting), and what the person must see before saying yes ([`Prepared`]).
//!
//! What holds: `deskhand schedule add` and the Schedules page both call
//! [`prepare`] and save its [`Prepared::new`]; neither checks or drafts
//! anything of its own. [`Prepared::hash`] binds what the person saw (the
//! task, when, workspace, grants, mode, missed-run policy and the envelope;
//! not the next times, which follow from when and the clock): the page
//! saves only if preparing again gives the same hash.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use deskhand_types::{Grant, Mode, Task};
use serde::Serialize;

use super::{MissedPolicy, NewSchedule, ScheduleError, When, in_zone, phrase_to_cron};
use crate::model::ModelConfig;
use crate::tools::Toolbox;
use crate::workspace::Workspace;

/// When a schedule runs, as the person said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// A phrase: "every weekday at 8:00".
    Every(String),
    /// A five-field cron expression: "0 8 * * 1-5".
    Cron(String),
}

impl Timing {
    /// One field that takes either (the page's): a phrase deskhand knows,
    /// else cron if it reads like cron (numbers and `*`, no words), else a
    /// phrase (whose error lists the phrases that work).
    pub fn read(text: &str) -> Timing {
        let text = text.trim();
        if phrase_to_cron(text).is_ok() {
            return Timing::Every(text.to_owned());
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let cron_like = fields.len() >= 3
            && !text.contains(':')
            && fields
                .first()
                .and_then(|f| f.chars().next())
                .is_some_and(|c| c.is_ascii_digit() || c == '*')
            && fields.iter().all(|f| {
                // Month and day names are three letters (JAN, mon-fri); longer words are a phrase.
                f.split(|c: char| !c.is_ascii_alphabetic()).all(|w| w.len() <= 3)
            });
        if cron_like {
            Timing::Cron(text.to_owned())
        } else {
            Timing::Every(text.to_owned())
        }
    }
}

/// What the person asks for.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The task, in their words.
    pub task: String,
    pub timing: Timing,
    /// The IANA zone its times are read in.
    pub zone: String,
    pub grants: Vec<Grant>,
    pub mode: Mode,
    pub missed: MissedPolicy,
}

/// What drafting the envelope needs: what a run of the task would get
/// ([`crate::envelope::draft`]).
pub struct Planning<'a> {
    pub config: &'a ModelConfig,
    pub config_dir: Option<&'a Path>,
    pub toolbox: &'a mut Toolbox,
}

/// A moment as the person reads it: in the schedule's zone, and in their
/// own where that is another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalTime {
    #[serde(serialize_with = "super::as_rfc3339")]
    pub at: DateTime<Utc>,
    /// "Mon 2026-03-09 08:00 CET", in the schedule's zone.
    pub there: String,
    /// The same in the person's zone, when it differs.
    pub here: Option<String>,
}

impl LocalTime {
    pub fn new(at: DateTime<Utc>, zone: Tz, here: Option<Tz>) -> LocalTime {
        LocalTime {
            at,
            there: in_zone(at, zone),
            here: here.filter(|h| *h != zone).map(|h| in_zone(at, h)),
        }
    }
}

/// A schedule ready to save, and what the person must see first.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub new: NewSchedule,
    /// The next five run times.
    pub next: Vec<LocalTime>,
    /// SHA-256 (hex) of what the person approves (see the module's `//!`).
    pub hash: String,
}

/// How many run times are shown before saving.
pub const SHOWN_TIMES: usize = 5;

/// Checks and plans `asked` for the workspace `ws` at `now`, saving
/// nothing: the times in `asked.zone` (and in `here`, the person's zone),
/// the grants (each an existing folder the workspace may grant), the
/// envelope. Err names what to change.
pub fn prepare(
    ws: &Workspace,
    asked: Asked,
    planning: Planning<'_>,
    now: DateTime<Utc>,
    here: Option<Tz>,
) -> Result<Prepared, ScheduleError> {
    let Asked {
        task,
        timing,
        zone,
        grants,
        mode,
        missed,
    } = asked;
    let task = task.trim().to_owned();
    if task.is_empty() {
        return Err(ScheduleError::EmptyTask);
    }
    let (phrase, cron) = match timing {
        Timing::Every(p) => {
            let cron = phrase_to_cron(&p)?;
            (Some(p.trim().to_owned()), cron)
        }
        Timing::Cron(c) => (None, c),
    };
    let when = When::new(&cron, &zone)?;
    check_grants(ws, &grants)?;
    let task = Task {
        outcome: task,
        grants,
        mode,
        params: Default::default(),
    };
    let envelope = crate::envelope::draft(ws, &task, planning.config, planning.config_dir, planning.toolbox)
        .map_err(|e| ScheduleError::Unplannable { source: Box::new(e) })?;
    let next = when
        .next_times(now, SHOWN_TIMES)?
        .into_iter()
        .map(|t| LocalTime::new(t, when.tz(), here))
        .collect();
    let new = NewSchedule {
        task: task.outcome,
        phrase,
        when,
        workspace: ws.root().to_path_buf(),
        grants: task.grants,
        mode: task.mode,
        missed,
        envelope: Some(envelope),
    };
    Ok(Prepared {
        hash: approved_hash(&new),
        new,
        next,
    })
}

/// The hash of what the person approves of `new`.
fn approved_hash(new: &NewSchedule) -> String {
    use sha2::Digest;
    let approved = serde_json::json!({
        "task": new.task,
        "phrase": new.phrase,
        "cron": new.when.cron(),
        "zone": new.when.zone(),
        "workspace": new.workspace,
        "grants": new.grants,
        "mode": new.mode,
        "missed": new.missed,
        "envelope": new.envelope,
    });
    hex::encode(sha2::Sha256::digest(approved.to_string().as_bytes()))
}

/// Refuses a grant of a folder that does not exist or cannot be granted.
fn check_grants(ws: &Workspace, grants: &[Grant]) -> Result<(), ScheduleError> {
    for g in grants {
        let path = if g.path.is_absolute() {
            g.path.clone()
        } else {
            ws.root().join(&g.path)
        };
        if !path.is_dir() {
            return Err(ScheduleError::NoFolder {
                folder: g.path.display().to_string(),
                workspace: ws.root().to_path_buf(),
            });
        }
    }
    ws.policy(grants)
        .map(|_| ())
        .map_err(|e| ScheduleError::Grants { source: Box::new(e) })
}

/// Grants as a person reads them: "projects (read-only), scans (read-write)",
/// each folder through `line` (the terminal's escaping, say).
pub fn grants_words(grants: &[Grant], line: &dyn Fn(&str) -> String) -> String {
    if grants.is_empty() {
        return "none (only output/)".into();
    }
    grants
        .iter()
        .map(|g| {
            let how = if g.access.is_writable() {
                "read-write"
            } else {
                "read-only"
            };
            format!("{} ({how})", line(&g.path.display().to_string()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl NewSchedule {
    /// How its times read: the phrase, or the cron expression in words.
    pub fn describe_when(&self) -> String {
        match &self.phrase {
            Some(p) => format!("{p} (cron {}, {})", self.when.cron(), self.when.zone()),
            None => format!(
                "cron {} ({}): {}",
                self.when.cron(),
                self.when.zone(),
                self.when.describe()
            ),
        }
    }
}

impl Prepared {
    /// What the person reads before saving, as lines; the person's own
    /// words (the task, the phrase, folders) go through `line`.
    pub fn describe(&self, line: &dyn Fn(&str) -> String) -> String {
        let new = &self.new;
        let mut text = format!("Schedule: {}\n", line(&new.task));
        text.push_str(&format!("  When:      {}\n", line(&new.describe_when())));
        for (i, t) in self.next.iter().enumerate() {
            let label = if i == 0 { "  Next runs: " } else { "             " };
            let yours = t.here.as_ref().map(|h| format!("  ({h} here)")).unwrap_or_default();
            text.push_str(&format!("{label}{}{yours}\n", t.there));
        }
        text.push_str(&format!(
            "  Workspace: {}\n",
            line(&new.workspace.display().to_string())
        ));
        text.push_str(&format!("  Grants:    {}\n", grants_words(&new.grants, line)));
        text.push_str(&format!("  Mode:      {}\n", new.mode));
        text.push_str(&format!("  If missed: {}\n", new.missed.describe()));
        if let Some(e) = &new.envelope {
            text.push_str(&format!("\n{}", e.to_string().trim_end()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_reads_as_a_phrase_or_as_cron() {
        assert_eq!(Timing::read(" weekday 08:00 "), Timing::Every("weekday 08:00".into()));
        assert_eq!(Timing::read("0 8 * * 1-5"), Timing::Cron("0 8 * * 1-5".into()));
        assert_eq!(
            Timing::read("30 7 * * MON-FRI"),
            Timing::Cron("30 7 * * MON-FRI".into())
        );
        // Not cron-like: a phrase, so the error lists the phrases that work.
        assert_eq!(Timing::read("every fortnight"), Timing::Every("every fortnight".into()));
        assert_eq!(
            Timing::read("8:00 every fortnight"),
            Timing::Every("8:00 every fortnight".into())
        );
        // Cron-like but wrong: cron, so the error says what is wrong with it.
        assert_eq!(Timing::read("0 8 * *"), Timing::Cron("0 8 * *".into()));
    }

    #[test]
    fn a_time_in_another_zone_also_reads_in_the_persons() {
        let t = super::super::parse_time("2026-03-09T13:00:00Z").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let shown = LocalTime::new(t, ny, Some(berlin));
        assert_eq!(shown.there, "Mon 2026-03-09 09:00 EDT");
        assert_eq!(shown.here.as_deref(), Some("Mon 2026-03-09 14:00 CET"));
        assert_eq!(LocalTime::new(t, ny, Some(ny)).here, None);
    }
}
