//! Builds the guest components in `guest-tools/` for wasm32-wasip2, in a
//! target directory of their own, and hands them to the runtime: the bundled
//! tools are embedded with `include_bytes!`, and every built component's path
//! is exported so host tests can load the hostile test guests.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Every component the guest workspace builds; the runtime embeds the bundled ones.
/// Names are the crates' artifact names (`deskhand_guest_<name>.wasm`), so `_` not `-`.
const GUESTS: &[&str] = &[
    "fs",
    "hostile",
    "inventory",
    "pdf",
    "rename_by_date",
    "xlsx",
    "docx",
    "pptx",
    "receipts",
];
/// The components that link other tools' crates as libraries (see `main`).
const LINKS_TOOLS: &[&str] = &["receipts"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = manifest_dir
        .parent()
        .expect("runtime/ lives in the repository root")
        .to_path_buf();
    let guest_ws = repo.join("guest-tools");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed={}", guest_ws.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", guest_ws.join("Cargo.lock").display());
    for dir in [
        "sdk",
        "fs",
        "hostile",
        "inventory",
        "pdf",
        "rename-by-date",
        "xlsx",
        "ooxml",
        "docx",
        "pptx",
        "receipts",
    ] {
        println!("cargo:rerun-if-changed={}", guest_ws.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    ensure_target_installed();

    // Share one guest target dir across profiles and across `cargo build`,
    // `cargo test` and `cargo clippy`: OUT_DIR is <target>/<profile>/build/<pkg>/out.
    let target_root = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.clone());
    let guest_target = target_root.join("wasm-guests");

    // Components that link other tools' code as libraries build on their own:
    // in one cargo invocation, features unify, and the libraries would carry
    // their own `describe`/`run` exports into the component that links them.
    let batches: [(&[&str], Vec<&str>); 2] = [
        (
            &["--workspace", "--exclude", "deskhand-guest-receipts"],
            GUESTS.iter().copied().filter(|g| !LINKS_TOOLS.contains(g)).collect(),
        ),
        (&["-p", "deskhand-guest-receipts"], LINKS_TOOLS.to_vec()),
    ];
    let built = guest_target.join(TARGET).join("release");
    for (selection, names) in batches {
        let mut cmd = guest_cargo(&cargo, &guest_ws, &guest_target);
        cmd.args(selection);
        let status = cmd.status().unwrap_or_else(|e| {
            panic!(
                "could not start `cargo` to build the guest tools in {}: {e}",
                guest_ws.display()
            )
        });
        if !status.success() {
            panic!(
                "building the guest tools in {} for {TARGET} failed (see the errors above). \
                 If the error says the target may not be installed, run `rustup target add {TARGET}`.",
                guest_ws.display()
            );
        }
        // Copied before the next batch builds, which must not be able to touch them.
        for name in names {
            let file = format!("deskhand_guest_{name}.wasm");
            let src = built.join(&file);
            let dst = out_dir.join(format!("{name}.wasm"));
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("the guest build did not produce {}: {e}", src.display()));
            println!(
                "cargo:rustc-env=DESKHAND_GUEST_{}={}",
                name.to_uppercase(),
                dst.display()
            );
        }
    }
}

/// `cargo build --release` of the guest workspace for [`TARGET`] into `guest_target`.
fn guest_cargo(cargo: &std::ffi::OsStr, guest_ws: &Path, guest_target: &Path) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(guest_ws)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--target-dir")
        .arg(guest_target);
    // The outer cargo's settings are for the host build; the guest build must
    // not inherit its wrappers (clippy), flags or target directory.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let inherited = key.starts_with("CARGO_")
            && key != "CARGO_HOME"
            && key != "CARGO_MAKEFLAGS"
            && !key.starts_with("CARGO_NET")
            && !key.starts_with("CARGO_HTTP")
            && !key.starts_with("CARGO_REGISTRIES");
        if inherited
            || matches!(
                key,
                "RUSTC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A missing target gives a cryptic "can't find crate for `core`"; say the fix instead.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot {
        let lib = sysroot.join("lib").join("rustlib").join(TARGET);
        if !lib.is_dir() {
            panic!(
                "the Rust target {TARGET} is not installed for this toolchain ({}), and deskhand's \
                 sandboxed tools are built for it. Fix: run `rustup target add {TARGET}` \
                 (the README's quick-start commands do this for you).",
                sysroot.display()
            );
        }
    }
}
