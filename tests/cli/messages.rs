//! What the person sees: a tool's result shown in full, errors that name
//! their cause and the next step with the right exit code, and `resume
//! --mode` taking effect.

use super::*;

#[test]
fn tool_run_shows_what_the_tool_found_not_only_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    std::fs::create_dir(tmp.path().join("ws/projects/notes")).unwrap();
    std::fs::write(tmp.path().join("ws/projects/notes/x.txt"), "hello\nworld\n").unwrap();
    let fs = |op: &str, args: &str| {
        let o = deskhand(
            &[
                "tool",
                "run",
                "fs",
                op,
                "--workspace",
                "ws",
                "--grant",
                "projects",
                "--args",
                args,
            ],
            tmp.path(),
        );
        assert_ok(&o);
        stdout(&o)
    };

    let read = fs("read_text", r#"{"path": "projects/notes/x.txt"}"#);
    assert!(read.contains("12 bytes of text"), "the summary stays first:\n{read}");
    assert!(read.contains("\nhello\nworld\n"), "the text itself:\n{read}");

    // One line per entry: path, kind, size and modification time.
    let list = fs("list", r#"{"path": "projects", "recursive": true}"#);
    let entry = |path: &str| -> Vec<String> {
        list.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|words| words.iter().any(|w| w.ends_with(path)))
            .unwrap_or_else(|| panic!("no line for {path}:\n{list}"))
    };
    let file = entry("projects/notes/x.txt");
    assert!(file.contains(&"file".into()) && file.contains(&"12".into()), "{list}");
    assert!(
        file.iter().any(|w| w.contains('T') && w.ends_with('Z')),
        "an mtime:\n{list}"
    );
    assert!(entry("projects/notes").contains(&"dir".into()), "{list}");

    let find = fs("find", r#"{"path": "projects", "pattern": "**/*.txt"}"#);
    assert!(
        find.lines().any(|l| l.contains("notes/x.txt") && l.contains("file")),
        "{find}"
    );

    let stat = fs("stat", r#"{"path": "projects/notes/x.txt"}"#);
    for field in ["kind:", "size:", "mtime:", "path:"] {
        assert!(stat.contains(field), "{field} in:\n{stat}");
    }

    let hash = fs("hash", r#"{"path": "projects/notes/x.txt"}"#);
    // sha256("hello\nworld\n")
    let digest = "4a1e67f2fe1d1cc7b31d0ca2ec441da4778203a036a77da10344c85e24ff0f92";
    assert!(hash.contains(&format!("sha256: {digest}")), "{hash}");
}
