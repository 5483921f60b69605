//! The pipeline: every stage in order, each cached on its own.

use anyhow::Result;

use crate::context::Ctx;
use crate::initrd::{self, Initrd};
use crate::kernel::{self, Flavor, Kernel};
use crate::rootfs::{self, Rootfs};
use crate::squashfs::{self, Squashfs};

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
