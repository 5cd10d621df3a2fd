//! Host tests of the runtime against the real sandbox: the bundled `fs`
//! tool and the hostile test guest, with no mocks.

#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod agent;
mod browser;
mod cache;
mod changes;
mod common;
mod component_skills;
mod connectors;
mod docx_edit;
mod edit_skills;
mod egress;
mod envelope;
mod escapes;
mod first_hour;
mod hostile;
mod ledger;
mod limits;
mod model_deadline;
mod oauth;
mod office;
mod office_text;
mod offline_skills;
mod openai_runs;
mod pdf;
mod pptx_edit;
mod python;
mod readers;
mod receipts;
mod schedule;
mod shell;
mod shell_workdir;
mod skill_creator;
mod skills;
mod telemetry;
mod workspace;
mod xlsx;
mod xlsx_edit;

/// The loopback model server, shared with the providers' and the binary's tests.
use deskhand_replay as replay;

/// A complete Anthropic SSE stream that answers `text` (for one-shot model calls).
pub fn providers_sse_text(text: &str) -> String {
    let t = serde_json::to_string(text).unwrap();
    format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_mem\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":10,\"output_tokens\":1}}}}}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{t}}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":12}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    )
}
