//! COW mode: `cargo xtask cow-image` writes `finnix.img`, an ext4 image of a
//! profile's live root filesystem that UML boots without an initramfs, as the
//! spec writes it:
//!
//! ```text
//! ./linux mem=64M root=/dev/ubda ubda=${TMPCOW},finnix.img uml
//! ```
//!
//! Changes land in the sparse COW file; the image itself never changes.
//! `mke2fs -d` fills the image; reproducible: the UUID and directory hash
//! seed come from SOURCE_DATE_EPOCH, mke2fs's clock is E2FSPROGS_FAKE_TIME,
//! its settings are `configs/cow/mke2fs.conf` (not the host's), and debugfs
//! sets every inode's ctime and atime (which `mke2fs -d` copies from the
//! tree as the build found it) to the epoch. `cargo xtask check-cow` boots
//! it three times to prove the COW behaviour.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use crate::cache::{sha256_file, sha256_hex, KeyBuilder};
use crate::context::Ctx;
use crate::guest::Guest;
use crate::rootfs::Rootfs;
use crate::ui::{self, Outcome};

/// Bump when the recipe below changes what it produces.
const RECIPE: u32 = 1;

/// Free room in the image for what a COW session writes, MiB.
pub const FREE_MIB: u64 = 64;

pub struct CowImage {
    entry: PathBuf,
}

impl CowImage {
    pub fn image(&self) -> PathBuf {
        self.entry.join("finnix.img")
    }
}

/// The image's UUID, also its directory hash seed: a name-based UUID
/// (version 5 layout) of the profile and the epoch, the same in every build.
pub fn uuid(profile: &str, epoch: i64) -> String {
    let h = sha256_hex(format!("finnix cow image {profile} {epoch}").as_bytes());
    let mut b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The image size in MiB: the tree's blocks, an eighth more for the
/// filesystem's own metadata and journal, `free_mib` for changes, rounded up
/// to 16 MiB.
pub fn size_mib(tree_bytes: u64, free_mib: u64) -> u64 {
    let mib = tree_bytes.div_ceil(1 << 20);
    let total = mib + mib / 8 + 16 + free_mib;
    total.div_ceil(16) * 16
}

/// debugfs commands that set each path's ctime and atime to `epoch`.
pub fn debugfs_script(paths: &[String], epoch: i64) -> Result<String> {
    let mut out = String::new();
    for p in paths {
        ensure!(
            !p.contains('"') && !p.contains('\n') && !p.contains('\\'),
            "cannot name {p:?} in a debugfs command (a quote, backslash or newline in a file name): rename it in the profile's overlay"
        );
        for field in ["ctime", "atime"] {
            out.push_str(&format!("set_inode_field \"{p}\" {field} @{epoch}\n"));
        }
    }
    Ok(out)
}

/// Every path of the tree as the image names it ("/", "/bin", ...), sorted,
/// and the bytes its files and directories take in 4 KiB blocks.
fn walk(tree: &Path) -> Result<(Vec<String>, u64)> {
    let mut paths = Vec::new();
    let mut bytes = 0u64;
    for entry in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let entry = entry?;
        let rel = entry.path().strip_prefix(tree)?;
        paths.push(format!("/{}", rel.display()));
        let meta = entry.metadata()?;
        bytes += if meta.is_file() {
            meta.len().div_ceil(4096) * 4096
        } else {
            4096
        };
    }
    Ok((paths, bytes))
}

pub fn build(ctx: &Ctx, rootfs: &Rootfs) -> Result<CowImage> {
    let stage = format!("cow-{}", rootfs.profile);
    let what = format!(
        "ext4 image of the {} root filesystem for COW mode (mke2fs -d)",
        rootfs.profile
    );
    ui::stage(&ctx.logs(), &stage, what, |s| {
        let conf = ctx.root.join("configs/cow/mke2fs.conf");
        let key = KeyBuilder::new("cow", RECIPE)
            .key("rootfs", &rootfs.key)
            .text("epoch", ctx.epoch.global.to_string())
            .text("free MiB", FREE_MIB.to_string())
            .file("mke2fs.conf", &conf)?
            .text("mke2fs", mke2fs_version())
            .finish();
        if let Some(entry) = ctx.cache.lookup(&stage, &key) {
            let img = CowImage { entry };
            let detail = ui::display_path(&img.image());
            return Ok((img, Outcome::Cached, detail));
        }
        let tmp = ctx.cache.temp_dir(&stage)?;
        let image = tmp.path().join("finnix.img");
        let tree = rootfs.tree();
        let (paths, bytes) = walk(&tree)?;
        let mib = size_mib(bytes, FREE_MIB);
        fs::File::create(&image)?.set_len(mib << 20)?;
        let uuid = uuid(&rootfs.profile, ctx.epoch.global);
        let epoch = ctx.epoch.global.to_string();
        s.run(
            duct::cmd!(
                "mke2fs",
                "-q",
                "-F",
                "-t",
                "ext4",
                "-L",
                "FINNIX",
                "-m",
                "0",
                "-U",
                &uuid,
                "-E",
                format!("hash_seed={uuid},root_owner=0:0,nodiscard"),
                "-d",
                &tree,
                &image
            )
            .env("MKE2FS_CONFIG", &conf)
            .env("E2FSPROGS_FAKE_TIME", &epoch),
        )?;
        let script = tmp.path().join("times.debugfs");
        fs::write(&script, debugfs_script(&paths, ctx.epoch.global)?)?;
        s.run(
            duct::cmd!("debugfs", "-w", "-f", &script, &image).env("E2FSPROGS_FAKE_TIME", &epoch),
        )?;
        fs::remove_file(&script)?;
        // The filesystem must be clean as written.
        s.run(duct::cmd!("e2fsck", "-f", "-n", &image).env("E2FSPROGS_FAKE_TIME", &epoch))?;
        let entry = ctx.cache.commit(&stage, &key, tmp)?;
        let img = CowImage { entry };
        let detail = format!(
            "{} ({} MiB, {} inodes, UUID {uuid})",
            ui::display_path(&img.image()),
            mib,
            paths.len()
        );
        Ok((img, Outcome::Built, detail))
    })
}

fn mke2fs_version() -> String {
    let out = Command::new("mke2fs").arg("-V").output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
    .unwrap_or_default()
}

/// Copy the image to `dest` (sparse; a copy, never a link: an image booted
/// without COW would change the cache's), atomically.
pub fn publish(img: &CowImage, dest: &Path) -> Result<()> {
    let dir = dest.parent().context("destination directory")?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.partial",
        dest.file_name().context("file name")?.to_string_lossy()
    ));
    let guard = crate::fsutil::TempDir::track(tmp.clone());
    let out = Command::new("cp")
        .args(["--sparse=always", "--reflink=auto", "--"])
        .arg(img.image())
        .arg(&tmp)
        .output()?;
    ensure!(
        out.status.success(),
        "cannot copy {} to {}: {}",
        img.image().display(),
        tmp.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Err((_, e)) = guard.persist(dest) {
        bail!("cannot move the image into {}: {e}", dest.display());
    }
    Ok(())
}

/// Boot the image in UML three times as the spec's command line: write a
/// file, see it again with the same COW file, not with a fresh one; the
/// image's sha256 never changes; the COW file is sparse.
pub fn check(ctx: &Ctx, kernel: &Path, img: &CowImage, version: &str) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-cow",
        "COW mode: three UML boots of finnix.img (write, persist, fresh COW); the image unchanged",
        |s| {
            let dir = ctx.cache.temp_dir("check-cow")?;
            let d = dir.path();
            // As a user would: the image as a copy, the kernel as ./linux.
            fs::copy(kernel, d.join("linux"))?;
            publish(img, &d.join("finnix.img"))?;
            let before = sha256_file(&d.join("finnix.img"))?;
            s.note(format!("finnix.img sha256 {before}"));

            let boot = |cow: &str, n: u32| -> Result<(Guest, f64)> {
                let args = [
                    "mem=64M".to_string(),
                    "root=/dev/ubda".into(),
                    format!("ubda={cow},finnix.img"),
                    "uml".into(),
                ];
                boot_uml(ctx, s, d, &args, &format!("console-cow-{n}.log"), version)
            };

            // 1: the root is the image (rw ext4 on ubda, no initramfs), a file written.
            let (mut g, banner_secs) = boot("finnix.cow", 1)?;
            let facts = g.run(
                "grep ' / ' /proc/mounts; ls /run/finnix/boot.env 2>&1; grep -c ubda /etc/fstab; echo cow-note-$((6*7)) > /root/cow-note; sync; cat /root/cow-note",
                Duration::from_secs(60),
            )?;
            ensure!(
                facts.contains(" / ext4 rw"),
                "the root is not the image, ext4 and writable:\n{facts}"
            );
            ensure!(
                facts.contains("No such file"),
                "an initramfs ran (it wrote /run/finnix/boot.env):\n{facts}"
            );
            ensure!(
                facts.lines().any(|l| l.trim() == "0"),
                "/etc/fstab lists the root device ubda, which is in use:\n{facts}"
            );
            ensure!(
                facts.contains("cow-note-42"),
                "cannot write in the guest:\n{facts}"
            );
            shutdown(&mut g)?;
            let cow = d.join("finnix.cow");
            let meta = fs::metadata(&cow).context("no COW file after the first boot")?;
            use std::os::unix::fs::MetadataExt;
            let cow_kib = meta.blocks() / 2;
            ensure!(
                meta.blocks() * 512 < meta.len(),
                "the COW file is not sparse: {} bytes allocated of {}",
                meta.blocks() * 512,
                meta.len()
            );

            // 2: the same COW file: the change is there.
            let (mut g, _) = boot("finnix.cow", 2)?;
            let note = g.run("cat /root/cow-note", Duration::from_secs(60))?;
            ensure!(
                note.contains("cow-note-42"),
                "the second session with the same COW file does not see the file:\n{note}"
            );
            shutdown(&mut g)?;

            // 3: a fresh COW file: the image as built.
            let (mut g, _) = boot("fresh.cow", 3)?;
            let note = g.run(
                "cat /root/cow-note 2>&1 || echo absent-$((1+1))",
                Duration::from_secs(60),
            )?;
            ensure!(
                note.contains("absent-2"),
                "a fresh COW file sees the first session's file:\n{note}"
            );
            shutdown(&mut g)?;

            let after = sha256_file(&d.join("finnix.img"))?;
            ensure!(
                before == after,
                "finnix.img changed: sha256 {before} before, {after} after"
            );
            let detail = format!(
                "banner in {banner_secs:.1} s; COW file {} KiB allocated; image sha256 unchanged",
                cow_kib
            );
            Ok(((), Outcome::Passed, detail))
        },
    )
}

/// Start `./linux` in `dir` with `args` (console on pipes, no reboot, its
/// files in `dir`), wait for the ready banner and the root shell. Returns the
/// guest and the seconds to the banner; a panic or the emergency shell fails
/// at once.
fn boot_uml(
    ctx: &Ctx,
    s: &ui::Stage,
    dir: &Path,
    args: &[String],
    log_name: &str,
    version: &str,
) -> Result<(Guest, f64)> {
    let mut c = Command::new("./linux");
    c.current_dir(dir)
        .args(args)
        .args(["con=null", "con0=fd:0,fd:1", "ssl=null", "noreboot"])
        .arg(format!("uml_dir={}", dir.display()))
        .env("TMPDIR", crate::boot::uml_tmpdir(dir));
    s.note(format!("{log_name}: {c:?}"));
    let log = ctx.logs().join(log_name);
    let start = std::time::Instant::now();
    let mut g = Guest::start(c, &log)?;
    let banner = format!("Finnix version {version} ready;");
    let (hit, _) = g
        .expect_any(
            &[&banner, "Kernel panic", "Emergency shell"],
            Duration::from_secs(300),
        )
        .with_context(|| format!("no ready banner (console: {})", log.display()))?;
    ensure!(hit == 0, "the boot failed ({log_name}):\n{}", g.tail(25));
    let secs = start.elapsed().as_secs_f64();
    g.expect("root@tty0:", Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(300));
    Ok((g, secs))
}

/// Shut a guest down from its shell; UML must exit 0.
fn shutdown(g: &mut Guest) -> Result<()> {
    g.send("if command -v shutdown >/dev/null; then shutdown -h now; else poweroff; fi\n")?;
    let status = g.wait(Duration::from_secs(180))?;
    ensure!(
        status.success(),
        "UML exited with {status} after shutting down"
    );
    Ok(())
}

/// The spec's manual recipe, run from a live Finnix (UML, squashroot): mount
/// a disk from the generated fstab, `dd` an image file onto it, `mke2fs -j`,
/// `mount -o loop`, `rsync -a /FINNIX/ /mnt/loop/`, unmount. The image is
/// then taken out of the disk (debugfs dump) and booted in COW mode.
pub fn check_recipe(ctx: &Ctx, live: &crate::dist::Live, version: &str) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-cow-recipe",
        "the manual COW recipe (dd, mke2fs -j, mount -o loop, rsync -a /FINNIX/) in a live Finnix, then its image booted with a COW file",
        |s| {
            let dir = ctx.cache.temp_dir("check-cow-recipe")?;
            let d = dir.path();
            fs::copy(live.uml.image(), d.join("linux"))?;
            let data = d.join("data.img");
            fs::File::create(&data)?.set_len(1200 << 20)?;
            s.run(duct::cmd!("mkfs.ext4", "-q", "-F", &data))?;
            let uml = |args: &[String], n: u32| -> Result<Guest> {
                let log = format!("console-cow-recipe-{n}.log");
                Ok(boot_uml(ctx, s, d, args, &log, version)?.0)
            };

            // 1: the live system, squashfs root, the data disk as ubdb.
            let mut g = uml(
                &[
                    "mem=256M".into(),
                    format!("initrd={}", live.initrd.image().display()),
                    "root=/dev/ubda".into(),
                    format!("ubdar={}", live.squashfs.image().display()),
                    "ubdb=data.img".into(),
                    "squashroot".into(),
                    "uml".into(),
                ],
                1,
            )?;
            let out = g.run(
                "mount /mnt/ubdb && dd if=/dev/zero of=/mnt/ubdb/finnix.img bs=1024k count=600 && mke2fs -q -j /mnt/ubdb/finnix.img && mkdir -p /mnt/loop && mount -o loop /mnt/ubdb/finnix.img /mnt/loop && rsync -a /FINNIX/ /mnt/loop/ && umount /mnt/loop && umount /mnt/ubdb && echo RECIPE-$((40+2))",
                Duration::from_secs(900),
            )?;
            ensure!(out.contains("RECIPE-42"), "the recipe failed in the live system:\n{out}");
            shutdown(&mut g)?;

            let img = d.join("finnix.img");
            s.run(duct::cmd!("debugfs", "-R", format!("dump /finnix.img {}", img.display()), &data))?;
            let before = sha256_file(&img)?;

            // 2: the recipe's image, the spec's command line.
            let mut g = uml(
                &[
                    "mem=64M".into(),
                    "root=/dev/ubda".into(),
                    "ubda=recipe.cow,finnix.img".into(),
                    "uml".into(),
                ],
                2,
            )?;
            let root = g.run("grep ' / ' /proc/mounts; echo x > /root/x && echo WROTE-$((40+2))", Duration::from_secs(60))?;
            ensure!(root.contains("/dev/root / ext") && root.contains("WROTE-42"), "the recipe's image is not a writable root:\n{root}");
            shutdown(&mut g)?;
            let after = sha256_file(&img)?;
            ensure!(before == after, "the recipe's finnix.img changed under COW: {before} -> {after}");
            Ok(((), Outcome::Passed, "its image boots with a COW file and stays unchanged".to_string()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_fixed_by_profile_and_epoch() {
        let a = uuid("mini", 1_700_000_000);
        assert_eq!(a, uuid("mini", 1_700_000_000));
        assert_ne!(a, uuid("mini", 1_700_000_001));
        assert_ne!(a, uuid("standard", 1_700_000_000));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn sizes_leave_room() {
        assert_eq!(size_mib(0, 64), 80);
        assert_eq!(size_mib(13 << 20, 64), 96);
        let big = size_mib(400 << 20, 64);
        assert!(big >= 400 + 50 + 64 && big.is_multiple_of(16), "{big}");
    }

    #[test]
    fn debugfs_commands() {
        let s = debugfs_script(&["/".into(), "/etc/a b".into()], 5).unwrap();
        assert_eq!(
            s,
            "set_inode_field \"/\" ctime @5\nset_inode_field \"/\" atime @5\n\
             set_inode_field \"/etc/a b\" ctime @5\nset_inode_field \"/etc/a b\" atime @5\n"
        );
        assert!(debugfs_script(&["/x\"y".into()], 5).is_err());
    }
}
