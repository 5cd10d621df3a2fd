//! The CSV the tools write: RFC 4180, with CRLF line ends.

/// One field, quoted when it needs to be (it holds a comma, a quote or a
/// line break), with its quotes doubled.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
