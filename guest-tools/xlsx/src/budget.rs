//! What one `read` call may return: at most `max_rows` rows and
//! [`MAX_RESULT_BYTES`] of JSON, whatever the file. A sheet past either is
//! cut at a row: a call that asked for a part (`start_row`) gets the rows
//! that fit and where the next part starts; a call that asked for the whole
//! file gets a too-large error saying how to read it in parts.
//!
//! The rows are measured as the JSON they become, before that JSON is
//! built, so a 10-million-column CSV or a sheet spanning A1:XFD1048576
//! costs the reader its measurement, not the host gigabytes of JSON.

use std::path::Path;

use deskhand_guest::{ToolError, path_error};
use serde_json::Value;

use crate::MAX_MAX_ROWS;

/// The most JSON one call's rows (and headers and sheet names) make. The
/// whole result is at most this plus [`RESULT_OVERHEAD_BYTES`].
pub(crate) const MAX_RESULT_BYTES: u64 = 16 * 1024 * 1024;
/// Room for what is not rows: the format, the notes, the summary line.
pub(crate) const RESULT_OVERHEAD_BYTES: u64 = 256 * 1024;

/// How many bytes `value` takes as JSON, without building the text.
pub(crate) fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, nor can serializing a `Value`.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// `[a,b,c]` around cells of these sizes.
pub(crate) fn row_len(cells: usize, cell_bytes: u64) -> u64 {
    2 + cell_bytes + cells.saturating_sub(1) as u64
}

/// Why a sheet's reading stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// `max_rows` rows were read (only when reading a part).
    Rows,
    /// The rows read already make more JSON than one call returns.
    Bytes,
}

/// The rows and bytes one call may still return, shared by the sheets it reads.
#[derive(Clone)]
pub(crate) struct Budget<'a> {
    pub path: &'a Path,
    pub max_rows: u64,
    /// Data rows (after the header) skipped in each sheet before the first returned.
    pub skip: u64,
    /// The call asked for a part (`start_row`): cut rather than fail.
    pub paged: bool,
    pub rows: u64,
    pub bytes: u64,
    /// Where a part stopped: the sheet and the `start_row` of the next part.
    pub next: Option<(String, u64)>,
}

impl Budget<'_> {
    pub fn new(path: &Path, max_rows: u64, start_row: Option<u64>) -> Budget<'_> {
        Budget {
            path,
            max_rows,
            skip: start_row.unwrap_or(1).saturating_sub(1),
            paged: start_row.is_some(),
            rows: 0,
            bytes: 0,
            next: None,
        }
    }

    /// Whether the call can take no more rows (a part is full).
    pub fn done(&self) -> bool {
        self.next.is_some()
    }

    pub fn bytes_left(&self) -> u64 {
        MAX_RESULT_BYTES.saturating_sub(self.bytes)
    }

    /// Charges what a sheet costs besides its rows (its name, its range).
    pub fn charge(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Over `max_rows` while reading the whole file: the error that says so.
    pub fn too_many_rows(&self, sheet: &str) -> ToolError {
        ToolError::TooLarge(path_error(
            self.path,
            format!(
                "has more than {} rows (sheet {sheet:?}), over this call's cap of max_rows {}; pass a higher \
                 max_rows (up to {MAX_MAX_ROWS}), one sheet, or start_row to read it in parts of max_rows rows",
                self.max_rows - self.rows,
                self.max_rows,
            ),
        ))
    }

    /// How many of a sheet's rows this call returns: as many of `rows`
    /// (the JSON size of each, in order, the header's first if any) as fit
    /// in what is left; `cut` says the sheet went on after them. Counts
    /// what it keeps. A part that stops records where the next begins; the
    /// whole file that does not fit is a too-large error saying how to read
    /// it in parts.
    pub fn fit(&mut self, sheet: &str, header_bytes: u64, rows: &[u64], cut: Option<Cut>) -> Result<usize, ToolError> {
        let left = self.bytes_left();
        let mut used = header_bytes;
        let mut kept = 0;
        let mut over = used > left;
        for &size in rows {
            if used + size + 1 > left {
                over = true;
                break;
            }
            used += size + 1;
            kept += 1;
        }
        let over = over || cut == Some(Cut::Bytes);
        let cut_here = over || cut == Some(Cut::Rows);
        if over && !self.paged {
            return Err(self.too_large(sheet, kept as u64));
        }
        if over && kept == 0 {
            return Err(ToolError::TooLarge(path_error(
                self.path,
                format!(
                    "is too large to read: row {} of sheet {sheet:?} alone makes more than the {} MiB of JSON one \
                     call returns",
                    self.skip + 1,
                    MAX_RESULT_BYTES >> 20
                ),
            )));
        }
        if cut_here {
            self.next = Some((sheet.to_owned(), self.skip + kept as u64 + 1));
        }
        self.rows += kept as u64;
        self.bytes += used;
        Ok(kept)
    }

    fn too_large(&self, sheet: &str, fit: u64) -> ToolError {
        let how = if fit == 0 {
            "its header or first row alone is too large to return (save the columns you need as a smaller file)"
                .to_owned()
        } else {
            format!(
                "the first {} rows fit: pass sheet {sheet:?}, max_rows {} and start_row 1, then the start_row each \
                 part's result gives, to read it in parts",
                crate::count(fit),
                fit
            )
        };
        ToolError::TooLarge(path_error(
            self.path,
            format!(
                "is too large to read whole: its rows (sheet {sheet:?}) make more than the {} MiB of JSON one call \
                 returns; {how}",
                MAX_RESULT_BYTES >> 20
            ),
        ))
    }
}
