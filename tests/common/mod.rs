//! Helpers shared by the integration tests.
#![allow(dead_code)]

use sluice::plugin::{ComponentCache, LoadedPlugin, Runtime};
use std::path::{Path, PathBuf};

pub mod host;
pub mod http;
pub mod kafka;
pub mod registry;
pub mod stores;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A built plugin: `plugins/dist/NAME.wasm` or `tests/plugins/dist/NAME.wasm`.
pub fn wasm(name: &str) -> PathBuf {
    let repo = repo();
    for dir in ["plugins/dist", "tests/plugins/dist"] {
        let p = repo.join(dir).join(format!("{name}.wasm"));
        if p.exists() {
            return p;
        }
    }
    panic!("{name}.wasm is not built: run scripts/build-plugins.sh (scripts/test.sh does)");
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures").join(name)).unwrap()
}

/// A runtime whose compiled-component cache is in the build's scratch folder, shared
/// by the tests (compiling in a debug build is slow) but not with ~/.cache.
pub fn runtime() -> Runtime {
    runtime_cached_in(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
}

pub fn runtime_cached_in(cache: &Path) -> Runtime {
    Runtime::new(ComponentCache::at(cache.to_owned())).unwrap()
}

pub fn load(runtime: &Runtime, name: &str) -> LoadedPlugin {
    runtime.load(&wasm(name)).unwrap()
}

/// Write a pipeline file into `dir`, with `{FORMAT_USER}`, `{GENDER_WINDOW}` and
/// `{MISBEHAVE}`, `{DEDUP}` and `{RUNNING_COUNT}` replaced by the built plugins' paths.
pub fn pipeline(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let text = toml
        .replace("{FORMAT_USER}", &wasm("format_user").display().to_string())
        .replace(
            "{GENDER_WINDOW}",
            &wasm("gender_window").display().to_string(),
        )
        .replace("{MISBEHAVE}", &wasm("misbehave").display().to_string())
        .replace("{DEDUP}", &wasm("dedup").display().to_string())
        .replace(
            "{RUNNING_COUNT}",
            &wasm("running_count").display().to_string(),
        );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A free port on loopback (bound and let go: the server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
