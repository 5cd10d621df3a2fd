//! Live events without every viewer polling the journal: one poller per run
//! being watched reads the journal and bumps a counter; each viewer wakes on
//! the counter and reads only what it has not sent yet. A run started by this
//! server wakes its poller as each event is journaled (the run's observer
//! sees an event after its append); a run written by another process (a
//! `deskhand resume` in a terminal) is seen within [`POLL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskhand_types::RunId;
use tokio::sync::{Notify, watch};

use crate::App;

/// How often a watched run's journal is read when nothing woke its poller.
pub const POLL: Duration = Duration::from_millis(250);

struct Feed {
    changed: watch::Sender<u64>,
    wake: Arc<Notify>,
    polling: bool,
}

#[derive(Default)]
pub struct Feeds {
    runs: Mutex<HashMap<RunId, Feed>>,
}

/// The top-level run an event belongs to (sub-agents are `run.N`).
fn root(run: &RunId) -> RunId {
    RunId(run.0.split('.').next().unwrap_or(&run.0).to_owned())
}

impl Feeds {
    /// Tells the poller of `run`'s top-level run, if any, that an event was journaled.
    pub fn wake(&self, run: &RunId) {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = runs.get(&root(run)) {
            f.wake.notify_one();
        }
    }

    /// A receiver that changes whenever `run` (or a sub-agent) has new events.
    pub fn subscribe(&self, run: &RunId) -> watch::Receiver<u64> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.entry(run.clone())
            .or_insert_with(|| Feed {
                changed: watch::Sender::new(0),
                wake: Arc::new(Notify::new()),
                polling: false,
            })
            .changed
            .subscribe()
    }

    /// Starts `run`'s poller from journal position `after` unless it runs.
    /// Its first pass bumps the counter whatever it finds, so a viewer that
    /// caught up before the poller began reads again once.
    pub fn poll(app: &Arc<App>, run: &RunId, after: i64) {
        let (changed, wake) = {
            let mut runs = app.feeds.runs.lock().unwrap_or_else(|p| p.into_inner());
            let Some(feed) = runs.get_mut(run) else { return };
            if feed.polling {
                return;
            }
            feed.polling = true;
            (feed.changed.clone(), feed.wake.clone())
        };
        let app = app.clone();
        let run = run.clone();
        tokio::spawn(async move {
            let mut after = after;
            let mut first = true;
            loop {
                {
                    let mut runs = app.feeds.runs.lock().unwrap_or_else(|p| p.into_inner());
                    if changed.receiver_count() == 0 {
                        runs.remove(&run);
                        return;
                    }
                }
                let (app2, run2) = (app.clone(), run.clone());
                let batch =
                    tokio::task::spawn_blocking(move || app2.workspace.journal().events_after(&run2, after)).await;
                let newest = match batch {
                    Ok(Ok(batch)) => batch.last().map(|(seq, ..)| *seq),
                    _ => None,
                };
                if let Some(seq) = newest {
                    after = seq;
                }
                if newest.is_some() || first {
                    changed.send_modify(|n| *n = n.wrapping_add(1));
                    first = false;
                }
                if newest.is_none() {
                    let _ = tokio::time::timeout(POLL, wake.notified()).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_agents_wake_their_top_level_run() {
        assert_eq!(root(&RunId("run-abc.2.1".into())), RunId("run-abc".into()));
        assert_eq!(root(&RunId("run-abc".into())), RunId("run-abc".into()));
    }
}
