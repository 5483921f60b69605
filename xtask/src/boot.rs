//! `cargo xtask boot <target>`: boot an artifact the way a user would, either
//! interactively or (`--check`) non-interactively: wait for the ready
//! banner, run commands in the guest's shell, shut it down cleanly.

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
    /// UML squashroot plus a swap partition (ubdb), an ext4 data partition
    /// (ubdc) and eth0 on a TAP inside a private network namespace: the
    /// boot flow lines, fstab, swap, DHCP, `shutdown -h now`.
    UmlFlow,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::UmlSquashroot => "uml-squashroot",
            Target::UmlFlow => "uml-flow",
        }
    }

    /// The console the guest's root shell is on (its prompt names it).
    fn console(self) -> &'static str {
        match self {
            Target::UmlSquashroot | Target::UmlFlow => "tty0",
        }
    }

    fn mode(self) -> &'static str {
        match self {
            Target::UmlSquashroot | Target::UmlFlow => "uml",
        }
    }
}

/// What a successful check measured.
#[derive(Debug, Clone)]
pub struct Report {
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

fn uml_console_args(interactive: bool) -> Vec<&'static str> {
    let mut v = vec!["con=null", "con0=fd:0,fd:1", "ssl=null"];
    if !interactive {
        v.push("noreboot");
    }
    v
}

/// An empty file of `mib` MiB holding a filesystem made by `mkfs`.
fn disk_image(path: &Path, mib: u64, mkfs: &[&str]) -> Result<()> {
    let f = fs::File::create(path)?;
    f.set_len(mib << 20)?;
    drop(f);
    let (prog, args) = mkfs.split_first().expect("mkfs command");
    let out = Command::new(prog)
        .args(args)
        .arg(path)
        .output()
        .with_context(|| format!("cannot run {prog}"))?;
    ensure!(
        out.status.success(),
        "{prog} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The command line for a target, as a user would type it in `dir`.
fn command(target: Target, inputs: &Inputs, dir: &Path, interactive: bool) -> Result<Command> {
    let mem = format!("mem={}M", inputs.memory_mib);
    let uml = |args: &[&str]| {
        let mut c = Command::new("./linux");
        c.current_dir(dir)
            .args(args)
            .args(uml_console_args(interactive))
            .arg(format!("uml_dir={}", dir.display()))
            .env("TMPDIR", uml_tmpdir(dir));
        c
    };
    match target {
        Target::UmlSquashroot => {
            link(&inputs.uml_kernel, dir, "linux")?;
            link(&inputs.initrd, dir, "initrd.img")?;
            link(&inputs.squashfs, dir, "FINNIX")?;
            Ok(uml(&[
                &mem,
                "initrd=initrd.img",
                "root=/dev/ubda",
                "ubdar=FINNIX",
                "squashroot",
                "uml",
            ]))
        }
        Target::UmlFlow => {
            link(&inputs.uml_kernel, dir, "linux")?;
            link(&inputs.initrd, dir, "initrd.img")?;
            link(&inputs.squashfs, dir, "FINNIX")?;
            disk_image(&dir.join("swap.img"), 32, &["mkswap", "-q"])?;
            disk_image(&dir.join("data.img"), 32, &["mkfs.ext4", "-q", "-F"])?;
            let inner = uml(&[
                &mem,
                "initrd=initrd.img",
                "root=/dev/ubda",
                "ubdar=FINNIX",
                "ubdb=swap.img",
                "ubdc=data.img",
                "eth0=tuntap,tap0",
                "squashroot",
                "uml",
            ]);
            // A private network namespace with its own TAP: nothing on the
            // host's network changes.
            let mut script =
                String::from("ip tuntap add dev tap0 mode tap && ip link set tap0 up && exec");
            script.push_str(&format!(" {}", shell_words(&inner)));
            let mut c = Command::new("unshare");
            c.current_dir(dir)
                .args(["--net", "--", "sh", "-c", &script]);
            for (k, v) in inner.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            Ok(c)
        }
    }
}

fn shell_words(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Boot interactively: the guest's console is this terminal.
pub fn interactive(ctx: &Ctx, target: Target, inputs: &Inputs) -> Result<()> {
    let run = ctx.cache.temp_dir(&format!("boot-{}", target.name()))?;
    let mut cmd = command(target, inputs, run.path(), true)?;
    eprintln!(
        "==> booting {} (leave with `poweroff` in the guest)\n    {}",
        target.name(),
        shell_words(&cmd)
    );
    let status = cmd.status().context("cannot start the guest")?;
    ensure!(status.success(), "the guest exited with {status}");
    Ok(())
}

/// Boot non-interactively and check it: the ready banner, commands in the
/// guest's shell, a clean shutdown.
pub fn check(ctx: &Ctx, target: Target, inputs: &Inputs) -> Result<Report> {
    let run = ctx.cache.temp_dir(&format!("boot-{}", target.name()))?;
    let logs = ctx.logs();
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("console-{}.log", target.name()));
    let cmd = command(target, inputs, run.path(), false)?;
    let mut guest = Guest::start(cmd, &log)?;
    match drive(&mut guest, target, inputs) {
        Ok((banner_secs, shell_secs, mem_used_kib)) => Ok(Report {
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

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines that must appear in this order in `text`.
pub fn in_order(text: &str, lines: &[&str]) -> Result<()> {
    let mut rest = text;
    for line in lines {
        match rest.find(line) {
            Some(i) => rest = &rest[i + line.len()..],
            None => bail!("{line:?} is missing, or out of order, in:\n{text}"),
        }
    }
    Ok(())
}

fn drive(guest: &mut Guest, target: Target, inputs: &Inputs) -> Result<(f64, f64, u64)> {
    let start = Instant::now();
    let banner = format!("Finnix version {} ready;", inputs.version);
    let mut boot_text = guest.expect(&banner, BOOT_TIMEOUT)?;
    let banner_secs = start.elapsed().as_secs_f64();
    boot_text.push_str(&guest.expect("packages available", COMMAND_TIMEOUT)?);
    let prompt = format!("root@{}:", target.console());
    guest.expect(&prompt, BOOT_TIMEOUT)?;
    let shell_secs = start.elapsed().as_secs_f64();

    let release = guest.run("uname -r", COMMAND_TIMEOUT)?;
    ensure!(
        release.trim() == inputs.kernel_release,
        "uname -r in the guest says {release:?}, expected {:?}",
        inputs.kernel_release
    );
    let facts = guest.run(
        "hostname; cat /run/finnix/mode; ls /FINNIX/etc/finnix-release",
        COMMAND_TIMEOUT,
    )?;
    let facts: Vec<&str> = facts.lines().collect();
    ensure!(
        facts.first() == Some(&"finnix"),
        "the hostname is not finnix: {facts:?}"
    );
    ensure!(
        facts.get(1) == Some(&target.mode()),
        "/run/finnix/mode is not {}: {facts:?}",
        target.mode()
    );
    ensure!(
        facts.get(2) == Some(&"/FINNIX/etc/finnix-release"),
        "/FINNIX does not show the squashfs root: {facts:?}"
    );
    // N in the banner is what dpkg says is installed.
    let n: usize = boot_text
        .rsplit("ready; ")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no package count in the banner")?;
    let counted = guest.run("if command -v dpkg >/dev/null; then dpkg -l | grep -c '^ii'; else grep -c '^Status: install ok installed' /var/lib/dpkg/status; fi", COMMAND_TIMEOUT)?;
    ensure!(
        counted.trim() == n.to_string(),
        "the banner says {n} packages, dpkg -l counts {counted:?}"
    );

    if target == Target::UmlFlow {
        in_order(
            &boot_text,
            &[
                "Welcome to Finnix for User Mode Linux!",
                "[*] Running Linux kernel",
                "[*] Host: Linux",
                "[*] Scanning for partitions and creating /etc/fstab... done",
                "[*] Using swap partition /dev/ubdb",
                "[*] Starting background DHCP request... eth0",
                &banner,
            ],
        )?;
        let fstab = guest.run("cat /etc/fstab; cat /proc/swaps", COMMAND_TIMEOUT)?;
        ensure!(
            fstab.contains("/dev/ubdb\tnone\tswap\tsw"),
            "fstab lacks the swap partition:\n{fstab}"
        );
        ensure!(
            fstab.contains("/dev/ubdc\t/mnt/ubdc\text4\tnoauto"),
            "fstab lacks the data partition:\n{fstab}"
        );
        ensure!(
            !fstab.contains("/dev/ubda\t"),
            "fstab lists the live medium:\n{fstab}"
        );
        ensure!(
            fstab.lines().any(|l| l.starts_with("/dev/ubdb ")),
            "swap is not in use:\n{fstab}"
        );
        let mounted = guest.run("grep -c ubdc /proc/mounts; mount /mnt/ubdc && echo hello > /mnt/ubdc/file && cat /mnt/ubdc/file", COMMAND_TIMEOUT)?;
        ensure!(
            mounted.lines().next() == Some("0"),
            "the data partition was mounted automatically"
        );
        ensure!(
            mounted.ends_with("hello"),
            "the data partition does not mount from fstab: {mounted:?}"
        );
    }

    let mem = guest.run("cat /proc/meminfo", COMMAND_TIMEOUT)?;
    let field = |name: &str| -> u64 {
        mem.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let used = field("MemTotal:").saturating_sub(field("MemAvailable:"));

    guest.send("if command -v shutdown >/dev/null; then shutdown -h now; else poweroff; fi\n")?;
    let shutdown_text = guest.expect("[*] Shutting down...", COMMAND_TIMEOUT)?;
    let mut want = vec![
        "[*] Sent all processes the TERM signal...",
        "[*] Sent all processes the KILL signal...",
    ];
    if target == Target::UmlFlow {
        want.push("[*] Shutting down network device... eth0");
    }
    want.extend([
        "[*] Turning off swap.... done",
        "[*] Unmounting remaining file systems... done",
        "[*] Shutting down...",
    ]);
    in_order(&shutdown_text, &want)?;
    let status = guest.wait(COMMAND_TIMEOUT)?;
    ensure!(
        status.success(),
        "the guest exited with {status} after shutting down (expected 0)"
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

    #[test]
    fn lines_in_order() {
        assert!(in_order("a\nb\nc\n", &["a", "c"]).is_ok());
        assert!(in_order("a\nb\nc\n", &["c", "a"]).is_err());
        assert!(in_order("a\n", &["z"]).is_err());
    }
}
