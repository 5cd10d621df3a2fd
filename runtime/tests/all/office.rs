//! The bundled `docx` and `pptx` writers end to end, in the real sandbox:
//! a document and a presentation with every block kind are converted to PDF
//! by LibreOffice (an independent engine) and read back with poppler's
//! `pdftotext`; bad inputs fail with errors that name the argument and the
//! file, and leave nothing behind.

use std::path::{Path, PathBuf};

use deskhand_runtime::Error;
use deskhand_runtime::wasm::CallError;
use deskhand_types::{Grant, ToolError};
use serde_json::{Value, json};

use crate::common::{Fixture, LibreOffice, call_tool, output_names, pdftotext, tool_error, toolbox};

/// A real 40 x 20 PNG (a colour gradient).
const PNG: &[u8] = include_bytes!("../../../guest-tools/ooxml/tests/gradient-40x20.png");
const NON_ASCII: &str = "Café Straße 100 ₫ 中文";

fn call(fx: &Fixture, tool: &str, args: Value, grants: &[Grant]) -> Result<Value, Error> {
    call_tool(toolbox(), &fx.ws, tool, "write", args, grants)
}

/// Builds a writer's arguments from a target path and blocks.
type ArgsFor<'a> = &'a dyn Fn(&str, Value) -> Value;

/// Every block kind, images from a granted folder and from output/.
fn every_block(tag: &str) -> Value {
    json!([
        {"type": "heading", "text": format!("{tag} overview")},
        {"type": "paragraph", "text": format!("The paragraph says {NON_ASCII}.")},
        {"type": "heading", "text": "Second level", "level": 2},
        {"type": "list", "items": ["Bullet alpha", "Bullet beta"]},
        {"type": "heading", "text": "Third level", "level": 3},
        {"type": "list", "items": ["Step one", "Step two"], "numbered": true},
        {"type": "table", "header": ["Category", "Amount"],
         "rows": [["Groceries", 12.5], ["Überfahrt", 45], ["Empty", null]], "caption": "Spending table"},
        {"type": "image", "path": "projects/inbox/gradient.png", "caption": "Gradient from the inbox", "width_mm": 60},
        {"type": "chart", "title": "Spending chart", "labels": ["Groceries", "Überfahrt"], "values": [12.5, 45]},
        {"type": "page_break"},
        {"type": "image", "path": "output/made-here.png"},
        {"type": "paragraph", "text": "The closing paragraph."}
    ])
}

fn with_images(fx: &Fixture) {
    std::fs::write(fx.inbox.join("gradient.png"), PNG).unwrap();
    std::fs::write(fx.ws.output_dir().join("made-here.png"), PNG).unwrap();
}

/// Converts `file` to PDF with LibreOffice: it must succeed, say nothing
/// on stderr but the JRE notice, and leave a PDF; returns its text.
fn to_pdf_text(lo: &LibreOffice, file: &Path, outdir: &Path) -> String {
    let (pdf, stderr) = lo.convert_with_stderr(file, "pdf", "pdf", outdir);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("javaldx"))
        .collect();
    assert!(
        complaints.is_empty(),
        "LibreOffice complained about {}: {stderr}",
        file.display()
    );
    assert!(
        std::fs::metadata(&pdf).unwrap().len() > 1000,
        "{} is a PDF of nothing",
        pdf.display()
    );
    pdftotext(&pdf)
}

/// The width and height in millimetres of every `draw:frame` in a flat ODF file.
fn frame_sizes_mm(flat: &str) -> Vec<(f64, f64)> {
    let mm = |v: &str| -> Option<f64> {
        let unit_at = v.find(|c: char| c.is_ascii_alphabetic())?;
        let n: f64 = v[..unit_at].parse().ok()?;
        Some(match &v[unit_at..] {
            "cm" => n * 10.0,
            "in" => n * 25.4,
            "mm" => n,
            "pt" => n * 25.4 / 72.0,
            _ => return None,
        })
    };
    let attr = |tag: &str, name: &str| -> Option<f64> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + tag[start..].find('"')?;
        mm(&tag[start..end])
    };
    flat.split("<draw:frame ")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            Some((attr(tag, "svg:width")?, attr(tag, "svg:height")?))
        })
        .collect()
}

fn assert_has(text: &str, needles: &[&str], what: &str) {
    // pdftotext may break a line anywhere a layout wraps; compare with spaces folded.
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in needles {
        assert!(
            folded.contains(needle),
            "the {what} lacks {needle:?}; pdftotext read:\n{text}"
        );
    }
}

#[test]
fn a_docx_with_every_block_converts_to_pdf_and_reads_back() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    with_images(&fx);
    let out = call(
        &fx,
        "docx",
        json!({"path": "output/report.docx", "title": "Quarterly report", "author": "Zoë Author",
               "subject": "Spending", "blocks": every_block("Report")}),
        &[Grant::read_only("projects/inbox")],
    )
    .unwrap();
    assert_eq!(
        (out["tables"].as_u64(), out["images"].as_u64(), out["charts"].as_u64()),
        (Some(1), Some(2), Some(1))
    );
    let doc = PathBuf::from(out["path"].as_str().unwrap());
    assert_eq!(doc, fx.ws.output_dir().canonicalize().unwrap().join("report.docx"));
    assert_eq!(
        output_names(&fx),
        ["made-here.png", "report.docx"],
        "no temporary file is left behind"
    );

    let converted = tempfile::tempdir().unwrap();
    let text = to_pdf_text(&lo, &doc, converted.path());
    assert_has(
        &text,
        &[
            "Quarterly report",
            "Report overview",
            "Second level",
            "Third level",
            NON_ASCII,
            "Bullet alpha",
            "Bullet beta",
            "1. Step one",
            "2. Step two",
            "Category",
            "Amount",
            "Groceries",
            "12.5",
            "Überfahrt",
            "Spending table",
            "Gradient from the inbox",
            "Spending chart",
            "The closing paragraph.",
        ],
        "docx's PDF",
    );

    // What LibreOffice sees besides the text: real headings (outline levels
    // from the styles), lists, a table, two pictures, a chart object, and
    // the core properties.
    let fodt = std::fs::read_to_string(lo.convert(&doc, "fodt", "fodt", converted.path())).unwrap();
    for (what, needle) in [
        ("a level-1 heading", "text:outline-level=\"1\""),
        ("a level-2 heading", "text:outline-level=\"2\""),
        ("a level-3 heading", "text:outline-level=\"3\""),
        ("the Title style", "style:name=\"Title\""),
        ("a list", "<text:list "),
        ("a table", "<table:table "),
        ("a repeated header row", "<table:table-header-rows>"),
        ("a picture", "<draw:image"),
        ("a chart", "chart:chart"),
        ("the title property", "<dc:title>Quarterly report</dc:title>"),
        ("the author", "Zoë Author"),
    ] {
        assert!(
            fodt.contains(needle),
            "LibreOffice sees no {what} ({needle}) in the document"
        );
    }
    let root = fx.ws.root().display().to_string();
    assert!(!fodt.contains(&root), "the document carries the host path {root}");
    let pictures = fodt.matches("<draw:image").count();
    assert!(pictures >= 2, "{pictures} pictures");
    // The 60 mm picture keeps the PNG's 2:1 aspect ratio.
    let frames = frame_sizes_mm(&fodt);
    assert!(
        frames
            .iter()
            .any(|(w, h)| (w - 60.0).abs() < 0.5 && (h - 30.0).abs() < 0.5),
        "no 60 x 30 mm frame among {frames:?}"
    );
}

#[test]
fn a_pptx_with_every_block_converts_to_pdf_and_reads_back() {
    let lo = LibreOffice::new();
    let fx = Fixture::new();
    with_images(&fx);
    let long_rows: Vec<Value> = (1..=40).map(|i| json!([format!("Line item {i}"), i * 10])).collect();
    let long_list: Vec<String> = (1..=25).map(|i| format!("Numbered entry {i}")).collect();
    let out = call(
        &fx,
        "pptx",
        json!({"path": "output/deck.pptx", "title": "Quarterly deck", "author": "Zoë Author", "slides": [
            {"title": "Everything at once", "blocks": every_block("Deck")},
            {"title": format!("Notes {NON_ASCII}"), "blocks": [{"type": "paragraph", "text": "Short slide."}]},
            {"title": "A long table", "blocks": [{"type": "table", "header": ["Item", "Value"], "rows": long_rows}]},
            {"title": "A long list", "blocks": [{"type": "list", "items": long_list, "numbered": true}]}
        ]}),
        &[Grant::read_only("projects/inbox")],
    )
    .unwrap();
    let slides = out["slides"].as_u64().unwrap();
    assert!(slides >= 6, "a title slide, continued content and a split table: {out}");
    let deck = PathBuf::from(out["path"].as_str().unwrap());
    assert_eq!(output_names(&fx), ["deck.pptx", "made-here.png"]);

    let converted = tempfile::tempdir().unwrap();
    let text = to_pdf_text(&lo, &deck, converted.path());
    assert_has(
        &text,
        &[
            "Quarterly deck",
            "Zoë Author",
            "Everything at once",
            "Deck overview",
            "Second level",
            "Third level",
            NON_ASCII,
            "Bullet alpha",
            "Step two",
            "Category",
            "Groceries",
            "Überfahrt",
            "Spending table",
            "Gradient from the inbox",
            "Spending chart",
            "Everything at once (continued)",
            "The closing paragraph.",
            "Short slide.",
            "A long table (continued)",
            "Line item 1 ",
            "Line item 40",
            "1. Numbered entry 1",
            "A long list (continued)",
            // The numbering carries on over the slide break.
            "25. Numbered entry 25",
        ],
        "pptx's PDF",
    );
    let pages = text.matches('\u{c}').count();
    assert_eq!(pages as u64, slides, "one PDF page per slide");

    let fodp = std::fs::read_to_string(lo.convert(&deck, "fodp", "fodp", converted.path())).unwrap();
    for (what, needle) in [
        ("a table", "<table:table "),
        ("a picture", "<draw:image"),
        ("a chart", "chart:chart"),
        ("a title placeholder", "presentation:class=\"title\""),
        ("a bulleted list", "<text:list "),
    ] {
        assert!(
            fodp.contains(needle),
            "LibreOffice sees no {what} ({needle}) in the presentation"
        );
    }
}

#[test]
fn bad_inputs_name_the_argument_and_leave_nothing_behind() {
    let fx = Fixture::new();
    std::fs::write(fx.inbox.join("gradient.png"), PNG).unwrap();
    std::fs::write(fx.inbox.join("truncated.png"), &PNG[..PNG.len() / 2]).unwrap();
    let inbox = [Grant::read_only("projects/inbox")];
    let image = |path: &str| json!([{"type": "paragraph", "text": "x"}, {"type": "image", "path": path}]);
    let docx = |path: &str, blocks: Value| json!({"path": path, "blocks": blocks});
    let pptx = |path: &str, blocks: Value| json!({"path": path, "slides": [{"title": "S", "blocks": blocks}]});
    let writers: [(&str, ArgsFor<'_>, &str); 2] = [
        ("docx", &docx, "blocks[1].path"),
        ("pptx", &pptx, "slides[0].blocks[1].path"),
    ];

    for (tool, args, arg) in writers {
        let target = format!("output/a.{tool}");
        // A missing image.
        let err = tool_error(call(
            &fx,
            tool,
            args(&target, image("projects/inbox/missing.png")),
            &inbox,
        ));
        assert!(matches!(err, ToolError::NotFound { .. }), "{tool}: {err}");
        assert!(
            err.to_string().contains(arg) && err.to_string().contains("missing.png"),
            "{tool}: {err}"
        );
        // A text file given as an image, and a truncated PNG.
        for (file, says) in [("note.txt", "not a PNG or JPEG"), ("truncated.png", "truncated")] {
            let err = tool_error(call(
                &fx,
                tool,
                args(&target, image(&format!("projects/inbox/{file}"))),
                &inbox,
            ));
            assert!(matches!(err, ToolError::BadContent { .. }), "{tool}: {err}");
            let msg = err.to_string();
            assert!(
                msg.contains(arg) && msg.contains(file) && msg.contains(says),
                "{tool}: {msg}"
            );
        }
        // An image outside the call's grants is refused before the tool runs.
        let err = call(&fx, tool, args(&target, image("projects/inbox/gradient.png")), &[]).unwrap_err();
        assert!(matches!(err, Error::OutsideGrants { .. }), "{tool}: {err}");
        // A bad block names itself.
        let err = tool_error(call(
            &fx,
            tool,
            args(&target, json!([{"type": "heading", "text": "x", "level": 5}])),
            &[],
        ));
        assert!(err.to_string().contains("level 5"), "{tool}: {err}");
        assert_eq!(
            output_names(&fx),
            Vec::<String>::new(),
            "{tool}: a failed write left a file"
        );

        // Written once, then never overwritten.
        call(&fx, tool, args(&target, image("projects/inbox/gradient.png")), &inbox).unwrap();
        let before = std::fs::read(fx.ws.output_dir().join(format!("a.{tool}"))).unwrap();
        let err = tool_error(call(
            &fx,
            tool,
            args(&target, json!([{"type": "paragraph", "text": "other"}])),
            &inbox,
        ));
        assert!(matches!(err, ToolError::AlreadyExists { .. }), "{tool}: {err}");
        assert!(err.to_string().contains("never overwrites"), "{tool}: {err}");
        assert_eq!(
            std::fs::read(fx.ws.output_dir().join(format!("a.{tool}"))).unwrap(),
            before
        );
        let mut unique = args(&target, json!([{"type": "paragraph", "text": "again"}]));
        unique["unique"] = json!(true);
        let out = call(&fx, tool, unique, &[]).unwrap();
        assert!(out["path"].as_str().unwrap().ends_with(&format!("a-1.{tool}")), "{out}");

        // Only under output/, and only with the right extension.
        let err = call(
            &fx,
            tool,
            args(
                &format!("projects/inbox/x.{tool}"),
                json!([{"type": "paragraph", "text": "x"}]),
            ),
            &[Grant::read_write("projects/inbox")],
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::WriteOutsideOutput { .. } | Error::Call(CallError::Tool(ToolError::Denied { .. }))
            ),
            "{tool}: {err}"
        );
        assert!(err.to_string().contains("output/"), "{tool}: {err}");
        let err = tool_error(call(
            &fx,
            tool,
            args("output/x.txt", json!([{"type": "paragraph", "text": "x"}])),
            &[],
        ));
        assert!(err.to_string().contains(&format!(".{tool}")), "{tool}: {err}");
        for e in std::fs::read_dir(fx.ws.output_dir()).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    let mut inbox_names: Vec<String> = std::fs::read_dir(&fx.inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inbox_names.sort();
    assert_eq!(
        inbox_names,
        ["gradient.png", "note.txt", "truncated.png"],
        "nothing was written to the inbox"
    );

    // An empty slide list, and an empty document.
    let err = tool_error(call(&fx, "pptx", json!({"path": "output/e.pptx", "slides": []}), &[]));
    assert!(
        err.to_string().contains("slides") && err.to_string().contains("empty"),
        "{err}"
    );
    let err = tool_error(call(&fx, "docx", json!({"path": "output/e.docx", "blocks": []}), &[]));
    assert!(
        err.to_string().contains("blocks") && err.to_string().contains("empty"),
        "{err}"
    );
    assert_eq!(output_names(&fx), Vec::<String>::new());
}
