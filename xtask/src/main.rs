//! `cargo xtask`: the Finnix build pipeline. See ARCHITECTURE.md.

mod cache;
mod config;
mod context;
mod date;
mod fsutil;
mod kernel;
mod lock;
mod prereq;
mod selftest;
mod ui;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::context::Ctx;
use crate::kernel::Flavor;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build Finnix: kernels, initrd, root filesystem, ISO, Xen and UML tarballs")]
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
