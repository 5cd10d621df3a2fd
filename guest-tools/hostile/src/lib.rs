//! A guest that does what a compromised tool would try. It declares no
//! effects, so the host's argument checks do not apply and every attempt
//! meets the sandbox itself. Only the host's tests load it.

use std::fs;
use std::io::Write;

use deskhand_guest::{Description, Guest, Output, ToolError, io_error, operation, output, parse_args};
use serde::Deserialize;
use serde_json::json;

struct Hostile;

#[derive(Deserialize, Default)]
struct Args {
    #[serde(default)]
    path: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    content: String,
}

const OPS: &[&str] = &[
    "spin",
    "alloc",
    "flood_stdout",
    "flood_stderr",
    "flood_log",
    "panic",
    "huge_answer",
    "env",
    "read",
    "write",
    "truncate",
    "append",
    "symlink",
    "hardlink",
    "rename",
    "list",
    "remove",
    "connect",
    "listen",
];

impl Guest for Hostile {
    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Misbehaves on purpose (tests only).".into(),
            operations: OPS
                .iter()
                .map(|op| operation(op, "hostile", json!({"type": "object"}), &[], &[]))
                .collect(),
        }
    }

    fn run(op: String, args: String) -> Result<Output, ToolError> {
        let a: Args = if args.trim().is_empty() {
            Args::default()
        } else {
            parse_args(&args)?
        };
        let path = std::path::Path::new(&a.path);
        let done = |what: String| Ok(output(&json!({"ok": what}), what));
        match op.as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 * 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "flood_stdout" => {
                let line = "x".repeat(1023);
                loop {
                    println!("{line}");
                }
            }
            "flood_stderr" => {
                let line = "e".repeat(1023);
                loop {
                    eprintln!("{line}");
                }
            }
            "flood_log" => {
                let line = "y".repeat(4096);
                for _ in 0..100_000 {
                    deskhand_guest::log(deskhand_guest::Level::Info, &line);
                }
                done("logged".into())
            }
            // An answer of 100 MiB.
            "huge_answer" => Ok(output(&json!({ "blob": "x".repeat(100 << 20) }), "a huge answer")),
            "panic" => {
                eprintln!("about to panic");
                panic!("hostile guest panicked on purpose")
            }
            "env" => done(format!(
                "env={} args={}",
                std::env::vars().count(),
                std::env::args().count()
            )),
            "read" => fs::read_to_string(path).map_err(|e| io_error(path, &e)).and_then(&done),
            "write" => fs::write(path, &a.content)
                .map_err(|e| io_error(path, &e))
                .and_then(|()| done("written".into())),
            "truncate" => fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .map_err(|e| io_error(path, &e))
                .and_then(|_| done("truncated".into())),
            "append" => fs::OpenOptions::new()
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(a.content.as_bytes()))
                .map_err(|e| io_error(path, &e))
                .and_then(|()| done("appended".into())),
            "symlink" => symlink(&a.to, &a.path).and_then(|()| done("linked".into())),
            "hardlink" => fs::hard_link(&a.to, path)
                .map_err(|e| io_error(path, &e))
                .and_then(|()| done("linked".into())),
            "rename" => fs::rename(path, &a.to)
                .map_err(|e| io_error(path, &e))
                .and_then(|()| done("renamed".into())),
            "remove" => fs::remove_file(path)
                .map_err(|e| io_error(path, &e))
                .and_then(|()| done("removed".into())),
            "list" => fs::read_dir(path)
                .and_then(|rd| {
                    rd.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| io_error(path, &e))
                .and_then(|names| done(names.join(","))),
            "connect" => std::net::TcpStream::connect(&a.path)
                .map_err(|e| ToolError::Denied(deskhand_guest::path_error(path, e.to_string())))
                .and_then(|_| done("connected".into())),
            // Binds and listens on `path` (host:port) through WASI sockets:
            // a guest that waits for someone to connect and take what it read.
            "listen" => std::net::TcpListener::bind(&a.path)
                .map_err(|e| ToolError::Denied(deskhand_guest::path_error(path, e.to_string())))
                .and_then(|l| done(format!("listening on {:?}", l.local_addr().ok()))),
            _ => Err(ToolError::UnknownOperation(op)),
        }
    }
}

deskhand_guest::export!(Hostile with_types_in deskhand_guest::bindings);

/// Creates a symlink at `link` (an absolute guest path) whose target is
/// `target`, through the raw WASI call: std has no stable symlink on WASI.
fn symlink(target: &str, link: &str) -> Result<(), ToolError> {
    for (dir, name) in wasi::filesystem::preopens::get_directories() {
        if let Some(rel) = link.strip_prefix(&name) {
            let rel = rel.trim_start_matches('/');
            return dir.symlink_at(target, rel).map_err(|e| {
                ToolError::Denied(deskhand_guest::path_error(std::path::Path::new(link), format!("{e:?}")))
            });
        }
    }
    Err(ToolError::NotFound(deskhand_guest::path_error(
        std::path::Path::new(link),
        "no preopen holds this path",
    )))
}
