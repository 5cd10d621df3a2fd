//! The decision point's rules, without sockets.

use std::path::PathBuf;
use std::sync::Mutex;

use super::*;

fn run() -> (Arc<Run>, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let journal: Journaler = Arc::new(move |_, e| lock(&sink).push(e));
    (Run::new(RunId("r1".into()), journal), seen)
}

fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn patterns_parse_with_port_443_by_default_and_refuse_urls() {
    let p = |s: &str| HostPattern::parse(s).map(|p| p.to_string());
    assert_eq!(p("API.example.com"), Ok("api.example.com:443".into()));
    assert_eq!(p("127.0.0.1:8123"), Ok("127.0.0.1:8123".into()));
    assert_eq!(p("*.example.com:8443"), Ok("*.example.com:8443".into()));
    assert_eq!(p("[::1]:80"), Ok("[::1]:80".into()));
    for bad in [
        "https://example.com",
        "example.com/x",
        "::1",
        "a:0",
        "a:99999",
        "",
        "*",
        "a b:1",
        "*.:1",
    ] {
        assert!(p(bad).is_err(), "{bad}");
    }
    let wild = HostPattern::parse("*.example.com:443").unwrap_or_else(|e| panic!("{e}"));
    assert!(wild.matches("api.example.com", 443));
    assert!(wild.matches("a.b.example.com", 443));
    assert!(!wild.matches("example.com", 443), "a wildcard is subdomains only");
    assert!(!wild.matches("evilexample.com", 443));
    assert!(!wild.matches("api.example.com", 80));
}

#[test]
fn off_by_default_and_only_declared_hosts_while_a_step_runs() {
    let (r, seen) = run();
    assert!(r.decide(&Exit::Shell, "127.0.0.1", 8123).is_err(), "no step: nothing");
    r.set_step(StepNo(1), &hosts(&["127.0.0.1:8123"]), false);
    assert_eq!(r.decide(&Exit::Shell, "127.0.0.1", 8123), Ok(()));
    let refused = r.decide(&Exit::Browser, "127.0.0.1", 8124);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("127.0.0.1:8124") && e.contains("step 1")),
        "{refused:?}"
    );
    r.end_step();
    assert!(
        r.decide(&Exit::Shell, "127.0.0.1", 8123).is_err(),
        "after the step: nothing"
    );
    assert_eq!(r.contacted(), ["127.0.0.1:8123"]);
    let blocked: Vec<_> = lock(&seen)
        .iter()
        .filter_map(|e| match e {
            Event::Blocked { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(blocked, [StepNo::NONE, StepNo(1), StepNo::NONE]);
}

#[test]
fn after_a_private_read_only_hosts_contacted_before_or_approved_by_the_person() {
    let (r, _) = run();
    r.set_step(StepNo(1), &hosts(&["a.example:443", "b.example:443"]), false);
    assert_eq!(r.decide(&Exit::Connector("mail".into()), "a.example", 443), Ok(()));
    r.mark_private_read("notes/secret.txt");
    assert!(r.is_sealed());
    assert_eq!(
        r.decide(&Exit::Shell, "A.example.", 443),
        Ok(()),
        "contacted before the seal"
    );
    let refused = r.decide(&Exit::Shell, "b.example", 443);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("private") && e.contains("notes/secret.txt")),
        "{refused:?}"
    );

    let step2 = StepEffects {
        network: hosts(&["a.example:443", "b.example"]),
        ..StepEffects::default()
    };
    assert_eq!(
        r.approval_needed(&step2),
        Some(SealedHosts {
            hosts: hosts(&["b.example"]),
            private: "notes/secret.txt".into()
        })
    );
    r.set_step(StepNo(2), &step2.network, true);
    assert_eq!(
        r.decide(&Exit::Shell, "b.example", 443),
        Ok(()),
        "approved by the person after the seal"
    );
    // Contacted now, so a later step is not asked about it again.
    assert_eq!(r.approval_needed(&step2), None);
}

#[test]
fn a_step_that_reads_and_contacts_a_new_host_is_asked_even_before_the_seal() {
    let (r, _) = run();
    let effects = StepEffects {
        reads: vec![PathBuf::from("notes")],
        network: hosts(&["upload.example:443"]),
        ..StepEffects::default()
    };
    let asked = r.approval_needed(&effects);
    assert!(
        asked.as_ref().is_some_and(|a| a.describe().contains("upload.example")),
        "{asked:?}"
    );
    assert_eq!(r.approval_needed(&StepEffects::default()), None);
    // A folder the step only writes is readable to it too: asked the same.
    let writes = StepEffects {
        writes: vec![PathBuf::from("Notes")],
        network: hosts(&["upload.example:443"]),
        ..StepEffects::default()
    };
    let asked = r.approval_needed(&writes);
    assert!(
        asked.as_ref().is_some_and(|a| a.describe().contains("Notes")),
        "{asked:?}"
    );
}

#[test]
fn the_first_seal_is_journaled_and_a_resumed_run_is_sealed_from_it() {
    let (r, seen) = run();
    r.mark_private_read("a result of the connector mail");
    r.mark_private_read("step 2 read notes");
    let notices: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Notice { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let what = super::sealed_in_notice(&notices[0]);
    assert_eq!(what, Some("a result of the connector mail"));
    let (resumed, _) = run();
    resumed.restore_sealed(what.unwrap());
    assert!(resumed.is_sealed());
    assert_eq!(
        super::sealed_in_notice("first contact of this run with a:1 (shell, step 1)"),
        None
    );
}

#[test]
fn a_sub_agent_shares_the_seal_but_has_its_own_step() {
    let (parent, _) = run();
    let child = parent.child(RunId("r2".into()), Arc::new(|_, _| {}));
    child.mark_private_read("a file");
    assert!(parent.is_sealed());
    parent.set_step(StepNo(1), &hosts(&["x.example"]), false);
    assert!(
        child.decide(&Exit::Shell, "x.example", 443).is_err(),
        "the child runs no step"
    );
}

#[test]
fn the_wasm_check_allows_the_implicit_bind_and_declared_addresses_only() {
    let (r, _) = run();
    r.set_step(StepNo(1), &hosts(&["127.0.0.1:8123"]), false);
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.decide_addr(&Exit::Wasm, addr("0.0.0.0:0"), false), Ok(()));
    assert!(r.decide_addr(&Exit::Wasm, addr("0.0.0.0:8080"), false).is_err());
    assert_eq!(r.decide_addr(&Exit::Wasm, addr("127.0.0.1:8123"), true), Ok(()));
    assert!(r.decide_addr(&Exit::Wasm, addr("127.0.0.1:8124"), true).is_err());
}

#[test]
fn the_first_contact_of_a_host_is_a_notice_a_resumed_run_reads_back() {
    let (r, seen) = run();
    r.set_step(StepNo(2), &hosts(&["api.example:443", "[::1]:8080"]), false);
    assert_eq!(r.decide(&Exit::Browser, "api.example", 443), Ok(()));
    assert_eq!(r.decide(&Exit::Shell, "API.example", 443), Ok(()));
    assert_eq!(r.decide(&Exit::Connector("mail".into()), "::1", 8080), Ok(()));
    let notices: Vec<String> = lock(&seen)
        .iter()
        .filter_map(|e| match e {
            Event::Notice { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        notices,
        [
            "first contact of this run with api.example:443 (the browser, step 2)",
            "first contact of this run with [::1]:8080 (the connector mail, step 2)"
        ]
    );
    let back: Vec<_> = notices.iter().filter_map(|n| contacted_in_notice(n)).collect();
    assert_eq!(back, ["api.example:443", "[::1]:8080"]);
    for other in [
        "the person was notified on the desktop",
        "first contact of this run with *.example:443 (x)",
        "first contact of this run with a b:1 (x)",
    ] {
        assert_eq!(contacted_in_notice(other), None, "{other}");
    }

    // Resumed and sealed: a host restored from the journal is reachable without asking again.
    let (resumed, _) = run();
    resumed.mark_private_read("a file");
    resumed.restore_contacted(&back[0]);
    resumed.set_step(StepNo(3), &hosts(&["api.example"]), false);
    assert_eq!(resumed.decide(&Exit::Shell, "api.example", 443), Ok(()));
    let effects = StepEffects {
        network: hosts(&["api.example"]),
        ..StepEffects::default()
    };
    assert_eq!(resumed.approval_needed(&effects), None);
}

#[test]
fn after_the_run_ends_nothing_is_decided_and_only_contacted_hosts_may_be_closed_politely() {
    let (r, seen) = run();
    r.set_step(StepNo(1), &hosts(&["127.0.0.1:8123", "127.0.0.1:8124"]), false);
    assert_eq!(r.decide(&Exit::Remote("ev".into()), "127.0.0.1", 8123), Ok(()));
    let child = r.child(RunId("r2".into()), Arc::new(|_, _| {}));
    child.set_step(StepNo(1), &hosts(&["127.0.0.1:8125"]), false);
    r.end_run();
    // What the run contacted may be told goodbye; nothing else, and nothing new.
    assert!(r.allows("127.0.0.1", 8123));
    assert!(!r.allows("127.0.0.1", 8124), "declared, never contacted");
    assert!(child.allows("127.0.0.1", 8123));
    assert!(!child.allows("127.0.0.1", 8125));
    let refused = r.decide(&Exit::Remote("ev".into()), "127.0.0.1", 8123);
    assert!(refused.is_err_and(|e| e.contains("after the run ended")));
    assert!(
        child.decide(&Exit::Shell, "127.0.0.1", 8125).is_err(),
        "a sub-agent's too"
    );
    r.set_step(StepNo(2), &hosts(&["127.0.0.1:8124"]), true);
    assert!(r.decide(&Exit::Shell, "127.0.0.1", 8124).is_err(), "ended is ended");
    assert!(
        lock(&seen)
            .iter()
            .filter(|e| matches!(e, Event::Blocked { .. }))
            .count()
            == 2
    );
}
