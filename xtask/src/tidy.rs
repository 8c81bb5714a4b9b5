//! Tidy checks that run as plain tests (`cargo test -p xtask`), so every test run enforces them.
//!
//! - Every Rust file in the workspace starts with module documentation (`//!`).
//! - No test carries the `ignore` attribute: a test that does not run does not exist.
//! - `.ci/run` runs exactly the test command the README gives.
//! - Every crate inherits the workspace lints.

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        crate::root()
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn workspace_rust_files() -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in ["crates", "xtask", "tests", "examples"] {
            rust_files(&root().join(dir), &mut files);
        }
        assert!(files.len() > 5, "found only {files:?}");
        files
    }

    #[test]
    fn every_rust_file_has_module_docs() {
        let missing: Vec<_> = workspace_rust_files()
            .into_iter()
            .filter(|f| {
                let text = fs::read_to_string(f).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .collect();
        assert!(
            missing.is_empty(),
            "files without `//!` module docs: {missing:?}"
        );
    }

    #[test]
    fn no_ignored_tests() {
        let needle = ["#[", "ignore"].concat();
        let offenders: Vec<_> = workspace_rust_files()
            .into_iter()
            .filter(|f| fs::read_to_string(f).unwrap_or_default().contains(&needle))
            .collect();
        assert!(offenders.is_empty(), "ignored tests in {offenders:?}");
    }

    #[test]
    fn ci_runs_the_readme_test_command() {
        let readme = fs::read_to_string(root().join("README.md")).unwrap();
        let ci = fs::read_to_string(root().join(".ci/run")).unwrap();
        let command = readme
            .lines()
            .find_map(|l| l.trim().strip_suffix("# runs every test").map(str::trim))
            .expect("README names its test command on a line ending in `# runs every test`");
        assert!(
            ci.lines().any(|l| l.trim() == command),
            ".ci/run must run `{command}` on a line of its own"
        );
    }

    #[test]
    fn every_crate_inherits_workspace_lints() {
        let mut manifests = vec![
            root().join("xtask/Cargo.toml"),
            root().join("tests/Cargo.toml"),
        ];
        for dir in ["crates", "examples"] {
            for entry in fs::read_dir(root().join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                let manifest = entry.path().join("Cargo.toml");
                if manifest.exists() {
                    manifests.push(manifest);
                }
            }
        }
        for manifest in manifests {
            let text = fs::read_to_string(&manifest).unwrap();
            assert!(
                text.contains("[lints]\nworkspace = true"),
                "{manifest:?} lacks `[lints] workspace = true`"
            );
        }
    }

    #[test]
    fn every_readme_with_rust_examples_is_compiled_as_doc_tests() {
        let mut checked = 0;
        for entry in fs::read_dir(root().join("crates"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let readme = entry.path().join("README.md");
            let lib = entry.path().join("src/lib.rs");
            let Ok(text) = fs::read_to_string(&readme) else {
                continue;
            };
            if !text.contains("```rust") || !lib.exists() {
                continue;
            }
            let lib_text = fs::read_to_string(&lib).unwrap();
            assert!(
                lib_text.contains("#[doc = include_str!(\"../README.md\")]"),
                "{readme:?} has Rust examples but {lib:?} does not include it as doc tests"
            );
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} READMEs checked");
        // The root README's quick start is compiled by entraid-fred's doc tests.
        let fred = fs::read_to_string(root().join("crates/entraid-fred/src/lib.rs")).unwrap();
        assert!(fred.contains("include_str!(\"../../../README.md\")"));
    }
}
