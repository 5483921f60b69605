//! `cargo xtask check-snapshot`: the archive snapshot mechanism, proven
//! against a local mirror this check builds (this machine reaches Debian's
//! regular archive only, not snapshot.debian.org).
//!
//! The mirror has two snapshots, `20260101T000000Z` and `20260201T000000Z`,
//! laid out as snapshot.debian.org lays them out (`debian/<time>/`,
//! `debian-security/<time>/`), made with apt-ftparchive and signed with a
//! key made for the test. Both hold `busybox-static`: the first as Debian
//! ships it, the second with a new version (and a marker file). Then:
//!
//! 1. a profile naming each snapshot, with `snapshot-url` pointing at the
//!    mirror, gives mmdebstrap the sources of that snapshot (the same
//!    function the rootfs stage uses), and mmdebstrap installs from it: the
//!    second snapshot's tree has the marker, the first's not;
//! 2. apt, configured the way the kernel-source fetch configures it, finds
//!    each snapshot's own version;
//! 3. a lock recorded from the first snapshot and a build from the second:
//!    `--locked`'s refusal names busybox-static and both versions.

use fs_err as fs;
use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::support::apt::PrivateApt;
use crate::support::cmd::Cmd;
use crate::support::config::Profile;
use crate::support::context::Ctx;
use crate::support::gpg::Gpg;
use crate::support::ui::{self, Outcome, Stage};

const SNAPSHOTS: [&str; 2] = ["20260101T000000Z", "20260201T000000Z"];
const PACKAGE: &str = "busybox-static";
const MARKER: &str = "usr/share/doc/busybox-static/SNAPSHOT";

/// One snapshot of the mirror: the three suites, the package in the first.
fn snapshot(s: &Stage, mirror: &Path, ts: &str, deb: &Path, gpg: &Gpg) -> Result<()> {
    for (archive, suite, with_package) in [
        ("debian", "bookworm", true),
        ("debian", "bookworm-updates", false),
        ("debian-security", "bookworm-security", false),
    ] {
        let root = mirror.join(archive).join(ts);
        let pool = root.join("pool/main/b/busybox");
        fs::create_dir_all(&pool)?;
        let dists = root.join("dists").join(suite);
        let binary = dists.join("main/binary-amd64");
        fs::create_dir_all(&binary)?;
        let packages = if with_package {
            fs::copy(deb, pool.join(deb.file_name().expect("a file")))?;
            s.read(crate::cmd!("apt-ftparchive", "packages", "pool").dir(&root))?
        } else {
            String::new()
        };
        fs::write(binary.join("Packages"), packages)?;
        let release = s.read(
            crate::cmd!(
                "apt-ftparchive",
                "-o",
                format!("APT::FTPArchive::Release::Suite={suite}"),
                "-o",
                format!("APT::FTPArchive::Release::Codename={suite}"),
                "-o",
                "APT::FTPArchive::Release::Architectures=amd64",
                "-o",
                "APT::FTPArchive::Release::Components=main",
                "release",
                "."
            )
            .dir(&dists),
        )?;
        fs::write(dists.join("Release"), release)?;
        s.run(gpg.cmd(&[
            "--clearsign",
            "--output",
            &dists.join("InRelease").display().to_string(),
            &dists.join("Release").display().to_string(),
        ]))?;
    }
    Ok(())
}

fn test_profile(mirror: &Path, ts: &str) -> Profile {
    Profile {
        description: "check-snapshot".into(),
        base: crate::support::config::Base::Debian,
        suite: Some("bookworm".into()),
        mirror: Some("http://deb.debian.org/debian".into()),
        security_mirror: "http://deb.debian.org/debian-security".into(),
        snapshot: Some(ts.into()),
        snapshot_url: format!("copy://{}/{{archive}}/{{timestamp}}/", mirror.display()),
        components: vec!["main".into()],
        metal_modules: false,
        packages: Some("unused".into()),
        overlays: vec![],
        memory_mib: 64,
        enable_services: vec![],
        disable_services: vec![],
        remove_init_scripts: vec![],
    }
}

pub fn check(ctx: &Ctx) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Snapshot], &ctx.logs())?;
    ui::stage(
        &ctx.logs(),
        "check-snapshot",
        "the archive snapshot mechanism against a local mirror (apt-ftparchive)",
        |s| {
            let work = ctx.cache.temp_dir("check-snapshot")?;
            let w = work.path();
            // The mirror's signing key.
            let gpg = Gpg::new()?;
            s.run(gpg.make_key("mirror test <mirror@finnix.invalid>"))?;
            let keyring = w.join("mirror.gpg");
            let key = gpg
                .cmd(&["--export", "mirror@finnix.invalid"])
                .expr()
                .stdout_capture()
                .stderr_null()
                .run()?
                .stdout;
            ensure!(!key.is_empty(), "gpg exported no key");
            fs::write(&keyring, key)?;

            // The package as Debian ships it, and a new version of it.
            let debs = w.join("debs");
            fs::create_dir_all(&debs)?;
            let first = crate::stages::kernel::source::apt_download(s, PACKAGE, &debs)?;
            let v1 = s
                .read(crate::cmd!("dpkg-deb", "-f", &first, "Version"))?
                .trim()
                .to_string();
            let v2 = format!("{v1}+snapshot2");
            let unpacked = w.join("unpacked");
            s.run(crate::cmd!("dpkg-deb", "-R", &first, &unpacked))?;
            let control = unpacked.join("DEBIAN/control");
            let text = fs::read_to_string(&control)?;
            fs::write(
                &control,
                text.replace(&format!("Version: {v1}\n"), &format!("Version: {v2}\n")),
            )?;
            fs::create_dir_all(unpacked.join(MARKER).parent().expect("parent"))?;
            fs::write(unpacked.join(MARKER), "the second snapshot\n")?;
            let second = w.join(format!("{PACKAGE}_{v2}_amd64.deb").replace(':', "%3a"));
            s.run(crate::cmd!(
                "dpkg-deb",
                "--root-owner-group",
                "-b",
                &unpacked,
                &second
            ))?;

            let mirror = w.join("mirror");
            snapshot(s, &mirror, SNAPSHOTS[0], &first, &gpg)?;
            snapshot(s, &mirror, SNAPSHOTS[1], &second, &gpg)?;

            let mut found = Vec::new();
            for (i, ts) in SNAPSHOTS.iter().enumerate() {
                let profile = test_profile(&mirror, ts);
                // 1. mmdebstrap with the rootfs stage's sources and options.
                let (sources, opts) = crate::stages::rootfs::archive_sources(&profile);
                let url = format!("copy://{}/debian/{ts}", mirror.display());
                ensure!(
                    sources[0].starts_with(&format!("deb {url} bookworm")),
                    "the snapshot's sources do not use the configured URL {url}: {sources:?}"
                );
                let tree = w.join(format!("tree{i}"));
                let mut args = vec![
                    "--variant=extract".to_string(),
                    "--mode=root".into(),
                    "--format=directory".into(),
                    format!("--include={PACKAGE}"),
                    format!("--keyring={}", keyring.display()),
                ];
                args.extend(opts.iter().map(|o| format!("--aptopt={o}")));
                args.push("bookworm".into());
                args.push(tree.display().to_string());
                args.extend(sources.iter().cloned());
                s.run(Cmd::argv("mmdebstrap", &args).stdin_null())?;
                let has_marker = tree.join(MARKER).is_file();
                ensure!(
                    has_marker == (i == 1),
                    "the tree from snapshot {ts} {} the second snapshot's marker: mmdebstrap did not install from {url}",
                    if has_marker { "has" } else { "lacks" }
                );
                // 2. apt as the kernel-source fetch sets it up.
                let apt = PrivateApt::new(&w.join(format!("apt{i}")), &sources, Some(&keyring))?;
                s.run(apt.apt_get(["update"]))?;
                let dl = w.join(format!("download{i}"));
                fs::create_dir_all(&dl)?;
                s.run(apt.apt_get(["download", PACKAGE]).dir(&dl))?;
                let deb = fs::read_dir(&dl)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.extension().is_some_and(|e| e == "deb"))
                    .context("apt-get download fetched nothing")?;
                let v = s
                    .read(crate::cmd!("dpkg-deb", "-f", &deb, "Version"))?
                    .trim()
                    .to_string();
                found.push(v);
            }
            ensure!(
                found == [v1.clone(), v2.clone()],
                "apt found versions {found:?} in the two snapshots, expected {v1} and {v2}"
            );

            // 3. The lock from the first snapshot, a build from the second.
            let mut locked = std::collections::BTreeMap::new();
            locked.insert(PACKAGE.to_string(), v1.clone());
            let mut built = std::collections::BTreeMap::new();
            built.insert(PACKAGE.to_string(), v2.clone());
            let drift = crate::stages::rootfs::package_drift(&locked, &built);
            let message = crate::stages::rootfs::locked_refusal(
                "check-snapshot",
                &drift,
                Some((SNAPSHOTS[0].into(), SNAPSHOTS[1].into())),
            );
            drop(gpg);
            let want = format!("{PACKAGE}: locked {v1}, installed {v2}");
            ensure!(
                message.contains(&want),
                "--locked's refusal does not name the change ({want}):\n{message}"
            );
            s.note(&message);
            Ok((
                (),
                Outcome::Passed,
                format!("mmdebstrap and apt used each snapshot's URL; --locked names {want}"),
            ))
        },
    )
}

impl crate::cli::CheckSnapshot {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        check(ctx)
    }
}
