//! A running microVM: QEMU as a child process whose serial console is its stdin/stdout. It
//! boots once and then runs commands one after another (warm), each as a job script sent
//! on one console line and answered with a frame of markers (see [`super::plan::job_script`]).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::base64;
use super::plan::FRAME;
use crate::{LimitHit, OutputChunk, OutputStats, ShellError, ShellOutcome, Stream, Termination};

/// QEMU's own stderr kept for error messages.
const STDERR_KEPT: usize = 16 * 1024;

/// Console lines longer than this are cut (a job never prints one; base64 lines are 76).
const LINE_MAX: usize = 64 * 1024;

/// util-linux `setpriv`: QEMU is started through it with a parent-death signal, so a VM never
/// outlives deskhand (a warm VM in a static, or a crash). Without it QEMU is started directly.
const SETPRIV: &str = "/usr/bin/setpriv";

/// A booted VM, ready for commands. Killed when dropped.
pub struct QemuVm {
    keeper: Keeper,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    program: PathBuf,
    args: Vec<OsString>,
    next_id: u64,
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
        let (tx, lines) = channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.by_ref().take(LINE_MAX as u64).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_owned();
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
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
            stdin,
            lines,
            stderr: kept,
            program: program.to_owned(),
            args: args.to_vec(),
            next_id: 1,
            boot_time: Duration::ZERO,
            alive: true,
        };
        let deadline = start + timeout;
        let ready = format!("{FRAME}-READY");
        let failed = format!("{FRAME}-FAILED");
        let mut failures = Vec::new();
        loop {
            match vm.next_line(deadline) {
                Some(line) if line == ready => break,
                Some(line) if line.starts_with(&failed) => failures.push(line[failed.len()..].trim().to_owned()),
                Some(_) => {}
                None => {
                    vm.kill();
                    let stderr = vm.qemu_stderr();
                    let message = if Instant::now() >= deadline {
                        format!("the VM did not boot within {timeout:?}")
                    } else {
                        "QEMU exited while the VM was booting".to_owned()
                    };
                    return Err(ShellError::Setup {
                        message: [message, stderr].join(if vm.qemu_stderr().is_empty() { "" } else { ": " }),
                    });
                }
            }
        }
        if !failures.is_empty() {
            vm.kill();
            return Err(ShellError::Setup {
                message: format!("the VM booted but could not set up: {}", failures.join("; ")),
            });
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

    /// Runs one job script (from [`super::plan::job_script`]) and hands its output to
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
        let id = format!("{:x}{:08x}", self.next_id, std::process::id());
        self.next_id += 1;
        let start = Instant::now();
        let deadline = start + wall_clock;
        let line = format!("{id} {}\n", base64::encode(script.as_bytes()));
        if let Err(source) = self.stdin.write_all(line.as_bytes()).and_then(|()| self.stdin.flush()) {
            self.kill();
            return Err(ShellError::Supervise { source });
        }

        let prefix = format!("{FRAME} {id} ");
        let mut frame = Frame::default();
        let mut section: Option<Stream> = None;
        loop {
            let Some(line) = self.next_line(deadline) else {
                let timed_out = Instant::now() >= deadline;
                self.kill();
                if timed_out {
                    return Ok(ShellOutcome {
                        termination: Termination::TimedOut { after: wall_clock },
                        limits_hit: vec![LimitHit::WallClock],
                        elapsed: start.elapsed(),
                        output: OutputStats::default(),
                    });
                }
                return Err(ShellError::Setup {
                    message: format!("the VM stopped during the command: {}", self.qemu_stderr()),
                });
            };
            let Some(marker) = line.strip_prefix(&prefix) else {
                match section {
                    Some(Stream::Stdout) => frame.stdout_b64.push_str(line.trim()),
                    Some(Stream::Stderr) => frame.stderr_b64.push_str(line.trim()),
                    None => {}
                }
                continue;
            };
            let fields: Vec<&str> = marker.split_whitespace().collect();
            match fields.as_slice() {
                ["STDOUT", total] => {
                    frame.stdout_total = total.parse().unwrap_or(0);
                    section = Some(Stream::Stdout);
                }
                ["STDERR", total] => {
                    frame.stderr_total = total.parse().unwrap_or(0);
                    section = Some(Stream::Stderr);
                }
                ["EXIT", status, forks, ooms] => {
                    frame.status = status.parse().unwrap_or(-1);
                    frame.forks_refused = forks.parse().unwrap_or(0);
                    frame.oom_kills = ooms.parse().unwrap_or(0);
                    break;
                }
                ["SETUP", what @ ..] => {
                    return Err(ShellError::Setup {
                        message: format!("inside the VM: {}", what.join(" ")),
                    });
                }
                _ => {}
            }
        }
        let elapsed = start.elapsed();
        Ok(frame.outcome(elapsed, output_bytes, on_output))
    }

    /// Kills QEMU (and so the whole VM) and reaps it.
    pub fn kill(&mut self) {
        if self.alive {
            self.keeper.stop();
            self.alive = false;
        }
    }

    fn next_line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.checked_duration_since(Instant::now())?;
        self.lines.recv_timeout(left).ok()
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

/// One command's answer, as parsed from the console.
#[derive(Debug, Default)]
struct Frame {
    stdout_total: u64,
    stderr_total: u64,
    stdout_b64: String,
    stderr_b64: String,
    status: i32,
    forks_refused: u64,
    oom_kills: u64,
}

impl Frame {
    fn outcome(self, elapsed: Duration, cap: u64, on_output: &mut dyn FnMut(OutputChunk)) -> ShellOutcome {
        let mut left = cap;
        let mut output = OutputStats::default();
        for (stream, b64) in [(Stream::Stdout, &self.stdout_b64), (Stream::Stderr, &self.stderr_b64)] {
            let bytes = base64::decode(b64);
            let keep = (bytes.len() as u64).min(left);
            left -= keep;
            if keep > 0 {
                // keep <= bytes.len(), so the cast back cannot truncate.
                on_output(OutputChunk {
                    stream,
                    bytes: bytes[..keep as usize].to_vec(),
                });
            }
            match stream {
                Stream::Stdout => output.stdout_bytes = keep,
                Stream::Stderr => output.stderr_bytes = keep,
            }
        }
        let total = self.stdout_total + self.stderr_total;
        output.dropped_bytes = total.saturating_sub(output.stdout_bytes + output.stderr_bytes);
        // The job's shell reports a command killed by signal N as 128 + N, like bubblewrap.
        let termination = match self.status {
            code @ 129..=192 => Termination::Signaled { signal: code - 128 },
            code => Termination::Exited { code },
        };
        let mut limits_hit = Vec::new();
        match termination {
            Termination::Signaled { signal: 24 } => limits_hit.push(LimitHit::CpuTime),
            Termination::Signaled { signal: 25 } => limits_hit.push(LimitHit::FileSize),
            _ => {}
        }
        if self.forks_refused > 0 {
            limits_hit.push(LimitHit::Processes);
        }
        if output.dropped_bytes > 0 {
            limits_hit.push(LimitHit::Output);
        }
        ShellOutcome {
            termination,
            limits_hit,
            elapsed,
            output,
        }
    }
}
