//! Stage `initrd`: the initramfs. The static Rust `/init` (initrd-src/) and
//! Debian's static busybox (the emergency shell, `switch_root`), packed as a
//! newc cpio and compressed with zstd.

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stages::StageId;

use crate::support::cache::{cached_stage, Key, KeyBuilder};
use crate::support::context::{package_version, Ctx};
use crate::support::cpio::{Archive, Kind};
use crate::support::ui;

const RECIPE: u32 = 1;
const BUSYBOX: &str = "/bin/busybox";
const ZSTD_LEVEL: i32 = 19;

pub struct Initrd {
    pub entry: PathBuf,
    pub key: Key,
}

impl Initrd {
    pub fn image(&self) -> PathBuf {
        self.entry.join("initrd.img")
    }
}

pub fn build(ctx: &Ctx) -> Result<Initrd> {
    ui::stage(
        &ctx.logs(),
        StageId::Initrd.name(),
        "build the static /init, pack it with busybox (newc cpio, zstd)",
        |s| {
            let init = crate::support::rustbin::build(ctx, s, "finnix-init", "init")?;
            let key = KeyBuilder::new(StageId::Initrd.key_label(), RECIPE)
                .file("init", &init)?
                .file("busybox", Path::new(BUSYBOX))?
                .text("busybox-static", package_version("busybox-static"))
                .text("epoch", ctx.epoch.global.to_string())
                .text("compression", format!("zstd-{ZSTD_LEVEL}"))
                .finish();
            cached_stage(
                &ctx.cache,
                s,
                StageId::Initrd.name(),
                key,
                |entry, key| Ok(Initrd { entry, key }),
                |initrd| ui::display_path(&initrd.image()),
                |s, tmp| {
                    let applets = s.read(crate::cmd!(BUSYBOX, "--list-full"))?;
                    let archive = archive(
                        &fs::read(&init)?,
                        &fs::read(BUSYBOX).context("reading /bin/busybox")?,
                        &applets,
                    );
                    let image = compress(&archive.write(ctx.epoch.global as u32))?;
                    fs::write(tmp.join("initrd.img"), &image)?;
                    Ok(format!(
                        "{}, {} entries",
                        ui::fmt_size(image.len() as u64),
                        archive.len()
                    ))
                },
            )
        },
    )
}

/// The initramfs contents.
pub fn archive(init: &[u8], busybox: &[u8], applets: &str) -> Archive {
    let mut a = Archive::new();
    a.add("init", 0o755, Kind::File(init.to_vec()));
    a.add("bin/busybox", 0o755, Kind::File(busybox.to_vec()));
    for path in applets
        .lines()
        .map(str::trim)
        .filter(|p| p.contains('/') && *p != "bin/busybox")
    {
        a.add(path, 0o777, Kind::Symlink("/bin/busybox".into()));
    }
    for dir in ["dev", "proc", "sys", "run", "newroot", "mnt"] {
        a.dir(dir);
    }
    a.add("tmp", 0o1777, Kind::Dir);
    a.add("root", 0o700, Kind::Dir);
    // The kernel opens /dev/console for /init before devtmpfs is mounted.
    a.add("dev/console", 0o600, Kind::CharDev { major: 5, minor: 1 });
    a.add("dev/null", 0o666, Kind::CharDev { major: 1, minor: 3 });
    a
}

pub fn compress(cpio: &[u8]) -> Result<Vec<u8>> {
    compress_at(cpio, ZSTD_LEVEL)
}

/// zstd at `level`, single-threaded: the same bytes on every machine.
pub fn compress_at(cpio: &[u8], level: i32) -> Result<Vec<u8>> {
    Ok(zstd::bulk::compress(cpio, level)?)
}

impl crate::cli::Initrd {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        crate::stages::ensure_tools(ctx, &[StageId::Initrd], &[])?;
        build(ctx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pack_is_a_zstd_frame_of_the_applets_but_linuxrc() {
        let applets = "bin/sh\nsbin/switch_root\nlinuxrc\nbin/busybox\n";
        let a = compress(&archive(b"init", b"busybox", applets).write(1_700_000_000)).unwrap();
        assert_eq!(&a[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
        let cpio = zstd::bulk::decompress(&a, 1 << 20).unwrap();
        let text = String::from_utf8_lossy(&cpio);
        assert!(text.contains("sbin/switch_root") && !text.contains("linuxrc"));
    }
}
