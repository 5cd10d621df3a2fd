//! Integration tests of the bubblewrap backend: real sandboxes, no mocks. Skipped (with a
//! printed reason) only where bubblewrap is not installed; `scripts/setup` installs it.

mod common;
mod escapes;
mod limits;
mod run;
#[cfg(target_os = "linux")]
mod vm;
