//! Where a CSV's fields and records end, byte by byte, as the csv crate
//! (csv-core, with its defaults) finds them. Scans that bound a file before
//! the csv crate reads it must split it exactly as the crate will: a quote
//! opens a quoted field only at the start of a field (`5" screen` is an
//! ordinary field), inside one `""` is a quote and a lone `"` closes it, and
//! `\r`, `\n` or both end a record, with empty lines skipped.

#[derive(Clone, Copy, PartialEq)]
enum State {
    StartRecord,
    StartField,
    InField,
    Quoted,
    /// A `"` inside a quoted field: an escaped quote if another follows,
    /// else the field's closing quote.
    QuoteInQuoted,
}

/// What one byte did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// Nothing ended here.
    None,
    /// A delimiter ended a field; the record goes on.
    FieldEnd,
    /// A line break ended the record.
    RecordEnd,
}

/// The scan of one CSV text for one delimiter.
pub struct CsvScan {
    delimiter: u8,
    state: State,
}

impl CsvScan {
    pub fn new(delimiter: u8) -> Self {
        CsvScan {
            delimiter,
            state: State::StartRecord,
        }
    }

    /// Whether a record has begun and not yet ended: at the end of the
    /// text, it ends there.
    pub fn in_record(&self) -> bool {
        self.state != State::StartRecord
    }

    pub fn step(&mut self, b: u8) -> Event {
        let line_break = b == b'\n' || b == b'\r';
        let (state, event) = match self.state {
            State::StartRecord if line_break => (State::StartRecord, Event::None),
            State::StartRecord | State::StartField if b == b'"' => (State::Quoted, Event::None),
            State::Quoted if b == b'"' => (State::QuoteInQuoted, Event::None),
            State::Quoted => (State::Quoted, Event::None),
            State::QuoteInQuoted if b == b'"' => (State::Quoted, Event::None),
            _ if b == self.delimiter => (State::StartField, Event::FieldEnd),
            _ if line_break => (State::StartRecord, Event::RecordEnd),
            _ => (State::InField, Event::None),
        };
        self.state = state;
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields per record the scan finds.
    fn widths(text: &[u8], delimiter: u8) -> Vec<usize> {
        let mut scan = CsvScan::new(delimiter);
        let (mut widths, mut fields) = (Vec::new(), 1);
        for &b in text {
            match scan.step(b) {
                Event::FieldEnd => fields += 1,
                Event::RecordEnd => widths.push(std::mem::replace(&mut fields, 1)),
                Event::None => {}
            }
        }
        if scan.in_record() {
            widths.push(fields);
        }
        widths
    }

    /// The fields per record the csv crate reads.
    fn crate_widths(text: &[u8], delimiter: u8) -> Vec<usize> {
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(text)
            .byte_records()
            .map(|r| r.unwrap().len())
            .collect()
    }

    #[test]
    fn fields_and_records_end_where_the_csv_crate_ends_them() {
        let cases: &[&[u8]] = &[
            b"a,b,c\n1,2,3\n",
            b"x\",,,,\n,\n",
            b"TV 5\" screen,1\na,b,c,d\n",
            b"\"a, b\",c\n\"multi\nline\",d,e\r\n",
            b"\"say \"\"hi\"\"\",2\n\"closed\"then,more,3",
            b"\r\n\n\na,b\r\rc\n\n",
            b"\"unclosed,a\nb,c",
            b"a;\"b;c\";d\n",
        ];
        for &text in cases {
            for delimiter in [b',', b';'] {
                assert_eq!(
                    widths(text, delimiter),
                    crate_widths(text, delimiter),
                    "{:?} split at {:?}",
                    String::from_utf8_lossy(text),
                    delimiter as char
                );
            }
        }
    }
}
