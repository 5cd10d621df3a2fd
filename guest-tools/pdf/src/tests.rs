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

/// Words of a text as a multiset.
/// Words of a text as a multiset, without the invisible bidi controls
/// poppler puts around right-to-left runs.
fn words(text: &str) -> std::collections::HashMap<String, usize> {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut m = std::collections::HashMap::new();
    for w in text.split_whitespace() {
        let w: String = w.chars().filter(|c| !bidi(*c)).collect();
        if !w.is_empty() {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// The share of `reference`'s words (as a multiset) found in `ours`.
fn recall(reference: &str, ours: &str) -> f64 {
    let (theirs, mine) = (words(reference), words(ours));
    let total: usize = theirs.values().sum();
    let found: usize = theirs
        .iter()
        .map(|(w, n)| (*n).min(mine.get(w).copied().unwrap_or(0)))
        .sum();
    found as f64 / total.max(1) as f64
}

/// Poppler's text of a file, or `None` when it cannot read the file or finds no words.
fn pdftotext(path: &Path) -> Option<String> {
    let out = std::process::Command::new("pdftotext")
        .args(["-q", "-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && text.split_whitespace().next().is_some()).then_some(text)
}

/// Issue 19's goal, side by side with poppler: of the corpus PDFs where
/// `pdftotext` finds words, our text is empty on under 1% and keeps at least
/// 90% of poppler's words (as a multiset) on at least 95%.
#[test]
fn corpus_text_keeps_the_words_pdftotext_finds() {
    if pdftotext(&corpus().join("crazyones.pdf")).is_none() {
        eprintln!("skipped: pdftotext (poppler-utils) is not installed");
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    entries.sort();
    let mut rows = Vec::new();
    for path in &entries {
        let Some(reference) = pdftotext(path) else { continue };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let started = std::time::Instant::now();
        let ours = page_texts(&bytes, None).map(|p| p.join("\n"));
        let ms = started.elapsed().as_millis();
        let (r, note) = match &ours {
            Ok(t) => (recall(&reference, t), String::new()),
            Err(e) => (0.0, format!(" ({e})")),
        };
        let empty = ours.as_ref().map_or(true, |t| t.split_whitespace().next().is_none());
        rows.push((name, r, empty, ms, note));
    }
    let n = rows.len();
    let empty = rows.iter().filter(|r| r.2).count();
    let good = rows.iter().filter(|r| r.1 >= 0.9).count();
    let mut sorted: Vec<f64> = rows.iter().map(|r| r.1).collect();
    sorted.sort_by(f64::total_cmp);
    let summary = format!(
        "{n} files where pdftotext finds words; empty: {empty}; recall min {:.2}, median {:.2}, >= 0.9 on {good} ({:.1}%)",
        sorted.first().copied().unwrap_or(1.0),
        sorted.get(n / 2).copied().unwrap_or(1.0),
        100.0 * good as f64 / n.max(1) as f64
    );
    let table: Vec<String> = rows
        .iter()
        .map(|(name, r, e, ms, note)| format!("{r:.2} {}{name} {ms} ms{note}", if *e { "EMPTY " } else { "" }))
        .collect();
    eprintln!("{}\n{summary}", table.join("\n"));
    assert!(n >= 40, "only {n} corpus PDFs have text for pdftotext");
    assert!(empty * 100 < n, "{summary}");
    assert!(good * 100 >= n * 95, "{summary}");
}

/// A PDF of `pages` pages, each showing `content` with font `/F1` (one
/// shared font object, with this ToUnicode CMap if any).
fn pdf_with_font(mut font: lopdf::Dictionary, to_unicode: Option<&[u8]>, content: &[u8], pages: usize) -> Vec<u8> {
    use lopdf::{Object, Stream, dictionary};
    let mut doc = lopdf::Document::with_version("1.5");
    if let Some(cmap) = to_unicode {
        font.set("ToUnicode", doc.add_object(Stream::new(dictionary! {}, cmap.to_vec())));
    }
    let font_id = doc.add_object(font);
    let content_id = doc.add_object(Stream::new(lopdf::Dictionary::new(), content.to_vec()));
    let resources = doc.add_object(dictionary! {"Font" => dictionary! {"F1" => font_id}});
    let pages_id = doc.new_object_id();
    let kids: Vec<Object> = (0..pages)
        .map(|_| {
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
                "Resources" => resources,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            })
            .into()
        })
        .collect();
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {"Type" => "Pages", "Kids" => kids, "Count" => count}),
    );
    let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn helvetica() -> lopdf::Dictionary {
    lopdf::dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica"}
}

#[test]
fn differences_glyph_names_are_read_without_a_to_unicode_map() {
    use lopdf::{Object, dictionary};
    let mut font = helvetica();
    let names = ["eacute", "uni20AC", "f_i", "a.sc", "Adieresis"];
    let mut differences: Vec<Object> = vec![1.into()];
    differences.extend(names.iter().map(|n| Object::Name(n.as_bytes().to_vec())));
    font.set(
        "Encoding",
        dictionary! {"Type" => "Encoding", "BaseEncoding" => "WinAnsiEncoding", "Differences" => differences},
    );
    let bytes = pdf_with_font(
        font,
        None,
        b"BT /F1 12 Tf 72 700 Td (caf\\001 \\002 \\003ne \\004 \\005 \\200) Tj ET",
        1,
    );
    assert_eq!(page_texts(&bytes, None).unwrap(), ["café € fine a Ä €"]);
}

#[test]
fn operators_inside_a_tj_array_do_not_lose_the_page() {
    // Poppler skips the operators and reads the rest; lopdf's parser gave up on the page.
    let content = b"BT /F1 12 Tf 72 700 Td [(Hello) -300 Tc (world) -300 Tf (again)] TJ ET \
                    BT /F1 12 Tf 72 680 Td (next line) Tj ET";
    let bytes = pdf_with_font(helvetica(), None, content, 1);
    assert_eq!(page_texts(&bytes, None).unwrap(), ["Hello world again\nnext line"]);
}

/// A simple font whose ToUnicode map declares four-byte codes and one
/// range over all 2^32 of them: issue 19's 3 KB file that took a minute.
fn huge_range_pdf() -> Vec<u8> {
    let cmap = b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
        /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
        1 begincodespacerange\n<00000000> <FFFFFFFF>\nendcodespacerange\n\
        1 beginbfrange\n<00000000> <FFFFFFFF> <0000>\nendbfrange\n\
        1 beginbfrange\n<00000048> <00000049> [<0048> <0069>]\nendbfrange\n\
        endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend";
    pdf_with_font(helvetica(), Some(cmap), b"BT /F1 12 Tf 72 700 Td (HI!) Tj ET", 1)
}

#[test]
fn a_to_unicode_range_over_every_code_answers_at_once() {
    let bytes = huge_range_pdf();
    assert!(bytes.len() < 3 * 1024, "{} bytes", bytes.len());
    let started = std::time::Instant::now();
    // H and I by the array; `!` (0x21) by the range's start plus its offset.
    assert_eq!(page_texts(&bytes, None).unwrap(), ["Hi!"]);
    eprintln!("read in {:?}", started.elapsed());
}

#[test]
fn ten_thousand_pages_share_one_font_reading() {
    let cmap = b"1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfrange <20> <7E> <0020> endbfrange";
    let bytes = pdf_with_font(
        helvetica(),
        Some(cmap),
        b"BT /F1 12 Tf 72 700 Td (Page text) Tj ET",
        10_000,
    );
    let started = std::time::Instant::now();
    let pages = page_texts(&bytes, None).unwrap();
    eprintln!(
        "{} pages ({} KB) read in {:?}",
        pages.len(),
        bytes.len() / 1024,
        started.elapsed()
    );
    assert_eq!(pages.len(), 10_000);
    assert!(pages.iter().all(|p| p == "Page text"));
}
