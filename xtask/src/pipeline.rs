//! The pipeline: every stage in order, each cached on its own, and the
//! release in `dist/`. `live` (the live system), `release` (with the domU
//! kernel, the ISO, the tarballs and the network boot's files), `dist` (the
//! release into `dist/` with SHA256SUMS and the manifest), `cow` (COW mode's
//! image); then the commands that run single stages.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::cli;
use crate::stages::cow_image::{self, CowImage};
use crate::stages::initrd::{self, Initrd};
use crate::stages::iso::{self, Iso};
use crate::stages::kernel::metal::{self, MetalKernel};
use crate::stages::kernel::{self, Flavor, Kernel};
use crate::stages::netboot::{self, Netboot};
use crate::stages::rootfs::{self, Rootfs};
use crate::stages::squashfs::{self, Squashfs};
use crate::stages::tarballs;
use crate::stages::{ensure_tools, StageId};
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::ui;

/// Everything the live system is made of, for one profile.
pub struct Live {
    pub profile: String,
    pub uml: Kernel,
    pub metal: MetalKernel,
    pub initrd: Initrd,
    pub rootfs: Rootfs,
    pub squashfs: Squashfs,
}

/// The stages up to the squashfs root.
pub fn live(ctx: &Ctx, profile: &str, squashfs_opts: squashfs::Options) -> Result<Live> {
    Ok(overlapped(ctx, profile, squashfs_opts, false)?.0)
}

/// The first stages side by side: on one thread the compiled kernels (UML,
/// then the domU kernel when `with_xen`), which keep the cores busy; on a
/// second Debian's kernel with its modules and the initramfs; on a third
/// the profile's base tree (mmdebstrap: mostly waiting on the network and
/// the disk), then, once the UML kernel and the second thread's stages are
/// there, the root filesystem and its squashfs. Each stage prints its line
/// when it ends. A failure on one side stops the others at their next stage
/// (a kernel compile in progress runs to its end: it is kept in the cache
/// for the next run).
fn overlapped(
    ctx: &Ctx,
    profile: &str,
    squashfs_opts: squashfs::Options,
    with_xen: bool,
) -> Result<(Live, Option<Kernel>)> {
    let base_profile = crate::support::config::Profile::load(&ctx.root, profile)?;
    let failed = &AtomicBool::new(false);
    let base_profile = &base_profile;
    let (uml_tx, uml_rx) = std::sync::mpsc::channel::<Kernel>();
    eprintln!(
        "==> side by side, each line when its stage ends: {} | kernel-metal, initrd | {}, then {}, {}",
        if with_xen { "kernel-um, kernel-xen" } else { "kernel-um" },
        StageId::RootfsBase.dir(profile),
        StageId::Rootfs.dir(profile),
        StageId::Squashfs.dir(profile),
    );
    let _lines = ui::Deferred::on();
    std::thread::scope(|scope| {
        let boot = scope.spawn(move || -> Result<(MetalKernel, Initrd)> {
            let metal = flag(failed, metal::build(ctx))?;
            let initrd = flag(failed, initrd::build(ctx))?;
            Ok((metal, initrd))
        });
        let side = scope.spawn(move || -> Result<Live> {
            let base = flag(failed, rootfs::base(ctx, profile, base_profile));
            let (metal, initrd) = boot
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the initramfs' thread panicked")))?;
            let base = base?;
            let uml = uml_rx.recv().map_err(|_| {
                anyhow::anyhow!("the UML kernel was not built (its stage says why)")
            })?;
            let rootfs = flag(
                failed,
                rootfs::build_on(ctx, profile, base_profile, &base, &uml, &initrd, &metal),
            )?;
            let squashfs = flag(failed, squashfs::build(ctx, &rootfs, squashfs_opts))?;
            Ok(Live {
                profile: profile.to_string(),
                uml,
                metal,
                initrd,
                rootfs,
                squashfs,
            })
        });
        let kernels = (|| -> Result<Option<Kernel>> {
            let uml = flag(failed, kernel::build(ctx, Flavor::Um))?;
            let _ = uml_tx.send(uml);
            drop(uml_tx);
            if !with_xen || failed.load(Ordering::SeqCst) {
                return Ok(None);
            }
            kernel::build(ctx, Flavor::Xen).map(Some)
        })();
        let live = side
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the root filesystem's thread panicked")));
        let xen = kernels?;
        let live = live?;
        anyhow::ensure!(!with_xen || xen.is_some(), "the domU kernel was not built");
        Ok((live, xen))
    })
}

/// `r`, and a failure noted in `failed` (the other thread stops).
fn flag<T>(failed: &AtomicBool, r: Result<T>) -> Result<T> {
    if r.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    r
}

/// The squashfs options finnix.toml sets.
pub fn default_squashfs(ctx: &Ctx) -> squashfs::Options {
    ctx.config.squashfs
}

/// A release: the live system, the domU kernel, the ISO and the tarballs.
pub struct Release {
    pub live: Live,
    pub xen: Kernel,
    pub iso: Iso,
    pub netboot: Netboot,
    /// The release files in the cache: name → path.
    pub files: Vec<(String, PathBuf)>,
}

/// Every stage, in order (cached ones are skipped).
pub fn release(ctx: &Ctx, profile: &str) -> Result<Release> {
    let (live, xen) = overlapped(ctx, profile, default_squashfs(ctx), true)?;
    let xen = xen.expect("asked for");
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
    let netboot = netboot::build(ctx, profile, &live.metal, &live.initrd, &live.squashfs)?;
    let mut files = vec![(iso.name.clone(), iso.image()), xen_tar, uml_tar];
    files.extend(netboot.files(ctx, profile));
    Ok(Release {
        live,
        xen,
        iso,
        netboot,
        files,
    })
}

// ---- the glue the jobs share ----------------------------------------------

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
    StageId::Netboot,
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

// ---- the stage commands -----------------------------------------------------

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
