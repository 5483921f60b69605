//! `cargo xtask check-source`: the source archive of the mini release,
//! written as `cargo xtask source` writes it and read back with tar,
//! sha256sum, git, curl and dpkg-source:
//!
//! 1. without `--allow-incomplete`, a run that cannot fetch every file fails
//!    naming each package, and leaves nothing in the release directory;
//! 2. with it, the archive names each shipped binary package's source and
//!    Built-Using sources (`SOURCES`), holds the kernel tarball with the
//!    lock's sha256, `repository.tar` equal to `git archive` of HEAD, and
//!    every `.dsc` with each file it names at its sha256 (`sha256sum -c`)
//!    unless `MISSING` lists that file; each `MISSING` line a real gap (a
//!    file a .dsc names, absent, its pool URL, the HTTP answer), and
//!    busybox's source unpacks (`dpkg-source -x`);
//! 3. SHA256SUMS lists the archive (`sha256sum -c`), and the same archive is
//!    written again byte for byte.

use fs_err as fs;
use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::release::source::parse_missing;
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome};

/// The files a `.dsc` names: (sha256, name) of `Checksums-Sha256:`.
pub fn dsc_files(dsc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in dsc.lines() {
        if line.starts_with("Checksums-Sha256:") {
            inside = true;
            continue;
        }
        if inside {
            match line.strip_prefix(' ') {
                Some(entry) => {
                    let f: Vec<&str> = entry.split_whitespace().collect();
                    if f.len() == 3 {
                        out.push((f[0].to_string(), f[2].to_string()));
                    }
                }
                None => inside = false,
            }
        }
    }
    out
}

/// Returns the release directory it wrote (the mini release with its
/// source archive listed in SHA256SUMS), which check-verify-release then
/// tampers with.
pub fn check(ctx: &Ctx) -> Result<std::path::PathBuf> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Source], &ctx.logs())?;
    let release = crate::pipeline::release(ctx, "mini")?;
    let names = crate::stages::tarballs::names(ctx, "mini");
    let work = ctx.cache.temp_dir("check-source")?;
    let w = work.path();
    // A release directory of its own: the source is added to its SHA256SUMS.
    let dir = ctx.cache.root.join("test-source-dist");
    crate::support::fsutil::remove_all(&dir)?;
    crate::release::dist::dist(ctx, "mini", &dir)?;

    // 1. Without --allow-incomplete.
    let strict = ui::stage(
        &ctx.logs(),
        "check-source-strict",
        "cargo xtask source (mini) without --allow-incomplete",
        |s| {
            let r = crate::release::source::write(ctx, s, &release, &names, &dir, false);
            let detail = judge_strict(&r, &dir)?;
            Ok((r.ok().map(|w| w.path), Outcome::Passed, detail))
        },
    )?;

    // 2. With it (or the complete archive of step 1), read back.
    ui::stage(
        &ctx.logs(),
        "check-source",
        "the source archive (mini) read back with tar, sha256sum, git, curl, dpkg-source",
        |s| {
            let written = match strict {
                Some(path) => path,
                None => crate::release::source::write(ctx, s, &release, &names, &dir, true)?.path,
            };
            let file = written
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            let top = file.trim_end_matches(".tar").to_string();
            let x = w.join("x");
            fs::create_dir_all(&x)?;
            s.run(crate::cmd!("tar", "-xf", &written, "-C", &x))?;
            let root = x.join(&top);

            sources_kernel_repository(ctx, s, &root)?;

            let (dscs, missing) = debian_sources(s, w, &root, &file)?;

            // SHA256SUMS lists it; the same bytes again.
            s.run(crate::cmd!("sha256sum", "--check", "--strict", "SHA256SUMS").dir(&dir))?;
            let listed = fs::read_to_string(dir.join("SHA256SUMS"))?;
            ensure!(
                listed.contains(&format!("  {file}\n")),
                "SHA256SUMS does not list {file}"
            );
            let first = sha256_file(&written)?;
            let again = crate::release::source::write(ctx, s, &release, &names, &dir, true)?;
            let second = sha256_file(&again.path)?;
            ensure!(
                first == second,
                "the source archive differs when written again ({first} then {second})"
            );
            Ok((
                (),
                Outcome::Passed,
                format!(
                    "{file}: {} .dsc, {} files missing here, same bytes twice",
                    dscs, missing
                ),
            ))
        },
    )?;
    Ok(dir)
}

/// A run without --allow-incomplete: the complete archive, or a refusal
/// that says why and leaves nothing in the release directory.
fn judge_strict(r: &Result<crate::release::source::Written>, dir: &Path) -> Result<String> {
    let left: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("source"))
        .collect();
    let detail = match r {
        Ok(w) => {
            ensure!(
                w.complete && w.missing.is_empty(),
                "an incomplete archive was written without --allow-incomplete"
            );
            "every file came: the complete archive".to_string()
        }
        Err(e) => {
            ensure!(
                left.is_empty(),
                "the failed run left {left:?} in the release directory"
            );
            let msg = format!("{e:#}");
            ensure!(
                msg.contains("Nothing was written") && msg.contains("source packages shipped"),
                "the failure does not say what happened: {msg}"
            );
            format!(
                "refused, nothing written: {}",
                msg.chars().take(160).collect::<String>()
            )
        }
    };
    Ok(detail)
}

/// SOURCES names each shipped package outside the root filesystem with
/// what it was built using; the kernel tarball is as pinned; the
/// repository is as `git archive` makes it.
fn sources_kernel_repository(ctx: &Ctx, s: &mut ui::Stage, root: &Path) -> Result<()> {
    // SOURCES: each shipped package outside the root filesystem,
    // with what it was built using.
    let sources = fs::read_to_string(root.join("SOURCES"))?;
    let lock = crate::support::lock::Lock::read(&ctx.lock_path())?;
    let mut expect: Vec<String> = vec![
        "busybox-static ".into(),
        "isolinux ".into(),
        "<- glibc ".into(),
        "<- syslinux ".into(),
        "<- linux ".into(),
        "<- grub2 ".into(),
        "<- shim ".into(),
    ];
    expect.extend(
        lock.shipped_debs()
            .values()
            .map(|d| format!("{} {} <- ", d.package, d.version)),
    );
    for e in &expect {
        ensure!(
            sources.contains(e.as_str()),
            "SOURCES has no line with {e:?}:\n{sources}"
        );
    }

    // The kernel tarball as pinned; the repository as git archives it.
    let ks = lock
        .kernel_source
        .context("finnix.lock names no kernel source")?;
    let kernel = fs::read_dir(root.join("kernel"))?
        .next()
        .context("no kernel tarball")??
        .path();
    let sha = s.read(crate::cmd!("sha256sum", &kernel))?;
    ensure!(
        sha.starts_with(&ks.sha256),
        "{}: sha256sum says {sha}, finnix.lock {}",
        kernel.display(),
        ks.sha256
    );
    let git = s.read_bytes(crate::release::source::repository_archive(ctx))?;
    ensure!(
        fs::read(root.join("repository.tar"))? == git,
        "repository.tar differs from `git archive HEAD`"
    );
    Ok(())
}

/// Every .dsc of debian/ whole, or its gaps in MISSING; each MISSING line a
/// real gap; dpkg-source unpacks busybox. The .dsc count and the gaps.
fn debian_sources(s: &mut ui::Stage, w: &Path, root: &Path, file: &str) -> Result<(usize, usize)> {
    // Every .dsc whole, or its gaps in MISSING; MISSING files absent
    // and really not served here.
    let missing = match fs::read_to_string(root.join("MISSING")) {
        Ok(t) => parse_missing(&t),
        Err(_) => Vec::new(),
    };
    ensure!(
        file.ends_with("-source-incomplete.tar") != missing.is_empty(),
        "{file}: the name and the MISSING list disagree"
    );
    let gaps: BTreeSet<&str> = missing.iter().map(|m| m.file.as_str()).collect();
    let debian = root.join("debian");
    let mut dscs = 0;
    for entry in fs::read_dir(&debian)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "dsc") {
            dscs += 1;
            let listed: Vec<(String, String)> = dsc_files(&fs::read_to_string(&p)?)
                .into_iter()
                .filter(|(_, n)| !gaps.contains(n.as_str()))
                .collect();
            for (_, n) in &listed {
                ensure!(
                    debian.join(n).is_file(),
                    "{}: names {n}, which is neither in debian/ nor in MISSING",
                    p.display()
                );
            }
            if listed.is_empty() {
                continue; // every file of it is in MISSING
            }
            let list: String = listed.iter().map(|(h, n)| format!("{h}  {n}\n")).collect();
            let check = w.join("dsc.sha256");
            fs::write(&check, list)?;
            s.run(crate::cmd!("sha256sum", "--check", "--strict", &check).dir(&debian))?;
        }
    }
    // Each MISSING line must be a real gap, accounted for: absent
    // from debian/; a file that a .dsc in the archive names, or a
    // .dsc itself (of the package and version the line gives); its
    // URL the archive's pool path of that very file; the answer
    // curl got (an HTTP status). (Asking the URLs again proves
    // nothing on a machine that cannot reach them.)
    let named: BTreeSet<String> = fs::read_dir(&debian)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "dsc"))
        .filter_map(|p| fs::read_to_string(&p).ok())
        .flat_map(|t| dsc_files(&t).into_iter().map(|(_, n)| n))
        .collect();
    let unserved: BTreeSet<String> = missing
        .iter()
        .filter(|m| m.file.ends_with(".dsc"))
        .map(|m| m.file.clone())
        .collect();
    for m in &missing {
        missing_line_holds(m, &named, &unserved, &debian).map_err(anyhow::Error::msg)?;
    }
    let busybox = fs::read_dir(&debian)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("busybox_") && n.to_string_lossy().ends_with(".dsc")
            })
        })
        .context("no busybox .dsc in the archive")?;
    s.run(crate::cmd!(
        "dpkg-source",
        "--no-check",
        "-x",
        &busybox,
        w.join("busybox-src")
    ))?;
    ensure!(
        w.join("busybox-src/debian/control").is_file() && w.join("busybox-src/Makefile").is_file(),
        "dpkg-source -x of busybox gave no source tree"
    );
    Ok((dscs, missing.len()))
}

/// A MISSING line accounts for a real gap of the archive: see [`check`].
/// `named_by_dscs`: the files the .dsc files in debian/ name;
/// `unserved_dscs`: the .dsc files that are MISSING lines themselves (the
/// whole source package was not served: its other files are known only
/// from the archive's Sources index, and must carry the package's name).
pub fn missing_line_holds(
    m: &crate::release::source::Missing,
    named_by_dscs: &BTreeSet<String>,
    unserved_dscs: &BTreeSet<String>,
    debian: &std::path::Path,
) -> Result<(), String> {
    let at = format!("MISSING: {} {} {:?}", m.package, m.version, m.file);
    if m.file.is_empty() {
        // No such source version in the archive at all: nothing to name.
        return if m.reason.is_empty() {
            Err(format!("{at}: no answer recorded"))
        } else {
            Ok(())
        };
    }
    if debian.join(&m.file).exists() {
        return Err(format!("{at}: the file is in debian/ after all"));
    }
    let upstream = m
        .version
        .split_once(':')
        .map(|(_, v)| v)
        .unwrap_or(&m.version);
    let own_dsc = format!("{}_{upstream}.dsc", m.package);
    let is_dsc = m.file == own_dsc;
    let package_unserved =
        unserved_dscs.contains(&own_dsc) && m.file.starts_with(&format!("{}_", m.package));
    if !is_dsc && !named_by_dscs.contains(&m.file) && !package_unserved {
        return Err(format!(
            "{at}: no .dsc in the archive names this file (nor is it the file of a source package whose .dsc was not served)"
        ));
    }
    // apt prints URLs percent-encoded (`1%2b2.06` for `1+2.06`).
    let url = percent_decoded(&m.url);
    if !url.ends_with(&format!("/{}", m.file)) || !url.contains("/pool/") {
        return Err(format!(
            "{at}: the URL {} is not the archive's pool path of the file",
            m.url
        ));
    }
    // curl's own words for an HTTP error ("The requested URL returned
    // error: 404"), or a file that came with another sha256 than the index.
    let answered = m.reason.contains("returned error:")
        || m.reason.contains("HTTP ")
        || m.reason.starts_with("sha256 ");
    if !answered {
        return Err(format!(
            "{at}: the recorded answer {:?} is no HTTP status or hash mismatch",
            m.reason
        ));
    }
    Ok(())
}

/// A URL with its `%XX` escapes decoded.
pub fn percent_decoded(url: &str) -> String {
    let b = url.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&url[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl crate::cli::CheckSource {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        check(ctx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_line_must_account_for_a_real_gap() {
        use crate::release::source::Missing;
        let named: BTreeSet<String> = ["adduser_3.134.tar.xz".to_string()].into();
        let debian = std::path::Path::new("/nonexistent-finnix-debian");
        let none = BTreeSet::new();
        let line = |file: &str, url: &str, reason: &str| Missing {
            package: "adduser".into(),
            version: "3.134".into(),
            file: file.into(),
            url: url.into(),
            reason: reason.into(),
        };
        let url = "http://deb.debian.org/debian/pool/main/a/adduser/adduser_3.134.tar.xz";
        assert_eq!(
            missing_line_holds(
                &line("adduser_3.134.tar.xz", url, "HTTP 404"),
                &named,
                &none,
                debian
            ),
            Ok(())
        );
        let dsc = "http://deb.debian.org/debian/pool/main/a/adduser/adduser_3.134.dsc";
        assert_eq!(
            missing_line_holds(
                &line(
                    "adduser_3.134.dsc",
                    dsc,
                    "curl: (22) The requested URL returned error: 404"
                ),
                &named,
                &none,
                debian
            ),
            Ok(())
        );
        // A file no .dsc names, a URL elsewhere, no answer: each refused.
        assert!(missing_line_holds(
            &line("other.tar.xz", url, "HTTP 404"),
            &named,
            &none,
            debian
        )
        .unwrap_err()
        .contains("no .dsc"));
        assert!(missing_line_holds(
            &line(
                "adduser_3.134.tar.xz",
                "http://x/adduser_3.134.tar.xz",
                "HTTP 404"
            ),
            &named,
            &none,
            debian
        )
        .unwrap_err()
        .contains("pool path"));
        assert!(missing_line_holds(
            &line("adduser_3.134.tar.xz", url, "timeout"),
            &named,
            &none,
            debian
        )
        .unwrap_err()
        .contains("HTTP status"));
        assert!(missing_line_holds(
            &line("adduser_3.134.tar.xz", url, "1 2 3"),
            &named,
            &none,
            debian
        )
        .is_err());
    }

    #[test]
    fn a_source_package_not_served_at_all_accounts_for_its_files() {
        use crate::release::source::Missing;
        let debian = std::path::Path::new("/nonexistent-finnix-debian");
        let pool = "http://deb.debian.org/debian-security/pool/updates/main/l/linux";
        let line = |package: &str, file: &str| Missing {
            package: package.into(),
            version: "6.1.192-2".into(),
            file: file.into(),
            url: format!("{pool}/{file}"),
            reason: "curl: (22) The requested URL returned error: 404".into(),
        };
        let named = BTreeSet::new();
        let unserved: BTreeSet<String> = ["linux_6.1.192-2.dsc".to_string()].into();
        assert_eq!(
            missing_line_holds(
                &line("linux", "linux_6.1.192.orig.tar.xz"),
                &named,
                &unserved,
                debian
            ),
            Ok(())
        );
        // Its .dsc served after all, or a file of another package: refused.
        assert!(missing_line_holds(
            &line("linux", "linux_6.1.192.orig.tar.xz"),
            &named,
            &BTreeSet::new(),
            debian
        )
        .is_err());
        assert!(
            missing_line_holds(&line("linux", "other_1.tar.xz"), &named, &unserved, debian)
                .is_err()
        );
    }

    #[test]
    fn a_dsc_names_its_files() {
        let dsc = "Format: 3.0 (quilt)\nChecksums-Sha1:\n 11 1 a.tar.xz\nChecksums-Sha256:\n aa 272044 adduser_3.134.tar.xz\n bb 12 adduser_3.134.debian.tar.xz\nFiles:\n cc 1 x\n";
        assert_eq!(
            dsc_files(dsc),
            vec![
                ("aa".to_string(), "adduser_3.134.tar.xz".to_string()),
                ("bb".to_string(), "adduser_3.134.debian.tar.xz".to_string())
            ]
        );
    }
}
