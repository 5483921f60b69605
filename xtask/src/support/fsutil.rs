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
        remove_live_temps();
        std::process::exit(130);
    });
}

/// Remove every temporary path still registered (those of the interrupt
/// handler, and at the end of `main` what lives for the whole process:
/// the UML socket directory).
pub fn remove_live_temps() {
    let paths = std::mem::take(&mut *LIVE_TEMPS.lock().unwrap_or_else(|e| e.into_inner()));
    for p in paths.iter().rev() {
        let _ = remove_all(p);
    }
}

/// Where the programs this build starts make their Unix sockets (gpg-agent,
/// UML's mconsole, `finnix create`'s run directory). A socket's path holds
/// at most 107 bytes (`sun_path`), and a checkout, its cache or TMPDIR may
/// sit deeper than that; so these directories are always below `/tmp`:
/// `/tmp/finnix-<uid>/<name>.<pid>.<n>`, mode 0700.
pub const SOCKET_PARENT: &str = "/tmp";
/// Room left in a socket directory's path for what is made inside it: the
/// longest is UML's `<umid>/mconsole` under `finnix create`'s
/// `run/uml/finnix10/` (about 30 bytes), gpg's `gnupg/S.gpg-agent.browser` 25.
pub const SOCKET_ROOM: usize = 48;
/// The limit of a Unix socket's path, with its terminating NUL.
pub const SUN_PATH_MAX: usize = 108;

/// `/tmp/finnix-<uid>`: made 0711 when missing (others may pass through it
/// to a directory they were given, never list it; each socket directory in
/// it is 0700); refused when it is not a directory of ours, or when others
/// may read or write it (another user's, a symlink).
pub fn socket_root() -> Result<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = unsafe { libc::geteuid() };
    let root = Path::new(SOCKET_PARENT).join(format!("finnix-{uid}"));
    match std::fs::DirBuilder::new().mode(0o711).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", root.display())),
    }
    let m = fs::symlink_metadata(&root)?;
    anyhow::ensure!(
        m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o066 == 0,
        "{} is not a directory of this user closed to others (it holds the build's Unix sockets): remove it",
        root.display()
    );
    if m.permissions().mode() & 0o777 != 0o711 {
        // (0700 from an earlier version: dnsmasq, which drops to its own
        // user, could not reach check-create's run directory.)
        fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))?;
    }
    Ok(root)
}

use std::os::unix::fs::DirBuilderExt as _;

static SOCKET_COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh directory for Unix sockets (see [`SOCKET_PARENT`]), removed when
/// dropped, on Ctrl-C, or by the next run's [`sweep_socket_dirs`] when its
/// process is gone.
pub fn socket_dir(name: &str) -> Result<TempDir> {
    let n = SOCKET_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = socket_root()?.join(format!("{name}.{}.{n}", std::process::id()));
    check_socket_room(&path)?;
    let dir = TempDir::create(path)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// A socket directory's path leaves [`SOCKET_ROOM`] bytes for what is made
/// in it, or the error says why and what to do.
pub fn check_socket_room(dir: &Path) -> Result<()> {
    let len = dir.as_os_str().len();
    anyhow::ensure!(
        len + SOCKET_ROOM < SUN_PATH_MAX,
        "{} is {len} bytes long: Unix sockets made in it would exceed the {SUN_PATH_MAX}-byte limit of a socket path",
        dir.display()
    );
    Ok(())
}

/// The directory every UML guest of this process keeps its `uml_dir` in
/// (each guest makes its own `<umid>/` with the mconsole socket), made on
/// first use and removed at the end of `main`.
pub fn uml_socket_dir() -> Result<PathBuf> {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(d) = DIR.get() {
        return Ok(d.clone());
    }
    let dir = socket_dir("uml")?;
    let path = dir.path().to_path_buf();
    // Lives as long as the process: still registered, removed by
    // remove_live_temps at the end of main (or on Ctrl-C).
    std::mem::forget(dir);
    register(&path);
    Ok(DIR.get_or_init(|| path).clone())
}

/// Remove the socket directories of processes that no longer run.
pub fn sweep_socket_dirs() -> Result<()> {
    let uid = unsafe { libc::geteuid() };
    let root = Path::new(SOCKET_PARENT).join(format!("finnix-{uid}"));
    if root.is_dir() {
        sweep_dead_owners(&root)?;
    }
    Ok(())
}

/// In `dir`, remove every entry named `<name>.<pid>.<n>` whose process no
/// longer runs (and every entry not named so: nothing else belongs there).
pub fn sweep_dead_owners(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let alive = owner_pid(&name).is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            remove_all(&entry.path())?;
        }
    }
    Ok(())
}

/// The pid a temporary name `<name>.<pid>.<n>` belongs to.
pub fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplit('.');
    let _n: usize = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
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
/// A hard link when both are on the same filesystem, else a copy.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

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
    filetime::set_file_mtime(path, filetime::FileTime::now())
        .with_context(|| format!("cannot touch {}", path.display()))
}

/// Set a path's atime and mtime to `t` seconds (no nanoseconds), not
/// following symlinks.
pub fn set_times(path: &Path, t: i64) -> Result<()> {
    let ft = filetime::FileTime::from_unix_time(t, 0);
    filetime::set_symlink_file_times(path, ft, ft)
        .with_context(|| format!("cannot set times of {}", path.display()))
}

/// `from` (gzip) unpacked into `to`.
pub fn gunzip(from: &Path, to: &Path) -> Result<()> {
    let gz = fs::File::open(from)?;
    let mut plain = fs::File::create(to)?;
    io::copy(&mut flate2::read::GzDecoder::new(gz), &mut plain)
        .with_context(|| format!("cannot unpack {}", from.display()))?;
    Ok(())
}

/// The pid in the name of a file a release command writes before renaming
/// it into place: `.staging.<pid>` (dist), `.<name>.partial.<pid>` (the
/// source archive), `.SHA256SUMS.<pid>`.
pub fn leftover_pid(name: &str) -> Option<&str> {
    let ours = name.starts_with(".staging.")
        || name.starts_with(".SHA256SUMS.")
        || (name.starts_with('.') && name.contains(".partial."));
    let pid = name.rsplit('.').next()?;
    (ours && !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit())).then_some(pid)
}

/// What release commands that died left in the release directory.
pub fn sweep_staging(dist: &Path) -> Result<()> {
    for entry in fs::read_dir(dist)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = leftover_pid(&name) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                remove_all(&entry.path())?;
            }
        }
    }
    Ok(())
}

pub struct NormaliseStats {
    pub entries: usize,
    pub clamped: usize,
    pub chowned: usize,
}

/// Make the tree independent of the build: every mtime clamped to `epoch`,
/// and owners that the tree's own passwd/group do not define reset to root.
pub fn normalise(tree: &Path, epoch: i64) -> Result<NormaliseStats> {
    use std::os::unix::fs::MetadataExt;
    let ids = |file: &str| -> std::collections::BTreeSet<u32> {
        fs::read_to_string(tree.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect()
    };
    let (uids, gids) = (ids("etc/passwd"), ids("etc/group"));
    let mut stats = NormaliseStats {
        entries: 0,
        clamped: 0,
        chowned: 0,
    };
    for entry in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::symlink_metadata(path)?;
        stats.entries += 1;
        let (uid, gid) = (meta.uid(), meta.gid());
        let new_uid = if uids.contains(&uid) { uid } else { 0 };
        let new_gid = if gids.contains(&gid) { gid } else { 0 };
        if (new_uid, new_gid) != (uid, gid) {
            std::os::unix::fs::lchown(path, Some(new_uid), Some(new_gid))?;
            stats.chowned += 1;
        }
        // Every entry: seconds only (no nanoseconds), atime = mtime.
        if meta.mtime() > epoch {
            stats.clamped += 1;
        }
        set_times(path, meta.mtime().min(epoch))?;
    }
    Ok(stats)
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

    #[test]
    fn set_times_dates_a_symlink_itself_not_its_target() {
        use std::os::unix::fs::MetadataExt;
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("target");
        let link = scratch.path().join("link");
        std::fs::write(&target, "x").unwrap();
        std::os::unix::fs::symlink("target", &link).unwrap();
        super::set_times(&link, 1_000_000_000).unwrap();
        assert_eq!(
            std::fs::symlink_metadata(&link).unwrap().mtime(),
            1_000_000_000
        );
        assert_ne!(std::fs::metadata(&target).unwrap().mtime(), 1_000_000_000);
        super::set_times(&target, 42).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().mtime(), 42);
        assert!(super::set_times(&scratch.path().join("missing"), 1).is_err());
    }

    #[test]
    fn only_our_own_temporary_names_are_swept() {
        assert_eq!(super::leftover_pid(".staging.123"), Some("123"));
        assert_eq!(super::leftover_pid(".SHA256SUMS.77"), Some("77"));
        assert_eq!(
            super::leftover_pid(".finnix-1-source.tar.partial.4242"),
            Some("4242")
        );
        assert_eq!(super::leftover_pid("finnix-1-source.tar"), None);
        assert_eq!(super::leftover_pid(".gitkeep"), None);
        assert_eq!(super::leftover_pid(".staging.abc"), None);
        assert_eq!(super::leftover_pid("SHA256SUMS"), None);
    }
}
