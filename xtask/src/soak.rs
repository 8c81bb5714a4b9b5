//! `cargo xtask soak --minutes N | --seconds N`: builds and runs the soak program (`tests/examples/soak.rs` in the
//! `entraid-tests` package): a pool of 32, a 3-master cluster, RESP2 and RESP3 subscribers and a blocked `BLPOP`
//! client (on a standalone harness beside the cluster, no timeout) with 3 s tokens under the Data Contributor
//! policy. It fails when the program reports any failure, a connection closed by expiry, a message lost by the
//! RESP3 subscriber, an item pushed and never popped, or growth after warm-up beyond the bounds:
//! `--max-rss-growth-mib` (default 32) and `--max-task-growth` (default 64), passed through to the program.
//!
//! `cargo xtask ci` runs 60 s of it ([`CI_ARGS`]). The results of long runs are recorded in `docs/RELIABILITY.md`.

use crate::{cargo, run};

/// What `cargo xtask ci` runs: 60 s with the default bounds.
pub(crate) const CI_ARGS: [&str; 2] = ["--seconds", "60"];

/// The options after `soak`, checked here so that a typo fails before the build.
fn parse(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut duration = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--minutes" | "--seconds" | "--max-rss-growth-mib" | "--max-task-growth" => {
                let value = it
                    .next()
                    .filter(|v| v.parse::<u64>().is_ok_and(|n| n > 0))
                    .ok_or_else(|| format!("soak: {arg} takes a positive number; {USAGE}"))?;
                if matches!(arg.as_str(), "--minutes" | "--seconds") {
                    if duration {
                        return Err(format!("soak: give --minutes or --seconds once; {USAGE}"));
                    }
                    duration = true;
                }
                out.push(arg.clone());
                out.push(value.clone());
            }
            other => return Err(format!("soak: unknown argument {other:?}; {USAGE}")),
        }
    }
    if !duration {
        out.extend(CI_ARGS.iter().map(|s| (*s).to_owned()));
    }
    Ok(out)
}

const USAGE: &str = "usage: cargo xtask soak [--minutes N | --seconds N] [--max-rss-growth-mib N] [--max-task-growth N]";

/// Builds the soak program (dev profile, the workspace's warm build directory) and runs it with `args`.
pub(crate) fn soak(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "entraid-tests",
        "--example",
        "soak",
        "--",
    ])
    .args(&args);
    run("soak", cmd)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]).unwrap(), strings(&["--seconds", "60"]));
        assert_eq!(
            parse(&strings(&["--minutes", "30"])).unwrap(),
            strings(&["--minutes", "30"])
        );
        assert_eq!(
            parse(&strings(&["--seconds", "5", "--max-rss-growth-mib", "8"])).unwrap(),
            strings(&["--seconds", "5", "--max-rss-growth-mib", "8"])
        );
        assert!(parse(&strings(&["--minutes"])).is_err());
        assert!(parse(&strings(&["--minutes", "0"])).is_err());
        assert!(parse(&strings(&["--minutes", "x"])).is_err());
        assert!(parse(&strings(&["--minutes", "1", "--seconds", "2"])).is_err());
        assert!(parse(&strings(&["--hours", "1"])).is_err());
    }
}
