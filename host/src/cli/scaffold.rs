//! `sluice plugin new` and `sluice plugin build`: the plugin author's first steps.
//!
//! A new crate carries what it builds against (the WIT contract and the SDK, as this
//! `sluice` binary was built with them), so it needs nothing of this repository.

use super::Failure;
use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Transform,
    Window,
    /// A transform with a state per key, kept by the host (`[stateful]`).
    Stateful,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

const PY_APP: &str = include_str!("templates/python_app.py.tmpl");
const PY_README: &str = include_str!("templates/python_README.md.tmpl");

/// The componentize-py that builds Python plugins: `SLUICE_COMPONENTIZE_PY`, else
/// the one on PATH.
fn componentize_py() -> String {
    std::env::var("SLUICE_COMPONENTIZE_PY").unwrap_or_else(|_| "componentize-py".into())
}

fn has_componentize_py() -> bool {
    Command::new(componentize_py())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python transform: app.py, the WIT, sample and expected output, a README.
fn new_python(name: &str, kind: Kind, root: &Path) -> Result<(), Failure> {
    if kind != Kind::Transform {
        return Err(Failure::config(anyhow!(
            "--lang python scaffolds transforms (a Python window plugin is written the same way against the `window` world)"
        )));
    }
    if !has_componentize_py() {
        return Err(Failure::config(anyhow!(
            "componentize-py is not on PATH (or SLUICE_COMPONENTIZE_PY): install it with `pip install componentize-py==0.25.1` in a venv, then run this again"
        )));
    }
    let fill = |t: &str| t.replace("__NAME__", name);
    let files: [(&str, String); 6] = [
        ("app.py", fill(PY_APP)),
        ("wit/sluice-plugin.wit", WIT.into()),
        ("sample.jsonl", fill(TRANSFORM_SAMPLE)),
        ("expected.jsonl", fill(TRANSFORM_EXPECTED)),
        ("README.md", fill(PY_README)),
        (
            ".gitignore",
            "dist/\n*.wasm\nwit_world/\n__pycache__/\ncomponentize_py_*\npoll_loop.py\n".into(),
        ),
    ];
    write_all(root, files)?;
    println!(
        "created Python transform plugin `{name}` in {}",
        root.display()
    );
    println!("next:");
    println!("  sluice plugin build {}", root.display());
    println!(
        "  sluice plugin test {0}/dist/{name}.wasm --input {0}/sample.jsonl --expect {0}/expected.jsonl",
        root.display()
    );
    Ok(())
}

fn write_all<const N: usize>(root: &Path, files: [(&str, String); N]) -> Result<(), Failure> {
    for (path, text) in files {
        let path = root.join(path);
        let parent = path.parent().expect("a file in a folder");
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, text))
            .with_context(|| format!("writing {}", path.display()))
            .map_err(Failure::runtime)?;
    }
    Ok(())
}

/// `build` for a Python plugin (app.py beside a wit/ folder): componentize-py, into
/// FOLDER/dist/FOLDER.wasm.
fn build_python(path: &Path) -> Result<PathBuf, Failure> {
    let name = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "plugin".into());
    let dist = path.join("dist");
    std::fs::create_dir_all(&dist)
        .with_context(|| format!("creating {}", dist.display()))
        .map_err(Failure::runtime)?;
    let file = format!("dist/{name}.wasm");
    let run = |args: &[&str]| -> Result<(), Failure> {
        let status = Command::new(componentize_py())
            .current_dir(path)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .context("running componentize-py (pip install componentize-py==0.25.1)")
            .map_err(Failure::runtime)?;
        if status.success() {
            Ok(())
        } else {
            Err(Failure::runtime(anyhow!(
                "componentize-py failed (see above)"
            )))
        }
    };
    run(&["-d", "wit", "-w", "transform", "bindings", "."])?;
    run(&[
        "-d",
        "wit",
        "-w",
        "transform",
        "componentize",
        "app",
        "-o",
        &file,
    ])?;
    Ok(path.join(file))
}

const WIT: &str = include_str!("../../../wit/sluice-plugin.wit");
const SDK_LIB: &str = include_str!("../../../plugins/sdk/src/lib.rs");
const SDK_CARGO: &str = include_str!("templates/sdk.Cargo.toml.tmpl");
const CARGO: &str = include_str!("templates/Cargo.toml.tmpl");
/// The shipped plugins' WebAssembly SIMD setting, the same file. Read by cargo run in
/// the crate's folder, which `build` does.
const CARGO_CONFIG: &str = include_str!("../../../.cargo/config.toml");
const README: &str = include_str!("templates/README.md.tmpl");
const TRANSFORM: &str = include_str!("templates/transform.rs.tmpl");
const TRANSFORM_SAMPLE: &str = include_str!("templates/transform.sample.jsonl");
const TRANSFORM_EXPECTED: &str = include_str!("templates/transform.expected.jsonl");
const WINDOW: &str = include_str!("templates/window.rs.tmpl");
const WINDOW_SAMPLE: &str = include_str!("templates/window.sample.jsonl");
const WINDOW_EXPECTED: &str = include_str!("templates/window.expected.jsonl");
const STATEFUL: &str = include_str!("templates/stateful.rs.tmpl");
const STATEFUL_SAMPLE: &str = include_str!("templates/stateful.sample.jsonl");
const STATEFUL_EXPECTED: &str = include_str!("templates/stateful.expected.jsonl");

/// A crate name cargo takes and that is a plain file stem.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plugin name: use letters, digits, _ and -, starting with a letter"
        ))
    }
}

pub fn new(name: &str, kind: Kind, lang: Lang, dir: &Path) -> Result<(), Failure> {
    check_name(name).map_err(|m| Failure::config(anyhow!(m)))?;
    let root = dir.join(name);
    if root.exists() {
        return Err(Failure::config(anyhow!(
            "{} already exists: choose another name or --dir",
            root.display()
        )));
    }
    if lang == Lang::Python {
        return new_python(name, kind, &root);
    }
    let lib = name.replace('-', "_");
    let (kind_name, code, sample, expected, section, flags) = match kind {
        Kind::Transform => (
            "transform",
            TRANSFORM,
            TRANSFORM_SAMPLE,
            TRANSFORM_EXPECTED,
            "[[transforms]]",
            "",
        ),
        Kind::Window => (
            "window",
            WINDOW,
            WINDOW_SAMPLE,
            WINDOW_EXPECTED,
            "[window]",
            " --timestamp-ms 0",
        ),
        Kind::Stateful => (
            "stateful",
            STATEFUL,
            STATEFUL_SAMPLE,
            STATEFUL_EXPECTED,
            "[stateful]",
            " --key-field id",
        ),
    };
    let fill = |t: &str| {
        t.replace("__NAME__", name)
            .replace("__LIB__", &lib)
            .replace("__KIND__", kind_name)
            .replace("__SECTION__", section)
            .replace("__TEST_FLAGS__", flags)
    };
    // The SDK's WIT path is relative to its own crate: here, sdk/wit.
    let sdk_lib = SDK_LIB.replace("path: \"../../wit\"", "path: \"wit\"");
    let files: [(&str, String); 10] = [
        ("Cargo.toml", fill(CARGO)),
        (".cargo/config.toml", CARGO_CONFIG.into()),
        ("src/lib.rs", fill(code)),
        ("sample.jsonl", fill(sample)),
        ("expected.jsonl", fill(expected)),
        ("README.md", fill(README)),
        (".gitignore", "target/\ndist/\n".into()),
        ("sdk/Cargo.toml", SDK_CARGO.into()),
        ("sdk/src/lib.rs", sdk_lib),
        ("sdk/wit/sluice-plugin.wit", WIT.into()),
    ];
    write_all(&root, files)?;
    println!(
        "created {} plugin `{name}` in {}",
        kind_name,
        root.display()
    );
    println!("next:");
    println!("  cd {} && cargo test", root.display());
    println!("  sluice plugin build {}", root.display());
    println!(
        "  sluice plugin test {}/dist/{lib}.wasm --input {0}/sample.jsonl --expect {0}/expected.jsonl{flags}",
        root.display()
    );
    Ok(())
}

/// Whether rustup has the wasm32-wasip2 target; add it if rustup is there.
fn ensure_target() -> Result<(), Failure> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip2") =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
            let ok = Command::new("rustup")
                .args(["target", "add", "wasm32-wasip2"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                Ok(())
            } else {
                Err(Failure::runtime(anyhow!(
                    "cannot add the wasm32-wasip2 target with rustup"
                )))
            }
        }
        // No rustup: cargo may still have the target (a distribution toolchain).
        Err(_) => Ok(()),
    }
}

pub fn build(path: &Path) -> Result<(), Failure> {
    let manifest = path.join("Cargo.toml");
    if !manifest.exists() && path.join("app.py").exists() && path.join("wit").is_dir() {
        let wasm = build_python(path)?;
        return describe(&wasm);
    }
    if !manifest.exists() {
        return Err(Failure::config(anyhow!(
            "{} has no Cargo.toml: give the plugin crate's folder (sluice plugin new makes one)",
            path.display()
        )));
    }
    ensure_target()?;
    // Run in the crate's folder so its .cargo/config.toml counts (cargo reads config
    // from where it runs, not from the manifest's folder).
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let folder = manifest.parent().unwrap_or(path).to_owned();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&folder)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo (is Rust installed? https://rustup.rs)")
        .map_err(Failure::runtime)?;
    if !out.status.success() {
        return Err(Failure::runtime(anyhow!("cargo build failed (see above)")));
    }
    let wasm: Option<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"));
    let Some(wasm) = wasm else {
        return Err(Failure::runtime(anyhow!(
            "cargo built no .wasm for {}: is its [lib] crate-type \"cdylib\"?",
            manifest.display()
        )));
    };
    // Cargo's own output may be anywhere (CARGO_TARGET_DIR, a workspace's target/):
    // the component is copied to one place beside the crate, whatever cargo chose.
    let dist = path.join("dist");
    let copy = dist.join(wasm.file_name().expect("a .wasm file has a name"));
    std::fs::create_dir_all(&dist)
        .and_then(|()| std::fs::copy(&wasm, &copy))
        .with_context(|| format!("copying {} to {}", wasm.display(), copy.display()))
        .map_err(Failure::runtime)?;
    describe(&copy)
}

/// Where the component is, its size, world and version.
fn describe(wasm: &Path) -> Result<(), Failure> {
    let runtime = super::runtime()?;
    let loaded = runtime.load(wasm).map_err(Failure::config)?;
    let world = sluice::plugin::inspect(&runtime, &loaded)
        .world
        .map(|w| w.name().to_owned())
        .map_err(|why| Failure::config(anyhow!("{}: {why}", wasm.display())))?;
    println!("{}", wasm.display());
    println!(
        "  {} bytes, world {world}, version {}",
        loaded.size_bytes, loaded.version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        assert!(check_name("tagger").is_ok());
        assert!(check_name("my-plugin_2").is_ok());
        assert!(check_name("2fast").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn the_sdk_finds_its_wit_beside_it() {
        assert!(
            SDK_LIB.contains("path: \"../../wit\""),
            "the SDK's WIT path changed"
        );
    }
}
