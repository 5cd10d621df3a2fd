//! `office__to_pdf`: Word, PowerPoint and spreadsheet files as new PDFs under
//! `output/`, converted by LibreOffice in the native sandbox
//! ([`crate::office`]: no network, only the system folders, its profile, the
//! one input file and a fresh folder for what it writes).
//!
//! It is a handler of the registry like the shell, and goes the same way:
//! the input must lie in a folder the step declares, the call is journaled
//! as a `ToolCallBegin`/`ToolCallEnd` pair, and the PDFs reach `output/` only
//! as a changeset of new files through the one change pipeline (never over a
//! file: `letter.pdf` taken, the new one is `letter-1.pdf`). Several files
//! convert all or none: one that fails stops the call, and nothing is written.

use std::path::{Path, PathBuf};

use deskhand_types::model::ToolSpec;
use deskhand_types::{CallId, CallOutcome, Event, ProposedChange, StepEffects};
use serde::Deserialize;
use serde_json::json;

use super::{Agent, RunState, StepNo};

/// The tool's name as the model and the offline planner call it.
pub(super) const TO_PDF: &str = "office__to_pdf";

/// What a folder given as the input contributes: documents, presentations
/// and spreadsheets LibreOffice opens.
const EXTENSIONS: &[&str] = &[
    "docx", "docm", "doc", "odt", "rtf", "pptx", "ppt", "odp", "xlsx", "xlsm", "xls", "ods",
];
/// The most files one call converts (each takes LibreOffice a few seconds).
const MAX_FILES: usize = 50;
/// The largest file handed to LibreOffice.
const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToPdfArgs {
    input: String,
    /// The folder under `output/` the PDFs go to (default: `output/` itself).
    #[serde(default)]
    path: Option<String>,
}

/// The spec the model sees.
pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: TO_PDF.into(),
        description: "Convert a Word, PowerPoint or spreadsheet file (.docx, .doc, .odt, .rtf, .pptx, .ppt, .odp, \
                      .xlsx, .xls, .ods), or every such file directly in a folder, into new PDFs under output/ \
                      named after them, with LibreOffice in a sandbox without network. Never overwrites a file. \
                      (runtime tool)"
            .into(),
        input_schema: json!({
            "type": "object", "required": ["input"], "additionalProperties": false,
            "properties": {
                "input": {"type": "string", "description": "a file, or a folder whose documents are all converted"},
                "path": {"type": "string", "default": "output", "description": "the folder under output/ the PDFs go to"}
            }
        }),
    }
}

impl Agent<'_> {
    pub(super) fn office_call(
        &self,
        st: &mut RunState,
        step: StepNo,
        id: &CallId,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let Some(office) = self.toolbox.office() else {
            return Err(
                "LibreOffice is not installed on this machine, so documents cannot be converted to PDF; \
                        install LibreOffice and run the task again"
                    .into(),
            );
        };
        let args: ToPdfArgs = serde_json::from_value(input.clone()).map_err(|e| {
            format!("office__to_pdf arguments are invalid: {e}; give {{\"input\": \"<file or folder>\"}}")
        })?;
        let refuse = |st: &RunState, reason: String| {
            self.block(st, reason.clone());
            Err(reason)
        };
        let files = match self.documents(st, &args.input) {
            Ok(files) => files,
            Err(reason) => return refuse(st, reason),
        };
        let output = match self.pdf_folder(args.path.as_deref()) {
            Ok(folder) => folder,
            Err(reason) => return refuse(st, reason),
        };
        let concrete = StepEffects {
            reads: files.clone(),
            writes: vec![output.clone()],
            network: Vec::new(),
            actions: Vec::new(),
        };
        if let Err(what) = self.within_effects(&concrete, &st.plan[step].effects) {
            return refuse(
                st,
                format!("step {step} did not declare that it {what}, so deskhand did not let it"),
            );
        }
        self.emit(
            &st.run,
            Event::ToolCallBegin {
                call: id.clone(),
                tool: "office".into(),
                operation: "to_pdf".into(),
                args: input.clone(),
            },
        );
        let started = std::time::Instant::now();
        let scratch_root = self.workspace.state_dir().join("scratch");
        let converted = std::fs::create_dir_all(&scratch_root)
            .and_then(|()| tempfile::Builder::new().prefix("office-").tempdir_in(&scratch_root))
            .map_err(|e| {
                format!(
                    "deskhand could not make a folder for LibreOffice's files in {}: {e}",
                    scratch_root.display()
                )
            })
            .and_then(|dir| convert_all(office, &files, dir.path(), &output).map(|pdfs| (dir, pdfs)));
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (dir, pdfs) = match converted {
            Ok(done) => done,
            Err(reason) => {
                let reason = format!("{reason}; nothing was written");
                self.emit(
                    &st.run,
                    Event::ToolCallEnd {
                        call: id.clone(),
                        outcome: CallOutcome::Stopped { reason: reason.clone() },
                        elapsed_ms,
                    },
                );
                return Err(reason);
            }
        };
        let names: Vec<String> = pdfs.iter().map(|(_, target)| file_name(target)).collect();
        let mut result = json!({"pdfs": pdfs.iter().map(|(_, t)| t.display().to_string()).collect::<Vec<_>>(),
                                "inputs": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>()});
        if let [(_, only)] = pdfs.as_slice() {
            result["path"] = json!(only.display().to_string());
        }
        let mut text = format!(
            "converted {} file{} to PDF: {}",
            pdfs.len(),
            if pdfs.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        if let Some(why) = office.unsandboxed() {
            text.push_str(&format!(" (LibreOffice ran without a sandbox: {why})"));
        }
        self.emit(
            &st.run,
            Event::ToolCallEnd {
                call: id.clone(),
                outcome: CallOutcome::Ok {
                    output: deskhand_types::ToolOutput::new(result.clone(), text.clone()),
                },
                elapsed_ms,
            },
        );
        let proposed: Vec<ProposedChange> = pdfs
            .iter()
            .map(|(staged, target)| ProposedChange::Create {
                path: target.display().to_string(),
                staged: staged.display().to_string(),
            })
            .collect();
        let content = |g: &str| {
            pdfs.iter()
                .find(|(staged, _)| staged.as_os_str() == g)
                .map(|(staged, _)| staged.clone())
                .ok_or_else(|| crate::error::Error::BadPath {
                    path: g.into(),
                    reason: "only the PDFs LibreOffice wrote for this call can be delivered",
                })
        };
        let outcome = self.apply_changes(st, step, id, &content, &proposed);
        drop(dir);
        text.push('\n');
        text.push_str(&result.to_string());
        text.push('\n');
        let refused = match outcome {
            Ok(done) => {
                text.push_str(&done);
                false
            }
            Err(refusal) => {
                text.push_str(&refusal.text);
                refusal.blocked
            }
        };
        let shown = self.shown_output(&st.run, id, "office.to_pdf", &text);
        if refused { Err(shown) } else { Ok(shown) }
    }

    /// The folder the PDFs go to: `output/`, or a folder in it that exists.
    fn pdf_folder(&self, path: Option<&str>) -> std::result::Result<PathBuf, String> {
        let output = self.workspace.output_dir();
        let output = output
            .canonicalize()
            .map_err(|e| format!("{} cannot be opened: {e}", output.display()))?;
        let Some(path) = path else { return Ok(output) };
        let folder = self.workspace.resolve_path(path).map_err(|e| e.to_string())?;
        let plain = std::fs::symlink_metadata(&folder).is_ok_and(|m| m.is_dir());
        match folder.canonicalize() {
            Ok(canonical) if plain && canonical.starts_with(&output) => Ok(canonical),
            _ => Err(format!(
                "{path} is not a folder in output/; the PDFs go to output/ or a folder that exists in it"
            )),
        }
    }

    /// The files `input` names: the file itself, or the documents directly
    /// in a folder (hidden names and links left out), in name order; each a
    /// regular file, not a link, in a folder the step's grants hold.
    fn documents(&self, st: &RunState, input: &str) -> std::result::Result<Vec<PathBuf>, String> {
        let path = self.workspace.resolve_path(input).map_err(|e| e.to_string())?;
        // Resolving follows links; the name as given must not be one.
        let as_given = if Path::new(input).is_absolute() {
            PathBuf::from(input)
        } else {
            self.workspace.root().join(input)
        };
        if std::fs::symlink_metadata(&as_given).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "{input} is a symbolic link; deskhand converts files, not links"
            ));
        }
        // The run's grants here; that the step declares the file is checked
        // by the caller (`within_effects`), as for every other tool.
        let policy = self.workspace.policy(&st.task.grants).map_err(|e| e.to_string())?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{input} cannot be read: {e}"))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{input} is a symbolic link; deskhand converts files, not links"
            ));
        }
        let canonical = path
            .canonicalize()
            .map_err(|e| format!("{input} cannot be read: {e}"))?;
        let granted = policy.folders.iter().any(|(root, _)| canonical.starts_with(root));
        if !granted {
            return Err(format!(
                "{input} is outside the folders this run was given; give the run its folder to convert it"
            ));
        }
        let mut files = Vec::new();
        if meta.is_dir() {
            let entries = std::fs::read_dir(&canonical).map_err(|e| format!("{input} cannot be listed: {e}"))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let wanted = Path::new(&name)
                    .extension()
                    .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
                if wanted
                    && !name.starts_with('.')
                    && !name.starts_with("~$")
                    && entry.file_type().is_ok_and(|t| t.is_file())
                {
                    files.push(entry.path());
                }
            }
            if files.is_empty() {
                return Err(format!(
                    "{input} has no document, presentation or spreadsheet directly in it ({})",
                    EXTENSIONS.join(", ")
                ));
            }
            files.sort_by_key(|f| file_name(f).to_lowercase());
        } else if meta.is_file() {
            let known = canonical
                .extension()
                .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
            if !known {
                return Err(format!(
                    "{input} is not a file LibreOffice converts to PDF here; give one of: {}",
                    EXTENSIONS.join(", ")
                ));
            }
            files.push(canonical);
        } else {
            return Err(format!("{input} is neither a file nor a folder"));
        }
        if files.len() > MAX_FILES {
            return Err(format!(
                "{input} holds {} documents; one call converts at most {MAX_FILES}: convert them in parts",
                files.len()
            ));
        }
        for file in &files {
            let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            if size > MAX_FILE_BYTES {
                return Err(format!(
                    "{} is {} MiB; deskhand converts files up to {} MiB",
                    file.display(),
                    size >> 20,
                    MAX_FILE_BYTES >> 20
                ));
            }
        }
        Ok(files)
    }
}

/// Converts each file into its own folder under `scratch` and picks its
/// name in `output`: `<stem>.pdf`, or `<stem>-1.pdf` ... when that is taken
/// (in `output/` or earlier in this call). Stops at the first failure.
fn convert_all(
    office: &crate::office::LibreOffice,
    files: &[PathBuf],
    scratch: &Path,
    output: &Path,
) -> std::result::Result<Vec<(PathBuf, PathBuf)>, String> {
    let mut done: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let outdir = scratch.join(i.to_string());
        std::fs::create_dir(&outdir).map_err(|e| format!("{}: {e}", outdir.display()))?;
        let pdf = office
            .convert(file, "pdf", "pdf", &outdir)
            .map_err(|e| format!("{} could not be converted to PDF: {e}", file_name(file)))?;
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut n = 0;
        let target = loop {
            let name = if n == 0 {
                format!("{stem}.pdf")
            } else {
                format!("{stem}-{n}.pdf")
            };
            let target = output.join(name);
            let taken = std::fs::symlink_metadata(&target).is_ok() || done.iter().any(|(_, t)| *t == target);
            if !taken {
                break target;
            }
            n += 1;
        };
        done.push((pdf, target));
    }
    Ok(done)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
