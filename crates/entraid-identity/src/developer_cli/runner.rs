//! Running one developer tool: found on a search path, run without a shell from the root folder, in a process
//! group of its own on unix (killed whole on timeout or drop), its output read up to 1 MiB.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use entraid_core::Error;
use tokio::io::AsyncReadExt as _;

/// The most output read from a developer tool: 1 MiB.
pub(super) const MAX_OUTPUT: u64 = 1024 * 1024;

/// What a finished tool printed.
pub(super) struct Output {
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: String,
    pub(super) code: Option<i32>,
}

/// How to find and run one developer tool.
#[derive(Debug, Clone)]
pub(super) struct Tool {
    /// The credential's name.
    pub(super) credential: &'static str,
    /// The program's name on the search path.
    pub(super) program: &'static str,
    /// The search path; `None`: the environment's `PATH`.
    pub(super) search_path: Option<OsString>,
    pub(super) timeout: Duration,
}

impl Tool {
    /// The program's full path, found on the search path.
    pub(super) fn locate(&self, program: &str) -> Option<PathBuf> {
        let path = self.search_path.as_ref()?;
        let names: &[&str] = if cfg!(windows) {
            &[".exe", ".cmd", ".bat", ""]
        } else {
            &[""]
        };
        std::env::split_paths(path)
            .filter(|dir| dir.is_absolute())
            .flat_map(|dir| {
                names
                    .iter()
                    .map(move |ext| dir.join(format!("{program}{ext}")))
            })
            .find(|candidate| is_executable(candidate))
    }

    /// Runs `program args...` without a shell, within the timeout; kills it when the time is up.
    pub(super) async fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, Error> {
        let Some(executable) = self.locate(program) else {
            return Err(Error::unavailable(
                self.credential,
                format!("`{program}` was not found on the search path (PATH); is it installed?"),
            ));
        };
        let mut command = tokio::process::Command::new(&executable);
        command
            .args(args)
            .current_dir(root_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so that a timeout kills whatever it started too.
        #[cfg(unix)]
        command.process_group(0);
        if let Some(path) = &self.search_path {
            command.env("PATH", path);
        }
        tracing::debug!(credential = self.credential, program = %executable.display(), ?args, "running");
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::unavailable(
                    self.credential,
                    format!("`{program}` could not be started ({e}); is it installed?"),
                )
            } else {
                Error::custom(
                    format!("{}: `{program}` could not be started: {e}", self.credential),
                    false,
                )
            }
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // Kills the group if this future is dropped before the tool is done (a caller's own timeout).
        let mut group = ProcessGroup::of(&child);
        let finished = tokio::time::timeout(timeout, async {
            let (out, err, status) =
                tokio::join!(read_limited(stdout), read_limited(stderr), child.wait());
            (out, err, status)
        })
        .await;
        let (stdout, stderr, status) = match finished {
            Ok(done) => {
                group.disarm();
                done
            }
            Err(_) => {
                group.kill();
                let _ = child.start_kill();
                let _ = child.wait().await;
                tracing::debug!(
                    credential = self.credential,
                    program,
                    "killed after the timeout"
                );
                return Err(Error::timeout(self.credential, timeout));
            }
        };
        let status = status.map_err(|e| {
            Error::custom(
                format!("{}: waiting for `{program}` failed: {e}", self.credential),
                false,
            )
        })?;
        Ok(Output {
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            code: status.code(),
        })
    }
}

/// A running tool's process group (its own, on unix), killed with `SIGKILL` on [`ProcessGroup::kill`] or on drop
/// unless disarmed. The tool is not reaped before the kill, so its pid (the group's id) cannot have been reused.
pub(super) struct ProcessGroup {
    #[cfg(unix)]
    pub(super) leader: Option<rustix::process::Pid>,
}

impl ProcessGroup {
    pub(super) fn of(child: &tokio::process::Child) -> Self {
        #[cfg(unix)]
        {
            Self {
                leader: child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .and_then(rustix::process::Pid::from_raw),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            Self {}
        }
    }

    /// The tool finished normally: nothing to kill.
    pub(super) fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.leader = None;
        }
    }

    /// Kills every process of the group (at most once).
    pub(super) fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(leader) = self.leader.take() {
            // ESRCH (the group is already gone) is fine.
            let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The root folder, where tools run (so nothing in the current folder shadows them).
pub(super) fn root_dir() -> PathBuf {
    if cfg!(windows) {
        std::env::var_os("SystemRoot").map_or_else(|| PathBuf::from("C:\\"), PathBuf::from)
    } else {
        PathBuf::from("/")
    }
}

#[cfg(unix)]
pub(super) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
pub(super) fn is_executable(path: &Path) -> bool {
    path.is_file()
}

pub(super) async fn read_limited<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut bytes).await;
    }
    bytes
}
