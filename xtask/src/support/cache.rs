//! The stage cache: every stage output is stored under a key that hashes all
//! of the stage's inputs, and committed atomically.
//!
//! Layout under the cache root (`$FINNIX_CACHE_DIR`, default `target/finnix-cache`):
//!
//! ```text
//! <stage>/<key>/...        committed entries, trusted by later runs
//! tmp/<name>.<pid>.<n>/    work in progress; never trusted, swept when its process is gone
//! logs/<stage>.log         full output of every tool a stage ran
//! ```
//!
//! An entry only ever appears by `rename(2)` of a finished temporary
//! directory, so a build killed at any point leaves at most a `tmp/` directory
//! that no run will read.

use fs_err as fs;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::support::fsutil::TempDir;

/// Accumulates a stage's inputs; `finish` hashes them into a [`Key`].
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    inputs: Vec<(String, String)>,
}

/// A cache key: the hash of a stage's labelled inputs, and the inputs themselves
/// (written next to the entry so a maintainer can see why it was rebuilt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub hex: String,
    pub inputs: Vec<(String, String)>,
}

impl KeyBuilder {
    /// `recipe` is the stage's own version: bump it when the way a stage builds
    /// changes, so old entries are not reused.
    pub fn new(stage: &str, recipe: u32) -> KeyBuilder {
        KeyBuilder {
            inputs: vec![
                ("stage".into(), stage.into()),
                ("recipe".into(), recipe.to_string()),
            ],
        }
    }

    /// A small textual input (a version, a flag), recorded as is.
    pub fn text(&mut self, label: &str, value: impl AsRef<str>) -> &mut Self {
        let value = value.as_ref().replace(['\n', '\t'], " ");
        self.inputs.push((label.to_string(), value));
        self
    }

    /// A file input, recorded by its sha256.
    pub fn file(&mut self, label: &str, path: &Path) -> Result<&mut Self> {
        let hash = sha256_file(path)?;
        self.inputs.push((label.to_string(), hash));
        Ok(self)
    }

    /// A source folder input, recorded by the hash of its paths, modes and
    /// contents ([`hash_tree`]).
    pub fn tree(&mut self, label: &str, dir: &Path) -> Result<&mut Self> {
        let hash = hash_tree(dir)?;
        self.inputs.push((label.to_string(), hash));
        Ok(self)
    }

    /// Another stage's key (its output is an input here).
    pub fn key(&mut self, label: &str, key: &Key) -> &mut Self {
        self.inputs.push((label.to_string(), key.hex.clone()));
        self
    }

    pub fn finish(&self) -> Key {
        let text = render_inputs(&self.inputs);
        let hex = sha256_hex(text.as_bytes())[..32].to_string();
        Key {
            hex,
            inputs: self.inputs.clone(),
        }
    }
}

fn render_inputs(inputs: &[(String, String)]) -> String {
    let mut text = String::new();
    for (label, value) in inputs {
        let _ = writeln!(text, "{label}\t{value}");
    }
    text
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A hash of a source folder's paths, modes and contents (for cache keys).
fn hash_tree(dir: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Sha256::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry?;
        let rel = entry.path().strip_prefix(dir).expect("below dir");
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        let ft = entry.file_type();
        if ft.is_symlink() {
            h.update(b"l");
            h.update(fs::read_link(entry.path())?.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            let exec = entry.metadata()?.permissions().mode() & 0o111 != 0;
            h.update(if exec { b"x" } else { b"f" });
            h.update(fs::read(entry.path())?);
        } else {
            h.update(b"d");
        }
        h.update([0]);
    }
    Ok(hex(&h.finalize()))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The cache root and its operations.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Entries kept per stage: the current build and the one before it.
const KEEP_PER_STAGE: usize = 2;

impl Cache {
    pub fn new(root: PathBuf) -> Cache {
        Cache { root }
    }

    pub fn entry_path(&self, stage: &str, key: &Key) -> PathBuf {
        self.root.join(stage).join(&key.hex)
    }

    /// The committed entry for `key`, if there is one.
    pub fn lookup(&self, stage: &str, key: &Key) -> Option<PathBuf> {
        let path = self.entry_path(stage, key);
        path.is_dir().then_some(path)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// A fresh temporary directory under `tmp/`, removed when dropped (or by a
    /// later sweep if this process is killed).
    pub fn temp_dir(&self, name: &str) -> Result<TempDir> {
        let tmp = self.root.join("tmp");
        fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = tmp.join(format!("{name}.{}.{n}", std::process::id()));
        TempDir::create(path)
    }

    /// Commit a finished temporary directory as the entry for `key`. The
    /// inputs are written beside the outputs (`inputs.txt`). If another process
    /// committed the same key meanwhile, its entry wins and ours is dropped.
    pub fn commit(&self, stage: &str, key: &Key, tmp: TempDir) -> Result<PathBuf> {
        fs::write(tmp.path().join("inputs.txt"), render_inputs(&key.inputs))?;
        let dest = self.entry_path(stage, key);
        let parent = dest.parent().expect("entry has a parent");
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        match tmp.persist(&dest) {
            Ok(()) => {
                // The new entry's mtime marks it newest.
                let _ = crate::support::fsutil::touch_now(&dest);
                self.prune(stage, KEEP_PER_STAGE)?;
                Ok(dest)
            }
            Err((tmp, e)) if dest.is_dir() => {
                drop(tmp);
                let _ = e;
                Ok(dest)
            }
            Err((_, e)) => {
                Err(e).with_context(|| format!("cannot commit cache entry {}", dest.display()))
            }
        }
    }

    /// Remove temporary directories left by processes that no longer run.
    pub fn sweep(&self) -> Result<()> {
        crate::support::fsutil::sweep_dead_owners(&self.root.join("tmp"))
    }

    /// Keep the `keep` most recently committed entries of `stage`; older
    /// builds of a stage are removed (a rootfs tree is hundreds of MiB).
    pub fn prune(&self, stage: &str, keep: usize) -> Result<()> {
        let dir = self.root.join(stage);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(());
        };
        let mut all: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, path) in all.into_iter().skip(keep) {
            crate::support::fsutil::remove_all(&path)?;
        }
        Ok(())
    }
}

/// A cached stage's lookup-or-build, the one way every stage does it: the
/// entry for `key` under `dir` if one is committed (`cached`), else `build`
/// fills a fresh temporary directory, which is committed atomically
/// (`built`). `open` makes the stage's value from its entry; `describe`
/// names it on the progress line, and `build` may add a detail.
pub fn cached_stage<T>(
    cache: &Cache,
    s: &mut crate::support::ui::Stage,
    dir: &str,
    key: Key,
    open: impl Fn(PathBuf, Key) -> Result<T>,
    describe: impl Fn(&T) -> String,
    build: impl FnOnce(&mut crate::support::ui::Stage, &Path) -> Result<String>,
) -> Result<(T, crate::support::ui::Outcome, String)> {
    use crate::support::ui::Outcome;
    if let Some(entry) = cache.lookup(dir, &key) {
        let value = open(entry, key)?;
        let detail = describe(&value);
        return Ok((value, Outcome::Cached, detail));
    }
    let tmp = cache.temp_dir(dir)?;
    let extra = build(s, tmp.path())?;
    let entry = cache.commit(dir, &key, tmp)?;
    let value = open(entry, key)?;
    let name = describe(&value);
    let detail = match (name.is_empty(), extra.is_empty()) {
        (_, true) => name,
        (true, false) => extra,
        (false, false) => format!("{name} ({extra})"),
    };
    Ok((value, Outcome::Built, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(extra: &[(&str, &str)]) -> Key {
        let mut b = KeyBuilder::new("kernel-um", 1);
        b.text("source", "abc")
            .text("fragment common.config", "CONFIG_X=y");
        for (l, v) in extra {
            b.text(l, v);
        }
        b.finish()
    }

    #[test]
    fn keys_are_stable_across_runs() {
        // This exact value: a change in how keys are computed must be
        // deliberate (it invalidates every cache).
        assert_eq!(key(&[]).hex, "8eee778d096a79edb4d678d5f11b2fb7");
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = key(&[]).hex;
        let variants = [
            KeyBuilder::new("kernel-xen", 1)
                .text("source", "abc")
                .text("fragment common.config", "CONFIG_X=y")
                .finish(),
            KeyBuilder::new("kernel-um", 2)
                .text("source", "abc")
                .text("fragment common.config", "CONFIG_X=y")
                .finish(),
            KeyBuilder::new("kernel-um", 1)
                .text("source", "abd")
                .text("fragment common.config", "CONFIG_X=y")
                .finish(),
            KeyBuilder::new("kernel-um", 1)
                .text("source", "abc")
                .text("fragment common.config", "CONFIG_X=n")
                .finish(),
            KeyBuilder::new("kernel-um", 1)
                .text("source", "abc")
                .text("fragment um.config", "CONFIG_X=y")
                .finish(),
            key(&[("gcc", "12.2.0")]),
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(base);
        for v in variants {
            assert!(seen.insert(v.hex.clone()), "collision for {:?}", v.inputs);
        }
    }

    #[test]
    fn a_half_written_entry_is_never_used() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("finnix-cache-test");
        let _ = fs::remove_dir_all(&dir);
        let cache = Cache::new(dir.clone());
        let k = key(&[]);

        // A build that dies after writing part of its output: its temporary
        // directory exists, but no entry does.
        let tmp = cache.temp_dir("kernel-um").unwrap();
        fs::write(tmp.path().join("linux"), b"half").unwrap();
        let crashed = tmp.path().to_path_buf();
        std::mem::forget(tmp); // simulate a kill: no destructor runs
        assert!(cache.lookup("kernel-um", &k).is_none());

        // A dead owner's temporary directory is swept; a live one is kept.
        let dead = dir.join("tmp").join("kernel-xen.999999999.0");
        fs::create_dir_all(&dead).unwrap();
        cache.sweep().unwrap();
        assert!(!dead.exists());
        assert!(
            crashed.exists(),
            "our own (live) temporary directory must survive a sweep"
        );
        fs::remove_dir_all(&crashed).unwrap();

        // A finished one is committed atomically and then found.
        let tmp = cache.temp_dir("kernel-um").unwrap();
        fs::write(tmp.path().join("linux"), b"whole").unwrap();
        let entry = cache.commit("kernel-um", &k, tmp).unwrap();
        assert_eq!(cache.lookup("kernel-um", &k), Some(entry.clone()));
        assert_eq!(fs::read(entry.join("linux")).unwrap(), b"whole");
        assert!(fs::read_to_string(entry.join("inputs.txt"))
            .unwrap()
            .contains("source\tabc"));

        // A temporary directory dropped on an error path disappears.
        let tmp = cache.temp_dir("kernel-um").unwrap();
        let path = tmp.path().to_path_buf();
        drop(tmp);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn owner_pid_parses_temp_names() {
        use crate::support::fsutil::owner_pid;
        assert_eq!(owner_pid("kernel-um.1234.0"), Some(1234));
        assert_eq!(owner_pid("garbage"), None);
    }
}
