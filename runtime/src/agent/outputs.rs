//! Tool output as the model sees it: framed as untrusted, cut to a budget,
//! and kept whole for `read_tool_output` to page through.

use super::*;

impl Agent<'_> {
    /// Frames a tool's output as untrusted and cuts it to the model's share,
    /// keeping the full text for `read_tool_output`.
    pub(super) fn shown_output(&self, run: &RunId, id: &CallId, source: &str, text: &str) -> String {
        let max = self.settings.max_tool_output;
        if text.len() <= max {
            return context::untrusted(source, text);
        }
        let stored = self.store_output(run, id, text);
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let pointer = match stored {
            Ok(()) => format!(
                "[output truncated: showing {cut} of {} bytes. Call read_tool_output with {{\"call\": \"{id}\", \"offset\": {cut}}} for more]",
                text.len()
            ),
            Err(e) => format!(
                "[output truncated at {cut} of {} bytes; the rest could not be kept: {e}]",
                text.len()
            ),
        };
        format!("{}\n{pointer}", context::untrusted(source, &text[..cut]))
    }

    pub(super) fn output_path(&self, run: &RunId, id: &str) -> PathBuf {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.workspace
            .state_dir()
            .join("outputs")
            .join(&run.0)
            .join(format!("{safe}.txt"))
    }

    pub(super) fn store_output(&self, run: &RunId, id: &CallId, text: &str) -> std::io::Result<()> {
        let path = self.output_path(run, &id.0);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text)
    }

    pub(super) fn page_output(
        &self,
        st: &mut RunState,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let page: meta::OutputPage = serde_json::from_value(input.clone())
            .map_err(|e| format!("read_tool_output arguments are invalid: {e}"))?;
        let text = std::fs::read_to_string(self.output_path(&st.run, &page.call))
            .map_err(|_| format!("no stored output for call {:?} in this run", page.call))?;
        if page.offset >= text.len() {
            return Err(format!("offset {} is past the end ({} bytes)", page.offset, text.len()));
        }
        let mut start = page.offset;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + self.settings.max_tool_output).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let more = if end < text.len() {
            format!("\n[more from offset {end}]")
        } else {
            "\n[end of output]".into()
        };
        Ok(format!(
            "{}{more}",
            context::untrusted("stored tool output", &text[start..end])
        ))
    }
}
