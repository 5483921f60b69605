//! `cargo xtask`: the Finnix build pipeline. See ARCHITECTURE.md.

mod bench;
mod boot;
mod cache;
mod checksums;
mod config;
mod context;
mod cow;
mod cpio;
mod create;
mod date;
mod dist;
mod fresh;
mod fsutil;
mod guest;
mod initrd;
mod iso;
mod kernel;
mod lock;
mod prereq;
mod repro;
mod rootfs;
mod rustbin;
mod selftest;
mod squashfs;
mod tarballs;
mod ui;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::context::Ctx;
use crate::kernel::Flavor;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build Finnix: kernels, initrd, root filesystem, ISO, Xen and UML tarballs"
)]
struct Cli {
    /// Fail if a fetched input (the kernel source) differs from finnix.lock (use for releases).
    #[arg(long, global = true)]
    locked: bool,
    /// Parallel jobs for compilers and compressors (default: all cores).
    #[arg(long, short, global = true)]
    jobs: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Patch, configure and build the UML and/or the Xen domU kernel.
    Kernel {
        #[arg(long, value_enum, default_value = "all")]
        flavor: FlavorArg,
    },
    /// Build the initramfs: the static /init and busybox, as a zstd newc cpio.
    Initrd,
    /// Build a profile's root filesystem tree (configs/profiles/<name>.toml).
    Rootfs {
        #[arg(long)]
        profile: Option<String>,
        /// Only the base tree (busybox or mmdebstrap), which needs no kernel.
        #[arg(long)]
        base_only: bool,
    },
    /// Print each independent stage's cache key (`name=key` lines, for a CI
    /// cache): kernel-um, kernel-xen, rootfs-base-<profile>.
    Plan {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Pack a profile's root filesystem as squashfs with backhand.
    Squashfs {
        #[arg(long)]
        profile: Option<String>,
        /// Overrides configs/finnix.toml.
        #[arg(long, value_enum)]
        compression: Option<squashfs::Compression>,
        /// Bytes (power of two, 4096 to 1048576); overrides configs/finnix.toml.
        #[arg(long)]
        block_size: Option<u32>,
    },
    /// Assemble the hybrid ISO (BIOS and UEFI, CD and USB) with xorriso.
    Iso {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Build every stage and write the release into dist/: ISO, Xen and UML
    /// tarballs, SHA256SUMS and the manifest.
    Dist {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Boot an artifact: interactively, or `--check` for a pass/fail run
    /// (`boot --check all`: every target, then a table). Targets: uml-iso,
    /// uml-squashroot, uml-readonly, uml-flow, toram, bios-cd, uefi-cd,
    /// usb-bios, usb-uefi, xen-pvh, xen-pv.
    Boot {
        #[arg(value_parser = parse_boot_target)]
        target: BootTarget,
        #[arg(long)]
        profile: Option<String>,
        /// Non-interactive: wait for the ready banner, run a command, shut down.
        #[arg(long)]
        check: bool,
    },
    /// Write dist/finnix.img: the profile's root filesystem as an ext4 image
    /// for UML's COW mode (`./linux root=/dev/ubda ubda=COWFILE,finnix.img uml`).
    CowImage {
        #[arg(long)]
        profile: Option<String>,
    },
    /// Boot finnix.img in COW mode three times: a change persists in the COW
    /// file, a fresh COW file starts clean, the image never changes.
    CheckCow {
        #[arg(long)]
        profile: Option<String>,
        /// Instead: the spec's manual recipe (dd, mke2fs -j, mount -o loop,
        /// rsync -a /FINNIX/) run in a live Finnix, its image booted with COW.
        #[arg(long)]
        recipe: bool,
    },
    /// `finnix create` on this host, in a network namespace of its own: two
    /// UML guests from the release ISO, DHCP, ping, list, stop, nothing left.
    CheckCreate {
        #[arg(long)]
        profile: Option<String>,
    },
    /// `finnix create` inside a running Finnix: the ISO (standard profile by
    /// default) booted in qemu with 1 GiB, a nested UML guest started,
    /// pinged, listed and stopped. Slow: UML under TCG.
    CheckNested {
        #[arg(long, default_value = "standard")]
        profile: String,
    },
    /// Build every artifact twice from scratch (different paths, time zone,
    /// locale, umask, host name, user, file order, time) and compare them bit
    /// for bit; or rebuild and compare with a published release (--against).
    VerifyRepro {
        #[arg(long)]
        profile: Option<String>,
        /// Reuse this checkout's kernels in both builds instead of compiling
        /// them twice (their reproducibility is then checked elsewhere).
        #[arg(long)]
        keep_kernels: bool,
        /// A published release to compare with: its dist directory or SHA256SUMS.
        #[arg(long)]
        against: Option<std::path::PathBuf>,
    },
    /// Benchmarks: `bench squashfs` compares our squashfs writer with mksquashfs.
    Bench {
        #[arg(value_enum)]
        what: BenchWhat,
        #[arg(long)]
        profile: Option<String>,
        /// Runs of each writer (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Write a squashfs image of a directory tree (what the squashfs stage runs; used by the benchmark).
    #[command(hide = true)]
    WriteSquashfs {
        #[arg(long, value_enum)]
        compression: squashfs::Compression,
        #[arg(long)]
        block_size: u32,
        #[arg(long)]
        epoch: i64,
        #[arg(long)]
        threads: usize,
        tree: std::path::PathBuf,
        out: std::path::PathBuf,
    },
    /// The README's commands on a pristine Debian 12 root (mmdebstrap):
    /// `test --unit-only` and `dist` set themselves up there (kernels seeded).
    CheckFresh,
    /// Run the test suite: unit tests, then every stage end to end with real boots.
    Test {
        /// Only the unit tests (no kernels, no boots).
        #[arg(long)]
        unit_only: bool,
    },
    /// Remove the stage cache (and dist/ with --dist).
    Clean {
        #[arg(long)]
        dist: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum BootTarget {
    All,
    One(boot::Target),
}

fn parse_boot_target(s: &str) -> Result<BootTarget, String> {
    use clap::ValueEnum;
    if s == "all" {
        return Ok(BootTarget::All);
    }
    boot::Target::from_str(s, false)
        .map(BootTarget::One)
        .map_err(|_| {
            let names: Vec<&str> = boot::Target::ALL.iter().map(|t| t.name()).collect();
            format!("unknown target {s:?}: expected all, {}", names.join(", "))
        })
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchWhat {
    /// backhand (our squashfs stage) against mksquashfs on the same tree.
    Squashfs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FlavorArg {
    Um,
    Xen,
    All,
}

impl FlavorArg {
    fn flavors(self) -> Vec<Flavor> {
        match self {
            FlavorArg::Um => vec![Flavor::Um],
            FlavorArg::Xen => vec![Flavor::Xen],
            FlavorArg::All => Flavor::ALL.to_vec(),
        }
    }
}

fn main() {
    // Files the stages create get their modes from the code, never from the
    // caller's umask (verify-repro builds with another one).
    unsafe { libc::umask(0o022) };
    fsutil::install_interrupt_cleanup();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let ctx = || Ctx::load(cli.locked, cli.jobs);
    match cli.command {
        Command::Kernel { flavor } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel"], &ctx.logs())?;
            for f in flavor.flavors() {
                kernel::build(&ctx, f)?;
            }
            Ok(())
        }
        Command::Initrd => {
            let ctx = ctx()?;
            prereq::ensure(&["initrd"], &ctx.logs())?;
            initrd::build(&ctx)?;
            Ok(())
        }
        Command::Rootfs { profile, base_only } => {
            let ctx = ctx()?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            if base_only {
                prereq::ensure(&["rootfs"], &ctx.logs())?;
                let p = config::Profile::load(&ctx.root, &profile)?;
                let base = rootfs::base(&ctx, &profile, &p)?;
                eprintln!("base tree: {}", base.tree().display());
                return Ok(());
            }
            prereq::ensure(&["kernel", "initrd", "rootfs"], &ctx.logs())?;
            let um = kernel::build(&ctx, Flavor::Um)?;
            let initrd = initrd::build(&ctx)?;
            let r = rootfs::build(&ctx, &profile, &um, &initrd)?;
            eprintln!("root filesystem tree: {}", r.tree().display());
            Ok(())
        }
        Command::Plan { profile } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "rootfs"], &ctx.logs())?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let source = kernel::source::locked(&ctx)?.ok_or_else(|| {
                anyhow::anyhow!("finnix.lock has no kernel source: run `cargo xtask kernel` once")
            })?;
            for flavor in Flavor::ALL {
                println!(
                    "{}={}",
                    flavor.stage(),
                    kernel::key(&ctx, flavor, &source)?.hex
                );
            }
            let p = config::Profile::load(&ctx.root, &profile)?;
            println!(
                "rootfs-base-{profile}={}",
                rootfs::base_key(&ctx, &profile, &p)?.hex
            );
            println!("source-date-epoch={}", ctx.epoch.global);
            Ok(())
        }
        Command::Squashfs {
            profile,
            compression,
            block_size,
        } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "initrd", "rootfs", "squashfs"], &ctx.logs())?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let mut opts = dist::default_squashfs(&ctx);
            opts.compression = compression.unwrap_or(opts.compression);
            opts.block_size = block_size.unwrap_or(opts.block_size);
            opts.validate()?;
            let live = dist::live(&ctx, &profile, opts)?;
            eprintln!("squashfs image: {}", live.squashfs.image().display());
            Ok(())
        }
        Command::Iso { profile } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "iso"],
                &ctx.logs(),
            )?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let live = dist::live(&ctx, &profile, dist::default_squashfs(&ctx))?;
            let xen = kernel::build(&ctx, Flavor::Xen)?;
            let iso = iso::build(&ctx, &profile, &live.squashfs, &xen, &live.initrd)?;
            eprintln!("ISO image: {}", iso.image().display());
            Ok(())
        }
        Command::Dist { profile } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "iso"],
                &ctx.logs(),
            )?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let artifacts = dist::dist(&ctx, &profile, &ctx.dist_dir())?;
            print!("{}", dist::table(&artifacts));
            Ok(())
        }
        Command::Boot {
            target,
            profile,
            check,
        } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "iso", "boot"],
                &ctx.logs(),
            )?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let targets: Vec<boot::Target> = match target {
                BootTarget::All => boot::Target::ALL.to_vec(),
                BootTarget::One(t) => vec![t],
            };
            let inputs = if targets.iter().any(|t| t.needs_release()) {
                let release = dist::release(&ctx, &profile)?;
                selftest::release_inputs(&ctx, &release)?
            } else {
                let live = dist::live(&ctx, &profile, dist::default_squashfs(&ctx))?;
                selftest::boot_inputs(&ctx, &live)?
            };
            match (check, targets.as_slice()) {
                (false, [t]) => boot::interactive(&ctx, *t, &inputs),
                (false, _) => {
                    anyhow::bail!("`boot all` needs --check (one target at a time is interactive)")
                }
                (true, _) => selftest::check_boots(&ctx, &targets, &inputs, &profile),
            }
        }
        Command::CheckNested { profile } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "iso", "boot"],
                &ctx.logs(),
            )?;
            let release = dist::release(&ctx, &profile)?;
            create::check_nested(&ctx, &release.iso.image(), &ctx.config.distribution.version)?;
            Ok(())
        }
        Command::CowImage { profile } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "initrd", "rootfs", "cow"], &ctx.logs())?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let (um, img) = selftest::cow_image(&ctx, &profile)?;
            let dest = ctx.dist_dir().join("finnix.img");
            cow::publish(&img, &dest)?;
            let kernel = um.image();
            eprintln!(
                "{} (sha256 {})
boot it: {} mem=64M root=/dev/ubda ubda=finnix.cow,{} uml",
                ui::display_path(&dest),
                cache::sha256_file(&dest)?,
                ui::display_path(&kernel),
                ui::display_path(&dest)
            );
            Ok(())
        }
        Command::CheckCow { profile, recipe } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "initrd", "rootfs", "cow", "boot"], &ctx.logs())?;
            if recipe {
                // rsync and mount are in the standard profile.
                let profile = profile.unwrap_or_else(|| "standard".into());
                let live = dist::live(&ctx, &profile, dist::default_squashfs(&ctx))?;
                return cow::check_recipe(&ctx, &live, &ctx.config.distribution.version);
            }
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let (um, img) = selftest::cow_image(&ctx, &profile)?;
            cow::check(&ctx, &um.image(), &img, &ctx.config.distribution.version)?;
            Ok(())
        }
        Command::CheckCreate { profile } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "iso", "create"],
                &ctx.logs(),
            )?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let release = dist::release(&ctx, &profile)?;
            create::check(&ctx, &selftest::create_files(&release))?;
            Ok(())
        }
        Command::Bench {
            what: BenchWhat::Squashfs,
            profile,
            runs,
        } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "initrd", "rootfs", "squashfs"], &ctx.logs())?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let um = kernel::build(&ctx, Flavor::Um)?;
            let initrd = initrd::build(&ctx)?;
            let rootfs = rootfs::build(&ctx, &profile, &um, &initrd)?;
            let opts = dist::default_squashfs(&ctx);
            let work = ctx.cache.temp_dir("bench-squashfs")?;
            let size = duct::cmd!("du", "-sb", rootfs.tree()).read()?;
            eprintln!(
                "==> bench squashfs: {} tree ({} bytes), {}, {} KiB blocks, {} threads, {runs} run(s) each",
                profile,
                size.split_whitespace().next().unwrap_or("?"),
                opts.compression.name(),
                opts.block_size / 1024,
                ctx.jobs
            );
            let (ours, theirs) = bench::squashfs(
                &rootfs.tree(),
                work.path(),
                opts,
                ctx.epoch.global,
                ctx.jobs,
                runs,
            )?;
            print!("{}", bench::report(&ours, &theirs));
            Ok(())
        }
        Command::VerifyRepro {
            profile,
            keep_kernels,
            against,
        } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "iso", "repro"],
                &ctx.logs(),
            )?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let same = repro::run(
                &ctx,
                &repro::Options {
                    profile,
                    keep_kernels,
                    against,
                },
            )?;
            if !same {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::WriteSquashfs {
            compression,
            block_size,
            epoch,
            threads,
            tree,
            out,
        } => {
            let opts = squashfs::Options {
                compression,
                block_size,
            };
            let stats = squashfs::write_image(&tree, &out, opts, epoch, threads)?;
            eprintln!(
                "{}: {} inodes, {} bytes, {} blocks compressed ahead",
                out.display(),
                stats.nodes,
                stats.bytes,
                stats.predicted
            );
            Ok(())
        }
        Command::Test { unit_only } => selftest::run(&ctx()?, unit_only),
        Command::CheckFresh => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "fresh"], &ctx.logs())?;
            fresh::check(&ctx)
        }

        Command::Clean { dist } => {
            let ctx = ctx()?;
            eprintln!("removing {}", ctx.cache.root.display());
            fsutil::remove_all(&ctx.cache.root)?;
            if dist {
                let d = ctx.dist_dir();
                for entry in std::fs::read_dir(&d)? {
                    let p = entry?.path();
                    if p.file_name().is_some_and(|n| n != ".gitkeep") {
                        fsutil::remove_all(&p)?;
                    }
                }
            }
            Ok(())
        }
    }
}
