//! Runaway guests are stopped with a clear reason, and the host carries on.

use std::time::Duration;

use deskhand_runtime::wasm::{CallError, Limits};
use serde_json::json;

use crate::common::{Fixture, hostile};

fn limited(fx: &Fixture, limits: Limits) -> deskhand_runtime::wasm::Sandbox {
    let mut sandbox = fx.sandbox(&[]);
    sandbox.limits = limits;
    sandbox
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    let fx = Fixture::new();
    let sandbox = limited(
        &fx,
        Limits {
            deadline: Duration::from_millis(300),
            ..Limits::default()
        },
    );
    let report = hostile().call(&sandbox, "spin", "{}", None);
    let err = report.result.unwrap_err();
    assert!(matches!(err, CallError::Deadline { .. }), "{err}");
    assert!(err.to_string().contains("deadline"), "{err}");
    // The host carries on: the same tool runs again right away.
    let again = hostile().call(&fx.sandbox(&[]), "env", "{}", None);
    assert!(again.result.is_ok());
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let fx = Fixture::new();
    let sandbox = limited(
        &fx,
        Limits {
            memory_bytes: 64 << 20,
            ..Limits::default()
        },
    );
    let err = hostile().call(&sandbox, "alloc", "{}", None).result.unwrap_err();
    assert!(
        matches!(err, CallError::MemoryCap { limit } if limit == 64 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("64 MiB"), "{err}");
}

#[test]
fn an_answer_too_large_to_parse_is_refused_before_parsing() {
    let fx = Fixture::new();
    let err = hostile()
        .call(&fx.sandbox(&[]), "huge_answer", "{}", None)
        .result
        .unwrap_err();
    assert!(matches!(err, CallError::ResultTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("ask it for less"), "{err}");
}

#[test]
fn a_stdout_flood_is_capped() {
    let fx = Fixture::new();
    let sandbox = limited(
        &fx,
        Limits {
            stdout_bytes: 64 * 1024,
            ..Limits::default()
        },
    );
    let report = hostile().call(&sandbox, "flood_stdout", "{}", None);
    let err = report.result.unwrap_err();
    assert!(matches!(err, CallError::OutputCap { stream: "stdout", .. }), "{err}");
    assert!(report.stdout.len() <= 64 * 1024);
}

#[test]
fn a_stderr_flood_is_capped() {
    let fx = Fixture::new();
    let sandbox = limited(
        &fx,
        Limits {
            stderr_bytes: 64 * 1024,
            ..Limits::default()
        },
    );
    let report = hostile().call(&sandbox, "flood_stderr", "{}", None);
    let err = report.result.unwrap_err();
    assert!(matches!(err, CallError::OutputCap { stream: "stderr", .. }), "{err}");
    assert!(report.stderr.len() <= 64 * 1024);
}

#[test]
fn a_log_flood_is_capped() {
    let fx = Fixture::new();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let sink: deskhand_runtime::wasm::EventSink = std::sync::Arc::new(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let report = hostile().call(&fx.sandbox(&[]), "flood_log", "{}", Some(sink));
    assert!(report.result.is_ok());
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 10_000);
}

#[test]
fn a_panicking_guest_reports_its_stderr() {
    let fx = Fixture::new();
    let err = hostile()
        .call(&fx.sandbox(&[]), "panic", &json!({}).to_string(), None)
        .result
        .unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }), "{err}");
    assert!(err.to_string().contains("about to panic"), "{err}");
}
