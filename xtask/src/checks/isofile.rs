//! The ISO as a file on a multiboot stick (`findiso=`): a disk image with
//! an ESP holding a GRUB (grub-mkstandalone, with exFAT, ext2 and NTFS),
//! and the mini ISO in a subfolder of an exFAT, an ext4 and an NTFS
//! partition, made by
//! mkfs and sgdisk in the rescue check's preparation root (UML). OVMF boots
//! GRUB, which does what multiboot tools do: `loopback` on the file, then
//! the ISO's own `/boot/grub/loopback.cfg`; Finnix must reach its banner
//! from each partition. Then fsck finds every filesystem clean and the
//! ISO files unchanged; a `findiso=` naming a missing file gets /init's
//! report.

use fs_err as fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::checks::rescue::PrepRoot;
use crate::guest::console::session;
use crate::guest::qemu;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome, Stage};

const BOOT_TIMEOUT: Duration = Duration::from_secs(900);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The data partitions after the ESP: filesystem (as /proc/mounts names
/// it), GRUB's name, the device in the guest, the ISO's path there (each
/// its own, so that /init must find the one GRUB took).
const PARTITIONS: [(&str, &str, &str, &str); 3] = [
    (
        "exfat",
        "(hd0,gpt2)",
        "/dev/vda2",
        "/isos/rescue/finnix.iso",
    ),
    (
        "ext4",
        "(hd0,gpt3)",
        "/dev/vda3",
        "/boot/iso/finnix-ext4.iso",
    ),
    (
        "fuseblk",
        "(hd0,gpt4)",
        "/dev/vda4",
        "/ISO/Finnix/finnix.iso",
    ),
];

/// GRUB's own configuration (in its memdisk): read which partition to
/// take from the ESP, then boot the ISO file as multiboot tools do.
const GRUB_CFG: &str = "\
insmod all_video
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
source (hd0,gpt1)/choose.cfg
echo \"multiboot stick: loopback ${isopart}${isofile}\"
loopback loop ${isopart}${isofile}
set iso_path=${isofile}
export iso_path
set root=(loop)
configfile /boot/grub/loopback.cfg
";

/// The stick's size: the ESP, three partitions of `iso_mib` and room.
fn stick_mib(iso_mib: u64) -> u64 {
    34 + 3 * (iso_mib + 24) + 2
}

/// `mount` in the preparation root for partition `n` (ntfs-3g for NTFS).
fn mount_line(n: usize, ro: bool) -> String {
    let (fs_name, _, _, _) = PARTITIONS[n];
    let dev = format!("/dev/ubda{}", n + 2);
    match (fs_name, ro) {
        ("fuseblk", true) => format!("ntfs-3g -o ro {dev} /tmp/m"),
        ("fuseblk", false) => format!("ntfs-3g {dev} /tmp/m"),
        (f, true) => format!("mount -o ro -t {f} {dev} /tmp/m"),
        (f, false) => format!("mount -t {f} {dev} /tmp/m"),
    }
}

/// The shell lines that make the stick in the preparation root.
fn prepare_script(iso_mib: u64) -> String {
    let part = iso_mib + 24;
    let mut s = format!(
        "sgdisk -Z -n1:1M:+32M -t1:ef00 -n2:0:+{part}M -t2:0700 -n3:0:+{part}M -t3:8300 -n4:0:+{part}M -t4:0700 /dev/ubda && \
         mkfs.fat -F 16 -n ESP /dev/ubda1 && mkfs.exfat -L STICK /dev/ubda2 && mkfs.ext4 -q -L STICK2 /dev/ubda3 && \
         mkntfs -q -Q -F -L STICK3 /dev/ubda4 && \
         mkdir -p /tmp/m && mount -t vfat /dev/ubda1 /tmp/m && mkdir -p /tmp/m/EFI/BOOT && \
         cp /srv/BOOTX64.EFI /tmp/m/EFI/BOOT/ && umount /tmp/m"
    );
    for (n, (_, _, _, path)) in PARTITIONS.iter().enumerate() {
        let dir = &path[..path.rfind('/').unwrap_or(0)];
        s.push_str(&format!(
            " && {} && mkdir -p /tmp/m{dir} && cp /srv/finnix.iso /tmp/m{path} && umount /tmp/m",
            mount_line(n, false)
        ));
    }
    s
}

/// The checks after the boots: each filesystem clean, each ISO unchanged.
fn fsck_script(sha: &str) -> String {
    let mut s = "mkdir -p /tmp/m && fsck.fat -n /dev/ubda1 && fsck.exfat -n /dev/ubda2 && e2fsck -fn /dev/ubda3 && ntfsfix -n /dev/ubda4".to_string();
    for (n, (_, _, _, path)) in PARTITIONS.iter().enumerate() {
        s.push_str(&format!(
            " && {} && echo \"{sha}  /tmp/m{path}\" | sha256sum -c && umount /tmp/m",
            mount_line(n, true)
        ));
    }
    s
}

fn grub(work: &Path) -> Result<PathBuf> {
    let cfg = work.join("grub.cfg");
    fs::write(&cfg, GRUB_CFG)?;
    let efi = work.join("BOOTX64.EFI");
    crate::cmd!(
        "grub-mkstandalone",
        "-O",
        "x86_64-efi",
        "-o",
        &efi,
        "--modules=part_gpt fat exfat ext2 ntfs iso9660 loopback linux normal configfile serial terminal echo test all_video",
        format!("boot/grub/grub.cfg={}", cfg.display())
    )
    .output()?;
    Ok(efi)
}

/// Write `choose.cfg` on the ESP (mtools at the partition's offset).
fn choose(disk: &Path, part: &str, path: &str) -> Result<()> {
    let cfg = disk.with_extension("choose.cfg");
    fs::write(&cfg, format!("set isopart={part}\nset isofile={path}\n"))?;
    crate::cmd!(
        "mcopy",
        "-o",
        "-i",
        format!("{}@@1048576", disk.display()),
        &cfg,
        "::/choose.cfg"
    )
    .env("MTOOLS_SKIP_CHECK", "1")
    .output()?;
    Ok(())
}

fn boot_stick(ctx: &Ctx, disk: &Path, n: usize, version: &str) -> Result<String> {
    let (fs_name, _, dev, path) = PARTITIONS[n];
    let log = ctx.logs().join(format!("console-isofile-{fs_name}.log"));
    let mut c = qemu::command("pc", qemu::MIB);
    c.args(["-bios", qemu::OVMF])
        .arg("-drive")
        .arg(format!("if=none,id=d0,format=raw,file={}", disk.display()))
        .args(["-device", "virtio-blk-pci,drive=d0,bootindex=0"]);
    session(c, &log, |g| {
        let start = Instant::now();
        let (banner, _, text) = g.boot_to_shell(version, "ttyS0", start, BOOT_TIMEOUT)?;
        ensure!(
            text.contains(&format!("Booting {path} from {dev}")),
            "/init did not say it booted {path} from {dev}"
        );
        let mounts = g.run(
            "grep -E 'isohost|/run/finnix/medium' /proc/mounts",
            COMMAND_TIMEOUT,
        )?;
        ensure!(
            mounts.contains(&format!("{dev} /run/finnix/isohost {fs_name} ro")),
            "the stick's {fs_name} partition is not mounted read-only: {mounts}"
        );
        g.check_trouble()?;
        Ok(format!("{fs_name}: ready banner at {banner:.0} s"))
    })
}

/// `findiso=` naming a file that is not there: /init's report.
fn missing(ctx: &Ctx, disk: &Path, boot: &Boot) -> Result<String> {
    let log = ctx.logs().join("console-isofile-missing.log");
    let mut c = qemu::command("pc", qemu::MIB);
    c.arg("-drive")
        .arg(format!(
            "if=virtio,format=raw,readonly=on,file={}",
            disk.display()
        ))
        .arg("-kernel")
        .arg(boot.kernel)
        .arg("-initrd")
        .arg(boot.initrd)
        .args([
            "-append",
            "findiso=/isos/nope.iso rootwait=5 console=ttyS0,115200",
        ]);
    session(c, &log, |g| {
        let text = g
            .expect("Emergency shell (busybox)", BOOT_TIMEOUT)
            .context("no failure report")?;
        for want in [
            "findiso=/isos/nope.iso: no such file",
            "/dev/vda2: exfat, no /isos/nope.iso",
            "/dev/vda3: ext4, no /isos/nope.iso",
            "/dev/vda4: ntfs, no /isos/nope.iso",
        ] {
            ensure!(text.contains(want), "the report lacks {want:?}");
        }
        Ok("a missing file: reported, each partition named".into())
    })
}

/// The release's ISO, and its kernel and initramfs as files (the missing
/// file's boot starts them directly).
pub struct Boot<'a> {
    pub iso: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
}

/// Make the stick, boot it from each partition, check it afterwards.
pub fn check(ctx: &Ctx, boot: &Boot, version: &str) -> Result<()> {
    let iso = boot.iso;
    let uml = crate::stages::kernel::build(ctx, crate::stages::kernel::Flavor::Um)?;
    let (tree, _) = crate::checks::rescue::prepare_root(ctx)?;
    let kernel = uml.image();
    let root = PrepRoot {
        kernel: &kernel,
        tree: &tree,
    };
    let what = "the ISO as a file on exFAT, ext4 and NTFS partitions (GRUB loopback, findiso=)";
    ui::stage(&ctx.logs(), "check-netboot-isofile", what, |s| {
        let work = ctx.cache.temp_dir("check-isofile")?;
        let w = work.path();
        fs::copy(iso, w.join("finnix.iso"))?;
        let sha = crate::support::cache::sha256_file(&w.join("finnix.iso"))?;
        grub(w)?;
        let iso_mib = fs::metadata(iso)?.len() >> 20;
        let disk = w.join("stick.img");
        fs::File::create(&disk)?.set_len(stick_mib(iso_mib) << 20)?;
        in_root(
            ctx,
            s,
            &root,
            &disk,
            "isofile-prepare",
            &prepare_script(iso_mib),
        )?;
        let mut said = Vec::new();
        for (n, (_, part, _, path)) in PARTITIONS.iter().enumerate() {
            choose(&disk, part, path)?;
            said.push(boot_stick(ctx, &disk, n, version)?);
        }
        said.push(missing(ctx, &disk, boot)?);
        in_root(ctx, s, &root, &disk, "isofile-fsck", &fsck_script(&sha))?;
        said.push(
            "afterwards: fsck clean (FAT, exFAT, ext4, NTFS), the three ISO files unchanged".into(),
        );
        Ok(((), Outcome::Passed, said.join("; ")))
    })
}

fn in_root(
    ctx: &Ctx,
    s: &mut Stage,
    root: &PrepRoot,
    disk: &Path,
    name: &str,
    script: &str,
) -> Result<()> {
    let dir = disk.parent().expect("the stick is in the work directory");
    let disks = [disk.to_path_buf()];
    crate::checks::rescue::in_preparation_root(ctx, s, root, &disks, dir, name, |g, s| {
        let (ok, text) = g.run_status(script, Duration::from_secs(600))?;
        s.note(format!("--- {name}:\n{text}"));
        ensure!(ok, "{name} failed:\n{text}");
        Ok(())
    })
}
