//! redis-server on a fresh machine: `cargo xtask demo` and `cargo xtask ci` look for it first and, when it is
//! missing, install it (apt-get as root or with sudo, Homebrew on macOS) or stop at once with the one command
//! that does, instead of failing deep inside a test.
//!
//! What to do is decided by [`plan`] from a [`Situation`] (what is on this machine), a pure function the unit tests
//! cover for every case without running apt; [`ensure`] looks at the machine and carries the plan out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest redis-server the test suite works with (ACLs with selectors and `CLIENT UNBLOCK` as used).
pub(crate) const MIN_MAJOR: u32 = 6;

/// The variable naming another redis-server program (read by the testkit too).
const PROGRAM_VAR: &str = "ENTRAID_REDIS_SERVER";
/// Set to `0` to forbid installing: xtask then stops with the command instead.
const INSTALL_VAR: &str = "ENTRAID_INSTALL_REDIS";

/// The operating system, as far as installing redis-server goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Linux,
    Mac,
    Other,
}

/// What is on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Situation {
    pub(crate) os: System,
    /// The redis-server program (`ENTRAID_REDIS_SERVER`, else `redis-server`) found, with its version line when it
    /// ran (`Redis server v=7.0.15 sha=...`).
    pub(crate) found: Option<Option<String>>,
    /// `ENTRAID_REDIS_SERVER` is set (then xtask never installs: the user chose the program).
    pub(crate) program_set: bool,
    pub(crate) is_root: bool,
    pub(crate) has_sudo: bool,
    pub(crate) has_apt: bool,
    pub(crate) has_brew: bool,
    /// Installing is allowed (`ENTRAID_INSTALL_REDIS` is not `0`).
    pub(crate) install_allowed: bool,
}

/// A command to run: program and arguments.
pub(crate) type Step = Vec<&'static str>;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// redis-server is there and new enough.
    Ready,
    /// Run these commands, then look again.
    Install(Vec<Step>),
    /// Stop now with this message (which names the one command to run, or what is wrong).
    Stop(String),
}

/// The commands that install redis-server with apt-get, prefixed with `sudo` when not root.
fn apt(sudo: bool) -> Vec<Step> {
    let prefix: &[&'static str] = if sudo { &["sudo"] } else { &[] };
    let mut update: Step = prefix.to_vec();
    update.extend(["apt-get", "update", "-qq"]);
    let mut install: Step = prefix.to_vec();
    install.extend(["apt-get", "install", "-y", "-qq", "redis-server"]);
    vec![update, install]
}

fn shown(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| s.join(" "))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The major version in a `redis-server --version` line (`Redis server v=7.0.15 sha=...`).
pub(crate) fn major_version(line: &str) -> Option<u32> {
    let start = line.find("v=")? + 2;
    line[start..].split('.').next()?.trim().parse().ok()
}

/// What to do in `s`.
pub(crate) fn plan(s: &Situation) -> Plan {
    match &s.found {
        Some(version) => {
            return match version.as_deref().map(major_version) {
                Some(Some(major)) if major >= MIN_MAJOR => Plan::Ready,
                Some(Some(major)) => Plan::Stop(format!(
                    "redis-server {major} is too old: the tests need redis-server {MIN_MAJOR} or newer ({}); \
                     install a newer one or set {PROGRAM_VAR} to its path",
                    version.as_deref().unwrap_or_default().trim()
                )),
                // It is there but did not say its version: let the tests try it.
                _ => Plan::Ready,
            };
        }
        None if s.program_set => {
            return Plan::Stop(format!(
                "{PROGRAM_VAR} names a redis-server that cannot be run: fix the path, or unset it to use \
                 redis-server from PATH"
            ));
        }
        None => {}
    }
    let (steps, how) = match s.os {
        System::Linux if s.has_apt && s.is_root => (apt(false), None),
        System::Linux if s.has_apt && s.has_sudo => (apt(true), None),
        System::Linux if s.has_apt => (
            apt(false),
            Some("as root (this user is not root and has no sudo)"),
        ),
        System::Mac if s.has_brew => (vec![vec!["brew", "install", "redis"]], None),
        System::Mac => {
            return Plan::Stop(
                "redis-server is missing and Homebrew is not installed: install Homebrew (https://brew.sh), \
                 then run `brew install redis`"
                    .to_owned(),
            );
        }
        System::Linux | System::Other => {
            return Plan::Stop(format!(
                "redis-server is missing: install redis-server {MIN_MAJOR} or newer with your system's package \
                 manager (e.g. `apt-get install -y redis-server`, `dnf install redis`, `brew install redis`), or set \
                 {PROGRAM_VAR} to its path"
            ));
        }
    };
    match how {
        Some(how) => Plan::Stop(format!(
            "redis-server is missing; run {how}: `{}`",
            shown(&steps)
        )),
        None if !s.install_allowed => Plan::Stop(format!(
            "redis-server is missing ({INSTALL_VAR}=0 forbids installing it); run: `{}`",
            shown(&steps)
        )),
        None => Plan::Install(steps),
    }
}

/// Whether `name` is an executable file in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// The redis-server program to use.
fn program() -> PathBuf {
    std::env::var_os(PROGRAM_VAR).map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// `redis-server --version`'s line, when the program runs: `Some(None)` when it ran but printed no version.
fn probe(program: &Path) -> Option<Option<String>> {
    let output = Command::new(program).arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Some((!line.is_empty()).then_some(line))
}

fn is_root() -> bool {
    // Without libc: `id -u` is on every unix this supports.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What is on this machine now.
fn situation() -> Situation {
    let os = match std::env::consts::OS {
        "linux" => System::Linux,
        "macos" => System::Mac,
        _ => System::Other,
    };
    Situation {
        os,
        found: probe(&program()),
        program_set: std::env::var_os(PROGRAM_VAR).is_some(),
        is_root: os != System::Other && is_root(),
        has_sudo: on_path("sudo"),
        has_apt: on_path("apt-get"),
        has_brew: on_path("brew"),
        install_allowed: std::env::var_os(INSTALL_VAR) != Some(OsString::from("0")),
    }
}

/// Makes sure redis-server is there (installing it when the plan says so), or returns the message to stop with.
pub(crate) fn ensure() -> Result<(), String> {
    let steps = match plan(&situation()) {
        Plan::Ready => return Ok(()),
        Plan::Stop(message) => return Err(message),
        Plan::Install(steps) => steps,
    };
    println!(
        "\n==> redis-server is missing (the tests and the demo start their own): installing it with `{}`",
        shown(&steps)
    );
    for step in &steps {
        let (program, args) = step.split_first().ok_or("empty install step")?;
        let mut cmd = Command::new(program);
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        crate::run("install redis-server", cmd)
            .map_err(|e| format!("{e}; install it yourself: `{}`", shown(&steps)))?;
    }
    match plan(&situation()) {
        Plan::Ready => Ok(()),
        Plan::Stop(message) => Err(message),
        Plan::Install(_) => Err(format!(
            "redis-server is still not on PATH after `{}`",
            shown(&steps)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(os: System) -> Situation {
        Situation {
            os,
            found: None,
            program_set: false,
            is_root: false,
            has_sudo: false,
            has_apt: false,
            has_brew: false,
            install_allowed: true,
        }
    }

    fn stop(plan: Plan) -> String {
        match plan {
            Plan::Stop(message) => message,
            other => panic!("expected a stop, got {other:?}"),
        }
    }

    #[test]
    fn a_new_enough_redis_server_is_ready_and_an_old_one_stops() {
        let mut s = missing(System::Linux);
        s.found = Some(Some(
            "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0".into(),
        ));
        assert_eq!(plan(&s), Plan::Ready);
        s.found = Some(None);
        assert_eq!(
            plan(&s),
            Plan::Ready,
            "no version printed: let the tests try"
        );
        s.found = Some(Some("Redis server v=5.0.7 sha=00000000:0".into()));
        let message = stop(plan(&s));
        assert!(
            message.contains("too old") && message.contains('6'),
            "{message}"
        );
    }

    #[test]
    fn root_on_debian_installs_with_apt_get() {
        let s = Situation {
            is_root: true,
            has_apt: true,
            has_sudo: true,
            ..missing(System::Linux)
        };
        assert_eq!(
            plan(&s),
            Plan::Install(vec![
                vec!["apt-get", "update", "-qq"],
                vec!["apt-get", "install", "-y", "-qq", "redis-server"],
            ])
        );
    }

    #[test]
    fn a_user_with_sudo_installs_through_sudo() {
        let s = Situation {
            has_apt: true,
            has_sudo: true,
            ..missing(System::Linux)
        };
        let Plan::Install(steps) = plan(&s) else {
            panic!("{:?}", plan(&s))
        };
        assert!(steps.iter().all(|step| step[0] == "sudo"), "{steps:?}");
        assert_eq!(
            steps[1],
            vec!["sudo", "apt-get", "install", "-y", "-qq", "redis-server"]
        );
    }

    #[test]
    fn a_user_without_sudo_is_told_the_command_to_run_as_root() {
        let s = Situation {
            has_apt: true,
            ..missing(System::Linux)
        };
        let message = stop(plan(&s));
        assert!(
            message.contains("as root")
                && message.contains("apt-get update -qq && apt-get install -y -qq redis-server"),
            "{message}"
        );
    }

    #[test]
    fn macos_uses_homebrew_or_says_how_to_get_it() {
        let s = Situation {
            has_brew: true,
            ..missing(System::Mac)
        };
        assert_eq!(
            plan(&s),
            Plan::Install(vec![vec!["brew", "install", "redis"]])
        );
        let message = stop(plan(&missing(System::Mac)));
        assert!(message.contains("brew install redis"), "{message}");
    }

    #[test]
    fn no_known_package_manager_stops_with_what_to_install() {
        for s in [missing(System::Linux), missing(System::Other)] {
            let message = stop(plan(&s));
            assert!(
                message.contains("redis-server 6 or newer") && message.contains(PROGRAM_VAR),
                "{message}"
            );
        }
    }

    #[test]
    fn installing_can_be_forbidden_and_a_chosen_program_is_never_replaced() {
        let s = Situation {
            is_root: true,
            has_apt: true,
            install_allowed: false,
            ..missing(System::Linux)
        };
        let message = stop(plan(&s));
        assert!(
            message.contains(INSTALL_VAR)
                && message.contains("apt-get install -y -qq redis-server"),
            "{message}"
        );
        let s = Situation {
            is_root: true,
            has_apt: true,
            program_set: true,
            ..missing(System::Linux)
        };
        assert!(stop(plan(&s)).contains(PROGRAM_VAR));
    }

    #[test]
    fn version_lines_are_read_without_panicking() {
        assert_eq!(major_version("Redis server v=7.2.4 sha=0"), Some(7));
        assert_eq!(major_version("Redis server v=6.0.16"), Some(6));
        for line in [
            "",
            "v=",
            "v=x.1",
            "Redis server",
            "v=99999999999999999999.0",
        ] {
            assert_eq!(major_version(line), None, "{line}");
        }
    }
}
