//! Reading one receipt's text (from a PDF or a .txt file) and one bank
//! export's typed rows into expenses, and putting each into a category.
//!
//! Nothing here guesses silently: a receipt whose total cannot be found is
//! reported as unread, with the reason, and never becomes a row.

use deskhand_guest_xlsx::csv_scan::{CsvScan, Event};
use deskhand_guest_xlsx::typed::{self, DateOrder, DateTime};
use serde_json::Value;

/// One expense, from a receipt file or a bank export line (or both, matched).
#[derive(Debug, Clone, PartialEq)]
pub struct Expense {
    pub date: Option<DateTime>,
    pub merchant: String,
    pub category: &'static str,
    pub amount: f64,
    pub currency: String,
    pub source: String,
}

/// The categories, in the order the summary lists them, with the words (or
/// phrases of whole words) that put a merchant or description into each.
/// The first match wins.
pub const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "Travel",
        &[
            "taxi",
            "uber",
            "lyft",
            "bolt",
            "train",
            "rail",
            "bahn",
            "cp",
            "comboios",
            "airline",
            "airlines",
            "air",
            "airways",
            "flight",
            "tap",
            "ryanair",
            "easyjet",
            "lufthansa",
            "metro",
            "bus",
            "parking",
            "fuel",
            "petrol",
            "toll",
        ],
    ),
    (
        "Lodging",
        &[
            "hotel",
            "hostel",
            "airbnb",
            "inn",
            "booking.com",
            "apartments",
            "guesthouse",
        ],
    ),
    (
        "Meals",
        &[
            "cafe",
            "café",
            "coffee",
            "restaurant",
            "lunch",
            "dinner",
            "bistro",
            "bakery",
            "pizza",
            "pizzeria",
            "bar",
            "catering",
            "kitchen",
            "grill",
            "sushi",
            "brasserie",
            "pastelaria",
        ],
    ),
    (
        "Office",
        &[
            "office",
            "staples",
            "paper",
            "printer",
            "stationery",
            "ink",
            "toner",
            "courier",
            "post office",
        ],
    ),
    (
        "Software",
        &[
            "software",
            "subscription",
            "github",
            "adobe",
            "google",
            "microsoft",
            "slack",
            "figma",
            "notion",
            "zoom",
        ],
    ),
];
pub const OTHER: &str = "Other";

/// The category for a merchant name or description, by whole words (so
/// "dinner" is not an inn and "business" not a bus).
pub fn categorize(text: &str) -> &'static str {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|w| w.trim_matches('.').to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    let joined = format!(" {} ", words.join(" "));
    CATEGORIES
        .iter()
        .find(|(_, keys)| keys.iter().any(|k| joined.contains(&format!(" {k} "))))
        .map_or(OTHER, |(name, _)| name)
}

/// Whether a line that says "total" gives the amount paid, not a tax, a
/// count or a saving printed beside it ("Total VAT 4.10", "Total items: 3").
fn is_amount_paid_line(lower: &str) -> bool {
    let says_total = lower.contains("total") || lower.contains("summe") || lower.contains("montant");
    let subtotal = lower.contains("subtotal") || lower.contains("sub-total") || lower.contains("sub total");
    let tax_only = ["vat", "tax", "mwst", "iva", "tva"].iter().any(|t| lower.contains(t))
        && !lower.contains("incl")
        && !lower.contains("inkl");
    let not_money = ["items", "qty", "quantity", "savings", "discount", "points"]
        .iter()
        .any(|t| lower.contains(t));
    says_total && !subtotal && !tax_only && !not_money
}

/// Why a receipt's text gave no expense.
#[derive(Debug, PartialEq)]
pub enum Unread {
    NoText,
    NoTotal,
}

impl Unread {
    pub fn reason(&self) -> &'static str {
        match self {
            Unread::NoText => "holds no readable text (a scanned image, or a damaged file); deskhand reads text PDFs",
            Unread::NoTotal => "has no line with a total amount (such as \"Total: 23.90 EUR\")",
        }
    }
}

/// A receipt from its text: the merchant is the first line, the date the
/// first date found, the amount the last line that says "total" (not
/// "subtotal"), the currency the one on that line, else anywhere in the text,
/// else `default_currency`.
pub fn receipt(text: &str, source: &str, default_currency: &str) -> Result<Expense, Unread> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let Some(first) = lines.first() else {
        return Err(Unread::NoText);
    };
    let total_line = lines
        .iter()
        .rev()
        .find(|l| is_amount_paid_line(&l.to_lowercase()) && amount_in(l).is_some())
        .ok_or(Unread::NoTotal)?;
    let (amount, line_currency) = amount_in(total_line).ok_or(Unread::NoTotal)?;
    let currency = line_currency
        .or_else(|| lines.iter().find_map(|l| currency_in(l)))
        .unwrap_or(default_currency)
        .to_owned();
    let date = lines.iter().find_map(|l| date_in(l));
    Ok(Expense {
        date,
        merchant: (*first).to_owned(),
        // The merchant says most; the rest of the receipt only when it does not.
        category: match categorize(first) {
            OTHER => categorize(&lines.join(" ")),
            found => found,
        },
        amount,
        currency,
        source: source.to_owned(),
    })
}

/// The amount on a line: the text after its label (`Total: € 1.234,50`), or
/// the last token that reads as a number.
fn amount_in(line: &str) -> Option<(f64, Option<&'static str>)> {
    let after_label = line.rsplit_once(':').map_or(line, |(_, rest)| rest);
    let candidates = std::iter::once(after_label.trim()).chain(line.split_whitespace().rev());
    for candidate in candidates {
        let candidate = candidate.trim_end_matches(['.', ';']);
        let decimal = typed::decimal_evidence(candidate).unwrap_or('.');
        if let Some((value, currency)) = typed::parse_number(candidate, decimal)
            && value.is_finite()
        {
            return Some((value.abs(), currency.or_else(|| currency_in(line))));
        }
    }
    None
}

fn currency_in(line: &str) -> Option<&'static str> {
    line.split(|c: char| c.is_whitespace() || c.is_ascii_digit() || matches!(c, ':' | ',' | '.' | '(' | ')'))
        .find_map(typed::currency_code)
}

fn date_in(line: &str) -> Option<DateTime> {
    line.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')'))
        .find_map(|word| typed::parse_local_date(word.trim_end_matches(':'), Some(DateOrder::DayFirst)))
}

/// The columns of a bank export, found by their header names.
struct BankColumns {
    date: usize,
    description: usize,
    amount: usize,
    /// The amount column holds money out as positive numbers (a Debit column).
    debit_only: bool,
    currency: Option<usize>,
}

fn bank_columns(header: &[String]) -> Option<BankColumns> {
    let lower: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    // An exact name first, in the order given; then a header that contains
    // one, unless it names a date ("Value date" is not the amount).
    let find = |names: &[&str], dates_allowed: bool| {
        names
            .iter()
            .find_map(|n| lower.iter().position(|h| h == n))
            .or_else(|| {
                names.iter().find_map(|n| {
                    lower
                        .iter()
                        .position(|h| h.contains(n) && (dates_allowed || !h.contains("date") && !h.contains("datum")))
                })
            })
    };
    let amount = find(
        &["amount", "betrag", "value", "valor", "debit", "withdrawal", "paid out"],
        false,
    )?;
    let debit_only = ["debit", "withdrawal", "paid out"]
        .iter()
        .any(|d| lower[amount].contains(d));
    Some(BankColumns {
        date: find(&["booking date", "transaction date", "date", "datum", "data"], true)?,
        description: find(
            &["description", "payee", "merchant", "details", "memo", "name", "text"],
            false,
        )?,
        amount,
        debit_only,
        currency: find(&["currency", "ccy", "währung", "moeda"], false),
    })
}

/// What a bank export gave: its expenses (debits), and how many credit lines
/// (money in) it skipped.
pub struct BankRows {
    pub expenses: Vec<Expense>,
    pub credits_skipped: usize,
    /// Lines whose amount cell is empty or not a number.
    pub no_amount: usize,
}

/// The expenses in a bank export read by the xlsx tool (typed rows under a
/// header). Debits become expenses with positive amounts; credits are
/// counted and left out. Errors name the columns it looked for.
pub fn bank_rows(file: &str, sheet: &Value, default_currency: &str) -> Result<BankRows, String> {
    let header: Vec<String> = sheet["header"]
        .as_array()
        .map(|h| h.iter().map(|c| c.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    let cols = bank_columns(&header).ok_or_else(|| {
        // A few columns, each cut short: a header of millions of fields once
        // went whole into this message and from it into the summary PDF.
        let mut shown: Vec<String> = header.iter().take(8).map(|c| c.chars().take(40).collect()).collect();
        if header.len() > shown.len() {
            shown.push(format!("... {} columns in all", header.len()));
        }
        format!(
            "{file}: found no date, description and amount columns in its header {shown:?}; \
             a bank export needs columns named like Date, Description (or Payee) and Amount"
        )
    })?;
    let mut out = BankRows {
        expenses: Vec::new(),
        credits_skipped: 0,
        no_amount: 0,
    };
    for (i, row) in sheet["rows"].as_array().into_iter().flatten().enumerate() {
        let Some(cells) = row.as_array() else { continue };
        let cell = |c: usize| cells.get(c).unwrap_or(&Value::Null);
        let (amount, currency) = match cell(cols.amount) {
            Value::Number(n) => (n.as_f64(), None),
            Value::Object(o) => (
                o.get("amount").and_then(Value::as_f64),
                o.get("currency").and_then(Value::as_str).map(str::to_owned),
            ),
            _ => (None, None),
        };
        let Some(amount) = amount else {
            out.no_amount += 1;
            continue;
        };
        // Money out: negative amounts, or any amount in a Debit column.
        let amount = if cols.debit_only { -amount.abs() } else { amount };
        if amount >= 0.0 {
            out.credits_skipped += 1;
            continue;
        }
        let description = match cell(cols.description) {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let date = cell(cols.date)
            .get("date")
            .and_then(Value::as_str)
            .and_then(typed::parse_iso);
        let currency = currency
            .or_else(|| {
                cols.currency
                    .and_then(|c| cell(c).as_str())
                    .and_then(typed::currency_code)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| default_currency.to_owned());
        out.expenses.push(Expense {
            date,
            category: categorize(&description),
            merchant: description,
            amount: -amount,
            currency,
            // The header is line 1.
            source: format!("{file} line {}", i + 2),
        });
    }
    Ok(out)
}

/// Days between two dates (absolute), for matching a receipt to its bank line.
fn days_apart(a: &DateTime, b: &DateTime) -> i64 {
    a.date()
        .until(b.date())
        .map_or(i64::MAX, |span| i64::from(span.get_days()).abs())
}

/// Merges receipts into the bank lines that paid them (same amount and
/// currency, dates at most three days apart), so that one purchase is one
/// row: the receipt's merchant and category, both sources named.
pub fn merge(bank: Vec<Expense>, receipts: Vec<Expense>) -> Vec<Expense> {
    let mut rows = bank;
    let mut matched = vec![false; rows.len()];
    for receipt in receipts {
        let hit = rows.iter().enumerate().position(|(i, line)| {
            !matched[i]
                && (line.amount - receipt.amount).abs() < 0.005
                && line.currency == receipt.currency
                && match (&line.date, &receipt.date) {
                    (Some(a), Some(b)) => days_apart(a, b) <= 3,
                    _ => false,
                }
        });
        match hit {
            Some(i) => {
                matched[i] = true;
                let line = &mut rows[i];
                line.source = format!("{} + {}", receipt.source, line.source);
                line.merchant = receipt.merchant;
                line.category = receipt.category;
            }
            None => {
                rows.push(receipt);
                matched.push(true);
            }
        }
    }
    rows.sort_by(|a, b| {
        let key = |e: &Expense| e.date.map(|d| d.iso()).unwrap_or_default();
        key(a).cmp(&key(b)).then_with(|| a.source.cmp(&b.source))
    });
    rows
}

/// How many cells a CSV spreads out to at most: its records times the most
/// fields one record has, for whichever of `,` `;` tab `|` as its delimiter
/// gives the most. Records and fields are split as the csv crate splits
/// them (an address with commas in quotes is one field; a quote mid-field,
/// as in `5" screen`, is an ordinary byte). Measured before the file is
/// read as a sheet, so a line of ten million fields is refused by name
/// instead of filling the tool's memory.
pub fn csv_cells(bytes: &[u8]) -> u64 {
    [b',', b';', b'\t', b'|']
        .into_iter()
        .map(|delimiter| {
            let mut scan = CsvScan::new(delimiter);
            let (mut records, mut widest, mut fields) = (0u64, 0u64, 1u64);
            for &b in bytes {
                match scan.step(b) {
                    Event::FieldEnd => fields += 1,
                    Event::RecordEnd => {
                        records += 1;
                        widest = widest.max(fields);
                        fields = 1;
                    }
                    Event::None => {}
                }
            }
            if scan.in_record() {
                records += 1;
                widest = widest.max(fields);
            }
            records * widest
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn receipts_read_in_the_forms_shops_print() {
        let r = receipt("Taxi Lisboa\n2026-03-02\nTotal: 18.40 EUR\n", "taxi.pdf", "EUR").unwrap();
        assert_eq!(
            (r.merchant.as_str(), r.amount, r.currency.as_str()),
            ("Taxi Lisboa", 18.4, "EUR")
        );
        assert_eq!(
            (r.category, r.date.map(|d| d.iso())),
            ("Travel", Some("2026-03-02".into()))
        );

        let r = receipt(
            "Café Central\n14.03.2026 12:41\nSubtotal 20,00\nTOTAL € 23,90\n",
            "x",
            "USD",
        )
        .unwrap();
        assert_eq!((r.amount, r.currency.as_str(), r.category), (23.9, "EUR", "Meals"));
        assert_eq!(r.date.map(|d| d.iso()), Some("2026-03-14".into()));

        let r = receipt("Hotel Avenida\n3 nights\nTotal 1.234,50 EUR\n", "x", "EUR").unwrap();
        assert_eq!((r.amount, r.category), (1234.5, "Lodging"));

        let r = receipt("Papelaria Fernandes\nTotal: 9.99\n", "x", "GBP").unwrap();
        assert_eq!((r.currency.as_str(), r.category, r.date), ("GBP", "Other", None));

        let r = receipt(
            "Brasserie du Port\nDinner for two\nTOTAL 58.00 EUR\nTotal VAT 9.67 EUR\n",
            "x",
            "EUR",
        )
        .unwrap();
        assert_eq!(
            (r.amount, r.category),
            (58.0, "Meals"),
            "dinner is not an inn, the VAT line is not the total"
        );
        let r = receipt(
            "Kiosk\nThank you for your business\nTotal: 2.00\nTotal items: 1\n",
            "x",
            "EUR",
        )
        .unwrap();
        assert_eq!((r.amount, r.category), (2.0, "Other"));
        assert_eq!(receipt("  \n", "x", "EUR"), Err(Unread::NoText));
        assert_eq!(receipt("Shop\nSubtotal 3.00\n", "x", "EUR"), Err(Unread::NoTotal));
    }

    #[test]
    fn bank_exports_give_debits_and_skip_credits() {
        let sheet = json!({"header": ["Booking date", "Payee", "Amount", "Currency"], "rows": [
            [{"date": "2026-03-02"}, "TAXI LISBOA", -18.4, "EUR"],
            [{"date": "2026-03-05"}, "Salary", 3000.0, "EUR"],
            [{"date": "2026-03-06"}, "GitHub subscription", {"amount": -4.0, "currency": "USD"}, "EUR"]
        ]});
        let rows = bank_rows("bank.csv", &sheet, "EUR").unwrap();
        assert_eq!(rows.credits_skipped, 1);
        assert_eq!(rows.expenses.len(), 2);
        assert_eq!(rows.expenses[0].source, "bank.csv line 2");
        assert_eq!(
            (rows.expenses[1].amount, rows.expenses[1].currency.as_str()),
            (4.0, "USD")
        );
        assert_eq!(rows.expenses[1].category, "Software");

        // "Value date" is a date, not the amount; a Debit column is money out.
        let sheet = json!({"header": ["Booking date", "Value date", "Description", "Debit"], "rows": [
            [{"date": "2026-03-02"}, {"date": "2026-03-03"}, "Airport parking", 12.0],
            [{"date": "2026-03-04"}, {"date": "2026-03-04"}, "Fee", null]
        ]});
        let rows = bank_rows("bank.csv", &sheet, "EUR").unwrap();
        assert_eq!((rows.expenses.len(), rows.no_amount), (1, 1));
        assert_eq!((rows.expenses[0].amount, rows.expenses[0].category), (12.0, "Travel"));

        let err = bank_rows("b.csv", &json!({"header": ["a", "b"], "rows": []}), "EUR")
            .err()
            .unwrap();
        assert!(err.contains("b.csv") && err.contains("Amount"), "{err}");
    }

    #[test]
    fn a_receipt_and_its_bank_line_become_one_row() {
        let sheet = json!({"header": ["Date", "Description", "Amount"], "rows": [
            [{"date": "2026-03-03"}, "CARD 4411 TAXI", -18.4],
            [{"date": "2026-03-10"}, "Bakery", -3.2]
        ]});
        let bank = bank_rows("bank.csv", &sheet, "EUR").unwrap().expenses;
        let taxi = receipt("Taxi Lisboa\n02.03.2026\nTotal: 18.40 EUR", "taxi.pdf", "EUR").unwrap();
        let hotel = receipt("Hotel Avenida\n2026-03-20\nTotal: 412.00 EUR", "hotel.pdf", "EUR").unwrap();
        let rows = merge(bank, vec![taxi, hotel]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].merchant, "Taxi Lisboa");
        assert_eq!(rows[0].source, "taxi.pdf + bank.csv line 2");
        assert_eq!(rows[2].source, "hotel.pdf");
    }

    #[test]
    fn csv_cells_counts_records_times_the_widest_record() {
        assert_eq!(csv_cells(b"date;amount\n01.03.2026;12,50\n"), 4);
        assert_eq!(csv_cells(b"a,b,c\n\"x, y, z\",2,3"), 6, "quoted commas are not fields");
        assert_eq!(csv_cells(b""), 0);
        assert_eq!(csv_cells(&b"a,".repeat(10_000)), 10_001);
    }

    #[test]
    fn a_stray_quote_does_not_hide_wide_lines_from_csv_cells() {
        // Mid-field, a quote is an ordinary byte: the commas after it are fields.
        let line = [b"x\"".as_slice(), &b",".repeat(100_000)].concat();
        assert_eq!(csv_cells(&line), 100_001);
        let text = [
            b"item,size\nTV 5\" screen,40\n".as_slice(),
            &b",".repeat(1000),
            b"\nlast,1\n",
        ]
        .concat();
        assert_eq!(csv_cells(&text), 4 * 1001);
    }

    #[test]
    fn days_apart_crosses_months_and_leap_days() {
        let date = |iso| typed::parse_iso(iso).unwrap();
        assert_eq!(days_apart(&date("2024-02-28"), &date("2024-03-01")), 2);
        assert_eq!(days_apart(&date("2023-03-01"), &date("2023-02-28")), 1);
        assert_eq!(days_apart(&date("2025-12-31"), &date("2026-01-01")), 1);
    }
}
