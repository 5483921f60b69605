//! `cargo xtask`: the Finnix build pipeline. See ARCHITECTURE.md.

mod boot;
mod cache;
mod config;
mod context;
mod cpio;
mod date;
mod dist;
mod fsutil;
mod guest;
mod initrd;
mod kernel;
mod lock;
mod prereq;
mod rootfs;
mod rustbin;
mod selftest;
mod squashfs;
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
    /// Boot an artifact: interactively, or `--check` for a pass/fail run.
    Boot {
        #[arg(value_enum)]
        target: boot::Target,
        #[arg(long)]
        profile: Option<String>,
        /// Non-interactive: wait for the ready banner, run a command, shut down.
        #[arg(long)]
        check: bool,
    },
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
        Command::Rootfs { profile } => {
            let ctx = ctx()?;
            prereq::ensure(&["kernel", "initrd", "rootfs"], &ctx.logs())?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let um = kernel::build(&ctx, Flavor::Um)?;
            let initrd = initrd::build(&ctx)?;
            let r = rootfs::build(&ctx, &profile, &um, &initrd)?;
            eprintln!("root filesystem tree: {}", r.tree().display());
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
        Command::Boot {
            target,
            profile,
            check,
        } => {
            let ctx = ctx()?;
            prereq::ensure(
                &["kernel", "initrd", "rootfs", "squashfs", "boot"],
                &ctx.logs(),
            )?;
            let profile = profile.unwrap_or_else(|| ctx.config.rootfs.default_profile.clone());
            let live = dist::live(&ctx, &profile, dist::default_squashfs(&ctx))?;
            let inputs = selftest::boot_inputs(&ctx, &live)?;
            if check {
                let r = boot::check(&ctx, target, &inputs)?;
                eprintln!(
                    "{}: ok: ready banner after {:.1} s, shell after {:.1} s, {} MiB in use (console log: {})",
                    target.name(),
                    r.banner_secs,
                    r.shell_secs,
                    r.mem_used_kib / 1024,
                    ui::display_path(&r.log)
                );
                Ok(())
            } else {
                boot::interactive(&ctx, target, &inputs)
            }
        }
        Command::Test { unit_only } => selftest::run(&ctx()?, unit_only),
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
