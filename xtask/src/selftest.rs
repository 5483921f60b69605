//! `cargo xtask test`: the README's test command. Unit tests first, then every
//! stage end to end, each output checked with a tool nobody here wrote, and
//! everything that boots booted.

use anyhow::{bail, ensure, Context, Result};

use crate::context::Ctx;
use crate::kernel::{self, Flavor, Kernel};
use crate::ui::{self, Outcome};

const READNOTES: &str = "/usr/lib/xen-4.17/bin/readnotes";

pub fn run(ctx: &Ctx, unit_only: bool) -> Result<()> {
    ui::stage(&ctx.logs(), "unit-tests", "cargo test --workspace", |s| {
        s.run(duct::cmd!("cargo", "test", "--workspace", "--quiet").dir(&ctx.root))?;
        Ok(((), Outcome::Passed, String::new()))
    })?;
    if unit_only {
        return Ok(());
    }
    crate::prereq::ensure(&["kernel", "boot"], &ctx.logs())?;

    crate::prereq::ensure(&["initrd", "rootfs", "squashfs"], &ctx.logs())?;

    // Issue 2: both kernels, checked by running them and by Xen's readnotes.
    let um = kernel::build(ctx, Flavor::Um)?;
    let xen = kernel::build(ctx, Flavor::Xen)?;
    check_uml_kernel(ctx, &um)?;
    check_domu_kernel(ctx, &xen)?;

    // Issue 3: initrd, mini root filesystem, squashfs, first boot in UML.
    let live = crate::dist::live(ctx, "mini", crate::dist::default_squashfs(ctx))?;
    check_initrd(ctx, &live.initrd)?;
    check_squashfs(ctx, &live)?;
    let inputs = boot_inputs(ctx, &live)?;
    check_boot(ctx, crate::boot::Target::UmlSquashroot, &inputs)?;
    eprintln!("all checks passed");
    Ok(())
}

/// `cpio -t` lists the initramfs; /init is a static binary.
fn check_initrd(ctx: &Ctx, initrd: &crate::initrd::Initrd) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-initrd",
        "cpio -t on the initramfs; /init and busybox static",
        |s| {
            let listing = s.read(
                duct::cmd!("zstd", "-dc", initrd.image()).pipe(duct::cmd!("cpio", "-t", "--quiet")),
            )?;
            let names: Vec<&str> = listing.lines().collect();
            for want in [
                "init",
                "bin/busybox",
                "bin/sh",
                "sbin/switch_root",
                "dev/console",
            ] {
                ensure!(names.contains(&want), "the initramfs lacks {want}");
            }
            let mut sorted = names.clone();
            sorted.sort();
            ensure!(sorted == names, "cpio entries are not in sorted order");
            let dir = ctx.cache.temp_dir("check-initrd")?;
            s.run(
                duct::cmd!("zstd", "-dc", initrd.image())
                    .pipe(duct::cmd!("cpio", "-i", "--quiet", "--make-directories"))
                    .dir(dir.path()),
            )?;
            for bin in ["init", "bin/busybox"] {
                let headers = s.read(duct::cmd!(
                    "readelf",
                    "--program-headers",
                    dir.path().join(bin)
                ))?;
                ensure!(
                    !headers.contains("INTERP"),
                    "{bin} in the initramfs is dynamically linked"
                );
            }
            let size = std::fs::metadata(initrd.image())?.len();
            Ok((
                (),
                Outcome::Passed,
                format!("{} entries, {}", names.len(), ui::fmt_size(size)),
            ))
        },
    )
}

/// The squashfs equals its tree as `unsquashfs -lln` (squashfs-tools) sees
/// it: names, modes, owners, sizes, device numbers, link targets.
fn check_squashfs(ctx: &Ctx, live: &crate::dist::Live) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-squashfs",
        "unsquashfs -lln against the root filesystem tree",
        |s| {
            let listing =
                s.read(duct::cmd!("unsquashfs", "-lln", live.squashfs.image()).env("TZ", "UTC"))?;
            let image = crate::squashfs::listing_from_unsquashfs(&listing);
            let tree = crate::squashfs::listing_from_tree(&live.rootfs.tree())?;
            let diff = crate::squashfs::compare_listings(&tree, &image);
            ensure!(
                diff.is_empty(),
                "the squashfs differs from its tree:\n{}",
                diff.join("\n")
            );
            let size = std::fs::metadata(live.squashfs.image())?.len();
            Ok((
                (),
                Outcome::Passed,
                format!("{} entries equal, {}", tree.len(), ui::fmt_size(size)),
            ))
        },
    )
}

/// Boot a target non-interactively and check it.
pub fn check_boot(
    ctx: &Ctx,
    target: crate::boot::Target,
    inputs: &crate::boot::Inputs,
) -> Result<crate::boot::Report> {
    ui::stage(
        &ctx.logs(),
        &format!("boot-{}", target.name()),
        format!("boot {} and check it", target.name()),
        |_| {
            let r = crate::boot::check(ctx, target, inputs)?;
            let detail = format!(
                "ready banner {:.1} s, shell {:.1} s, {} MiB in use, console log {}",
                r.banner_secs,
                r.shell_secs,
                r.mem_used_kib / 1024,
                ui::display_path(&r.log)
            );
            Ok((r, Outcome::Passed, detail))
        },
    )
}

/// `linux --version` runs and `--showconfig` carries squashfs and overlayfs.
fn check_uml_kernel(ctx: &Ctx, um: &Kernel) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-kernel-um",
        "run the UML kernel: --version, --showconfig",
        |s| {
            let version = s.read(duct::cmd!(um.image(), "--version"))?;
            ensure!(
                version.trim() == um.info.release,
                "--version printed {:?}, expected {:?}",
                version.trim(),
                um.info.release
            );
            let config = s.read(duct::cmd!(um.image(), "--showconfig"))?;
            for line in [
                "CONFIG_SQUASHFS=y",
                "CONFIG_OVERLAY_FS=y",
                "CONFIG_BLK_DEV_INITRD=y",
                "CONFIG_BLK_DEV_UBD=y",
            ] {
                ensure!(
                    config.lines().any(|l| l == line),
                    "--showconfig lacks {line}"
                );
            }
            Ok((
                (),
                Outcome::Passed,
                format!(
                    "{} --version = {}",
                    ui::display_path(&um.image()),
                    version.trim()
                ),
            ))
        },
    )
}

/// Xen's own readnotes finds the PV entry point and the PVH one.
fn check_domu_kernel(ctx: &Ctx, xen: &Kernel) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-kernel-xen",
        "Xen's readnotes on the domU bzImage: PV ENTRY and PVH PHYS32_ENTRY",
        |s| {
            let notes = s.read(duct::cmd!(READNOTES, xen.image()))?;
            s.note(&notes);
            for note in ["ENTRY", "PHYS32_ENTRY"] {
                let found = notes
                    .lines()
                    .any(|l| l.trim_start().starts_with(note) && l.contains("0x"));
                if !found {
                    bail!(
                        "readnotes on {} shows no {note} note",
                        xen.image().display()
                    );
                }
            }
            let vmlinux = xen.vmlinux().context("the domU entry has no vmlinux")?;
            let elf = s.read(duct::cmd!(READNOTES, &vmlinux))?;
            ensure!(
                elf.contains("PHYS32_ENTRY"),
                "readnotes on vmlinux shows no PHYS32_ENTRY note"
            );
            Ok((
                (),
                Outcome::Passed,
                "ENTRY and PHYS32_ENTRY present".to_string(),
            ))
        },
    )
}

/// The files a boot of `live` needs.
pub fn boot_inputs(ctx: &Ctx, live: &crate::dist::Live) -> Result<crate::boot::Inputs> {
    let profile = crate::config::Profile::load(&ctx.root, &live.profile)?;
    Ok(crate::boot::Inputs {
        uml_kernel: live.uml.image(),
        initrd: live.initrd.image(),
        squashfs: live.squashfs.image(),
        kernel_release: live.uml.info.release.clone(),
        version: ctx.config.distribution.version.clone(),
        memory_mib: profile.memory_mib,
    })
}
