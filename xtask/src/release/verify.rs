//! `cargo xtask verify-release DIR`: what a distribution's user checks of a
//! published release, each step with the tool made for it, stopping at the
//! first culprit:
//!
//! 1. the SSH signature of SHA256SUMS (`ssh-keygen -Y verify`, namespace
//!    `file`, identity `release@finnix`) against `keys/allowed_signers`;
//! 2. the OpenPGP signature (`gpgv`) against `keys/release.asc`;
//! 3. every checksum in SHA256SUMS (each file present, its sha256 equal);
//! 4. the manifest's own list of artifacts (name, size, sha256) against the
//!    files;
//! 5. with `--rebuild`, `verify-repro --against DIR`: the same bytes again
//!    (run by the command line after this, from checks/).

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli;
use crate::release::checksums::{parse_sha256sums, Hashed, Manifest};
use crate::release::sign::{
    ALLOWED_SIGNERS, KEYS_DIR, OPENPGP_KEY, OPENPGP_SIG, SSH_IDENTITY, SSH_NAMESPACE, SSH_SIG, SUMS,
};
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::prereq::{self, Tools};
use crate::support::ui::{self, Outcome};

/// What to trust.
#[derive(Debug, Clone)]
pub struct Trust {
    pub allowed_signers: PathBuf,
    pub openpgp_key: PathBuf,
}

/// Compare SHA256SUMS's lines with what the files hash to (`actual`: None
/// when the file is missing). The problems, each naming its file.
pub fn compare_sums(
    listed: &[(String, String)],
    actual: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, want) in listed {
        match actual(name) {
            None => problems.push(format!("{name}: listed in {SUMS} but missing")),
            Some(got) if &got != want => problems.push(format!(
                "{name}: sha256 {got}, but {SUMS} says {want} (the file was changed or damaged)"
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The manifest's artifacts against SHA256SUMS and the files' sizes (every
/// artifact has one: [`Manifest::parse`] refuses a manifest without).
pub fn compare_manifest(
    artifacts: &[Hashed],
    sums: &[(String, String)],
    size_of: &dyn Fn(&str) -> Option<u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for a in artifacts {
        match sums.iter().find(|(n, _)| n == &a.name) {
            None => problems.push(format!("{}: in the manifest but not in {SUMS}", a.name)),
            Some((_, sha)) if sha != &a.sha256 => problems.push(format!(
                "{}: the manifest says sha256 {}, {SUMS} says {sha}",
                a.name, a.sha256
            )),
            Some(_) => {}
        }
        match (a.size, size_of(&a.name)) {
            (Some(want), Some(got)) if want != got => {
                problems.push(format!("{}: {got} bytes, the manifest says {want}", a.name))
            }
            (None, _) => problems.push(format!("{}: the manifest gives no size", a.name)),
            _ => {}
        }
    }
    for (name, _) in sums {
        if !name.ends_with(".manifest.json")
            && !crate::stages::tarballs::is_source_archive(name)
            && !artifacts.iter().any(|a| &a.name == name)
        {
            problems.push(format!("{name}: in {SUMS} but not in the manifest"));
        }
    }
    problems
}

/// Files of the release directory that SHA256SUMS does not list (and so no
/// signature covers): everything but SHA256SUMS, its two signatures and a
/// version control placeholder (dist/.gitkeep).
pub fn unlisted(names_in_dir: &[String], listed: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = names_in_dir
        .iter()
        .filter(|n| ![SUMS, SSH_SIG, OPENPGP_SIG, ".gitkeep"].contains(&n.as_str()))
        .filter(|n| !listed.iter().any(|(l, _)| l == *n))
        .cloned()
        .collect();
    out.sort();
    out
}

/// What gpgv printed of a good signature: its own lines ("Signature made
/// ...", "Good signature from ..."), or an error when it said no such thing.
pub fn gpgv_report(output: &str) -> Result<String, String> {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.iter().any(|l| l.contains("Good signature")) {
        return Err(format!(
            "gpgv exited 0 but printed no \"Good signature\" line:\n{}",
            lines.join("\n")
        ));
    }
    Ok(lines.join("; "))
}

/// Every check but the rebuild; the lines of a report.
pub fn verify(dir: &Path, trust: &Trust, tmp: &Path) -> Result<Vec<String>> {
    let sums_path = dir.join(SUMS);
    if !sums_path.is_file() {
        bail!(
            "{} is missing: not a Finnix release directory",
            sums_path.display()
        );
    }
    for (file, what) in [
        (SSH_SIG, "the SSH signature"),
        (OPENPGP_SIG, "the OpenPGP signature"),
    ] {
        if !dir.join(file).is_file() {
            bail!(
                "{what} {} is missing: the release is unsigned (cargo xtask sign)",
                dir.join(file).display()
            );
        }
    }
    for key in [&trust.allowed_signers, &trust.openpgp_key] {
        if !key.is_file() {
            bail!(
                "the trusted key file {} is missing: name the release's public keys with --allowed-signers and --openpgp-key (a maintainer makes and commits them with `cargo xtask keygen`; keys/README.md)",
                key.display()
            );
        }
    }
    let sums = fs::read(&sums_path)?;
    let mut report = signatures(dir, trust, tmp, &sums)?;
    let listed = parse_sha256sums(&String::from_utf8_lossy(&sums))
        .map_err(|e| anyhow::anyhow!("{}: {e}", sums_path.display()))?;
    report.extend(checksums(dir, &listed)?);
    report.push(manifest(dir, &listed)?);
    Ok(report)
}

/// 1 and 2: the SSH signature, then the OpenPGP one (the armored public
/// key as gpgv's keyring).
fn signatures(dir: &Path, trust: &Trust, tmp: &Path, sums: &[u8]) -> Result<Vec<String>> {
    let out = crate::cmd!(
        "ssh-keygen",
        "-Y",
        "verify",
        "-f",
        &trust.allowed_signers,
        "-I",
        SSH_IDENTITY,
        "-n",
        SSH_NAMESPACE,
        "-s",
        dir.join(SSH_SIG)
    )
    .stdin_bytes(sums.to_vec())
    .output()
    .with_context(|| {
        format!(
            "{SSH_SIG} is not a good signature of {SUMS} by {SSH_IDENTITY} in {}",
            trust.allowed_signers.display()
        )
    })?;
    let mut report = vec![format!("{SSH_SIG}: {}", out.trim())];
    let keyring = tmp.join("release.gpg");
    let dearmored = crate::cmd!("gpg", "--batch", "--dearmor")
        .stdin_bytes(fs::read(&trust.openpgp_key)?)
        .expr()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()?;
    if !dearmored.status.success() || dearmored.stdout.is_empty() {
        bail!(
            "{} is not an armored OpenPGP public key",
            trust.openpgp_key.display()
        );
    }
    fs::write(&keyring, &dearmored.stdout)?;
    let out = crate::cmd!(
        "gpgv",
        "--keyring",
        &keyring,
        dir.join(OPENPGP_SIG),
        dir.join(SUMS)
    )
    .output()
    .with_context(|| {
        format!(
            "{OPENPGP_SIG} is not a good signature of {SUMS} by the key in {}",
            trust.openpgp_key.display()
        )
    })?;
    let good = gpgv_report(&out).map_err(|e| anyhow::anyhow!("{OPENPGP_SIG}: {e}"))?;
    report.push(format!("{OPENPGP_SIG}: {good}"));
    Ok(report)
}

/// 3: every checksum, and nothing in the directory that SHA256SUMS (and so
/// the signatures) does not cover.
fn checksums(dir: &Path, listed: &[(String, String)]) -> Result<Vec<String>> {
    let problems = compare_sums(listed, &|name| {
        let p = dir.join(name);
        p.is_file().then(|| sha256_file(&p).ok()).flatten()
    });
    if !problems.is_empty() {
        bail!("checksums do not hold:\n  {}", problems.join("\n  "));
    }
    let in_dir: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let extra = unlisted(&in_dir, listed);
    if !extra.is_empty() {
        bail!(
            "{} in {} but not listed in {SUMS}, so not covered by the signatures: remove it, or it is not part of this release",
            extra.join(", "),
            dir.display()
        );
    }
    Ok(vec![
        format!("{SUMS}: {} files, every sha256 equal", listed.len()),
        format!("{}: nothing that {SUMS} does not list", dir.display()),
    ])
}

/// 4: the manifest's artifacts against SHA256SUMS and the files.
fn manifest(dir: &Path, listed: &[(String, String)]) -> Result<String> {
    let manifest = listed
        .iter()
        .find(|(n, _)| n.ends_with(".manifest.json"))
        .map(|(n, _)| n.clone())
        .context("SHA256SUMS lists no manifest (*.manifest.json)")?;
    let artifacts = Manifest::read(&dir.join(&manifest))
        .with_context(|| format!("{manifest} is not a Finnix release manifest"))?
        .artifacts;
    let problems = compare_manifest(&artifacts, listed, &|name| {
        fs::metadata(dir.join(name)).ok().map(|m| m.len())
    });
    if !problems.is_empty() {
        bail!(
            "{manifest} does not match the files:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(format!(
        "{manifest}: {} artifacts, names, sizes and sha256 match",
        artifacts.len()
    ))
}

impl cli::VerifyRelease {
    /// Every check but `--rebuild` (the command line runs verify-repro after).
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        let trust = Trust {
            allowed_signers: self
                .allowed_signers
                .clone()
                .unwrap_or_else(|| ctx.root.join(KEYS_DIR).join(ALLOWED_SIGNERS)),
            openpgp_key: self
                .openpgp_key
                .clone()
                .unwrap_or_else(|| ctx.root.join(KEYS_DIR).join(OPENPGP_KEY)),
        };
        let report = ui::stage(
            &ctx.logs(),
            "verify-release",
            format!(
                "signatures, checksums and manifest of {}",
                ui::display_path(&self.dir)
            ),
            |s| {
                let tmp = ctx.cache.temp_dir("verify-release")?;
                let report = verify(&self.dir, &trust, tmp.path())?;
                for line in &report {
                    s.note(line);
                }
                Ok((report, Outcome::Passed, String::new()))
            },
        )?;
        for line in report {
            println!("ok: {line}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums() -> Vec<(String, String)> {
        vec![
            ("a.iso".into(), "1".repeat(64)),
            ("b.tar.gz".into(), "2".repeat(64)),
            ("f.manifest.json".into(), "3".repeat(64)),
        ]
    }

    #[test]
    fn checksum_problems_name_the_file() {
        let s = sums();
        let ok = |n: &str| s.iter().find(|(m, _)| m == n).map(|(_, h)| h.clone());
        assert!(compare_sums(&s, &ok).is_empty());
        let flipped = |n: &str| {
            if n == "a.iso" {
                Some("9".repeat(64))
            } else {
                ok(n)
            }
        };
        let p = compare_sums(&s, &flipped);
        assert!(
            p.len() == 1 && p[0].starts_with("a.iso: sha256 999"),
            "{p:?}"
        );
        let missing = |n: &str| if n == "b.tar.gz" { None } else { ok(n) };
        assert_eq!(
            compare_sums(&s, &missing),
            ["b.tar.gz: listed in SHA256SUMS but missing"]
        );
    }

    #[test]
    fn the_manifest_must_list_what_sha256sums_lists() {
        let s = sums();
        let arts = vec![
            Hashed {
                name: "a.iso".into(),
                size: Some(10),
                sha256: "1".repeat(64),
            },
            Hashed {
                name: "b.tar.gz".into(),
                size: Some(5),
                sha256: "2".repeat(64),
            },
        ];
        let size = |n: &str| Some(if n == "a.iso" { 10 } else { 5 });
        assert!(compare_manifest(&arts, &s, &size).is_empty());
        let p = compare_manifest(&arts[..1], &s, &size);
        assert_eq!(p, ["b.tar.gz: in SHA256SUMS but not in the manifest"]);
        let bigger = |_: &str| Some(11);
        assert!(compare_manifest(&arts[..1], &s[..1], &bigger)[0].contains("11 bytes"));
        // The source archive is added to SHA256SUMS after the manifest.
        let mut with_source = s.clone();
        with_source.push(("f-1-source.tar".into(), "4".repeat(64)));
        assert!(compare_manifest(&arts, &with_source, &size).is_empty());
        let mut no_size = arts.clone();
        no_size[0].size = None;
        assert!(compare_manifest(&no_size, &s, &size)[0].contains("no size"));
    }

    #[test]
    fn files_no_signature_covers_are_named() {
        let s = sums();
        let dir: Vec<String> = [
            "a.iso",
            "b.tar.gz",
            "f.manifest.json",
            "SHA256SUMS",
            "SHA256SUMS.sig",
            "SHA256SUMS.asc",
            ".gitkeep",
            "second.iso",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(unlisted(&dir, &s), ["second.iso"]);
    }

    #[test]
    fn gpgv_is_reported_as_it_spoke() {
        let out = "gpgv: Signature made Mon Dec  1 00:00:00 2026 UTC\ngpgv:                using EDDSA key ABC\ngpgv: Good signature from \"Finnix release <release@finnix>\"\n";
        let r = gpgv_report(out).unwrap();
        assert!(
            r.contains("Signature made") && r.contains("Good signature from"),
            "{r}"
        );
        assert!(gpgv_report("gpgv: Signature made\n")
            .unwrap_err()
            .contains("no \"Good signature\""));
    }
}
