//! What every stage needs: the repository, its configuration, the cache, the
//! build's SOURCE_DATE_EPOCH and the command-line switches.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::support::cache::Cache;
use crate::support::config::Config;

/// Every environment variable `cargo xtask` reads, read once, here
/// (docs/configuration.md describes each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// SOURCE_DATE_EPOCH
    pub source_date_epoch: Option<String>,
    /// FINNIX_KERNEL_SOURCE_DATE_EPOCH
    pub kernel_source_date_epoch: Option<String>,
    /// FINNIX_CACHE_DIR
    pub cache_dir: Option<PathBuf>,
    /// FINNIX_DIST_DIR
    pub dist_dir: Option<PathBuf>,
    /// FINNIX_REQUIRE_CACHED_KERNELS=1: a kernel missing from the cache is
    /// an error instead of a build (check-fresh, jobs that must not compile).
    pub require_cached_kernels: bool,
    /// FINNIX_SSH_SIGNING_KEY, FINNIX_OPENPGP_SIGNING_KEY: the private keys
    /// `sign` (and `dist`) sign SHA256SUMS with.
    pub ssh_signing_key: Option<PathBuf>,
    pub openpgp_signing_key: Option<PathBuf>,
    /// HOME, CARGO_HOME, RUSTUP_HOME (the Rust toolchain's places).
    pub home: Option<PathBuf>,
    pub cargo_home: Option<PathBuf>,
    pub rustup_home: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Env {
        let text = |k: &str| std::env::var(k).ok();
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            source_date_epoch: text("SOURCE_DATE_EPOCH"),
            kernel_source_date_epoch: text("FINNIX_KERNEL_SOURCE_DATE_EPOCH"),
            cache_dir: path("FINNIX_CACHE_DIR"),
            dist_dir: path("FINNIX_DIST_DIR"),
            require_cached_kernels: text("FINNIX_REQUIRE_CACHED_KERNELS").as_deref() == Some("1"),
            ssh_signing_key: path("FINNIX_SSH_SIGNING_KEY"),
            openpgp_signing_key: path("FINNIX_OPENPGP_SIGNING_KEY"),
            home: path("HOME"),
            cargo_home: path("CARGO_HOME"),
            rustup_home: path("RUSTUP_HOME"),
        }
    }

    fn home(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| PathBuf::from("/root"))
    }

    /// `$CARGO_HOME`, or `~/.cargo`.
    pub fn cargo_home(&self) -> PathBuf {
        self.cargo_home
            .clone()
            .unwrap_or_else(|| self.home().join(".cargo"))
    }

    /// `$RUSTUP_HOME`, or `~/.rustup`.
    pub fn rustup_home(&self) -> PathBuf {
        self.rustup_home
            .clone()
            .unwrap_or_else(|| self.home().join(".rustup"))
    }
}

pub struct Ctx {
    /// Repository root (holds Cargo.toml, configs/, kernel-patches/, ...).
    pub root: PathBuf,
    /// The environment as read at start.
    pub env: Env,
    pub config: Config,
    pub cache: Cache,
    pub epoch: Epoch,
    /// `--locked`: fetched inputs must equal `finnix.lock`.
    pub locked: bool,
    pub jobs: usize,
}

/// SOURCE_DATE_EPOCH for the build, and for the kernels.
///
/// From the environment when set (it then rules everything, unless
/// FINNIX_KERNEL_SOURCE_DATE_EPOCH is set too, as when rebuilding a release
/// from its manifest). Otherwise the
/// time of the last git commit; the kernels use the time of the last commit
/// that touched their own inputs (kernel-patches/, configs/kernel/, and
/// finnix.lock's `[kernel-source]`: not its Debian package pins), so that a
/// commit elsewhere does not rebuild them. Both are
/// recorded in the release manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub global: i64,
    pub kernel: i64,
    pub from_env: bool,
}

/// The paths whose history dates the kernels (with finnix.lock's
/// `[kernel-source]`, see [`kernel_source_since`]).
pub const KERNEL_INPUT_PATHS: &[&str] = &["kernel-patches", "configs/kernel"];

impl Epoch {
    pub fn resolve(root: &Path, env: &Env) -> Result<Epoch> {
        let parse = |name: &str, value: &str| -> Result<i64> {
            value
                .trim()
                .parse()
                .ok()
                .filter(|e: &i64| *e >= 0)
                .with_context(|| format!("{name}={value:?} is not a number of seconds since 1970"))
        };
        if let Some(value) = &env.source_date_epoch {
            let epoch = parse("SOURCE_DATE_EPOCH", value)?;
            // A release's manifest records both; rebuilding it sets both.
            let kernel = match &env.kernel_source_date_epoch {
                Some(k) => parse("FINNIX_KERNEL_SOURCE_DATE_EPOCH", k)?,
                None => epoch,
            };
            return Ok(Epoch {
                global: epoch,
                kernel,
                from_env: true,
            });
        }
        let global = git_time(root, &[])?.with_context(|| {
            format!(
                "SOURCE_DATE_EPOCH is not set and {} has no git commit to take it from: commit, or set SOURCE_DATE_EPOCH",
                root.display()
            )
        })?;
        let paths = git_time(root, KERNEL_INPUT_PATHS)?;
        let lock = lock_kernel_source_time(root)?;
        let kernel = match (paths, lock) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(global),
        };
        Ok(Epoch {
            global,
            kernel,
            from_env: false,
        })
    }
}

/// The commit time since which finnix.lock's `[kernel-source]` has been
/// what it is now, from the file's history (newest first): the time of the
/// oldest commit in the unbroken run of commits that hold the current one.
pub fn kernel_source_since(
    current: Option<&crate::support::lock::LockedSource>,
    history: &[(i64, Option<crate::support::lock::LockedSource>)],
) -> Option<i64> {
    let mut since = None;
    for (time, source) in history {
        if source.as_ref() != current {
            break;
        }
        since = Some(*time);
    }
    since
}

fn lock_kernel_source_time(root: &Path) -> Result<Option<i64>> {
    use crate::support::lock::Lock;
    let read = |args: &[&str]| -> Option<String> {
        let o = crate::support::cmd::Cmd::argv("git", args)
            .dir(root)
            .expr()
            .stdout_capture()
            .stderr_null()
            .unchecked()
            .run()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(log) = read(&["log", "--format=%H %ct", "--", "finnix.lock"]) else {
        return Ok(None);
    };
    let parse = |text: &str| {
        crate::support::config::parse_toml::<Lock>(text, Path::new("finnix.lock"))
            .ok()
            .and_then(|l| l.kernel_source)
    };
    let current = Lock::read(&root.join("finnix.lock"))?.kernel_source;
    let mut history = Vec::new();
    for line in log.lines() {
        let Some((hash, time)) = line.split_once(' ') else {
            continue;
        };
        let Ok(time) = time.trim().parse::<i64>() else {
            continue;
        };
        let text = read(&["show", &format!("{hash}:finnix.lock")]).unwrap_or_default();
        let source = parse(&text);
        let differs = source != current;
        history.push((time, source));
        if differs {
            break;
        }
    }
    Ok(kernel_source_since(current.as_ref(), &history))
}

fn git_time(root: &Path, paths: &[&str]) -> Result<Option<i64>> {
    let mut args = vec!["log", "-1", "--format=%ct"];
    if !paths.is_empty() {
        args.push("--");
        args.extend(paths);
    }
    let out = crate::support::cmd::Cmd::argv("git", &args)
        .dir(root)
        .expr()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            Ok(text.trim().parse().ok())
        }
        _ => Ok(None),
    }
}

impl Ctx {
    pub fn load(locked: bool, jobs: Option<usize>) -> Result<Ctx> {
        let root = repo_root()?;
        let config_path = root.join("configs/finnix.toml");
        let text = std::fs::read_to_string(&config_path).with_context(|| {
            format!(
                "cannot read the build configuration {}",
                config_path.display()
            )
        })?;
        let config = Config::parse(&text, Path::new("configs/finnix.toml"))?;
        let env = Env::from_process();
        let cache_root = match &env.cache_dir {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => std::env::current_dir()?.join(dir),
            None => root.join("target/finnix-cache"),
        };
        let cache = Cache::new(cache_root);
        cache.sweep()?;
        crate::support::fsutil::sweep_socket_dirs()?;
        let epoch = Epoch::resolve(&root, &env)?;
        let jobs = jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        Ok(Ctx {
            root,
            env,
            config,
            cache,
            epoch,
            locked,
            jobs,
        })
    }

    /// The profile a command was given, or the configured default.
    pub fn profile(&self, chosen: Option<String>) -> String {
        chosen.unwrap_or_else(|| self.config.rootfs.default_profile.clone())
    }

    pub fn logs(&self) -> PathBuf {
        self.cache.logs_dir()
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("finnix.lock")
    }

    /// `dist/` in the checkout, or `$FINNIX_DIST_DIR`.
    pub fn dist_dir(&self) -> PathBuf {
        match &self.env.dist_dir {
            Some(d) => d.clone(),
            None => self.root.join("dist"),
        }
    }
}

/// The kernel's build system (kbuild) cannot work in a source or output
/// directory whose path holds whitespace or a colon (its Makefile stops with
/// "source directory cannot contain spaces or colons"), and the kernels are
/// built below the cache. Refused before any work, saying what to set.
pub fn check_build_path(cache_root: &Path) -> Result<()> {
    let text = cache_root.to_string_lossy();
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || *c == ':') {
        bail!(
            "the build cache {} holds {}: the kernel's build system cannot build in a path with a space or a colon. \
             Set FINNIX_CACHE_DIR to a directory whose path has neither (for example /var/cache/finnix-build), \
             or move the checkout to such a path",
            cache_root.display(),
            if c == ':' { "a colon".to_string() } else { format!("whitespace ({c:?})") }
        );
    }
    Ok(())
}

/// The repository root: where the workspace Cargo.toml and configs/ live.
fn repo_root() -> Result<PathBuf> {
    // CARGO_MANIFEST_DIR is xtask/ at build time; prefer the runtime cwd walk
    // so a moved checkout still works.
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join("configs/finnix.toml").is_file() && dir.join("xtask").is_dir() {
            return Ok(dir);
        }
        if !dir.pop() {
            break;
        }
    }
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    match compiled {
        Some(d) if d.join("configs/finnix.toml").is_file() => Ok(d),
        _ => bail!("cannot find the repository root (a directory with configs/finnix.toml): run cargo xtask inside the checkout"),
    }
}

/// This very program, to run again as a child (verify-repro's builds, the
/// suite's second dist, check-snapshot's locked build) or to copy:
/// `/proc/self/exe`, which a forked child execs as the parent's image even
/// after `cargo build` replaced target/debug/xtask while the suite ran
/// (current_exe() then names a deleted file).
pub fn this_program() -> std::path::PathBuf {
    std::path::PathBuf::from("/proc/self/exe")
}

/// First line of `<tool> --version`, for cache keys and the manifest.
pub fn tool_version(tool: &str) -> String {
    let out = crate::cmd!(tool, "--version")
        .expr()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    match out {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(_) => format!("{tool}: not found"),
    }
}

/// Version of an installed Debian package (`dpkg-query`), for keys and the manifest.
pub fn package_version(package: &str) -> String {
    crate::cmd!("dpkg-query", "-W", "-f", "${Version}", package)
        .expr()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_dated_by_their_source_pin_not_the_other_pins() {
        use crate::support::lock::LockedSource;
        let src = |v: &str| {
            Some(LockedSource {
                source: "debian".into(),
                origin: "linux-source-6.1".into(),
                package_version: v.into(),
                version: "6.1".into(),
                sha256: "a".repeat(64),
                snapshot: String::new(),
            })
        };
        // Newest first: two commits that only moved Debian package pins,
        // then the commit that set the current kernel source, then an older one.
        let history = [
            (300, src("2")),
            (200, src("2")),
            (100, src("2")),
            (50, src("1")),
        ];
        assert_eq!(kernel_source_since(src("2").as_ref(), &history), Some(100));
        // An uncommitted change to the pin: no committed time holds it.
        assert_eq!(kernel_source_since(src("3").as_ref(), &history), None);
        assert_eq!(kernel_source_since(None, &[]), None);
    }

    fn env(sde: Option<&str>, kernel: Option<&str>) -> Env {
        Env {
            source_date_epoch: sde.map(String::from),
            kernel_source_date_epoch: kernel.map(String::from),
            ..Env::default()
        }
    }

    #[test]
    fn source_date_epoch_from_the_environment_rules_both_unless_the_kernel_has_its_own() {
        let root = Path::new("/nonexistent");
        let e = Epoch::resolve(root, &env(Some("1700000000"), None)).unwrap();
        assert_eq!(
            (e.global, e.kernel, e.from_env),
            (1_700_000_000, 1_700_000_000, true)
        );
        let e = Epoch::resolve(root, &env(Some(" 1700000000\n"), Some("1600000000"))).unwrap();
        assert_eq!((e.global, e.kernel), (1_700_000_000, 1_600_000_000));
    }

    #[test]
    fn a_bad_epoch_is_named() {
        let root = Path::new("/nonexistent");
        let err = Epoch::resolve(root, &env(Some("yesterday"), None)).unwrap_err();
        assert!(
            err.to_string().contains("SOURCE_DATE_EPOCH=\"yesterday\""),
            "{err}"
        );
        let err = Epoch::resolve(root, &env(Some("1"), Some("-5"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("FINNIX_KERNEL_SOURCE_DATE_EPOCH=\"-5\""),
            "{err}"
        );
    }

    #[test]
    fn a_cache_path_kbuild_cannot_use_is_refused_naming_what_to_set() {
        assert!(check_build_path(Path::new("/home/me/src/finnix/target/finnix-cache")).is_ok());
        for bad in [
            "/home/me/My Projects/finnix/target/finnix-cache",
            "/srv/a:b/cache",
            "/tmp/tab\there",
        ] {
            let e = check_build_path(Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("FINNIX_CACHE_DIR"), "{e}");
        }
    }

    #[test]
    fn without_the_environment_or_git_it_says_what_to_do() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("finnix-epoch");
        std::fs::create_dir_all(&dir).unwrap();
        let err = Epoch::resolve(&dir, &Env::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("set SOURCE_DATE_EPOCH"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
