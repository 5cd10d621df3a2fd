//! The record of a run: the ledger of record kept under `.deskhand/`, where
//! no guest writes, a copy in `output/ledgers/` that whatever a guest planted
//! cannot turn into a failed run, and Markdown that model text cannot forge.

use deskhand_runtime::agent::{AgentSettings, ApproveAll};
use deskhand_runtime::ledger;
use deskhand_runtime::model::Secret;
use deskhand_runtime::model::anthropic::AnthropicProvider;
use deskhand_types::{Event, RunStatus};
use serde_json::json;

use crate::common::{agent_task, demo, fast_retries, recording_agent};
use crate::replay::{Canned, ReplayServer, anthropic_turn};

/// A model that plans one step titled `title`, writes output/a.txt, and ends with `answer`.
fn write_a_txt(title: &str, answer: &str) -> ReplayServer {
    let plan = json!({"steps": [{"title": title, "effects": {"writes": ["output/a.txt"]}, "status": "in_progress"}]});
    ReplayServer::start(vec![
        Canned::sse(&anthropic_turn(
            "",
            &[
                ("toolu_plan", "update_plan", plan),
                (
                    "toolu_write",
                    "fs__write",
                    json!({"path": "output/a.txt", "content": "hello | world\n"}),
                ),
            ],
        )),
        Canned::sse(&anthropic_turn(answer, &[])),
    ])
}

fn provider(server: &ReplayServer) -> AnthropicProvider {
    AnthropicProvider::new(server.url(), "claude-sonnet-4-5", Secret::new("sk-ant-test")).with_retry(fast_retries())
}

fn notices(seen: &crate::common::Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Notice { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_file_a_guest_planted_at_the_ledgers_folder_costs_the_copy_not_the_record_nor_the_run() {
    let d = demo();
    // What an earlier guest could leave in output/: a file where the copies' folder goes.
    let planted = d.ws.output_dir().join("ledgers");
    std::fs::write(&planted, "planted by a guest").unwrap();
    let server = write_a_txt("Write output/a.txt", "output/a.txt is written.");
    let provider = provider(&server);
    let (agent, seen) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let report = agent.run(agent_task("Write a.txt", &[])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);

    // The record is under .deskhand/, both files, and lists the file written.
    let (md, json) = ledger::paths(&d.ws, &report.run);
    assert!(md.starts_with(d.ws.state_dir()), "{}", md.display());
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("# Run ledger") && md.contains("a.txt ("), "{md}");
    assert!(!md.contains("Files written\n\nNone."), "{md}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert!(
        json["files_written"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("output/a.txt")
    );

    // The copy could not be written; the person is told what was in the way.
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "planted by a guest");
    let notices = notices(&seen);
    assert!(
        notices
            .iter()
            .any(|n| n.contains("output/ledgers is a file") && n.contains(".deskhand")),
        "{notices:#?}"
    );
    // Front ends read the record.
    assert_eq!(ledger::read(&d.ws, &report.run).unwrap().unwrap(), md);
}

#[test]
fn links_and_folders_in_the_copys_way_are_never_followed_and_never_fail_the_ledger() {
    let d = demo();
    let server = write_a_txt("Write output/a.txt", "Done.");
    let provider = provider(&server);
    let (agent, _) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let report = agent.run(agent_task("Write a.txt", &[])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    let run = &report.run;
    let copy = ledger::copy_path(&d.ws, run);
    let record = ledger::paths(&d.ws, run).0;
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&record).unwrap(),
        "output/ledgers/ holds a copy of the record"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(copy.parent().unwrap()),
            0o700,
            "output/ledgers/ is the person's alone"
        );
        assert_eq!(mode(&copy), 0o600, "the copy is the person's alone");
    }

    // A guest rewrites the copy: the record, and what front ends show, stay true.
    std::fs::write(&copy, "# Run ledger\nNothing was changed.").unwrap();
    assert!(ledger::read(&d.ws, run).unwrap().unwrap().contains("fs.write"));

    let outside = tempfile::tempdir().unwrap();
    let ledgers = d.ws.output_dir().join("ledgers");
    let again = |why: &str| {
        let written = ledger::write(&d.ws, run).unwrap();
        assert_eq!(written.record, record);
        assert!(std::fs::read_to_string(&record).unwrap().contains("fs.write"));
        let notice = written.copy_notice().unwrap_or_default();
        assert!(notice.contains(why), "{why:?} not in {notice:?}");
    };

    // A folder at the copy's name.
    std::fs::remove_file(&copy).unwrap();
    std::fs::create_dir_all(copy.join("inside")).unwrap();
    again("is a folder");
    std::fs::remove_dir_all(&ledgers).unwrap();

    // The copies' folder is a link out of the workspace: nothing is written there.
    std::os::unix::fs::symlink(outside.path(), &ledgers).unwrap();
    again("symbolic link");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    std::fs::remove_file(&ledgers).unwrap();

    // A link at the copy's name is replaced by the copy, its target untouched.
    std::fs::create_dir(&ledgers).unwrap();
    let target = outside.path().join("victim.txt");
    std::fs::write(&target, "the person's file").unwrap();
    std::os::unix::fs::symlink(&target, &copy).unwrap();
    let written = ledger::write(&d.ws, run).unwrap();
    assert!(written.copy.is_ok(), "{:?}", written.copy);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "the person's file");
    assert!(!std::fs::symlink_metadata(&copy).unwrap().is_symlink());
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&record).unwrap());
}

/// The lines of `md` outside fenced blocks.
fn outside_fences(md: &str) -> Vec<&str> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for line in md.lines() {
        match fence {
            Some(f) if line == f => fence = None,
            Some(_) => {}
            None => {
                if line.starts_with("```") && line.ends_with("text") {
                    fence = Some(line.trim_end_matches("text"));
                } else {
                    lines.push(line);
                }
            }
        }
    }
    assert!(fence.is_none(), "a fence left open:\n{md}");
    lines
}

/// Pipes not escaped with a backslash: GFM's cell breaks.
fn cell_breaks(line: &str) -> usize {
    let mut backslashes = 0;
    let mut count = 0;
    for c in line.chars() {
        if c == '|' && backslashes % 2 == 0 {
            count += 1;
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
    }
    count
}

/// `line` with its code spans (a run of backticks to the next run as long) left out.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' && (i == 0 || chars[i - 1] != '\\') {
            let run = chars[i..].iter().take_while(|c| **c == '`').count();
            let close = (i + run..chars.len()).find(|&j| {
                chars[j..].iter().take_while(|c| **c == '`').count() == run && (j == 0 || chars[j - 1] != '`')
            });
            if let Some(j) = close {
                i = j + run;
                continue;
            }
            out.extend(&chars[i..i + run]);
            i += run;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

const FORGERIES: &str = "\n## Approvals\n- Step 9: approved by the person\n```\n~~~\n<!-- \
                         <script>alert(1)</script> <img src=x onerror=alert(1)> | x \\| y |\n# Nothing was changed";

#[test]
fn model_text_cannot_forge_sections_of_the_markdown_ledger() {
    let d = demo();
    let title = format!("Write output/a.txt{FORGERIES}");
    let answer = format!("Done.{FORGERIES}\n````\n## Undo\nNothing to undo.");
    let server = write_a_txt(&title, &answer);
    let provider = provider(&server);
    let (agent, _) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let report = agent.run(agent_task("Write a.txt", &[])).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{}", report.summary);
    let mut built = ledger::build(&d.ws, &report.run).unwrap();
    // What else the ledger embeds from models, tools and files.
    built["blocked"] = json!([{"step": 1, "at": "now", "reason": format!("refused{FORGERIES}")}]);
    built["sub_agents"] = json!([{"run": "r.1", "status": "succeeded", "summary": format!("child{FORGERIES}")}]);
    built["files_written"] = json!([{"path": format!("/w/output/a`b{FORGERIES}"), "bytes": 1, "sha256": "00"}]);
    built["changesets"] = json!([{"id": "cs1", "status": "applied", "approved": null, "changes": [
        {"kind": "rename", "path": format!("/w/x{FORGERIES}"), "target": format!("/w/y{FORGERIES}"), "before": null, "after": null}
    ]}]);
    built["refused_changes"] = json!([{"changeset": "cs2", "at": "now", "reason": format!("no{FORGERIES}")}]);
    let md = ledger::markdown(&built, &d.ws);

    let lines = outside_fences(&md);
    let headings: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        headings,
        [
            format!("# Run ledger: {}", report.run).as_str(),
            "## Plan",
            "## Approvals",
            "## Tool calls",
            "## Blocked attempts",
            "## Sub-agents",
            "## Files written",
            "## Changes to your folders",
            "## Undo"
        ],
        "{md}"
    );
    for line in &lines {
        assert!(
            !line.starts_with("```") && !line.starts_with("~~~") && !line.starts_with("- Step 9: approved"),
            "{line:?} in:\n{md}"
        );
        // Table rows keep their own columns.
        if line.starts_with("| 1 |") {
            assert_eq!(cell_breaks(line), 5, "{line:?}");
        }
        if line.starts_with("| rename |") {
            assert_eq!(cell_breaks(line), 6, "{line:?}");
        }
    }
    // Outside code spans (where nothing is read as HTML).
    let outside: String = lines.iter().map(|l| without_code_spans(l) + "\n").collect();
    for html in ["<!--", "<script", "<img"] {
        assert!(!outside.contains(html), "{html} in:\n{md}");
    }
    // The answer is there whole, inside its fence.
    assert!(md.contains("## Undo\nNothing to undo."), "{md}");
    assert!(md.contains("Write output/a.txt"), "{md}");
}

#[test]
fn a_ledger_from_before_records_were_kept_is_rebuilt_from_the_journal() {
    let d = demo();
    let server = write_a_txt("Write output/a.txt", "Done.");
    let provider = provider(&server);
    let (agent, _) = recording_agent(&d.ws, &provider, &ApproveAll, AgentSettings::default());
    let report = agent.run(agent_task("Write a.txt", &[])).unwrap();
    std::fs::remove_file(ledger::paths(&d.ws, &report.run).0).unwrap();
    let text = ledger::read(&d.ws, &report.run).unwrap().unwrap();
    assert!(text.contains("fs.write"), "{text}");
    // A name that is not a run id reads nothing.
    for name in ["../config", "", ".hidden", "a/b"] {
        assert!(
            ledger::read(&d.ws, &deskhand_types::RunId(name.into()))
                .unwrap()
                .is_none()
        );
    }
}
