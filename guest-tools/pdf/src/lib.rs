//! The `pdf` tool: reads PDFs (text per page with lines kept apart, page
//! count, version, metadata, page sizes), merges and splits them, and builds
//! report PDFs from the shared [`Document`](deskhand_guest::document::Document)
//! model with embedded, subset TrueType fonts, so that é, ß, ₫ and 中文
//! render and can be extracted again.
//!
//! # As a component
//! With the default `component` feature the crate exports the
//! `deskhand:tool` world: operations `info`, `text`, `merge`, `split`,
//! `report`, and for the offline skills `merge_folder` (a folder's PDFs in
//! name order, [`pdfs_in`]) and `to_text` (a PDF's text as a .txt file)
//! (schemas in `tool.rs`), and `sanitize`, which only the host
//! calls (it is not described to models). The host preopens the font folders it
//! found at known paths read-only at [`FONTS_LATIN`] and [`FONTS_CJK`], for
//! this tool only.
//!
//! # As a library
//! Another guest (the `receipts` component) depends on it with
//! `default-features = false` and calls these; only [`Fonts::from_dirs`]
//! touches files:
//!
//! - [`open`]`(bytes, password) -> Result<lopdf::Document, PdfError>`: the
//!   size cap ([`MAX_PDF_BYTES`]) and clear errors for not-a-PDF, damaged,
//!   encrypted-without-password and wrong-password files.
//! - [`page_texts`]`(bytes, password) -> Result<Vec<String>, PdfError>`: one
//!   `String` per page, lines separated by `\n` (an unreadable page fails
//!   the call, naming the page). [`page_texts_of`]`(&doc, &[pages])` gives
//!   each chosen page its own `Result<String, String>`;
//!   [`PageTexts`]`::new(&doc).page(n)` reads one page at a time, for a
//!   caller that may stop early.
//! - [`info`]`(&doc) -> `[`PdfInfo`]: page count, version, metadata,
//!   encryption, page sizes.
//! - [`merge`]`(Vec<lopdf::Document>)` and [`split`]`(&doc, &[pages])`:
//!   new PDF bytes; [`parse_ranges`]`("1-3,5", total)` reads a page list.
//! - [`sanitize`]`(bytes) -> Result<(Vec<u8>, `[`Removed`]`), PdfError>`: an
//!   inert copy for a viewer that runs scripts (no JavaScript, no actions but
//!   in-document links, no embedded files, no encryption).
//! - [`render_report`]`(&Document, &Fonts, |path| -> Result<Vec<u8>, PdfError>)`:
//!   a [`Document`](deskhand_guest::document::Document) as PDF bytes; the
//!   closure returns each image block's bytes. [`Fonts::new`] takes font file
//!   contents; [`Fonts::from_dirs`]`(latin, Some(cjk))` finds the known files
//!   in folders (in the sandbox: [`FONTS_LATIN`], [`FONTS_CJK`], which the host
//!   mounts only for the tools its `Toolbox::extra_mounts` names).
//!
//! Every failure is a [`PdfError`]; [`PdfError::to_tool_error`] turns it into
//! the contract's typed error naming the file.

mod cmap;
mod decrypt;
mod edit;
mod folder;
mod fonts;
mod glyphs;
mod image;
mod lexer;
mod load;
mod report;
mod sanitize;
mod text;
mod textfont;
#[cfg(feature = "component")]
mod tool;

use deskhand_guest::{ToolError, path_error};

pub use edit::{PageRange, merge, parse_ranges, split};
pub use folder::{natural_cmp, pdfs_in};
pub use fonts::{CJK_FILES, FONTS_CJK, FONTS_LATIN, Fonts, LATIN_BOLD_FILES, LATIN_REGULAR_FILES};
pub use load::{MAX_PDF_BYTES, PdfInfo, info, open};
pub use report::render_report;
pub use sanitize::{Removed, sanitize};
pub use text::{PageTexts, page_texts, page_texts_of};

/// What can go wrong reading, editing or writing a PDF. Messages say what
/// to do; [`PdfError::to_tool_error`] adds the file's name.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("is not a PDF (it does not start with %PDF-); check that the file is a PDF and not another format renamed")]
    NotPdf,
    #[error("is damaged or truncated and cannot be read ({0}); try a fresh copy of the file")]
    Malformed(String),
    #[error("is encrypted (password-protected); pass its password as the \"password\" argument to open it")]
    Encrypted,
    #[error("is encrypted and the password given does not open it; check the \"password\" argument")]
    WrongPassword,
    #[error("uses an encryption this tool cannot open ({0}); save a copy without a password and read that")]
    UnsupportedEncryption(String),
    #[error(
        "is {:.1} MiB; the pdf tool reads files up to {} MiB",
        *.size as f64 / 1_048_576.0,
        .limit / 1_048_576
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("has no pages")]
    NoPages,
    #[error("has {total} page(s); page {page} does not exist")]
    NoSuchPage { page: u32, total: u32 },
    #[error("{0}")]
    BadRange(String),
    #[error(
        "no installed font has a glyph for {ch:?} (U+{code:04X}); install a font that covers it \
         (scripts/setup installs fonts-dejavu-core and fonts-droid-fallback) or leave the character out"
    )]
    MissingGlyph { ch: char, code: u32 },
    #[error("{0}")]
    Fonts(String),
    #[error("image {path}: {message}")]
    Image { path: String, message: String },
    #[error("cannot write the PDF: {0}")]
    Write(String),
    /// No inert copy could be made (see [`sanitize`]).
    #[error("{0}")]
    NotInert(String),
}

impl PdfError {
    /// The contract's error for this failure on the file at `path`.
    pub fn to_tool_error(&self, path: &std::path::Path) -> ToolError {
        let message = self.to_string();
        match self {
            PdfError::TooLarge { .. } => ToolError::TooLarge(path_error(path, message)),
            PdfError::BadRange(_) | PdfError::NoSuchPage { .. } => {
                ToolError::InvalidArgs(format!("{}: {message}", path.display()))
            }
            PdfError::MissingGlyph { .. } | PdfError::Fonts(_) | PdfError::Image { .. } => {
                ToolError::InvalidArgs(message)
            }
            PdfError::Write(_) => ToolError::Io(path_error(path, message)),
            _ => ToolError::BadContent(path_error(path, message)),
        }
    }
}

/// lopdf's error as ours: decryption failures keep their meaning.
pub(crate) fn from_lopdf(e: lopdf::Error) -> PdfError {
    use lopdf::Error as E;
    match e {
        E::InvalidPassword => PdfError::WrongPassword,
        E::UnsupportedSecurityHandler(h) => {
            PdfError::UnsupportedEncryption(format!("security handler {}", String::from_utf8_lossy(&h)))
        }
        E::Decryption(d) => PdfError::UnsupportedEncryption(d.to_string()),
        E::Parse(lopdf::ParseError::InvalidFileHeader) => PdfError::NotPdf,
        other => PdfError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
