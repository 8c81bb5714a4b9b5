//! `cargo xtask bench [NAME...]`: the benchmarks, one after another (never in parallel: they time real I/O on a
//! shared machine). With no name, all of them; `cargo xtask bench --list` names them.
//!
//! Each is a `cargo bench` target; what it measures and how its numbers are read is in its own source and in
//! `docs/BENCHMARKS.md`, where the results go with the command that produced them.

use crate::{cargo, run};

/// (name, package, bench target, what it measures)
const BENCHES: &[(&str, &str, &str, &str)] = &[
    (
        "cached-read",
        "entraid-manager",
        "cached_read",
        "TokenManager::current() against Mutex/RwLock baselines",
    ),
    (
        "gateway",
        "entraid-testkit",
        "gateway",
        "the testkit gateway's cost against redis-server direct",
    ),
    (
        "startup",
        "entraid-fred",
        "startup",
        "whole-process start-up to the first authenticated PING (managed identity on the emulator)",
    ),
    (
        "per-command",
        "entraid-fred",
        "per_command",
        "fred throughput and latency with entraid-fred attached vs a static password",
    ),
    (
        "fanout",
        "entraid-fred",
        "fanout",
        "re-AUTH fan-out latency (1 to 1,000 connections, pools, clusters), CPU, RSS and tasks",
    ),
];

/// Runs the named benchmarks (all when `args` is empty).
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--list") {
        for (name, package, target, what) in BENCHES {
            println!("{name:12} cargo bench -p {package} --bench {target}: {what}");
        }
        return Ok(());
    }
    let selected: Vec<_> = if args.is_empty() {
        BENCHES.iter().collect()
    } else {
        let mut selected = Vec::new();
        for arg in args {
            let bench = BENCHES
                .iter()
                .find(|(name, ..)| name == arg)
                .ok_or_else(|| {
                    let names: Vec<&str> = BENCHES.iter().map(|b| b.0).collect();
                    format!(
                        "unknown benchmark `{arg}`; expected one of {}",
                        names.join(", ")
                    )
                })?;
            selected.push(bench);
        }
        selected
    };
    for (name, package, target, _) in selected {
        if *name == "startup" {
            // The measured program, built in the same profile (and environment) as the bench.
            let mut probe = cargo();
            probe.args([
                "build",
                "--profile",
                "bench",
                "-p",
                "entraid-fred",
                "--example",
                "startup_probe",
            ]);
            run("build the start-up probe", probe)?;
        }
        let mut cmd = cargo();
        cmd.args(["bench", "-p", package, "--bench", target]);
        run(&format!("bench {name}"), cmd)?;
    }
    println!(
        "\nRecord the results, with the command and the machine's load, in docs/BENCHMARKS.md."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed benchmark is a `[[bench]]` target of its package (so `cargo xtask bench` cannot name one
    /// that does not exist), and an unknown name is refused before anything runs.
    #[test]
    fn every_listed_bench_exists_and_unknown_names_are_refused() {
        for (name, package, target, _) in BENCHES {
            let manifest = crate::root()
                .join("crates")
                .join(package)
                .join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap_or_default();
            let declared = text
                .split("[[bench]]")
                .skip(1)
                .any(|section| section.contains(&format!("name = \"{target}\"")));
            assert!(
                declared,
                "{name}: no [[bench]] `{target}` in {}",
                manifest.display()
            );
        }
        let err = bench(&["no-such-bench".to_owned()]).unwrap_err();
        assert!(err.contains("unknown benchmark `no-such-bench`"), "{err}");
    }
}
