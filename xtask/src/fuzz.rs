//! `cargo xtask fuzz --seconds N [--target T]...`: runs each coverage-guided fuzz target of `fuzz/` for N seconds
//! (default 60), one after the other, and fails if any target finds a crash, a hang or an out-of-memory.
//!
//! The engine is libFuzzer through cargo-fuzz, installed with `cargo install cargo-fuzz --locked` when missing. The
//! project's toolchain is stable, so cargo-fuzz runs with `RUSTC_BOOTSTRAP=1` (it passes a few `-Z` flags) and
//! `--sanitizer none` (no AddressSanitizer on stable; the code is `#![forbid(unsafe_code)]`), with debug
//! assertions and overflow checks on. Each target's corpus grows in `fuzz/corpus/<target>` (not committed), seeded
//! from `fuzz/seeds/<target>`; a crash is saved in `fuzz/artifacts/<target>` and reproduced with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --debug-assertions <target> <artifact>` in `fuzz/`. Not part
//! of `cargo xtask ci`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{has_cargo_subcommand, root, run};

/// The options after `fuzz`.
struct Options {
    seconds: u64,
    targets: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("fuzz: {name} needs a value"))
        };
        match arg.as_str() {
            "--seconds" => {
                options.seconds = value("--seconds")?
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or("fuzz: --seconds takes a positive number of seconds")?;
            }
            "--target" => options.targets.push(value("--target")?),
            other => return Err(format!("fuzz: unknown argument {other:?}; {USAGE}")),
        }
    }
    Ok(options)
}

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--target T]...";

/// The targets declared in `fuzz/Cargo.toml` (its `[[bin]]` names), in order.
fn declared_targets(manifest: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(rest) = line.strip_prefix("name") {
            let name = rest
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            targets.push(name.to_owned());
        }
    }
    targets
}

/// What one run did.
struct Outcome {
    target: String,
    executions: Option<u64>,
    ok: bool,
}

pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let dir = root().join("fuzz");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|e| format!("fuzz: cannot read fuzz/Cargo.toml: {e}"))?;
    let declared = declared_targets(&manifest);
    let targets = if options.targets.is_empty() {
        declared.clone()
    } else {
        options.targets.clone()
    };
    if let Some(unknown) = targets.iter().find(|t| !declared.contains(t)) {
        return Err(format!(
            "fuzz: no target {unknown:?}; the targets are {}",
            declared.join(", ")
        ));
    }
    if !has_cargo_subcommand("fuzz") {
        let mut install = plain_cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        run("install cargo-fuzz", install)?;
    }
    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(&dir, target, options.seconds)?);
    }
    println!("\n==> fuzz summary ({} s per target)", options.seconds);
    for o in &outcomes {
        let executions = o
            .executions
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let result = if o.ok { "no crash" } else { "FAILED" };
        println!("{:<18} {:>12} executions  {result}", o.target, executions);
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.target.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz: {} found a failure; the input is in fuzz/artifacts/<target>",
            failed.join(", ")
        ))
    }
}

/// `cargo` from PATH, with the variables `cargo xtask` set for this process removed.
fn plain_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO") && name != "CARGO_HOME")
            || matches!(&*name, "RUSTC" | "RUSTDOC" | "RUSTUP_TOOLCHAIN")
        {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

fn run_target(dir: &Path, target: &str, seconds: u64) -> Result<Outcome, String> {
    let corpus = format!("corpus/{target}");
    std::fs::create_dir_all(dir.join(&corpus))
        .map_err(|e| format!("fuzz: cannot create fuzz/{corpus}: {e}"))?;
    // `cargo` from PATH, without what `cargo xtask` set for this process: exactly as `cargo fuzz` typed in fuzz/,
    // so the toolchain comes from rust-toolchain.toml and the build is not redone for a different cargo path.
    let mut cmd = plain_cargo();
    cmd.current_dir(dir).env("RUSTC_BOOTSTRAP", "1").args([
        "fuzz",
        "run",
        "--sanitizer",
        "none",
        "--debug-assertions",
        target,
        &corpus,
    ]);
    if dir.join("seeds").join(target).is_dir() {
        cmd.arg(format!("seeds/{target}"));
    }
    cmd.args([
        "--",
        &format!("-max_total_time={seconds}"),
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
    ]);
    println!("\n==> fuzz {target}: RUSTC_BOOTSTRAP=1 {cmd:?} (in fuzz/)");
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fuzz {target}: could not start: {e}"))?;
    // libFuzzer reports on standard error: echo it, and keep the execution count of its final stats.
    let mut executions = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                executions = n.trim().parse().ok();
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("fuzz {target}: waiting failed: {e}"))?;
    Ok(Outcome {
        target: target.to_owned(),
        executions,
        ok: status.success(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_targets() {
        let args: Vec<String> = ["--seconds", "5", "--target", "a", "--target", "b"]
            .map(String::from)
            .to_vec();
        let o = parse(&args).unwrap();
        assert_eq!(
            (o.seconds, o.targets),
            (5, vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(parse(&[]).unwrap().seconds, 60);
        for bad in [
            &["--seconds"][..],
            &["--seconds", "0"],
            &["--seconds", "x"],
            &["--nope"],
        ] {
            let bad: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        let manifest = "[package]\nname = \"entraid-fuzz\"\n\n[[bin]]\nname = \"one\"\npath = \"x\"\n\n[[bin]]\nname = \"two\"\n";
        assert_eq!(declared_targets(manifest), ["one", "two"]);
    }

    /// Every declared target has its source file and a seed folder, and every source file is declared.
    #[test]
    fn the_fuzz_project_declares_every_target() {
        let dir = root().join("fuzz");
        let declared = declared_targets(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap());
        assert!(declared.len() >= 9, "{declared:?}");
        let mut sources: Vec<String> = std::fs::read_dir(dir.join("fuzz_targets"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        sources.sort();
        let mut sorted = declared.clone();
        sorted.sort();
        assert_eq!(sources, sorted);
        for target in &declared {
            assert!(
                dir.join("seeds").join(target).is_dir(),
                "no seeds for {target}"
            );
        }
    }
}
