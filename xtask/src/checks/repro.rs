//! `cargo xtask verify-repro`: build every artifact twice from scratch and
//! compare them bit for bit, or rebuild and compare with a published release.
//!
//! The two builds share nothing but the source: each runs in its own copy of
//! the checkout (a different path, files written in the opposite order), with
//! its own stage cache and dist directory, a different time zone, locale,
//! umask (022 and 077), user name and (in a UTS namespace) host name,
//! parallelism (all cores; `--jobs 1`), file system (build b on a tmpfs of
//! its own, whose directory order differs from the disk's) and wall-clock
//! time. Build b lives below a directory of mode 0700 (as `mktemp -d` or
//! /root make), under another parent, with its cache inside its checkout
//! (the default) rather than beside it. SOURCE_DATE_EPOCH is the same.
//! Every artifact and every stage output is compared; on a difference
//! diffoscope writes a report.
//!
//! What the variations prove, honestly: xtask sets its own umask to 022
//! first thing, so umask 077 checks that this normalisation holds for every
//! file a stage writes (and for the tools it runs, which inherit it). The
//! uid is not varied: the build runs as root (mmdebstrap's root mode makes
//! device nodes and mounts /proc in its chroot, which a user namespace
//! mapping root to another uid refuses), and every tree's owners are set
//! from the tree itself before a writer reads them. With `--keep-kernels`
//! the kernels are copied into both caches, not built twice: they are
//! counted apart ("copied"), never as reproduced.

use fs_err as fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::ui;

/// What differs between the two builds.
struct Variant {
    name: &'static str,
    /// Path of the source copy below the work directory.
    subdir: &'static str,
    /// A directory below the work directory made mode 0700 (an ancestor of
    /// the checkout that other users, such as apt's `_apt`, cannot enter).
    private: Option<&'static str>,
    /// The stage cache inside the checkout (`target/finnix-cache`, the
    /// default) instead of beside it.
    cache_inside: bool,
    tz: &'static str,
    locale: &'static str,
    umask: &'static str,
    hostname: &'static str,
    user: &'static str,
    reverse_order: bool,
    /// `--jobs` for the build (None: all cores).
    jobs: Option<usize>,
    /// Its work directory on a tmpfs of its own.
    tmpfs: bool,
}

const A: Variant = Variant {
    name: "a",
    subdir: "a/src/finnix",
    private: None,
    cache_inside: false,
    tz: "UTC",
    locale: "C.UTF-8",
    umask: "022",
    hostname: "repro-a",
    user: "builder",
    reverse_order: false,
    jobs: None,
    tmpfs: false,
};

const B: Variant = Variant {
    name: "b",
    subdir: "b/private/a/much/deeper/build/path/finnix-rebuild",
    private: Some("b/private"),
    cache_inside: true,
    tz: "America/St_Johns",
    locale: "POSIX",
    umask: "077",
    hostname: "another-host.example",
    user: "someone-else",
    reverse_order: true,
    jobs: Some(1),
    tmpfs: true,
};

pub struct Options {
    pub profile: String,
    /// Reuse this checkout's kernels in both builds (their reproducibility
    /// is checked by a full run without this).
    pub keep_kernels: bool,
    /// Compare one rebuild with a published release (a dist directory or its SHA256SUMS).
    pub against: Option<PathBuf>,
}

/// One output of a build, found by name.
#[derive(Debug, Clone)]
pub struct Output {
    pub label: String,
    pub path: PathBuf,
}

pub fn run(ctx: &Ctx, opts: &Options) -> Result<bool> {
    let work = ctx.cache.root.join("repro");
    crate::support::fsutil::remove_all(&work)?;
    fs::create_dir_all(&work)?;
    eprintln!(
        "==> verify-repro: work directory {}",
        ui::display_path(&work)
    );
    let start = Instant::now();

    // Kernels to seed both caches with (--keep-kernels): this checkout's.
    let seed: Vec<PathBuf> = if opts.keep_kernels {
        crate::support::prereq::ensure(&[crate::support::prereq::Tools::Kernel], &ctx.logs())?;
        let um = crate::stages::kernel::build(ctx, crate::stages::kernel::Flavor::Um)?;
        let xen = crate::stages::kernel::build(ctx, crate::stages::kernel::Flavor::Xen)?;
        vec![um.entry, xen.entry]
    } else {
        vec![]
    };

    // In --against mode the release's manifest gives SOURCE_DATE_EPOCH.
    let mut env: Vec<(String, String)> = Vec::new();
    let published = match &opts.against {
        Some(p) => Some(Published::read(p)?),
        None => None,
    };
    if let Some(p) = &published {
        env = release_env(ctx, opts, p)?;
    }

    // Both builds run this very program, copied: a rebuild of xtask while
    // they run must not change the builder under their feet.
    let exe = work.join("xtask");
    fs::copy(crate::support::context::this_program(), &exe)
        .context("cannot copy the xtask binary")?;

    let variants: &[&Variant] = if published.is_some() {
        &[&A]
    } else {
        &[&A, &B]
    };
    let mut builds = Vec::new();
    let mut mounts = Vec::new();
    for v in variants {
        if v.tmpfs {
            mounts.push(TmpfsMount::new(&work.join(v.name))?);
        }
        let dirs = prepare(ctx, &work, v, &seed)?;
        build(ctx, v, &exe, &dirs, &opts.profile, &env)?;
        builds.push((dirs.cache, dirs.dist));
    }

    let (mut rows, reports) = match &published {
        None => compare_builds(&work, &builds[0], &builds[1], &opts.profile)?,
        Some(p) => compare_with_release(&work, &builds[0].1, p)?,
    };
    drop(mounts);
    if opts.keep_kernels {
        // Copied into both caches from this checkout: the same bytes by
        // construction, which proves nothing about their build.
        for r in rows.iter_mut() {
            if r.1 == Verdict::Identical
                && (r.0.starts_with("kernel-um/") || r.0.starts_with("kernel-xen/"))
            {
                r.1 = Verdict::Copied;
            }
        }
    }
    let same = rows.iter().all(|r| r.1 != Verdict::Different);
    let table = verdict_table(&rows);
    print!("{table}");
    for r in &reports {
        eprintln!("diffoscope report: {}", ui::display_path(r));
    }
    eprintln!(
        "verify-repro: {} in {} ({} compared, profile {}{})",
        if same {
            "every artifact is reproducible"
        } else {
            "differences found"
        },
        ui::fmt_duration(start.elapsed()),
        rows.len(),
        opts.profile,
        if opts.keep_kernels {
            ", kernels reused from this checkout"
        } else {
            ""
        }
    );
    Ok(same)
}

/// The environment a rebuild of published release `p` needs (its epochs),
/// refused when this checkout names other archive snapshots than it was
/// built from.
fn release_env(ctx: &Ctx, opts: &Options, p: &Published) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    // The rebuild must read the archive as the release did.
    if let Some((archive, kernel)) = &p.snapshots {
        let profile = crate::support::config::Profile::load(&ctx.root, &opts.profile)?;
        let ours = profile.snapshot.clone().unwrap_or_default();
        let our_kernel = match &ctx.config.kernel.source {
            crate::support::config::KernelSource::Debian {
                snapshot: Some((ts, _)),
                ..
            } => ts.clone(),
            _ => String::new(),
        };
        if (&ours, &our_kernel) != (archive, kernel) {
            bail!(
                "the release was built from the Debian archive snapshot {archive:?} (kernel source: {kernel:?}); this checkout names {ours:?} (kernel source: {our_kernel:?}): check out the release's tag, whose profile and finnix.toml record its snapshots"
            );
        }
    }
    if let Some((global, kernel)) = p.epochs {
        env.push(("SOURCE_DATE_EPOCH".into(), global.to_string()));
        env.push(("FINNIX_KERNEL_SOURCE_DATE_EPOCH".into(), kernel.to_string()));
    }
    Ok(env)
}

/// One line per compared artifact: identical, copied or DIFFERENT.
fn verdict_table(rows: &[(String, Verdict, String)]) -> String {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(10).max(10);
    let mut table = format!("{:<width$}  result\n", "artifact");
    for (label, verdict, detail) in rows {
        table.push_str(&format!(
            "{label:<width$}  {}{detail}\n",
            match verdict {
                Verdict::Identical => "identical",
                Verdict::Copied => "copied (not rebuilt)",
                Verdict::Different => "DIFFERENT",
            }
        ));
    }
    table
}

/// One build's copy of the checkout (below a 0700 directory for a variant
/// that asks for it), its cache and dist, the cache seeded with `seed`.
fn prepare(ctx: &Ctx, work: &Path, v: &Variant, seed: &[PathBuf]) -> Result<BuildDirs> {
    let root = work.join(v.subdir);
    copy_checkout(&ctx.root, &root, v.reverse_order)?;
    if let Some(private) = v.private {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(work.join(private), std::fs::Permissions::from_mode(0o700))?;
    }
    let (cache, dist) = if v.cache_inside {
        (root.join("target/finnix-cache"), root.join("dist"))
    } else {
        (
            work.join(v.name).join("cache"),
            work.join(v.name).join("dist"),
        )
    };
    for entry in seed {
        let stage = entry
            .parent()
            .and_then(|p| p.file_name())
            .context("kernel entry")?;
        let dest = cache
            .join(stage)
            .join(entry.file_name().context("kernel entry")?);
        fs::create_dir_all(dest.parent().expect("parent"))?;
        crate::support::fsutil::copy_tree(entry, &dest)?;
    }
    let dirs = BuildDirs { root, cache, dist };
    Ok(dirs)
}

/// Copy the checkout's files (what git tracks or would track, and .git
/// itself) to `dest`, in sorted or reverse order.
pub fn copy_checkout(src: &Path, dest: &Path, reverse: bool) -> Result<()> {
    let list = crate::cmd!(
        "git",
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard"
    )
    .dir(src)
    .expr()
    .read()?;
    let mut files: Vec<&str> = list.split('\0').filter(|f| !f.is_empty()).collect();
    files.sort();
    if reverse {
        files.reverse();
    }
    fs::create_dir_all(dest)?;
    for f in files {
        let from = src.join(f);
        let to = dest.join(f);
        let Ok(meta) = fs::symlink_metadata(&from) else {
            continue;
        }; // deleted, not yet committed
        fs::create_dir_all(to.parent().expect("parent"))?;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else {
            fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    crate::support::fsutil::copy_tree(&src.join(".git"), &dest.join(".git"))?;
    Ok(())
}

/// Where one of the builds lives: its source copy, cache and dist.
struct BuildDirs {
    root: PathBuf,
    cache: PathBuf,
    dist: PathBuf,
}

/// Run `cargo xtask dist` (this very binary) in a copy, with the variant's
/// environment, in a UTS namespace with its own host name.
fn build(
    ctx: &Ctx,
    v: &Variant,
    exe: &Path,
    dirs: &BuildDirs,
    profile: &str,
    env: &[(String, String)],
) -> Result<()> {
    let BuildDirs { root, cache, dist } = dirs;
    let log = ctx.logs().join(format!("repro-{}.log", v.name));
    let jobs = v.jobs.map(|j| format!("--jobs {j} ")).unwrap_or_default();
    let script = format!(
        // `dist`, then COW mode's image (compared too, from dist/ and the cache).
        "hostname '{}' && umask {} && \"$1\" {jobs}dist --profile \"$2\" && \"$1\" {jobs}cow-image --profile \"$2\"",
        v.hostname, v.umask
    );
    let mut cmd = crate::cmd!("unshare", "--uts", "--", "sh", "-c", script, "sh", exe, profile)
        .dir(root)
        .env("FINNIX_CACHE_DIR", cache)
        .env("FINNIX_DIST_DIR", dist)
        .env("TZ", v.tz)
        .env("LC_ALL", v.locale)
        .env("LANG", v.locale)
        .env("USER", v.user)
        .env("LOGNAME", v.user)
        .env("CARGO_HOME", ctx.env.cargo_home())
        .env("RUSTUP_HOME", ctx.env.rustup_home());
    // SOURCE_DATE_EPOCH: the release's when given, else each copy's git history.
    for var in ["SOURCE_DATE_EPOCH", "FINNIX_KERNEL_SOURCE_DATE_EPOCH"] {
        cmd = match env.iter().find(|(k, _)| k == var) {
            Some((k, val)) => cmd.env(k, val),
            None => cmd.env_remove(var),
        };
    }
    eprintln!(
        "==> verify-repro: build {} in {}{} (TZ={}, LC_ALL={}, umask {} (xtask normalises it to 022), host {}, user {}, {}{}){}",
        v.name,
        ui::display_path(root),
        match v.private {
            Some(p) => format!(" below {p} (mode 0700)"),
            None => String::new(),
        },
        v.tz,
        v.locale,
        v.umask,
        v.hostname,
        v.user,
        match v.jobs {
            Some(j) => format!("--jobs {j}"),
            None => "all cores".to_string(),
        },
        if v.tmpfs { ", on a tmpfs" } else { "" },
        if v.reverse_order {
            ", files written in reverse order"
        } else {
            ""
        }
    );
    eprintln!("    log: {}", ui::display_path(&log));
    let mut log_file = fs::File::create(&log)?;
    let reader = cmd.expr().stderr_to_stdout().unchecked().reader()?;
    let mut lines = BufReader::new(&reader);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            break;
        }
        use std::io::Write;
        log_file.write_all(line.as_bytes())?;
        if line.starts_with("==>") {
            eprint!("    [{}] {}", v.name, line);
        }
    }
    let status = reader.try_wait()?.map(|o| o.status);
    match status {
        Some(s) if s.success() => Ok(()),
        _ => bail!(
            "build {} failed; its log: {}\n{}",
            v.name,
            log.display(),
            ui::tail(&log, 30)
        ),
    }
}

/// The outputs of one build: dist files, then stage outputs in its cache.
fn outputs(cache: &Path, dist: &Path, profile: &str) -> Result<Vec<Output>> {
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(dist)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        // Not the checkout's dist/.gitkeep: what the build wrote.
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    for p in names {
        out.push(Output {
            label: format!("dist/{}", p.file_name().expect("name").to_string_lossy()),
            path: p,
        });
    }
    let stage_files: Vec<(String, &str)> = crate::stages::StageId::ALL
        .iter()
        .flat_map(|s| s.outputs().iter().map(move |p| (s.dir(profile), *p)))
        .collect();
    for (stage, pattern) in &stage_files {
        let dir = cache.join(stage);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            for f in fs::read_dir(entry.path())?.filter_map(|e| e.ok()) {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with(pattern) || name.ends_with(pattern) {
                    out.push(Output {
                        label: format!("{stage}/{name}"),
                        path: f.path(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// What a comparison found for one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Identical,
    /// Copied into both builds (`--keep-kernels`): not a reproduction.
    Copied,
    Different,
}

type Rows = (Vec<(String, Verdict, String)>, Vec<PathBuf>);

/// A tmpfs mounted on a build's work directory for its lifetime: another
/// file system, another directory order.
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn new(dir: &Path) -> Result<TmpfsMount> {
        fs::create_dir_all(dir)?;
        crate::cmd!(
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=16g,mode=0755",
            "finnix-repro",
            dir
        )
        .output()
        .with_context(|| format!("cannot mount a tmpfs on {}", dir.display()))?;
        Ok(TmpfsMount(dir.to_path_buf()))
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = crate::cmd!("umount", "--lazy", &self.0).output();
    }
}

fn compare_builds(
    work: &Path,
    a: &(PathBuf, PathBuf),
    b: &(PathBuf, PathBuf),
    profile: &str,
) -> Result<Rows> {
    let oa = outputs(&a.0, &a.1, profile)?;
    let ob = outputs(&b.0, &b.1, profile)?;
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    for x in &oa {
        let Some(y) = ob.iter().find(|y| y.label == x.label) else {
            rows.push((
                x.label.clone(),
                Verdict::Different,
                " (missing from build b)".to_string(),
            ));
            continue;
        };
        let (ha, hb) = (sha256_file(&x.path)?, sha256_file(&y.path)?);
        if ha == hb {
            rows.push((
                x.label.clone(),
                Verdict::Identical,
                format!("  {}", &ha[..16]),
            ));
        } else {
            let report = diffoscope(work, &x.label, &x.path, &y.path)?;
            rows.push((
                x.label.clone(),
                Verdict::Different,
                format!("  {} vs {}", &ha[..16], &hb[..16]),
            ));
            reports.push(report);
        }
    }
    for y in ob.iter().filter(|y| !oa.iter().any(|x| x.label == y.label)) {
        rows.push((
            y.label.clone(),
            Verdict::Different,
            " (missing from build a)".to_string(),
        ));
    }
    ensure!(!rows.is_empty(), "the builds produced nothing to compare");
    Ok((rows, reports))
}

/// A published release: its SHA256SUMS, and the directory if there is one.
struct Published {
    sums: Vec<(String, String)>,
    dir: Option<PathBuf>,
    epochs: Option<(i64, i64)>,
    /// The Debian archive snapshots the release was built from (profile,
    /// kernel source), from its manifest.
    snapshots: Option<(String, String)>,
}

impl Published {
    fn read(path: &Path) -> Result<Published> {
        let (sums_path, dir) = if path.is_dir() {
            (path.join("SHA256SUMS"), Some(path.to_path_buf()))
        } else {
            (path.to_path_buf(), path.parent().map(Path::to_path_buf))
        };
        let text = fs::read_to_string(&sums_path)
            .with_context(|| format!("cannot read {}", sums_path.display()))?;
        let sums = crate::release::checksums::parse_sha256sums(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", sums_path.display()))?;
        let manifest = sums
            .iter()
            .find(|(n, _)| n.ends_with(".manifest.json"))
            .and_then(|(n, _)| dir.as_ref().map(|d| d.join(n)))
            .filter(|p| p.is_file());
        let mut snapshots = None;
        let epochs = match manifest {
            Some(m) => {
                let m = crate::release::checksums::Manifest::read(&m)?;
                snapshots = Some((m.archive_snapshot.clone(), m.kernel_source.snapshot.clone()));
                Some((m.source_date_epoch, m.kernel_source_date_epoch))
            }
            None => None,
        };
        if epochs.is_none() {
            eprintln!("    note: no manifest next to {}: SOURCE_DATE_EPOCH comes from this checkout's git history", sums_path.display());
        }
        Ok(Published {
            sums,
            dir,
            epochs,
            snapshots,
        })
    }
}

fn compare_with_release(work: &Path, dist: &Path, p: &Published) -> Result<Rows> {
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    for (name, want) in &p.sums {
        if crate::stages::tarballs::is_source_archive(name) {
            eprintln!("    note: {name} is the release's source archive (cargo xtask source), not rebuilt here: SHA256SUMS and its signatures vouch for it");
            continue;
        }
        let ours = dist.join(name);
        if !ours.is_file() {
            rows.push((
                name.clone(),
                Verdict::Different,
                " (the rebuild has no such file)".to_string(),
            ));
            continue;
        }
        let got = sha256_file(&ours)?;
        if &got == want {
            rows.push((
                name.clone(),
                Verdict::Identical,
                format!("  {}", &got[..16]),
            ));
        } else {
            rows.push((
                name.clone(),
                Verdict::Different,
                format!("  published {} rebuilt {}", &want[..16], &got[..16]),
            ));
            if let Some(theirs) = p.dir.as_ref().map(|d| d.join(name)).filter(|f| f.is_file()) {
                reports.push(diffoscope(work, name, &theirs, &ours)?);
            }
        }
    }
    Ok((rows, reports))
}

/// diffoscope's text report for a pair, bounded in time.
fn diffoscope(work: &Path, label: &str, a: &Path, b: &Path) -> Result<PathBuf> {
    let report = work.join(format!("diffoscope-{}.txt", label.replace('/', "_")));
    let _ = crate::cmd!(
        "timeout",
        "900",
        "diffoscope",
        "--text",
        &report,
        "--max-report-size",
        "20000000",
        a,
        b
    )
    .expr()
    .stdout_null()
    .stderr_null()
    .unchecked()
    .run();
    Ok(report)
}

impl crate::cli::VerifyRepro {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::RELEASE_STAGES;
        use crate::stages::ensure_tools;
        ensure_tools(ctx, RELEASE_STAGES, &[crate::support::prereq::Tools::Repro])?;
        let same = run(
            ctx,
            &Options {
                profile: ctx.profile(self.profile),
                keep_kernels: self.keep_kernels,
                against: self.against,
            },
        )?;
        ensure!(
            same,
            "verify-repro: the builds differ (see the table and the diffoscope reports above)"
        );
        Ok(())
    }
}
