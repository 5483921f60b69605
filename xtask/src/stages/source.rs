//! `cargo xtask source`: `finnix-<version>-source.tar`, the corresponding
//! source of a release (what the GPL asks of whoever ships the binaries):
//!
//! - `repository.tar`: this repository at the release's commit (`git
//!   archive`): the build system, our kernel patches and configs, the
//!   programs of the live system;
//! - `kernel/<tarball>`: the kernel source tarball exactly as fetched (its
//!   sha256 is the one pinned in finnix.lock);
//! - `debian/`: the Debian source packages (`.dsc` and the files it names,
//!   by `apt-get source --download-only`) of everything shipped at the exact
//!   versions in the release: the root filesystem's packages (by their
//!   `Source:`), busybox, syslinux and the signed kernel, shim and GRUB;
//! - `SOURCES`: which source package each shipped binary package came from.
//!
//! Deterministic: entries sorted, owner 0, dates SOURCE_DATE_EPOCH.

use fs_err as fs;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::support::context::{package_version, Ctx};
use crate::support::ui::Stage;

/// (source package, version) from a binary package's `Source:` field (or
/// none: the source is named like the package) and its own version.
pub fn source_of(name: &str, version: &str, source_field: Option<&str>) -> (String, String) {
    match source_field.map(str::trim).filter(|s| !s.is_empty()) {
        None => (name.to_string(), version.to_string()),
        Some(s) => match s.split_once(' ') {
            Some((n, v)) => (
                n.to_string(),
                v.trim_matches(|c| c == '(' || c == ')').to_string(),
            ),
            None => (s.to_string(), binnmu_free(version)),
        },
    }
}

/// A binary-only rebuild's version (`1.2-3+b1`) is its source's plus
/// `+bN`; without a `Source:` version the source has the version less that.
pub fn binnmu_free(version: &str) -> String {
    match version.rfind("+b") {
        Some(i)
            if version[i + 2..].chars().all(|c| c.is_ascii_digit()) && i + 2 < version.len() =>
        {
            version[..i].to_string()
        }
        _ => version.to_string(),
    }
}

fn append_file(
    tar: &mut tar::Builder<fs::File>,
    name: &str,
    path: &Path,
    epoch: i64,
) -> Result<()> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = tar::Header::new_gnu();
    h.set_size(f.metadata()?.len());
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch as u64);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, &mut f)?;
    Ok(())
}

/// Write the source archive of `release` as `dest`.
pub fn write(
    ctx: &Ctx,
    s: &Stage,
    release: &crate::pipeline::Release,
    dest: &Path,
) -> Result<String> {
    let work = ctx.cache.temp_dir("source")?;
    let w = work.path();
    let profile = crate::support::config::Profile::load(&ctx.root, &release.live.profile)?;

    // 1. This repository at HEAD.
    let repo = w.join("repository.tar");
    s.run(
        crate::cmd!(
            "git",
            "archive",
            "--format=tar",
            "--mtime",
            ctx.epoch.global.to_string(),
            "-o",
            &repo,
            "HEAD"
        )
        .dir(&ctx.root),
    )?;

    // 2. The kernel source tarball, as fetched.
    let lock = crate::support::lock::Lock::read(&ctx.lock_path())?;
    let ks = lock
        .kernel_source
        .context("finnix.lock names no kernel source")?;
    let kernel_dir = w.join("kernel");
    fs::create_dir_all(&kernel_dir)?;
    let (kernel_name, kernel_file) = if ks.source == "debian" {
        let deb = crate::stages::kernel::source::apt_download(
            s,
            &format!("{}={}", ks.origin, ks.package_version),
            &kernel_dir,
        )?;
        let name = format!("{}.tar.xz", ks.origin);
        let out = kernel_dir.join(&name);
        let sha =
            crate::stages::kernel::source::extract_tarball(&deb, &format!("usr/src/{name}"), &out)?;
        fs::remove_file(&deb)?;
        if sha != ks.sha256 {
            bail!(
                "the kernel source fetched again (sha256 {sha}) is not the one in finnix.lock ({})",
                ks.sha256
            );
        }
        (name, out)
    } else {
        let name = ks
            .origin
            .rsplit('/')
            .next()
            .unwrap_or("linux.tar.xz")
            .to_string();
        let out = kernel_dir.join(&name);
        s.run(crate::cmd!("curl", "-fsSL", "-o", &out, &ks.origin))?;
        let sha = crate::support::cache::sha256_file(&out)?;
        if sha != ks.sha256 {
            bail!(
                "{} has sha256 {sha}, finnix.lock says {}",
                ks.origin,
                ks.sha256
            );
        }
        (name, out)
    };

    // 3. Debian source packages.
    let status = fs::read_to_string(release.live.rootfs.tree().join("var/lib/dpkg/status"))
        .unwrap_or_default();
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    let mut lines: Vec<String> = Vec::new();
    for para in status.split("\n\n") {
        let field = |f: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(&format!("{f}: ")))
                .map(str::to_string)
        };
        let (Some(name), Some(version), Some(st)) =
            (field("Package"), field("Version"), field("Status"))
        else {
            continue;
        };
        if !st.ends_with(" installed") {
            continue;
        }
        let src = source_of(&name, &version, field("Source").as_deref());
        lines.push(format!("{name} {version} <- {} {}", src.0, src.1));
        wanted.insert(src);
    }
    let host = |pkg: &str, src: &str| (src.to_string(), binnmu_free(&package_version(pkg)));
    for (pkg, src) in [("busybox-static", "busybox"), ("isolinux", "syslinux")] {
        let s2 = host(pkg, src);
        lines.push(format!(
            "{pkg} {} <- {} {} (the initramfs, the BIOS boot loader)",
            package_version(pkg),
            s2.0,
            s2.1
        ));
        wanted.insert(s2);
    }
    for (role, deb) in &lock.debian_package {
        let cached = walkdir::WalkDir::new(ctx.cache.root.join(format!("debs-{role}")))
            .into_iter()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy() == format!("{}.deb", deb.package))
            .map(|e| e.into_path());
        let field = cached
            .as_ref()
            .and_then(|p| crate::cmd!("dpkg-deb", "-f", p, "Source").output().ok());
        let src = source_of(&deb.package, &deb.version, field.as_deref());
        lines.push(format!(
            "{} {} <- {} {} ({role})",
            deb.package, deb.version, src.0, src.1
        ));
        wanted.insert(src);
    }
    // deb-src lines of the archive the packages came from (a snapshot's
    // when the profile names one), with the firmware component.
    let mut archive = profile.clone();
    if archive.mirror.is_none() {
        archive.mirror = Some("http://deb.debian.org/debian".into());
        archive.suite = Some("bookworm".into());
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
    let debian = w.join("debian");
    fs::create_dir_all(&debian)?;
    let mut missing = Vec::new();
    for (src, ver) in &wanted {
        let spec = format!("{src}={ver}");
        let r = s.run(
            apt.apt_get(["source", "--download-only", spec.as_str()])
                .dir(&debian),
        );
        if r.is_err() {
            missing.push(format!("{src} {ver}"));
        }
    }
    if !missing.is_empty() {
        bail!(
            "apt-get source could not fetch these source packages at the shipped versions: {} (the log shows each error; a 404 means the archive no longer serves that version: snapshot.debian.org keeps every version)",
            missing.join(", ")
        );
    }
    lines.sort();
    lines.dedup();
    let sources_txt = w.join("SOURCES");
    fs::write(&sources_txt, lines.join("\n") + "\n")?;

    // 4. The archive, sorted, dated by the epoch.
    let top = dest
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar"))
        .unwrap_or("finnix-source")
        .to_string();
    let tmp = dest.with_extension("tar.partial");
    {
        let file = fs::File::create(&tmp)?;
        let mut tar = tar::Builder::new(file);
        let epoch = ctx.epoch.global;
        append_file(&mut tar, &format!("{top}/SOURCES"), &sources_txt, epoch)?;
        append_file(
            &mut tar,
            &format!("{top}/kernel/{kernel_name}"),
            &kernel_file,
            epoch,
        )?;
        append_file(&mut tar, &format!("{top}/repository.tar"), &repo, epoch)?;
        let mut files: Vec<PathBuf> = fs::read_dir(&debian)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in &files {
            let name = f
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            append_file(&mut tar, &format!("{top}/debian/{name}"), f, epoch)?;
        }
        let mut file = tar.into_inner()?;
        file.flush()?;
    }
    fs::rename(&tmp, dest)?;
    Ok(format!(
        "{} source packages, {} files",
        wanted.len(),
        fs::read_dir(&debian)?.count()
    ))
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
        assert_eq!(binnmu_free("1.0+bzr5"), "1.0+bzr5");
    }
}
