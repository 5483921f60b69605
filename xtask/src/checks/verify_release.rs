//! `cargo xtask check-verify-release`: a release signed with throwaway keys
//! verifies (release/verify.rs), then each tampering (a flipped byte in
//! every file, an edited SHA256SUMS, another key, a missing or an unlisted
//! file) must fail naming its culprit.

use fs_err as fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::release::checksums::parse_sha256sums;
use crate::release::sign::{OPENPGP_SIG, SSH_SIG, SUMS};
use crate::release::verify::{verify, Trust};
/// Throwaway keys made for a test: an SSH key (ed25519) with its
/// allowed_signers line, an OpenPGP key (ed25519) exported armored.
pub struct TestKeys {
    pub keys: crate::release::sign::Keys,
    pub trust: Trust,
}

pub fn make_test_keys(dir: &Path, name: &str) -> Result<TestKeys> {
    let k = crate::release::sign::make_keys(
        &dir.join(format!("{name}-private")),
        &dir.join(format!("{name}-public")),
        &format!("{name} test <{name}@finnix.invalid>"),
    )?;
    Ok(TestKeys {
        keys: k.keys,
        trust: Trust {
            allowed_signers: k.allowed_signers,
            openpgp_key: k.openpgp_public,
        },
    })
}

/// A copy of a release: SHA256SUMS, its signatures if any, and the files it
/// lists (hard links: tampering writes a new file).
fn copy_release(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    let listed = parse_sha256sums(&fs::read_to_string(from.join(SUMS))?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", from.join(SUMS).display()))?;
    let names = listed
        .into_iter()
        .map(|(n, _)| n)
        .chain([SUMS, SSH_SIG, OPENPGP_SIG].map(String::from));
    for name in names {
        let (src, dest) = (from.join(&name), to.join(&name));
        if src.is_file() && fs::hard_link(&src, &dest).is_err() {
            fs::copy(&src, &dest)?;
        }
    }
    Ok(())
}

/// `cargo xtask test`: a release signed with throwaway keys verifies; each
/// tampering fails, naming its culprit.
pub fn check_tampering(ctx: &crate::support::context::Ctx, dist: &Path) -> Result<()> {
    use crate::support::ui::{self, Outcome};
    ui::stage(
        &ctx.logs(),
        "check-verify-release",
        "sign a release with test keys, verify it, then each tampering must fail",
        |s| {
            let work = ctx.cache.temp_dir("check-verify-release")?;
            let w = work.path();
            let good = make_test_keys(w, "release")?;
            let other = make_test_keys(w, "other")?;
            let signed = w.join("signed");
            copy_release(dist, &signed)?;
            crate::release::sign::sign(s, &signed, &good.keys)?;
            let tmp = w.join("tmp");
            fs::create_dir_all(&tmp)?;
            let report = verify(&signed, &good.trust, &tmp)?;
            for l in &report {
                s.note(format!("ok: {l}"));
            }
            // sha256sum -c, the tool nobody here wrote, agrees.
            s.run(crate::cmd!("sha256sum", "-c", SUMS).dir(&signed))?;

            let listed: Vec<String> = parse_sha256sums(&fs::read_to_string(signed.join(SUMS))?)
                .map_err(anyhow::Error::msg)?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            let mut cases = flipped_bytes(s, &listed)?;
            let iso = find(&listed, ".iso")?;
            cases.extend(signature_cases(w, &other));
            cases.extend(listing_cases(&good, &iso));
            let lines = run_cases(s, w, &signed, &good.trust, &tmp, &cases)?;
            Ok((
                (),
                Outcome::Passed,
                format!("verified; refused {}", lines.join(", ")),
            ))
        },
    )
}

/// How a case tampers with a copy of the signed release.
type Tamper = Box<dyn Fn(&crate::support::ui::Stage, &Path) -> Result<()>>;
/// What it is, how it tampers, what verify-release's error must name.
type Case = (String, Tamper, String);

/// The name in SHA256SUMS ending in `suffix`.
fn find(listed: &[String], suffix: &str) -> Result<String> {
    listed
        .iter()
        .find(|n| n.ends_with(suffix))
        .cloned()
        .with_context(|| format!("the release's SHA256SUMS lists no *{suffix}"))
}

/// A flipped byte in each kind of file the release has.
fn flipped_bytes(s: &mut crate::support::ui::Stage, listed: &[String]) -> Result<Vec<Case>> {
    let mut cases: Vec<Case> = Vec::new();
    let mut kinds = vec![
        ("the ISO", find(listed, ".iso")?),
        ("the Xen tarball", find(listed, "-xen.tar.gz")?),
        ("the UML tarball", find(listed, "-uml.tar.gz")?),
        ("the netboot script", find(listed, "-netboot-amd64.ipxe")?),
        (
            "the netboot kernel",
            find(listed, "-netboot-amd64.vmlinuz")?,
        ),
        (
            "the netboot initramfs",
            find(listed, "-netboot-amd64.initrd.img")?,
        ),
        (
            "the netboot squashfs",
            find(listed, "-netboot-amd64.squashfs")?,
        ),
        ("the SBOM", find(listed, ".spdx.json")?),
        ("the manifest", find(listed, ".manifest.json")?),
    ];
    match listed
        .iter()
        .find(|n| crate::stages::tarballs::is_source_archive(n))
    {
        Some(src) => kinds.push(("the source archive", src.clone())),
        None => s.warn("this release has no source archive: its flipped-byte case is not run"),
    }
    for (kind, name) in kinds {
        let n = name.clone();
        cases.push((
            format!("a flipped byte in {kind}"),
            Box::new(move |_, d: &Path| {
                let p = d.join(&n);
                let mut data = fs::read(&p)?;
                let i = data.len() / 2;
                data[i] ^= 0x01;
                fs::remove_file(&p)?;
                fs::write(&p, data)?;
                Ok(())
            }),
            format!("{name}: sha256"),
        ));
    }
    Ok(cases)
}

/// Edited checksums, signatures by another key, damaged or removed
/// signatures.
fn signature_cases(w: &Path, other: &TestKeys) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "an edited SHA256SUMS".into(),
        Box::new(|_, d: &Path| {
            let p = d.join(SUMS);
            let text = fs::read_to_string(&p)?;
            // Another first hex digit, whatever it was.
            let first = if text.starts_with('0') { '1' } else { '0' };
            let edited = format!("{first}{}", &text[1..]);
            fs::remove_file(&p)?;
            fs::write(&p, edited)?;
            Ok(())
        }),
        format!("{SSH_SIG} is not a good signature"),
    ));
    cases.push((
        "both signatures by another key".into(),
        {
            let keys = other.keys.clone();
            Box::new(move |stage, d: &Path| crate::release::sign::sign(stage, d, &keys))
        },
        format!("{SSH_SIG} is not a good signature"),
    ));
    cases.push((
        "the OpenPGP signature alone by another key, beside a good SSH signature".into(),
        {
            let keys = other.keys.clone();
            let w = w.to_path_buf();
            Box::new(move |stage, d: &Path| {
                let tmp = w.join("other-signed");
                crate::support::fsutil::remove_all(&tmp)?;
                copy_release(d, &tmp)?;
                crate::release::sign::sign(stage, &tmp, &keys)?;
                fs::remove_file(d.join(OPENPGP_SIG))?;
                fs::copy(tmp.join(OPENPGP_SIG), d.join(OPENPGP_SIG))?;
                Ok(())
            })
        },
        format!("{OPENPGP_SIG} is not a good signature"),
    ));
    cases.push((
        "a damaged OpenPGP signature beside a good SSH signature".into(),
        Box::new(|_, d: &Path| {
            let p = d.join(OPENPGP_SIG);
            let text = fs::read_to_string(&p)?;
            // A character of the armored body changed.
            let body = text.find("\n\n").context("an armored signature")? + 2;
            let mut b = text.into_bytes();
            b[body + 4] = if b[body + 4] == b'A' { b'B' } else { b'A' };
            fs::remove_file(&p)?;
            fs::write(&p, b)?;
            Ok(())
        }),
        format!("{OPENPGP_SIG} is not a good signature"),
    ));
    for (sig, what) in [
        (SSH_SIG, "the SSH signature"),
        (OPENPGP_SIG, "the OpenPGP signature"),
    ] {
        cases.push((
            format!("{what} removed"),
            Box::new(move |_, d: &Path| Ok(fs::remove_file(d.join(sig))?)),
            format!("{what} {{dir}}/{sig} is missing"),
        ));
    }
    cases
}

/// A missing file, an unlisted one, a path-traversal name in a
/// well-signed SHA256SUMS.
fn listing_cases(good: &TestKeys, iso: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let iso = iso.to_string();
    cases.push((
        "a missing file".into(),
        {
            let iso3 = iso.clone();
            Box::new(move |_, d: &Path| Ok(fs::remove_file(d.join(&iso3))?))
        },
        format!("{iso}: listed in SHA256SUMS but missing"),
    ));
    cases.push((
        "an unlisted file (a second ISO)".into(),
        {
            let iso4 = iso.clone();
            Box::new(move |_, d: &Path| {
                fs::copy(d.join(&iso4), d.join("finnix-other-amd64.iso"))?;
                Ok(())
            })
        },
        "finnix-other-amd64.iso in".to_string(),
    ));
    cases.push((
        "a path-traversal name in a well-signed SHA256SUMS".into(),
        {
            let keys = good.keys.clone();
            Box::new(move |stage, d: &Path| {
                let p = d.join(SUMS);
                let mut text = fs::read_to_string(&p)?;
                text.push_str(&format!("{}  ../../etc/finnix-escape\n", "0".repeat(64)));
                fs::remove_file(&p)?;
                fs::write(&p, text)?;
                crate::release::sign::sign(stage, d, &keys)
            })
        },
        "\"../../etc/finnix-escape\" is not a plain file name".to_string(),
    ));
    cases
}

/// Each case on its own copy of the signed release: verify-release must
/// refuse it, naming the culprit. What was refused.
fn run_cases(
    s: &crate::support::ui::Stage,
    w: &Path,
    signed: &Path,
    trust: &Trust,
    tmp: &Path,
    cases: &[Case],
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, (what, tamper, culprit)) in cases.iter().enumerate() {
        let d = w.join(format!("case{i}"));
        copy_release(signed, &d)?;
        tamper(s, &d)?;
        let culprit = culprit.replace("{dir}", &d.display().to_string());
        match verify(&d, trust, tmp) {
            Ok(_) => bail!("verify-release accepted a release with {what}"),
            Err(e) => {
                let msg = format!("{e:#}");
                if !msg.contains(culprit.as_str()) {
                    bail!("verify-release refused a release with {what}, but its message does not name the culprit ({culprit:?}):\n{msg}");
                }
                s.note(format!(
                    "{what}: refused: {}",
                    msg.lines().next().unwrap_or("")
                ));
                lines.push(what.to_string());
            }
        }
    }
    Ok(lines)
}

impl crate::cli::CheckVerifyRelease {
    pub fn run(self, ctx: &crate::support::context::Ctx) -> Result<()> {
        crate::support::prereq::ensure(&[crate::support::prereq::Tools::Sign], &ctx.logs())?;
        check_tampering(ctx, &self.dir.unwrap_or_else(|| ctx.dist_dir()))
    }
}
