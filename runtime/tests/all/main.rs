//! Host tests of the runtime against the real sandbox: the bundled `fs`
//! tool and the hostile test guest, with no mocks.

mod cache;
mod common;
mod escapes;
mod limits;
mod workspace;
