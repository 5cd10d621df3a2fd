//! How the host talks to the Linux guest of every VM backend (QEMU, Virtualization.framework,
//! Host Compute Service), over the VM's console. Platform-independent, so all of it is tested
//! on Linux, whatever backend uses it.
//!
//! - The guest's `/init` ([`init_script`]) mounts the shares named on the kernel command line
//!   (`deskhand.share=TAG:ro|rw`) at `/run/grants/TAG`, prints [`READY`], then reads jobs from
//!   the console, one line each: `ID BASE64-SCRIPT` ([`request_line`]).
//! - A job ([`job_script`]) binds the grants at their sandbox paths, sets the limits, runs the
//!   command and answers with frames:
//!   `@@DESKHAND ID STDOUT <total bytes>` and the kept stdout in base64 lines,
//!   `@@DESKHAND ID STDERR <total>` and the kept stderr, then
//!   `@@DESKHAND ID EXIT <status> <forks refused> <oom kills>`; or `@@DESKHAND ID SETUP <what>`
//!   when the sandbox could not be set up.
//! - [`Console`] is the host side: it reads the guest's lines on a thread, waits for
//!   [`READY`], sends a job and turns its frames into a [`ShellOutcome`].
//!
//! Everything the guest says is untrusted: a command inside can print frames of its own (it
//! cannot know the job id in advance, but it runs as root in the guest and can find it). The
//! protocol only decides what the host reports about the command; the isolation is the VM's,
//! and read-only grants are read-only at the hypervisor's share device, not only in the guest.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use crate::{
    LimitHit, Mount, OutputChunk, OutputStats, ShellError, ShellOutcome, ShellPolicy, Stream, Supervision, Termination,
};

/// The start of every line the guest's init and jobs print for the host.
pub const FRAME: &str = "@@DESKHAND";
/// Init's line once the shares are mounted and it waits for jobs.
pub const READY: &str = "@@DESKHAND-READY";
/// Init's line for something it could not set up (a module, a share, cgroups).
pub const FAILED: &str = "@@DESKHAND-FAILED";

/// Console lines longer than this are cut (a job never prints one; base64 lines are 76).
const LINE_MAX: u64 = 64 * 1024;

/// SIGXCPU and SIGXFSZ in a Linux guest (the same on x86-64 and arm64).
const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;

/// One share of a host folder with the VM: read-only at the hypervisor unless some grant of
/// it is writable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub host: PathBuf,
    pub writable: bool,
}

impl Share {
    /// The share's tag (9p mount tag, virtiofs tag, Plan9 access name); the guest mounts it
    /// at `/run/grants/<tag>`.
    pub fn tag(index: usize) -> String {
        format!("g{index}")
    }
}

/// The shares for `mounts`: one per distinct host folder, in first-grant order.
pub fn shares(mounts: &[Mount]) -> Vec<Share> {
    let mut shares: Vec<Share> = Vec::new();
    for mount in mounts {
        match shares.iter_mut().find(|s| s.host == mount.host) {
            Some(share) => share.writable |= mount.writable,
            None => shares.push(Share {
                host: mount.host.clone(),
                writable: mount.writable,
            }),
        }
    }
    shares
}

/// The kernel command line words that name the shares for init.
pub fn share_args(shares: &[Share]) -> Vec<String> {
    shares
        .iter()
        .enumerate()
        .map(|(i, share)| {
            format!(
                "deskhand.share={}:{}",
                Share::tag(i),
                if share.writable { "rw" } else { "ro" }
            )
        })
        .collect()
}

/// How the guest reaches the shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareTransport {
    /// 9p over virtio (QEMU's `virtio-9p-device`).
    Virtio9p,
    /// virtiofs (Virtualization.framework's `VZVirtioFileSystemDeviceConfiguration`).
    Virtiofs,
    /// 9p over a Hyper-V socket to the host's Plan9 server (HCS `Plan9` shares), on `port`,
    /// the share chosen by its access name. The kernel's 9p client takes the connection as
    /// a file descriptor (`trans=fd`), which busybox cannot make: the initramfs needs a
    /// `socat` built with VSOCK support.
    HvSocket9p { port: u32 },
}

/// The line that sends job `script` to the guest as job `id`.
pub fn request_line(id: &str, script: &str) -> String {
    format!("{id} {}\n", base64::encode(script.as_bytes()))
}

/// The VM's /init: busybox applets, the kernel's file systems, the modules listed in
/// `modules` (loaded in that order from `/lib/modules/NAME.ko`), the shares named on the
/// kernel command line mounted by `transport` (read-only in the guest too when the share is),
/// then a loop that reads `ID BASE64-SCRIPT` lines from the console and runs each.
pub fn init_script(modules: &[&str], transport: ShareTransport) -> String {
    let modules = modules.join(" ");
    let mount = match transport {
        ShareTransport::Virtio9p => {
            "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none,$mode $tag /run/grants/$tag"
                .to_owned()
        }
        ShareTransport::Virtiofs => "mount -t virtiofs -o $mode $tag /run/grants/$tag".to_owned(),
        // socat execs mount with the connection as its stdin and stdout (`nofork`); the
        // kernel keeps its own reference to it once mounted.
        ShareTransport::HvSocket9p { port } => format!(
            "socat VSOCK-CONNECT:2:{port} EXEC:\"mount -t 9p -o trans=fd,rfdno=0,wfdno=1,version=9p2000.L,msize=65536,aname=$tag,$mode $tag /run/grants/$tag\",nofork"
        ),
    };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
dmesg -n 1
for m in {modules}; do insmod /lib/modules/$m.ko || echo "{FAILED} insmod $m"; done
mkdir -p /sys/fs/cgroup /run/grants
mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo "+pids +memory" >/sys/fs/cgroup/cgroup.subtree_control || echo "{FAILED} cgroup"
for arg in $(cat /proc/cmdline); do
  case $arg in
    deskhand.share=*)
      spec=${{arg#deskhand.share=}}; tag=${{spec%:*}}; mode=${{spec#*:}}
      mkdir -p /run/grants/$tag
      {mount} || echo "{FAILED} mount $tag"
      ;;
  esac
done
stty raw -echo
echo "{READY}"
while read -r id job; do
  echo "$job" | base64 -d >/run/job.sh && sh /run/job.sh "$id"
done
poweroff -f
"#
    )
}

/// The script the VM's init runs for one command, as `sh job.sh ID` (see the module docs for
/// what it prints).
pub fn job_script(policy: &ShellPolicy, shares: &[Share]) -> String {
    let l = &policy.limits;
    let mut s = String::new();
    let line = |s: &mut String, text: &str| {
        s.push_str(text);
        s.push('\n');
    };
    line(&mut s, "id=$1");
    line(&mut s, &format!("fail() {{ echo \"{FRAME} $id SETUP $*\"; exit 0; }}"));
    // Anything a previous command left running (outside its cgroup, as root may) goes first.
    line(&mut s, "kill -9 -1 2>/dev/null");
    line(
        &mut s,
        &format!("mount -t tmpfs -o size={},mode=1777 tmp /tmp || fail tmp", l.tmp_bytes),
    );
    // Parents before children, so a grant nested in another stays visible.
    let mut mounts: Vec<&Mount> = policy.mounts.iter().collect();
    mounts.sort_by_key(|m| m.sandbox.components().count());
    let mut bound = Vec::new();
    for mount in &mounts {
        let Some(index) = shares.iter().position(|s| s.host == mount.host) else {
            continue;
        };
        let target = quote(&mount.sandbox.to_string_lossy());
        let source = format!("/run/grants/{}", Share::tag(index));
        line(
            &mut s,
            &format!("mkdir -p {target} && mount -o bind {source} {target} || fail bind {target}"),
        );
        // A writable share may still be granted read-only at this path.
        if !mount.writable {
            line(
                &mut s,
                &format!("mount -o remount,bind,ro {target} || fail read-only {target}"),
            );
        }
        bound.push(target);
    }
    line(
        &mut s,
        "cg=/sys/fs/cgroup/job; rmdir $cg 2>/dev/null; mkdir $cg || fail cgroup",
    );
    line(
        &mut s,
        &format!(
            "echo {} >$cg/pids.max && echo {} >$cg/memory.max || fail limits",
            l.max_processes, l.memory_bytes
        ),
    );
    // Output through FIFOs: dd keeps exactly the first `output_bytes`, wc counts the rest, so
    // a command that writes forever runs until its limits, as it would on a terminal.
    line(
        &mut s,
        "rm -f /run/o /run/e /run/out /run/err; mkfifo /run/o /run/e || fail fifo",
    );
    for (fifo, kept) in [("/run/o", "/run/out"), ("/run/e", "/run/err")] {
        line(
            &mut s,
            &format!(
                "{{ dd of={kept} bs=65536 count={} iflag=count_bytes,fullblock 2>/dev/null; wc -c >{kept}.rest; }} <{fifo} &",
                l.output_bytes
            ),
        );
    }
    // The runner joins the cgroup, sets the per-process limits (CPU hard limit one second
    // above the soft one so the command gets SIGXCPU first; file size in 512-byte blocks;
    // address space in KiB; no core dumps), then execs the command with exactly the
    // policy's environment.
    let runner = format!(
        "echo $$ >{cg}/cgroup.procs && cd \"$1\" && shift && ulimit -c 0 && ulimit -t {hard} && ulimit -S -t {cpu} \
         && ulimit -f {fsize} && ulimit -v {kib} && exec \"$@\"",
        cg = "/sys/fs/cgroup/job",
        hard = l.cpu_seconds.saturating_add(1),
        cpu = l.cpu_seconds,
        fsize = l.max_file_bytes.div_ceil(512),
        kib = l.memory_bytes / 1024,
    );
    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        quote(&runner),
        "runner".to_owned(),
        quote(&policy.workdir.to_string_lossy()),
        "env".to_owned(),
        "-i".to_owned(),
    ];
    command.extend(policy.env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
    command.extend(policy.command.iter().map(|a| quote(a)));
    line(&mut s, &format!("{} </dev/null >/run/o 2>/run/e", command.join(" ")));
    line(&mut s, "status=$?");
    // Whatever the command left in the background holds the FIFOs open: end it.
    line(&mut s, "echo 1 >$cg/cgroup.kill 2>/dev/null; wait");
    line(&mut s, "forks=$(sed -n 's/^max //p' $cg/pids.events)");
    line(&mut s, "ooms=$(sed -n 's/^oom_kill //p' $cg/memory.events)");
    for (name, kept) in [("STDOUT", "/run/out"), ("STDERR", "/run/err")] {
        line(
            &mut s,
            &format!("echo \"{FRAME} $id {name} $(( $(wc -c <{kept}) + $(cat {kept}.rest) ))\"; base64 {kept}"),
        );
    }
    line(
        &mut s,
        &format!("echo \"{FRAME} $id EXIT $status ${{forks:-0}} ${{ooms:-0}}\""),
    );
    // Clean up for the next command on this VM.
    line(&mut s, "kill -9 -1 2>/dev/null");
    for target in bound.iter().rev() {
        line(&mut s, &format!("umount -l {target} 2>/dev/null"));
    }
    line(
        &mut s,
        "umount -l /tmp; rmdir $cg 2>/dev/null; rm -f /run/out* /run/err* /run/o /run/e",
    );
    s
}

/// `text` as one single-quoted shell word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The host's end of a VM console: the guest's output read line by line on a thread, and
/// the guest's input.
pub struct Console {
    lines: Receiver<String>,
    input: Box<dyn Write + Send>,
    next_id: u64,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("next_id", &self.next_id).finish()
    }
}

/// How waiting for the guest ended, when it did not end well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEnd {
    /// The deadline passed first.
    Deadline,
    /// The guest's output closed (the VM stopped).
    Closed,
}

impl Console {
    /// Starts reading `output` (what the guest prints) on a thread; `input` is what the guest
    /// reads. The thread ends when `output` closes, i.e. when the VM is gone.
    pub fn new(output: impl Read + Send + 'static, input: impl Write + Send + 'static) -> Console {
        let (tx, lines) = channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(output);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.by_ref().take(LINE_MAX).read_until(b'\n', &mut buf) {
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
        Console {
            lines,
            input: Box::new(input),
            next_id: 1,
        }
    }

    /// Waits for init's [`READY`] line. What init could not set up on the way (a `FAILED`
    /// line) makes the boot fail, each named.
    pub fn wait_ready(&mut self, deadline: Instant) -> Result<(), BootFailure> {
        let mut failures = Vec::new();
        loop {
            match self.next_line(deadline) {
                Ok(line) if line == READY => break,
                Ok(line) => {
                    if let Some(what) = line.strip_prefix(FAILED) {
                        failures.push(what.trim().to_owned());
                    }
                }
                Err(end) => return Err(BootFailure::NotReady(end)),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(BootFailure::SetupFailed(failures))
        }
    }

    /// Runs one job script (from [`job_script`]) and hands its output to `on_output`, at most
    /// `output_bytes` of stdout and stderr together. At `wall_clock` it gives up and reports
    /// [`Termination::TimedOut`]: the caller must then stop the VM, which ends the command and
    /// everything it started.
    pub fn run(
        &mut self,
        script: &str,
        wall_clock: Duration,
        output_bytes: u64,
        on_output: &mut dyn FnMut(OutputChunk),
    ) -> Result<ShellOutcome, ShellError> {
        self.job(script, wall_clock, output_bytes, on_output)
            .map_err(ShellError::from)
    }

    /// For a VM booted for one job: waits for [`READY`] until `boot_deadline` (the boot being
    /// given `boot_timeout`), then runs `job` under `supervision` as [`Console::run`] does.
    /// The caller stops the VM afterwards, however it went.
    pub fn boot_and_run(
        &mut self,
        boot_deadline: Instant,
        boot_timeout: Duration,
        job: &str,
        supervision: &Supervision,
        on_output: &mut dyn FnMut(OutputChunk),
    ) -> Result<ShellOutcome, ShellError> {
        self.wait_ready(boot_deadline)
            .map_err(|failure| failure.into_error(boot_timeout))?;
        self.run(job, supervision.wall_clock, supervision.output_bytes, on_output)
    }

    /// [`Console::run`], saying why a job has no answer as a [`JobError`], for a caller that
    /// treats the ways differently (stops the VM, adds what the hypervisor said).
    pub fn job(
        &mut self,
        script: &str,
        wall_clock: Duration,
        output_bytes: u64,
        on_output: &mut dyn FnMut(OutputChunk),
    ) -> Result<ShellOutcome, JobError> {
        let id = format!("{:x}{:08x}", self.next_id, std::process::id());
        self.next_id += 1;
        let start = Instant::now();
        let deadline = start + wall_clock;
        let line = request_line(&id, script);
        self.input
            .write_all(line.as_bytes())
            .and_then(|()| self.input.flush())
            .map_err(JobError::Send)?;

        let prefix = format!("{FRAME} {id} ");
        let mut frame = Frame::default();
        let mut section: Option<Stream> = None;
        loop {
            let line = match self.next_line(deadline) {
                Ok(line) => line,
                Err(ConsoleEnd::Deadline) => {
                    return Ok(ShellOutcome {
                        termination: Termination::TimedOut { after: wall_clock },
                        limits_hit: vec![LimitHit::WallClock],
                        elapsed: start.elapsed(),
                        output: OutputStats::default(),
                    });
                }
                Err(ConsoleEnd::Closed) => return Err(JobError::Closed),
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
                ["SETUP", what @ ..] => return Err(JobError::Setup(what.join(" "))),
                _ => {}
            }
        }
        Ok(frame.outcome(start.elapsed(), output_bytes, on_output))
    }

    fn next_line(&self, deadline: Instant) -> Result<String, ConsoleEnd> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or(ConsoleEnd::Deadline)?;
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(ConsoleEnd::Deadline),
            Err(RecvTimeoutError::Disconnected) => Err(ConsoleEnd::Closed),
        }
    }
}

/// Why a job has no answer.
#[derive(Debug)]
pub enum JobError {
    /// The job could not be sent to the guest.
    Send(std::io::Error),
    /// The guest's output closed (the VM stopped) before the answer.
    Closed,
    /// The job could not set its sandbox up; what it could not do.
    Setup(String),
}

impl From<JobError> for ShellError {
    fn from(error: JobError) -> ShellError {
        match error {
            JobError::Send(source) => ShellError::Supervise { source },
            JobError::Closed => ShellError::Setup {
                message: "the VM stopped during the command".to_owned(),
            },
            JobError::Setup(what) => ShellError::Setup {
                message: format!("inside the VM: {what}"),
            },
        }
    }
}

/// Why a VM did not become ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFailure {
    NotReady(ConsoleEnd),
    /// Init came up but named what it could not set up.
    SetupFailed(Vec<String>),
}

impl BootFailure {
    /// The failure as a [`ShellError`], `timeout` being how long the boot was given.
    pub fn into_error(self, timeout: Duration) -> ShellError {
        let message = match self {
            BootFailure::NotReady(ConsoleEnd::Deadline) => format!("the VM did not boot within {timeout:?}"),
            BootFailure::NotReady(ConsoleEnd::Closed) => "the VM stopped while booting".to_owned(),
            BootFailure::SetupFailed(failures) => {
                format!("the VM booted but could not set up: {}", failures.join("; "))
            }
        };
        ShellError::Setup { message }
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
            Termination::Signaled { signal: SIGXCPU } => limits_hit.push(LimitHit::CpuTime),
            Termination::Signaled { signal: SIGXFSZ } => limits_hit.push(LimitHit::FileSize),
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

/// Standard base64 (RFC 4648, with padding), the encoding busybox's `base64` speaks.
pub mod base64 {
    use base64::Engine as _;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

    /// Takes what is left once stray bytes and padding are gone.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );

    pub fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    /// Decodes what it can: characters outside the alphabet (line breaks, stray console
    /// bytes) are skipped, and decoding stops at padding.
    pub fn decode(text: &str) -> Vec<u8> {
        let mut symbols: Vec<u8> = text
            .bytes()
            .take_while(|&c| c != b'=')
            .filter(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
            .collect();
        // A lone last symbol holds fewer than 8 bits: no byte.
        if symbols.len() % 4 == 1 {
            symbols.pop();
        }
        LENIENT.decode(symbols).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::io::PipeWriter;

    use super::*;

    #[test]
    fn base64_round_trips() {
        for input in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0, 255, 128, 7],
        ] {
            assert_eq!(base64::decode(&base64::encode(input)), input);
        }
        assert_eq!(base64::encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64::encode(b"fo"), "Zm8=");
        assert_eq!(base64::decode("Zm9v\nYmFy\n"), b"foobar");
        assert_eq!(base64::decode("Zm9vY"), b"foo", "a lone last symbol is no byte");
        assert_eq!(base64::decode("Zm8=Zm8="), b"fo", "decoding stops at padding");
    }

    #[test]
    fn one_share_per_folder_writable_if_any_grant_is() {
        let mounts = [
            Mount::read_only("/a", "/x"),
            Mount::writable("/a", "/y"),
            Mount::read_only("/b", "/z"),
        ];
        let s = shares(&mounts);
        assert_eq!(
            s,
            [
                Share {
                    host: "/a".into(),
                    writable: true
                },
                Share {
                    host: "/b".into(),
                    writable: false
                }
            ]
        );
        assert_eq!(share_args(&s), ["deskhand.share=g0:rw", "deskhand.share=g1:ro"]);
    }

    #[test]
    fn request_is_one_line_the_guest_decodes() {
        let line = request_line("7", "echo 'hi'\nexit 3\n");
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let (id, body) = line.trim_end().split_once(' ').unwrap_or_default();
        assert_eq!(id, "7");
        assert_eq!(base64::decode(body), b"echo 'hi'\nexit 3\n");
    }

    #[test]
    fn init_mounts_by_the_transport_asked_for() {
        let qemu = init_script(&["9p"], ShareTransport::Virtio9p);
        assert!(qemu.contains("mount -t 9p -o trans=virtio"));
        assert!(qemu.contains("insmod /lib/modules/$m.ko"));
        let vz = init_script(&[], ShareTransport::Virtiofs);
        assert!(vz.contains("mount -t virtiofs -o $mode $tag /run/grants/$tag"));
        let hcs = init_script(&[], ShareTransport::HvSocket9p { port: 564 });
        assert!(hcs.contains("VSOCK-CONNECT:2:564"));
        assert!(hcs.contains("trans=fd,rfdno=0,wfdno=1"));
        assert!(hcs.contains("aname=$tag,$mode"));
        for script in [qemu, vz, hcs] {
            assert!(script.contains(READY));
            // The mode (ro or rw) of each share reaches the guest's mount too.
            assert!(script.contains("$mode"));
        }
    }

    #[test]
    fn job_binds_grants_read_only_unless_writable() {
        let policy = ShellPolicy::new(["true"])
            .grant(Mount::read_only("/a", "/work/a"))
            .grant(Mount::writable("/b", "/work/b"));
        let s = job_script(&policy, &shares(&policy.mounts));
        assert!(s.contains("mount -o bind /run/grants/g0 '/work/a'"));
        assert!(s.contains("mount -o remount,bind,ro '/work/a'"));
        assert!(s.contains("mount -o bind /run/grants/g1 '/work/b'"));
        assert!(!s.contains("remount,bind,ro '/work/b'"));
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(quote(""), "''");
    }

    /// A fake guest: what it prints and what it was sent.
    fn guest(printed: &str) -> (Console, std::io::PipeReader) {
        let (to_guest_r, to_guest_w) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
        let output = std::io::Cursor::new(printed.as_bytes().to_vec());
        (Console::new(output, to_guest_w), to_guest_r)
    }

    fn run(console: &mut Console, cap: u64) -> (Result<ShellOutcome, ShellError>, Vec<OutputChunk>) {
        let mut chunks = Vec::new();
        let result = console.run("true", Duration::from_secs(5), cap, &mut |c| chunks.push(c));
        (result, chunks)
    }

    /// The id of the first job a console sends.
    fn first_id() -> String {
        format!("1{:08x}", std::process::id())
    }

    #[test]
    fn boot_noise_is_skipped_until_ready() {
        let (mut console, _sent) = guest("[    0.1] Linux version\nrandom\n@@DESKHAND-READY\n");
        assert_eq!(console.wait_ready(Instant::now() + Duration::from_secs(5)), Ok(()));
    }

    #[test]
    fn init_failures_fail_the_boot_naming_each() {
        let (mut console, _sent) = guest("@@DESKHAND-FAILED mount g0\n@@DESKHAND-FAILED cgroup\n@@DESKHAND-READY\n");
        let failure = console.wait_ready(Instant::now() + Duration::from_secs(5));
        assert_eq!(
            failure,
            Err(BootFailure::SetupFailed(vec!["mount g0".into(), "cgroup".into()]))
        );
    }

    #[test]
    fn a_vm_that_stops_while_booting_is_not_ready() {
        let (mut console, _sent) = guest("[    0.1] Kernel panic\n");
        assert_eq!(
            console.wait_ready(Instant::now() + Duration::from_secs(5)),
            Err(BootFailure::NotReady(ConsoleEnd::Closed))
        );
    }

    #[test]
    fn a_job_answer_becomes_an_outcome() {
        let id = first_id();
        let printed = format!(
            "noise\n@@DESKHAND {id} STDOUT 6\r\n{}\r\n@@DESKHAND {id} STDERR 3\n{}\n@@DESKHAND {id} EXIT 3 0 0\n",
            base64::encode(b"hello\n"),
            base64::encode(b"oops")
        );
        let (mut console, mut sent) = guest(&printed);
        let (result, chunks) = run(&mut console, 1 << 20);
        let outcome = result.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.termination, Termination::Exited { code: 3 });
        assert_eq!(chunks[0].bytes, b"hello\n");
        assert_eq!(chunks[1].stream, Stream::Stderr);
        assert_eq!(outcome.output.stdout_bytes, 6);
        assert!(outcome.limits_hit.is_empty());
        drop(console);
        let mut request = String::new();
        let _ = sent.read_to_string(&mut request);
        assert!(request.starts_with(&format!("{id} ")), "{request}");
    }

    #[test]
    fn frames_of_another_job_are_ignored() {
        let id = first_id();
        let printed = format!("@@DESKHAND other EXIT 0 0 0\n@@DESKHAND {id} EXIT 1 0 0\n");
        let (mut console, _sent) = guest(&printed);
        let (result, _) = run(&mut console, 10);
        assert_eq!(
            result.map(|o| o.termination).ok(),
            Some(Termination::Exited { code: 1 })
        );
    }

    #[test]
    fn limits_show_in_the_outcome() {
        let id = first_id();
        let printed = format!(
            "@@DESKHAND {id} STDOUT 100\n{}\n@@DESKHAND {id} STDERR 0\n@@DESKHAND {id} EXIT 152 2 0\n",
            base64::encode(&[b'x'; 10])
        );
        let (mut console, _sent) = guest(&printed);
        let (result, chunks) = run(&mut console, 4);
        let outcome = result.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(outcome.termination, Termination::Signaled { signal: SIGXCPU });
        assert_eq!(
            outcome.limits_hit,
            [LimitHit::CpuTime, LimitHit::Processes, LimitHit::Output]
        );
        assert_eq!(chunks.iter().map(|c| c.bytes.len()).sum::<usize>(), 4);
        assert_eq!(outcome.output.dropped_bytes, 96);
    }

    #[test]
    fn setup_failure_inside_is_an_error() {
        let id = first_id();
        let (mut console, _sent) = guest(&format!("@@DESKHAND {id} SETUP bind '/work/a'\n"));
        let (result, _) = run(&mut console, 10);
        assert!(matches!(result, Err(ShellError::Setup { message }) if message.contains("bind '/work/a'")));
    }

    #[test]
    fn a_vm_that_stops_mid_command_is_an_error() {
        let (mut console, _sent) = guest("");
        let (result, _) = run(&mut console, 10);
        assert!(matches!(result, Err(ShellError::Setup { .. })));
    }

    #[test]
    fn a_silent_guest_times_out_at_the_wall_clock() {
        // The guest's output stays open and says nothing.
        let (silent_r, silent_w): (std::io::PipeReader, PipeWriter) =
            std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
        let (_to_guest_r, to_guest_w) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
        let mut console = Console::new(silent_r, to_guest_w);
        let start = Instant::now();
        let outcome = console
            .run("sleep 100", Duration::from_millis(200), 10, &mut |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            outcome.termination,
            Termination::TimedOut {
                after: Duration::from_millis(200)
            }
        );
        assert_eq!(outcome.limits_hit, [LimitHit::WallClock]);
        assert!(start.elapsed() < Duration::from_secs(3));
        drop(silent_w);
    }
}
