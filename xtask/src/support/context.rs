//! What every stage needs: the repository, its configuration, the cache, the
//! build's SOURCE_DATE_EPOCH and the command-line switches.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::support::cache::Cache;
use crate::support::config::Config;

pub struct Ctx {
    /// Repository root (holds Cargo.toml, configs/, kernel-patches/, ...).
    pub root: PathBuf,
    pub config: Config,
    pub cache: Cache,
    pub epoch: Epoch,
    /// `--locked`: fetched inputs must equal `finnix.lock`.
    pub locked: bool,
    pub jobs: usize,
    /// `FINNIX_REQUIRE_CACHED_KERNELS=1`: a kernel missing from the cache is
    /// an error instead of a build (check-fresh, jobs that must not compile).
    pub require_cached_kernels: bool,
}

/// SOURCE_DATE_EPOCH for the build, and for the kernels.
///
/// From the environment when set (it then rules everything, unless
/// FINNIX_KERNEL_SOURCE_DATE_EPOCH is set too, as when rebuilding a release
/// from its manifest). Otherwise the
/// time of the last git commit; the kernels use the time of the last commit
/// that touched their own inputs (kernel-patches/, configs/kernel/,
/// finnix.lock), so that a commit elsewhere does not rebuild them. Both are
/// recorded in the release manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub global: i64,
    pub kernel: i64,
    pub from_env: bool,
}

/// The paths whose history dates the kernels.
pub const KERNEL_INPUT_PATHS: &[&str] = &["kernel-patches", "configs/kernel", "finnix.lock"];

impl Epoch {
    pub fn resolve(root: &Path) -> Result<Epoch> {
        if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
            let epoch: i64 = value
                .trim()
                .parse()
                .ok()
                .filter(|e| *e >= 0)
                .with_context(|| {
                    format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970")
                })?;
            // A release's manifest records both; rebuilding it sets both.
            let kernel = match std::env::var("FINNIX_KERNEL_SOURCE_DATE_EPOCH") {
                Ok(k) => k.trim().parse().ok().filter(|e: &i64| *e >= 0).with_context(|| {
                    format!("FINNIX_KERNEL_SOURCE_DATE_EPOCH={k:?} is not a number of seconds since 1970")
                })?,
                Err(_) => epoch,
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
        let kernel = git_time(root, KERNEL_INPUT_PATHS)?.unwrap_or(global);
        Ok(Epoch {
            global,
            kernel,
            from_env: false,
        })
    }
}

fn git_time(root: &Path, paths: &[&str]) -> Result<Option<i64>> {
    let mut args = vec!["log", "-1", "--format=%ct"];
    if !paths.is_empty() {
        args.push("--");
        args.extend(paths);
    }
    let out = duct::cmd("git", &args)
        .dir(root)
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
        let cache_root = match std::env::var_os("FINNIX_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir()?.join(dir)
                }
            }
            _ => root.join("target/finnix-cache"),
        };
        let cache = Cache::new(cache_root);
        cache.sweep()?;
        let epoch = Epoch::resolve(&root)?;
        let jobs = jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let require_cached_kernels =
            std::env::var("FINNIX_REQUIRE_CACHED_KERNELS").is_ok_and(|v| v == "1");
        Ok(Ctx {
            root,
            config,
            cache,
            epoch,
            locked,
            jobs,
            require_cached_kernels,
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
        match std::env::var_os("FINNIX_DIST_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => self.root.join("dist"),
        }
    }
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

/// First line of `<tool> --version`, for cache keys and the manifest.
pub fn tool_version(tool: &str) -> String {
    let out = duct::cmd!(tool, "--version")
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
    duct::cmd!("dpkg-query", "-W", "-f", "${Version}", package)
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
