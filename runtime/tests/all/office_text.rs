//! `docx text` and `pptx text` through the real sandbox, on the Word and
//! PowerPoint files of other projects' test suites (`tests/corpus/docx-pptx`,
//! sources and licences in its README): the words python-docx and
//! python-pptx read from them come back with their structure, long results
//! are read in parts, and files that are not what they claim, damaged,
//! strict or a zip bomb are refused in words naming the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use deskhand_types::{Grant, ToolError};
use serde_json::{Value, json};

use crate::common::{Fixture, call_tool, files_with, read_or_named_error, tool_error, toolbox};

fn corpus() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/docx-pptx")
        .canonicalize()
        .unwrap()
}

fn text(fx: &Fixture, tool: &str, args: Value, grants: &[Grant]) -> Result<Value, deskhand_runtime::Error> {
    call_tool(toolbox(), &fx.ws, tool, "text", args, grants)
}

/// What each corpus file must give: the strings python-docx or
/// python-pptx read from it, with the structure this tool adds.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "docx4j-comments-two.docx",
        &[
            "One {==paragraph==}{>>jharrop2: One comment<<}",
            "{>>jharrop2: blagh<<}",
        ],
    ),
    (
        "docx4j-sample-docx.docx",
        &[
            "# Docx sample document",
            "# Bullets & numbering",
            "| Cell text |  | Shaded grey |\n| --- | --- | --- |",
            "1. Level 1\n  a. Level 2\n    i. Level 3",
            "{++An insertion++}",
            "{-- A deletion--}",
            "This line contains a soft return\nand here it continues",
        ],
    ),
    (
        "mammoth-comments.docx",
        &["{==Ouch==}{>>Michael Williamson: A tachyon walks into a bar.<<}"],
    ),
    (
        "mammoth-endnotes.docx",
        &["Ouch[^e2].[^e3]", "[^e2]: A tachyon walks into a bar."],
    ),
    ("mammoth-footnotes.docx", &["Ouch[^1].[^2]", "[^2]: Fin."]),
    ("mammoth-simple-list.docx", &["- Apple\n- Banana"]),
    ("mammoth-single-paragraph.docx", &["Walking on imported air"]),
    (
        "mammoth-tables.docx",
        &["Above\n\n| Top left | Top right |\n| --- | --- |\n| Bottom left | Bottom right |\n\nBelow"],
    ),
    ("mammoth-text-box.docx", &["Datum plane"]),
    (
        "python-docx-blk-paras-and-tables.docx",
        &["Lorem ipsum dolor sit amet", "Donec semper facilisis metus"],
    ),
    (
        "python-docx-comments-rich-para.docx",
        &["{==Some text worthy of note.==}{>>Steve Canny: Text with hyperlink"],
    ),
    ("python-docx-par-known-styles.docx", &["# Heading 1", "Body Text"]),
    (
        "python-docx-test.docx",
        &["# python-docx was here!", "python-docx was here too!"],
    ),
    (
        "python-pptx-shp-shapes.pptx",
        &[
            "shapes[0]",
            "- shapes[1]",
            "[image: python-powered.png]",
            "| shapes[3] |",
        ],
    ),
    ("python-pptx-sld-notes.pptx", &["Notes"]),
    (
        "python-pptx-tbl-cell.pptx",
        &["| having custom margins |", "| a | b | c |"],
    ),
    ("python-pptx-test.pptx", &["Presentation Title Text", "Subtitle Text"]),
    (
        "python-pptx-test_slides.pptx",
        &["Test text", "Box 1", "| Cell text 1 | Cell text 2 |"],
    ),
    (
        "python-pptx-txt-text.pptx",
        &["Foo Bar", "yahoo.com", "Text run in table cell"],
    ),
];

/// All of a result's text: a docx's text, or each slide's title, text and notes.
fn all_text(out: &Value) -> String {
    if let Some(t) = out["text"].as_str() {
        return t.to_owned();
    }
    let mut s = String::new();
    for slide in out["slides"].as_array().unwrap() {
        for key in ["title", "text", "notes"] {
            s.push_str(slide[key].as_str().unwrap_or_default());
            s.push('\n');
        }
    }
    s
}

#[test]
fn every_corpus_document_reads_with_its_structure_or_names_its_problem() {
    let dir = corpus();
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    let files = files_with(&dir, &["docx", "pptx"]);
    assert!(files.len() >= 20, "the corpus holds {} files", files.len());
    let mut refused = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let tool = if name.ends_with(".docx") { "docx" } else { "pptx" };
        let started = Instant::now();
        match read_or_named_error(&name, text(&fx, tool, json!({"path": file}), &grants)) {
            Ok(out) => {
                let got = all_text(&out);
                let expected = EXPECTED.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, e)| *e);
                for e in expected {
                    assert!(got.contains(e), "{name}: {e:?} in\n{got}");
                }
                eprintln!("{name}: {} characters in {:?}", got.len(), started.elapsed());
            }
            Err(msg) => refused.push((name, msg)),
        }
    }
    // Only the strict file is refused, saying what to do.
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (name, msg) = &refused[0];
    assert_eq!(name, "mammoth-strict-format.docx");
    assert!(msg.contains("Strict Open XML") && msg.contains("save it as"), "{msg}");
    // python-pptx's deck with no slides says so.
    let out = text(
        &fx,
        "pptx",
        json!({"path": dir.join("python-pptx-no-slides.pptx")}),
        &grants,
    )
    .unwrap();
    assert_eq!(out["slide_count"], 0);
    assert!(out["notes"][0].as_str().unwrap().contains("no slides"), "{out}");
    // Speaker notes come apart from the slide's text.
    let out = text(
        &fx,
        "pptx",
        json!({"path": dir.join("python-pptx-sld-notes.pptx")}),
        &grants,
    )
    .unwrap();
    assert_eq!(out["slides"][0]["notes"], "Notes", "{out}");
}

/// The venv `scripts/setup` installs python-docx and python-pptx into.
fn python() -> PathBuf {
    let venv =
        option_env!("HOME").map(|home| Path::new(home).join(".cache/deskhand/python-docx-1.2.0-pptx-1.0.2/bin/python"));
    match venv {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("python3"),
    }
}

/// Reads every corpus file with python-docx or python-pptx and lists each
/// paragraph, table cell, comment and speaker note whose words are not in
/// what our tools returned (given on stdin: name -> docx text, or slides).
/// Review marks, note references and link targets are taken out of ours
/// first: python-docx leaves tracked insertions and deletions out of a
/// paragraph's text.
const COMPARE: &str = r#"
import json, re, sys, docx, pptx
ours = json.load(sys.stdin)
def norm(s):
    return " ".join(s.replace("\x0b", " ").split())
def plain(s):
    s = re.sub(r"\{>>.*?<<\}|\{\+\+.*?\+\+\}|\{--.*?--\}", "", s, flags=re.S)
    s = s.replace("{==", "").replace("==}", "").replace("\\|", "|")
    s = re.sub(r"\[\^e?\d+\]", "", s)
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    return norm(s)
missing, checked = [], 0
def want(name, where, text, got):
    global checked
    t = norm(text)
    if t:
        checked += 1
        if t not in got:
            missing.append(f"{name} {where}: {t!r}")
for name, got in ours["docx"].items():
    d = docx.Document(sys.argv[1] + "/" + name)
    body = plain(got)
    for p in d.paragraphs:
        want(name, "paragraph", p.text, body)
    for t in d.tables:
        for row in t.rows:
            for cell in row.cells:
                for p in cell.paragraphs:
                    want(name, "cell", p.text, body)
    for c in d.comments:
        want(name, "comment", c.text, norm(got))
for name, slides in ours["pptx"].items():
    prs = pptx.Presentation(sys.argv[1] + "/" + name)
    def shapes(group):
        for sh in group:
            if sh.shape_type == 6:
                yield from shapes(sh.shapes)
            else:
                yield sh
    for i, slide in enumerate(prs.slides):
        mine = slides[i]
        body = plain(mine["title"] + "\n" + mine["text"])
        for sh in shapes(slide.shapes):
            if sh.has_text_frame:
                for p in sh.text_frame.paragraphs:
                    want(name, f"slide {i + 1} paragraph", p.text, body)
            if getattr(sh, "has_table", False) and sh.has_table:
                for row in sh.table.rows:
                    for cell in row.cells:
                        want(name, f"slide {i + 1} cell", cell.text, body)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            want(name, f"slide {i + 1} notes", slide.notes_slide.notes_text_frame.text, norm(mine.get("notes", "")))
print(json.dumps({"missing": missing, "checked": checked}))
"#;

#[test]
fn python_docx_and_python_pptx_find_the_same_words() {
    let dir = corpus();
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    let (mut docs, mut decks) = (serde_json::Map::new(), serde_json::Map::new());
    for file in files_with(&dir, &["docx", "pptx"]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("strict") {
            continue;
        }
        if name.ends_with(".docx") {
            let out = text(&fx, "docx", json!({"path": file}), &grants).unwrap();
            docs.insert(name, out["text"].clone());
        } else {
            let out = text(&fx, "pptx", json!({"path": file}), &grants).unwrap();
            decks.insert(name, out["slides"].clone());
        }
    }
    let mut child = Command::new(python())
        .args(["-c", COMPARE])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let input = json!({"docx": docs, "pptx": decks}).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python-docx/python-pptx failed (run scripts/setup to install them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = result["missing"].as_array().unwrap();
    assert!(
        missing.is_empty(),
        "python-docx/python-pptx read text ours lacks:\n{missing:#?}"
    );
    assert!(result["checked"].as_u64().unwrap() >= 80, "{result}");
}

#[test]
fn a_long_document_is_read_in_parts_that_make_the_whole() {
    let dir = corpus();
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    let path = dir.join("docx4j-sample-docx.docx");
    let whole = text(&fx, "docx", json!({"path": path}), &grants).unwrap();
    assert_eq!(whole["truncated"], false);
    let total = whole["total_chars"].as_u64().unwrap();
    let (mut joined, mut offset, mut parts) = (String::new(), 0u64, 0);
    loop {
        let part = text(
            &fx,
            "docx",
            json!({"path": path, "offset": offset, "max_chars": 500}),
            &grants,
        )
        .unwrap();
        joined.push_str(part["text"].as_str().unwrap());
        parts += 1;
        match part["next_offset"].as_u64() {
            Some(next) => {
                assert!(part["outline"].as_array().is_some_and(|o| o.len() == 7), "{part}");
                assert!(part["notes"][0].as_str().unwrap().contains("\"offset\""), "{part}");
                offset = next;
            }
            None => break,
        }
    }
    assert_eq!(joined, whole["text"].as_str().unwrap());
    assert_eq!(joined.chars().count() as u64, total);
    assert!(parts >= 3, "{parts} parts");
    // A heading's offset from the outline starts a part at that heading.
    let first = text(&fx, "docx", json!({"path": path, "max_chars": 100}), &grants).unwrap();
    let images = first["outline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["text"] == "Images")
        .unwrap()["offset"]
        .clone();
    let at = text(&fx, "docx", json!({"path": path, "offset": images}), &grants).unwrap();
    assert!(at["text"].as_str().unwrap().starts_with("# Images\n"), "{at}");
    let past = tool_error(text(&fx, "docx", json!({"path": path, "offset": total + 1}), &grants));
    assert!(
        matches!(past, ToolError::InvalidArgs { ref message } if message.contains("past the end")),
        "{past:?}"
    );
}

#[test]
fn files_that_are_not_what_they_claim_or_are_damaged_are_named() {
    let fx = Fixture::new();
    let grants = [Grant::read_only("projects")];
    let corpus = corpus();
    let put = |name: &str, bytes: &[u8]| {
        std::fs::write(fx.inbox.join(name), bytes).unwrap();
        format!("projects/inbox/{name}")
    };
    let refused = |tool: &str, path: String| -> String {
        let e = tool_error(text(&fx, tool, json!({"path": path}), &grants));
        let msg = e.to_string();
        assert!(msg.contains(path.rsplit('/').next().unwrap()), "names the file: {msg}");
        msg
    };
    let deck = std::fs::read(corpus.join("python-pptx-test.pptx")).unwrap();
    let doc = std::fs::read(corpus.join("mammoth-tables.docx")).unwrap();
    let msg = refused("docx", put("slides.docx", &deck));
    assert!(
        msg.contains("is a PowerPoint presentation (.pptx)") && msg.contains("pptx tool's `text`"),
        "{msg}"
    );
    let msg = refused("pptx", put("letter.pptx", &doc));
    assert!(
        msg.contains("is a Word document (.docx)") && msg.contains("docx tool's `text`"),
        "{msg}"
    );
    let msg = refused("docx", put("cut.docx", &doc[..doc.len() / 2]));
    assert!(msg.contains("damaged or truncated"), "{msg}");
    let msg = refused("docx", put("notes.docx", b"plain text, renamed"));
    assert!(msg.contains("not a zip package"), "{msg}");
    let mut ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    ole.extend(vec![0u8; 504]);
    ole.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    let msg = refused("pptx", put("locked.pptx", &ole));
    assert!(msg.contains("encrypted (password-protected)"), "{msg}");
    // The xlsx tool, handed a document, now names the reader.
    let e = tool_error(call_tool(
        toolbox(),
        &fx.ws,
        "xlsx",
        "read",
        json!({"path": put("memo.xlsx", &doc)}),
        &grants,
    ));
    assert!(e.to_string().contains("docx tool's `text`"), "{e}");
    // Outside the grants, the host refuses before the tool runs.
    let outside = fx.outside.join("x.docx");
    std::fs::write(&outside, &doc).unwrap();
    let e = text(&fx, "docx", json!({"path": outside}), &grants).unwrap_err();
    assert!(!e.to_string().contains("Top left"), "{e}");
}

#[test]
fn a_zip_bomb_is_refused_not_inflated() {
    let fx = Fixture::new();
    let grants = [Grant::read_only("projects")];
    // 300 MiB of one character, deflated to well under a megabyte: past the
    // cap on one part, under the cap on the whole package's declared size.
    // The liar is the same file saying its part inflates to 1,000 bytes.
    let script = r#"
import sys, zipfile
rels = '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
bomb, liar = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("_rels/.rels", rels)
    with z.open("word/document.xml", "w") as f:
        chunk = b"a" * (1 << 20)
        for _ in range(300):
            f.write(chunk)
data = bytearray(open(bomb, "rb").read())
name = b"word/document.xml"
for sig, name_len_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, 22), (b"PK\x01\x02", 28, 46, 24)):
    i = data.find(sig)
    while i >= 0:
        n = int.from_bytes(data[i + name_len_at:i + name_len_at + 2], "little")
        if data[i + name_at:i + name_at + n] == name:
            data[i + size_at:i + size_at + 4] = (1000).to_bytes(4, "little")
        i = data.find(sig, i + 4)
open(liar, "wb").write(data)
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(fx.inbox.join("bomb.docx"))
        .arg(fx.inbox.join("liar.docx"))
        .status()
        .expect("python3 runs");
    assert!(status.success());
    assert!(std::fs::metadata(fx.inbox.join("bomb.docx")).unwrap().len() < 2 << 20);
    for name in ["bomb.docx", "liar.docx"] {
        let started = Instant::now();
        let e = tool_error(text(
            &fx,
            "docx",
            json!({"path": format!("projects/inbox/{name}")}),
            &grants,
        ));
        let msg = e.to_string();
        assert!(msg.contains(name), "{msg}");
        match name {
            "bomb.docx" => assert!(
                matches!(e, ToolError::TooLarge { .. }) && msg.contains("zip bomb"),
                "{e:?}"
            ),
            _ => assert!(
                matches!(e, ToolError::BadContent { .. }) && msg.contains("damaged"),
                "{e:?}"
            ),
        }
        eprintln!("{name} refused in {:?}: {msg}", started.elapsed());
    }
}

#[test]
fn a_large_document_is_read_in_parts_quickly() {
    let fx = Fixture::new();
    let grants = [Grant::read_only("projects")];
    let big = fx.inbox.join("big.docx");
    // 5,000 sections of a heading, two paragraphs and a 3-row table: about 12 MB of XML.
    let script = r#"
import sys, zipfile
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
rels = '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
def p(text, lvl=None):
    ppr = f'<w:pPr><w:outlineLvl w:val="{lvl}"/></w:pPr>' if lvl is not None else ''
    return f'<w:p>{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'
def cell(t):
    return f'<w:tc>{p(t)}</w:tc>'
parts = []
for i in range(5000):
    parts.append(p(f'Section {i}', 0))
    parts.append(p(f'The first paragraph of section {i} says what the section is about, in a sentence or two.'))
    parts.append(p(f'The second paragraph of section {i} holds the detail a reader would quote.'))
    rows = ''.join(f'<w:tr>{cell(f"item {i}.{r}")}{cell(str(r * 10))}{cell("note")}</w:tr>' for r in range(3))
    parts.append(f'<w:tbl>{rows}</w:tbl>')
doc = f'<w:document {W}><w:body>{"".join(parts)}</w:body></w:document>'
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("_rels/.rels", rels)
    z.writestr("word/document.xml", doc)
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&big)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let path = "projects/inbox/big.docx";
    let started = Instant::now();
    let first = text(&fx, "docx", json!({"path": path}), &grants).unwrap();
    let took = started.elapsed();
    assert_eq!(first["truncated"], true);
    assert_eq!(
        first["chars"].as_u64().unwrap(),
        first["text"].as_str().unwrap().chars().count() as u64
    );
    assert_eq!(
        first["outline"].as_array().unwrap().len(),
        1_000,
        "the outline is capped"
    );
    let total = first["total_chars"].as_u64().unwrap();
    assert!(total > 1_000_000, "{total}");
    let last = first["outline"][999]["offset"].clone();
    let at = text(
        &fx,
        "docx",
        json!({"path": path, "offset": last, "max_chars": 400}),
        &grants,
    )
    .unwrap();
    assert!(
        at["text"]
            .as_str()
            .unwrap()
            .starts_with("# Section 999\n\nThe first paragraph of section 999"),
        "{at}"
    );
    eprintln!(
        "big.docx ({} bytes, {total} characters of text): first 100,000 characters in {took:?}",
        std::fs::metadata(&big).unwrap().len()
    );
}
