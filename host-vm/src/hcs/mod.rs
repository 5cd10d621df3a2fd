//! The Windows backend: a Linux utility VM under the Host Compute Service (Hyper-V), one per
//! command.
//!
//! NOT YET RUN on a real Windows machine: it is compile-checked for `x86_64-pc-windows-msvc`
//! in CI, and its pure half ([`crate::vmspec::hcs_document`]) and the console protocol are
//! unit-tested on Linux. See host-vm/README.md for what Windows needs (Hyper-V, rights to
//! create compute systems, a kernel and initramfs).
//!
//! The compute system is created from the JSON document of [`crate::vmspec`]: kernel-direct
//! boot, Plan9 shares of the granted folders (read-only unless granted writable), no network
//! adapter, memory and processors from the policy, COM1 on a named pipe. This module starts
//! it, opens the pipe (overlapped, so the console can read and write at once), runs the job
//! over it with [`crate::guest_protocol::Console`], and terminates the compute system when the
//! job ends or the wall clock runs out.
//!
//! `computecore.dll` is loaded at run time, not linked: on Windows editions without Hyper-V
//! it does not exist, and a link-time import would stop deskhand from starting at all.
#![expect(
    unsafe_code,
    reason = "the Host Compute Service and overlapped pipe I/O are C APIs: every call is unsafe"
)]

use std::ffi::c_void;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use windows::Win32::Foundation::{
    CloseHandle, E_ACCESSDENIED, ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_IO_PENDING, ERROR_PIPE_BUSY,
    GENERIC_READ, GENERIC_WRITE, HANDLE, HLOCAL, HMODULE, LocalFree,
};
use windows::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_OVERLAPPED, FILE_SHARE_NONE, OPEN_EXISTING, ReadFile, WriteFile,
};
use windows::Win32::System::HostComputeSystem::{HCS_OPERATION, HCS_OPERATION_COMPLETION, HCS_SYSTEM};
use windows::Win32::System::IO::{GetOverlappedResult, OVERLAPPED};
use windows::Win32::System::LibraryLoader::{GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW};
use windows::Win32::System::Threading::CreateEventW;
use windows::core::{HRESULT, HSTRING, PCSTR, PCWSTR, PWSTR};

use crate::guest_protocol::Console;
use crate::vmspec::{self, GuestImage};
use crate::{
    BackendProblem, LaunchPlan, OutputChunk, PolicyError, ShellBackend, ShellError, ShellOutcome, ShellPolicy,
};

/// How long a VM may take from creation to init's ready line.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a single HCS call (create, start, terminate) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to keep trying to open the console pipe once the VM started.
const PIPE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct HcsBackend {
    image: GuestImage,
    boot_timeout: Duration,
    checked: OnceLock<Result<(), BackendProblem>>,
}

impl std::fmt::Debug for HcsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HcsBackend").field("image", &self.image).finish()
    }
}

impl HcsBackend {
    /// A backend booting `image`, whose init must be [`vmspec::hcs_init_script`].
    pub fn new(image: GuestImage) -> HcsBackend {
        HcsBackend {
            image,
            boot_timeout: BOOT_TIMEOUT,
            checked: OnceLock::new(),
        }
    }

    pub fn with_boot_timeout(mut self, timeout: Duration) -> HcsBackend {
        self.boot_timeout = timeout;
        self
    }

    fn check_uncached(&self) -> Result<(), BackendProblem> {
        let hcs = Hcs::get().map_err(|detail| BackendProblem::HcsUnavailable { detail })?;
        // Listing compute systems needs the same rights as creating one.
        hcs.call(|op| unsafe { (hcs.enumerate)(PCWSTR::null(), op) })
            .map_err(HcsFailure::into_problem)?;
        for path in [&self.image.kernel, &self.image.initramfs] {
            if !path.is_file() {
                return Err(BackendProblem::GuestImageMissing { path: path.clone() });
            }
        }
        let trial = self
            .plan(&ShellPolicy::new(["true"]))
            .map_err(|e| BackendProblem::PlatformVmFails { detail: e.to_string() })?;
        vmspec::trial_verdict(self.launch(hcs, &trial, &mut |_| {}), |detail| {
            BackendProblem::PlatformVmFails { detail }
        })
    }

    fn launch(
        &self,
        hcs: &'static Hcs,
        plan: &LaunchPlan,
        on_output: &mut dyn FnMut(OutputChunk),
    ) -> Result<ShellOutcome, ShellError> {
        let job = plan.guest_script.as_deref();
        let id = system_id();
        let (Some(job), Some(document)) = (job, vmspec::hcs_document_for(plan, &id)) else {
            return Err(ShellError::Setup {
                message: "this launch plan was not made by the Host Compute Service backend".to_owned(),
            });
        };
        vmspec::check_host_paths(plan)?;
        let setup = |e: HcsFailure| ShellError::Setup { message: e.to_string() };

        let boot_deadline = Instant::now() + self.boot_timeout;
        let system = ComputeSystem::create(hcs, &id, &document.to_string()).map_err(setup)?;
        system.start().map_err(setup)?;
        let pipe = Pipe::open(&vmspec::hcs_console_pipe(&id), Instant::now() + PIPE_TIMEOUT).map_err(|e| {
            ShellError::Setup {
                message: format!("cannot open the VM's console: {e}"),
            }
        })?;
        let outcome = Console::new(pipe.clone(), pipe).boot_and_run(
            boot_deadline,
            self.boot_timeout,
            job,
            &plan.supervision,
            on_output,
        );
        // One VM per command: terminating it ends the command and all it started, and closes
        // the console pipe, which ends the console's reader.
        drop(system);
        outcome
    }
}

impl ShellBackend for HcsBackend {
    fn name(&self) -> &str {
        "hyper-v"
    }

    fn check(&self) -> Result<(), BackendProblem> {
        self.checked.get_or_init(|| self.check_uncached()).clone()
    }

    fn plan(&self, policy: &ShellPolicy) -> Result<LaunchPlan, PolicyError> {
        vmspec::hcs_transform(policy, &self.image)
    }

    fn run(&self, plan: &LaunchPlan, on_output: &mut dyn FnMut(OutputChunk)) -> Result<ShellOutcome, ShellError> {
        self.check()?;
        let hcs = Hcs::get().map_err(|detail| BackendProblem::HcsUnavailable { detail })?;
        self.launch(hcs, plan, on_output)
    }
}

/// A compute system id no other run uses.
fn system_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!(
        "deskhand-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

type CreateOperationFn = unsafe extern "system" fn(*const c_void, HCS_OPERATION_COMPLETION) -> HCS_OPERATION;
type CloseOperationFn = unsafe extern "system" fn(HCS_OPERATION);
type WaitForOperationResultFn = unsafe extern "system" fn(HCS_OPERATION, u32, *mut PWSTR) -> HRESULT;
type CreateComputeSystemFn =
    unsafe extern "system" fn(PCWSTR, PCWSTR, HCS_OPERATION, *const c_void, *mut HCS_SYSTEM) -> HRESULT;
type SystemOperationFn = unsafe extern "system" fn(HCS_SYSTEM, HCS_OPERATION, PCWSTR) -> HRESULT;
type CloseComputeSystemFn = unsafe extern "system" fn(HCS_SYSTEM);
type EnumerateComputeSystemsFn = unsafe extern "system" fn(PCWSTR, HCS_OPERATION) -> HRESULT;

/// The functions of `computecore.dll` this backend calls.
struct Hcs {
    create_operation: CreateOperationFn,
    close_operation: CloseOperationFn,
    wait: WaitForOperationResultFn,
    create: CreateComputeSystemFn,
    start: SystemOperationFn,
    terminate: SystemOperationFn,
    close: CloseComputeSystemFn,
    enumerate: EnumerateComputeSystemsFn,
}

impl Hcs {
    /// Loads `computecore.dll` from System32 once per process.
    fn get() -> Result<&'static Hcs, String> {
        static HCS: OnceLock<Result<Hcs, String>> = OnceLock::new();
        HCS.get_or_init(Hcs::load).as_ref().map_err(Clone::clone)
    }

    fn load() -> Result<Hcs, String> {
        // SAFETY: loading a system DLL by name from System32 only; it is never unloaded, so
        // the function pointers stay valid for the life of the process.
        let module = unsafe { LoadLibraryExW(&HSTRING::from("computecore.dll"), None, LOAD_LIBRARY_SEARCH_SYSTEM32) }
            .map_err(|e| format!("computecore.dll cannot be loaded: {}", e.message()))?;
        // SAFETY (each): the names and signatures are those of computecore.h.
        unsafe {
            Ok(Hcs {
                create_operation: std::mem::transmute::<Proc, CreateOperationFn>(proc(module, c"HcsCreateOperation")?),
                close_operation: std::mem::transmute::<Proc, CloseOperationFn>(proc(module, c"HcsCloseOperation")?),
                wait: std::mem::transmute::<Proc, WaitForOperationResultFn>(proc(
                    module,
                    c"HcsWaitForOperationResult",
                )?),
                create: std::mem::transmute::<Proc, CreateComputeSystemFn>(proc(module, c"HcsCreateComputeSystem")?),
                start: std::mem::transmute::<Proc, SystemOperationFn>(proc(module, c"HcsStartComputeSystem")?),
                terminate: std::mem::transmute::<Proc, SystemOperationFn>(proc(module, c"HcsTerminateComputeSystem")?),
                close: std::mem::transmute::<Proc, CloseComputeSystemFn>(proc(module, c"HcsCloseComputeSystem")?),
                enumerate: std::mem::transmute::<Proc, EnumerateComputeSystemsFn>(proc(
                    module,
                    c"HcsEnumerateComputeSystems",
                )?),
            })
        }
    }

    /// Runs one asynchronous HCS call through a fresh operation and waits for its result
    /// document.
    fn call(&self, start: impl FnOnce(HCS_OPERATION) -> HRESULT) -> Result<String, HcsFailure> {
        // SAFETY: no context and no callback: the operation is waited on below.
        let op = unsafe { (self.create_operation)(std::ptr::null(), None) };
        if op.0.is_null() {
            return Err(HcsFailure {
                code: HRESULT(0),
                detail: "HcsCreateOperation failed".to_owned(),
            });
        }
        let started = start(op);
        let result = if started.is_err() {
            Err(HcsFailure::new(started, String::new()))
        } else {
            let mut document = PWSTR::null();
            let millis = u32::try_from(CALL_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
            // SAFETY: `op` is live; `document` receives a LocalAlloc'd string or null.
            let code = unsafe { (self.wait)(op, millis, &mut document) };
            let text = take_string(document);
            if code.is_err() {
                Err(HcsFailure::new(code, text))
            } else {
                Ok(text)
            }
        };
        // SAFETY: `op` is live and not used after this.
        unsafe { (self.close_operation)(op) };
        result
    }
}

type Proc = unsafe extern "system" fn() -> isize;

fn proc(module: HMODULE, name: &std::ffi::CStr) -> Result<Proc, String> {
    // SAFETY: `module` is loaded and `name` is NUL-terminated.
    unsafe { GetProcAddress(module, PCSTR(name.as_ptr().cast())) }
        .ok_or_else(|| format!("computecore.dll has no {}", name.to_string_lossy()))
}

/// Reads and frees a string HCS returned.
fn take_string(text: PWSTR) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: HCS returns a NUL-terminated UTF-16 string allocated with LocalAlloc.
    unsafe {
        let owned = text.to_string().unwrap_or_default();
        let _ = LocalFree(Some(HLOCAL(text.0.cast())));
        owned
    }
}

/// An HCS call that failed: its HRESULT and the result document, which says why.
#[derive(Debug)]
struct HcsFailure {
    code: HRESULT,
    detail: String,
}

impl HcsFailure {
    fn new(code: HRESULT, document: String) -> HcsFailure {
        let detail = if document.is_empty() { code.message() } else { document };
        HcsFailure { code, detail }
    }

    fn into_problem(self) -> BackendProblem {
        if self.code == E_ACCESSDENIED {
            BackendProblem::HcsAccessDenied {
                detail: self.to_string(),
            }
        } else {
            BackendProblem::HcsUnavailable {
                detail: self.to_string(),
            }
        }
    }
}

impl std::fmt::Display for HcsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HCS error {:#010x}: {}", self.code.0, self.detail.trim())
    }
}

/// A created compute system, terminated and closed when dropped.
struct ComputeSystem {
    hcs: &'static Hcs,
    handle: HCS_SYSTEM,
}

impl ComputeSystem {
    fn create(hcs: &'static Hcs, id: &str, document: &str) -> Result<ComputeSystem, HcsFailure> {
        let id = HSTRING::from(id);
        let document = HSTRING::from(document);
        let mut handle = HCS_SYSTEM(std::ptr::null_mut());
        // SAFETY: the strings outlive the call (it is waited on inside `call`); `handle` is
        // written before the call returns.
        hcs.call(|op| unsafe {
            (hcs.create)(
                PCWSTR(id.as_ptr()),
                PCWSTR(document.as_ptr()),
                op,
                std::ptr::null(),
                &mut handle,
            )
        })?;
        Ok(ComputeSystem { hcs, handle })
    }

    fn start(&self) -> Result<(), HcsFailure> {
        // SAFETY: `handle` is a live compute system.
        self.hcs
            .call(|op| unsafe { (self.hcs.start)(self.handle, op, PCWSTR::null()) })
            .map(drop)
    }
}

impl Drop for ComputeSystem {
    fn drop(&mut self) {
        // SAFETY: `handle` is live until closed here, and not used after.
        let _ = self
            .hcs
            .call(|op| unsafe { (self.hcs.terminate)(self.handle, op, PCWSTR::null()) });
        unsafe { (self.hcs.close)(self.handle) };
    }
}

/// The client end of the VM's console pipe, opened for overlapped I/O: a pipe handle opened
/// for synchronous I/O serializes its calls, so a read waiting for the guest would block
/// every write to it. Each read or write waits for its own completion; clones share the
/// handle, which is closed with the last one.
#[derive(Clone)]
struct Pipe {
    handle: Arc<OwnedHandle>,
}

struct OwnedHandle(HANDLE);

// SAFETY: a kernel handle may be used from any thread; overlapped calls on it are safe to
// make concurrently, each with its own OVERLAPPED and event.
unsafe impl Send for OwnedHandle {}
unsafe impl Sync for OwnedHandle {}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        // SAFETY: the handle is owned and closed once.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

impl Pipe {
    /// Opens `name`, retrying while Hyper-V has not made it yet, until `deadline`.
    fn open(name: &str, deadline: Instant) -> std::io::Result<Pipe> {
        let wide = HSTRING::from(name);
        loop {
            // SAFETY: a NUL-terminated name; no security attributes or template.
            let opened = unsafe {
                CreateFileW(
                    &wide,
                    (GENERIC_READ | GENERIC_WRITE).0,
                    FILE_SHARE_NONE,
                    None,
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED,
                    None,
                )
            };
            match opened {
                Ok(handle) => {
                    return Ok(Pipe {
                        handle: Arc::new(OwnedHandle(handle)),
                    });
                }
                Err(e)
                    if (e.code() == ERROR_FILE_NOT_FOUND.to_hresult() || e.code() == ERROR_PIPE_BUSY.to_hresult())
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(std::io::Error::from_raw_os_error(e.code().0 & 0xffff)),
            }
        }
    }

    /// One overlapped read or write, waited for.
    fn transfer(
        &self,
        io: impl FnOnce(HANDLE, *mut OVERLAPPED) -> windows::core::Result<()>,
    ) -> std::io::Result<usize> {
        // SAFETY: a manual-reset event without a name; closed by `OwnedHandle`.
        let event = OwnedHandle(unsafe { CreateEventW(None, true, false, None) }.map_err(std::io::Error::other)?);
        let mut overlapped = OVERLAPPED {
            hEvent: event.0,
            ..Default::default()
        };
        let handle = self.handle.0;
        match io(handle, &mut overlapped) {
            Ok(()) => {}
            Err(e) if e.code() == ERROR_IO_PENDING.to_hresult() => {}
            Err(e) if e.code() == ERROR_BROKEN_PIPE.to_hresult() => return Ok(0),
            Err(e) => return Err(std::io::Error::other(e)),
        }
        let mut done = 0u32;
        // SAFETY: `overlapped` and the buffer stay alive until the operation completes, which
        // this waits for.
        match unsafe { GetOverlappedResult(handle, &overlapped, &mut done, true) } {
            Ok(()) => Ok(done as usize),
            Err(e) if e.code() == ERROR_BROKEN_PIPE.to_hresult() => Ok(0),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = buf.len().min(u32::MAX as usize);
        let buf = &mut buf[..len];
        // SAFETY: `buf` outlives the transfer, which waits for completion.
        self.transfer(|handle, overlapped| unsafe { ReadFile(handle, Some(buf), None, Some(overlapped)) })
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = buf.len().min(u32::MAX as usize);
        let buf = &buf[..len];
        // SAFETY: `buf` outlives the transfer, which waits for completion.
        self.transfer(|handle, overlapped| unsafe { WriteFile(handle, Some(buf), None, Some(overlapped)) })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
