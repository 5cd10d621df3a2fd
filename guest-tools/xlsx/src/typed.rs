//! Typed cell values as JSON, and the text forms of dates and amounts that
//! `write` accepts and CSV cells are read from.
//!
//! A cell is `null`, a number, a string, a boolean, `{"date": "2024-03-01"}`
//! (with `T10:30:00` when it has a time), `{"amount": 12.5, "currency": "EUR"}`,
//! `{"time": "10:30:00"}`, `{"duration": ...}` or `{"error": "#DIV/0!"}`.

use serde_json::{Value, json};

/// A calendar date with an optional time of day, as Excel stores it (no zone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub time: Option<Time>,
}

impl DateTime {
    pub fn new(year: u16, month: u8, day: u8, time: Option<Time>) -> Option<Self> {
        let valid_date = year >= 1 && civil(year, month, day).is_some();
        let valid_time = time.is_none_or(|(h, m, s)| h < 24 && m < 60 && s < 60);
        (valid_date && valid_time).then_some(DateTime { year, month, day, time })
    }

    /// The calendar date, without the time.
    pub fn date(&self) -> jiff::civil::Date {
        civil(self.year, self.month, self.day).unwrap_or_default()
    }

    pub fn iso(&self) -> String {
        let date = format!("{:04}-{:02}-{:02}", self.year, self.month, self.day);
        match self.time {
            Some((h, m, s)) => format!("{date}T{h:02}:{m:02}:{s:02}"),
            None => date,
        }
    }

    pub fn json(&self) -> Value {
        json!({"date": self.iso()})
    }
}

/// The date, if the calendar has it (years up to 9999).
fn civil(year: u16, month: u8, day: u8) -> Option<jiff::civil::Date> {
    let year = i16::try_from(year).ok()?;
    let (month, day) = (i8::try_from(month).ok()?, i8::try_from(day).ok()?);
    jiff::civil::Date::new(year, month, day).ok()
}

fn digits<T: std::str::FromStr>(s: &str, len: std::ops::RangeInclusive<usize>) -> Option<T> {
    (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Hours, minutes, seconds.
type Time = (u8, u8, u8);

/// `HH:MM` or `HH:MM:SS` (fractions of a second are dropped).
fn parse_time(s: &str) -> Option<Time> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let s = s.split_once('.').map_or(s, |(whole, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            whole
        } else {
            s
        }
    });
    let mut parts = s.split(':');
    let h = digits(parts.next()?, 1..=2)?;
    let m = digits(parts.next()?, 2..=2)?;
    let sec = match parts.next() {
        Some(p) => digits(p, 2..=2)?,
        None => 0,
    };
    parts.next().is_none().then_some((h, m, sec))
}

/// Splits `date[T| ]time`; the time part, if any, must parse.
fn split_time(s: &str) -> Option<(&str, Option<Time>)> {
    match s.split_once(['T', ' ']) {
        Some((date, time)) => Some((date, Some(parse_time(time.trim())?))),
        None => Some((s, None)),
    }
}

/// ISO 8601 `YYYY-MM-DD`, optionally with `THH:MM[:SS]` (or a space); also
/// `YYYY/MM/DD`. A zone offset other than `Z` is not accepted.
pub fn parse_iso(s: &str) -> Option<DateTime> {
    let (date, time) = split_time(s.trim())?;
    let sep = if date.contains('-') { '-' } else { '/' };
    let mut parts = date.split(sep);
    let y = digits(parts.next()?, 4..=4)?;
    let m = digits(parts.next()?, 1..=2)?;
    let d = digits(parts.next()?, 1..=2)?;
    if parts.next().is_some() {
        return None;
    }
    DateTime::new(y, m, d, time)
}

/// The order of day and month in a `1/2/2024`-style date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    DayFirst,
    MonthFirst,
}

/// What a CSV cell might be read as, before the column's evidence decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateShape {
    /// ISO or `DD.MM.YYYY`: one reading only.
    Unambiguous,
    /// `a/b/YYYY`: which of a and b can be a month.
    Slashed {
        first_is_month: bool,
        second_is_month: bool,
    },
}

/// The parts of `a.b.YYYY`, `a/b/YYYY` or `a-b-YYYY` (with an optional time).
fn local_parts(s: &str) -> Option<(char, u8, u8, u16, Option<Time>)> {
    let (date, time) = split_time(s.trim())?;
    let sep = ['.', '/', '-'].into_iter().find(|c| date.contains(*c))?;
    let mut parts = date.split(sep);
    let a = digits(parts.next()?, 1..=2)?;
    let b = digits(parts.next()?, 1..=2)?;
    let y = digits(parts.next()?, 4..=4)?;
    parts.next().is_none().then_some((sep, a, b, y, time))
}

/// ISO forms, `DD.MM.YYYY` (the dotted European form), or `a/b/YYYY` and
/// `a-b-YYYY` read in `order` (without one they are not dates).
pub fn parse_local_date(s: &str, order: Option<DateOrder>) -> Option<DateTime> {
    if let Some(iso) = parse_iso(s) {
        return Some(iso);
    }
    let (sep, a, b, y, time) = local_parts(s)?;
    let (d, m) = match (sep, order) {
        ('.', _) | (_, Some(DateOrder::DayFirst)) => (a, b),
        (_, Some(DateOrder::MonthFirst)) => (b, a),
        (_, None) => return None,
    };
    DateTime::new(y, m, d, time)
}

/// How a text date could be read, for the column-wide decision on `a/b/YYYY`.
pub fn date_shape(s: &str) -> Option<DateShape> {
    if parse_iso(s).is_some() {
        return Some(DateShape::Unambiguous);
    }
    let (sep, a, b, y, time) = local_parts(s)?;
    if sep == '.' {
        return DateTime::new(y, b, a, time).map(|_| DateShape::Unambiguous);
    }
    let first_is_month = DateTime::new(y, a, b, time).is_some();
    let second_is_month = DateTime::new(y, b, a, time).is_some();
    (first_is_month || second_is_month).then_some(DateShape::Slashed {
        first_is_month,
        second_is_month,
    })
}

/// Currency symbols and the codes they are read as. `$` is read as USD.
const SYMBOLS: &[(&str, &str)] = &[("€", "EUR"), ("£", "GBP"), ("US$", "USD"), ("$", "USD"), ("¥", "JPY")];
/// ISO 4217 codes recognised before or after an amount.
const CODES: &[&str] = &[
    "EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "CNY", "INR",
    "VND", "BRL", "MXN", "ZAR",
];

/// The currency code for a symbol or code as written (`€` -> `EUR`).
pub fn currency_code(s: &str) -> Option<&'static str> {
    let s = s.trim();
    SYMBOLS
        .iter()
        .find(|(sym, _)| *sym == s)
        .map(|(_, code)| *code)
        .or_else(|| CODES.iter().find(|c| c.eq_ignore_ascii_case(s)).copied())
}

/// The currency an Excel number format shows: `"€"#,##0.00`,
/// `#,##0.00 [$€-407]`, `[$USD] #,##0`, `$#,##0.00`, `#,##0.00 "CHF"`.
/// `None` for formats without one, or without a digit placeholder.
pub fn format_currency(format: &str) -> Option<String> {
    let mut quoted = false;
    let mut bracket = String::new();
    let mut in_bracket = false;
    let mut literal = String::new();
    let mut found: Option<String> = None;
    let mut digits = false;
    for ch in format.chars() {
        match ch {
            '"' => {
                if quoted && found.is_none() {
                    found = currency_of(&literal);
                }
                quoted = !quoted;
                literal.clear();
            }
            _ if quoted => literal.push(ch),
            '[' => {
                in_bracket = true;
                bracket.clear();
            }
            ']' if in_bracket => {
                in_bracket = false;
                if let Some(rest) = bracket.strip_prefix('$')
                    && found.is_none()
                {
                    found = currency_of(rest.split('-').next().unwrap_or(""));
                }
            }
            _ if in_bracket => bracket.push(ch),
            // The first section is the positive numbers; the rest repeat it.
            ';' => break,
            '0' | '#' => digits = true,
            '€' | '$' | '£' | '¥' if found.is_none() => found = currency_of(&ch.to_string()),
            _ => {}
        }
    }
    found.filter(|_| digits)
}

fn currency_of(text: &str) -> Option<String> {
    let text = text.trim();
    currency_code(text)
        .map(str::to_owned)
        .or_else(|| (text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase())).then(|| text.to_owned()))
}

/// A number as written in a cell, its sign and currency taken off.
struct NumberText<'a> {
    negative: bool,
    currency: Option<&'static str>,
    body: &'a str,
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{202f}'
}

/// Takes a sign (`-`, `+`, `−`, a trailing `-`, or parentheses) and a
/// currency symbol or code (before or after) off `s`, in any order.
fn number_text(s: &str) -> Option<NumberText<'_>> {
    let mut body = s.trim_matches(is_space);
    let mut negative = false;
    let mut signed = false;
    let mut currency = None;
    for _ in 0..4 {
        let before = body;
        if let Some(inner) = body.strip_prefix('(').and_then(|b| b.strip_suffix(')')) {
            if signed {
                return None;
            }
            (negative, signed, body) = (true, true, inner);
        } else if let Some(rest) = body.strip_prefix(['-', '\u{2212}']).or_else(|| body.strip_suffix('-')) {
            if signed {
                return None;
            }
            (negative, signed, body) = (true, true, rest);
        } else if let Some(rest) = body.strip_prefix('+') {
            if signed {
                return None;
            }
            (signed, body) = (true, rest);
        } else if currency.is_none() {
            let found = SYMBOLS
                .iter()
                .map(|(sym, code)| (*sym, *code))
                .chain(CODES.iter().map(|c| (*c, *c)))
                .find_map(|(text, code)| {
                    body.strip_prefix(text)
                        .or_else(|| body.strip_suffix(text))
                        .map(|rest| (rest, code))
                });
            if let Some((rest, code)) = found {
                (currency, body) = (Some(code), rest);
            }
        }
        body = body.trim_matches(is_space);
        if body == before {
            break;
        }
    }
    let ok = !body.is_empty()
        && body.starts_with(|c: char| c.is_ascii_digit())
        && body.ends_with(|c: char| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '\'') || is_space(c));
    ok.then_some(NumberText {
        negative,
        currency,
        body,
    })
}

/// The decimal separator a cell shows unambiguously (`1.234,50` or `3,5`
/// show `,`), or `None` when it could be either (`1,234`) or has none.
pub fn decimal_evidence(s: &str) -> Option<char> {
    let body = number_text(s)?.body;
    let last = body.rfind(['.', ','])?;
    let sep = body[last..].chars().next()?;
    let other = if sep == '.' { ',' } else { '.' };
    if body.contains(other) || body.matches(sep).count() == 1 && body.len() - last - 1 != 3 {
        Some(sep)
    } else {
        None
    }
}

/// A number with thousands separators and an optional currency, read with
/// `decimal` as the decimal separator where the text alone cannot tell:
/// `1,234.50`, `1.234,50`, `€ 1 234,50`, `(12.00)`, `-5 USD`. Text that only
/// looks like a number stays text: leading zeros (`007`), more digits than a
/// double keeps (`4111111111111111`), groups not of three (`1,23,4`).
pub fn parse_number(s: &str, decimal: char) -> Option<(f64, Option<&'static str>)> {
    let NumberText {
        negative,
        currency,
        body,
    } = number_text(s)?;
    let has_dot = body.contains('.');
    let has_comma = body.contains(',');
    let decimal_sep = match (has_dot, has_comma) {
        (true, true) => body.rfind(['.', ',']).and_then(|i| body[i..].chars().next()),
        (false, false) => None,
        (dot, _) => {
            let sep = if dot { '.' } else { ',' };
            let after = body.len() - body.rfind(sep).unwrap_or(0) - 1;
            let once = body.matches(sep).count() == 1;
            if once && (sep == decimal || after != 3 || body.starts_with('0')) {
                Some(sep)
            } else {
                None
            }
        }
    };
    let (int_part, frac) = match decimal_sep {
        Some(sep) => {
            let (i, f) = body.rsplit_once(sep)?;
            (i, Some(f))
        }
        None => (body, None),
    };
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let groups: Vec<&str> = int_part.split(|c: char| !c.is_ascii_digit()).collect();
    let grouped = groups.len() > 1;
    let groups_ok = groups.iter().enumerate().all(|(i, g)| {
        if i == 0 {
            !g.is_empty() && (!grouped || g.len() <= 3)
        } else {
            g.len() == 3
        }
    });
    // The separators within the integer part must all be one kind.
    let mut seps = int_part.chars().filter(|c| !c.is_ascii_digit());
    let first_sep = seps.next();
    if !groups_ok || seps.any(|c| Some(c) != first_sep) {
        return None;
    }
    let int_digits: String = groups.concat();
    if int_digits.len() > 1 && int_digits.starts_with('0') {
        return None;
    }
    if int_digits.trim_start_matches('0').len() + frac.map_or(0, |f| f.len()) > 15 {
        return None;
    }
    let text = format!(
        "{}{int_digits}.{}",
        if negative { "-" } else { "" },
        frac.unwrap_or("0")
    );
    text.parse::<f64>().ok().map(|v| (v, currency))
}

/// The typed JSON of a number, with its currency when it had one.
pub fn number_json(value: f64, currency: Option<&str>) -> Value {
    match currency {
        Some(code) => json!({"amount": value, "currency": code}),
        None => json!(value),
    }
}
