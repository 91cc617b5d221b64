//! Compiled components cached on disk, keyed by the wasm's SHA-256 and the engine's
//! compatibility hash, so a second start (or a second pipeline using the same plugin)
//! skips Cranelift entirely, and a new wasmtime or different CPU features never loads
//! stale machine code.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

#[derive(Debug, Clone, Default)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    pub fn at(dir: PathBuf) -> Self {
        ComponentCache { dir: Some(dir) }
    }

    /// `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice/components`, else
    /// `~/.cache/sluice/components`; disabled when none can be worked out.
    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = var("SLUICE_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("sluice/components")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/sluice/components")));
        ComponentCache { dir }
    }

    pub fn compile(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let Some(chosen) = &self.dir else {
            return Component::new(engine, wasm);
        };
        let dir = match entries_dir(chosen) {
            Ok(dir) => dir,
            Err(why) => {
                tracing::warn!(dir = %chosen.display(), "not caching compiled plugins: {why}");
                return Component::new(engine, wasm);
            }
        };
        let dir = &dir;
        let mut engine_hash = std::hash::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let digest = Sha256::digest(wasm);
        let key: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{key}-{:016x}.cwasm", engine_hash.finish()));

        if path.exists() && !Self::private(dir, &path) {
            tracing::warn!(path = %path.display(), "not trusting a cache entry others can write; recompiling");
        } else if let Ok(bytes) = std::fs::read(&path) {
            // Read into memory rather than `deserialize_file`'s mmap: a mapped file that
            // someone truncates (a cache cleaner, a second writer) would kill us with SIGBUS.
            // SAFETY: the file was written by `serialize` below, for an engine with this
            // very compatibility hash, under a name that includes the wasm's digest;
            // wasmtime still checks its header and version.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = Self::store(&component, &path) {
            tracing::warn!(dir = %dir.display(), "cannot cache compiled plugin: {e:#}");
        }
        Ok(component)
    }

    /// Cached entries are native code run without the sandbox's checks: only trust
    /// them when neither the folder nor the file is writable by group or others.
    fn private(dir: &Path, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let writable_by_others =
            |p: &Path| std::fs::metadata(p).map_or(true, |m| m.permissions().mode() & 0o022 != 0);
        !writable_by_others(dir) && !writable_by_others(path)
    }

    fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let bytes = component.serialize()?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// The folder cache entries go in, never changing the permissions of a folder Sluice
/// did not create: `dir` itself if it is missing (created, 0700) or already closed to
/// group and others; if others may write in it (a shared folder such as `/tmp`), a
/// subfolder of ours, `sluice-<uid>`, created 0700 and only used while it is ours and
/// private.
fn entries_dir(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let create = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| format!("cannot create {}: {e}", d.display()))
    };
    let meta = match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create(dir)?;
            return Ok(dir.to_owned());
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    if meta.permissions().mode() & 0o022 == 0 {
        return Ok(dir.to_owned());
    }
    // Linux: the owner of /proc/self is this process's user.
    let uid = std::fs::metadata("/proc/self").map_or(meta.uid(), |m| m.uid());
    let own = dir.join(format!("sluice-{uid}"));
    create(&own)?;
    let m = std::fs::symlink_metadata(&own).map_err(|e| format!("{}: {e}", own.display()))?;
    if !m.is_dir() || m.uid() != uid || m.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is shared, and {} is not a private folder of this user",
            dir.display(),
            own.display()
        ));
    }
    Ok(own)
}
