//! LibreOffice, headless, as the real spreadsheet engine behind the
//! workbooks deskhand delivers: after a tool writes an `.xlsx` under
//! `output/`, a copy is recalculated by LibreOffice and the xlsx tool's
//! `cache_values` stores the computed values in the original, so viewers
//! that show stored values without recalculating (file previews, phone
//! apps, the plan UI) show the totals, not zeros. The formulas stay; the
//! spreadsheet still computes them itself.
//!
//! LibreOffice runs with a profile of its own whose settings make it
//! recalculate every formula on load (by default it trusts the values stored
//! in the file), one conversion at a time per profile, across processes (a
//! profile cannot be shared by two running instances), and with a deadline.
//!
//! It runs inside the native shell sandbox (bubblewrap; see
//! `deskhand-host-vm`): no network, and of the machine only the system
//! folders, the profile, the input file and the output folder. A hostile
//! file's links elsewhere (external references, WEBSERVICE, linked pictures)
//! find nothing, so nothing from outside flows into the values it computes.
//! Where no sandbox works (macOS and Windows today, or bubblewrap missing),
//! it runs as a plain process: [`LibreOffice::unsandboxed`] says why, and so
//! does every error of such a conversion.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deskhand_host_vm::{Mount, ShellBackend, ShellPolicy, Stream, Termination};

use crate::error::{Error, Result};

/// Where LibreOffice is looked for, in order.
pub const CANDIDATES: &[&str] = &[
    "/usr/bin/soffice",
    "/usr/bin/libreoffice",
    "/usr/local/bin/soffice",
    "/usr/lib/libreoffice/program/soffice",
    "/opt/libreoffice/program/soffice",
    "/opt/homebrew/bin/soffice",
    "/Applications/LibreOffice.app/Contents/MacOS/soffice",
    r"C:\Program Files\LibreOffice\program\soffice.exe",
];

/// How long one conversion may take before LibreOffice is stopped.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The profile settings that make Calc recalculate OOXML and ODF files on load.
const RECALC_ALWAYS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"#;

/// Where the sandbox shows the profile, the input file and the output folder.
const PROFILE_IN_SANDBOX: &str = "/office/profile";
const INPUT_IN_SANDBOX: &str = "/office/input";
const OUTPUT_IN_SANDBOX: &str = "/office/output";

/// Entries of /etc LibreOffice needs beyond the sandbox's few: Debian's
/// LibreOffice keeps its main configuration there, and fontconfig its own
/// (without it LibreOffice finds no font).
const ETC_NEEDED: &[&str] = &["/etc/libreoffice", "/etc/fonts"];

/// A headless LibreOffice with its own recalculate-always profile.
pub struct LibreOffice {
    program: PathBuf,
    profile: PathBuf,
    sandbox: OnceLock<std::result::Result<Box<dyn ShellBackend + Send + Sync>, String>>,
}

impl std::fmt::Debug for LibreOffice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibreOffice")
            .field("program", &self.program)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl LibreOffice {
    /// The first installed LibreOffice of [`CANDIDATES`], with its profile in
    /// `profile` (created if missing); `None` when none is installed.
    pub fn find(profile: &Path) -> Option<Self> {
        CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .and_then(|program| Self::new(program, profile).ok())
    }

    /// [`LibreOffice::find`] with the profile in deskhand's cache folder
    /// (`libreoffice-profile` in it), or in the system's temporary folder.
    pub fn find_for_cache(cache_dir: Option<&Path>) -> Option<Self> {
        let base = cache_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        Self::find(&base.join("libreoffice-profile"))
    }

    /// LibreOffice at `program`, with its profile in `profile`.
    pub fn new(program: PathBuf, profile: &Path) -> Result<Self> {
        let user = profile.join("user");
        std::fs::create_dir_all(&user).map_err(Error::io(&user))?;
        Ok(LibreOffice {
            program,
            profile: profile.to_path_buf(),
            sandbox: OnceLock::new(),
        })
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Why conversions run without a sandbox on this machine, as the person
    /// should read it; `None` when they run inside one.
    pub fn unsandboxed(&self) -> Option<String> {
        self.sandbox()
            .err()
            .map(|reason| format!("LibreOffice runs without a sandbox: {reason}"))
    }

    /// Converts `input` with `--convert-to FILTER` into `outdir` and returns
    /// the converted file (the input's stem, extension `ext`). A conversion
    /// that fails, writes nothing or outlives [`DEADLINE`] is an error that
    /// says what LibreOffice said.
    pub fn convert(&self, input: &Path, filter: &str, ext: &str, outdir: &Path) -> Result<PathBuf> {
        self.convert_reporting(input, filter, ext, outdir).map(|(path, _)| path)
    }

    /// [`convert`](Self::convert), also returning what LibreOffice wrote
    /// to stderr (warnings a conversion that worked may still print).
    pub fn convert_reporting(&self, input: &Path, filter: &str, ext: &str, outdir: &Path) -> Result<(PathBuf, String)> {
        let stem = input.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
        self.run(input, filter, outdir, outdir.join(format!("{stem}.{ext}")))
    }

    /// One sheet of a workbook (`number` counts from 1, `name` is its name) as
    /// UTF-8 CSV in `outdir`, with every formula recalculated.
    pub fn sheet_as_csv(&self, workbook: &Path, number: u32, name: &str, outdir: &Path) -> Result<PathBuf> {
        let filter = format!("csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,{number}");
        let stem = workbook.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
        self.run(workbook, &filter, outdir, outdir.join(format!("{stem}-{name}.csv")))
            .map(|(path, _)| path)
    }

    /// Runs one conversion that should produce `produced`.
    fn run(&self, input: &Path, filter: &str, outdir: &Path, produced: PathBuf) -> Result<(PathBuf, String)> {
        // One LibreOffice per profile at a time, across threads and processes
        // (the CLI and the UI share the cache folder): a second instance would
        // hand its job to the first and exit without a file.
        let lock_path = self.profile.join("deskhand.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        lock.lock().map_err(Error::io(&lock_path))?;
        let unavailable = |why: String| {
            let unsandboxed = match self.sandbox() {
                Ok(_) => String::new(),
                Err(reason) => format!(" (it ran without a sandbox: {reason})"),
            };
            Error::Unavailable(format!("LibreOffice ({}) {why}{unsandboxed}", self.program.display()))
        };
        // LibreOffice rewrites this file as it runs; ours must win every time.
        let settings = self.profile.join("user/registrymodifications.xcu");
        std::fs::write(&settings, RECALC_ALWAYS).map_err(Error::io(&settings))?;
        // Its output goes to files (under the lock, so ours alone): a pipe
        // nobody reads while we poll would fill, and LibreOffice would block
        // until the deadline stopped it.
        let log = |name: &str| {
            let path = self.profile.join(name);
            std::fs::File::create(&path)
                .map(|f| (f, path.clone()))
                .map_err(Error::io(&path))
        };
        let ((stdout_file, stdout_path), (stderr_file, stderr_path)) = (log("stdout.log")?, log("stderr.log")?);
        let ended = match self.sandbox() {
            Ok(backend) => self.run_sandboxed(backend, input, filter, outdir, stdout_file, stderr_file)?,
            Err(_) => self.run_directly(input, filter, outdir, stdout_file, stderr_file),
        };
        let status = ended.map_err(unavailable)?;
        let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        let stderr = read(&stderr_path);
        if status.is_some() || !produced.is_file() {
            return Err(unavailable(format!(
                "could not convert {} ({}): {}{}",
                input.display(),
                status.unwrap_or_else(|| "no file written".to_owned()),
                read(&stdout_path).trim(),
                stderr.trim()
            )));
        }
        Ok((produced, stderr))
    }

    /// The sandbox conversions run in, or why there is none (decided once).
    fn sandbox(&self) -> std::result::Result<&(dyn ShellBackend + Send + Sync), &str> {
        self.sandbox
            .get_or_init(sandbox_backend)
            .as_ref()
            .map(AsRef::as_ref)
            .map_err(String::as_str)
    }

    /// Runs LibreOffice in `backend`'s sandbox: no network, the system
    /// folders the backend shows plus [`ETC_NEEDED`], the profile and
    /// `outdir` writable, the input file read-only, nothing else of the
    /// machine. A workbook's links to other files or to the web (external
    /// references, WEBSERVICE, linked pictures) find nothing there.
    fn run_sandboxed(
        &self,
        backend: &(dyn ShellBackend + Send + Sync),
        input: &Path,
        filter: &str,
        outdir: &Path,
        mut stdout: std::fs::File,
        mut stderr: std::fs::File,
    ) -> Result<Ended> {
        let program = match self.program.canonicalize() {
            Ok(program) => program,
            Err(e) => return Ok(Err(format!("did not start: {e}"))),
        };
        let canonical = |path: &Path| path.canonicalize().map_err(Error::io(path));
        let name = input.file_name().ok_or_else(|| Error::BadPath {
            path: input.display().to_string(),
            reason: "names no file to convert",
        })?;
        let sandboxed_input = Path::new(INPUT_IN_SANDBOX).join(name);
        let mut policy = ShellPolicy::new(
            [
                program.display().to_string(),
                format!("-env:UserInstallation={}", file_url(Path::new(PROFILE_IN_SANDBOX))),
            ]
            .into_iter()
            .chain(["--headless", "--norestore", "--nolockcheck", "--convert-to"].map(String::from))
            .chain([filter.to_owned(), "--outdir".to_owned(), OUTPUT_IN_SANDBOX.to_owned()])
            .chain([sandboxed_input.display().to_string()]),
        )
        .grant(Mount::writable(canonical(&self.profile)?, PROFILE_IN_SANDBOX))
        .grant(Mount::writable(canonical(outdir)?, OUTPUT_IN_SANDBOX))
        .grant(Mount::read_only(canonical(input)?, &sandboxed_input))
        .limits(deskhand_host_vm::Limits {
            // CPU time counts every thread, so on several cores it outruns
            // the wall clock, which is the real bound.
            cpu_seconds: DEADLINE.as_secs() * 4,
            // LibreOffice reserves far more address space than it uses.
            memory_bytes: 8 << 30,
            max_processes: 512,
            max_file_bytes: 1 << 30,
            tmp_bytes: 512 << 20,
            wall_clock: DEADLINE,
            output_bytes: 1 << 20,
        });
        // File names and CSV in UTF-8, whatever the person's locale.
        policy.env.push(("LANG".to_owned(), "C.UTF-8".to_owned()));
        // A LibreOffice installed outside /usr (TDF's packages, in /opt) is
        // shown too: the folder holding its `program/`.
        if !program.starts_with("/usr")
            && let Some(install) = program.parent().and_then(Path::parent)
        {
            policy = policy.grant(Mount::read_only(install, install));
        }
        for entry in ETC_NEEDED.iter().map(Path::new).filter(|p| p.exists()) {
            policy = policy.etc_entry(entry);
        }
        let plan = backend
            .plan(&policy)
            .map_err(|e| Error::Unavailable(format!("LibreOffice cannot be sandboxed: {e}")))?;
        let outcome = backend.run(&plan, &mut |chunk| {
            let file = match chunk.stream {
                Stream::Stdout => &mut stdout,
                Stream::Stderr => &mut stderr,
            };
            // A log that cannot be written loses only the log.
            let _ = file.write_all(&chunk.bytes);
        });
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => return Ok(Err(format!("did not start in its sandbox ({}): {e}", backend.name()))),
        };
        let status = match outcome.termination {
            Termination::Exited { code: 0 } => return Ok(Ok(None)),
            Termination::TimedOut { .. } => return Ok(Err(stopped(input))),
            Termination::Exited { code } => format!("exit status: {code}"),
            Termination::Signaled { signal } => format!("killed by signal {signal}"),
        };
        Ok(Ok(Some(match outcome.limits_hit.as_slice() {
            [] => status,
            hit => format!("{status}, at its limits: {hit:?}"),
        })))
    }

    /// Runs LibreOffice as a plain process, where no sandbox works.
    fn run_directly(
        &self,
        input: &Path,
        filter: &str,
        outdir: &Path,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> Ended {
        let mut child = Command::new(&self.program)
            .arg(format!("-env:UserInstallation={}", file_url(&self.profile)))
            .args([
                "--headless",
                "--norestore",
                "--nolockcheck",
                "--convert-to",
                filter,
                "--outdir",
            ])
            .arg(outdir)
            .arg(input)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("did not start: {e}"))?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(None),
                Ok(Some(status)) => return Ok(Some(status.to_string())),
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(stopped(input));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(25)),
                Err(e) => return Err(format!("could not be waited for: {e}")),
            }
        }
    }

    /// A copy of the workbook at `xlsx`, every formula recalculated by
    /// LibreOffice and saved as xlsx in `outdir`.
    pub fn recalculated_copy(&self, xlsx: &Path, outdir: &Path) -> Result<PathBuf> {
        self.convert(xlsx, "xlsx:Calc MS Excel 2007 XML", "xlsx", outdir)
    }
}

/// How a conversion ended: `Ok(None)` when LibreOffice succeeded,
/// `Ok(Some(status))` when it failed, `Err(why)` when it did not run or was
/// stopped.
type Ended = std::result::Result<Option<String>, String>;

fn stopped(input: &Path) -> String {
    format!(
        "did not convert {} within {} s and was stopped",
        input.display(),
        DEADLINE.as_secs()
    )
}

/// This machine's sandbox for LibreOffice (bubblewrap on Linux), or why
/// there is none; then conversions run unsandboxed, and say so.
fn sandbox_backend() -> std::result::Result<Box<dyn ShellBackend + Send + Sync>, String> {
    #[cfg(target_os = "linux")]
    {
        let backend = deskhand_host_vm::bwrap::BwrapBackend::new();
        backend.check().map_err(|problem| problem.to_string())?;
        Ok(Box::new(backend))
    }
    #[cfg(not(target_os = "linux"))]
    Err(deskhand_host_vm::BackendProblem::UnsupportedPlatform.to_string())
}

/// `path` as a `file:` URL, as LibreOffice's `-env:UserInstallation` wants it
/// (a relative path taken from the current folder).
fn file_url(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    url::Url::from_file_path(&absolute).map_or_else(|()| format!("file://{}", absolute.display()), String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_urls_are_absolute_file_urls() {
        #[cfg(unix)]
        assert_eq!(file_url(Path::new("/tmp/a b/lo")), "file:///tmp/a%20b/lo");
        #[cfg(unix)]
        assert_eq!(file_url(Path::new("/tmp/n#1/José")), "file:///tmp/n%231/Jos%C3%A9");
        #[cfg(windows)]
        assert_eq!(file_url(Path::new(r"C:\Users\ana\lo")), "file:///C:/Users/ana/lo");
    }

    #[test]
    fn a_missing_program_is_unavailable_not_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let lo = LibreOffice::new(tmp.path().join("no-such-soffice"), &tmp.path().join("profile")).unwrap();
        let err = lo
            .recalculated_copy(&tmp.path().join("x.xlsx"), tmp.path())
            .unwrap_err();
        assert!(err.to_string().contains("did not start"), "{err}");
        assert!(tmp.path().join("profile/user").is_dir());
    }

    #[test]
    fn without_a_sandbox_it_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let lo = LibreOffice::new(tmp.path().join("no-such-soffice"), &tmp.path().join("profile")).unwrap();
        assert!(lo.sandbox.set(Err("bubblewrap is missing".to_owned())).is_ok());
        assert_eq!(
            lo.unsandboxed().as_deref(),
            Some("LibreOffice runs without a sandbox: bubblewrap is missing")
        );
        let err = lo
            .recalculated_copy(&tmp.path().join("x.xlsx"), tmp.path())
            .unwrap_err();
        let err = err.to_string();
        assert!(err.contains("did not start"), "{err}");
        assert!(
            err.ends_with("(it ran without a sandbox: bubblewrap is missing)"),
            "{err}"
        );
    }
}
