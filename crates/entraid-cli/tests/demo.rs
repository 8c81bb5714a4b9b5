//! `entraid demo` end to end: the binary runs every layer against the emulator and the enforcing gateway and
//! reports a clean run; the unimplemented subcommands say so.

use std::process::Command;

#[test]
fn demo_runs_clean() {
    let output = Command::new(env!("CARGO_BIN_EXE_entraid"))
        .args(["demo", "--rotations", "2", "--lifetime", "3"])
        .output()
        .expect("the entraid binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("rotation 2: new token"), "{stdout}");
    assert!(
        stdout.contains("connections closed by expiry: 0"),
        "{stdout}"
    );
    assert!(stdout.contains("failed: 0"), "{stdout}");
    assert!(stdout.contains("result: ok"), "{stdout}");
}

#[test]
fn planned_subcommands_say_they_are_not_implemented() {
    for subcommand in ["token", "doctor", "ping", "emulator"] {
        let output = Command::new(env!("CARGO_BIN_EXE_entraid"))
            .arg(subcommand)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("not implemented yet"));
    }
}
