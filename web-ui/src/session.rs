//! Who may use the server: launch tokens, sessions, tickets, and the control
//! key `deskhand open` proves itself with.
//!
//! Nothing here rests on a cookie: browsers send cookies to every port of a
//! host, so any other server on 127.0.0.1 would receive one. A launch token
//! (in the URL `deskhand serve` prints or `deskhand open` opens) is traded
//! once for a session secret that the page keeps in its own tab
//! (`sessionStorage`, scoped to this origin and port) and sends as the
//! `X-Deskhand-Session` header. A navigation cannot send a header, so a
//! download or a framed PDF asks for a ticket: single-use, short-lived and
//! bound to one path. All the bookkeeping takes `now` as an argument so the
//! expiries are tested without waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header every API request carries.
pub const HEADER: &str = "x-deskhand-session";

/// How long the pieces live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A launch token not used within this is refused.
    pub launch: Duration,
    /// A session not used for this long ends.
    pub idle: Duration,
    /// A session ends this long after it began, however busy.
    pub absolute: Duration,
    /// A download or view ticket.
    pub ticket: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            launch: Duration::from_secs(10 * 60),
            idle: Duration::from_secs(12 * 3600),
            absolute: Duration::from_secs(72 * 3600),
            ticket: Duration::from_secs(60),
        }
    }
}

/// Why a token, session or ticket was refused, in words for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never issued, already used, or expired: the server cannot tell which
    /// (a used token is forgotten).
    LaunchToken,
    NoSession,
    SessionExpired,
    Ticket,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::LaunchToken => {
                "this link was already used or has expired (a link works once, for 10 minutes). Run `deskhand open` in the workspace for a new one"
            }
            Refusal::NoSession => {
                "no session. Open the link `deskhand serve` printed, or run `deskhand open` in the workspace for a new one"
            }
            Refusal::SessionExpired => {
                "this session has ended (unused for 12 hours, or older than 3 days). Run `deskhand open` in the workspace for a new link"
            }
            Refusal::Ticket => "this download link was already used or has expired; click the link on the page again",
        }
    }
}

struct Session {
    began: Instant,
    last_used: Instant,
}

struct Ticket {
    path: String,
    expires: Instant,
}

/// Every launch token, session and ticket the server knows. Secrets are kept
/// as their SHA-256, so looking one up is a map lookup on a hash, not a
/// comparison an attacker can time.
pub struct Sessions {
    lifetimes: Lifetimes,
    launch: HashMap<[u8; 32], Instant>,
    sessions: HashMap<[u8; 32], Session>,
    tickets: HashMap<[u8; 32], Ticket>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Sessions {
    pub fn new(lifetimes: Lifetimes) -> Self {
        Sessions {
            lifetimes,
            launch: HashMap::new(),
            sessions: HashMap::new(),
            tickets: HashMap::new(),
        }
    }

    /// A new launch token, good once within `Lifetimes::launch`.
    pub fn new_launch_token(&mut self, now: Instant) -> String {
        let token = crate::random_hex(16);
        self.launch.retain(|_, expires| *expires > now);
        self.launch.insert(digest(&token), now + self.lifetimes.launch);
        token
    }

    /// Trades a launch token for a session secret; the token is gone after.
    pub fn exchange(&mut self, token: &str, now: Instant) -> Result<String, Refusal> {
        match self.launch.remove(&digest(token)) {
            Some(expires) if expires > now => {
                let secret = crate::random_hex(32);
                self.sessions.retain(|_, s| !expired(&self.lifetimes, s, now));
                self.sessions.insert(
                    digest(&secret),
                    Session {
                        began: now,
                        last_used: now,
                    },
                );
                Ok(secret)
            }
            _ => Err(Refusal::LaunchToken),
        }
    }

    /// Checks a session secret and marks it used.
    pub fn check(&mut self, secret: &str, now: Instant) -> Result<(), Refusal> {
        let key = digest(secret);
        let Some(session) = self.sessions.get_mut(&key) else {
            return Err(Refusal::NoSession);
        };
        if expired(&self.lifetimes, session, now) {
            self.sessions.remove(&key);
            return Err(Refusal::SessionExpired);
        }
        session.last_used = now;
        Ok(())
    }

    /// A ticket for one GET of `path` (as the request names it).
    pub fn new_ticket(&mut self, path: &str, now: Instant) -> String {
        let ticket = crate::random_hex(16);
        self.tickets.retain(|_, t| t.expires > now);
        self.tickets.insert(
            digest(&ticket),
            Ticket {
                path: path.to_owned(),
                expires: now + self.lifetimes.ticket,
            },
        );
        ticket
    }

    /// Uses a ticket for `path`: once, in time, for that path only.
    pub fn use_ticket(&mut self, ticket: &str, path: &str, now: Instant) -> Result<(), Refusal> {
        let key = digest(ticket);
        match self.tickets.get(&key) {
            Some(t) if t.path == path => {
                let ok = t.expires > now;
                self.tickets.remove(&key);
                if ok { Ok(()) } else { Err(Refusal::Ticket) }
            }
            _ => Err(Refusal::Ticket),
        }
    }
}

fn expired(l: &Lifetimes, s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.last_used) >= l.idle || now.saturating_duration_since(s.began) >= l.absolute
}

/// HMAC-SHA256 (RFC 2104), for the challenge between `deskhand open` and a
/// running server: each proves it knows the control key in server.json
/// without sending it.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The proof for `role` ("client" or "server") over `nonce`, hex.
pub fn proof(key: &str, role: &str, nonce: &str) -> String {
    hex::encode(hmac_sha256(
        key.as_bytes(),
        format!("deskhand-open/{role}/{nonce}").as_bytes(),
    ))
}

/// Whether `a` and `b` are equal, in a time that does not depend on where
/// they differ (lengths are not secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Lifetimes::default())
    }

    #[test]
    fn a_launch_token_is_exchanged_once() {
        let mut s = sessions();
        let now = Instant::now();
        let token = s.new_launch_token(now);
        let secret = s.exchange(&token, now).expect("first exchange");
        assert_eq!(s.exchange(&token, now), Err(Refusal::LaunchToken));
        assert_eq!(s.check(&secret, now), Ok(()));
        assert_eq!(
            s.check(&token, now),
            Err(Refusal::NoSession),
            "the token is not a session"
        );
    }

    #[test]
    fn a_launch_token_expires_unused() {
        let mut s = sessions();
        let now = Instant::now();
        let token = s.new_launch_token(now);
        assert_eq!(
            s.exchange(&token, now + Duration::from_secs(10 * 60)),
            Err(Refusal::LaunchToken)
        );
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_absolute_limit() {
        let mut s = sessions();
        let t0 = Instant::now();
        let token = s.new_launch_token(t0);
        let idle = s.exchange(&token, t0).expect("exchange");
        let hour = Duration::from_secs(3600);
        assert_eq!(s.check(&idle, t0 + 11 * hour), Ok(()), "used within 12 h");
        assert_eq!(s.check(&idle, t0 + 23 * hour + hour), Err(Refusal::SessionExpired));
        assert_eq!(
            s.check(&idle, t0 + 25 * hour),
            Err(Refusal::NoSession),
            "forgotten once expired"
        );

        let token = s.new_launch_token(t0);
        let busy = s.exchange(&token, t0).expect("exchange");
        for h in (1..72).step_by(6) {
            assert_eq!(s.check(&busy, t0 + h * hour), Ok(()), "hour {h}");
        }
        assert_eq!(s.check(&busy, t0 + 72 * hour), Err(Refusal::SessionExpired));
    }

    #[test]
    fn a_ticket_serves_one_request_for_its_path_in_time() {
        let mut s = sessions();
        let now = Instant::now();
        let t = s.new_ticket("/files/output/a.csv", now);
        assert_eq!(s.use_ticket(&t, "/files/output/b.csv", now), Err(Refusal::Ticket));
        assert_eq!(s.use_ticket(&t, "/files/output/a.csv", now), Ok(()));
        assert_eq!(s.use_ticket(&t, "/files/output/a.csv", now), Err(Refusal::Ticket));
        let late = s.new_ticket("/x", now);
        assert_eq!(
            s.use_ticket(&late, "/x", now + Duration::from_secs(61)),
            Err(Refusal::Ticket)
        );
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq("abcd", "abcd"));
        assert!(!constant_time_eq("abcd", "abce"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
