//! File-system helpers shared by the stages: temporary directories that clean
//! up after themselves (also on Ctrl-C and SIGTERM), atomic file replacement,
//! tree copies, and gunzip.

use fs_err as fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// Paths to delete if the process is interrupted.
static LIVE_TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register(path: &Path) {
    LIVE_TEMPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

fn unregister(path: &Path) {
    LIVE_TEMPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// Install the Ctrl-C / SIGTERM handler: remove every live temporary path,
/// then exit 130. Child processes share our process group and receive the
/// terminal's SIGINT themselves.
pub fn install_interrupt_cleanup() {
    let _ = ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: removing temporary files");
        let paths = std::mem::take(&mut *LIVE_TEMPS.lock().unwrap_or_else(|e| e.into_inner()));
        for p in paths.iter().rev() {
            let _ = remove_all(p);
        }
        std::process::exit(130);
    });
}

/// A temporary directory (or file) that is removed when dropped unless
/// [`TempDir::persist`] renamed it into place.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn create(path: PathBuf) -> Result<TempDir> {
        if path.exists() {
            remove_all(&path)?;
        }
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        register(&path);
        Ok(TempDir { path })
    }

    /// Track a path that will be created by someone else (a file).
    pub fn track(path: PathBuf) -> TempDir {
        register(&path);
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rename into `dest`. On failure the temporary stays owned by the caller.
    pub fn persist(self, dest: &Path) -> std::result::Result<(), (TempDir, io::Error)> {
        match fs::rename(&self.path, dest) {
            Ok(()) => {
                unregister(&self.path);
                std::mem::forget(self);
                Ok(())
            }
            Err(e) => Err((self, e)),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = remove_all(&self.path);
        unregister(&self.path);
    }
}

/// Remove a file or a directory tree; a missing path is fine. Directories
/// made read-only (a patched tree, a rootfs) are made writable first.
pub fn remove_all(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot stat {}", path.display())),
        Ok(m) if m.is_dir() => match fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(_) => {
                // A build killed in a chroot (mmdebstrap's /proc, /sys) left
                // file systems mounted inside: detach them, deepest first.
                let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
                for m in mounts_under(&mounts, path) {
                    let _ = crate::cmd!("umount", "--lazy", m)
                        .expr()
                        .stderr_null()
                        .unchecked()
                        .run();
                }
                let _ = crate::cmd!("chmod", "-R", "u+rwx", path)
                    .expr()
                    .stderr_null()
                    .unchecked()
                    .run();
                fs::remove_dir_all(path)
                    .with_context(|| format!("cannot remove {}", path.display()))
            }
        },
        Ok(_) => fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Mount points at or below `dir` in /proc/mounts, deepest first.
pub fn mounts_under(proc_mounts: &str, dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut found: Vec<String> = proc_mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/mounts escapes spaces as \040.
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &dir || m.starts_with(&format!("{dir}/")))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found.dedup();
    found
}

/// Write `data` to `dest` atomically: a temporary file in the same directory,
/// flushed, then renamed over `dest`.
pub fn write_atomic(dest: &Path, data: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = TempDir::track(dir.join(format!(".{name}.tmp.{}", std::process::id())));
    let mut file = fs::File::create(tmp.path())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    file.write_all(data)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", dest.display()))?;
    drop(file);
    tmp.persist(dest)
        .map_err(|(_, e)| e)
        .with_context(|| format!("cannot write {}", dest.display()))
}

/// Copy a directory tree with `cp -a` (keeps modes, links, special files).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    crate::cmd!(
        "cp",
        "-a",
        "--reflink=auto",
        "--no-target-directory",
        from,
        to
    )
    .expr()
    .stderr_capture()
    .run()
    .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Set a path's mtime to now (the cache orders entries by it).
pub fn touch_now(path: &Path) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot touch {}", path.display()));
    }
    Ok(())
}

/// Set a path's atime and mtime to `t` seconds (no nanoseconds), not
/// following symlinks.
pub fn set_times(path: &Path, t: i64) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    let ts = [
        libc::timespec {
            tv_sec: t,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: t,
            tv_nsec: 0,
        },
    ];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot set times of {}", path.display()));
    }
    Ok(())
}

/// `from` (gzip) unpacked into `to`.
pub fn gunzip(from: &Path, to: &Path) -> Result<()> {
    let gz = fs::File::open(from)?;
    let mut plain = fs::File::create(to)?;
    io::copy(&mut flate2::read::GzDecoder::new(gz), &mut plain)
        .with_context(|| format!("cannot unpack {}", from.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_left_in_a_tree_are_found_deepest_first() {
        let m = "sysfs /sys sysfs rw 0 0\n\
proc /c/tmp/x.1/tree/proc proc rw 0 0\n\
sys /c/tmp/x.1/tree/sys sysfs ro 0 0\n\
tmpfs /c/tmp/x.1/tree/sys/fs/cgroup tmpfs rw 0 0\n\
proc /c/tmp/x.10/tree/proc proc rw 0 0\n";
        assert_eq!(
            mounts_under(m, Path::new("/c/tmp/x.1")),
            [
                "/c/tmp/x.1/tree/sys/fs/cgroup",
                "/c/tmp/x.1/tree/proc",
                "/c/tmp/x.1/tree/sys"
            ]
        );
    }
}
