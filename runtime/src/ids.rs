//! Identifiers and timestamps. Run ids sort by time and read well in file
//! names (`run-20261124-102041-7f3a`).

use std::time::SystemTime;

use deskhand_types::{CallId, RunId};

pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // Without OS randomness the time part still orders ids; the counter
    // below keeps them unique within this process.
    let _ = getrandom::fill(&mut buf);
    hex::encode(buf)
}

fn stamp() -> String {
    let t = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    // 2026-11-24T10:20:41Z -> 20261124-102041
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}", &digits[..8.min(digits.len())], &digits[8.min(digits.len())..])
}

pub fn run_id() -> RunId {
    RunId(format!("run-{}-{}", stamp(), random_hex(3)))
}

pub fn call_id() -> CallId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    CallId(format!(
        "call-{}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        random_hex(2)
    ))
}

/// A changeset: the time it was proposed and a random suffix.
pub fn changeset_id() -> String {
    format!("cs-{}-{}", stamp(), random_hex(4))
}

/// A question put to the person (one answer each; the browser's card posts it back).
pub fn approval_id() -> String {
    format!("ap-{}", random_hex(12))
}
