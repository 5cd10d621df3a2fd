//! The `receipts` tool, the entry point of the bundled
//! `receipts-to-spreadsheet` skill: a folder of receipts (bank-export CSV
//! files, text PDFs, .txt receipts) becomes `output/expenses.xlsx` (one row
//! per purchase, category totals as SUMIF formulas the spreadsheet computes,
//! a chart) and `output/expenses-summary.pdf`.
//!
//! It reads and writes through the xlsx and pdf tools' own code, linked in as
//! libraries, so the workbook and the report are exactly what those tools
//! make; only the reading of receipts is its own (see [`parse`]).

mod parse;
mod period;

use std::path::{Path, PathBuf};

use deskhand_guest::document::Document;
use deskhand_guest::{Description, Output, ToolError, Walked, operation, output, parse_args, path_error};
use deskhand_guest_pdf::{FONTS_CJK, FONTS_LATIN, Fonts};
use serde::Deserialize;
use serde_json::{Value, json};

use parse::{Expense, Unread};
use period::{Period, money};

/// The largest .txt receipt read.
const MAX_TEXT_BYTES: u64 = 1024 * 1024;
/// The largest PDF receipt read: a scanned multi-page invoice fits; every
/// file is read within one instance's memory, so one huge PDF must not take
/// it from the others.
const MAX_PDF_BYTES: u64 = 32 * 1024 * 1024;
/// The largest bank export read, and the most cells (records times the
/// widest record) it may spread out to: years of statements fit, a line of
/// millions of fields does not.
const MAX_CSV_BYTES: u64 = 16 * 1024 * 1024;
const MAX_CSV_CELLS: u64 = 2_000_000;
/// The most rows of one bank export.
const MAX_CSV_ROWS: u64 = 100_000;
/// The most files one folder may hold for this tool.
const MAX_FILES: usize = 5_000;

struct Receipts;

impl deskhand_guest::Guest for Receipts {
    fn describe() -> Description {
        Description {
            name: "receipts".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Turns a folder of receipts (bank-export CSV, text PDFs, .txt) into an expenses workbook with \
                      category totals as formulas and a chart, and a PDF summary."
                .into(),
            operations: vec![operation(
                "run",
                "Read every receipt in `folder` and write `spreadsheet` (.xlsx: one row per purchase, a Summary sheet \
                 with SUMIF totals per category and a chart) and `summary` (.pdf). Receipts that match a bank line \
                 (same amount, dates within 3 days) become one row. Never overwrites: taken names get -1, -2, ...",
                json!({
                    "type": "object", "required": ["folder"], "additionalProperties": false,
                    "properties": {
                        "folder": {"type": "string", "description": "the folder of receipts"},
                        "spreadsheet": {"type": "string", "default": "output/expenses.xlsx"},
                        "summary": {"type": "string", "default": "output/expenses-summary.pdf"},
                        "currency": {"type": "string", "default": "EUR", "description": "for amounts that name none"},
                        "period": {"type": "string", "description": "only purchases dated in it: 2026-03-01..2026-03-31, a month 2026-03, a year 2026, or a day; default all"}
                    }
                }),
                &["folder"],
                &["spreadsheet", "summary"],
            )],
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        match op.as_str() {
            "run" => run(parse_args(&args)?),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Receipts with_types_in deskhand_guest::bindings);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunArgs {
    folder: PathBuf,
    #[serde(default = "default_spreadsheet")]
    spreadsheet: PathBuf,
    #[serde(default = "default_summary")]
    summary: PathBuf,
    #[serde(default = "default_currency")]
    currency: String,
    period: Option<String>,
}

fn default_spreadsheet() -> PathBuf {
    "output/expenses.xlsx".into()
}
fn default_summary() -> PathBuf {
    "output/expenses-summary.pdf".into()
}
fn default_currency() -> String {
    "EUR".into()
}

/// What the folder held, before the outputs are written.
#[derive(Default)]
struct Collected {
    bank: Vec<Expense>,
    receipts: Vec<Expense>,
    unread: Vec<(String, String)>,
    skipped: Vec<String>,
    credits_skipped: usize,
    walked: Walked,
    /// Purchases left out by the period: (outside it, without a date).
    outside_period: (usize, usize),
}

fn run(args: RunArgs) -> Result<Output, ToolError> {
    let currency = deskhand_guest_xlsx::typed::currency_code(&args.currency).ok_or_else(|| {
        ToolError::InvalidArgs(format!(
            "currency {:?} is not a currency code such as EUR or USD",
            args.currency
        ))
    })?;
    let period = args
        .period
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(Period::parse)
        .transpose()
        .map_err(ToolError::InvalidArgs)?;
    let mut collected = collect(&args.folder, currency)?;
    let receipts_read = collected.receipts.len();
    let mut rows = parse::merge(
        std::mem::take(&mut collected.bank),
        std::mem::take(&mut collected.receipts),
    );
    if rows.is_empty() {
        return Err(ToolError::InvalidArgs(format!(
            "{} holds no receipt deskhand could read (it reads bank-export .csv files, text .pdf and .txt receipts){}",
            args.folder.display(),
            problems_note(&collected)
        )));
    }
    if let Some(period) = &period {
        let before = rows.len();
        let undated = rows.iter().filter(|r| r.date.is_none()).count();
        rows.retain(|r| r.date.is_some_and(|d| period.contains(&d)));
        collected.outside_period = (before - rows.len() - undated, undated);
        if rows.is_empty() {
            return Err(ToolError::InvalidArgs(format!(
                "none of the {before} purchases in {} is dated {}{}",
                args.folder.display(),
                period.words(),
                problems_note(&collected)
            )));
        }
    }
    let totals = category_totals(&rows);

    let xlsx = deskhand_guest_xlsx::run("write", &workbook_spec(&args.spreadsheet, &rows, &totals).to_string())?;
    let xlsx_path = xlsx_written(&xlsx).unwrap_or_else(|| args.spreadsheet.clone());
    let report = summary_spec(&args, period.as_ref(), &rows, &totals, &collected);
    let pdf_path = match write_summary(&args.summary, report) {
        Ok(path) => path,
        Err(e) => {
            // Both files or neither: the workbook alone is not the deliverable.
            let _ = std::fs::remove_file(&xlsx_path);
            return Err(e);
        }
    };

    let text = format!(
        "Spent {} on {} purchase{}{} ({} receipt file{} read) -> {} and {}{}",
        grand_totals(&totals),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        span_words(period.as_ref(), &rows),
        receipts_read,
        if receipts_read == 1 { "" } else { "s" },
        xlsx_path.display(),
        pdf_path.display(),
        problems_note(&collected)
    );
    Ok(output(
        &json!({
            "spreadsheet": xlsx_path.display().to_string(),
            "summary": pdf_path.display().to_string(),
            "rows": rows.len(),
            "period": period.as_ref().map(|p| json!({"from": p.from, "to": p.to})),
            "totals": currency_totals(&totals).iter().map(|(cur, t)| json!({"currency": cur, "total": t})).collect::<Vec<_>>(),
            "categories": totals.iter().map(|(c, cur, total, n)| json!({"category": c, "currency": cur, "total": total, "count": n})).collect::<Vec<_>>(),
            "unread": collected.unread.iter().map(|(f, why)| json!({"file": f, "problem": why})).collect::<Vec<_>>(),
            "skipped": collected.skipped,
            "unreadable_names": collected.walked.json(),
            "credits_skipped": collected.credits_skipped,
        }),
        text,
    ))
}

/// The total per currency, in the order the categories list them.
fn currency_totals(totals: &[(&str, String, f64, usize)]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (_, currency, total, _) in totals {
        match out.iter_mut().find(|(c, _)| c == currency) {
            Some((_, t)) => *t += total,
            None => out.push((currency.clone(), *total)),
        }
    }
    for (_, t) in &mut out {
        *t = (*t * 100.0).round() / 100.0;
    }
    out
}

/// `€485.65`, or `€120.00 and $30.00` across currencies.
fn grand_totals(totals: &[(&str, String, f64, usize)]) -> String {
    let each: Vec<String> = currency_totals(totals).iter().map(|(c, t)| money(*t, c)).collect();
    each.join(" and ")
}

/// ` from 2026-03-01 to 2026-03-31`: the period asked for, else the purchases' dates.
fn span_words(period: Option<&Period>, rows: &[Expense]) -> String {
    if let Some(p) = period {
        return if p.from == p.to {
            format!(" on {}", p.from)
        } else {
            format!(" from {} to {}", p.from, p.to)
        };
    }
    let dates: Vec<String> = rows
        .iter()
        .filter_map(|r| r.date.map(|d| d.iso()[..10].to_owned()))
        .collect();
    match (dates.iter().min(), dates.iter().max()) {
        (Some(a), Some(b)) if a != b => format!(" from {a} to {b}"),
        (Some(a), _) => format!(" on {a}"),
        _ => String::new(),
    }
}

/// A column width (in characters) that shows `text` in bold without `###`.
fn width_for(texts: impl Iterator<Item = String>, at_least: usize) -> f64 {
    let widest = texts.map(|t| t.chars().count()).max().unwrap_or(0).max(at_least);
    (widest + 4) as f64
}

/// Renders the summary with the pdf tool's report code and its fonts, and
/// writes it as a new file (never over one: a taken name gets -1, -2, ...).
fn write_summary(path: &Path, report: Value) -> Result<PathBuf, ToolError> {
    let doc: Document = serde_json::from_value(report)
        .map_err(|e| ToolError::InvalidArgs(format!("the summary could not be laid out: {e}")))?;
    doc.validate()?;
    let fonts =
        Fonts::from_dirs(Path::new(FONTS_LATIN), Some(Path::new(FONTS_CJK))).map_err(|e| e.to_tool_error(path))?;
    let bytes = deskhand_guest_pdf::render_report(&doc, &fonts, |image| {
        Err(deskhand_guest_pdf::PdfError::Image {
            path: image.to_owned(),
            message: "the summary has no images".into(),
        })
    })
    .map_err(|e| e.to_tool_error(path))?;
    deskhand_guest::write_new(path, &bytes, true)
}

/// The path a writer reports it wrote (which may carry a `-1` suffix).
fn xlsx_written(out: &Output) -> Option<PathBuf> {
    let v: Value = serde_json::from_str(&out.json).ok()?;
    v["path"].as_str().map(PathBuf::from)
}

/// What was not read, for the tool's one line of text.
fn problems_note(got: &Collected) -> String {
    let mut note = String::new();
    if !got.unread.is_empty() {
        let list: Vec<String> = got.unread.iter().map(|(f, why)| format!("{f} {why}")).collect();
        note = format!("; not read: {}", list.join("; "));
    }
    note + &got.walked.note()
}

/// Reads every file directly in `folder` (and below it), by kind.
fn collect(folder: &Path, currency: &str) -> Result<Collected, ToolError> {
    let mut files = Vec::new();
    let mut too_many = false;
    let walked = deskhand_guest::walk(folder, true, &mut |path, meta| {
        if meta.is_file() {
            files.push(path.to_path_buf());
        }
        too_many = files.len() > MAX_FILES;
        !too_many
    })?;
    if too_many {
        return Err(ToolError::TooLarge(path_error(
            folder,
            format!("holds more than {MAX_FILES} files; point the skill at one month's or one trip's folder"),
        )));
    }
    let mut got = Collected {
        walked,
        ..Collected::default()
    };
    for path in files {
        let name = path.strip_prefix(folder).unwrap_or(&path).display().to_string();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => {
                let args = json!({"path": path.display().to_string(), "max_rows": MAX_CSV_ROWS});
                let read = check_csv(&path)
                    .and_then(|()| deskhand_guest_xlsx::run("read", &args.to_string()))
                    .and_then(|o| {
                        let v: Value = serde_json::from_str(&o.json)
                            .map_err(|e| ToolError::Io(path_error(&path, format!("unreadable result: {e}"))))?;
                        parse::bank_rows(&name, &v["sheets"][0], currency).map_err(ToolError::InvalidArgs)
                    });
                match read {
                    Ok(rows) => {
                        if rows.no_amount > 0 {
                            got.unread.push((
                                format!("{name} ({} line(s))", rows.no_amount),
                                "have no amount that reads as a number".to_owned(),
                            ));
                        }
                        got.credits_skipped += rows.credits_skipped;
                        got.bank.extend(rows.expenses);
                    }
                    Err(e) => got.unread.push((name, describe_error(&e))),
                }
            }
            "pdf" => {
                let text = read_pdf(&path).and_then(|bytes| {
                    deskhand_guest_pdf::page_texts(&bytes, None)
                        .map(|pages| pages.join("\n"))
                        .map_err(|e| e.to_tool_error(&path))
                });
                match text {
                    Ok(text) => add_receipt(&mut got, &text, name, currency),
                    Err(e) => {
                        let why = describe_error(&e);
                        let why = if why.contains("encrypted") {
                            "is encrypted (password-protected); put a copy without the password in the folder".into()
                        } else {
                            why
                        };
                        got.unread.push((name, why));
                    }
                }
            }
            "txt" => match read_text(&path) {
                Ok(text) => add_receipt(&mut got, &text, name, currency),
                Err(e) => got.unread.push((name, describe_error(&e))),
            },
            _ => got.skipped.push(name),
        }
    }
    Ok(got)
}

fn add_receipt(got: &mut Collected, text: &str, name: String, currency: &str) {
    match parse::receipt(text, &name, currency) {
        Ok(expense) => got.receipts.push(expense),
        Err(why @ (Unread::NoText | Unread::NoTotal)) => got.unread.push((name, why.reason().to_owned())),
    }
}

fn read_pdf(path: &Path) -> Result<Vec<u8>, ToolError> {
    deskhand_guest::read_capped(path, MAX_PDF_BYTES, |size| {
        too_large(path, size, MAX_PDF_BYTES, "a PDF receipt")
    })
}

/// Refuses a bank export too large to read as a sheet, before it is read as one.
fn check_csv(path: &Path) -> Result<(), ToolError> {
    let bytes = deskhand_guest::read_capped(path, MAX_CSV_BYTES, |size| {
        too_large(path, size, MAX_CSV_BYTES, "a bank export")
    })?;
    let cells = parse::csv_cells(&bytes);
    if cells > MAX_CSV_CELLS {
        return Err(ToolError::TooLarge(path_error(
            path,
            format!(
                "spreads out to {cells} cells (its lines times its widest line), more than the {MAX_CSV_CELLS} \
                 of a bank export deskhand reads; export fewer months or columns"
            ),
        )));
    }
    Ok(())
}

fn too_large(path: &Path, size: u64, cap: u64, what: &str) -> ToolError {
    ToolError::TooLarge(path_error(
        path,
        format!(
            "is {} MiB, larger than the {} MiB of {what} deskhand reads",
            size.div_ceil(1024 * 1024),
            cap / (1024 * 1024)
        ),
    ))
}

fn read_text(path: &Path) -> Result<String, ToolError> {
    let bytes = deskhand_guest::read_capped(path, MAX_TEXT_BYTES, |_| {
        ToolError::TooLarge(path_error(
            path,
            format!("is larger than {MAX_TEXT_BYTES} bytes, too large for a receipt"),
        ))
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A tool error as the words a person reads in the summary.
fn describe_error(e: &ToolError) -> String {
    match e {
        ToolError::InvalidArgs(m) | ToolError::UnknownOperation(m) => m.clone(),
        ToolError::NotFound(p)
        | ToolError::Denied(p)
        | ToolError::AlreadyExists(p)
        | ToolError::TooLarge(p)
        | ToolError::BadContent(p)
        | ToolError::Io(p) => p.message.clone(),
    }
}

/// (category, currency, total, count) in the order of [`parse::CATEGORIES`],
/// then Other; only those that occur.
fn category_totals(rows: &[Expense]) -> Vec<(&'static str, String, f64, usize)> {
    let mut currencies: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
    currencies.sort_unstable();
    currencies.dedup();
    let names = parse::CATEGORIES.iter().map(|(n, _)| *n).chain([parse::OTHER]);
    let mut out = Vec::new();
    for category in names {
        for currency in &currencies {
            let hits: Vec<&Expense> = rows
                .iter()
                .filter(|r| r.category == category && r.currency == *currency)
                .collect();
            if !hits.is_empty() {
                let total = hits.iter().map(|r| r.amount).sum::<f64>();
                out.push((
                    category,
                    (*currency).to_owned(),
                    (total * 100.0).round() / 100.0,
                    hits.len(),
                ));
            }
        }
    }
    out
}

/// Whether every total is in one currency (then they add up to a grand total).
fn single_currency(totals: &[(&str, String, f64, usize)]) -> bool {
    totals.windows(2).all(|w| w[0].1 == w[1].1)
}

/// The workbook: the Expenses sheet, and a Summary sheet whose totals are
/// SUMIF formulas over it (SUMIFS by currency when there are several).
fn workbook_spec(path: &Path, rows: &[Expense], totals: &[(&str, String, f64, usize)]) -> Value {
    let expense_rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!([
                r.date.map_or(Value::Null, |d| d.json()),
                r.merchant,
                r.category,
                {"amount": r.amount, "currency": r.currency},
                r.currency,
                r.source
            ])
        })
        .collect();
    let one_currency = single_currency(totals);
    let summary_rows: Vec<Value> = totals
        .iter()
        .map(|(category, currency, _, _)| {
            let (sum, count) = if one_currency {
                (
                    format!("SUMIF(Expenses!C:C,\"{category}\",Expenses!D:D)"),
                    format!("COUNTIF(Expenses!C:C,\"{category}\")"),
                )
            } else {
                (
                    format!("SUMIFS(Expenses!D:D,Expenses!C:C,\"{category}\",Expenses!E:E,\"{currency}\")"),
                    format!("COUNTIFS(Expenses!C:C,\"{category}\",Expenses!E:E,\"{currency}\")"),
                )
            };
            let format = deskhand_guest_xlsx::currency_format(currency);
            json!([category, currency, {"formula": sum, "format": format}, {"formula": count}])
        })
        .collect();
    let last = totals.len() + 1;
    // Formulas carry no values the writer could fit a column to: the
    // widths come from the totals they will compute, the grand total the widest.
    let grand = currency_totals(totals);
    let total_width = width_for(
        totals
            .iter()
            .map(|(_, c, t, _)| money(*t, c))
            .chain(grand.iter().map(|(c, t)| money(*t, c))),
        "Total".len(),
    );
    let mut summary = json!({
        "name": "Summary",
        "header": ["Category", "Currency", "Total", "Purchases"],
        "rows": summary_rows,
        "columns": [null, null, {"width": total_width}, {"width": width_for(std::iter::empty(), "Purchases".len())}],
        "charts": [{"type": "column", "title": "Expenses by category",
                    "categories": format!("A2:A{last}"), "values": format!("C2:C{last}"), "anchor": "F2"}],
        "print": {"fit_width": true, "landscape": true}
    });
    let amount_width = width_for(
        rows.iter()
            .map(|r| money(r.amount, &r.currency))
            .chain(grand.iter().map(|(c, t)| money(*t, c))),
        "Amount".len(),
    );
    let mut expenses = json!({
        "name": "Expenses",
        "header": ["Date", "Merchant", "Category", "Amount", "Currency", "Source"],
        "rows": expense_rows,
        "columns": [null, null, null, {"width": amount_width}],
        "print": {"fit_width": true, "landscape": true}
    });
    // A grand total only adds up one currency.
    if one_currency {
        summary["totals"] = json!({"columns": ["C", "D"]});
        expenses["totals"] = json!({"columns": ["D"]});
    }
    json!({
        "path": path.display().to_string(),
        "unique": true,
        "sheets": [expenses, summary]
    })
}

/// A folder as the person knows it: its own name, not where the sandbox mounts it.
fn folder_name(folder: &Path) -> String {
    folder
        .file_name()
        .map_or_else(|| folder.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The summary report: totals per category (a table and a chart), every
/// purchase, and what could not be read.
fn summary_spec(
    args: &RunArgs,
    period: Option<&Period>,
    rows: &[Expense],
    totals: &[(&str, String, f64, usize)],
    got: &Collected,
) -> Value {
    let span = span_words(period, rows);
    let period_line = match period {
        Some(p) => format!("Period: {} (as asked).", p.words()),
        None => format!("Period:{span} (the dates of the purchases read)."),
    };
    let mut table: Vec<Value> = totals
        .iter()
        .map(|(c, cur, t, n)| json!([c, cur, money(*t, cur), n]))
        .collect();
    let one_currency = single_currency(totals);
    if one_currency {
        table.push(json!(["Total", totals[0].1, grand_totals(totals), rows.len()]));
    }
    let mut blocks = vec![
        json!({"type": "heading", "text": format!("Total spent: {}", grand_totals(totals)), "level": 2}),
        json!({"type": "paragraph", "text": format!(
            "{period_line} {} purchases, read from {}. The totals below are the sums per category; the workbook {} computes the same totals with SUMIF formulas.",
            rows.len(), folder_name(&args.folder), args.spreadsheet.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())}),
        json!({"type": "heading", "text": "Totals by category", "level": 2}),
        json!({"type": "table", "header": ["Category", "Currency", "Total", "Purchases"], "rows": table}),
    ];
    if one_currency {
        blocks.push(
            json!({"type": "chart", "title": format!("Expenses by category ({})", totals[0].1),
            "labels": totals.iter().map(|(c, ..)| *c).collect::<Vec<_>>(),
            "values": totals.iter().map(|(_, _, t, _)| *t).collect::<Vec<_>>()}),
        );
    }
    blocks.push(json!({"type": "heading", "text": "Purchases", "level": 2}));
    blocks.push(
        json!({"type": "table", "header": ["Date", "Merchant", "Category", "Amount", "Source"],
        "rows": rows.iter().map(|r| json!([
            r.date.map(|d| d.iso()).unwrap_or_default(), r.merchant, r.category,
            money(r.amount, &r.currency), r.source])).collect::<Vec<_>>()}),
    );
    let mut notes: Vec<String> = got
        .unread
        .iter()
        .map(|(f, why)| format!("{f}: not read, {why}"))
        .collect();
    notes.extend(
        got.skipped
            .iter()
            .map(|f| format!("{f}: skipped (not a .csv, .pdf or .txt receipt)")),
    );
    notes.extend(
        got.walked
            .unreadable_names
            .iter()
            .map(|u| format!("Not read: {}", u.why())),
    );
    match got.outside_period {
        (0, 0) => {}
        (outside, undated) => notes.push(format!(
            "Left out by the period: {outside} purchase(s) dated outside it, {undated} without a date"
        )),
    }
    if got.credits_skipped > 0 {
        notes.push(format!(
            "{} bank line(s) with money coming in were left out",
            got.credits_skipped
        ));
    }
    if !notes.is_empty() {
        blocks.push(json!({"type": "heading", "text": "Notes", "level": 2}));
        blocks.push(json!({"type": "list", "items": notes}));
    }
    json!({
        "title": "Expenses summary",
        "subject": format!("Expenses from {}", folder_name(&args.folder)),
        "blocks": blocks
    })
}
