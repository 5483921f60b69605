//! The pipeline: every stage in order, each cached on its own, and the
//! release in `dist/`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cache::{sha256_file, Key, KeyBuilder};
use crate::checksums::{self, Hashed, Manifest};
use crate::context::{package_version, tool_version, Ctx};
use crate::initrd::{self, Initrd};
use crate::iso::{self, Iso};
use crate::kernel::{self, Flavor, Kernel};
use crate::rootfs::{self, Rootfs};
use crate::squashfs::{self, Squashfs};
use crate::tarballs;
use crate::ui::{self, Outcome};

/// Everything the live system is made of, for one profile.
pub struct Live {
    pub profile: String,
    pub uml: Kernel,
    pub initrd: Initrd,
    pub rootfs: Rootfs,
    pub squashfs: Squashfs,
}

/// The stages up to the squashfs root, in order.
pub fn live(ctx: &Ctx, profile: &str, squashfs_opts: squashfs::Options) -> Result<Live> {
    let uml = kernel::build(ctx, Flavor::Um)?;
    let initrd = initrd::build(ctx)?;
    let rootfs = rootfs::build(ctx, profile, &uml, &initrd)?;
    let squashfs = squashfs::build(ctx, &rootfs, squashfs_opts)?;
    Ok(Live {
        profile: profile.to_string(),
        uml,
        initrd,
        rootfs,
        squashfs,
    })
}

pub fn default_squashfs(ctx: &Ctx) -> squashfs::Options {
    squashfs::Options {
        compression: ctx.config.squashfs.compression,
        block_size: ctx.config.squashfs.block_size,
    }
}

/// A release: the live system, the domU kernel, the ISO and the tarballs.
pub struct Release {
    pub live: Live,
    pub xen: Kernel,
    pub iso: Iso,
    /// The release files in the cache: name → path.
    pub files: Vec<(String, PathBuf)>,
}

/// Every stage, in order (cached ones are skipped).
pub fn release(ctx: &Ctx, profile: &str) -> Result<Release> {
    let live = live(ctx, profile, default_squashfs(ctx))?;
    let xen = kernel::build(ctx, Flavor::Xen)?;
    let iso = iso::build(ctx, profile, &live.squashfs, &xen, &live.initrd)?;
    let xen_tar = tarball(ctx, "tarball-xen", &[&xen.key, &live.initrd.key], |c| {
        tarballs::xen(c, &xen.image(), &live.initrd.image())
    })?;
    let uml_tar = tarball(
        ctx,
        "tarball-uml",
        &[&live.uml.key, &live.initrd.key, &live.rootfs.key],
        |c| {
            tarballs::uml(
                c,
                &live.uml.image(),
                &live.initrd.image(),
                &live.rootfs.tree().join("usr/bin/finnix"),
            )
        },
    )?;
    let files = vec![(iso.name.clone(), iso.image()), xen_tar, uml_tar];
    Ok(Release {
        live,
        xen,
        iso,
        files,
    })
}

const TARBALL_RECIPE: u32 = 1;

/// A tarball as a cached stage of its own.
fn tarball(
    ctx: &Ctx,
    stage: &str,
    inputs: &[&Key],
    make: impl FnOnce(&Ctx) -> Result<(String, Vec<u8>)>,
) -> Result<(String, PathBuf)> {
    ui::stage(
        &ctx.logs(),
        stage,
        format!("write the {} tarball", stage.trim_start_matches("tarball-")),
        |_| {
            let mut k = KeyBuilder::new(stage, TARBALL_RECIPE);
            for (i, key) in inputs.iter().enumerate() {
                k.key(&format!("input {i}"), key);
            }
            let d = &ctx.config.distribution;
            k.text("distribution", format!("{} {}", d.name, d.version))
                .text("epoch", ctx.epoch.global.to_string());
            for f in [
                "configs/xen/finnix-conf",
                "configs/xen/README",
                "configs/uml/README",
                "Cargo.lock",
            ] {
                k.file(f, &ctx.root.join(f))?;
            }
            let key = k.finish();
            if let Some(entry) = ctx.cache.lookup(stage, &key) {
                let name = fs::read_to_string(entry.join("name"))?;
                let path = entry.join(&name);
                return Ok((
                    (name, path.clone()),
                    Outcome::Cached,
                    ui::display_path(&path),
                ));
            }
            let (name, bytes) = make(ctx)?;
            let tmp = ctx.cache.temp_dir(stage)?;
            fs::write(tmp.path().join(&name), &bytes)?;
            fs::write(tmp.path().join("name"), &name)?;
            let entry = ctx.cache.commit(stage, &key, tmp)?;
            let path = entry.join(&name);
            let detail = format!(
                "{} ({})",
                ui::display_path(&path),
                ui::fmt_size(bytes.len() as u64)
            );
            Ok(((name, path), Outcome::Built, detail))
        },
    )
}

/// `cargo xtask dist`: the release into `dist/`, with SHA256SUMS and the
/// manifest. Files are staged under `dist/` and renamed into place only when
/// all are complete; a failed run leaves `dist/` as it was.
pub fn dist(ctx: &Ctx, profile: &str, dist_dir: &Path) -> Result<Vec<Hashed>> {
    let release = release(ctx, profile)?;
    let dist_dir = dist_dir.to_path_buf();
    let artifacts = ui::stage(
        &ctx.logs(),
        "dist",
        format!("write the release into {}/", ui::display_path(&dist_dir)),
        |s| {
            fs::create_dir_all(&dist_dir)?;
            sweep_staging(&dist_dir)?;
            let staging = crate::fsutil::TempDir::create(
                dist_dir.join(format!(".staging.{}", std::process::id())),
            )?;
            let mut artifacts = Vec::new();
            for (name, path) in &release.files {
                let staged = staging.path().join(name);
                link_or_copy(path, &staged)?;
                artifacts.push(Hashed {
                    name: name.clone(),
                    size: Some(fs::metadata(&staged)?.len()),
                    sha256: sha256_file(&staged)?,
                });
            }
            let manifest = manifest(ctx, &release, artifacts.clone())?;
            let d = &ctx.config.distribution;
            let manifest_name = format!("{}-{}.manifest.json", d.name.to_lowercase(), d.version);
            let json = manifest.to_json();
            fs::write(staging.path().join(&manifest_name), &json)?;
            artifacts.push(Hashed {
                name: manifest_name,
                size: Some(json.len() as u64),
                sha256: crate::cache::sha256_hex(json.as_bytes()),
            });
            let sums = checksums::sha256sums(&artifacts);
            fs::write(staging.path().join("SHA256SUMS"), &sums)?;
            s.note(&sums);
            // All complete: rename into place.
            let mut names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
            names.push("SHA256SUMS".into());
            for name in &names {
                fs::rename(staging.path().join(name), dist_dir.join(name))
                    .with_context(|| format!("cannot move {name} into dist/"))?;
            }
            Ok((artifacts, Outcome::Built, format!("{} files", names.len())))
        },
    )?;
    Ok(artifacts)
}

/// Staging directories of dist runs that died.
fn sweep_staging(dist: &Path) -> Result<()> {
    for entry in fs::read_dir(dist)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(".staging.") {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                crate::fsutil::remove_all(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// A hard link when the cache is on the same filesystem, else a copy.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

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
fn manifest(ctx: &Ctx, r: &Release, artifacts: Vec<Hashed>) -> Result<Manifest> {
    let d = &ctx.config.distribution;
    let git_commit = duct::cmd!("git", "rev-parse", "HEAD")
        .dir(&ctx.root)
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
    let stage_keys = vec![
        ("kernel-um".to_string(), r.live.uml.key.hex.clone()),
        ("kernel-xen".to_string(), r.xen.key.hex.clone()),
        ("initrd".to_string(), r.live.initrd.key.hex.clone()),
        (
            format!("rootfs-{}", r.live.profile),
            r.live.rootfs.key.hex.clone(),
        ),
        (
            format!("squashfs-{}", r.live.profile),
            r.live.squashfs.key.hex.clone(),
        ),
        (format!("iso-{}", r.live.profile), r.iso.key.hex.clone()),
    ];
    let kernel_source =
        crate::kernel::source::locked(ctx)?.context("finnix.lock has no kernel source")?;
    Ok(Manifest {
        name: d.name.clone(),
        version: d.version.clone(),
        profile: r.live.profile.clone(),
        source_date_epoch: ctx.epoch.global,
        kernel_source_date_epoch: ctx.epoch.kernel,
        git_commit: git_commit.trim().to_string(),
        artifacts,
        kernel_source,
        kernel_release: checksums::KernelReleases {
            uml: r.live.uml.info.release.clone(),
            xen: r.xen.info.release.clone(),
        },
        patches,
        config_fragments: fragments,
        configs: configs.into_iter().chain(overlay).collect(),
        packages,
        tools,
        stage_keys,
    })
}

/// The closing table: artifact, size, sha256.
pub fn table(artifacts: &[Hashed]) -> String {
    let width = artifacts
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!("{:<width$}  {:>10}  sha256\n", "artifact", "size");
    for a in artifacts {
        out.push_str(&format!(
            "{:<width$}  {:>10}  {}\n",
            a.name,
            ui::fmt_size(a.size.unwrap_or(0)),
            a.sha256
        ));
    }
    out
}
