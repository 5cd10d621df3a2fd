//! The period a run is limited to (`2026-03-01..2026-03-31`, `2026-03`,
//! `2026`, `2026-03-14`), and amounts written the way people write them.

use deskhand_guest_xlsx::typed::{self, DateTime};

/// First and last day, inclusive, as ISO dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub from: String,
    pub to: String,
}

impl Period {
    /// Reads `from..to` (either side a date, month or year), or one date, month or year.
    pub fn parse(s: &str) -> Result<Period, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "period {s:?} is not a date range such as 2026-03-01..2026-03-31, a month such as 2026-03, \
                 or a year such as 2026"
            )
        };
        let (a, b) = s.split_once("..").unwrap_or((s, s));
        let from = bound(a.trim(), false).ok_or_else(bad)?;
        let to = bound(b.trim(), true).ok_or_else(bad)?;
        if from > to {
            return Err(format!("period {s:?} ends before it begins"));
        }
        Ok(Period { from, to })
    }

    pub fn contains(&self, date: &DateTime) -> bool {
        let day = &date.iso()[..10];
        self.from.as_str() <= day && day <= self.to.as_str()
    }

    /// `2026-03-01 to 2026-03-31`, or one day.
    pub fn words(&self) -> String {
        if self.from == self.to {
            self.from.clone()
        } else {
            format!("{} to {}", self.from, self.to)
        }
    }
}

/// A date, a month (`YYYY-MM`) or a year as its first or last day.
fn bound(s: &str, last: bool) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    let num = |p: &str, len: usize| {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u16>().ok())
            .flatten()
    };
    let year = num(parts.first()?, 4)?;
    let (month, day) = match parts.as_slice() {
        [_] => (if last { 12 } else { 1 }, None),
        [_, m] => (num(m, 2)?, None),
        [_, m, d] => (num(m, 2)?, Some(num(d, 2)?)),
        _ => return None,
    };
    let month = u8::try_from(month).ok()?;
    let day = match day {
        Some(d) => u8::try_from(d).ok()?,
        None if last => (28..=31u8)
            .rev()
            .find(|d| DateTime::new(year, month, *d, None).is_some())?,
        None => 1,
    };
    let date = DateTime::new(year, month, day, None)?;
    typed::parse_iso(&date.iso()).map(|d| d.iso())
}

/// `€485.65`, `$12.00`, `1,234.50 CHF`.
pub fn money(amount: f64, currency: &str) -> String {
    let negative = amount < 0.0;
    let cents = (amount.abs() * 100.0).round() as u64;
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let number = format!("{}{grouped}.{:02}", if negative { "-" } else { "" }, cents % 100);
    match currency {
        "EUR" => format!("€{number}"),
        "USD" => format!("${number}"),
        "GBP" => format!("£{number}"),
        other => format!("{number} {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_ranges_months_years_and_days() {
        let p = |s| Period::parse(s).unwrap();
        assert_eq!(
            p("2026-03"),
            Period {
                from: "2026-03-01".into(),
                to: "2026-03-31".into()
            }
        );
        assert_eq!(p("2024-02").to, "2024-02-29");
        assert_eq!(p("2026").to, "2026-12-31");
        assert_eq!(p("2026-03-02..2026-03-08").from, "2026-03-02");
        assert_eq!(p("2026-02..2026-04").to, "2026-04-30");
        assert_eq!(p("2026-03-14").words(), "2026-03-14");
        assert!(Period::parse("March").is_err());
        assert!(Period::parse("2026-04..2026-03").unwrap_err().contains("ends before"));
        assert!(Period::parse("2026-13").is_err());
        let march = p("2026-03");
        assert!(march.contains(&typed::parse_iso("2026-03-31T23:00").unwrap()));
        assert!(!march.contains(&typed::parse_iso("2026-04-01").unwrap()));
    }

    #[test]
    fn money_is_written_with_its_symbol_and_groups() {
        assert_eq!(money(485.65, "EUR"), "€485.65");
        assert_eq!(money(1234.5, "USD"), "$1,234.50");
        assert_eq!(money(1_000_000.0, "CHF"), "1,000,000.00 CHF");
        assert_eq!(money(-3.0, "GBP"), "£-3.00");
    }
}
