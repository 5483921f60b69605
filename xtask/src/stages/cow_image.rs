//! Stage `cow-image`: `finnix.img`, an ext4 image of a profile's live root
//! filesystem that UML boots without an initramfs in COW mode, as the spec
//! writes it:
//!
//! ```text
//! ./linux mem=64M root=/dev/ubda ubda=${TMPCOW},finnix.img uml
//! ```
//!
//! `mke2fs -d` fills the image; reproducible: the UUID and directory hash
//! seed come from SOURCE_DATE_EPOCH, mke2fs's clock is E2FSPROGS_FAKE_TIME,
//! its settings are `configs/cow/mke2fs.conf` (not the host's), and debugfs
//! sets every inode's ctime and atime (which `mke2fs -d` copies from the
//! tree as the build found it) to the epoch.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use crate::stages::StageId;

use crate::stages::rootfs::Rootfs;
use crate::support::cache::{cached_stage, sha256_hex, KeyBuilder};
use crate::support::context::Ctx;
use crate::support::ui;

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
    let stage = StageId::CowImage.dir(&rootfs.profile);
    let what = format!(
        "ext4 image of the {} root filesystem for COW mode (mke2fs -d)",
        rootfs.profile
    );
    ui::stage(&ctx.logs(), &stage, what, |s| {
        let conf = ctx.root.join("configs/cow/mke2fs.conf");
        let key = KeyBuilder::new(StageId::CowImage.key_label(), RECIPE)
            .key("rootfs", &rootfs.key)
            .text("epoch", ctx.epoch.global.to_string())
            .text("free MiB", FREE_MIB.to_string())
            .file("mke2fs.conf", &conf)?
            .text("mke2fs", mke2fs_version())
            .finish();
        cached_stage(
            &ctx.cache,
            s,
            &stage,
            key,
            |entry, _| Ok(CowImage { entry }),
            |img| ui::display_path(&img.image()),
            |s, tmp| {
                let image = tmp.join("finnix.img");
                let tree = rootfs.tree();
                let (paths, bytes) = walk(&tree)?;
                let mib = size_mib(bytes, FREE_MIB);
                fs::File::create(&image)?.set_len(mib << 20)?;
                let uuid = uuid(&rootfs.profile, ctx.epoch.global);
                let epoch = ctx.epoch.global.to_string();
                s.run(
                    crate::cmd!(
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
                let script = tmp.join("times.debugfs");
                fs::write(&script, debugfs_script(&paths, ctx.epoch.global)?)?;
                s.run(
                    crate::cmd!("debugfs", "-w", "-f", &script, &image)
                        .env("E2FSPROGS_FAKE_TIME", &epoch),
                )?;
                fs::remove_file(&script)?;
                // The filesystem must be clean as written.
                s.run(
                    crate::cmd!("e2fsck", "-f", "-n", &image).env("E2FSPROGS_FAKE_TIME", &epoch),
                )?;
                Ok(format!("{mib} MiB, {} inodes, UUID {uuid}", paths.len()))
            },
        )
    })
}

fn mke2fs_version() -> String {
    crate::cmd!("mke2fs", "-V")
        .output()
        .map(|o| o.lines().next().unwrap_or("").to_string())
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
    let guard = crate::support::fsutil::TempDir::track(tmp.clone());
    crate::cmd!(
        "cp",
        "--sparse=always",
        "--reflink=auto",
        "--",
        img.image(),
        &tmp
    )
    .output()?;
    if let Err((_, e)) = guard.persist(dest) {
        bail!("cannot move the image into {}: {e}", dest.display());
    }
    Ok(())
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
