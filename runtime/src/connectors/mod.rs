//! Connectors: MCP servers that reach where the person's work lives (mail,
//! calendars, chat, documents), as tools of the agent's registry.
//!
//! - [`config`]: the lists (the person's and a workspace's), in the
//!   `mcpServers` shape other MCP clients use, deskhand's settings beside it.
//! - [`mcp`]: the MCP client, the only user of rmcp.
//! - [`pins`]: each tool's approved definition; a changed or new tool is
//!   quarantined until the person approves it from a diff.
//! - [`oauth`]: signing in to a remote connector (OAuth with PKCE), tokens
//!   kept in the person's config folder and renewed when they end.
//! - [`allow`]: "always allow this tool", remembered and revocable.
//! - [`session`]: one run's started servers, each in its sandbox
//!   ([`crate::confine`]), started on first use and reused, ended with the run.
//!
//! The model sees a connector tool as `mcp__<connector>__<tool>` with the
//! approved definition; the agent's handler (`agent/connector_calls.rs`)
//! checks it against the step (a write is an action the step must declare)
//! and the approval policy ([`crate::gate::approve_action`]).

pub mod allow;
pub mod config;
pub mod mcp;
pub mod oauth;
pub mod pins;
pub mod session;

use serde::{Deserialize, Serialize};

pub use config::{Access, Connector, Scope, Settings, Transport};
pub use session::Connectors;

/// Takes `name` out of `list` and forgets its approved tools, "always
/// allow" answers and sign-in (added again, it is approved again). The one removal for
/// the terminal, the page and plugins. `Ok(None)`: the list has no such connector.
pub fn remove(
    list: &mut config::List,
    name: &str,
    config_dir: Option<&std::path::Path>,
) -> Result<Option<Connector>, String> {
    let Some(found) = list.get(name)? else {
        return Ok(None);
    };
    let mut pins = pins::Pins::load(config_dir)?;
    let mut allowed = allow::Allowed::load(config_dir)?;
    list.remove(name);
    list.save()?;
    pins.forget(&found.key());
    allowed.forget(&found.key());
    if let Some(dir) = config_dir {
        pins.save()?;
        allowed.save()?;
        oauth::SignIns::update(dir, &found.key(), None)?;
    }
    Ok(Some(found))
}

/// What the model sees before a connector's tool name.
pub const PREFIX: &str = "mcp__";
/// Between the connector's name and its tool's.
pub const SEP: &str = "__";

/// A tool's annotations: hints the server gives, which deskhand uses only to
/// ask more (a destructive tool always asks), never to ask less than the
/// person chose, except that a tool annotated read-only runs as a read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    #[serde(rename = "readOnlyHint", skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(rename = "destructiveHint", skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    #[serde(rename = "idempotentHint", skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    #[serde(rename = "openWorldHint", skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

impl Annotations {
    /// Words for a person: "read-only", "destructive", ...
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        match self.read_only {
            Some(true) => out.push("read-only"),
            _ => out.push("writes"),
        }
        if self.read_only != Some(true) && self.destructive == Some(true) {
            out.push("destructive");
        }
        if self.open_world == Some(true) {
            out.push("open world");
        }
        out.join(", ")
    }
}

/// One tool of a connector, as deskhand sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorTool {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub input_schema: serde_json::Value,
    pub output_schema: Option<serde_json::Value>,
    pub annotations: Annotations,
}

impl ConnectorTool {
    /// Rebuilds a tool from its pinned definition ([`pins::definition`]).
    pub fn from_definition(v: &serde_json::Value) -> Option<ConnectorTool> {
        Some(ConnectorTool {
            name: v.get("name")?.as_str()?.to_owned(),
            title: v.get("title").and_then(|t| t.as_str()).map(str::to_owned),
            description: v
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned(),
            input_schema: v.get("inputSchema").cloned().unwrap_or(serde_json::Value::Null),
            output_schema: v.get("outputSchema").filter(|o| !o.is_null()).cloned(),
            annotations: v
                .get("annotations")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or_default(),
        })
    }
}

/// The name the model calls `tool` of `connector` by, if it fits the
/// model APIs' rule (`^[a-zA-Z0-9_-]{1,64}$`). A tool whose name does not fit
/// (too long, or with other characters) is not offered to the model; `deskhand
/// connectors show` says so.
pub fn model_name(connector: &str, tool: &str) -> Option<String> {
    let name = format!("{PREFIX}{connector}{SEP}{tool}");
    let fits = name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    fits.then_some(name)
}

/// The connector and tool a model-facing name means, if it is a connector tool's.
pub fn parse_model_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(PREFIX)?.split_once(SEP)
}

/// Whether calling `tool` of `connector` writes (an action the step must declare).
pub fn is_write(connector: &Connector, tool: &ConnectorTool) -> bool {
    connector.settings.access == Access::ReadWrite && tool.annotations.read_only != Some(true)
}

/// Whether each call of `tool` asks the person, whatever the mode or "always allow".
pub fn is_destructive(connector: &Connector, tool: &ConnectorTool) -> bool {
    is_write(connector, tool) && tool.annotations.destructive == Some(true)
}

/// The action a step declares to use `tool` of `connector`: `connector.tool`.
pub fn action(connector: &str, tool: &str) -> String {
    format!("{connector}.{tool}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_fit_the_model_apis_or_are_not_offered() {
        assert_eq!(
            model_name("mail", "send_message").as_deref(),
            Some("mcp__mail__send_message")
        );
        assert_eq!(
            parse_model_name("mcp__mail__send_message"),
            Some(("mail", "send_message"))
        );
        assert_eq!(parse_model_name("mcp__mail__a__b"), Some(("mail", "a__b")));
        assert_eq!(model_name("mail", "send.message"), None);
        assert_eq!(model_name("mail", &"x".repeat(60)), None);
        assert_eq!(parse_model_name("fs__list"), None);
    }
}
