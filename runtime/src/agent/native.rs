//! The `shell` tool: a native command in the host VM sandbox, its changes
//! through the same change pipeline as a tool call's.

use super::*;

impl Agent<'_> {
    /// Runs a native command for the current step: it sees only the folders
    /// the step declares (read-only, or a scratch copy where the step writes
    /// a folder granted read-write), and what it changed goes through the
    /// same changeset path as a tool's proposals.
    pub(super) fn shell_call(
        &self,
        st: &mut RunState,
        step: StepNo,
        id: &CallId,
        input: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let Some(backend) = self.shell else {
            return Err("there is no shell sandbox on this machine (`deskhand doctor` says why); the task needs another way than a shell command".into());
        };
        let args: meta::ShellArgs =
            serde_json::from_value(input.clone()).map_err(|e| format!("shell arguments are invalid: {e}"))?;
        let grants = match self.step_grants(st, &st.plan[step].effects) {
            Ok(g) => g,
            Err(reason) => {
                self.block(st, reason.clone());
                return Err(reason);
            }
        };
        // The workdir is a path like any other: inside the step's folders,
        // else Blocked before anything runs (the command may still `cd` to
        // the sandbox's private /tmp).
        let workdir = args.workdir.as_deref().map(|w| {
            let dir = self.workspace.resolve_path(w).map_err(|e| e.to_string())?;
            let sandbox = self
                .workspace
                .sandbox(&grants, crate::wasm::Limits::default())
                .map_err(|e| e.to_string())?;
            if sandbox.mounts.iter().any(|m| dir.starts_with(&m.host)) {
                Ok(dir)
            } else {
                Err(format!(
                    "the shell's workdir {w} is outside the folders step {step} declares; declare it in the step's reads or writes"
                ))
            }
        });
        let workdir = match workdir {
            Some(Ok(w)) => Some(w),
            Some(Err(reason)) => {
                self.block(st, reason.clone());
                return Err(reason);
            }
            None => None,
        };
        self.emit(
            &st.run,
            Event::ToolCallBegin {
                call: id.clone(),
                tool: "shell".into(),
                operation: "run".into(),
                args: input.clone(),
            },
        );
        let limits = deskhand_host_vm::Limits {
            wall_clock: self.settings.limits.deadline.max(std::time::Duration::from_secs(1)),
            ..deskhand_host_vm::Limits::default()
        };
        let command = vec!["/bin/sh".to_owned(), "-c".to_owned(), args.command];
        // A step that declares hosts reaches them through the run's proxy
        // (the relay in the sandbox's own namespace); otherwise no network.
        let egress = match st.plan[step].effects.network.is_empty() {
            true => Ok(None),
            false => crate::confine::egress_wiring(
                &st.egress,
                &crate::egress::Exit::Shell,
                self.settings.egress.relay.as_deref().unwrap_or_default(),
            )
            .map(Some),
        };
        let native = egress.and_then(|egress| {
            let policy = self.workspace.policy(&grants)?;
            let visible = crate::stage::visible_output(self.workspace, Some(&st.run), &policy)?;
            crate::shell::run_native(
                self.workspace,
                backend,
                &policy,
                &command,
                limits,
                workdir,
                &visible,
                egress.as_ref(),
                &mut |_| {},
            )
        });
        let native = match native {
            Ok(n) => n,
            Err(e) => {
                self.emit(
                    &st.run,
                    Event::ToolCallEnd {
                        call: id.clone(),
                        outcome: CallOutcome::Stopped { reason: e.to_string() },
                        elapsed_ms: 0,
                    },
                );
                return Err(e.to_string());
            }
        };
        let mut text = format!("{}\n{}", native.describe(), native.tail);
        self.emit(
            &st.run,
            Event::ToolCallEnd {
                call: id.clone(),
                outcome: CallOutcome::Ok {
                    output: deskhand_types::ToolOutput::new(
                        serde_json::json!({"ended": native.describe()}),
                        text.clone(),
                    ),
                },
                elapsed_ms: u64::try_from(native.outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
            },
        );
        if let Some(reason) = &native.refused {
            self.block(st, reason.clone());
            text.push_str(&format!("\n{reason}"));
        } else if !native.proposed.is_empty() {
            let outcome = self.apply_changes(st, step, id, &|g| native.staged(g), &native.proposed);
            text.push('\n');
            text.push_str(&match outcome {
                Ok(done) => done,
                Err(refused) => refused.text,
            });
        }
        let reply = self.shown_output(&st.run, id, "shell", &text);
        if native.outcome.success() {
            Ok(reply)
        } else {
            Err(reply)
        }
    }
}
