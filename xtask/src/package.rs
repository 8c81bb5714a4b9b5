//! `cargo xtask package` and `cargo xtask quickstart`: the crates are publishable (metadata, licenses, docs.rs
//! settings, one MSRV) and the README's quick start builds in a fresh project that depends only on `entraid-fred`
//! and `fred`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// The crates published to crates.io, in dependency order (each after everything it depends on).
pub(crate) const PUBLISHED: &[&str] = &[
    "entraid-core",
    "entraid-identity",
    "entraid-manager",
    "entraid-testkit",
    "entraid-fred",
    "entraid-redis",
    "entraid-cli",
];

/// The repository every published crate names.
pub(crate) const REPOSITORY: &str = "https://github.com/entraid-rs/entraid-rs";

/// The oldest toolchain the code can need: edition 2024 is 1.85 and `let` chains are 1.88. `rust-version` may not
/// be lower (it would be a lie); a higher one must be justified here first.
pub(crate) const MSRV_FLOOR: &str = "1.88";

/// Files every published crate's package must contain.
const PACKAGE_FILES: &[&str] = &["Cargo.toml", "README.md", "LICENSE-MIT", "LICENSE-APACHE"];

fn version_tuple(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// The metadata problems of the published crates, from `cargo metadata` output.
pub(crate) fn check_metadata(json: &[u8]) -> Result<Vec<String>, String> {
    let metadata: Value =
        serde_json::from_slice(json).map_err(|e| format!("cargo metadata: {e}"))?;
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .ok_or("cargo metadata: no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .filter_map(|p| Some((p["name"].as_str()?, p)))
        .collect();
    let mut problems = Vec::new();
    let mut msrvs = BTreeMap::new();
    for (name, package) in &packages {
        match package["rust_version"].as_str() {
            Some(v) => {
                msrvs.insert(v.to_owned(), *name);
            }
            None => problems.push(format!("{name}: no rust-version")),
        }
    }
    if msrvs.len() > 1 {
        problems.push(format!(
            "the crates disagree on rust-version: {msrvs:?} (inherit `rust-version.workspace = true`)"
        ));
    }
    for msrv in msrvs.keys() {
        if version_tuple(msrv) < version_tuple(MSRV_FLOOR) {
            problems.push(format!(
                "rust-version {msrv} is below what the code needs ({MSRV_FLOOR}: edition 2024, let chains)"
            ));
        }
    }
    for name in PUBLISHED {
        let Some(package) = packages.get(name) else {
            problems.push(format!("{name}: not a workspace member"));
            continue;
        };
        // `publish: null` means publishable anywhere; `[]` means `publish = false`.
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            problems.push(format!("{name}: publish = false"));
        }
        for field in ["description", "license", "repository", "readme"] {
            if package[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: no {field}"));
            }
        }
        if package["repository"].as_str() != Some(REPOSITORY) {
            problems.push(format!("{name}: repository is not {REPOSITORY}"));
        }
        let keywords = package["keywords"].as_array().map_or(0, Vec::len);
        if !(1..=5).contains(&keywords) {
            problems.push(format!(
                "{name}: {keywords} keywords (crates.io takes 1 to 5)"
            ));
        }
        if package["categories"].as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("{name}: no categories"));
        }
        let docs_rs = &package["metadata"]["docs"]["rs"];
        if docs_rs["all-features"] != Value::Bool(true) {
            problems.push(format!(
                "{name}: [package.metadata.docs.rs] all-features = true is missing"
            ));
        }
        let cfg_docsrs = docs_rs["rustdoc-args"]
            .as_array()
            .is_some_and(|a| a.windows(2).any(|w| w[0] == "--cfg" && w[1] == "docsrs"));
        if !cfg_docsrs {
            problems.push(format!(
                "{name}: [package.metadata.docs.rs] rustdoc-args = [\"--cfg\", \"docsrs\"] is missing"
            ));
        }
        // Each internal dependency must carry a version, or the package cannot be published.
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_internal = dep["path"].as_str().is_some();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if is_internal && !is_dev && dep["req"].as_str() == Some("*") {
                problems.push(format!(
                    "{name}: dependency {dep_name} has a path but no version"
                ));
            }
        }
        let lib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "lib"))
            });
        if let Some(src) = lib.and_then(|t| t["src_path"].as_str()) {
            let text = std::fs::read_to_string(src).unwrap_or_default();
            if !text.contains("#![cfg_attr(docsrs, feature(doc_cfg))]") {
                problems.push(format!(
                    "{name}: {src} lacks #![cfg_attr(docsrs, feature(doc_cfg))]"
                ));
            }
        }
    }
    Ok(problems)
}

/// The files of a `cargo package --list` that are missing from [`PACKAGE_FILES`].
pub(crate) fn missing_files(list: &str) -> Vec<&'static str> {
    PACKAGE_FILES
        .iter()
        .copied()
        .filter(|f| !list.lines().any(|l| l.trim() == *f))
        .collect()
}

/// The first Rust code block of the README's `## Quick start` section.
pub(crate) fn quick_start(readme: &str) -> Option<String> {
    let section = &readme[readme.find("## Quick start")?..];
    let start = section.find("```rust")?;
    let body = &section[start..];
    let body = &body[body.find('\n')? + 1..];
    let end = body.find("\n```")?;
    Some(body[..=end].to_owned())
}

/// The `Cargo.toml` of the throw-away quick-start project.
pub(crate) fn quick_start_manifest(root: &Path) -> String {
    let fred = root.join("crates").join("entraid-fred");
    format!(
        r#"[package]
name = "entraid-quickstart"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
entraid-fred = {{ path = {fred:?} }}
fred = "10.1"
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}

[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
debug = false

[workspace]
"#,
        fred = fred.display().to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Vec<u8> {
        let output =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
        assert!(output.status.success());
        output.stdout
    }

    #[test]
    fn the_published_crates_have_complete_metadata_and_one_msrv() {
        assert_eq!(check_metadata(&metadata()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn metadata_problems_are_found() {
        let json = serde_json::json!({
            "workspace_members": ["a-id", "b-id"],
            "packages": [
                {"id": "a-id", "name": "entraid-core", "rust_version": "1.80", "publish": [],
                 "repository": "https://example.invalid", "keywords": [], "metadata": null,
                 "dependencies": [{"name": "entraid-x", "path": "/x", "req": "*", "kind": null}]},
                {"id": "b-id", "name": "other", "rust_version": "1.90"}
            ]
        });
        let problems = check_metadata(json.to_string().as_bytes()).unwrap();
        let all = problems.join("\n");
        for expected in [
            "disagree on rust-version",
            "below what the code needs",
            "entraid-core: publish = false",
            "entraid-core: no description",
            "repository is not",
            "0 keywords",
            "all-features",
            "entraid-x has a path but no version",
            "entraid-fred: not a workspace member",
        ] {
            assert!(all.contains(expected), "{expected}: {all}");
        }
    }

    #[test]
    fn package_lists_must_hold_the_licenses() {
        assert_eq!(
            missing_files("Cargo.toml\nREADME.md\nLICENSE-MIT\nsrc/lib.rs\n"),
            vec!["LICENSE-APACHE"]
        );
    }

    #[test]
    fn the_quick_start_is_found_in_the_readme() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let code = quick_start(&readme).unwrap();
        assert!(code.contains("#[tokio::main]"), "{code}");
        assert!(code.contains("EntraIdAuth::"), "{code}");
        assert!(code.trim_end().ends_with('}'), "{code}");
        let manifest = quick_start_manifest(Path::new("/w"));
        assert!(
            manifest.contains("entraid-fred = { path = \"/w/crates/entraid-fred\" }"),
            "{manifest}"
        );
        assert!(!manifest.contains("entraid-identity") && !manifest.contains("entraid-manager"));
    }
}
