//! deskhand's own state is the person's alone: the journal holds whole
//! conversations, server.json the key that mints launch links.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `deskhand ARGS` under a umask that lets everyone read new files.
fn under_umask_022(args: &str, cwd: &Path) -> Output {
    let deskhand = command(&[], cwd);
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask 022; exec \"$0\" \"$@\" {args}"))
        .arg(deskhand.get_program())
        .args(deskhand.get_args())
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd.join(".test-config"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_journal_and_deskhands_folder_are_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&under_umask_022("init ws", tmp.path()));
    let ws = tmp.path().join("ws");
    assert_eq!(mode(&ws.join(".deskhand")), 0o700, ".deskhand/");
    assert_eq!(mode(&ws.join(".deskhand/journal.db")), 0o600, "journal.db");
    assert_ok(&under_umask_022("runs --workspace ws", tmp.path()));
    for f in ["journal.db-wal", "journal.db-shm"] {
        let p = ws.join(".deskhand").join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }

    // A journal made world-readable by an older deskhand is made private when opened.
    std::fs::set_permissions(ws.join(".deskhand"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(ws.join(".deskhand/journal.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_ok(&under_umask_022("runs --workspace ws", tmp.path()));
    assert_eq!(mode(&ws.join(".deskhand")), 0o700);
    assert_eq!(mode(&ws.join(".deskhand/journal.db")), 0o600);
}

#[test]
fn server_json_is_private_and_holds_no_launch_token() {
    let tmp = tempfile::tempdir().unwrap();
    assert_ok(&deskhand(&["init", "ws"], tmp.path()));
    let mut serve = command(&["serve", "--workspace", "ws", "--port", "0"], tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let state = tmp.path().join("ws/.deskhand/server.json");
    let text = std::fs::read_to_string(&state).unwrap_or_default();
    let state_mode = mode(&state);
    serve.kill().unwrap();
    serve.wait().unwrap();
    let token = line.rsplit("token=").next().unwrap().trim();
    assert!(line.contains("token="), "{line}");
    assert_eq!(state_mode, 0o600);
    assert!(
        !text.contains(token),
        "server.json must not hold a launch link's token: {text}"
    );
}
