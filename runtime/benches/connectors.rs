//! Connectors: the cost of starting an MCP server in its sandbox (spawn +
//! handshake + tools/list) and of one tool call on a started server, for the
//! reference everything server (Node) and mcp-server-time (Python), both
//! installed by scripts/setup; and the everything server again as a remote
//! connector over Streamable HTTP on a loopback port (connect + handshake +
//! list, and one call, each request decided by a run's egress). Results go
//! in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --bench connectors [-- STARTS CALLS]`

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deskhand_runtime::connectors::session::Binds;
use std::sync::Arc;

use deskhand_runtime::connectors::{Access, Connector, Connectors, Scope, Settings, Transport};
use deskhand_runtime::egress;
use deskhand_types::{RunId, StepNo};

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
        tools.iter().for_each(|t| pins.pin(c, t));
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
    remote(&everything.canonicalize()?, starts, calls)
}

/// The everything server over Streamable HTTP, as a remote connector.
fn remote(everything: &Path, starts: usize, calls: usize) -> anyhow::Result<()> {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = std::process::Command::new("/usr/bin/node")
        .arg(everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?).lines();
    for line in lines.by_ref() {
        if line?.contains("listening on port") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let c = Connector {
        name: "remote".into(),
        scope: Scope::User,
        transport: Transport::Remote {
            url: format!("http://127.0.0.1:{port}/mcp"),
            headers: BTreeMap::new(),
        },
        settings: Settings {
            access: Access::ReadOnly,
            ..Settings::default()
        },
    };
    let run = egress::Run::new(RunId("bench".into()), Arc::new(|_, _| {}));
    run.set_step(StepNo(1), &[format!("127.0.0.1:{port}")], false);
    let binds = Binds {
        network: Some(run),
        ..Binds::default()
    };
    let config = tempfile::tempdir()?;
    let result = (|| -> anyhow::Result<()> {
        let all = Connectors::new(Some(config.path()), vec![c.clone()], &|_| None, None).map_err(anyhow::Error::msg)?;
        let mut samples = Vec::new();
        let mut tools = Vec::new();
        for _ in 0..starts {
            let t = Instant::now();
            tools = all.probe(&c, &binds).map_err(anyhow::Error::msg)?.0;
            samples.push(t.elapsed());
        }
        summarize("everything over HTTP: connect + list", samples);
        let mut pins =
            deskhand_runtime::connectors::pins::Pins::load(Some(config.path())).map_err(anyhow::Error::msg)?;
        tools.iter().for_each(|t| pins.pin(&c, t));
        pins.save().map_err(anyhow::Error::msg)?;
        let all = Connectors::new(Some(config.path()), vec![c.clone()], &|_| None, None).map_err(anyhow::Error::msg)?;
        let (_, first) = all.ensure(&c, binds.clone());
        first.map_err(anyhow::Error::msg)?;
        let input = serde_json::json!({"message": "hi"});
        let mut samples = Vec::new();
        for _ in 0..calls {
            let t = Instant::now();
            let (_, r) = all.call(&c, binds.clone(), "echo", &input, Duration::from_secs(30));
            r.map_err(anyhow::Error::msg)?;
            samples.push(t.elapsed());
        }
        summarize("everything over HTTP: one call (echo)", samples);
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
