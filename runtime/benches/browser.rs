//! What the browser costs: starting headless Chromium in its sandbox with
//! the run's egress (bubblewrap, the relay, the profile, the first page
//! target), and one page read (navigate to a loopback page through the
//! egress proxy, wait for its load, read its text, links and forms).
//! Results go in BENCHMARKS.md; nothing here asserts.
//!
//! Run: `cargo bench -p deskhand-runtime --profile dev --bench browser -- 10`
//! (Chromium's own time dominates; the dev profile saves a release build).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deskhand_runtime::browser::{self, Browser};
use deskhand_runtime::egress;
use deskhand_types::{RunId, StepNo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    let Some(chromium) = Browser::find() else {
        return Err("Chromium is not installed (scripts/setup installs it)".into());
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let links: String = (1..=50).map(|i| format!("<a href=\"/p{i}\">Page {i}</a> ")).collect();
        let html = format!(
            "<!doctype html><title>Bench</title><h1>A page</h1><p>{}</p>{links}\
             <form method=post action=/f><input name=a><input name=b></form>",
            "Some text. ".repeat(500)
        );
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
            }
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    let relay = vec![env!("CARGO_BIN_EXE_deskhand-relay").to_owned()];
    let egress = egress::Run::new(RunId("bench".into()), Arc::new(|_, _| {}));
    egress.set_step(StepNo::at(0), &[format!("127.0.0.1:{port}")], false);
    let url = format!("http://127.0.0.1:{port}/");

    let mut starts = Vec::new();
    let mut reads = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let mut session = browser::start(&chromium, Some(Arc::clone(&egress)), Some(relay.clone()))?;
        starts.push(t.elapsed());
        for _ in 0..5 {
            let t = Instant::now();
            session.navigate(&url)?;
            let page = session.read()?;
            reads.push(t.elapsed());
            assert_eq!(page.links.len(), 50, "the page was read whole");
        }
        drop(session);
    }
    summarize(
        "start Chromium in its sandbox with egress (to first page target)",
        starts,
    );
    summarize("one page read (navigate through the proxy + load + read)", reads);
    Ok(())
}

fn summarize(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = samples[samples.len() / 2];
    let p90 = samples[(samples.len() * 9 / 10).min(samples.len() - 1)];
    println!(
        "{what}: median {:.1} ms, p90 {:.1} ms, min {:.1} ms ({} samples)",
        ms(median),
        ms(p90),
        ms(samples[0]),
        samples.len()
    );
}
