//! Connectors: the cost of starting an MCP server in its sandbox (spawn +
//! handshake + tools/list) and of one tool call on a started server, for the
//! reference everything server (Node) and mcp-server-time (Python), both
//! installed by scripts/setup. Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench connectors [-- STARTS CALLS]`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deskhand_runtime::connectors::session::Binds;
use deskhand_runtime::connectors::{Access, Connector, Connectors, Scope, Settings, Transport};

fn summarize(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<44} n={:<5} median {:>8.2} ms   p99 {:>8.2} ms   min {:>8.2} ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(0.0)
    );
}

fn connector(name: &str, command: &Path, args: &[String]) -> Connector {
    Connector {
        name: name.into(),
        scope: Scope::User,
        transport: Transport::Stdio {
            command: command.display().to_string(),
            args: args.to_vec(),
            env: BTreeMap::new(),
        },
        settings: Settings {
            access: Access::ReadOnly,
            ..Settings::default()
        },
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let starts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let everything = repo.join("tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let venv = home.join(".cache/deskhand/mcp-python-2026.10.19");
    let servers = [
        (
            connector(
                "everything",
                Path::new("/usr/bin/node"),
                &[everything.canonicalize()?.display().to_string(), "stdio".into()],
            ),
            "echo",
            serde_json::json!({"message": "hi"}),
        ),
        (
            connector(
                "time",
                &venv.join("bin/mcp-server-time"),
                &["--local-timezone".into(), "UTC".into()],
            ),
            "get_current_time",
            serde_json::json!({"timezone": "UTC"}),
        ),
    ];
    let config = tempfile::tempdir()?;
    for (c, tool, input) in &servers {
        let all = Connectors::new(Some(config.path()), vec![c.clone()], &|_| None, None).map_err(anyhow::Error::msg)?;
        let mut samples = Vec::new();
        let mut tools = Vec::new();
        for _ in 0..starts {
            let t = Instant::now();
            tools = all.probe(c, &Binds::default()).map_err(anyhow::Error::msg)?.0;
            samples.push(t.elapsed());
        }
        summarize(&format!("{}: start in sandbox + list", c.name), samples);
        let mut pins =
            deskhand_runtime::connectors::pins::Pins::load(Some(config.path())).map_err(anyhow::Error::msg)?;
        tools.iter().for_each(|t| pins.pin(&c.key(), t));
        pins.save().map_err(anyhow::Error::msg)?;
        let all = Connectors::new(Some(config.path()), vec![c.clone()], &|_| None, None).map_err(anyhow::Error::msg)?;
        let (_, first) = all.ensure(c, Binds::default());
        first.map_err(anyhow::Error::msg)?;
        let mut samples = Vec::new();
        for _ in 0..calls {
            let t = Instant::now();
            let (_, r) = all.call(c, Binds::default(), tool, input, Duration::from_secs(30));
            r.map_err(anyhow::Error::msg)?;
            samples.push(t.elapsed());
        }
        summarize(&format!("{}: one call ({tool})", c.name), samples);
    }
    Ok(())
}
