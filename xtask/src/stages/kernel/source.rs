//! The kernel source: fetched (Debian's `linux-source-X.Y` package by
//! default, or a kernel.org tarball), checked against `finnix.lock`, and
//! unpacked once into the cache (`kernel-source/<key>/linux`).

use fs_err as fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::stages::StageId;
use sha2::{Digest, Sha256};

use crate::support::cache::{hex, KeyBuilder};
use crate::support::config::KernelSource;
use crate::support::context::Ctx;
use crate::support::lock::{compare, Lock, LockedSource, Verdict};
use crate::support::ui::Stage;

const RECIPE: u32 = 1;

/// An unpacked kernel tree in the cache.
pub struct SourceTree {
    pub entry: PathBuf,
    pub id: LockedSource,
}

impl SourceTree {
    pub fn tree(&self) -> PathBuf {
        self.entry.join("linux")
    }
}

fn source_kind(source: &KernelSource) -> (&'static str, &str) {
    match source {
        KernelSource::Debian { package, .. } => ("debian", package),
        KernelSource::KernelOrg { url, .. } => ("kernel.org", url),
    }
}

/// The locked source, if the lock matches what the config asks for.
pub fn locked(ctx: &Ctx) -> Result<Option<LockedSource>> {
    let lock = Lock::read(&ctx.lock_path())?;
    let (kind, origin) = source_kind(&ctx.config.kernel.source);
    let snapshot = snapshot_of(&ctx.config.kernel.source);
    Ok(lock
        .kernel_source
        .filter(|l| l.source == kind && l.origin == origin && l.snapshot == snapshot))
}

/// The snapshot time stamp the config names for the kernel source ("" for none).
fn snapshot_of(source: &KernelSource) -> String {
    match source {
        KernelSource::Debian {
            snapshot: Some((ts, _)),
            ..
        } => ts.clone(),
        _ => String::new(),
    }
}

fn tree_key(sha256: &str) -> crate::support::cache::Key {
    KeyBuilder::new(StageId::KernelSource.key_label(), RECIPE)
        .text("tarball sha256", sha256)
        .finish()
}

/// The unpacked tree for the locked source if it is in the cache (no network).
pub fn cached_tree(ctx: &Ctx) -> Result<Option<SourceTree>> {
    let Some(id) = locked(ctx)? else {
        return Ok(None);
    };
    Ok(ctx
        .cache
        .lookup(StageId::KernelSource.name(), &tree_key(&id.sha256))
        .map(|entry| SourceTree { entry, id }))
}

/// Fetch, check against the lock, and unpack the kernel source.
pub fn fetch_and_unpack(ctx: &Ctx, stage: &mut Stage) -> Result<SourceTree> {
    if let Some(tree) = cached_tree(ctx)? {
        return Ok(tree);
    }
    let previous = locked(ctx)?;
    let work = ctx.cache.temp_dir("kernel-fetch")?;
    let (tarball, fetched) = match &ctx.config.kernel.source {
        KernelSource::Debian { package, snapshot } => fetch_debian(
            ctx,
            stage,
            package,
            snapshot.as_ref(),
            previous.as_ref(),
            work.path(),
        )?,
        KernelSource::KernelOrg { url, sha256 } => {
            fetch_kernel_org(stage, url, sha256, work.path())?
        }
    };
    stage.note(format!(
        "fetched {} {} sha256 {}",
        fetched.origin, fetched.package_version, fetched.sha256
    ));

    // Unpack before deciding on the lock, so the upstream version is known.
    let unpack = ctx.cache.temp_dir(StageId::KernelSource.name())?;
    stage.run(crate::cmd!("tar", "-xf", &tarball, "-C", unpack.path()))?;
    let top = single_subdir(unpack.path())?;
    fs::rename(&top, unpack.path().join("linux"))?;
    let version = makefile_version(&unpack.path().join("linux/Makefile"))?;
    let fetched = LockedSource { version, ..fetched };

    match compare(previous.as_ref(), &fetched) {
        Verdict::Same => {}
        Verdict::New => {
            stage.warn(format!(
                "recording the kernel source in finnix.lock: {} {} sha256 {}",
                fetched.origin, fetched.package_version, fetched.sha256
            ));
        }
        Verdict::Moved(message) if ctx.locked => {
            bail!("{message}\n--locked: refusing to build from a kernel source that differs from finnix.lock (drop --locked to accept it and update the lock)");
        }
        Verdict::Moved(message) => {
            stage.warn(format!(
                "{message}\nupdating finnix.lock (use --locked to refuse this)"
            ));
        }
    }
    if previous.as_ref() != Some(&fetched) {
        Lock::update(&ctx.lock_path(), |lock| {
            lock.kernel_source = Some(fetched.clone());
            Ok(())
        })?;
    }
    fs::write(
        unpack.path().join("source.toml"),
        toml::to_string(&fetched)?,
    )?;
    let entry = ctx.cache.commit(
        StageId::KernelSource.name(),
        &tree_key(&fetched.sha256),
        unpack,
    )?;
    Ok(SourceTree { entry, id: fetched })
}

/// `apt-get download <package>[=<locked version>]`, then the tarball inside it.
pub(crate) fn fetch_debian(
    ctx: &Ctx,
    stage: &mut Stage,
    package: &str,
    snapshot: Option<&(String, String)>,
    previous: Option<&LockedSource>,
    work: &Path,
) -> Result<(PathBuf, LockedSource)> {
    let wanted = previous.map(|p| format!("{package}={}", p.package_version));
    // From a snapshot of the archive: apt with its own sources and lists.
    let private = match snapshot {
        Some((ts, template)) => {
            use crate::support::apt::{archive_lines, snapshot_url, PrivateApt};
            let lines = archive_lines(
                "deb",
                &snapshot_url(template, "debian", ts),
                &snapshot_url(template, "debian-security", ts),
                crate::support::config::DEBIAN_SUITE,
                &["main".to_string()],
            );
            stage.note(format!(
                "kernel source from the snapshot archive:\n{}",
                lines.join("\n")
            ));
            let apt = PrivateApt::new(&work.join("apt"), &lines, None)?;
            stage.run(apt.apt_get(["update"]))?;
            Some(apt)
        }
        None => None,
    };
    let apt_download = |stage: &Stage, spec: &str, work: &Path| -> Result<PathBuf> {
        match &private {
            Some(apt) => {
                stage.run(apt.apt_get(["download", spec]).dir(work))?;
                find_deb(work, spec)
            }
            None => apt_download(stage, spec, work),
        }
    };
    let mut deb = None;
    if let Some(spec) = &wanted {
        match apt_download(stage, spec, work) {
            Ok(path) => deb = Some(path),
            Err(e) if ctx.locked => {
                return Err(e).with_context(|| {
                    format!("--locked: the locked kernel source {spec} is not available from the archive (drop --locked to move the pin to the newest version)")
                })
            }
            Err(_) => stage.warn(format!("{spec} (finnix.lock) is no longer in the archive; taking the newest {package}")),
        }
    }
    let deb = match deb {
        Some(d) => d,
        None => apt_download(stage, package, work)?,
    };
    let deb_version = stage
        .read(crate::cmd!("dpkg-deb", "-f", &deb, "Version"))?
        .trim()
        .to_string();
    let tarball = work.join(format!("{package}.tar.xz"));
    let sha256 = extract_tarball(&deb, &format!("usr/src/{package}.tar.xz"), &tarball)
        .with_context(|| format!("cannot take the source tarball out of {}", deb.display()))?;
    fs::remove_file(&deb)?;
    Ok((
        tarball,
        LockedSource {
            source: "debian".into(),
            origin: package.into(),
            package_version: deb_version,
            version: String::new(),
            sha256,
            snapshot: snapshot.map(|(ts, _)| ts.clone()).unwrap_or_default(),
        },
    ))
}

pub fn apt_download(stage: &Stage, spec: &str, work: &Path) -> Result<PathBuf> {
    let attempt = |s: &Stage| s.run(crate::cmd!("apt-get", "download", spec).dir(work));
    if attempt(stage).is_err() {
        // Package lists may be missing or stale on a fresh machine.
        if unsafe { libc::geteuid() } == 0 {
            stage.run(crate::cmd!("apt-get", "update"))?;
        }
        attempt(stage).with_context(|| format!("apt-get download {spec} failed: is Debian's archive reachable, and the package name right?"))?;
    }
    find_deb(work, spec)
}

fn find_deb(work: &Path, spec: &str) -> Result<PathBuf> {
    fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {spec} produced no .deb"))
}

/// Copy one file out of a .deb's data archive, returning its sha256.
pub fn extract_tarball(deb: &Path, inner: &str, dest: &Path) -> Result<String> {
    let reader = crate::cmd!("dpkg-deb", "--fsys-tarfile", deb)
        .expr()
        .stderr_capture()
        .reader()?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path == inner {
            return copy_hashing(&mut entry, dest);
        }
    }
    bail!("{} has no {inner}", deb.display())
}

fn copy_hashing(reader: &mut impl Read, dest: &Path) -> Result<String> {
    let mut out = io::BufWriter::new(fs::File::create(dest)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(hex(&hasher.finalize()))
}

fn fetch_kernel_org(
    stage: &Stage,
    url: &str,
    sha256: &str,
    work: &Path,
) -> Result<(PathBuf, LockedSource)> {
    let name = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("linux.tar.xz");
    let tarball = work.join(name);
    stage
        .run(crate::cmd!(
            "curl",
            "--fail",
            "--location",
            "--silent",
            "--show-error",
            "--retry",
            "3",
            "-o",
            &tarball,
            url
        ))
        .with_context(|| format!("cannot download {url}"))?;
    let got = crate::support::cache::sha256_file(&tarball)?;
    if got != sha256 {
        bail!(
            "{url} does not have the sha256 configs/finnix.toml pins:\n  wanted: {sha256}\n  got:    {got}\nfix the url or the sha256 in configs/finnix.toml"
        );
    }
    Ok((
        tarball,
        LockedSource {
            source: "kernel.org".into(),
            origin: url.into(),
            package_version: String::new(),
            version: String::new(),
            sha256: got,
            snapshot: String::new(),
        },
    ))
}

fn single_subdir(dir: &Path) -> Result<PathBuf> {
    let mut dirs = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.path());
    match (dirs.next(), dirs.next()) {
        (Some(d), None) => Ok(d),
        _ => bail!("the kernel source tarball must hold exactly one top-level directory"),
    }
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from a kernel Makefile.
pub fn makefile_version(makefile: &Path) -> Result<String> {
    let text = fs::read_to_string(makefile)
        .with_context(|| format!("cannot read {}", makefile.display()))?;
    parse_makefile_version(&text)
        .with_context(|| format!("{} has no VERSION/PATCHLEVEL/SUBLEVEL", makefile.display()))
}

pub fn parse_makefile_version(text: &str) -> Option<String> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (v, p, s) = (get("VERSION")?, get("PATCHLEVEL")?, get("SUBLEVEL")?);
    if [&v, &p, &s]
        .iter()
        .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
    {
        Some(format!("{v}.{p}.{s}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_makefile_version() {
        let text = "# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = Curry Ramen\n";
        assert_eq!(parse_makefile_version(text).as_deref(), Some("6.1.192"));
        assert_eq!(parse_makefile_version("VERSION = 6\n"), None);
    }
}
