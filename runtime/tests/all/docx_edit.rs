//! `docx edit` and `docx fill` through the real sandbox: the proposed
//! overwrite is applied as a changeset (and undone); Python's zipfile checks
//! that every entry not meant to change is byte-identical, and LibreOffice,
//! which shares no code with the tool, opens the result and shows the new
//! text. `fill` makes one new document per data row under output/.

use std::path::{Path, PathBuf};

use deskhand_runtime::changeset;
use deskhand_types::{Grant, RunId, ToolOutput};
use serde_json::{Value, json};

use crate::common::{
    Edited, Fixture, LibreOffice, MAKE_ZIP, apply_edit, call_tool, output_names, py, run_edit, rw, tool_error, toolbox,
    tree, zip_diff,
};

fn corpus_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/docx-pptx")
        .join(name)
}

fn edit(fx: &Fixture, path: &Path, edits: Value, grants: &[Grant]) -> Edited<'static> {
    run_edit(toolbox(), fx, "docx", path, edits, grants, &|_| {})
}

/// Runs `docx edit` and applies its proposal as a changeset; the output and
/// the run it belongs to (for undo).
fn edit_and_apply(fx: &Fixture, path: &Path, edits: Value, grants: &[Grant]) -> (ToolOutput, RunId) {
    let (output, prepared) = edit(fx, path, edits, grants).unwrap_or_else(|e| panic!("{e:?}"));
    let run = apply_edit(fx, "docx edit", &output, &prepared, grants);
    (output, run)
}

/// The document's text as LibreOffice reads it, spaces folded.
fn lo_text(lo: &LibreOffice, doc: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let txt = lo.convert(doc, "txt:Text (encoded):UTF8", "txt", dir.path());
    let text = std::fs::read_to_string(txt).unwrap();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

const W: &str = "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\" \
                 xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"";

/// A letter with `{{client}}` split across runs in the body, and in its header and footer.
pub(crate) fn make_letter(path: &Path) {
    let ct = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/header1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"/><Override PartName="/word/footer1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"/><Override PartName="/docProps/custom.xml" ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml"/></Types>"#;
    let root = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties" Target="docProps/custom.xml"/></Relationships>"#;
    let doc_rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId7" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/header" Target="header1.xml"/><Relationship Id="rId8" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer" Target="footer1.xml"/></Relationships>"#;
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document {W}><w:body>\
         <w:p><w:r><w:t xml:space=\"preserve\">Dear {{{{cli</w:t></w:r><w:proofErr w:type=\"spellStart\"/>\
         <w:r><w:rPr><w:b/></w:rPr><w:t>ent}}}},</w:t></w:r></w:p>\
         <w:p><w:r><w:t>The fee is {{{{fee}}}} for the old plan.</w:t></w:r></w:p>\
         <w:sectPr><w:headerReference w:type=\"default\" r:id=\"rId7\"/><w:footerReference w:type=\"default\" r:id=\"rId8\"/>\
         <w:pgSz w:w=\"11906\" w:h=\"16838\"/></w:sectPr></w:body></w:document>"
    );
    let header = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:hdr {W}><w:p><w:r><w:t>Letter for {{{{client}}}}</w:t></w:r></w:p></w:hdr>"
    );
    let footer = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:ftr {W}><w:p><w:r><w:t>The old plan, page 1</w:t></w:r></w:p></w:ftr>"
    );
    let custom = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"/>"#;
    py(
        MAKE_ZIP,
        &json!({"path": path, "parts": [
            ["[Content_Types].xml", ct], ["_rels/.rels", root], ["word/document.xml", document],
            ["word/_rels/document.xml.rels", doc_rels], ["word/header1.xml", header], ["word/footer1.xml", footer],
            ["docProps/custom.xml", custom]
        ]}),
    );
}

#[test]
fn describes_edit_as_a_read_that_proposes_and_fill_as_a_write_under_output() {
    let tool = toolbox().get(deskhand_runtime::tools::BundledTool::Docx).unwrap();
    let op = tool.description().operation("edit").unwrap();
    assert_eq!(op.effects.reads, vec!["path".to_owned()]);
    assert!(op.effects.writes.is_empty() && !op.effects.network);
    let fill = tool.description().operation("fill").unwrap();
    assert_eq!(fill.effects.reads, vec!["template".to_owned(), "values".to_owned()]);
    assert_eq!(fill.effects.writes, vec!["path".to_owned()]);
}

#[test]
fn a_real_document_edited_keeps_every_other_entry_opens_in_libreoffice_and_undoes() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let doc = fx.inbox.join("test.docx");
    std::fs::copy(corpus_file("python-docx-test.docx"), &doc).unwrap();
    let original = fx._tmp.path().join("original.docx");
    std::fs::copy(&doc, &original).unwrap();
    let grants = [rw(&fx.inbox)];
    let before = tree(&fx.inbox);

    let (output, run) = edit_and_apply(
        &fx,
        &doc,
        json!([
            {"op": "replace", "find": "was here", "replace": "went there & back"},
            {"op": "append", "blocks": [
                {"type": "heading", "text": "Appended section", "level": 2},
                {"type": "paragraph", "text": "Appended by deskhand."},
                {"type": "list", "items": ["Point one", "Point two"], "numbered": true},
                {"type": "table", "header": ["Item", "Cost"], "rows": [["Tea", 2.5]]}
            ]}
        ]),
        &grants,
    );
    assert_eq!(output.json["edits"][0]["replacements"], 2, "{}", output.json);

    let diff = zip_diff(&original, &doc);
    let changed: Vec<String> = serde_json::from_value(diff["changed"].clone()).unwrap();
    assert!(changed.contains(&"word/document.xml".to_owned()), "{diff}");
    for part in &changed {
        assert!(
            ["word/document.xml", "word/styles.xml", "word/numbering.xml"].contains(&part.as_str()),
            "{part} changed: {diff}"
        );
    }
    assert_eq!(
        (diff["removed"].clone(), diff["added"].clone()),
        (json!([]), json!([])),
        "{diff}"
    );

    let text = lo_text(&lo, &doc);
    for needle in [
        "python-docx went there & back!",
        "python-docx went there & back too!",
        "Appended section",
        "Appended by deskhand.",
        "Point two",
        "Tea",
    ] {
        assert!(text.contains(needle), "LibreOffice does not show {needle:?}: {text}");
    }
    assert!(!text.contains("was here"), "{text}");

    changeset::undo(&fx.ws, &run, false).unwrap();
    assert_eq!(tree(&fx.inbox), before, "undo restores the document byte for byte");
}

#[test]
fn placeholders_split_across_runs_are_filled_in_the_body_header_and_footer() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let doc = fx.inbox.join("letter.docx");
    make_letter(&doc);
    let original = fx._tmp.path().join("original.docx");
    std::fs::copy(&doc, &original).unwrap();
    let grants = [rw(&fx.inbox)];

    // A value with no placeholder is named, and nothing changes.
    let err = edit(
        &fx,
        &doc,
        json!([{"op": "fill", "values": {"client": "Acme", "fee": "10", "date": "today"}}]),
        &grants,
    )
    .err()
    .unwrap();
    let msg = format!("{err:?}");
    assert!(msg.contains("date") && msg.contains("no placeholder"), "{msg}");
    let err = edit(
        &fx,
        &doc,
        json!([{"op": "fill", "values": {"client": "Acme"}}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(format!("{err:?}").contains("{{fee}}"), "{err:?}");
    let err = edit(
        &fx,
        &doc,
        json!([{"op": "replace", "find": "absent words", "replace": "x"}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(format!("{err:?}").contains("absent words"), "{err:?}");
    assert_eq!(std::fs::read(&doc).unwrap(), std::fs::read(&original).unwrap());

    let (output, _) = edit_and_apply(
        &fx,
        &doc,
        json!([
            {"op": "fill", "values": {"client": "Acme & Söhne", "fee": 250}},
            {"op": "replace", "find": "OLD PLAN", "replace": "new plan", "match_case": false}
        ]),
        &grants,
    );
    assert_eq!(output.json["edits"][0]["placeholders_filled"], 3, "{}", output.json);
    assert_eq!(output.json["edits"][1]["replacements"], 2, "{}", output.json);
    let diff = zip_diff(&original, &doc);
    assert_eq!(
        diff["changed"],
        json!(["word/document.xml", "word/footer1.xml", "word/header1.xml"]),
        "{diff}"
    );
    let text = lo_text(&lo, &doc);
    for needle in ["Dear Acme & Söhne,", "The fee is 250 for the new plan."] {
        assert!(text.contains(needle), "LibreOffice does not show {needle:?}: {text}");
    }
    // Headers and footers: LibreOffice's text export leaves them out; its PDF has them.
    let dir = tempfile::tempdir().unwrap();
    let pdf = lo.convert(&doc, "pdf", "pdf", dir.path());
    let pdf_text = crate::common::pdftotext(&pdf);
    assert!(pdf_text.contains("Letter for Acme & Söhne"), "{pdf_text}");
    assert!(pdf_text.contains("The new plan, page 1"), "{pdf_text}");
}

#[test]
fn strict_and_non_word_files_are_refused_by_name() {
    let fx = Fixture::new();
    let grants = [rw(&fx.inbox)];
    let strict = fx.inbox.join("strict.docx");
    std::fs::copy(corpus_file("mammoth-strict-format.docx"), &strict).unwrap();
    let err = edit(
        &fx,
        &strict,
        json!([{"op": "replace", "find": "a", "replace": "b"}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(format!("{err:?}").contains("Strict Open XML"), "{err:?}");

    let deck = fx.inbox.join("deck.docx");
    std::fs::copy(corpus_file("python-pptx-test.pptx"), &deck).unwrap();
    let err = edit(
        &fx,
        &deck,
        json!([{"op": "replace", "find": "a", "replace": "b"}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(format!("{err:?}").contains("PowerPoint"), "{err:?}");

    let text = fx.inbox.join("note.txt");
    let err = edit(
        &fx,
        &text,
        json!([{"op": "replace", "find": "a", "replace": "b"}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(format!("{err:?}").contains(".docx"), "{err:?}");
}

#[test]
fn fill_makes_one_document_per_csv_row_under_output() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    make_letter(&fx.inbox.join("letter.docx"));
    std::fs::write(
        fx.inbox.join("clients.csv"),
        "client,fee,email\n\"Acme, Inc.\",100,a@x\nZed/Co,200,z@x\n,300,n@x\n",
    )
    .unwrap();
    let grants = [Grant::read_only("projects/inbox")];
    let out = call_tool(
        toolbox(),
        &fx.ws,
        "docx",
        "fill",
        json!({"template": "projects/inbox/letter.docx", "values": "projects/inbox/clients.csv", "path": "output/letter.docx"}),
        &grants,
    )
    .unwrap();
    assert_eq!(out["files"].as_array().map(Vec::len), Some(3), "{out}");
    assert_eq!(out["unused_columns"], json!(["email"]), "{out}");
    assert_eq!(
        output_names(&fx),
        ["letter-3.docx", "letter-Acme, Inc.docx", "letter-Zed_Co.docx"]
    );
    let text = lo_text(&lo, &fx.ws.output_dir().join("letter-Zed_Co.docx"));
    assert!(
        text.contains("Dear Zed/Co,") && text.contains("The fee is 200"),
        "{text}"
    );

    // A placeholder with no column is named; nothing is written.
    std::fs::write(fx.inbox.join("short.csv"), "client\nAcme\n").unwrap();
    let err = tool_error(call_tool(
        toolbox(),
        &fx.ws,
        "docx",
        "fill",
        json!({"template": "projects/inbox/letter.docx", "values": "projects/inbox/short.csv", "path": "output/other.docx"}),
        &grants,
    ));
    assert!(format!("{err:?}").contains("{{fee}}"), "{err:?}");
    assert_eq!(output_names(&fx).len(), 3);
}

/// Every real document of the corpus (the Strict one refused) takes an
/// append ending in a table; LibreOffice opens each and shows the new text,
/// and only the parts an append may touch differ.
#[test]
fn every_corpus_document_takes_an_append_that_libreoffice_shows() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let grants = [rw(&fx.inbox)];
    let dir = corpus_file("");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "docx"))
        .collect();
    names.sort();
    let mut edited = 0;
    for source in names {
        let name = source.file_name().unwrap().to_string_lossy().into_owned();
        let doc = fx.inbox.join(&name);
        std::fs::copy(&source, &doc).unwrap();
        let edits = json!([{"op": "append", "blocks": [
            {"type": "heading", "text": "Appendix by deskhand"},
            {"type": "list", "items": ["Alpha point"]},
            {"type": "table", "header": ["Key", "Value"], "rows": [["Omega cell", 1]]}
        ]}]);
        if name.contains("strict") {
            let err = edit(&fx, &doc, edits, &grants).err().unwrap();
            assert!(format!("{err:?}").contains("Strict Open XML"), "{name}: {err:?}");
            continue;
        }
        edit_and_apply(&fx, &doc, edits, &grants);
        let diff = zip_diff(&source, &doc);
        let touched: Vec<String> = serde_json::from_value(diff["changed"].clone()).unwrap();
        for part in touched {
            assert!(
                part == "word/document.xml"
                    || part == "word/styles.xml"
                    || part == "word/numbering.xml"
                    || part == "word/_rels/document.xml.rels"
                    || part == "[Content_Types].xml",
                "{name}: {part} changed: {diff}"
            );
        }
        assert_eq!(diff["removed"], json!([]), "{name}: {diff}");
        let text = lo_text(&lo, &doc);
        for needle in ["Appendix by deskhand", "Alpha point", "Omega cell"] {
            assert!(
                text.contains(needle),
                "{name}: LibreOffice does not show {needle:?}: {text}"
            );
        }
        edited += 1;
    }
    assert!(edited >= 12, "{edited} documents edited");
}

/// Copies a zip, replacing `old` with `new` in the text of entry `part`.
const PATCH_ZIP: &str = r#"
import json, sys, zipfile
a = json.loads(sys.argv[1])
with zipfile.ZipFile(a["from"]) as src, zipfile.ZipFile(a["to"], "w", zipfile.ZIP_DEFLATED) as dst:
    for i in src.infolist():
        data = src.read(i.filename)
        if i.filename == a["part"]:
            text = data.decode("utf-8")
            assert a["old"] in text
            data = text.replace(a["old"], a["new"], 1).encode("utf-8")
        dst.writestr(i.filename, data)
print("{}")
"#;

#[test]
fn fill_makes_presentations_from_a_pptx_template_and_a_json_list() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    // A real deck whose first slide's text becomes "Hello {{name}}" (the braces split across runs).
    py(
        PATCH_ZIP,
        &json!({"from": corpus_file("python-pptx-txt-text.pptx"), "to": fx.inbox.join("deck.pptx"),
                "part": "ppt/slides/slide1.xml", "old": "<a:t> Foo Bar </a:t>",
                "new": "<a:t>Hello {{na</a:t></a:r><a:r><a:rPr lang=\"en-US\" b=\"1\"/><a:t>me}}</a:t>"}),
    );
    std::fs::write(
        fx.inbox.join("people.json"),
        r#"[{"name": "Ann & Bo"}, {"name": "Cy"}]"#,
    )
    .unwrap();
    let out = call_tool(
        toolbox(),
        &fx.ws,
        "docx",
        "fill",
        json!({"template": "projects/inbox/deck.pptx", "values": "projects/inbox/people.json", "path": "output/deck.pptx"}),
        &[Grant::read_only("projects/inbox")],
    )
    .unwrap();
    assert_eq!(out["files"].as_array().map(Vec::len), Some(2), "{out}");
    assert_eq!(output_names(&fx), ["deck-Ann & Bo.pptx", "deck-Cy.pptx"]);
    let dir = tempfile::tempdir().unwrap();
    let pdf = lo.convert(&fx.ws.output_dir().join("deck-Cy.pptx"), "pdf", "pdf", dir.path());
    let text = crate::common::pdftotext(&pdf);
    assert!(text.contains("Hello Cy"), "{text}");
}
