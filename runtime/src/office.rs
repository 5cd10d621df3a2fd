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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// A headless LibreOffice with its own recalculate-always profile.
#[derive(Debug)]
pub struct LibreOffice {
    program: PathBuf,
    profile: PathBuf,
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
        })
    }

    pub fn program(&self) -> &Path {
        &self.program
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
        let unavailable = |why: String| Error::Unavailable(format!("LibreOffice ({}) {why}", self.program.display()));
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
            .stdout(Stdio::from(stdout_file))
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .map_err(|e| unavailable(format!("did not start: {e}")))?;
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(unavailable(format!(
                        "did not convert {} within {} s and was stopped",
                        input.display(),
                        DEADLINE.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(25)),
                Err(e) => return Err(unavailable(format!("could not be waited for: {e}"))),
            }
        };
        let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        let stderr = read(&stderr_path);
        if !status.success() || !produced.is_file() {
            return Err(unavailable(format!(
                "could not convert {} ({status}): {}{}",
                input.display(),
                read(&stdout_path).trim(),
                stderr.trim()
            )));
        }
        Ok((produced, stderr))
    }

    /// A copy of the workbook at `xlsx`, every formula recalculated by
    /// LibreOffice and saved as xlsx in `outdir`.
    pub fn recalculated_copy(&self, xlsx: &Path, outdir: &Path) -> Result<PathBuf> {
        self.convert(xlsx, "xlsx:Calc MS Excel 2007 XML", "xlsx", outdir)
    }
}

/// `file:///abs/path` (forward slashes, spaces and `%` escaped), as
/// LibreOffice's `-env:UserInstallation` wants it.
fn file_url(path: &Path) -> String {
    let text = path.display().to_string().replace('\\', "/");
    let escaped = text.replace('%', "%25").replace(' ', "%20");
    if escaped.starts_with('/') {
        format!("file://{escaped}")
    } else {
        format!("file:///{escaped}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_urls_are_absolute_file_urls() {
        assert_eq!(file_url(Path::new("/tmp/a b/lo")), "file:///tmp/a%20b/lo");
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
}
