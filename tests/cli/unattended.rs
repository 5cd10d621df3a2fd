//! A run that waits for the person (a question, or a scheduled run that
//! needed what its schedule did not approve) is marked in `deskhand runs`
//! with how to go on.

use super::*;

#[test]
fn a_run_waiting_for_the_person_is_marked_in_the_runs_list() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["demo", "ws"], tmp.path()));
    let o = deskhand(
        &[
            "run",
            "Make a file inventory",
            "--workspace",
            "ws",
            "--grant",
            "projects",
            "--grant",
            "context",
            "--mode",
            "act",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let listed = stdout(&deskhand(&["runs", "--workspace", "ws"], tmp.path()));
    let waiting: Vec<&str> = listed.lines().filter(|l| l.contains("needs_input")).collect();
    assert_eq!(waiting.len(), 1, "{listed}");
    let run = waiting[0].split_whitespace().next().unwrap();
    assert!(
        waiting[0].ends_with(&format!("<- waits for you: deskhand resume {run}")),
        "{listed}"
    );
    // The finished demo run carries no mark.
    assert!(
        listed.lines().filter(|l| l.contains("waits for you")).count() == 1,
        "{listed}"
    );
}
