//! Stage `iso`: the hybrid ISO, assembled with xorriso (archiso's recipe).
//!
//! `FINNIX/FINNIX` is the squashfs; `boot/vmlinuz` Debian's signed kernel
//! (stage `kernel-metal`) and `boot/initrd.img` the common initrd followed
//! by that kernel's initramfs modules. BIOS boots isolinux from the CD's El
//! Torito entry or from the hybrid MBR on a USB stick. UEFI boots, with or
//! without Secure Boot, Debian's shim (signed by Microsoft's UEFI CA) and
//! Debian's signed GRUB for removable media (gcdx64.efi, which finds the
//! medium by `/.disk/info` and reads `/boot/grub/grub.cfg`), from an El
//! Torito EFI image that is also appended as a GPT EFI system partition for
//! USB. Boot menus are data: `configs/boot/`.

use fs_err as fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::stages::debs::{self, Deb};
use crate::stages::StageId;

use crate::stages::initrd::Initrd;
use crate::stages::kernel::metal::MetalKernel;
use crate::stages::squashfs::Squashfs;
use crate::support::cache::{cached_stage, Key, KeyBuilder};
use crate::support::context::{package_version, tool_version, Ctx};
use crate::support::ui::{self, Stage};

const RECIPE: u32 = 3;
const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
const ISOHYBRID_MBR: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
const SYSLINUX_MODULES: &str = "/usr/lib/syslinux/modules/bios";
const SYSLINUX_FILES: &[&str] = &["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"];
/// The EFI system partition: (file in the package tree, name in EFI/BOOT/).
/// shim starts `grubx64.efi` beside itself, and MokManager when a
/// signature fails (to enrol a key).
pub const ESP_FILES: &[(&str, &str)] = &[
    ("usr/lib/shim/shimx64.efi.signed", "BOOTX64.EFI"),
    (
        "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
        "grubx64.efi",
    ),
    ("usr/lib/shim/mmx64.efi.signed", "mmx64.efi"),
];
/// The EFI system partition image (FAT), in KiB.
const ESP_KIB: u64 = 8192;
const ESP_GPT_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// The signed UEFI boot chain, by lock role and config name.
fn efi_debs(ctx: &Ctx, s: &mut Stage) -> Result<Vec<Deb>> {
    let m = &ctx.config.metal;
    let mut all = Vec::new();
    for (role, name) in [
        ("shim", &m.shim),
        ("shim-helpers", &m.shim_helpers),
        ("grub-efi", &m.grub),
    ] {
        all.push(debs::fetch(ctx, s, role, name, debs::no_metapackage)?);
    }
    Ok(all)
}

pub struct Iso {
    pub entry: PathBuf,
    pub key: Key,
    pub name: String,
}

impl Iso {
    pub fn image(&self) -> PathBuf {
        self.entry.join(&self.name)
    }
}

/// The tools whose versions shape the image (for the key and the manifest).
pub fn tool_versions() -> Vec<(String, String)> {
    vec![
        ("xorriso".into(), tool_version("xorriso")),
        ("isolinux".into(), package_version("isolinux")),
        ("syslinux-common".into(), package_version("syslinux-common")),
        ("dosfstools".into(), package_version("dosfstools")),
        ("mtools".into(), package_version("mtools")),
    ]
}

fn fill(template: &str, ctx: &Ctx) -> String {
    let d = &ctx.config.distribution;
    template
        .replace("@NAME@", &d.name)
        .replace("@VERSION@", &d.version)
        .replace("@ID_FILE@", &id_file(ctx))
}

/// The ISO's identity file, which the boot loaders search for.
pub fn id_file(ctx: &Ctx) -> String {
    format!("/FINNIX/finnix-{}.id", ctx.config.distribution.version)
}

pub fn build(
    ctx: &Ctx,
    profile: &str,
    squashfs: &Squashfs,
    metal: &MetalKernel,
    initrd: &Initrd,
) -> Result<Iso> {
    let stage = StageId::Iso.dir(profile);
    let d = &ctx.config.distribution;
    let name = crate::stages::tarballs::names(ctx, profile).iso;
    ui::stage(
        &ctx.logs(),
        &stage,
        format!("assemble the hybrid ISO with xorriso ({profile})"),
        |s| {
            let boot = ctx.root.join("configs/boot");
            let efi = efi_debs(ctx, s)?;
            let mut k = KeyBuilder::new(StageId::Iso.key_label(), RECIPE);
            k.key("squashfs", &squashfs.key)
                .key("kernel-metal", &metal.key)
                .key("initrd", &initrd.key);
            for deb in &efi {
                k.text(&format!("deb {}", deb.id.spec()), &deb.id.sha256);
            }
            for f in ["isolinux.cfg", "grub.cfg", "loopback.cfg"] {
                k.file(&format!("configs/boot/{f}"), &boot.join(f))?;
            }
            k.text(
                "distribution",
                format!(
                    "{} {} {} {}",
                    d.name, d.version, d.volume_label, d.publisher
                ),
            )
            .text("epoch", ctx.epoch.global.to_string())
            .text("name", &name);
            for (tool, v) in tool_versions() {
                k.text(&format!("tool {tool}"), v);
            }
            let key = k.finish();
            cached_stage(
                &ctx.cache,
                s,
                &stage,
                key,
                |entry, key| {
                    Ok(Iso {
                        entry,
                        key,
                        name: name.clone(),
                    })
                },
                |iso| ui::display_path(&iso.image()),
                |s, out| {
                    let work = ctx.cache.temp_dir(&format!("{stage}-work"))?;
                    let root = work.path().join("root");
                    stage_tree(ctx, s, &root, squashfs, metal, initrd)?;
                    let esp = work.path().join("efiboot.img");
                    efi_image(ctx, s, &efi, work.path(), &esp)?;
                    let iso = out.join(&name);
                    xorriso(ctx, s, &root, &esp, &iso)?;
                    Ok(ui::fmt_size(fs::metadata(&iso)?.len()))
                },
            )
        },
    )
}

/// The ISO's (and the network boot's) initramfs. The kernel unpacks
/// concatenated archives in turn: /init and busybox, then the modules
/// that find the medium (and ntfs-3g).
pub fn initramfs(initrd: &Initrd, metal: &MetalKernel) -> Result<Vec<u8>> {
    let mut both = fs::read(initrd.image())?;
    both.extend(fs::read(metal.initrd_modules())?);
    Ok(both)
}

fn put(dest: &Path, from: &Path) -> Result<()> {
    fs::create_dir_all(dest.parent().expect("has parent"))?;
    fs::copy(from, dest)
        .with_context(|| format!("cannot copy {} to {}", from.display(), dest.display()))?;
    fs::set_permissions(dest, std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn write(dest: &Path, text: &str) -> Result<()> {
    write_bytes(dest, text.as_bytes())
}

fn write_bytes(dest: &Path, data: &[u8]) -> Result<()> {
    fs::create_dir_all(dest.parent().expect("has parent"))?;
    fs::write(dest, data)?;
    Ok(())
}

/// The files of the ISO, every date set to SOURCE_DATE_EPOCH.
fn stage_tree(
    ctx: &Ctx,
    _s: &Stage,
    root: &Path,
    squashfs: &Squashfs,
    metal: &MetalKernel,
    initrd: &Initrd,
) -> Result<()> {
    let boot = ctx.root.join("configs/boot");
    let d = &ctx.config.distribution;
    put(&root.join("FINNIX/FINNIX"), &squashfs.image())?;
    put(&root.join("boot/vmlinuz"), &metal.image())?;
    write_bytes(&root.join("boot/initrd.img"), &initramfs(initrd, metal)?)?;
    // What Debian's removable-media GRUB searches for to find its medium.
    write(
        &root.join(".disk/info"),
        &format!("{} {} live rescue system\n", d.name, d.version),
    )?;
    // What grub.cfg searches for: a small file naming this release (GRUB's
    // `search --file` gave "no such device" for the 330 MiB squashfs).
    write(
        &root.join(id_file(ctx).trim_start_matches('/')),
        &format!("{} {}\n", d.name, d.version),
    )?;
    put(&root.join("isolinux/isolinux.bin"), Path::new(ISOLINUX_BIN))?;
    for f in SYSLINUX_FILES {
        put(
            &root.join("isolinux").join(f),
            &Path::new(SYSLINUX_MODULES).join(f),
        )?;
    }
    write(
        &root.join("isolinux/isolinux.cfg"),
        &fill(&fs::read_to_string(boot.join("isolinux.cfg"))?, ctx),
    )?;
    write(
        &root.join("boot/grub/grub.cfg"),
        &fill(&fs::read_to_string(boot.join("grub.cfg"))?, ctx),
    )?;
    // Multiboot sticks' GRUB: the ISO as a file (findiso=).
    write(
        &root.join("boot/grub/loopback.cfg"),
        &fill(&fs::read_to_string(boot.join("loopback.cfg"))?, ctx),
    )?;
    crate::support::fsutil::normalise(root, ctx.epoch.global)?;
    Ok(())
}

/// shim, MokManager and Debian's signed GRUB (ESP_FILES) in a FAT image made
/// reproducible (`mkfs.fat --invariant`, a volume id from the epoch, mtools
/// dates from SOURCE_DATE_EPOCH). The binaries are copied as signed.
fn efi_image(ctx: &Ctx, s: &Stage, efi: &[Deb], work: &Path, esp: &Path) -> Result<()> {
    let unpacked = work.join("efi-debs");
    for deb in efi {
        debs::extract(s, deb, &unpacked)?;
    }
    let volume_id = format!("{:08x}", (ctx.epoch.global as u64) & 0xffff_ffff);
    let epoch = ctx.epoch.global.to_string();
    s.run(crate::cmd!(
        "mkfs.fat",
        "-C",
        "--invariant",
        "-i",
        &volume_id,
        "-n",
        "EFIBOOT",
        esp,
        ESP_KIB.to_string()
    ))?;
    s.run(
        crate::cmd!("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("TZ", "UTC"),
    )?;
    for (from, name) in ESP_FILES {
        let file = unpacked.join(from);
        ensure!(
            file.is_file(),
            "{from} is in none of {}: the shim/GRUB packages changed their layout",
            efi.iter()
                .map(|d| d.id.spec())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // mcopy -m keeps the file's own date: make it SOURCE_DATE_EPOCH.
        crate::support::fsutil::set_times(&file, ctx.epoch.global)?;
        s.run(
            crate::cmd!(
                "mcopy",
                "-m",
                "-i",
                esp,
                &file,
                format!("::/EFI/BOOT/{name}")
            )
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("TZ", "UTC"),
        )?;
    }
    // Debian's removable-media GRUB looks for its configuration in
    // `boot/grub/` of the device it started from (the ESP, on a USB stick)
    // and reports "file `/boot/' not found" when there is none: this one
    // finds the medium by its identity file and takes its grub.cfg.
    let cfg = work.join("esp-grub.cfg");
    fs::write(
        &cfg,
        format!(
            "search --no-floppy --file --set=root {id}\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n",
            id = id_file(ctx)
        ),
    )?;
    crate::support::fsutil::set_times(&cfg, ctx.epoch.global)?;
    s.run(
        crate::cmd!("mmd", "-i", esp, "::/boot", "::/boot/grub")
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("TZ", "UTC"),
    )?;
    s.run(
        crate::cmd!("mcopy", "-m", "-i", esp, &cfg, "::/boot/grub/grub.cfg")
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("TZ", "UTC"),
    )?;
    Ok(())
}

/// xorriso in mkisofs mode: El Torito BIOS (isolinux) and EFI (the ESP as
/// an appended GPT partition) entries, a hybrid MBR, Rock Ridge and Joliet.
/// SOURCE_DATE_EPOCH fixes the volume dates, the GPT GUIDs and every file
/// date.
fn xorriso(ctx: &Ctx, s: &Stage, root: &Path, esp: &Path, iso: &Path) -> Result<()> {
    let d = &ctx.config.distribution;
    let args: Vec<String> = vec![
        "-as".into(),
        "mkisofs".into(),
        "-iso-level".into(),
        "3".into(),
        "-full-iso9660-filenames".into(),
        "-joliet".into(),
        "-joliet-long".into(),
        "-rational-rock".into(),
        "-volid".into(),
        d.volume_label.clone(),
        "-appid".into(),
        format!("{} {} live rescue system", d.name, d.version),
        "-publisher".into(),
        d.publisher.clone(),
        "-preparer".into(),
        "cargo xtask iso".into(),
        "-eltorito-boot".into(),
        "isolinux/isolinux.bin".into(),
        "-eltorito-catalog".into(),
        "isolinux/boot.cat".into(),
        "-no-emul-boot".into(),
        "-boot-load-size".into(),
        "4".into(),
        "-boot-info-table".into(),
        "-isohybrid-mbr".into(),
        ISOHYBRID_MBR.into(),
        "-partition_offset".into(),
        "16".into(),
        "-append_partition".into(),
        "2".into(),
        ESP_GPT_TYPE.into(),
        esp.display().to_string(),
        "-appended_part_as_gpt".into(),
        "-eltorito-alt-boot".into(),
        "-e".into(),
        "--interval:appended_partition_2:all::".into(),
        "-no-emul-boot".into(),
        "-output".into(),
        iso.display().to_string(),
        root.display().to_string(),
    ];
    s.run(
        crate::support::cmd::Cmd::argv("xorriso", &args)
            .env("SOURCE_DATE_EPOCH", ctx.epoch.global.to_string())
            .env("TZ", "UTC")
            .env("LC_ALL", "C"),
    )?;
    ensure!(iso.is_file(), "xorriso did not write {}", iso.display());
    Ok(())
}

/// Boot entries xorriso reports for an image (`-report_el_torito plain`).
pub fn el_torito_platforms(report: &str) -> Vec<String> {
    // Lines like: "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4     12345"
    report
        .lines()
        .filter(|l| l.starts_with("El Torito boot img :"))
        .filter_map(|l| {
            l.split(':')
                .nth(1)?
                .split_whitespace()
                .nth(1)
                .map(String::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_el_torito_report() {
        let report = "Boot record  : El Torito , MBR isohybrid cyl-align-off GPT\n\
El Torito catalog  : 12  1\n\
El Torito images   :   N  Pltf  B   Emul  Ld_seg  Hdpt  Ldsiz         LBA\n\
El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4          13\n\
El Torito boot img :   2  UEFI  y   none  0x0000  0x00   8192       99999\n";
        assert_eq!(el_torito_platforms(report), ["BIOS", "UEFI"]);
    }

    #[test]
    fn menus_name_the_version_and_have_the_entries() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let isolinux = fs::read_to_string(root.join("configs/boot/isolinux.cfg")).unwrap();
        let grub = fs::read_to_string(root.join("configs/boot/grub.cfg")).unwrap();
        for cfg in [&isolinux, &grub] {
            assert!(cfg.contains("@VERSION@"));
            for word in ["toram", "debug", "console=ttyS0,115200n8"] {
                assert!(cfg.contains(word), "{word}");
            }
        }
    }
}
