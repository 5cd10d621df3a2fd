//! The folder readers hold against what a folder can hold: an entry whose
//! name is not UTF-8 is skipped and reported by `fs`, `inventory`,
//! `rename-by-date` and `receipts` instead of failing the whole folder.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use deskhand_types::Grant;
use serde_json::{Value, json};

use crate::common::{call_tool, pdftotext, toolbox};

/// A workspace whose `projects/mixed` holds two receipts, a subfolder, and
/// one file (and one in the subfolder) whose names are Latin-1, not UTF-8.
fn folder_with_latin1_names() -> (tempfile::TempDir, deskhand_runtime::workspace::Workspace) {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = deskhand_runtime::workspace::Workspace::init(&tmp.path().join("ws")).unwrap();
    let dir = ws.root().join("projects/mixed");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    // Names on both sides of the bad one in every order the host may list them.
    std::fs::write(
        dir.join("a train.pdf"),
        deskhand_runtime::demo::text_pdf(&["CP Comboios", "05.03.2026", "Total: 31.20 EUR"]),
    )
    .unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"caf\xe9.txt")), "Cafe\nTotal: 3.50 EUR\n").unwrap();
    std::fs::write(dir.join("z lunch.txt"), "Bistro Lisboa\n12.03.2026\nTotal: 14.00 EUR\n").unwrap();
    std::fs::write(dir.join("sub").join(OsStr::from_bytes(b"r\xe9sum\xe9.pdf")), "x").unwrap();
    (tmp, ws)
}

fn call(ws: &deskhand_runtime::workspace::Workspace, tool: &str, op: &str, args: Value) -> Value {
    call_tool(toolbox(), ws, tool, op, args, &[Grant::read_only("projects")])
        .unwrap_or_else(|e| panic!("{tool} {op}: {e}"))
}

/// The `unreadable_names` every walking tool reports: one entry per folder.
fn assert_unreadable(out: &Value, folders: &[&str]) {
    let reported = out["unreadable_names"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(reported.len(), folders.len(), "{out}");
    for (r, folder) in reported.iter().zip(folders) {
        assert!(r["folder"].as_str().unwrap().ends_with(folder), "{r}");
        assert_eq!(r["count"], 1, "{r}");
        let why = r["why"].as_str().unwrap();
        assert!(why.contains("not valid UTF-8") && why.contains("rename it"), "{why}");
    }
}

#[test]
fn a_name_that_is_not_utf8_is_skipped_and_reported_not_a_failed_folder() {
    let (_tmp, ws) = folder_with_latin1_names();

    let listed = call(&ws, "fs", "list", json!({"path": "projects/mixed", "recursive": true}));
    let paths: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 3, "every other entry is listed: {listed}");
    for name in ["a train.pdf", "sub", "z lunch.txt"] {
        assert!(paths.iter().any(|p| p.ends_with(name)), "{name} in {paths:?}");
    }
    assert_unreadable(&listed, &["projects/mixed", "projects/mixed/sub"]);

    let found = call(
        &ws,
        "fs",
        "find",
        json!({"path": "projects/mixed", "pattern": "**/*.txt"}),
    );
    assert_eq!(found["matches"].as_array().unwrap().len(), 1, "{found}");
    assert_unreadable(&found, &["projects/mixed", "projects/mixed/sub"]);

    let inventory = call(
        &ws,
        "inventory",
        "run",
        json!({"folder": "projects/mixed", "output": "output/inventory.csv"}),
    );
    assert_eq!(inventory["files"], 2, "{inventory}");
    assert_eq!(inventory["folders"], 1, "{inventory}");
    assert_unreadable(&inventory, &["projects/mixed", "projects/mixed/sub"]);

    // Renaming by date looks at one folder's entries: the unreadable one is reported, not renamed.
    let renames = call(
        &ws,
        "rename-by-date",
        "propose",
        json!({"folder": "projects/mixed", "output": "output/renames.csv"}),
    );
    assert_unreadable(&renames, &["projects/mixed"]);

    let receipts = call(&ws, "receipts", "run", json!({"folder": "projects/mixed"}));
    assert_eq!(receipts["rows"], 2, "{receipts}");
    assert_unreadable(&receipts, &["projects/mixed", "projects/mixed/sub"]);
    let summary = pdftotext(&ws.output_dir().join("expenses-summary.pdf"));
    assert!(
        summary.contains("UTF-8") && summary.contains("rename it"),
        "the summary says what it could not see:\n{summary}"
    );
}

/// Regression: one file among the receipts (a bank "export" of one line of
/// millions of fields) made the reader fill the tool's memory, and the whole
/// run failed with a memory-cap message naming no file. Files too large for a
/// receipt are now refused by name, before they are read, and the run goes on.
#[test]
fn one_receipt_too_large_to_read_is_named_and_the_others_still_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = deskhand_runtime::workspace::Workspace::init(&tmp.path().join("ws")).unwrap();
    let dir = ws.root().join("projects/trip");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("train.pdf"),
        deskhand_runtime::demo::text_pdf(&["CP Comboios", "05.03.2026", "Total: 31.20 EUR"]),
    )
    .unwrap();
    std::fs::write(dir.join("wide.csv"), "a,".repeat(5_000_000)).unwrap();
    // 64 MiB on paper, nothing on disk: refused from its size alone.
    let huge = std::fs::File::create(dir.join("huge.pdf")).unwrap();
    std::io::Write::write_all(&mut &huge, b"%PDF-1.4\n").unwrap();
    huge.set_len(64 << 20).unwrap();

    let out = call(&ws, "receipts", "run", json!({"folder": "projects/trip"}));
    assert_eq!(out["rows"], 1, "{out}");
    let unread = out["unread"].as_array().unwrap();
    let problem = |file: &str| {
        unread
            .iter()
            .find(|u| u["file"] == file)
            .and_then(|u| u["problem"].as_str())
            .unwrap_or_else(|| panic!("{file} not in {out}"))
            .to_owned()
    };
    assert!(problem("wide.csv").contains("cells"), "{out}");
    assert!(problem("huge.pdf").contains("64 MiB"), "{out}");
    let summary = pdftotext(&ws.output_dir().join("expenses-summary.pdf"));
    for name in ["wide.csv: not read", "huge.pdf: not read"] {
        assert!(summary.contains(name), "{name} in the summary:\n{summary}");
    }
}

const PNG: &[u8] = include_bytes!("../../../guest-tools/ooxml/tests/gradient-40x20.png");

/// The PNG with its IHDR claiming `width` x `height` (and a checksum that fits).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = PNG.to_vec();
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in &png[12..29] {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    png[29..33].copy_from_slice(&(!crc).to_be_bytes());
    png
}

/// Regression: docx and pptx embedded damaged and 20000 x 20000 images that
/// the pdf report refused. All three writers make the sdk's one check, and
/// say the same about the same image.
#[test]
fn every_document_writer_refuses_the_same_bad_images_in_the_same_words() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, _) = deskhand_runtime::workspace::Workspace::init(&tmp.path().join("ws")).unwrap();
    let dir = ws.root().join("projects/pics");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("huge.png"), png_claiming(20_000, 20_000)).unwrap();
    let mut damaged = PNG.to_vec();
    let idat = damaged.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut damaged[idat + 8..idat + 30] {
        *b ^= 0x5A;
    }
    std::fs::write(dir.join("damaged.png"), damaged).unwrap();
    let grants = [Grant::read_only("projects/pics")];

    for (file, says) in [
        ("huge.png", "is 20000 by 20000 pixels"),
        ("damaged.png", "is a damaged PNG"),
    ] {
        let path = dir.join(file).display().to_string();
        let blocks = json!([{"type": "image", "path": path}]);
        for (tool, op, args) in [
            ("docx", "write", json!({"path": "output/a.docx", "blocks": blocks})),
            (
                "pptx",
                "write",
                json!({"path": "output/a.pptx", "slides": [{"title": "S", "blocks": blocks}]}),
            ),
            ("pdf", "report", json!({"path": "output/a.pdf", "blocks": blocks})),
        ] {
            let err = call_tool(toolbox(), &ws, tool, op, args, &grants)
                .expect_err(&format!("{tool} embeds {file}"))
                .to_string();
            assert!(err.contains(file) && err.contains(says), "{tool}, {file}: {err}");
        }
    }
    assert_eq!(
        std::fs::read_dir(ws.output_dir()).unwrap().count(),
        0,
        "nothing was written"
    );
}
