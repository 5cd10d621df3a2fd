//! Native tests of the library functions; the sandboxed tool is tested from
//! `runtime/tests/all/pdf.rs`.

use std::path::{Path, PathBuf};

use deskhand_guest::document::Document as Report;
use serde_json::json;

use super::*;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pdf")
}

fn system_fonts() -> Option<Fonts> {
    let latin = Path::new("/usr/share/fonts/truetype/dejavu");
    let cjk = Path::new("/usr/share/fonts/truetype/droid");
    Fonts::from_dirs(latin, Some(cjk)).ok()
}

fn report(v: serde_json::Value) -> Report {
    serde_json::from_value(v).unwrap()
}

#[test]
fn report_text_comes_back_per_page_with_lines_apart() {
    let Some(fonts) = system_fonts() else {
        eprintln!("skipped: fonts-dejavu-core and fonts-droid-fallback are not installed");
        return;
    };
    let doc = report(json!({"title": "Expenses", "author": "Ana", "blocks": [
        {"type": "heading", "text": "Summary"},
        {"type": "paragraph", "text": "Café Straße 100 ₫ 中文"},
        {"type": "list", "items": ["first", "second"], "numbered": true},
        {"type": "table", "header": ["Category", "Total"], "rows": [["Food", 12.5], ["Travel", null]]},
        {"type": "chart", "title": "By category", "labels": ["Food", "Travel"], "values": [12.5, 30]},
        {"type": "page_break"},
        {"type": "paragraph", "text": "second page"}
    ]}));
    doc.validate().unwrap();
    let bytes = render_report(&doc, &fonts, |_| unreachable!()).unwrap();
    let pages = page_texts(&bytes, None).unwrap();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[0].lines().any(|l| l == "Café Straße 100 ₫ 中文"), "{}", pages[0]);
    assert!(pages[0].lines().any(|l| l == "Summary"), "{}", pages[0]);
    assert!(
        pages[1].contains("second page") && pages[1].contains("Page 2 of 2"),
        "{}",
        pages[1]
    );
    let i = info(&open(&bytes, None).unwrap());
    assert_eq!(i.title.as_deref(), Some("Expenses"));
    assert_eq!(i.author.as_deref(), Some("Ana"));
}

#[test]
fn a_character_no_font_has_is_named() {
    let Some(fonts) = system_fonts() else { return };
    let doc = report(json!({"blocks": [{"type": "paragraph", "text": "a \u{10FFFD} b"}]}));
    let err = render_report(&doc, &fonts, |_| unreachable!()).unwrap_err();
    assert!(matches!(err, PdfError::MissingGlyph { code: 0x10FFFD, .. }), "{err}");
}

#[test]
fn merge_and_split_keep_pages() {
    let bytes = std::fs::read(corpus().join("crazyones.pdf")).unwrap();
    let two = std::fs::read(corpus().join("two-different-pages.pdf")).unwrap();
    let merged = merge(vec![open(&bytes, None).unwrap(), open(&two, None).unwrap()]).unwrap();
    let doc = open(&merged, None).unwrap();
    assert_eq!(doc.get_pages().len(), 3);
    let one = split(&doc, &parse_ranges("2-3", 3).unwrap()).unwrap();
    assert_eq!(open(&one, None).unwrap().get_pages().len(), 2);
    assert!(matches!(parse_ranges("0-2", 3), Err(PdfError::BadRange(_))));
    assert!(matches!(
        parse_ranges("2-9", 3),
        Err(PdfError::NoSuchPage { page: 9, total: 3 })
    ));
}

#[test]
fn bad_inputs_say_what_is_wrong() {
    assert!(matches!(open(b"hello, not a pdf", None), Err(PdfError::NotPdf)));
    let bytes = std::fs::read(corpus().join("crazyones.pdf")).unwrap();
    let cut = &bytes[..bytes.len() / 3];
    match open(cut, None) {
        Err(PdfError::Malformed(_)) => {}
        Ok(d) => panic!("a third of a file opened with {} pages", d.get_pages().len()),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn every_corpus_pdf_gives_text_or_a_named_error() {
    let mut summary = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "pdf")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let started = std::time::Instant::now();
        let plain = page_texts(&bytes, None);
        let password = if name.starts_with('r') && name.contains("password") && !name.contains("empty") {
            Some(if name.starts_with("r6-both") { "foo" } else { "asdfzxcv" })
        } else if name.starts_with("libreoffice-writer-password") {
            Some("openpassword")
        } else {
            None
        };
        let with = password.map(|p| page_texts(&bytes, Some(p)));
        let show = |r: &Result<Vec<String>, PdfError>| match r {
            Ok(p) => format!(
                "{} pages, {:?}",
                p.len(),
                p.first().map(|t| t.chars().take(60).collect::<String>())
            ),
            Err(e) => format!("ERR {e}"),
        };
        summary.push(format!(
            "{name}: {} | with password: {} ({} ms)",
            show(&plain),
            with.as_ref().map(show).unwrap_or_default(),
            started.elapsed().as_millis()
        ));
    }
    eprintln!("{}", summary.join("\n"));
}

#[test]
fn a_cell_taller_than_a_page_is_cut_with_an_ellipsis() {
    let Some(fonts) = system_fonts() else { return };
    let long = "word ".repeat(3000);
    let doc = report(json!({"blocks": [{"type": "table", "header": ["A"], "rows": [[long], ["next"]]}]}));
    let bytes = render_report(&doc, &fonts, |_| unreachable!()).unwrap();
    let pages = page_texts(&bytes, None).unwrap();
    assert!(pages[0].contains('…'), "{}", pages[0]);
    assert!(pages.iter().any(|p| p.contains("next")));
}
