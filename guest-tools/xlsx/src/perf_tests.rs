//! A native timing harness for the 100,000 x 10 sheet the runtime's xlsx
//! bench writes and reads (`cargo test --release -p deskhand-guest-xlsx --
//! --ignored perf --nocapture`); it times, never asserts a speed.

use std::time::Instant;

use serde_json::{Value, json};

fn row(i: usize) -> Vec<Value> {
    let r = i + 2;
    vec![
        json!(i as f64),
        json!({"date": format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1)}),
        json!(format!("item {i}")),
        json!(["food", "travel", "office", "other"][i % 4]),
        json!((i % 1000) as f64 * 1.25),
        json!((i % 97) as f64),
        json!((i % 13) as f64 * 0.5),
        json!(i as f64 / 7.0),
        json!((i % 5) as f64),
        json!({"formula": format!("SUM(E{r}:I{r})")}),
    ]
}

#[test]
#[ignore = "a timing harness, not a test: run it with --release --ignored"]
fn perf_write_read_100k() {
    let rows = std::env::var("XLSX_PERF_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join("xlsx-perf");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.xlsx");
    let data: Vec<Vec<Value>> = (0..rows).map(row).collect();
    let header = ["id", "date", "name", "category", "a", "b", "c", "d", "e", "total"];
    let args = json!({"path": path, "sheets": [{"name": "Data", "header": header, "rows": data}]}).to_string();
    for _ in 0..2 {
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        let parsed: crate::write::WriteArgs = serde_json::from_str(&args).unwrap();
        eprintln!("spec parsed in {:.3} s", t.elapsed().as_secs_f64());
        let out = crate::write::write(parsed).unwrap();
        eprintln!("write {:.3} s ({})", t.elapsed().as_secs_f64(), out.text);
        if let Ok(keep) = std::env::var("XLSX_PERF_KEEP") {
            std::fs::copy(&path, keep).unwrap();
        }
        if std::env::var_os("XLSX_PERF_WRITE_ONLY").is_some() {
            continue;
        }
        let read_args = json!({"path": path, "max_rows": rows + 1}).to_string();
        let t = Instant::now();
        let out = crate::run("read", &read_args).unwrap();
        eprintln!(
            "read {:.3} s ({}, {} bytes)",
            t.elapsed().as_secs_f64(),
            out.text,
            out.json.len()
        );
        eprintln!(
            "fast path sheets so far: {}",
            crate::read::FAST_SHEETS.with(std::cell::Cell::get)
        );
        // What the host does next with the result: parse it.
        let t = Instant::now();
        let parsed: Value = serde_json::from_str(&out.json).unwrap();
        eprintln!("the host's parse of the result {:.3} s", t.elapsed().as_secs_f64());
        drop(parsed);
        if let Ok(golden) = std::env::var("XLSX_PERF_GOLDEN") {
            let golden = std::path::Path::new(&golden);
            if golden.exists() {
                let want = std::fs::read_to_string(golden).unwrap();
                assert!(want == out.json, "read output differs from {}", golden.display());
                eprintln!("read output matches {}", golden.display());
            } else {
                std::fs::write(golden, &out.json).unwrap();
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where a read's time goes, part by part, on a workbook the harness above
/// kept (`XLSX_PERF_KEEP=path`, then `XLSX_PERF_FILE=path`).
#[test]
#[ignore = "a timing harness, not a test: run it with --release --ignored"]
fn perf_read_parts() {
    use calamine::Reader;
    let Ok(path) = std::env::var("XLSX_PERF_FILE") else {
        eprintln!("set XLSX_PERF_FILE to a workbook");
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut book: calamine::Xlsx<_> = calamine::Xlsx::new(std::io::Cursor::new(&bytes[..])).unwrap();
        let open = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let fast = super::fast::Book::open(&bytes, super::MAX_FAST_PART_BYTES).unwrap();
        let fast_open = t.elapsed().as_secs_f64();
        let name = book.sheet_names()[0].clone();
        let is_1904 = book.has_1904_epoch();
        let reader = book.worksheet_cells_reader(&name).unwrap();
        let styles = reader.styles().to_vec();
        drop(reader);
        let t = Instant::now();
        let mut n = 0u64;
        fast.cells(&bytes, &name, &styles, is_1904, super::MAX_FAST_PART_BYTES, |_| {
            n += 1;
            Ok::<bool, ()>(true)
        })
        .unwrap()
        .unwrap();
        let scan = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
        let mut xml = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(), &mut xml).unwrap();
        let inflate = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let utf8 = std::str::from_utf8(&xml).is_ok();
        let check = t.elapsed().as_secs_f64();
        eprintln!(
            "calamine open {open:.3} s, fast open {fast_open:.3} s, inflate + scan {scan:.3} s ({n} cells), \
             of which inflate {inflate:.3} s, UTF-8 check {check:.3} s ({utf8})"
        );
    }
}
