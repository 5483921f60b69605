//! The stages of the pipeline, one module each, and [`StageId`]: what every
//! stage is called, where its cache entries live, what it outputs and which
//! host tools it runs. The prerequisite check, `cargo xtask plan`, the
//! manifest and `verify-repro` all read this table; a stage that is not in
//! it cannot be named.

pub mod cow_image;
pub mod debs;
pub mod initrd;
pub mod iso;
pub mod kernel;
pub mod netboot;
pub mod rootfs;
pub mod squashfs;
pub mod tarballs;

use anyhow::Result;

use crate::support::context::Ctx;
use crate::support::prereq::{self, Tools};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageId {
    KernelSource,
    KernelUm,
    KernelXen,
    KernelMetal,
    Initrd,
    RootfsBase,
    Rootfs,
    Squashfs,
    Iso,
    TarballXen,
    TarballUml,
    Netboot,
    CowImage,
    FreshRoot,
    RescueRoot,
    RescueDisks,
    XenHost,
    SnapshotPool,
}

impl StageId {
    pub const ALL: [StageId; 18] = [
        StageId::KernelSource,
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
        StageId::CowImage,
        StageId::FreshRoot,
        StageId::RescueRoot,
        StageId::RescueDisks,
        StageId::XenHost,
        StageId::SnapshotPool,
    ];

    /// The stage's name, also its cache directory when it does not depend
    /// on a profile.
    pub fn name(self) -> &'static str {
        match self {
            StageId::KernelSource => "kernel-source",
            StageId::KernelUm => "kernel-um",
            StageId::KernelXen => "kernel-xen",
            StageId::KernelMetal => "kernel-metal",
            StageId::Initrd => "initrd",
            StageId::RootfsBase => "rootfs-base",
            StageId::Rootfs => "rootfs",
            StageId::Squashfs => "squashfs",
            StageId::Iso => "iso",
            StageId::TarballXen => "tarball-xen",
            StageId::TarballUml => "tarball-uml",
            StageId::Netboot => "netboot",
            StageId::CowImage => "cow",
            StageId::FreshRoot => "fresh-root",
            StageId::RescueRoot => "rescue-root",
            StageId::RescueDisks => "rescue-disks",
            StageId::XenHost => "xen-host",
            StageId::SnapshotPool => "snapshot-pool",
        }
    }

    /// The first input of its cache key (`KeyBuilder::new`): the name.
    pub fn key_label(self) -> &'static str {
        self.name()
    }

    /// Whether the stage has an entry per root filesystem profile.
    pub fn per_profile(self) -> bool {
        matches!(
            self,
            StageId::RootfsBase
                | StageId::Rootfs
                | StageId::Squashfs
                | StageId::Iso
                | StageId::TarballXen
                | StageId::TarballUml
                | StageId::Netboot
                | StageId::CowImage
        )
    }

    /// Its directory in the cache (and its name on the progress line):
    /// `<name>-<profile>` for per-profile stages.
    pub fn dir(self, profile: &str) -> String {
        if self.per_profile() {
            format!("{}-{profile}", self.name())
        } else {
            self.name().to_string()
        }
    }

    /// The files of an entry that are release outputs (compared by
    /// `verify-repro`): a file matches when its name starts or ends with one.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            StageId::KernelUm => &["linux-"],
            StageId::KernelXen => &["vmlinuz-", "vmlinux-"],
            StageId::KernelMetal => &["initrd-modules.img"],
            StageId::Initrd => &["initrd.img"],
            StageId::Squashfs => &["FINNIX"],
            StageId::Iso => &[".iso"],
            StageId::CowImage => &["finnix.img"],
            // Trees and fetched sources are inputs, not outputs; the
            // tarballs are compared in dist/.
            _ => &[],
        }
    }

    /// The host tools it runs.
    pub fn tools(self) -> Tools {
        match self {
            StageId::KernelSource | StageId::KernelUm | StageId::KernelXen => Tools::Kernel,
            StageId::KernelMetal => Tools::Metal,
            StageId::Initrd => Tools::Initrd,
            StageId::RootfsBase | StageId::Rootfs => Tools::Rootfs,
            StageId::Squashfs => Tools::Squashfs,
            StageId::Iso => Tools::Iso,
            StageId::TarballXen | StageId::TarballUml | StageId::Netboot => Tools::Initrd,
            StageId::CowImage => Tools::Cow,
            StageId::FreshRoot => Tools::Fresh,
            StageId::RescueRoot | StageId::RescueDisks => Tools::Rescue,
            StageId::XenHost => Tools::Boot,
            StageId::SnapshotPool => Tools::Snapshot,
        }
    }

    /// The stage named `name`, for command lines and plans.
    pub fn from_name(name: &str) -> Result<StageId, String> {
        StageId::ALL
            .iter()
            .copied()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = StageId::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown stage {name:?}: the stages are {}",
                    names.join(", ")
                )
            })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stage_name_is_refused_and_every_name_round_trips() {
        // Code names stages by StageId, so a misspelt stage does not compile;
        // a name typed by a user is checked against the table.
        let e = StageId::from_name("kernal-um").unwrap_err();
        assert!(
            e.contains("unknown stage \"kernal-um\"") && e.contains("kernel-um"),
            "{e}"
        );
        for s in StageId::ALL {
            assert_eq!(StageId::from_name(s.name()), Ok(s));
        }
    }

    #[test]
    fn per_profile_stages_get_the_profile_in_their_directory() {
        assert_eq!(StageId::Iso.dir("mini"), "iso-mini");
        assert_eq!(StageId::RootfsBase.dir("standard"), "rootfs-base-standard");
        assert_eq!(StageId::KernelUm.dir("mini"), "kernel-um");
    }
}
