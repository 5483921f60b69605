//! The release manifest (`finnix-<version>.manifest.json`): every input of a
//! release with its hash (kernel source, Debian's signed kernel, shim and
//! GRUB as pinned, patches, config fragments, configs,
//! the live system's overlay files, packages, host tools, stage keys) and the
//! artifacts. The format is `checksums::Manifest`; this gathers the facts.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::pipeline::Release;
use crate::release::checksums::{self, Hashed, Manifest};
use crate::stages::iso;
use crate::stages::StageId;
use crate::support::cache::sha256_file;
use crate::support::context::{package_version, tool_version, Ctx};

fn hashed_files(ctx: &Ctx, paths: impl IntoIterator<Item = PathBuf>) -> Result<Vec<Hashed>> {
    let mut out = Vec::new();
    for p in paths {
        let name = p
            .strip_prefix(&ctx.root)
            .unwrap_or(&p)
            .display()
            .to_string();
        out.push(Hashed {
            name,
            size: None,
            sha256: sha256_file(&p)?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn files_under(dir: &Path, filter: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && filter(e.path()))
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

/// Every input of the release with its hash.
pub fn build(ctx: &Ctx, r: &Release, artifacts: Vec<Hashed>) -> Result<Manifest> {
    let d = &ctx.config.distribution;
    let git_commit = crate::cmd!("git", "rev-parse", "HEAD")
        .dir(&ctx.root)
        .expr()
        .stderr_null()
        .read()
        .unwrap_or_default();
    let patches = hashed_files(ctx, files_under(&ctx.root.join("kernel-patches"), |_| true))?;
    let fragments = hashed_files(ctx, files_under(&ctx.root.join("configs/kernel"), |_| true))?;
    let configs = hashed_files(
        ctx,
        files_under(&ctx.root.join("configs"), |p| {
            !p.starts_with(ctx.root.join("configs/kernel"))
        })
        .into_iter()
        .chain([ctx.root.join("finnix.lock")]),
    )?;
    let overlay = hashed_files(ctx, files_under(&ctx.root.join("live/overlay"), |_| true))?;
    let packages = checksums::parse_packages(&fs::read_to_string(r.live.rootfs.packages())?);
    let mut tools: Vec<(String, String)> = ["gcc", "ld", "make", "mmdebstrap", "rustc", "cargo"]
        .iter()
        .map(|t| (t.to_string(), tool_version(t)))
        .collect();
    // The toolchain the workflows install (rust-toolchain.toml), beside the
    // rustc that ran.
    let channel = fs::read_to_string(ctx.root.join("rust-toolchain.toml"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("channel = ")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_default();
    tools.push(("rust-toolchain.toml".into(), channel));
    tools.push(("busybox-static".into(), package_version("busybox-static")));
    tools.push((
        "debian-archive-keyring".into(),
        package_version("debian-archive-keyring"),
    ));
    tools.extend(iso::tool_versions());
    let p = &r.live.profile;
    let stage_keys: Vec<(String, String)> = [
        (StageId::KernelUm, &r.live.uml.key),
        (StageId::KernelXen, &r.xen.key),
        (StageId::KernelMetal, &r.live.metal.key),
        (StageId::Initrd, &r.live.initrd.key),
        (StageId::Rootfs, &r.live.rootfs.key),
        (StageId::Squashfs, &r.live.squashfs.key),
        (StageId::Iso, &r.iso.key),
        (StageId::Netboot, &r.netboot.key),
    ]
    .iter()
    .map(|(stage, key)| (stage.dir(p), key.hex.clone()))
    .collect();
    let kernel_source =
        crate::stages::kernel::source::locked(ctx)?.context("finnix.lock has no kernel source")?;
    let debian_packages = crate::support::lock::Lock::read(&ctx.lock_path())?.shipped_debs();
    Ok(Manifest {
        name: d.name.clone(),
        version: d.version.clone(),
        profile: r.live.profile.clone(),
        source_date_epoch: ctx.epoch.global,
        kernel_source_date_epoch: ctx.epoch.kernel,
        git_commit: git_commit.trim().to_string(),
        artifacts,
        kernel_source,
        archive_snapshot: crate::support::config::Profile::load(&ctx.root, &r.live.profile)?
            .snapshot
            .unwrap_or_default(),
        debian_packages,
        kernel_release: checksums::KernelReleases {
            uml: r.live.uml.info.release.clone(),
            xen: r.xen.info.release.clone(),
            metal: r.live.metal.release.clone(),
        },
        patches,
        config_fragments: fragments,
        configs: configs.into_iter().chain(overlay).collect(),
        packages,
        tools,
        stage_keys,
    })
}
