//! The pipeline: every stage in order, each cached on its own, and the
//! release in `dist/`. `live` (the live system), `release` (with the domU
//! kernel, the ISO and the tarballs), `dist` (the release into `dist/` with
//! SHA256SUMS and the manifest), `cow` (COW mode's image); then the commands
//! that run single stages.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::checks::boot;
use crate::cli;
use crate::stages::checksums::{self, Hashed};
use crate::stages::cow_image::{self, CowImage};
use crate::stages::initrd::{self, Initrd};
use crate::stages::iso::{self, Iso};
use crate::stages::kernel::metal::{self, MetalKernel};
use crate::stages::kernel::{self, Flavor, Kernel};
use crate::stages::rootfs::{self, Rootfs};
use crate::stages::squashfs::{self, Squashfs};
use crate::stages::tarballs;
use crate::stages::StageId;
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::prereq::{self, Tools};
use crate::support::ui::{self, Outcome};

/// Everything the live system is made of, for one profile.
pub struct Live {
    pub profile: String,
    pub uml: Kernel,
    pub metal: MetalKernel,
    pub initrd: Initrd,
    pub rootfs: Rootfs,
    pub squashfs: Squashfs,
}

/// The stages up to the squashfs root, in order.
pub fn live(ctx: &Ctx, profile: &str, squashfs_opts: squashfs::Options) -> Result<Live> {
    let uml = kernel::build(ctx, Flavor::Um)?;
    let metal = metal::build(ctx)?;
    let initrd = initrd::build(ctx)?;
    let rootfs = rootfs::build(ctx, profile, &uml, &initrd, &metal)?;
    let squashfs = squashfs::build(ctx, &rootfs, squashfs_opts)?;
    Ok(Live {
        profile: profile.to_string(),
        uml,
        metal,
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
    let iso = iso::build(ctx, profile, &live.squashfs, &live.metal, &live.initrd)?;
    let xen_tar = tarballs::stage(
        ctx,
        StageId::TarballXen,
        profile,
        &[&xen.key, &live.initrd.key],
        |c| tarballs::xen(c, profile, &xen.image(), &live.initrd.image()),
    )?;
    let uml_tar = tarballs::stage(
        ctx,
        StageId::TarballUml,
        profile,
        &[&live.uml.key, &live.initrd.key, &live.rootfs.key],
        |c| {
            tarballs::uml(
                c,
                profile,
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
            let staging = crate::support::fsutil::TempDir::create(
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
            // The SBOM: what the artifacts hold (SPDX 2.3).
            let sbom_facts = crate::stages::sbom::facts(ctx, &release, &artifacts)?;
            let sbom =
                serde_json::to_string_pretty(&crate::stages::sbom::document(&sbom_facts))? + "\n";
            let sbom_name = tarballs::names(ctx, profile).sbom;
            fs::write(staging.path().join(&sbom_name), &sbom)?;
            artifacts.push(Hashed {
                name: sbom_name,
                size: Some(sbom.len() as u64),
                sha256: crate::support::cache::sha256_hex(sbom.as_bytes()),
            });
            let manifest = crate::stages::manifest::build(ctx, &release, artifacts.clone())?;
            let manifest_name = tarballs::names(ctx, profile).manifest;
            let json = manifest.to_json();
            fs::write(staging.path().join(&manifest_name), &json)?;
            artifacts.push(Hashed {
                name: manifest_name,
                size: Some(json.len() as u64),
                sha256: crate::support::cache::sha256_hex(json.as_bytes()),
            });
            let sums = checksums::sha256sums(&artifacts);
            fs::write(staging.path().join("SHA256SUMS"), &sums)?;
            s.note(&sums);
            // All complete: rename into place.
            let mut names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
            names.push("SHA256SUMS".into());
            // Signatures of a previous SHA256SUMS no longer hold, nor does
            // a source archive it listed (`cargo xtask source` again).
            let n = tarballs::names(ctx, profile);
            for stale in [
                crate::stages::sign::SSH_SIG,
                crate::stages::sign::OPENPGP_SIG,
                n.source.as_str(),
                n.source_incomplete.as_str(),
            ] {
                let _ = fs::remove_file(dist_dir.join(stale));
            }
            for name in &names {
                fs::rename(staging.path().join(name), dist_dir.join(name))
                    .with_context(|| format!("cannot move {name} into dist/"))?;
            }
            Ok((artifacts, Outcome::Built, format!("{} files", names.len())))
        },
    )?;
    Ok(artifacts)
}

/// The pid in the name of a file a release command writes before renaming
/// it into place: `.staging.<pid>` (dist), `.<name>.partial.<pid>` (the
/// source archive), `.SHA256SUMS.<pid>`.
pub fn leftover_pid(name: &str) -> Option<&str> {
    let ours = name.starts_with(".staging.")
        || name.starts_with(".SHA256SUMS.")
        || (name.starts_with('.') && name.contains(".partial."));
    let pid = name.rsplit('.').next()?;
    (ours && !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit())).then_some(pid)
}

/// What release commands that died left in the release directory.
pub fn sweep_staging(dist: &Path) -> Result<()> {
    for entry in fs::read_dir(dist)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = leftover_pid(&name) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                crate::support::fsutil::remove_all(&entry.path())?;
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

// ---- the glue the jobs share ----------------------------------------------

/// Check (and install) the host tools of `stages` and of `more`.
pub fn ensure_tools(ctx: &Ctx, stages: &[StageId], more: &[Tools]) -> Result<()> {
    if stages
        .iter()
        .any(|s| matches!(s, StageId::KernelUm | StageId::KernelXen))
    {
        crate::support::context::check_build_path(&ctx.cache.root)?;
    }
    let mut all: Vec<Tools> = Vec::new();
    for t in stages.iter().map(|s| s.tools()).chain(more.iter().copied()) {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    prereq::ensure(&all, &ctx.logs())
}

/// The stages of the live system (and with them a release).
pub const LIVE_STAGES: &[StageId] = &[
    StageId::KernelUm,
    StageId::KernelMetal,
    StageId::Initrd,
    StageId::RootfsBase,
    StageId::Rootfs,
    StageId::Squashfs,
];
pub const RELEASE_STAGES: &[StageId] = &[
    StageId::KernelUm,
    StageId::KernelXen,
    StageId::KernelMetal,
    StageId::Initrd,
    StageId::RootfsBase,
    StageId::Rootfs,
    StageId::Squashfs,
    StageId::Iso,
    StageId::TarballXen,
    StageId::TarballUml,
];

/// The stages COW mode's image needs, then the image.
pub fn cow(ctx: &Ctx, profile: &str) -> Result<(Kernel, CowImage)> {
    ensure_tools(ctx, &[StageId::CowImage], &[])?;
    let um = kernel::build(ctx, Flavor::Um)?;
    let metal = metal::build(ctx)?;
    let initrd = initrd::build(ctx)?;
    let rootfs = rootfs::build(ctx, profile, &um, &initrd, &metal)?;
    let img = cow_image::build(ctx, &rootfs)?;
    Ok((um, img))
}

/// The files `finnix create` needs on a host: the `finnix` program the root
/// filesystem ships, the UML kernel, the initrd, the release ISO.
pub fn create_files(r: &Release) -> crate::checks::create::Files {
    crate::checks::create::Files {
        finnix: r.live.rootfs.tree().join("usr/bin/finnix"),
        kernel: r.live.uml.image(),
        initrd: r.live.initrd.image(),
        medium: r.iso.image(),
    }
}

/// The files a boot of `live` needs.
pub fn boot_inputs(ctx: &Ctx, live: &Live) -> Result<boot::Inputs> {
    let profile = crate::support::config::Profile::load(&ctx.root, &live.profile)?;
    Ok(boot::Inputs {
        uml_kernel: live.uml.image(),
        initrd: live.initrd.image(),
        squashfs: live.squashfs.image(),
        kernel_release: live.uml.info.release.clone(),
        version: ctx.config.distribution.version.clone(),
        memory_mib: profile.memory_mib,
        release: None,
        xen_host: None,
        standard_iso: None,
    })
}

/// The files a boot of a release needs (the ISO, the tarballs, the domU kernel).
pub fn release_inputs(ctx: &Ctx, r: &Release) -> Result<boot::Inputs> {
    let mut inputs = boot_inputs(ctx, &r.live)?;
    let file = |suffix: &str| {
        r.files
            .iter()
            .find(|(n, _)| n.ends_with(suffix))
            .map(|(_, p)| p.clone())
            .context("release file")
    };
    inputs.release = Some(boot::ReleaseInputs {
        iso: r.iso.image(),
        uml_tarball: file("-uml.tar.gz")?,
        xen_tarball: file("-xen.tar.gz")?,
        xen_kernel: r.xen.image(),
        xen_vmlinux: r.xen.vmlinux().context("domU vmlinux")?,
        xen_release: r.xen.info.release.clone(),
        metal_release: r.live.metal.release.clone(),
    });
    Ok(inputs)
}

// ---- the stage commands -----------------------------------------------------

impl cli::Kernel {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, &[StageId::KernelUm], &[])?;
        for f in self.flavor.flavors() {
            kernel::build(ctx, f)?;
        }
        Ok(())
    }
}

impl cli::Initrd {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, &[StageId::Initrd], &[])?;
        initrd::build(ctx)?;
        Ok(())
    }
}

impl cli::Rootfs {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let profile = ctx.profile(self.profile);
        if self.base_only {
            ensure_tools(ctx, &[StageId::RootfsBase], &[])?;
            let p = crate::support::config::Profile::load(&ctx.root, &profile)?;
            let base = rootfs::base(ctx, &profile, &p)?;
            eprintln!("base tree: {}", base.tree().display());
            return Ok(());
        }
        ensure_tools(
            ctx,
            &[
                StageId::KernelUm,
                StageId::KernelMetal,
                StageId::Initrd,
                StageId::Rootfs,
            ],
            &[],
        )?;
        let um = kernel::build(ctx, Flavor::Um)?;
        let metal = metal::build(ctx)?;
        let initrd = initrd::build(ctx)?;
        let r = rootfs::build(ctx, &profile, &um, &initrd, &metal)?;
        eprintln!("root filesystem tree: {}", r.tree().display());
        Ok(())
    }
}

impl cli::Plan {
    /// The independent stages' keys, as `name=key` lines (for CI caches).
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, &[StageId::KernelUm, StageId::RootfsBase], &[])?;
        let profile = ctx.profile(self.profile);
        let source = kernel::source::locked(ctx)?.ok_or_else(|| {
            anyhow::anyhow!("finnix.lock has no kernel source: run `cargo xtask kernel` once")
        })?;
        for flavor in Flavor::ALL {
            println!(
                "{}={}",
                flavor.stage().name(),
                kernel::key(ctx, flavor, &source)?.hex
            );
        }
        let p = crate::support::config::Profile::load(&ctx.root, &profile)?;
        println!(
            "{}={}",
            StageId::RootfsBase.dir(&profile),
            rootfs::base_key(ctx, &profile, &p)?.hex
        );
        println!("source-date-epoch={}", ctx.epoch.global);
        Ok(())
    }
}

impl cli::Squashfs {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, LIVE_STAGES, &[])?;
        let profile = ctx.profile(self.profile);
        let mut opts = default_squashfs(ctx);
        opts.compression = self.compression.unwrap_or(opts.compression);
        opts.block_size = self.block_size.unwrap_or(opts.block_size);
        opts.validate()?;
        let live = live(ctx, &profile, opts)?;
        eprintln!("squashfs image: {}", live.squashfs.image().display());
        Ok(())
    }
}

impl cli::Iso {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, RELEASE_STAGES, &[])?;
        let profile = ctx.profile(self.profile);
        let live = live(ctx, &profile, default_squashfs(ctx))?;
        let iso = iso::build(ctx, &profile, &live.squashfs, &live.metal, &live.initrd)?;
        eprintln!("ISO image: {}", iso.image().display());
        Ok(())
    }
}

impl cli::Dist {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, RELEASE_STAGES, &[])?;
        let profile = ctx.profile(self.profile);
        let artifacts = dist(ctx, &profile, &ctx.dist_dir())?;
        print!("{}", table(&artifacts));
        let keys = crate::stages::sign::Keys::resolve(None, None, &ctx.env);
        if keys.none() {
            eprintln!(
                "note: the release is unsigned (no FINNIX_SSH_SIGNING_KEY, FINNIX_OPENPGP_SIGNING_KEY); `cargo xtask sign` signs it"
            );
            return Ok(());
        }
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        sign_dir(ctx, &ctx.dist_dir(), &keys)
    }
}

/// Sign a release directory's SHA256SUMS (one stage line).
fn sign_dir(ctx: &Ctx, dir: &Path, keys: &crate::stages::sign::Keys) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "sign",
        format!(
            "sign {}/SHA256SUMS (SSH and OpenPGP)",
            ui::display_path(dir)
        ),
        |s| {
            crate::stages::sign::sign(s, dir, keys)?;
            Ok((
                (),
                Outcome::Built,
                "SHA256SUMS.sig, SHA256SUMS.asc".to_string(),
            ))
        },
    )
}

impl cli::SourceJob {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(ctx, RELEASE_STAGES, &[Tools::Source])?;
        let profile = ctx.profile(self.profile);
        let r = release(ctx, &profile)?;
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
    r: &Release,
    names: &tarballs::Names,
    dir: &Path,
    allow_incomplete: bool,
) -> Result<crate::stages::source::Written> {
    ui::stage(
        &ctx.logs(),
        "source",
        format!("the corresponding source into {}/", ui::display_path(dir)),
        |s| {
            let w = crate::stages::source::write(ctx, s, r, names, dir, allow_incomplete)?;
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

impl cli::Sign {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        let keys = crate::stages::sign::Keys::resolve(self.ssh_key, self.openpgp_key, &ctx.env);
        let dir = self.dir.unwrap_or_else(|| ctx.dist_dir());
        sign_dir(ctx, &dir, &keys)
    }
}

impl cli::Keygen {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::checks::verify_release::{ALLOWED_SIGNERS, OPENPGP_KEY};
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        let public = self.public_dir.unwrap_or_else(|| ctx.root.join("keys"));
        let files = [public.join("allowed_signers"), public.join("release.asc")];
        if !self.force {
            for f in &files {
                anyhow::ensure!(
                    !f.exists(),
                    "{} exists: the release keys were made before (--force replaces them: a key rotation, and older releases then verify only against the old keys)",
                    f.display()
                );
            }
        }
        anyhow::ensure!(
            !self.private_dir.exists() || fs::read_dir(&self.private_dir)?.next().is_none(),
            "{} is not empty: name a new directory for the private keys",
            self.private_dir.display()
        );
        anyhow::ensure!(
            !self.private_dir.starts_with(&ctx.root),
            "{} is inside the repository: the private keys must never be committed",
            self.private_dir.display()
        );
        let k = crate::stages::sign::make_keys(&self.private_dir, &public, &self.uid)?;
        let (ssh, pgp) = (k.keys.ssh.expect("made"), k.keys.openpgp.expect("made"));
        eprintln!(
            "made the release keys ({}):
  public, commit them: {} and {}{}
  private, keep them secret:
    {}
    {}
next:
  gh secret set FINNIX_SSH_SIGNING_KEY < {}
  gh secret set FINNIX_OPENPGP_SIGNING_KEY < {}
  git add keys && git commit -m 'Release keys'
then store the private directory offline and delete it here.",
            self.uid,
            k.allowed_signers.display(),
            k.openpgp_public.display(),
            if public == ctx.root.join("keys") {
                format!(" ({ALLOWED_SIGNERS}, {OPENPGP_KEY})")
            } else {
                String::new()
            },
            ssh.display(),
            pgp.display(),
            ssh.display(),
            pgp.display()
        );
        Ok(())
    }
}

impl cli::VerifyRelease {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::checks::verify_release::{self, Trust};
        prereq::ensure(&[Tools::Sign], &ctx.logs())?;
        let trust = Trust {
            allowed_signers: self
                .allowed_signers
                .unwrap_or_else(|| ctx.root.join(verify_release::ALLOWED_SIGNERS)),
            openpgp_key: self
                .openpgp_key
                .unwrap_or_else(|| ctx.root.join(verify_release::OPENPGP_KEY)),
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
                let report = verify_release::verify(&self.dir, &trust, tmp.path())?;
                for line in &report {
                    s.note(line);
                }
                Ok((report, Outcome::Passed, String::new()))
            },
        )?;
        for line in report {
            println!("ok: {line}");
        }
        if self.rebuild {
            crate::cli::VerifyRepro {
                profile: None,
                keep_kernels: false,
                against: Some(self.dir.clone()),
            }
            .run(ctx)?;
        }
        Ok(())
    }
}

impl cli::CowImage {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        ensure_tools(
            ctx,
            &[
                StageId::KernelUm,
                StageId::Initrd,
                StageId::Rootfs,
                StageId::CowImage,
            ],
            &[],
        )?;
        let profile = ctx.profile(self.profile);
        let (um, img) = cow(ctx, &profile)?;
        let dest = ctx.dist_dir().join("finnix.img");
        cow_image::publish(&img, &dest)?;
        eprintln!(
            "{} (sha256 {})\nboot it: {} mem=64M root=/dev/ubda ubda=finnix.cow,{} uml",
            ui::display_path(&dest),
            sha256_file(&dest)?,
            ui::display_path(&um.image()),
            ui::display_path(&dest)
        );
        Ok(())
    }
}

impl cli::Clean {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        if let Some(stage) = self.stage {
            for entry in fs::read_dir(&ctx.cache.root)
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let mine = name == stage.name()
                    || (stage.per_profile()
                        && name.starts_with(&format!("{}-", stage.name()))
                        && !(stage == StageId::Rootfs && name.starts_with("rootfs-base-")));
                if mine {
                    eprintln!("removing {}", entry.path().display());
                    crate::support::fsutil::remove_all(&entry.path())?;
                }
            }
            return Ok(());
        }
        eprintln!("removing {}", ctx.cache.root.display());
        crate::support::fsutil::remove_all(&ctx.cache.root)?;
        if self.dist {
            let d = ctx.dist_dir();
            for entry in fs::read_dir(&d)? {
                let p = entry?.path();
                if p.file_name().is_some_and(|n| n != ".gitkeep") {
                    crate::support::fsutil::remove_all(&p)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::leftover_pid;

    #[test]
    fn only_our_own_temporary_names_are_swept() {
        assert_eq!(leftover_pid(".staging.123"), Some("123"));
        assert_eq!(leftover_pid(".SHA256SUMS.77"), Some("77"));
        assert_eq!(
            leftover_pid(".finnix-1-source.tar.partial.4242"),
            Some("4242")
        );
        assert_eq!(leftover_pid("finnix-1-source.tar"), None);
        assert_eq!(leftover_pid(".gitkeep"), None);
        assert_eq!(leftover_pid(".staging.abc"), None);
        assert_eq!(leftover_pid("SHA256SUMS"), None);
    }
}
