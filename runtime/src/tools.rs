//! The tools deskhand ships, and the one path every call takes: look the
//! tool and operation up, build the sandbox from the grants, check and
//! resolve the paths the arguments name against the operation's declared
//! effects, journal the call, run it, journal the outcome.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use deskhand_types::{Access, Event, Grant, RunId, RunStatus, ToolDescription, ToolOutput};

use crate::error::{Error, Result};
use crate::ids;
use crate::wasm::{Limits, LoadedTool, Mount, WasmHost};
use crate::workspace::Workspace;

/// A tool bundled into the binary. Tools are types, not strings: adding one
/// means adding a variant, and every match on it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundledTool {
    Fs,
    Inventory,
    RenameByDate,
    Xlsx,
    Pdf,
    Docx,
    Pptx,
    Receipts,
    /// CPython 3.14 (componentize-py) running a script the model wrote.
    Python,
}

impl BundledTool {
    pub const ALL: [BundledTool; 9] = [
        BundledTool::Fs,
        BundledTool::Inventory,
        BundledTool::RenameByDate,
        BundledTool::Xlsx,
        BundledTool::Pdf,
        BundledTool::Docx,
        BundledTool::Pptx,
        BundledTool::Receipts,
        BundledTool::Python,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BundledTool::Fs => "fs",
            BundledTool::Inventory => "inventory",
            BundledTool::RenameByDate => "rename-by-date",
            BundledTool::Xlsx => "xlsx",
            BundledTool::Pdf => "pdf",
            BundledTool::Docx => "docx",
            BundledTool::Pptx => "pptx",
            BundledTool::Receipts => "receipts",
            BundledTool::Python => "python",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    fn component(self) -> &'static [u8] {
        match self {
            BundledTool::Fs => include_bytes!(concat!(env!("OUT_DIR"), "/fs.wasm")),
            BundledTool::Inventory => include_bytes!(concat!(env!("OUT_DIR"), "/inventory.wasm")),
            BundledTool::RenameByDate => include_bytes!(concat!(env!("OUT_DIR"), "/rename_by_date.wasm")),
            BundledTool::Xlsx => include_bytes!(concat!(env!("OUT_DIR"), "/xlsx.wasm")),
            BundledTool::Pdf => include_bytes!(concat!(env!("OUT_DIR"), "/pdf.wasm")),
            BundledTool::Docx => include_bytes!(concat!(env!("OUT_DIR"), "/docx.wasm")),
            BundledTool::Pptx => include_bytes!(concat!(env!("OUT_DIR"), "/pptx.wasm")),
            BundledTool::Receipts => include_bytes!(concat!(env!("OUT_DIR"), "/receipts.wasm")),
            BundledTool::Python => include_bytes!(concat!(env!("OUT_DIR"), "/python.wasm")),
        }
    }

    /// The description a tool ships beside its component, for tools too large
    /// to compile just to list them (the python tool: about 35 s in a debug
    /// build on two cores, once per cache). Loading checks that the component
    /// says the same.
    fn shipped_description(self) -> Option<&'static str> {
        match self {
            BundledTool::Python => Some(include_str!("../../guest-tools/python/description.json")),
            BundledTool::Fs
            | BundledTool::Inventory
            | BundledTool::RenameByDate
            | BundledTool::Xlsx
            | BundledTool::Pdf
            | BundledTool::Docx
            | BundledTool::Pptx
            | BundledTool::Receipts => None,
        }
    }
}

/// Where the `pdf` tool sees its font folders (the guest's `FONTS_LATIN` and `FONTS_CJK`).
pub const FONTS_LATIN_GUEST: &str = "/fonts/latin";
pub const FONTS_CJK_GUEST: &str = "/fonts/cjk";

/// The font folders the `pdf` tool reads (read-only, and no other tool sees
/// them) to embed fonts in the PDFs it writes: a folder holding a Latin font
/// (DejaVu Sans, Liberation Sans, Noto Sans or FreeSans) and one holding a
/// CJK fallback (Droid Sans Fallback or WenQuanYi). Without a Latin folder
/// the tool still reads, merges and splits PDFs; its `report` says which
/// package to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FontFolders {
    pub latin: Option<PathBuf>,
    pub cjk: Option<PathBuf>,
}

impl FontFolders {
    /// Folders where Linux distributions install the fonts the tool knows,
    /// with a file that shows the font is there.
    pub const KNOWN_LATIN: &[(&str, &str)] = &[
        ("/usr/share/fonts/truetype/dejavu", "DejaVuSans.ttf"),
        ("/usr/share/fonts/dejavu-sans-fonts", "DejaVuSans.ttf"),
        ("/usr/share/fonts/dejavu", "DejaVuSans.ttf"),
        ("/usr/share/fonts/TTF", "DejaVuSans.ttf"),
        ("/usr/share/fonts/truetype/liberation", "LiberationSans-Regular.ttf"),
        ("/usr/share/fonts/truetype/freefont", "FreeSans.ttf"),
    ];
    pub const KNOWN_CJK: &[(&str, &str)] = &[
        ("/usr/share/fonts/truetype/droid", "DroidSansFallbackFull.ttf"),
        ("/usr/share/fonts-droid-fallback/truetype", "DroidSansFallback.ttf"),
        ("/usr/share/fonts/google-droid-sans-fonts", "DroidSansFallbackFull.ttf"),
        ("/usr/share/fonts/truetype/wqy", "wqy-microhei.ttc"),
    ];

    /// The first known folder of each kind that holds its font file.
    pub fn discover() -> Self {
        let find = |known: &[(&str, &str)]| {
            known
                .iter()
                .map(|(dir, file)| (Path::new(dir), *file))
                .find(|(dir, file)| dir.join(file).is_file())
                .map(|(dir, _)| dir.to_path_buf())
        };
        FontFolders {
            latin: find(Self::KNOWN_LATIN),
            cjk: find(Self::KNOWN_CJK),
        }
    }

    /// The read-only mounts that show these folders to the pdf tool.
    fn mounts(&self) -> Vec<Mount> {
        [(&self.latin, FONTS_LATIN_GUEST), (&self.cjk, FONTS_CJK_GUEST)]
            .into_iter()
            .filter_map(|(host, guest)| {
                let host = host.as_ref()?.canonicalize().ok()?;
                Some(Mount {
                    host,
                    guest: guest.into(),
                    access: Access::ReadOnly,
                })
            })
            .collect()
    }
}

/// The bundled tools, each compiled (or loaded from the cache) on first use,
/// and the WIT components that installed skills ship, loaded when added.
pub struct Toolbox {
    host: WasmHost,
    fonts: FontFolders,
    office: Option<crate::office::LibreOffice>,
    loaded: [OnceLock<LoadedTool>; BundledTool::ALL.len()],
    /// Held while a bundled tool loads, so threads that need it at once
    /// compile it once and the rest wait.
    loading: Mutex<()>,
    components: Vec<(String, LoadedTool)>,
    call_folders: crate::call::CallFolders,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Toolbox {
    /// A toolbox whose pdf tool uses the fonts found at the known folders.
    pub fn new(host: WasmHost) -> Self {
        Self::with_fonts(host, FontFolders::discover())
    }

    /// A toolbox whose pdf tool uses these font folders.
    pub fn with_fonts(host: WasmHost, fonts: FontFolders) -> Self {
        Toolbox {
            host,
            fonts,
            office: None,
            loaded: Default::default(),
            loading: Mutex::new(()),
            components: Vec::new(),
            call_folders: crate::call::CallFolders::default(),
        }
    }

    /// The empty call folders kept for the next calls (see [`crate::call::CallFolders`]).
    pub(crate) fn call_folders(&self) -> &crate::call::CallFolders {
        &self.call_folders
    }

    /// The folders a bundled tool sees besides a call's grants (read-only).
    pub fn extra_mounts(&self, tool: BundledTool) -> Vec<Mount> {
        match tool {
            // The receipts tool writes its summary with the pdf tool's code.
            BundledTool::Pdf | BundledTool::Receipts => self.fonts.mounts(),
            BundledTool::Fs
            | BundledTool::Inventory
            | BundledTool::RenameByDate
            | BundledTool::Xlsx
            | BundledTool::Docx
            | BundledTool::Pptx
            | BundledTool::Python => Vec::new(),
        }
    }

    /// Adds a skill's own WIT component under `name` (the skill's name). It
    /// runs in the same sandbox, with the same checks, as a bundled tool.
    pub fn add_component(&mut self, name: &str, path: &std::path::Path) -> Result<()> {
        if BundledTool::from_name(name).is_some() || self.components.iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidArgs(format!(
                "a tool named {name:?} is already installed; rename the skill that ships {}",
                path.display()
            )));
        }
        let loaded = self.host.load_file(path)?;
        self.components.push((name.to_owned(), loaded));
        Ok(())
    }

    /// Every tool's name: the bundled ones, then the added components.
    pub fn names(&self) -> Vec<String> {
        BundledTool::ALL
            .iter()
            .map(|t| t.name().to_owned())
            .chain(self.components.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// Uses `office` to compute the values stored in the workbooks tools
    /// write (see [`crate::office`]); without it they hold formulas only.
    pub fn with_office(mut self, office: Option<crate::office::LibreOffice>) -> Self {
        self.office = office;
        self
    }

    pub fn office(&self) -> Option<&crate::office::LibreOffice> {
        self.office.as_ref()
    }

    pub fn host(&self) -> &WasmHost {
        &self.host
    }

    pub fn get(&self, tool: BundledTool) -> Result<&LoadedTool> {
        let slot = &self.loaded[BundledTool::ALL.iter().position(|t| *t == tool).unwrap_or(0)];
        if let Some(loaded) = slot.get() {
            return Ok(loaded);
        }
        // A poisoned lock only means another load panicked; loading again is safe.
        let _loading = self.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(loaded) = slot.get() {
            return Ok(loaded);
        }
        let loaded = self.host.load(tool.name(), tool.component())?;
        if let Some(shipped) = Self::shipped(tool)?
            && shipped != *loaded.description()
        {
            return Err(Error::Load(crate::wasm::LoadError::Invalid {
                name: tool.name().into(),
                message: "the component describes itself differently from the description shipped with it".into(),
            }));
        }
        Ok(slot.get_or_init(|| loaded))
    }

    fn shipped(tool: BundledTool) -> Result<Option<ToolDescription>> {
        tool.shipped_description()
            .map(|text| {
                serde_json::from_str(text).map_err(|e| {
                    Error::Load(crate::wasm::LoadError::Invalid {
                        name: tool.name().into(),
                        message: format!("its shipped description is not valid: {e}"),
                    })
                })
            })
            .transpose()
    }

    /// A bundled tool's description without loading it where the tool ships
    /// one (see [`BundledTool::shipped_description`]), else from the tool.
    fn description_of(&self, tool: BundledTool) -> Result<ToolDescription> {
        let slot = &self.loaded[BundledTool::ALL.iter().position(|t| *t == tool).unwrap_or(0)];
        if slot.get().is_none()
            && let Some(shipped) = Self::shipped(tool)?
        {
            return Ok(shipped);
        }
        self.get(tool).map(|l| l.description().clone())
    }

    pub fn by_name(&self, name: &str) -> Result<&LoadedTool> {
        if let Some(tool) = BundledTool::from_name(name) {
            return self.get(tool);
        }
        self.components
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, loaded)| loaded)
            .ok_or_else(|| Error::UnknownTool {
                name: name.into(),
                known: self.names(),
            })
    }

    /// The read-only path: runs `op` of `tool`, an operation that declares
    /// no writes and no network, in a sandbox holding only `output/`,
    /// unjournaled (it changes nothing and is not a run). For previews; an
    /// operation that writes is refused before anything runs.
    pub fn read_only(
        &self,
        workspace: &Workspace,
        tool: BundledTool,
        op: &str,
        args: &serde_json::Value,
    ) -> Result<ToolOutput> {
        let loaded = self.get(tool)?;
        let declared = operation(loaded, tool.name(), op)?;
        if !declared.effects.writes.is_empty() || declared.effects.network {
            return Err(Error::InvalidArgs(format!(
                "{} {op} changes files or reaches the network, so it cannot run as a read-only preview",
                tool.name()
            )));
        }
        let sandbox = workspace.policy(&[])?.sandbox(Limits::default())?;
        loaded
            .call(&sandbox, op, &args.to_string(), None)
            .result
            .map_err(Error::Call)
    }

    /// Every tool's description, under the name calls use.
    pub fn descriptions(&self) -> Result<Vec<ToolDescription>> {
        self.names()
            .iter()
            .map(|n| {
                let description = match BundledTool::from_name(n) {
                    Some(tool) => self.description_of(tool)?,
                    None => self.by_name(n)?.description().clone(),
                };
                Ok(ToolDescription {
                    name: n.clone(),
                    ..description
                })
            })
            .collect()
    }
}

/// Operation `op` of `tool` (called `name`), or an error listing the ones it has.
pub(crate) fn operation<'t>(tool: &'t LoadedTool, name: &str, op: &str) -> Result<&'t deskhand_types::Operation> {
    tool.description().operation(op).ok_or_else(|| Error::UnknownOperation {
        tool: name.into(),
        operation: op.into(),
        known: tool
            .description()
            .operation_names()
            .into_iter()
            .map(String::from)
            .collect(),
    })
}

/// One tool call as the person or a plan asks for it.
#[derive(Debug, Clone)]
pub struct CallRequest<'a> {
    pub tool: &'a str,
    pub operation: &'a str,
    pub args: serde_json::Value,
    pub grants: &'a [Grant],
    pub limits: Limits,
}

/// Where a call's live events go besides the journal (the CLI's progress line).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// A finished call: its run in the journal and the tool's output.
#[derive(Debug)]
pub struct CallResult {
    pub run: RunId,
    pub output: ToolOutput,
}

/// The paths in `output/` that a call's arguments name (relative to it).
fn named_in_output(workspace: &Workspace, output: &Path, args: &serde_json::Value) -> Vec<PathBuf> {
    let mut named = Vec::new();
    let mut stack = vec![args];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(s) => {
                if let Ok(path) = workspace.resolve_path(s)
                    && let Ok(rel) = path.strip_prefix(output)
                    && !rel.as_os_str().is_empty()
                {
                    named.push(rel.to_path_buf());
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
    named
}

/// The new files a `deskhand tool run` call left in its copy of `output/`,
/// delivered through the one change pipeline: the person who ran the tool
/// approved them with the step; anything else it changed there goes back
/// to the caller as proposals, as the guest's own do.
fn deliver_new_files(
    workspace: &Workspace,
    run: &RunId,
    call: &deskhand_types::CallId,
    prepared: &crate::call::PreparedCall<'_>,
    mut output: ToolOutput,
    emit: &dyn Fn(Event),
) -> Result<ToolOutput> {
    let changes = prepared.output_changes().map_err(|reason| {
        Error::InvalidArgs(format!(
            "the call's files in output/ were not kept: {reason}; nothing was changed"
        ))
    })?;
    let (creates, others): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .partition(|c| matches!(c, deskhand_types::ProposedChange::Create { .. }));
    output.changes.extend(others);
    // A file of the same name from another run, which this call could not
    // see, is refused as the tool refuses writing over one it sees.
    for c in &creates {
        if let deskhand_types::ProposedChange::Create { path, .. } = c
            && std::fs::symlink_metadata(path).is_ok()
        {
            return Err(Error::Call(crate::wasm::CallError::Tool(
                deskhand_types::ToolError::AlreadyExists {
                    path: path.clone(),
                    message: "output/ already holds a file of that name (from another run); pick a free name".into(),
                },
            )));
        }
    }
    let roots = [prepared
        .stage
        .as_ref()
        .map(|s| s.real.clone())
        .unwrap_or_else(|| workspace.output_dir())];
    let delivered = |named: &str| crate::call::PreparedCall::delivered_source(&creates, named);
    let within_step = |_: &crate::changeset::Changeset| Ok(());
    let outcome = crate::pipeline::run(&crate::pipeline::Proposal {
        workspace,
        run,
        step: deskhand_types::StepNo(1),
        call,
        mode: deskhand_types::Mode::Act,
        gate: &crate::agent::ApproveAll,
        step_approval: Some(RAN_BY_THE_PERSON),
        roots: &roots,
        staged: &delivered,
        changes: &creates,
        in_read_only_grant: false,
        within_step: &within_step,
        emit,
    });
    match outcome {
        crate::pipeline::Outcome::Refused { reason, .. } => {
            Err(Error::InvalidArgs(format!("{reason}; nothing was changed")))
        }
        _ => Ok(output),
    }
}

/// Who planned and approved a `deskhand tool run` call.
const RAN_BY_THE_PERSON: &str = "the person, who ran the tool";

/// Runs one call as a journaled task of one step. On failure the task is
/// still journaled, with the error as its outcome.
pub fn run_call(
    workspace: &Workspace,
    toolbox: &Toolbox,
    req: &CallRequest<'_>,
    observer: Option<Observer>,
) -> Result<CallResult> {
    // The person ran this tool and named its files: what they named in
    // output/ is theirs to show it, and nothing else there.
    let policy = workspace.policy(req.grants)?;
    let mut visible = crate::stage::visible_output(workspace, None, &policy)?;
    visible.extend(named_in_output(workspace, &policy.output, &req.args));
    let prepared = crate::call::prepare(
        workspace,
        toolbox,
        req.tool,
        req.operation,
        &req.args,
        &policy,
        req.limits,
        &visible,
    )?;
    let title = format!("{} {}", req.tool, req.operation);
    let task = deskhand_types::Task {
        outcome: title.clone(),
        grants: req.grants.to_vec(),
        mode: deskhand_types::Mode::Act,
        params: Default::default(),
    };
    let step = deskhand_types::PlanStep {
        title,
        effects: deskhand_types::StepEffects {
            reads: prepared.reads.clone(),
            writes: prepared.writes.clone(),
            network: Vec::new(),
            actions: Vec::new(),
        },
        status: deskhand_types::StepStatus::Pending,
    };
    let observe = |event: &Event| {
        if let Some(obs) = &observer {
            obs(event);
        }
    };
    let mut one = crate::one_step::OneStepRun::begin(workspace, task, RAN_BY_THE_PERSON, step, Some(&observe))?;
    one.approved_by_the_person(RAN_BY_THE_PERSON);
    let run = one.run().clone();
    let call = ids::call_id();
    let emit = |event: Event| one.emit(event);
    let recorded = || !workspace.journal().has_lost_event(&run);
    let result = crate::call::execute(&prepared, &call, &emit, &recorded)
        .and_then(|output| deliver_new_files(workspace, &run, &call, &prepared, output, &emit));
    let (status, summary) = match &result {
        Ok(_) => (RunStatus::Succeeded, format!("{} {} finished", req.tool, req.operation)),
        Err(e) => (RunStatus::Failed, e.to_string()),
    };
    let what_now = format!("The tool ran; `deskhand undo {run}` reverses any file it delivered to output/.");
    one.finish(status, summary, false, &what_now)?;
    result.map(|output| CallResult { run, output })
}
