//! Builds the guest components in `guest-tools/` for wasm32-wasip2, in a
//! target directory of their own, and hands them to the runtime: the bundled
//! tools are embedded with `include_bytes!`, and every built component's path
//! is exported so host tests can load the hostile test guests. The `python`
//! tool is not Rust: componentize-py (installed by `scripts/setup`) builds it
//! from `guest-tools/python/`, only when its sources change.
//!
//! The target directory is `target/wasm-guests/`, shared by every profile and
//! by clippy; the outer cargo's wrappers and flags are removed. Each
//! component's path is exported as `DESKHAND_GUEST_<NAME>`. A missing target
//! fails with the `rustup target add` fix; a missing componentize-py (the
//! venv of `scripts/setup`, or `DESKHAND_COMPONENTIZE_PY`) names
//! `scripts/setup`. Python is rebuilt only when a fingerprint of its
//! `.py`/`.json` sources, the WIT and the componentize-py version changes.

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
    println!(
        "cargo:rerun-if-changed={}",
        guest_ws.join(".cargo").join("config.toml").display()
    );
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
    println!("cargo:rerun-if-changed={}", guest_ws.join("python").display());
    println!("cargo:rerun-if-env-changed=DESKHAND_COMPONENTIZE_PY");
    println!("cargo:rerun-if-env-changed=HOME");

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
            // Replace rather than write through: a hard-linked copy must not change elsewhere.
            let _ = std::fs::remove_file(&dst);
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("the guest build did not produce {}: {e}", src.display()));
            println!(
                "cargo:rustc-env=DESKHAND_GUEST_{}={}",
                name.to_uppercase(),
                dst.display()
            );
        }
    }
    python_into(&repo, &guest_target, &out_dir);
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

/// Builds the python tool and hands it to the runtime like the other guests.
fn python_into(repo: &Path, guest_target: &Path, out_dir: &Path) {
    let python = build_python(repo, guest_target);
    let dst = out_dir.join("python.wasm");
    // Replace rather than write through: a hard-linked copy must not change elsewhere.
    let _ = std::fs::remove_file(&dst);
    std::fs::copy(&python, &dst)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", python.display(), dst.display()));
    println!("cargo:rustc-env=DESKHAND_GUEST_PYTHON={}", dst.display());
}

/// The componentize-py release the python tool is built with (`scripts/setup` installs it).
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// Builds `guest-tools/python` into `<guest target>/python/python.wasm` with
/// componentize-py, unless a stamp says these exact sources were built already
/// (build.rs reruns whenever any guest changes; this build takes about 17 s).
fn build_python(repo: &Path, guest_target: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};

    let sources = repo.join("guest-tools").join("python");
    let wit = repo.join("wit").join("tool");
    let out = guest_target.join("python");
    let wasm = out.join("python.wasm");
    let stamp = out.join("python.wasm.stamp");

    let mut inputs: Vec<PathBuf> = [&sources, &wit]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py" || x == "wit" || x == "json"))
        .collect();
    inputs.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    COMPONENTIZE_PY_VERSION.hash(&mut hasher);
    for path in &inputs {
        path.file_name().hash(&mut hasher);
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .hash(&mut hasher);
    }
    let fingerprint = format!("{:016x}", hasher.finish());
    if wasm.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) {
        return wasm;
    }

    let tool = componentize_py();
    // Build from a copy: the interpreter that runs app.py at build time writes
    // __pycache__ beside the sources, which would dirty the repository.
    let staged = out.join("src");
    let _ = std::fs::remove_dir_all(&staged);
    std::fs::create_dir_all(&staged).unwrap_or_else(|e| panic!("cannot create {}: {e}", staged.display()));
    for file in inputs.iter().filter(|p| p.starts_with(&sources)) {
        let dst = staged.join(file.file_name().unwrap_or_default());
        std::fs::copy(file, &dst)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", file.display(), dst.display()));
    }
    let partial = out.join("python.wasm.partial");
    let status = Command::new(&tool)
        .arg("--quiet")
        .arg("-d")
        .arg(&wit)
        .args(["-w", "tool", "componentize", "-p"])
        .arg(&staged)
        .arg("app")
        .arg("-o")
        .arg(&partial)
        .status()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", tool.display()));
    if !status.success() {
        panic!(
            "componentize-py failed to build the python tool from {} (see the errors above)",
            sources.display()
        );
    }
    std::fs::rename(&partial, &wasm).unwrap_or_else(|e| panic!("cannot move the built python tool into place: {e}"));
    std::fs::write(&stamp, fingerprint).unwrap_or_else(|e| panic!("cannot write {}: {e}", stamp.display()));
    wasm
}

/// componentize-py from `DESKHAND_COMPONENTIZE_PY`, the venv `scripts/setup`
/// makes, or the PATH, at the pinned version; otherwise say how to get it.
fn componentize_py() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(explicit) = env::var_os("DESKHAND_COMPONENTIZE_PY") {
        candidates.push(explicit.into());
    }
    if let Some(home) = env::var_os("HOME") {
        candidates.push(
            PathBuf::from(home)
                .join(".cache/deskhand")
                .join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"))
                .join("bin/componentize-py"),
        );
    }
    candidates.push("componentize-py".into());
    let mut seen = Vec::new();
    for candidate in candidates {
        let version = Command::new(&candidate)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match version {
            Some(v) if v.split_whitespace().last() == Some(COMPONENTIZE_PY_VERSION) => return candidate,
            Some(v) => seen.push(format!("{} is {v}", candidate.display())),
            None => {}
        }
    }
    panic!(
        "componentize-py {COMPONENTIZE_PY_VERSION} is not installed, and deskhand's python tool is built with it{}. \
         Fix: run `scripts/setup` (it installs it into ~/.cache/deskhand/componentize-py-{COMPONENTIZE_PY_VERSION}), \
         or point DESKHAND_COMPONENTIZE_PY at a componentize-py {COMPONENTIZE_PY_VERSION} executable.",
        if seen.is_empty() {
            String::new()
        } else {
            format!(" (found: {})", seen.join("; "))
        }
    );
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
