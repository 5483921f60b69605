//! `cargo xtask check-snapshot`: the archive snapshot mechanism, proven
//! against a local mirror this check builds (this machine reaches Debian's
//! regular archive only, not snapshot.debian.org).
//!
//! The mirror has two snapshots, `20260101T000000Z` and `20260201T000000Z`,
//! laid out as snapshot.debian.org lays them out (`debian/<time>/`,
//! `debian-security/<time>/`), made with apt-ftparchive and signed with a
//! key made for the test. Both hold a minimal Debian (the packages of
//! `mmdebstrap --variant=minbase`, stage `snapshot-pool`) and
//! `busybox-static`: the first as Debian ships it, the second with a new
//! version (and a marker file). Then, in a copy of this checkout with a
//! profile of its own (`snaptest`, busybox-static) naming the mirror and
//! its key:
//!
//! 1. `cargo xtask rootfs --base-only --profile snaptest` at the first
//!    snapshot: mmdebstrap installs from that snapshot's URL (no marker),
//!    finnix.lock records the versions;
//! 2. apt, configured the way the kernel-source fetch configures it, finds
//!    each snapshot's own version;
//! 3. the profile moved to the second snapshot, `cargo xtask --locked
//!    rootfs --base-only` refuses the build, naming busybox-static and both
//!    versions; without `--locked` the same build passes and has the marker.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::support::apt::PrivateApt;
use crate::support::cmd::Cmd;
use crate::support::config::Profile;
use crate::support::context::Ctx;
use crate::support::gpg::Gpg;
use crate::support::ui::{self, Outcome, Stage};

const SNAPSHOTS: [&str; 2] = ["20260101T000000Z", "20260201T000000Z"];
const PACKAGE: &str = "busybox-static";
/// Outside /usr/share/doc, which the rootfs stage's dpkg filters drop.
const MARKER: &str = "usr/lib/finnix-snapshot-marker";

/// One snapshot of the mirror: the three suites, the packages in the first.
fn snapshot(
    s: &Stage,
    mirror: &Path,
    ts: &str,
    debs: &[std::path::PathBuf],
    gpg: &Gpg,
) -> Result<()> {
    for (archive, suite, with_package) in [
        ("debian", "bookworm", true),
        ("debian", "bookworm-updates", false),
        ("debian-security", "bookworm-security", false),
    ] {
        let root = mirror.join(archive).join(ts);
        let pool = root.join("pool/main");
        fs::create_dir_all(&pool)?;
        let dists = root.join("dists").join(suite);
        let binary = dists.join("main/binary-amd64");
        fs::create_dir_all(&binary)?;
        let packages = if with_package {
            for deb in debs {
                fs::copy(deb, pool.join(deb.file_name().expect("a file")))?;
            }
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
        suite: Some(crate::support::config::DEBIAN_SUITE.into()),
        mirror: Some("http://deb.debian.org/debian".into()),
        security_mirror: "http://deb.debian.org/debian-security".into(),
        snapshot: Some(ts.into()),
        snapshot_url: format!("copy://{}/{{archive}}/{{timestamp}}/", mirror.display()),
        components: vec!["main".into()],
        metal_modules: false,
        packages: Some("unused".into()),
        overlays: vec![],
        keyring: crate::support::config::DEBIAN_KEYRING.into(),
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

            let (first, second, v1, v2) = two_versions(s, w)?;

            // A minimal Debian beside it, in both snapshots.
            let pool = pool(ctx)?;
            let others: Vec<std::path::PathBuf> = fs::read_dir(&pool)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "deb")
                        && !p.file_name().is_some_and(|n| {
                            n.to_string_lossy().starts_with(&format!("{PACKAGE}_"))
                        })
                })
                .collect();
            let mirror = w.join("mirror");
            let with = |deb: &Path| -> Vec<std::path::PathBuf> {
                others.iter().cloned().chain([deb.to_path_buf()]).collect()
            };
            snapshot(s, &mirror, SNAPSHOTS[0], &with(&first), &gpg)?;
            snapshot(s, &mirror, SNAPSHOTS[1], &with(&second), &gpg)?;

            // 2. apt as the kernel-source fetch sets it up.
            let mut found = Vec::new();
            for (i, ts) in SNAPSHOTS.iter().enumerate() {
                let profile = test_profile(&mirror, ts);
                let (sources, _) = crate::stages::rootfs::archive_sources(&profile);
                let url = format!("copy://{}/debian/{ts}", mirror.display());
                ensure!(
                    sources[0].starts_with(&format!("deb {url} bookworm")),
                    "the snapshot's sources do not use the configured URL {url}: {sources:?}"
                );
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
            drop(gpg);

            // 1 and 3: real builds of a profile on the mirror, in a copy of
            // this checkout, through the rootfs stage and its lock.
            let want = format!("{PACKAGE}: locked {v1}, installed {v2}");
            let message = locked_builds(ctx, s, w, &mirror, &keyring, &want)?;
            s.note(&message);
            Ok((
                (),
                Outcome::Passed,
                format!("mmdebstrap and apt used each snapshot's URL; cargo xtask --locked rootfs refused: {want}"),
            ))
        },
    )
}

/// The package as Debian ships it, and a new version of it (a marker file
/// added): their .debs and versions.
fn two_versions(s: &mut ui::Stage, w: &Path) -> Result<(PathBuf, PathBuf, String, String)> {
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
    Ok((first, second, v1, v2))
}

/// The `snaptest` profile of the copied checkout, at snapshot `ts`.
fn write_profile(checkout: &Path, mirror: &Path, keyring: &Path, ts: &str) -> Result<()> {
    let dir = checkout.join("configs/profiles");
    fs::write(dir.join("snaptest.packages"), format!("{PACKAGE}\n"))?;
    fs::write(
        dir.join("snaptest.toml"),
        format!(
            "description = \"check-snapshot: a profile on a local mirror\"\n\
             base = \"debian\"\n\
             suite = \"bookworm\"\n\
             mirror = \"http://deb.debian.org/debian\"\n\
             snapshot = \"{ts}\"\n\
             snapshot-url = \"copy://{}/{{archive}}/{{timestamp}}/\"\n\
             keyring = \"{}\"\n\
             packages = \"snaptest.packages\"\n\
             overlays = []\n",
            mirror.display(),
            keyring.display()
        ),
    )?;
    Ok(())
}

/// In a copy of this checkout: `rootfs --base-only --profile snaptest` at
/// the first snapshot (records finnix.lock; no marker), then `--locked` at
/// the second (must fail naming `want`), then without `--locked` (passes,
/// the marker is there). Returns the refusal.
fn locked_builds(
    ctx: &Ctx,
    s: &Stage,
    w: &Path,
    mirror: &Path,
    keyring: &Path,
    want: &str,
) -> Result<String> {
    let checkout = w.join("checkout");
    crate::checks::repro::copy_checkout(&ctx.root, &checkout, false)?;
    let exe = crate::support::context::this_program();
    let cache = w.join("cache");
    let run = |locked: bool| -> Result<(bool, String)> {
        let mut c = Cmd::new(&exe);
        if locked {
            c = c.arg("--locked");
        }
        s.output(
            c.args(["rootfs", "--base-only", "--profile", "snaptest"])
                .dir(&checkout)
                .env("FINNIX_CACHE_DIR", &cache)
                .stdin_null(),
        )
    };
    let tree_of = |text: &str| -> Result<std::path::PathBuf> {
        text.lines()
            .find_map(|l| l.strip_prefix("base tree: "))
            .map(std::path::PathBuf::from)
            .with_context(|| format!("rootfs --base-only printed no tree:\n{text}"))
    };
    write_profile(&checkout, mirror, keyring, SNAPSHOTS[0])?;
    let (ok, text) = run(false)?;
    ensure!(ok, "rootfs at the first snapshot failed:\n{text}");
    ensure!(
        !tree_of(&text)?.join(MARKER).exists(),
        "the first snapshot's tree has the second's marker: mmdebstrap did not install from the configured URL"
    );
    let lock = fs::read_to_string(checkout.join("finnix.lock"))?;
    ensure!(
        lock.contains("[rootfs-packages.snaptest]"),
        "the first build did not record its packages in finnix.lock"
    );
    write_profile(&checkout, mirror, keyring, SNAPSHOTS[1])?;
    let (ok, refusal) = run(true)?;
    ensure!(
        !ok,
        "cargo xtask --locked rootfs accepted a build whose {PACKAGE} moved"
    );
    ensure!(
        refusal.contains(want) && refusal.contains("--locked"),
        "--locked refused, but does not name the change ({want}):\n{refusal}"
    );
    let (ok, text) = run(false)?;
    ensure!(ok, "rootfs at the second snapshot failed:\n{text}");
    ensure!(
        tree_of(&text)?.join(MARKER).exists(),
        "the second snapshot's tree lacks its marker: mmdebstrap did not install from the configured URL"
    );
    Ok(refusal)
}

/// Debian's minimal system as .debs (mmdebstrap's minbase with
/// busybox-static, the apt cache kept): the rest of each snapshot.
fn pool(ctx: &Ctx) -> Result<std::path::PathBuf> {
    use crate::checks::debian_root::{KEYRING, MIRROR, SUITE};
    use crate::stages::StageId;
    use crate::support::cache::{cached_stage, KeyBuilder};
    let key = KeyBuilder::new(StageId::SnapshotPool.key_label(), 2)
        .text("suite", SUITE)
        .text("mirror", MIRROR)
        .text("package", PACKAGE)
        .text("epoch", ctx.epoch.global.to_string())
        .text(
            "mmdebstrap",
            crate::support::context::tool_version("mmdebstrap"),
        )
        .finish();
    ui::stage(
        &ctx.logs(),
        StageId::SnapshotPool.name(),
        "the packages of a minimal Debian (mmdebstrap minbase), for check-snapshot's mirror",
        |s| {
            cached_stage(
                &ctx.cache,
                s,
                StageId::SnapshotPool.name(),
                key,
                |entry, _| Ok(entry.join("debs")),
                |_| String::new(),
                |s, tmp| {
                    let tree = tmp.join("tree");
                    s.run(
                        Cmd::argv(
                            "mmdebstrap",
                            [
                                "--variant=minbase".to_string(),
                                "--mode=root".into(),
                                "--format=directory".into(),
                                "--skip=cleanup/apt/cache".into(),
                                "--skip=essential/unlink".into(),
                                "--aptopt=APT::Sandbox::User \"root\"".into(),
                                format!("--keyring={KEYRING}"),
                                format!("--include={PACKAGE}"),
                                SUITE.into(),
                                tree.display().to_string(),
                                format!("deb {MIRROR} {SUITE} main"),
                            ],
                        )
                        .env("LC_ALL", "C.UTF-8")
                        .stdin_null(),
                    )?;
                    let debs = tmp.join("debs");
                    fs::rename(tree.join("var/cache/apt/archives"), &debs)?;
                    crate::support::fsutil::remove_all(&tree)?;
                    let n = fs::read_dir(&debs)?
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "deb"))
                        .count();
                    Ok(format!("{n} packages"))
                },
            )
        },
    )
}

impl crate::cli::CheckSnapshot {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        check(ctx)
    }
}
