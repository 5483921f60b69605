//! `cargo xtask boot <target>`: boot an artifact the way a user would, either
//! interactively or (`--check`) non-interactively: wait for the ready
//! banner, run a command in the guest's shell, shut it down cleanly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::context::Ctx;
use crate::guest::Guest;
use crate::ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// UML with the squashfs itself as the root device: `ubdar=FINNIX squashroot uml`.
    UmlSquashroot,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::UmlSquashroot => "uml-squashroot",
        }
    }
}

/// What a successful check measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: Target,
    pub banner_secs: f64,
    pub shell_secs: f64,
    pub mem_used_kib: u64,
    pub log: PathBuf,
}

/// The files a boot needs.
pub struct Inputs {
    pub uml_kernel: PathBuf,
    pub initrd: PathBuf,
    pub squashfs: PathBuf,
    pub kernel_release: String,
    pub version: String,
    pub memory_mib: u32,
}

/// Milestones of a boot, in order, and a line that proves each.
const MILESTONES: &[(&str, &[&str])] = &[
    ("kernel", &["Linux version"]),
    ("initrd", &["Run /init as init process", "finnix-init"]),
    ("init", &["Welcome to Finnix"]),
    ("ready banner", &["ready;"]),
];

/// The first milestone the console output does not show.
pub fn missing_milestone(output: &str) -> &'static str {
    for (name, proofs) in MILESTONES {
        if !proofs.iter().any(|p| output.contains(p)) {
            return name;
        }
    }
    "shell"
}

/// A directory for one boot: the files linked under the spec's names, and
/// UML's memory file and control socket.
fn run_dir(ctx: &Ctx, target: Target) -> Result<crate::fsutil::TempDir> {
    ctx.cache.temp_dir(&format!("boot-{}", target.name()))
}

fn link(from: &Path, dir: &Path, name: &str) -> Result<()> {
    std::os::unix::fs::symlink(from, dir.join(name))
        .with_context(|| format!("cannot link {} as {name}", from.display()))
}

/// UML's memory lives in a file in TMPDIR, which must allow exec: /dev/shm
/// when it does, else the run directory.
fn uml_tmpdir(run: &Path) -> PathBuf {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let shm_ok = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == "/dev/shm" && !f[3].split(',').any(|o| o == "noexec")
    });
    if shm_ok {
        PathBuf::from("/dev/shm")
    } else {
        run.to_path_buf()
    }
}

/// The command line for a target, as a user would type it in `dir`.
fn command(target: Target, inputs: &Inputs, dir: &Path, interactive: bool) -> Result<Command> {
    match target {
        Target::UmlSquashroot => {
            link(&inputs.uml_kernel, dir, "linux")?;
            link(&inputs.initrd, dir, "initrd.img")?;
            link(&inputs.squashfs, dir, "FINNIX")?;
            let mut c = Command::new("./linux");
            c.current_dir(dir)
                .args([
                    format!("mem={}M", inputs.memory_mib).as_str(),
                    "initrd=initrd.img",
                    "root=/dev/ubda",
                    "ubdar=FINNIX",
                    "squashroot",
                    "uml",
                ])
                .args(uml_console_args(interactive))
                .arg(format!("uml_dir={}", dir.display()))
                .arg("umid=finnix")
                .env("TMPDIR", uml_tmpdir(dir));
            Ok(c)
        }
    }
}

fn uml_console_args(interactive: bool) -> Vec<&'static str> {
    let mut v = vec!["con=null", "con0=fd:0,fd:1", "ssl=null"];
    if !interactive {
        v.push("noreboot");
    }
    v
}

/// Boot interactively: the guest's console is this terminal.
pub fn interactive(ctx: &Ctx, target: Target, inputs: &Inputs) -> Result<()> {
    let run = run_dir(ctx, target)?;
    let mut cmd = command(target, inputs, run.path(), true)?;
    eprintln!(
        "==> booting {} (leave with `poweroff` in the guest)\n    {cmd:?}",
        target.name()
    );
    let status = cmd.status().context("cannot start the guest")?;
    ensure!(status.success(), "the guest exited with {status}");
    Ok(())
}

/// Boot non-interactively and check it: the ready banner, a command in the
/// guest's shell, a clean shutdown.
pub fn check(ctx: &Ctx, target: Target, inputs: &Inputs) -> Result<Report> {
    let run = run_dir(ctx, target)?;
    let logs = ctx.logs();
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("console-{}.log", target.name()));
    let cmd = command(target, inputs, run.path(), false)?;
    let mut guest = Guest::start(cmd, &log)?;
    let result = drive(&mut guest, target, inputs);
    match result {
        Ok((banner_secs, shell_secs, mem_used_kib)) => Ok(Report {
            target,
            banner_secs,
            shell_secs,
            mem_used_kib,
            log,
        }),
        Err(e) => {
            guest.kill();
            let missing = missing_milestone(&guest.output());
            bail!(
                "{}: {e:#}\nthe {missing} did not arrive; last console lines ({}):\n{}",
                target.name(),
                ui::display_path(&log),
                guest.tail(25)
            )
        }
    }
}

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn drive(guest: &mut Guest, target: Target, inputs: &Inputs) -> Result<(f64, f64, u64)> {
    let start = Instant::now();
    let banner = format!("Finnix version {} ready;", inputs.version);
    guest.expect(&banner, BOOT_TIMEOUT)?;
    let banner_secs = start.elapsed().as_secs_f64();
    let prompt = "root@tty0:";
    guest.expect(prompt, BOOT_TIMEOUT)?;
    let shell_secs = start.elapsed().as_secs_f64();

    let release = guest.run("uname -r", COMMAND_TIMEOUT)?;
    ensure!(
        release.trim() == inputs.kernel_release,
        "uname -r in the guest says {release:?}, expected {:?}",
        inputs.kernel_release
    );
    let cmdline = guest.run("cat /proc/cmdline", COMMAND_TIMEOUT)?;
    match target {
        Target::UmlSquashroot => ensure!(
            cmdline.contains("squashroot") && cmdline.contains("uml"),
            "unexpected /proc/cmdline {cmdline:?}"
        ),
    }
    let finnix = guest.run(
        "ls /FINNIX/etc/finnix-release && cat /run/finnix/mode",
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        finnix.contains("/FINNIX/etc/finnix-release") && finnix.contains("uml"),
        "/FINNIX is not the squashfs root, or the mode is wrong: {finnix:?}"
    );
    let meminfo = guest.run("cat /proc/meminfo", COMMAND_TIMEOUT)?;
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let used = field("MemTotal:").saturating_sub(field("MemAvailable:"));

    guest.send("poweroff\n")?;
    guest.expect("[*] Shutting down...", COMMAND_TIMEOUT)?;
    let status = guest.wait(COMMAND_TIMEOUT)?;
    ensure!(
        status.success(),
        "the guest exited with {status} after poweroff (expected 0)"
    );
    Ok((banner_secs, shell_secs, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_milestone() {
        assert_eq!(missing_milestone(""), "kernel");
        assert_eq!(missing_milestone("Linux version 6.1"), "initrd");
        assert_eq!(
            missing_milestone("Linux version 6.1\nRun /init as init process\n"),
            "init"
        );
        assert_eq!(missing_milestone("Linux version\nRun /init as init process\nWelcome to Finnix for User Mode Linux!\n"), "ready banner");
    }
}
