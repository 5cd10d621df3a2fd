//! `pptx edit` through the real sandbox: the proposed overwrite is applied
//! as a changeset (and undone), and the result is checked by readers that
//! share no code with the edit: Python's zipfile (every entry the summary
//! does not name is byte-identical, the ones it names did change) and
//! LibreOffice, which opens the edited deck and prints one PDF page per
//! slide. The decks of python-pptx's test suite are edited each.

use std::path::{Path, PathBuf};

use deskhand_runtime::changeset;
use deskhand_types::{Grant, RunId, ToolError, ToolOutput};
use serde_json::{Value, json};

use crate::common::{
    Edited, Fixture, LibreOffice, apply_edit, call_tool, files_with, pdftotext, run_edit, rw, toolbox, tree, zip_diff,
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/docx-pptx")
        .canonicalize()
        .unwrap()
}

/// The summary's lists of parts as the zip comparison's: what it says it
/// rewrote changed, what it says it added or removed was, and nothing else.
fn assert_summary_matches(name: &str, summary: &Value, diff: &Value) {
    let sorted = |v: &Value| {
        let mut s: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        sorted(&diff["changed"]),
        sorted(&summary["parts_rewritten"]),
        "{name}: {diff} vs {summary}"
    );
    assert_eq!(sorted(&diff["added"]), sorted(&summary["parts_added"]), "{name}");
    assert_eq!(sorted(&diff["removed"]), sorted(&summary["parts_removed"]), "{name}");
}

fn edit(fx: &Fixture, path: &Path, edits: Value, grants: &[Grant]) -> Edited<'static> {
    run_edit(toolbox(), fx, "pptx", path, edits, grants, &|_| {})
}

/// Runs `pptx edit` and applies its proposal as a changeset; the result
/// and the run the changeset belongs to (for undo).
fn edit_and_apply(fx: &Fixture, path: &Path, edits: Value, grants: &[Grant]) -> Result<(ToolOutput, RunId), ToolError> {
    let (output, prepared) = edit(fx, path, edits, grants)?;
    let run = apply_edit(fx, "pptx edit", &output, &prepared, grants);
    Ok((output, run))
}

/// The deck's slides as `pptx text` reads them through the sandbox.
fn slides(fx: &Fixture, deck: &Path, grants: &[Grant]) -> Vec<Value> {
    let out = call_tool(toolbox(), &fx.ws, "pptx", "text", json!({"path": deck}), grants).unwrap();
    out["slides"].as_array().unwrap().clone()
}

/// LibreOffice's PDF of the deck, as text, and its number of pages.
fn lo_pdf(lo: &LibreOffice, deck: &Path) -> (String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let pdf = lo.convert(deck, "pdf", "pdf", dir.path());
    let text = pdftotext(&pdf);
    let pages = text.matches('\u{c}').count();
    (text, pages)
}

#[test]
fn describes_edit_as_a_read_of_its_path_and_pictures_that_proposes_an_overwrite() {
    let tool = toolbox().get(deskhand_runtime::tools::BundledTool::Pptx).unwrap();
    let op = tool.description().operation("edit").unwrap();
    assert_eq!(
        op.effects.reads,
        vec!["path".to_owned(), "edits[].slides[].blocks[].path".to_owned()]
    );
    assert!(op.effects.writes.is_empty() && !op.effects.network);
}

#[test]
fn a_deck_is_changed_in_one_call_opened_by_libreoffice_and_undone() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let deck = fx.inbox.join("deck.pptx");
    std::fs::copy(corpus().join("python-pptx-sld-notes.pptx"), &deck).unwrap();
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-tools/ooxml/tests/gradient-40x20.png");
    std::fs::copy(png, fx.inbox.join("gradient.png")).unwrap();
    let original = fx._tmp.path().join("original.pptx");
    std::fs::copy(&deck, &original).unwrap();
    let grants = [rw(&fx.inbox)];
    let before = tree(&fx.inbox);
    let old = slides(&fx, &deck, &grants);
    assert_eq!((old.len(), old[0]["notes"].as_str()), (2, Some("Notes")));

    let edits = json!([
        {"op": "replace", "find": "notes", "replace": "Sprechernotizen & more", "match_case": false},
        {"op": "append_slides", "slides": [
            {"title": "Costs", "blocks": [
                {"type": "table", "header": ["Item", "Amount"], "rows": [["Café", 12.5], ["Train", 30]]},
                {"type": "image", "path": fx.inbox.join("gradient.png"), "caption": "Gradient from the inbox"}]},
            {"title": "Plan", "blocks": [{"type": "list", "items": ["Ask", "Decide"], "numbered": true}]}]},
        {"op": "delete_slide", "slide": 2}
    ]);
    let (output, run) = edit_and_apply(&fx, &deck, edits, &grants).unwrap();
    let summary = &output.json;
    assert_eq!(summary["slide_count"], 3, "{summary}");
    assert_eq!(summary["edits"][0]["replaced"], 1, "{summary}");
    assert!(
        output.text.contains("now 3 slides"),
        "the person's line: {}",
        output.text
    );
    let diff = zip_diff(&original, &deck);
    assert_summary_matches("deck.pptx", summary, &diff);
    assert!(
        diff["removed"]
            .as_array()
            .unwrap()
            .contains(&json!("ppt/slides/slide2.xml")),
        "{diff}"
    );

    let now = slides(&fx, &deck, &grants);
    let titles: Vec<&str> = now.iter().map(|s| s["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["", "Costs", "Plan"], "{now:?}");
    assert_eq!(now[0]["notes"], "Sprechernotizen & more");
    assert!(now[1]["text"].as_str().unwrap().contains("| Café | 12.5 |"), "{now:?}");

    let (text, pages) = lo_pdf(&lo, &deck);
    assert_eq!(pages, 3, "one PDF page per slide: {text}");
    for needle in ["Costs", "Café", "Gradient from the inbox", "Plan", "Decide"] {
        assert!(text.contains(needle), "LibreOffice does not show {needle:?}: {text}");
    }

    changeset::undo(&fx.ws, &run, false).unwrap();
    assert_eq!(tree(&fx.inbox), before, "undo restores the deck byte for byte");
}

/// Every deck of python-pptx's tests: a word of its last slide replaced, a
/// slide appended, its first slide deleted; the zip agrees with the
/// summary, `pptx text` reads the result, and LibreOffice prints it.
#[test]
fn every_corpus_deck_is_edited_and_libreoffice_prints_it() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let grants = [rw(&fx.inbox)];
    let mut edited = 0;
    for file in files_with(&corpus(), &["pptx"]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let deck = fx.inbox.join(&name);
        std::fs::copy(&file, &deck).unwrap();
        let old = slides(&fx, &deck, &grants);
        let word = old.last().and_then(|s| {
            s["title"]
                .as_str()
                .unwrap_or_default()
                .split(|c: char| !c.is_alphabetic())
                .find(|w| w.chars().count() >= 4)
                .map(str::to_owned)
        });
        let mut list = Vec::new();
        if let Some(w) = &word {
            list.push(json!({"op": "replace", "find": w, "replace": "Zebracorn"}));
        }
        list.push(
            json!({"op": "append_slides", "slides": [{"title": "Appended slide", "blocks": [
            {"type": "paragraph", "text": "Written by deskhand"}]}]}),
        );
        if !old.is_empty() {
            list.push(json!({"op": "delete_slide", "slide": 1}));
        }
        let (output, _) = edit_and_apply(&fx, &deck, json!(list), &grants).unwrap_or_else(|e| panic!("{name}: {e}"));
        let diff = zip_diff(&file, &deck);
        assert_summary_matches(&name, &output.json, &diff);

        let now = slides(&fx, &deck, &grants);
        let expected = old.len().max(1);
        assert_eq!(now.len(), expected, "{name}: {now:?}");
        assert_eq!(now.last().unwrap()["title"], "Appended slide", "{name}");
        if old.len() > 1 && word.is_some() {
            assert!(
                now.iter()
                    .any(|s| s["title"].as_str().unwrap_or_default().contains("Zebracorn")),
                "{name}: {now:?}"
            );
        }
        let (text, pages) = lo_pdf(&lo, &deck);
        assert_eq!(pages, expected, "{name}: one PDF page per slide");
        assert!(text.contains("Written by deskhand"), "{name}: {text}");
        edited += 1;
    }
    assert_eq!(edited, 8);
}

#[test]
fn a_deck_left_without_slides_still_opens() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    let deck = fx.inbox.join("cells.pptx");
    std::fs::copy(corpus().join("python-pptx-tbl-cell.pptx"), &deck).unwrap();
    let grants = [rw(&fx.inbox)];
    let edits = json!([
        {"op": "delete_slide", "slide": 1}, {"op": "delete_slide", "slide": 1}, {"op": "delete_slide", "slide": 1}
    ]);
    let (output, _) = edit_and_apply(&fx, &deck, edits, &grants).unwrap();
    assert_eq!(output.json["slide_count"], 0);
    assert!(slides(&fx, &deck, &grants).is_empty());
    // LibreOffice opens it (a failed conversion fails the test); Impress shows one empty page.
    let (_, pages) = lo_pdf(&lo, &deck);
    assert!(pages <= 1, "{pages} pages");
}

#[test]
fn what_cannot_be_done_is_refused_in_words_and_nothing_changes() {
    let fx = Fixture::new();
    let deck = fx.inbox.join("text.pptx");
    std::fs::copy(corpus().join("python-pptx-txt-text.pptx"), &deck).unwrap();
    let docx = fx.inbox.join("not-a-deck.pptx");
    std::fs::copy(corpus().join("mammoth-tables.docx"), &docx).unwrap();
    let grants = [rw(&fx.inbox)];
    let before = tree(&fx.inbox);

    let e = edit(
        &fx,
        &deck,
        json!([{"op": "replace", "find": "Nowhere to be seen", "replace": "x"}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, ToolError::InvalidArgs { .. }) && e.to_string().contains("\"Nowhere to be seen\" was not found"),
        "{e}"
    );
    let e = edit(
        &fx,
        &deck,
        json!([{"op": "fill", "values": {"client": "Acme"}}]),
        &grants,
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("[\"client\"] match no {{name}} placeholder"),
        "{e}"
    );
    let e = edit(&fx, &deck, json!([{"op": "delete_slide", "slide": 9}]), &grants)
        .err()
        .unwrap();
    assert!(e.to_string().contains("there is no slide 9"), "{e}");
    let e = edit(&fx, &docx, json!([{"op": "delete_slide", "slide": 1}]), &grants)
        .err()
        .unwrap();
    assert!(
        matches!(e, ToolError::BadContent { .. }) && e.to_string().contains("is a Word document"),
        "{e}"
    );
    assert_eq!(tree(&fx.inbox), before, "nothing changed");
}
