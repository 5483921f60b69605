//! `cargo xtask source`: `finnix-<version>-source.tar`, the corresponding
//! source of a release (what the GPL asks of whoever ships the binaries):
//!
//! - `repository.tar`: this repository at the release's commit (`git
//!   archive`): the build system, our kernel patches and configs, the
//!   programs of the live system;
//! - `kernel/<tarball>`: the kernel source tarball exactly as fetched (its
//!   sha256 is the one pinned in finnix.lock);
//! - `debian/`: the Debian source packages (`.dsc` and the files it names)
//!   of everything shipped, at the exact versions in the release: the root
//!   filesystem's packages (by their `Source:`), busybox, syslinux, Debian's
//!   signed kernel, shim and GRUB, and every source a shipped binary was
//!   built with (`Built-Using:`: glibc in busybox-static, `linux` in the
//!   signed kernel, `grub2` and `shim` in the signed boot loaders);
//! - `SOURCES`: which source package each shipped binary package came from;
//! - `MISSING` (only in `-source-incomplete.tar`): each file the archive
//!   did not serve, with its URL and the answer.
//!
//! apt (deb-src lines of the archive the release came from, or its
//! snapshot) says which files make each source package and their sha256
//! (`apt-get source --print-uris`, from the signed Sources indices); each
//! file is fetched with curl, checked against that sha256 and kept in the
//! cache (`source-files/<sha256>/<name>`), so a second run fetches nothing.
//!
//! Deterministic: entries sorted, owner 0, dates SOURCE_DATE_EPOCH.

use fs_err as fs;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli;
use crate::pipeline::{self, RELEASE_STAGES};
use crate::stages::{ensure_tools, tarballs};
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::prereq::Tools;
use crate::support::ui::{self, Outcome, Stage};

use finnix_contract::dpkg::source_of;

/// `Built-Using: glibc (= 2.36-9+deb12u14), linux (= 6.1.192-2)`: the
/// source packages (name, exact version) a binary was built with.
pub fn parse_built_using(field: &str) -> Vec<(String, String)> {
    field
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let (name, rest) = item.split_once('(')?;
            let version = rest.trim_end_matches(')').trim().strip_prefix('=')?.trim();
            Some((name.trim().to_string(), version.to_string()))
        })
        .collect()
}

/// One file of a source package, as `apt-get source --print-uris` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub url: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The lines `'URL' name size SHA256:hash` of `apt-get source --print-uris`.
pub fn parse_print_uris(text: &str) -> Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('\'')) {
        let bad = || format!("unexpected apt-get --print-uris line: {line}");
        let (url, rest) = line[1..].split_once("' ").with_context(bad)?;
        let mut f = rest.split_whitespace();
        let (Some(name), Some(size), Some(hash)) = (f.next(), f.next(), f.next()) else {
            bail!(bad());
        };
        let sha256 = hash
            .strip_prefix("SHA256:")
            .filter(|h| crate::support::config::is_sha256(h))
            .with_context(|| format!("{line}: no SHA256 (apt names the strongest hash it has)"))?;
        files.push(SourceFile {
            url: url.to_string(),
            name: name.to_string(),
            size: size.parse().with_context(bad)?,
            sha256: sha256.to_string(),
        });
    }
    Ok(files)
}

/// Why a file of a shipped source package is not in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub package: String,
    pub version: String,
    /// The file, or "" when apt knows no such source package version.
    pub file: String,
    pub url: String,
    pub reason: String,
}

/// The `MISSING` file: one line per file, tab-separated.
pub fn render_missing(missing: &[Missing]) -> String {
    let mut out = String::from(
        "# Files of shipped source packages that the archive did not serve when this\n\
         # archive was made (package, version, file, URL, answer). snapshot.debian.org\n\
         # keeps every version ever published.\n",
    );
    for m in missing {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            m.package, m.version, m.file, m.url, m.reason
        ));
    }
    out
}

/// Parse `MISSING` back (comments skipped): for checks.
pub fn parse_missing(text: &str) -> Vec<Missing> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 5).then(|| Missing {
                package: f[0].into(),
                version: f[1].into(),
                file: f[2].into(),
                url: f[3].into(),
                reason: f[4].into(),
            })
        })
        .collect()
}

/// Which source packages the release ships binaries of, and the SOURCES
/// lines that say why.
#[derive(Debug, Default)]
pub struct Wanted {
    pub sources: BTreeSet<(String, String)>,
    pub lines: BTreeSet<String>,
}

impl Wanted {
    /// A shipped binary package: its source, and what it was built using.
    pub fn add(
        &mut self,
        package: &str,
        version: &str,
        source_field: Option<&str>,
        built_using: Option<&str>,
        note: &str,
    ) {
        let src = source_of(package, version, source_field);
        self.lines
            .insert(format!("{package} {version} <- {} {}{note}", src.0, src.1));
        self.sources.insert(src);
        for (n, v) in parse_built_using(built_using.unwrap_or("")) {
            self.lines.insert(format!(
                "{package} {version} <- {n} {v} (built using){note}"
            ));
            self.sources.insert((n, v));
        }
    }

    /// Every installed package of a dpkg status file.
    pub fn add_status(&mut self, status: &str) {
        use finnix_contract::dpkg::{field, installed};
        for para in installed(status) {
            let (Some(name), Some(version)) = (field(para, "Package"), field(para, "Version"))
            else {
                continue;
            };
            self.add(
                name,
                version,
                field(para, "Source"),
                field(para, "Built-Using"),
                "",
            );
        }
    }
}

/// What `write` made.
pub struct Written {
    pub path: PathBuf,
    pub complete: bool,
    pub packages: usize,
    pub files: usize,
    pub missing: Vec<Missing>,
    /// Why the release directory's SHA256SUMS does not list it (None: it does).
    pub not_listed: Option<String>,
}

/// Write the source archive of `release` into `dir`: `names.source` when
/// every file came, else (only with `allow_incomplete`)
/// `names.source_incomplete` with a `MISSING` list; without it, an error
/// naming each package, and nothing written.
pub fn write(
    ctx: &Ctx,
    s: &mut Stage,
    release: &pipeline::Release,
    names: &crate::stages::tarballs::Names,
    dir: &Path,
    allow_incomplete: bool,
) -> Result<Written> {
    crate::support::fsutil::sweep_staging(dir)?;
    let work = ctx.cache.temp_dir("source")?;
    let w = work.path();
    let profile = crate::support::config::Profile::load(&ctx.root, &release.live.profile)?;

    // 1. This repository at HEAD.
    let repo = w.join("repository.tar");
    fs::write(&repo, s.read_bytes(repository_archive(ctx))?)?;

    // 2. The kernel source tarball, as fetched.
    let lock = crate::support::lock::Lock::read(&ctx.lock_path())?;
    let ks = lock
        .kernel_source
        .clone()
        .context("finnix.lock names no kernel source")?;
    let (kernel_name, kernel_file) = kernel_tarball(ctx, s, &ks, w)?;
    let s: &Stage = s;

    // 3. Which source packages.
    let wanted = wanted_packages(ctx, s, release, &lock)?;

    // 4. Their files.
    let (files, missing) = fetch_sources(ctx, s, w, &profile, &wanted)?;
    let complete = missing.is_empty();
    if !complete {
        let text = render_missing(&missing);
        s.note(&text);
        let packages: BTreeSet<String> = missing
            .iter()
            .map(|m| format!("{} {}", m.package, m.version))
            .collect();
        if !allow_incomplete {
            bail!(
                "the archive did not serve {} files of {} of the {} source packages shipped: {} (each file, URL and answer are in the log). \
                 Nothing was written. A release needs them all: build from a snapshot that still has them (snapshot = \"...\" in the profile). \
                 --allow-incomplete writes {} with a MISSING list instead",
                missing.len(),
                packages.len(),
                wanted.sources.len(),
                packages.into_iter().collect::<Vec<_>>().join(", "),
                names.source_incomplete
            );
        }
    }

    // 5. The archive, sorted, dated by the epoch; renamed into place.
    let name = if complete {
        &names.source
    } else {
        &names.source_incomplete
    };
    let dest = dir.join(name);
    let top = name.strip_suffix(".tar").unwrap_or(name).to_string();
    let epoch = ctx.epoch.global;
    let sources_txt = wanted.lines.iter().cloned().collect::<Vec<_>>().join("\n") + "\n";
    let tmp = dir.join(format!(".{name}.partial.{}", std::process::id()));
    let parts = Parts {
        top: &top,
        missing: (!complete).then(|| render_missing(&missing)),
        sources_txt: &sources_txt,
        files: &files,
        kernel: (&kernel_name, &kernel_file),
        repo: &repo,
    };
    let result = write_tar(&tmp, &parts, epoch);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", dest.display())));
    }
    fs::rename(&tmp, &dest)?;
    // The other variant, from an earlier run, no longer describes this one.
    let other = if complete {
        &names.source_incomplete
    } else {
        &names.source
    };
    let _ = fs::remove_file(dir.join(other));
    let not_listed = list_in_sums(s, dir, release, names, name, &dest, other)?;
    Ok(Written {
        path: dest,
        complete,
        packages: wanted.sources.len(),
        files: files.len(),
        missing,
        not_listed,
    })
}

/// The source packages shipped: the root filesystem's (its dpkg status),
/// this machine's busybox and syslinux, the Debian packages taken as they
/// are.
fn wanted_packages(
    ctx: &Ctx,
    s: &Stage,
    release: &pipeline::Release,
    lock: &crate::support::lock::Lock,
) -> Result<Wanted> {
    // 3. Which source packages: the root filesystem's, the host's busybox
    //    and syslinux, the Debian packages taken as they are.
    let mut wanted = Wanted::default();
    let status = fs::read_to_string(release.live.rootfs.tree().join("var/lib/dpkg/status"))
        .unwrap_or_default();
    wanted.add_status(&status);
    for pkg in ["busybox-static", "isolinux"] {
        let f = s.read(crate::cmd!(
            "dpkg-query",
            "-W",
            "-f",
            "${Version}\n${Source}\n${Built-Using}\n",
            pkg
        ))?;
        let mut l = f.lines();
        let (v, src, bu) = (
            l.next().unwrap_or(""),
            l.next().unwrap_or(""),
            l.next().unwrap_or(""),
        );
        wanted.add(
            pkg,
            v,
            Some(src),
            Some(bu),
            " (this machine's, in the initramfs or the BIOS boot loader)",
        );
    }
    for (role, deb) in &lock.shipped_debs() {
        let cached = crate::stages::debs::cached(ctx, role, deb)
            .with_context(|| {
                format!(
                    "the {role} package ({}) is not in the cache: run `cargo xtask dist` first",
                    deb.spec()
                )
            })?
            .path;
        let field = |f: &str| s.read(crate::cmd!("dpkg-deb", "-f", &cached, f));
        wanted.add(
            &deb.package,
            &deb.version,
            Some(field("Source")?.trim()),
            Some(field("Built-Using")?.trim()),
            &format!(" ({role})"),
        );
    }
    Ok(wanted)
}

/// The packages' files, from deb-src lines of the archive the packages came
/// from (a snapshot's when the profile names one): those fetched, by name,
/// and those the archive did not serve.
fn fetch_sources(
    ctx: &Ctx,
    s: &Stage,
    w: &Path,
    profile: &crate::support::config::Profile,
    wanted: &Wanted,
) -> Result<(BTreeMap<String, PathBuf>, Vec<Missing>)> {
    // 4. Their files, from deb-src lines of the archive the packages came
    //    from (a snapshot's when the profile names one).
    let mut archive = profile.clone();
    if archive.mirror.is_none() {
        archive.mirror = Some(crate::support::config::DEBIAN_MIRROR.into());
        archive.suite = Some(crate::support::config::DEBIAN_SUITE.into());
    }
    if !archive.components.iter().any(|c| c == "non-free-firmware") {
        archive.components.push("non-free-firmware".into());
    }
    let (sources, _) = crate::stages::rootfs::archive_sources(&archive);
    let sources: Vec<String> = sources
        .iter()
        .map(|l| l.replacen("deb ", "deb-src ", 1))
        .collect();
    let apt = crate::support::apt::PrivateApt::new(&w.join("apt"), &sources, None)?;
    s.run(apt.apt_get(["update"]))?;
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut missing = Vec::new();
    for (src, ver) in &wanted.sources {
        let spec = format!("{src}={ver}");
        let (ok, out) =
            s.output(apt.apt_get(["source", "--only-source", "--print-uris", spec.as_str()]))?;
        let listed = if ok {
            parse_print_uris(&out)?
        } else {
            Vec::new()
        };
        if listed.is_empty() {
            missing.push(Missing {
                package: src.clone(),
                version: ver.clone(),
                file: String::new(),
                url: String::new(),
                reason: format!(
                    "not in the archive's source indices ({})",
                    out.lines()
                        .filter(|l| l.starts_with("E: "))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
            continue;
        }
        for f in listed {
            match fetch_checked(ctx, s, &f)? {
                Ok(path) => {
                    files.insert(f.name.clone(), path);
                }
                Err(reason) => missing.push(Missing {
                    package: src.clone(),
                    version: ver.clone(),
                    file: f.name.clone(),
                    url: f.url.clone(),
                    reason,
                }),
            }
        }
    }
    Ok((files, missing))
}

/// What the archive holds, under `top/`.
struct Parts<'a> {
    top: &'a str,
    missing: Option<String>,
    sources_txt: &'a str,
    files: &'a BTreeMap<String, PathBuf>,
    kernel: (&'a str, &'a Path),
    repo: &'a Path,
}

/// The archive at `tmp`, sorted, dated by the epoch, synced.
fn write_tar(tmp: &Path, p: &Parts, epoch: i64) -> Result<()> {
    let top = p.top;
    let file = fs::File::create(tmp)?;
    let mut tar = tar::Builder::new(file);
    if let Some(missing) = &p.missing {
        append_bytes(
            &mut tar,
            &format!("{top}/MISSING"),
            missing.as_bytes(),
            epoch,
        )?;
    }
    append_bytes(
        &mut tar,
        &format!("{top}/SOURCES"),
        p.sources_txt.as_bytes(),
        epoch,
    )?;
    for (name, path) in p.files {
        append_file(&mut tar, &format!("{top}/debian/{name}"), path, epoch)?;
    }
    append_file(
        &mut tar,
        &format!("{top}/kernel/{}", p.kernel.0),
        p.kernel.1,
        epoch,
    )?;
    append_file(&mut tar, &format!("{top}/repository.tar"), p.repo, epoch)?;
    let mut file = tar.into_inner()?;
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

/// The archive's line in the release's SHA256SUMS when `dir` holds this
/// very build of the release (SHA256SUMS lists each of its files with the
/// sha256 of the one in the cache); signatures of the older SHA256SUMS are
/// removed (sign again). Written by rename. Else why not.
fn list_in_sums(
    s: &Stage,
    dir: &Path,
    release: &pipeline::Release,
    names: &crate::stages::tarballs::Names,
    name: &str,
    path: &Path,
    other: &str,
) -> Result<Option<String>> {
    use crate::release::checksums;
    let sums = dir.join("SHA256SUMS");
    let text = fs::read_to_string(&sums).unwrap_or_default();
    let listed = checksums::parse_sha256sums(&text).unwrap_or_default();
    let mut other_build = Vec::new();
    for (file, built) in &release.files {
        let want = sha256_file(built)?;
        if !listed.iter().any(|(n, h)| n == file && h == &want) {
            other_build.push(file.as_str());
        }
    }
    let ours = listed.iter().any(|(n, _)| n == &names.manifest) && other_build.is_empty();
    let mentions = listed.iter().any(|(n, _)| n == name || n == other);
    if !ours && !mentions {
        let why = format!(
            "{} does not list this build of the release ({} differ or are missing): {name} is not added to it; run `cargo xtask dist`, then `cargo xtask source`",
            sums.display(),
            if other_build.is_empty() { names.manifest.clone() } else { other_build.join(", ") }
        );
        s.note(&why);
        return Ok(Some(why));
    }
    // This build: list the archive. Another build that listed a source
    // archive by this name: that archive was just replaced, so drop its line.
    let sha = sha256_file(path)?;
    let entry = ours.then_some((name, sha.as_str()));
    let new = checksums::with_entry(&text, entry, &[name, other])
        .map_err(|e| anyhow::anyhow!("{}: {e}", sums.display()))?;
    for stale in [
        crate::release::sign::SSH_SIG,
        crate::release::sign::OPENPGP_SIG,
    ] {
        let _ = fs::remove_file(dir.join(stale));
    }
    let tmp = dir.join(format!(".SHA256SUMS.{}", std::process::id()));
    fs::write(&tmp, new)?;
    fs::rename(&tmp, &sums)?;
    if !ours {
        let why = format!(
            "{} is another build's: {name} replaced the source archive it listed, whose line is removed; run `cargo xtask dist`, then `cargo xtask source`",
            sums.display()
        );
        s.note(&why);
        return Ok(Some(why));
    }
    s.note(format!("{name} added to {}", sums.display()));
    Ok(None)
}

/// `git archive` of HEAD, dated by the epoch, on its standard output: the
/// archive's `repository.tar`.
pub fn repository_archive(ctx: &Ctx) -> crate::support::cmd::Cmd {
    crate::cmd!(
        "git",
        "archive",
        "--format=tar",
        "--mtime",
        ctx.epoch.global.to_string(),
        "HEAD"
    )
    .dir(&ctx.root)
}

/// The kernel source tarball as the lock pins it: from the file cache, else
/// fetched again the way the kernel stage fetches it (Debian's
/// linux-source package, from the configured snapshot if there is one; or
/// the kernel.org URL) and checked against the lock's sha256.
fn kernel_tarball(
    ctx: &Ctx,
    s: &mut Stage,
    ks: &crate::support::lock::LockedSource,
    w: &Path,
) -> Result<(String, PathBuf)> {
    use crate::support::config::KernelSource;
    let name = if ks.source == "debian" {
        format!("{}.tar.xz", ks.origin)
    } else {
        ks.origin
            .rsplit('/')
            .next()
            .unwrap_or("linux.tar.xz")
            .to_string()
    };
    let path = cached_file(ctx, &name, &ks.sha256, |out| {
        match &ctx.config.kernel.source {
            KernelSource::Debian { package, snapshot }
                if ks.source == "debian" && package == &ks.origin =>
            {
                let dl = w.join("kernel-fetch");
                fs::create_dir_all(&dl)?;
                let (tarball, _) = crate::stages::kernel::source::fetch_debian(
                    ctx,
                    s,
                    package,
                    snapshot.as_ref(),
                    Some(ks),
                    &dl,
                )?;
                fs::rename(&tarball, out)?;
            }
            KernelSource::KernelOrg { url, .. } if url == &ks.origin => {
                s.run(crate::cmd!("curl", "-fsSL", "-o", out, url))?;
            }
            _ => bail!(
                "finnix.lock's kernel source ({} {}) is not the one configs/finnix.toml names: build the kernels first",
                ks.source,
                ks.origin
            ),
        }
        Ok(())
    })?
    .map_err(|e| anyhow::anyhow!("the kernel source tarball {name}: {e}"))?;
    Ok((name, path))
}

/// One source file: from the file cache, else fetched and checked. The
/// inner error says why the archive did not give it (for `MISSING`).
fn fetch_checked(
    ctx: &Ctx,
    s: &Stage,
    f: &SourceFile,
) -> Result<std::result::Result<PathBuf, String>> {
    cached_file(ctx, &f.name, &f.sha256, |out| {
        let (ok, text) = s.output(crate::cmd!(
            "curl", "-sS", "--fail", "--retry", "2", "-o", out, &f.url
        ))?;
        if !ok {
            // curl's own words: "curl: (22) The requested URL returned error: 404".
            bail!("{}", text.trim().lines().last().unwrap_or("curl failed"));
        }
        Ok(())
    })
}

/// `{cache}/source-files/<sha256>/<name>`: used if present (its sha256 is
/// checked again), else `fetch` writes it into a temporary directory that is
/// renamed into place only when its sha256 is the one wanted. The inner
/// error: the fetch failed or gave other bytes.
fn cached_file(
    ctx: &Ctx,
    name: &str,
    sha256: &str,
    fetch: impl FnOnce(&Path) -> Result<()>,
) -> Result<std::result::Result<PathBuf, String>> {
    let dir = ctx.cache.root.join("source-files").join(sha256);
    let path = dir.join(name);
    if path.is_file() && sha256_file(&path)? == sha256 {
        return Ok(Ok(path));
    }
    let tmp = ctx.cache.temp_dir("source-file")?;
    let out = tmp.path().join(name);
    if let Err(e) = fetch(&out) {
        return Ok(Err(format!("{e:#}")));
    }
    let got = sha256_file(&out)?;
    if got != sha256 {
        return Ok(Err(format!(
            "sha256 {got}, the archive's index says {sha256}"
        )));
    }
    fs::create_dir_all(dir.parent().expect("a parent"))?;
    if dir.exists() {
        crate::support::fsutil::remove_all(&dir)?;
    }
    if let Err((_, e)) = tmp.persist(&dir) {
        if !path.is_file() {
            return Err(e).with_context(|| format!("cannot keep {} in the cache", path.display()));
        }
    }
    Ok(Ok(path))
}

fn append_file(
    tar: &mut tar::Builder<fs::File>,
    name: &str,
    path: &Path,
    epoch: i64,
) -> Result<()> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = header(f.metadata()?.len(), epoch);
    tar.append_data(&mut h, name, &mut f)?;
    Ok(())
}

fn append_bytes(
    tar: &mut tar::Builder<fs::File>,
    name: &str,
    data: &[u8],
    epoch: i64,
) -> Result<()> {
    let mut h = header(data.len() as u64, epoch);
    tar.append_data(&mut h, name, data)?;
    Ok(())
}

fn header(size: u64, epoch: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch as u64);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

impl cli::SourceJob {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, RELEASE_STAGES, &[Tools::Source])?;
        let profile = ctx.profile(self.profile);
        let r = pipeline::release(ctx, &profile)?;
        let dir = ctx.dist_dir();
        fs::create_dir_all(&dir)?;
        let names = tarballs::names(ctx, &profile);
        let written = write_source(ctx, &r, &names, &dir, self.allow_incomplete)?;
        if let Some(why) = &written.not_listed {
            eprintln!("note: {why}");
        }
        if !written.complete {
            eprintln!(
                "warning: {} is incomplete: {} files of shipped source packages were not served (listed in its MISSING); not fit for a release",
                ui::display_path(&written.path),
                written.missing.len()
            );
        }
        Ok(())
    }
}

/// The source archive (one stage line).
pub fn write_source(
    ctx: &Ctx,
    r: &pipeline::Release,
    names: &tarballs::Names,
    dir: &Path,
    allow_incomplete: bool,
) -> Result<Written> {
    ui::stage(
        &ctx.logs(),
        "source",
        format!("the corresponding source into {}/", ui::display_path(dir)),
        |s| {
            let w = write(ctx, s, r, names, dir, allow_incomplete)?;
            let name = w
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let size = fs::metadata(&w.path)?.len();
            let detail = format!(
                "{name}, {}: {} source packages, {} files{}",
                ui::fmt_size(size),
                w.packages,
                w.files,
                if w.complete {
                    String::new()
                } else {
                    format!(", {} missing", w.missing.len())
                }
            );
            Ok((w, Outcome::Built, detail))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_package_names_its_source_and_version() {
        assert_eq!(
            source_of("bash", "5.2.15-2+b7", Some("bash (5.2.15-2)")),
            ("bash".into(), "5.2.15-2".into())
        );
        assert_eq!(
            source_of("libz", "1:1.2.13.dfsg-1", Some("zlib")),
            ("zlib".into(), "1:1.2.13.dfsg-1".into())
        );
        assert_eq!(
            source_of("libx", "1.0-1+b2", Some("x")),
            ("x".into(), "1.0-1".into())
        );
        assert_eq!(
            source_of("grep", "3.8-5", None),
            ("grep".into(), "3.8-5".into())
        );
        assert_eq!(
            source_of("grep", "3.8-5", Some("")),
            ("grep".into(), "3.8-5".into())
        );
        assert_eq!(finnix_contract::dpkg::binnmu_free("1.0+bzr5"), "1.0+bzr5");
    }

    #[test]
    fn built_using_names_exact_source_versions() {
        assert_eq!(
            parse_built_using("glibc (= 2.36-9+deb12u14), linux (= 6.1.192-2)"),
            vec![
                ("glibc".to_string(), "2.36-9+deb12u14".to_string()),
                ("linux".to_string(), "6.1.192-2".to_string())
            ]
        );
        assert!(parse_built_using("").is_empty());
    }

    #[test]
    fn the_signed_kernel_brings_the_linux_source() {
        let mut w = Wanted::default();
        w.add(
            "linux-image-6.1.0-56-amd64",
            "6.1.192-2",
            Some("linux-signed-amd64 (6.1.192+2)"),
            Some("linux (= 6.1.192-2)"),
            " (metal-kernel)",
        );
        assert!(w
            .sources
            .contains(&("linux-signed-amd64".into(), "6.1.192+2".into())));
        assert!(w.sources.contains(&("linux".into(), "6.1.192-2".into())));
        assert!(w.lines.contains(
            "linux-image-6.1.0-56-amd64 6.1.192-2 <- linux 6.1.192-2 (built using) (metal-kernel)"
        ));
    }

    #[test]
    fn status_paragraphs_of_installed_packages_count() {
        let status = "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\nSource: bash (5.2.15-2)\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: slang\nStatus: install ok installed\nVersion: 2.3.3-3\nBuilt-Using: unicode-data (= 15.0.0-1)\n";
        let mut w = Wanted::default();
        w.add_status(status);
        let got: Vec<_> = w.sources.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(
            got,
            ["bash=5.2.15-2", "slang=2.3.3-3", "unicode-data=15.0.0-1"]
        );
    }

    #[test]
    fn print_uris_lines_are_read() {
        let text = "Reading package lists...\nNeed to get 1132 kB of source archives.\n\
                    'http://deb.debian.org/debian-security/pool/updates/main/z/zip/zip_3.0-13%2bdeb12u1.dsc' zip_3.0-13+deb12u1.dsc 1716 SHA256:6edc94652c25b951e94f1c9a55daa69d35fae621dfe7b0e1aa8d3e5a0451a4de\n";
        let f = parse_print_uris(text).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "zip_3.0-13+deb12u1.dsc");
        assert_eq!(f[0].size, 1716);
        assert!(f[0].url.ends_with("%2bdeb12u1.dsc"));
        assert!(parse_print_uris("'http://x/a' a 1 MD5Sum:abc\n").is_err());
    }

    #[test]
    fn missing_round_trips() {
        let m = vec![Missing {
            package: "zip".into(),
            version: "3.0-13+deb12u1".into(),
            file: "zip_3.0.orig.tar.gz".into(),
            url: "http://x/zip_3.0.orig.tar.gz".into(),
            reason: "HTTP 404".into(),
        }];
        assert_eq!(parse_missing(&render_missing(&m)), m);
    }
}
