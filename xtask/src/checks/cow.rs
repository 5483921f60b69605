//! `cargo xtask check-cow`: COW mode booted for real. The image
//! (`stages::cow_image`) boots three times with the spec's command line:
//! changes land in the sparse COW file, a fresh COW file starts clean, the
//! image itself never changes. `--recipe` runs the spec's manual recipe in a
//! live Finnix and boots its image the same way.

use fs_err as fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::console::Guest;
use crate::stages::cow_image::{publish, CowImage};
use crate::support::cache::sha256_file;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome};

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
            let (present, note) = g.run_status("cat /root/cow-note", Duration::from_secs(60))?;
            ensure!(
                !present,
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
    let c = crate::guest::uml::command(dir, dir, args, false)?;
    s.note(format!("{log_name}: {c:?}"));
    let log = ctx.logs().join(log_name);
    let start = std::time::Instant::now();
    let mut g = Guest::start(c, &log)?;
    let (secs, _, _) = g
        .boot_to_shell(version, "tty0", start, Duration::from_secs(300))
        .with_context(|| {
            format!(
                "{log_name}: the boot to the shell failed; the guest's host processes: {}; the console's end:\n{}",
                g.process_state(),
                g.tail(25)
            )
        })?;
    Ok((g, secs))
}

/// Shut a guest down from its shell; UML must exit 0.
fn shutdown(g: &mut Guest) -> Result<()> {
    g.check_dmesg()?;
    g.send("if command -v shutdown >/dev/null; then shutdown -h now; else poweroff; fi\n")?;
    let status = g.wait(Duration::from_secs(180))?;
    ensure!(
        status.success(),
        "UML exited with {status} after shutting down"
    );
    g.check_trouble()
}

/// The spec's manual recipe, run from a live Finnix (UML, squashroot): mount
/// a disk from the generated fstab, `dd` an image file onto it, `mke2fs -j`,
/// `mount -o loop`, `rsync -a /FINNIX/ /mnt/loop/`, unmount. The image is
/// then taken out of the disk (debugfs dump) and booted in COW mode.
pub fn check_recipe(ctx: &Ctx, live: &crate::pipeline::Live, version: &str) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-cow-recipe",
        "the manual COW recipe (dd, mke2fs -j, mount -o loop, rsync -a /FINNIX/) in a live Finnix, then its image booted with a COW file",
        |s| {
            let dir = ctx.cache.temp_dir("check-cow-recipe")?;
            let d = dir.path();
            fs::copy(live.uml.image(), d.join("linux"))?;
            let data = d.join("data.img");
            fs::File::create(&data)?.set_len(2400 << 20)?;
            s.run(crate::cmd!("mkfs.ext4", "-q", "-F", &data))?;
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
            let (ok, out) = g.run_status(
                "mount /mnt/ubdb && dd if=/dev/zero of=/mnt/ubdb/finnix.img bs=1024k count=1600 && mke2fs -q -j /mnt/ubdb/finnix.img && mkdir -p /mnt/loop && mount -o loop /mnt/ubdb/finnix.img /mnt/loop && rsync -a /FINNIX/ /mnt/loop/ && umount /mnt/loop && umount /mnt/ubdb",
                Duration::from_secs(900),
            )?;
            ensure!(ok, "the recipe failed in the live system:\n{out}");
            shutdown(&mut g)?;

            let img = d.join("finnix.img");
            s.run(crate::cmd!("debugfs", "-R", format!("dump /finnix.img {}", img.display()), &data))?;
            // debugfs reports a failed write but exits 0: the size tells.
            let size = fs::metadata(&img)?.len();
            ensure!(size == 1600 << 20, "debugfs wrote {size} bytes of finnix.img, not 1600 MiB (is the disk full?)");
            // The data disk is done with: removed, its unwritten pages are
            // dropped rather than written. The image goes to disk now, so
            // that the boot below does not wait behind 1.6 GB of writeback
            // (on a slow disk, that wait looked like a hung kernel).
            fs::remove_file(&data)?;
            let t = std::time::Instant::now();
            fs::File::open(&img)?.sync_all()?;
            s.note(format!("finnix.img written to disk in {:.1}s", t.elapsed().as_secs_f64()));
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
            let (wrote, root) = g.run_status("grep ' / ' /proc/mounts; echo x > /root/x", Duration::from_secs(60))?;
            ensure!(root.contains("/dev/root / ext") && wrote, "the recipe's image is not a writable root:\n{root}");
            shutdown(&mut g)?;
            let after = sha256_file(&img)?;
            ensure!(before == after, "the recipe's finnix.img changed under COW: {before} -> {after}");
            Ok(((), Outcome::Passed, "its image boots with a COW file and stays unchanged".to_string()))
        },
    )
}

impl crate::cli::CheckCow {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::{self, LIVE_STAGES};
        use crate::stages::ensure_tools;
        use crate::support::prereq::Tools;
        ensure_tools(ctx, LIVE_STAGES, &[Tools::Cow, Tools::Boot])?;
        if self.recipe {
            // rsync and mount are in the standard profile.
            let profile = self.profile.unwrap_or_else(|| "standard".into());
            let live = pipeline::live(ctx, &profile, pipeline::default_squashfs(ctx))?;
            return check_recipe(ctx, &live, &ctx.config.distribution.version);
        }
        let profile = ctx.profile(self.profile);
        let (um, img) = pipeline::cow(ctx, &profile)?;
        check(ctx, &um.image(), &img, &ctx.config.distribution.version)
    }
}
