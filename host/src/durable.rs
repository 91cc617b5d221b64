//! Writing a file so that a crash leaves either the old content or the new, never a
//! mix: a temporary file beside it, fsynced, renamed over it, and the folder fsynced
//! (or the rename itself may be lost). A leaf.

use std::path::Path;

/// Replace `path`'s content with `bytes`, atomically and durably; creates the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// An exclusive lock on a folder (`flock` on `<dir>/lock`), held while the value
/// lives: two processes sharing a state folder would overwrite each other's state.
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

impl FolderLock {
    /// Take the lock, or say that another process holds it.
    pub fn take(dir: &Path) -> std::io::Result<Option<FolderLock>> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        // SAFETY: flock on a descriptor this function owns.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if taken {
            Ok(Some(FolderLock { _file: file }))
        } else {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Ok(None),
                _ => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        super::write_atomically(&path, b"one").unwrap();
        super::write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_folder_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let held = super::FolderLock::take(dir.path()).unwrap();
        assert!(held.is_some());
        assert!(super::FolderLock::take(dir.path()).unwrap().is_none());
        drop(held);
        assert!(super::FolderLock::take(dir.path()).unwrap().is_some());
    }
}
