//! `cargo xtask`: the single entry point for the project's checks, the same on a laptop and in CI.
//!
//! ```text
//! cargo xtask ci        fmt, clippy, tests, doc tests, a 60 s soak, docs, cargo-deny, layering: stops at the first failure
//! cargo xtask test      the tests only (cargo-nextest when installed, else cargo test) and the doc tests
//! cargo xtask layering  the dependency-layering check only
//! cargo xtask package   publishability: metadata, one MSRV, `cargo package` of every published crate
//! cargo xtask quickstart  the README's quick start, built in a fresh project depending only on entraid-fred
//! cargo xtask demo      the end-to-end demo
//! cargo xtask bench     the benchmarks (`bench NAME...` for some, `bench --list` to name them)
//! cargo xtask fuzz      the fuzz targets (--seconds N each, --target T); not part of `ci`
//! cargo xtask soak      the soak run (--minutes N | --seconds N); `ci` runs 60 s of it
//! ```
//!
//! `ci`, `test` and `demo` first make sure redis-server (>= 6) is there: they install it when missing (apt-get as
//! root or with sudo, Homebrew on macOS; `ENTRAID_INSTALL_REDIS=0` forbids it) or stop at once with the command
//! that does (`redis_server.rs`).

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask reports to the developer on the terminal"
)]

mod bench;
mod fuzz;
mod layering;
mod package;
mod redis_server;
mod soak;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <ci|test|layering|package|quickstart|demo|bench [NAME...|--list]|fuzz [--seconds N] [--target T]|soak [--minutes N | --seconds N]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("layering") => layering(),
        Some("package") => package(),
        Some("quickstart") => quickstart(),
        Some("demo") => demo(),
        Some("bench") => bench::bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("soak") => soak::soak(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command, echoing it first; an error names the step that failed.
fn run(step: &str, mut cmd: Command) -> Result<(), String> {
    println!("\n==> {step}: {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn has_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ci() -> Result<(), String> {
    // First: the tests need redis-server, and finding it missing after fmt and clippy wastes minutes.
    redis_server::ensure()?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("fmt", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run("clippy", clippy)?;

    test()?;
    soak::soak(&[])?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("doc", doc)?;

    deny()?;
    layering()?;
    package()?;
    quickstart()?;
    println!("\nxtask ci: all checks passed");
    Ok(())
}

fn test() -> Result<(), String> {
    redis_server::ensure()?;
    if has_cargo_subcommand("nextest") {
        let mut nextest = cargo();
        nextest.args([
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-tests",
            "warn",
        ]);
        run("tests (nextest)", nextest)?;
    } else {
        println!("cargo-nextest is not installed; running cargo test");
        let mut test = cargo();
        test.args([
            "test",
            "--workspace",
            "--all-features",
            "--lib",
            "--bins",
            "--tests",
        ]);
        run("tests (cargo test)", test)?;
    }
    let mut doctest = cargo();
    doctest.args(["test", "--workspace", "--all-features", "--doc"]);
    run("doc tests", doctest)
}

fn deny() -> Result<(), String> {
    if !has_cargo_subcommand("deny") {
        let mut install = cargo();
        install.args(["install", "--locked", "cargo-deny"]);
        run("install cargo-deny", install)?;
    }
    // The advisory database is fetched from GitHub, which this network cannot reach: only that part is skipped.
    println!(
        "\nnote: `cargo deny check advisories` is skipped: the advisory database cannot be downloaded here"
    );
    let mut deny = cargo();
    deny.args([
        "deny",
        "--all-features",
        "check",
        "bans",
        "licenses",
        "sources",
    ]);
    run("cargo-deny", deny)
}

fn layering() -> Result<(), String> {
    println!("\n==> layering: cargo metadata");
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--all-features"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let graph = layering::Graph::from_metadata(&output.stdout)?;
    let mut violations = layering::check_workspace(&graph);
    // Layer rules: what each crate pulls when built alone, with default and with all features (and, for some,
    // without default features).
    for krate in layering::ruled_crates().filter(|k| graph.members().contains(*k)) {
        for features in layering::feature_sets(krate) {
            let mut tree = cargo();
            tree.args([
                "tree",
                "-p",
                krate,
                "-e",
                "normal,build",
                "--prefix",
                "depth",
                "--format",
                "{p}",
            ]);
            tree.args(features);
            let output = tree.output().map_err(|e| format!("cargo tree: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "cargo tree -p {krate} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let tree =
                layering::Graph::from_cargo_tree(krate, &String::from_utf8_lossy(&output.stdout));
            violations.extend(layering::check_layer_with(krate, features, &tree));
        }
    }
    // What `cargo install <crate> --no-default-features` builds.
    for krate in layering::no_default_ruled_crates().filter(|k| graph.members().contains(*k)) {
        let mut tree = cargo();
        tree.args([
            "tree",
            "-p",
            krate,
            "-e",
            "normal,build",
            "--prefix",
            "depth",
            "--format",
            "{p}",
            "--no-default-features",
        ]);
        let output = tree.output().map_err(|e| format!("cargo tree: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "cargo tree -p {krate} --no-default-features failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let tree =
            layering::Graph::from_cargo_tree(krate, &String::from_utf8_lossy(&output.stdout));
        violations.extend(layering::check_no_default_layer(krate, &tree));
    }
    violations.sort();
    violations.dedup();
    if violations.is_empty() {
        println!(
            "layering: ok ({} workspace crates checked)",
            graph.members().len()
        );
        Ok(())
    } else {
        for v in &violations {
            eprintln!("layering violation: {v}");
        }
        Err(format!("{} layering violation(s)", violations.len()))
    }
}

fn package() -> Result<(), String> {
    println!("\n==> package: metadata");
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err("cargo metadata failed".to_owned());
    }
    let problems = package::check_metadata(&output.stdout)?;
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("package: {p}");
        }
        return Err(format!("{} packaging problem(s)", problems.len()));
    }
    for krate in package::PUBLISHED {
        let output = cargo()
            .args(["package", "--list", "--allow-dirty", "-p", krate])
            .output()
            .map_err(|e| format!("cargo package --list: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "cargo package --list -p {krate} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let missing = package::missing_files(&String::from_utf8_lossy(&output.stdout));
        if !missing.is_empty() {
            return Err(format!("{krate}: the package lacks {}", missing.join(", ")));
        }
    }
    // All crates in one `cargo package`, so each resolves its siblings from the packages just built (none is on
    // crates.io yet). `--no-verify`: verifying would compile all six crates again from their .crate files, a
    // second full build of what clippy and the tests have just built from the same sources.
    let mut all = cargo();
    all.args(["package", "--no-verify", "--allow-dirty"]);
    for krate in package::PUBLISHED {
        all.args(["-p", krate]);
    }
    run("cargo package", all)?;
    println!("package: ok ({} crates)", package::PUBLISHED.len());
    Ok(())
}

fn quickstart() -> Result<(), String> {
    let root = root();
    let readme =
        std::fs::read_to_string(root.join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let code =
        package::quick_start(&readme).ok_or("README.md: no ```rust block under ## Quick start")?;
    let dir = std::env::temp_dir().join(format!("entraid-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(
        &dir.join("Cargo.toml"),
        &package::quick_start_manifest(&root),
    )?;
    write(&dir.join("src").join("main.rs"), &code)?;
    // The workspace's lockfile pins the same versions, so `--offline` works from the local registry cache.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut check = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    check
        .current_dir(&dir)
        .args(["check", "--offline", "--quiet"])
        // Share the workspace's build directory: the dependencies are already built there.
        .env("CARGO_TARGET_DIR", root.join("target"));
    let result = run("quickstart (fresh project: entraid-fred + fred)", check);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!(
        "quickstart: the README's quick start builds with entraid-fred as the one entraid dependency"
    );
    Ok(())
}

fn demo() -> Result<(), String> {
    redis_server::ensure()?;
    let mut demo = cargo();
    demo.args(["run", "--quiet", "-p", "entraid-cli", "--", "demo"]);
    run("demo", demo)
}
