//! `cargo xtask`: the Finnix build pipeline. See ARCHITECTURE.md.
//!
//! `cli` names the jobs, `pipeline` orders the stages (`stages/`),
//! `release/` writes, signs and verifies `dist/`, `checks/` proves what was
//! built, `guest/` drives booted systems, `support/` holds
//! what they all share. This file only dispatches.

mod checks;
mod cli;
mod guest;
mod pipeline;
mod release;
mod stages;
mod support;
#[cfg(test)]
mod tidy;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::support::context::Ctx;

fn main() {
    // Files the stages create get their modes from the code, never from the
    // caller's umask (verify-repro builds with another one).
    unsafe { libc::umask(0o022) };
    support::fsutil::install_interrupt_cleanup();
    let cli = Cli::parse();
    let result = run(cli);
    // What lives as long as the process (the UML socket directory).
    support::fsutil::remove_live_temps();
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx::load(cli.locked, cli.jobs)?;
    match cli.command {
        Command::Kernel(c) => c.run(&ctx),
        Command::Initrd(c) => c.run(&ctx),
        Command::Rootfs(c) => c.run(&ctx),
        Command::Plan(c) => c.run(&ctx),
        Command::Squashfs(c) => c.run(&ctx),
        Command::Iso(c) => c.run(&ctx),
        Command::Dist(c) => c.run(&ctx),
        Command::Source(c) => c.run(&ctx),
        Command::Sign(c) => c.run(&ctx),
        Command::Keygen(c) => c.run(&ctx),
        Command::CheckVerifyRelease(c) => c.run(&ctx),
        Command::CheckSnapshot(c) => c.run(&ctx),
        Command::CheckSource(c) => c.run(&ctx),
        Command::VerifyRelease(c) => {
            c.run(&ctx)?;
            if !c.rebuild {
                return Ok(());
            }
            cli::VerifyRepro {
                profile: None,
                keep_kernels: false,
                against: Some(c.dir),
            }
            .run(&ctx)
        }
        Command::CowImage(c) => c.run(&ctx),
        Command::Clean(c) => c.run(&ctx),
        Command::Boot(c) => c.run(&ctx),
        Command::CheckCow(c) => c.run(&ctx),
        Command::CheckCreate(c) => c.run(&ctx),
        Command::CheckNested(c) => c.run(&ctx),
        Command::CheckRescue(c) => c.run(&ctx),
        Command::CheckHardware(c) => c.run(&ctx),
        Command::CheckNetboot(c) => c.run(&ctx),
        Command::CheckAccess(c) => c.run(&ctx),
        Command::CheckFresh(c) => c.run(&ctx),
        Command::VerifyRepro(c) => c.run(&ctx),
        Command::Bench(c) => c.run(&ctx),
        Command::WriteSquashfs(c) => c.run(&ctx),
        Command::Test(c) => c.run(&ctx),
    }
}
