//! Stage `netboot`: what a network boot serves, beside the ISO in `dist/`:
//! Debian's signed kernel (the ISO's), the ISO's initramfs (the common one
//! followed by the kernel's modules, network cards' among them), the
//! profile's squashfs, and an iPXE script (`configs/netboot/finnix.ipxe`)
//! that boots them with `fetch=` and the squashfs's sha256 on the boot line.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stages::initrd::Initrd;
use crate::stages::kernel::metal::MetalKernel;
use crate::stages::squashfs::Squashfs;
use crate::stages::tarballs::names;
use crate::stages::StageId;
use crate::support::cache::{cached_stage, sha256_file, Key, KeyBuilder};
use crate::support::context::Ctx;
use crate::support::ui;

const RECIPE: u32 = 1;
pub const TEMPLATE: &str = "configs/netboot/finnix.ipxe";

pub struct Netboot {
    pub entry: PathBuf,
    pub key: Key,
}

impl Netboot {
    /// The release files: name → path, in the order a server lists them.
    pub fn files(&self, ctx: &Ctx, profile: &str) -> Vec<(String, PathBuf)> {
        let n = names(ctx, profile);
        [
            n.netboot_ipxe,
            n.netboot_kernel,
            n.netboot_initrd,
            n.netboot_squashfs,
        ]
        .into_iter()
        .map(|name| {
            let path = self.entry.join(&name);
            (name, path)
        })
        .collect()
    }
}

/// The iPXE script of a release: the template with the names and the sha256.
pub fn script(template: &str, ctx: &Ctx, profile: &str, squashfs_sha256: &str) -> String {
    let n = names(ctx, profile);
    let d = &ctx.config.distribution;
    template
        .replace("@NAME@", &d.name)
        .replace("@VERSION@", &d.version)
        .replace("@SCRIPT@", &n.netboot_ipxe)
        .replace("@KERNEL@", &n.netboot_kernel)
        .replace("@INITRD@", &n.netboot_initrd)
        .replace("@SQUASHFS@", &n.netboot_squashfs)
        .replace("@SHA256@", squashfs_sha256)
}

pub fn build(
    ctx: &Ctx,
    profile: &str,
    metal: &MetalKernel,
    initrd: &Initrd,
    squashfs: &Squashfs,
) -> Result<Netboot> {
    let dir = StageId::Netboot.dir(profile);
    ui::stage(
        &ctx.logs(),
        &dir,
        "the network boot's files: kernel, initramfs, squashfs, iPXE script",
        |s| {
            let mut k = KeyBuilder::new(StageId::Netboot.key_label(), RECIPE);
            let d = &ctx.config.distribution;
            k.key("kernel-metal", &metal.key)
                .key("initrd", &initrd.key)
                .key("squashfs", &squashfs.key)
                .text("distribution", format!("{} {}", d.name, d.version))
                .text("names", names(ctx, profile).netboot_ipxe)
                .file("template", &ctx.root.join(TEMPLATE))?;
            cached_stage(
                &ctx.cache,
                s,
                &dir,
                k.finish(),
                |entry, key| Ok(Netboot { entry, key }),
                |n| ui::display_path(&n.entry),
                |_, tmp| write(ctx, profile, metal, initrd, squashfs, tmp),
            )
        },
    )
}

fn write(
    ctx: &Ctx,
    profile: &str,
    metal: &MetalKernel,
    initrd: &Initrd,
    squashfs: &Squashfs,
    tmp: &Path,
) -> Result<String> {
    let n = names(ctx, profile);
    fs::copy(metal.image(), tmp.join(&n.netboot_kernel))?;
    fs::write(
        tmp.join(&n.netboot_initrd),
        crate::stages::iso::initramfs(initrd, metal)?,
    )?;
    let sq = tmp.join(&n.netboot_squashfs);
    crate::support::fsutil::link_or_copy(&squashfs.image(), &sq)?;
    let sha = sha256_file(&sq)?;
    let template =
        fs::read_to_string(ctx.root.join(TEMPLATE)).with_context(|| TEMPLATE.to_string())?;
    fs::write(
        tmp.join(&n.netboot_ipxe),
        script(&template, ctx, profile, &sha),
    )?;
    Ok(format!("squashfs sha256 {sha}"))
}
