//! The structured content that the document writers share: the `pdf` tool's
//! report, the `docx` writer and the `pptx` writer's slides all take the
//! same blocks, so a model (or a skill) describes a report once and picks
//! the format.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::ToolError;

/// The most blocks one document may hold, and the most rows one table may
/// hold: generous for reports, small enough that a runaway model cannot make
/// a writer build something no one can open.
pub const MAX_BLOCKS: usize = 10_000;
pub const MAX_TABLE_ROWS: usize = 100_000;
pub const MAX_TABLE_COLUMNS: usize = 64;

/// A document: an optional title (also its metadata title) and its blocks in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub blocks: Vec<Block>,
}

/// One piece of content. Tagged by `type`, e.g. `{"type": "heading", "text": "Totals", "level": 2}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    Heading {
        text: String,
        #[serde(default = "first_level")]
        level: u8,
    },
    Paragraph {
        text: String,
    },
    /// A bullet list, or a numbered one.
    List {
        items: Vec<String>,
        #[serde(default)]
        numbered: bool,
    },
    /// A table with a header row; cells are text, numbers, booleans or null (empty).
    Table {
        header: Vec<String>,
        rows: Vec<Vec<Value>>,
        #[serde(default)]
        caption: Option<String>,
    },
    /// A PNG or JPEG file from a granted folder or output/.
    Image {
        path: String,
        #[serde(default)]
        caption: Option<String>,
        /// The width on the page, in millimetres; the height keeps the aspect ratio.
        #[serde(default)]
        width_mm: Option<f32>,
    },
    /// A bar chart drawn by the writer from labels and values.
    Chart {
        #[serde(default)]
        title: Option<String>,
        labels: Vec<String>,
        values: Vec<f64>,
    },
    PageBreak,
}

fn first_level() -> u8 {
    1
}

impl Document {
    /// Checks what serde cannot: heading levels, table shapes, chart series, sizes.
    pub fn validate(&self) -> Result<(), ToolError> {
        validate_blocks(&self.blocks)
    }
}

/// Checks a run of blocks (a document's, or one slide's).
pub fn validate_blocks(blocks: &[Block]) -> Result<(), ToolError> {
    let bad = |i: usize, what: String| ToolError::InvalidArgs(format!("blocks[{i}]: {what}"));
    if blocks.len() > MAX_BLOCKS {
        return Err(ToolError::InvalidArgs(format!(
            "{} blocks; at most {MAX_BLOCKS} fit in one document",
            blocks.len()
        )));
    }
    for (i, block) in blocks.iter().enumerate() {
        match block {
            Block::Heading { level, .. } if !(1..=3).contains(level) => {
                return Err(bad(i, format!("heading level {level}; use 1, 2 or 3")));
            }
            Block::Table { header, rows, .. } => {
                if header.is_empty() || header.len() > MAX_TABLE_COLUMNS {
                    return Err(bad(i, format!("a table needs 1 to {MAX_TABLE_COLUMNS} header columns")));
                }
                if rows.len() > MAX_TABLE_ROWS {
                    return Err(bad(i, format!("{} rows; at most {MAX_TABLE_ROWS}", rows.len())));
                }
                for (r, row) in rows.iter().enumerate() {
                    if row.len() != header.len() {
                        return Err(bad(
                            i,
                            format!("row {r} has {} cells but the header has {}", row.len(), header.len()),
                        ));
                    }
                    if let Some(cell) = row.iter().find(|c| c.is_array() || c.is_object()) {
                        return Err(bad(
                            i,
                            format!("row {r} holds {cell}; a cell is text, a number, a boolean or null"),
                        ));
                    }
                }
            }
            Block::Chart { labels, values, .. } => {
                if labels.is_empty() || labels.len() != values.len() {
                    return Err(bad(
                        i,
                        format!(
                            "a chart needs as many values as labels (at least one); got {} labels and {} values",
                            labels.len(),
                            values.len()
                        ),
                    ));
                }
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(bad(i, "chart values must be finite numbers".into()));
                }
            }
            Block::Image { width_mm: Some(w), .. } if !(1.0..=1000.0).contains(w) => {
                return Err(bad(i, format!("image width {w} mm; use 1 to 1000")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A table cell as text: numbers as JSON writes them, null as empty.
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON Schema of one block, for the writers' argument schemas.
pub fn block_schema() -> Value {
    let cell = json!({"type": ["string", "number", "boolean", "null"]});
    json!({"oneOf": [
        {"type": "object", "required": ["type", "text"], "additionalProperties": false, "properties": {
            "type": {"const": "heading"}, "text": {"type": "string"},
            "level": {"type": "integer", "minimum": 1, "maximum": 3, "default": 1}}},
        {"type": "object", "required": ["type", "text"], "additionalProperties": false, "properties": {
            "type": {"const": "paragraph"}, "text": {"type": "string"}}},
        {"type": "object", "required": ["type", "items"], "additionalProperties": false, "properties": {
            "type": {"const": "list"}, "items": {"type": "array", "items": {"type": "string"}},
            "numbered": {"type": "boolean", "default": false}}},
        {"type": "object", "required": ["type", "header", "rows"], "additionalProperties": false, "properties": {
            "type": {"const": "table"}, "header": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array", "items": cell}},
            "caption": {"type": "string"}}},
        {"type": "object", "required": ["type", "path"], "additionalProperties": false, "properties": {
            "type": {"const": "image"}, "path": {"type": "string", "description": "a PNG or JPEG file"},
            "caption": {"type": "string"}, "width_mm": {"type": "number"}}},
        {"type": "object", "required": ["type", "labels", "values"], "additionalProperties": false, "properties": {
            "type": {"const": "chart"}, "title": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "values": {"type": "array", "items": {"type": "number"}}}},
        {"type": "object", "required": ["type"], "additionalProperties": false, "properties": {
            "type": {"const": "page_break"}}}
    ]})
}

/// The JSON Schema of a whole document (title, author, subject, blocks).
pub fn document_properties() -> Value {
    json!({
        "title": {"type": "string"},
        "author": {"type": "string"},
        "subject": {"type": "string"},
        "blocks": {"type": "array", "items": block_schema()}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Result<Document, String> {
        serde_json::from_value::<Document>(v).map_err(|e| e.to_string())
    }

    #[test]
    fn blocks_parse_by_type() {
        let d = doc(json!({"title": "Expenses", "blocks": [
            {"type": "heading", "text": "Summary"},
            {"type": "paragraph", "text": "Café, Straße, 100 ₫, 中文"},
            {"type": "list", "items": ["a", "b"], "numbered": true},
            {"type": "table", "header": ["Category", "Total"], "rows": [["Food", 12.5], ["Travel", null]]},
            {"type": "chart", "labels": ["Food"], "values": [12.5]},
            {"type": "page_break"}
        ]}))
        .unwrap();
        assert_eq!(d.blocks.len(), 6);
        assert!(matches!(d.blocks[0], Block::Heading { level: 1, .. }));
        d.validate().unwrap();
    }

    #[test]
    fn bad_shapes_name_the_block() {
        let d = doc(json!({"blocks": [{"type": "paragraph", "text": "x"},
            {"type": "table", "header": ["a", "b"], "rows": [["only one"]]}]}))
        .unwrap();
        let err = format!("{:?}", d.validate().unwrap_err());
        assert!(err.contains("blocks[1]") && err.contains("row 0 has 1 cells"), "{err}");
        let d = doc(json!({"blocks": [{"type": "heading", "text": "x", "level": 7}]})).unwrap();
        assert!(format!("{:?}", d.validate().unwrap_err()).contains("heading level 7"));
        assert!(doc(json!({"blocks": [{"type": "poem", "text": "x"}]})).is_err());
    }

    #[test]
    fn cells_read_as_text() {
        assert_eq!(cell_text(&json!(null)), "");
        assert_eq!(cell_text(&json!("x")), "x");
        assert_eq!(cell_text(&json!(12.5)), "12.5");
    }
}
