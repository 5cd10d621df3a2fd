//! Host tests of the runtime against the real sandbox: the bundled `fs`
//! tool and the hostile test guest, with no mocks.

#![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

mod agent;
mod cache;
mod common;
mod escapes;
mod limits;
mod providers;
mod replay;
mod skills;
mod workspace;
