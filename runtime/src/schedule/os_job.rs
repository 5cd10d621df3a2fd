//! The one per-user OS job that wakes deskhand to run due schedules with
//! the app closed: `deskhand schedule run-due` every five minutes and at
//! login. Pure functions: the files for each OS, generated on every OS so
//! all three are tested everywhere (golden files in `golden/`, checked by
//! `systemd-analyze verify` and by real plist and XML parsers). The binary
//! writes them and asks the OS to load them.
//!
//! What holds: the job runs the absolute path of the deskhand binary that
//! installed it; it decides nothing itself (which schedule is due is
//! [`super::Schedules::run_due`]'s to say), so a job that fires late, twice
//! or at login runs nothing twice.

use std::path::{Path, PathBuf};

/// The job's name: the systemd units' stem, the LaunchAgent's label, the scheduled task's name.
pub const SYSTEMD_NAME: &str = "deskhand-schedules";
pub const LAUNCHD_LABEL: &str = "dev.deskhand.schedules";
pub const WINDOWS_TASK: &str = "\\deskhand\\run-due-schedules";
/// How often the job wakes, in seconds.
pub const INTERVAL_SECS: u32 = 300;

/// The OSes the job is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// A systemd user service and timer.
    Linux,
    /// A LaunchAgent.
    MacOs,
    /// A Task Scheduler task.
    Windows,
}

impl Os {
    /// The OS this deskhand was built for.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// Where the files go: the user's folders, found by the binary.
#[derive(Debug, Clone)]
pub struct Places {
    /// `$XDG_CONFIG_HOME` or `~/.config` (Linux: `systemd/user/` is in it).
    pub config_home: PathBuf,
    /// The home folder (macOS: `Library/LaunchAgents/` is in it).
    pub home: PathBuf,
    /// deskhand's own config folder (Windows: the task XML is kept there to register it).
    pub deskhand_config: PathBuf,
    /// Set when `$XDG_CONFIG_HOME` is: the job gets it, so it reads the same schedule database.
    pub xdg_config_home: Option<PathBuf>,
}

/// The files the job is made of on `os`, with their contents.
pub fn files(os: Os, exe: &Path, places: &Places) -> Vec<(PathBuf, String)> {
    let env = places.xdg_config_home.as_deref();
    match os {
        Os::Linux => {
            let dir = places.config_home.join("systemd").join("user");
            vec![
                (dir.join(format!("{SYSTEMD_NAME}.service")), systemd_service(exe, env)),
                (dir.join(format!("{SYSTEMD_NAME}.timer")), systemd_timer()),
            ]
        }
        Os::MacOs => vec![(
            places
                .home
                .join("Library")
                .join("LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist")),
            launchd_plist(exe, env, &places.home),
        )],
        Os::Windows => vec![(places.deskhand_config.join("run-due-schedules.xml"), windows_task(exe))],
    }
}

/// The systemd user service: one `run-due`, then exit.
pub fn systemd_service(exe: &Path, xdg_config_home: Option<&Path>) -> String {
    let env = xdg_config_home
        .map(|d| {
            format!(
                "Environment={}\n",
                systemd_quote(&format!("XDG_CONFIG_HOME={}", d.display()))
            )
        })
        .unwrap_or_default();
    format!(
        "[Unit]\n\
         Description=deskhand: run the scheduled tasks that are due\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         {env}\
         ExecStart={} schedule run-due\n\
         Nice=5\n",
        systemd_quote(&exe.display().to_string())
    )
}

/// The systemd user timer: every five minutes, a minute after login, and
/// once at start for a wake-up missed while the machine was off.
pub fn systemd_timer() -> String {
    format!(
        "[Unit]\n\
         Description=deskhand: look for due scheduled tasks every five minutes and at login\n\
         \n\
         [Timer]\n\
         OnCalendar=*-*-* *:00/5:00\n\
         OnStartupSec=1min\n\
         Persistent=true\n\
         AccuracySec=30s\n\
         Unit={SYSTEMD_NAME}.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// A word for a systemd command line or assignment: double-quoted, with
/// `\`, `"` and specifier `%` escaped (systemd.syntax(7)).
fn systemd_quote(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
    format!("\"{escaped}\"")
}

/// The LaunchAgent: at load (login) and every five minutes.
pub fn launchd_plist(exe: &Path, xdg_config_home: Option<&Path>, home: &Path) -> String {
    let env = xdg_config_home
        .map(|d| {
            format!(
                "    <key>EnvironmentVariables</key>\n    <dict>\n        <key>XDG_CONFIG_HOME</key>\n        <string>{}</string>\n    </dict>\n",
                xml_escape(&d.display().to_string())
            )
        })
        .unwrap_or_default();
    let log = home.join("Library").join("Logs").join("deskhand-schedules.log");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n\
         <dict>\n    \
             <key>Label</key>\n    <string>{LAUNCHD_LABEL}</string>\n    \
             <key>ProgramArguments</key>\n    <array>\n        <string>{}</string>\n        <string>schedule</string>\n        <string>run-due</string>\n    </array>\n\
         {env}    \
             <key>StartInterval</key>\n    <integer>{INTERVAL_SECS}</integer>\n    \
             <key>RunAtLoad</key>\n    <true/>\n    \
             <key>ProcessType</key>\n    <string>Background</string>\n    \
             <key>StandardOutPath</key>\n    <string>{log}</string>\n    \
             <key>StandardErrorPath</key>\n    <string>{log}</string>\n\
         </dict>\n\
         </plist>\n",
        xml_escape(&exe.display().to_string()),
        log = xml_escape(&log.display().to_string()),
    )
}

/// The Task Scheduler task: at logon and every five minutes from then on,
/// a run missed while the machine was off started when it can be, never two at once.
pub fn windows_task(exe: &Path) -> String {
    let repeat = format!(
        "<Repetition>\n        <Interval>PT{}M</Interval>\n        <StopAtDurationEnd>false</StopAtDurationEnd>\n      </Repetition>",
        INTERVAL_SECS / 60
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n\
         <Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\n  \
           <RegistrationInfo>\n    <Description>deskhand: run the scheduled tasks that are due</Description>\n    <URI>{uri}</URI>\n  </RegistrationInfo>\n  \
           <Triggers>\n    \
             <LogonTrigger>\n      <Enabled>true</Enabled>\n      {repeat}\n    </LogonTrigger>\n    \
             <TimeTrigger>\n      <StartBoundary>2026-01-01T00:00:00</StartBoundary>\n      <Enabled>true</Enabled>\n      {repeat}\n    </TimeTrigger>\n  \
           </Triggers>\n  \
           <Principals>\n    <Principal id=\"Author\">\n      <LogonType>InteractiveToken</LogonType>\n      <RunLevel>LeastPrivilege</RunLevel>\n    </Principal>\n  </Principals>\n  \
           <Settings>\n    \
             <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n    \
             <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n    \
             <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n    \
             <StartWhenAvailable>true</StartWhenAvailable>\n    \
             <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>\n    \
             <Enabled>true</Enabled>\n  \
           </Settings>\n  \
           <Actions Context=\"Author\">\n    <Exec>\n      <Command>{exe}</Command>\n      <Arguments>schedule run-due</Arguments>\n    </Exec>\n  </Actions>\n\
         </Task>\n",
        uri = xml_escape(WINDOWS_TASK),
        exe = xml_escape(&exe.display().to_string()),
    )
}

/// The Windows task file's bytes: UTF-16 little-endian with a byte order
/// mark, as its declaration says and Task Scheduler writes its own.
pub fn utf16_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places() -> Places {
        Places {
            config_home: PathBuf::from("/home/ana/.config"),
            home: PathBuf::from("/home/ana"),
            deskhand_config: PathBuf::from("/home/ana/.config/deskhand"),
            xdg_config_home: None,
        }
    }

    /// The files match `golden/` (to change one: delete it, run this test, read the diff).
    #[test]
    fn the_job_files_match_the_golden_files() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/schedule/golden");
        let exe = Path::new("/opt/deskhand 1.0/bin/deskhand");
        let cases = [
            ("deskhand-schedules.service", systemd_service(exe, None)),
            ("deskhand-schedules.timer", systemd_timer()),
            (
                "dev.deskhand.schedules.plist",
                launchd_plist(exe, None, Path::new("/Users/ana")),
            ),
            (
                "run-due-schedules.xml",
                windows_task(Path::new(r"C:\Program Files\deskhand\deskhand.exe")),
            ),
        ];
        let mut written = Vec::new();
        for (name, text) in &cases {
            let path = golden.join(name);
            if !path.exists() {
                std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                written.push(path.display().to_string());
            }
        }
        assert!(
            written.is_empty(),
            "wrote {written:?}: read them, then run the test again"
        );
        for (name, text) in cases {
            let path = golden.join(name);
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(text, want, "{name} differs from its golden file");
        }
    }

    #[test]
    fn each_os_gets_its_files_in_its_place() {
        let exe = Path::new("/usr/bin/deskhand");
        let names = |os| -> Vec<String> {
            files(os, exe, &places())
                .into_iter()
                .map(|(p, _)| p.display().to_string())
                .collect()
        };
        assert_eq!(
            names(Os::Linux),
            [
                "/home/ana/.config/systemd/user/deskhand-schedules.service",
                "/home/ana/.config/systemd/user/deskhand-schedules.timer"
            ]
        );
        assert_eq!(
            names(Os::MacOs),
            ["/home/ana/Library/LaunchAgents/dev.deskhand.schedules.plist"]
        );
        assert_eq!(names(Os::Windows), ["/home/ana/.config/deskhand/run-due-schedules.xml"]);
    }

    #[test]
    fn odd_characters_in_paths_are_quoted() {
        let service = systemd_service(Path::new("/a b/100%\"x\"/deskhand"), Some(Path::new("/t/c f")));
        assert!(
            service.contains(r#"ExecStart="/a b/100%%\"x\"/deskhand" schedule run-due"#),
            "{service}"
        );
        assert!(service.contains(r#"Environment="XDG_CONFIG_HOME=/t/c f""#), "{service}");
        let plist = launchd_plist(Path::new("/a&b/<x>"), None, Path::new("/Users/a"));
        assert!(plist.contains("<string>/a&amp;b/&lt;x&gt;</string>"), "{plist}");
        let bytes = utf16_with_bom("<a/>");
        assert_eq!(bytes, [0xFF, 0xFE, b'<', 0, b'a', 0, b'/', 0, b'>', 0]);
    }
}
