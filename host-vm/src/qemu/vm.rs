//! A running microVM: QEMU as a child process whose serial console is its stdin/stdout. It
//! boots once and then runs commands one after another (warm), each as a job script sent
//! on one console line and answered with a frame of markers, both ends of which are
//! [`crate::guest_protocol`]'s.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::guest_protocol::{BootFailure, Console, ConsoleEnd, JobError};
use crate::{OutputChunk, ShellError, ShellOutcome, Termination};

/// QEMU's own stderr kept for error messages.
const STDERR_KEPT: usize = 16 * 1024;

/// util-linux `setpriv`: QEMU is started through it with a parent-death signal, so a VM never
/// outlives deskhand (a warm VM in a static, or a crash). Without it QEMU is started directly.
const SETPRIV: &str = "/usr/bin/setpriv";

/// A booted VM, ready for commands. Killed when dropped.
pub struct QemuVm {
    keeper: Keeper,
    console: Console,
    stderr: Arc<Mutex<Vec<u8>>>,
    program: PathBuf,
    args: Vec<OsString>,
    boot_time: Duration,
    alive: bool,
}

impl std::fmt::Debug for QemuVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuVm")
            .field("pid", &self.keeper.pid)
            .field("boot_time", &self.boot_time)
            .field("alive", &self.alive)
            .finish()
    }
}

impl QemuVm {
    /// Starts QEMU with `args` and waits until the VM's init says it is ready (9p shares
    /// mounted), or `timeout`.
    pub fn boot(program: &Path, args: &[OsString], timeout: Duration) -> Result<QemuVm, ShellError> {
        let start = Instant::now();
        let (keeper, stdin, stdout, stderr) = Keeper::spawn(program, args)?;
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&kept);
        thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                if let Ok(mut kept) = sink.lock() {
                    let room = STDERR_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        });
        let mut vm = QemuVm {
            keeper,
            console: Console::new(stdout, stdin),
            stderr: kept,
            program: program.to_owned(),
            args: args.to_vec(),
            boot_time: Duration::ZERO,
            alive: true,
        };
        if let Err(failure) = vm.console.wait_ready(start + timeout) {
            vm.kill();
            let message = match failure {
                BootFailure::NotReady(end) => {
                    let message = match end {
                        ConsoleEnd::Deadline => format!("the VM did not boot within {timeout:?}"),
                        ConsoleEnd::Closed => "QEMU exited while the VM was booting".to_owned(),
                    };
                    let stderr = vm.qemu_stderr();
                    if stderr.is_empty() {
                        message
                    } else {
                        format!("{message}: {stderr}")
                    }
                }
                setup_failed @ BootFailure::SetupFailed(_) => return Err(setup_failed.into_error(timeout)),
            };
            return Err(ShellError::Setup { message });
        }
        vm.boot_time = start.elapsed();
        Ok(vm)
    }

    /// How long booting took, from spawning QEMU to init's ready line.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// Whether the VM can take another command (it is killed when a command times out).
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// Whether this VM was booted with exactly `program` and `args`.
    pub fn booted_with(&self, program: &Path, args: &[OsString]) -> bool {
        self.program == program && self.args == args
    }

    /// Runs one job script (from [`crate::guest_protocol::job_script`]) and hands its output to
    /// `on_output`, at most `output_bytes` of stdout and stderr together. At `wall_clock` the
    /// whole VM is killed: the command and everything it started go with it.
    pub fn run(
        &mut self,
        script: &str,
        wall_clock: Duration,
        output_bytes: u64,
        on_output: &mut dyn FnMut(OutputChunk),
    ) -> Result<ShellOutcome, ShellError> {
        if !self.alive {
            return Err(ShellError::Setup {
                message: "the VM is no longer running".to_owned(),
            });
        }
        let start = Instant::now();
        match self.console.job(script, wall_clock, output_bytes, on_output) {
            Ok(mut outcome) => {
                if let Termination::TimedOut { .. } = outcome.termination {
                    self.kill();
                    outcome.elapsed = start.elapsed();
                }
                Ok(outcome)
            }
            Err(JobError::Send(source)) => {
                self.kill();
                Err(ShellError::Supervise { source })
            }
            Err(JobError::Closed) => {
                self.kill();
                Err(ShellError::Setup {
                    message: format!("the VM stopped during the command: {}", self.qemu_stderr()),
                })
            }
            Err(setup @ JobError::Setup(_)) => Err(setup.into()),
        }
    }

    /// Kills QEMU (and so the whole VM) and reaps it.
    pub fn kill(&mut self) {
        if self.alive {
            self.keeper.stop();
            self.alive = false;
        }
    }

    fn qemu_stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for QemuVm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The thread that started QEMU and owns it. The parent-death signal fires when the thread
/// that spawned the process ends, not the process, so QEMU is spawned from a thread that lives
/// exactly as long as the VM: it waits for `stop`, then kills and reaps QEMU.
struct Keeper {
    pid: u32,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Pipes = (ChildStdin, ChildStdout, ChildStderr);

impl Keeper {
    fn spawn(program: &Path, args: &[OsString]) -> Result<(Keeper, ChildStdin, ChildStdout, ChildStderr), ShellError> {
        let mut command = if Path::new(SETPRIV).is_file() {
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (started_tx, started) = channel::<std::io::Result<(u32, Pipes)>>();
        let (stop, stop_rx) = channel::<()>();
        let thread = thread::spawn(move || {
            let mut child: Child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let pipes = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => Ok((child.id(), (i, o, e))),
                _ => Err(std::io::Error::other("QEMU started without its pipes")),
            };
            let failed = pipes.is_err();
            if started_tx.send(pipes).is_ok() && !failed {
                // Until told to stop, or until the VM is dropped (the sender goes away).
                let _ = stop_rx.recv();
            }
            let _ = child.kill();
            let _ = child.wait();
        });
        match started.recv() {
            Ok(Ok((pid, (stdin, stdout, stderr)))) => Ok((
                Keeper {
                    pid,
                    stop: Some(stop),
                    thread: Some(thread),
                },
                stdin,
                stdout,
                stderr,
            )),
            Ok(Err(source)) => {
                let _ = thread.join();
                Err(ShellError::Spawn {
                    program: program.to_owned(),
                    source,
                })
            }
            Err(_) => Err(ShellError::Setup {
                message: "the thread starting QEMU ended early".to_owned(),
            }),
        }
    }

    /// Kills and reaps QEMU.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
