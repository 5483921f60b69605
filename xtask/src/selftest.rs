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

    let um = kernel::build(ctx, Flavor::Um)?;
    let xen = kernel::build(ctx, Flavor::Xen)?;
    check_uml_kernel(ctx, &um)?;
    check_domu_kernel(ctx, &xen)?;
    eprintln!("all checks passed");
    Ok(())
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
