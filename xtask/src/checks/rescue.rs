//! `cargo xtask check-rescue`: Finnix does a rescue.
//!
//! The scenarios are data (`configs/rescue/scenarios.toml`): one disk each,
//! a `prepare` script and a `rescue` script. The disks are made outside
//! Finnix by the upstream tools: a plain Debian root (`rescue-root`,
//! mmdebstrap from `configs/rescue/prepare.packages`) is booted once under
//! the UML kernel with the blank disks as ubd devices, and each `prepare`
//! runs there (`rescue-disks`, cached). The released Finnix is then booted
//! in each mode with copies of those disks (three ISO modes share a qemu
//! guest, each with its controller and its own copies: [`ISO_GUESTS`]),
//! and each `rescue` runs in it
//! with only the tools Finnix ships; the host judges what it printed (the
//! payload's sha256, the tool's own error for bad input) and compares the
//! disks that must not change. A table gives scenario by mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use fs_err as fs;
use serde::Deserialize;

use crate::checks::debian_root::{self, Recipe, SUITE};
use crate::guest::console::Guest;
use crate::stages::StageId;
use crate::support::cache::{cached_stage, sha256_file, KeyBuilder};
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome, Stage};

pub const SCENARIOS: &str = "configs/rescue/scenarios.toml";
const PREPARE_PACKAGES: &str = "configs/rescue/prepare.packages";
const ROOT_RECIPE: u32 = 1;
/// 2: every disk has a payload of its own (`payload-<scenario>`).
const DISKS_RECIPE: u32 = 2;
/// UML has 16 ubd devices; ubda is the medium.
pub const MAX_DISKS: usize = 15;
/// The payload each disk's filesystem carries (its own: read from another
/// disk, it gives another sha256): this many random bytes.
const PAYLOAD_BYTES: usize = 1 << 20;
/// The scripts' mount point ($MNT).
const MNT: &str = "/mnt";
/// Where the preparation boot sees its work directory (hostfs): the payload.
const PREP_WORK: &str = "/srv";
/// Memory for the preparation boot and Finnix in UML (LUKS2's argon2 takes
/// 32 MiB, btrfs and XFS their own).
const UML_MIB: u32 = 512;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the guest waits for udev's coldplug and the disks, on its own
/// clock: inside SCRIPT_TIMEOUT with `udevadm settle`'s 60 s to spare.
const UDEV_WAIT_SECS: u64 = 420;
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

/// One scenario of `scenarios.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    pub name: String,
    pub what: String,
    pub mib: u64,
    pub prepare: String,
    pub rescue: String,
    /// How many times the payload's sha256 must be printed.
    #[serde(default)]
    pub payload: usize,
    /// Text the output must contain.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Bad input: the script fails, printing this.
    pub fails_with: Option<String>,
    /// Bad input: the script fails with this exit status (the tool's own).
    pub exit_status: Option<i32>,
    /// The disk image must be byte-identical afterwards.
    #[serde(default)]
    pub unchanged: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    scenario: Vec<Scenario>,
}

/// Parse and check the scenario file: names unique and usable as file
/// names, a size, something to judge, no more disks than UML has.
pub fn parse(text: &str) -> Result<Vec<Scenario>, String> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let list = file.scenario;
    if list.is_empty() {
        return Err("no [[scenario]]".into());
    }
    if list.len() > MAX_DISKS {
        return Err(format!(
            "{} scenarios, but UML has room for {MAX_DISKS} disks besides its medium",
            list.len()
        ));
    }
    for (i, s) in list.iter().enumerate() {
        let at = format!("scenario {:?}", s.name);
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "{at}: a name is lower-case letters, digits and '-'"
            ));
        }
        if list[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("{at}: the name is used twice"));
        }
        if s.mib == 0 {
            return Err(format!("{at}: mib must be at least 1"));
        }
        let bad_input = s.fails_with.is_some() || s.exit_status.is_some();
        if s.exit_status == Some(0) {
            return Err(format!("{at}: exit-status 0 is success, not bad input"));
        }
        match (bad_input, s.payload) {
            (true, n) if n > 0 => {
                return Err(format!(
                    "{at}: fails-with/exit-status and payload exclude each other"
                ))
            }
            (false, 0) if s.lines.is_empty() => {
                return Err(format!(
                    "{at}: nothing to check (give payload, lines or fails-with)"
                ))
            }
            _ => {}
        }
    }
    Ok(list)
}

pub fn load(root: &Path) -> Result<Vec<Scenario>> {
    let text = fs::read_to_string(root.join(SCENARIOS))?;
    parse(&text).map_err(|e| anyhow::anyhow!("{SCENARIOS}: {e}"))
}

/// Where Finnix runs in a check, and how it names the scenarios' disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The spec's UML command line, the disks as ubdb, ubdc, ...
    Uml,
    /// The ISO in qemu (BIOS), the disks on virtio-blk.
    IsoVirtio,
    /// The ISO in qemu (BIOS), the disks on SATA (AHCI).
    IsoSata,
    /// The ISO in qemu (BIOS), each disk an NVMe controller of its own.
    IsoNvme,
    /// The ISO in qemu (BIOS), the disks on a virtio-scsi host adapter.
    IsoVirtioScsi,
    /// The ISO in qemu (BIOS), the disks on an LSI MegaRAID SAS adapter
    /// (qemu's megasas; Linux's megaraid_sas).
    IsoMegasas,
    /// The ISO in qemu (BIOS), the disks as USB mass storage on xHCI.
    IsoUsb,
    /// A Xen guest made by the Xen tarball's README in a real dom0 (the
    /// xen-xl target), each disk given to it as finnix-conf shows a disk to
    /// repair: xvdb, xvdc, ...
    XenXl,
}

impl Mode {
    pub const ALL: [Mode; 8] = [
        Mode::Uml,
        Mode::IsoVirtio,
        Mode::IsoSata,
        Mode::IsoNvme,
        Mode::IsoVirtioScsi,
        Mode::IsoMegasas,
        Mode::IsoUsb,
        Mode::XenXl,
    ];

    /// Console lines the mode's emulated controller makes the kernel print
    /// that read as errors and are not.
    pub fn allowed(self) -> Vec<String> {
        match self {
            // qemu's MegaRAID emulation answers each disk's first TEST UNIT
            // READY with CHECK CONDITION (internal target failure); the
            // kernel retries and reads the disk (as the hardware matrix
            // records for its megasas rows).
            Mode::IsoMegasas => vec!["Sense Key : Hardware Error [current]".into()],
            _ => vec![],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Uml => "uml",
            Mode::IsoVirtio => "iso-virtio",
            Mode::IsoSata => "iso-sata",
            Mode::IsoNvme => "iso-nvme",
            Mode::IsoVirtioScsi => "iso-virtio-scsi",
            Mode::IsoMegasas => "iso-megasas",
            Mode::IsoUsb => "iso-usb",
            Mode::XenXl => "xen-xl",
        }
    }

    /// The mode named `name` (`check-rescue --mode`).
    pub fn from_name(name: &str) -> Result<Mode> {
        Mode::ALL
            .iter()
            .copied()
            .find(|m| m.name() == name)
            .with_context(|| {
                let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown rescue mode {name:?}: expected {}",
                    names.join(", ")
                )
            })
    }

    /// The network card the ISO modes also bring up with DHCP (qemu's user
    /// network): (qemu device, Linux driver).
    pub fn nic(self) -> Option<(&'static str, &'static str)> {
        match self {
            Mode::IsoVirtio => Some(("virtio-net-pci", "virtio_net")),
            Mode::IsoSata => Some(("e1000e", "e1000e")),
            _ => None,
        }
    }

    /// The device of disk `index` (0-based) and of its first partition, as
    /// a user finds them in this mode: ubd letters in UML, udev's by-id
    /// names (from the serial qemu gives each disk) on the ISO.
    pub fn disk(self, index: usize) -> (String, String) {
        match self {
            Mode::Uml => {
                let d = format!("/dev/ubd{}", ubd_letter(index + 1));
                let p = format!("{d}1");
                (d, p)
            }
            Mode::XenXl => {
                let d = format!("/dev/{}", xen_vdev(index));
                let p = format!("{d}1");
                (d, p)
            }
            _ => {
                let (prefix, suffix) = match self {
                    Mode::IsoVirtio => ("virtio-", ""),
                    Mode::IsoSata => ("ata-QEMU_HARDDISK_", ""),
                    Mode::IsoNvme => ("nvme-QEMU_NVMe_Ctrl_", ""),
                    Mode::IsoUsb => ("usb-QEMU_QEMU_HARDDISK_", "-0:0"),
                    _ => ("scsi-0QEMU_QEMU_HARDDISK_", ""),
                };
                let d = format!("/dev/disk/by-id/{prefix}{}{suffix}", self.serial(index));
                let p = format!("{d}-part1");
                (d, p)
            }
        }
    }

    /// The serial number qemu gives disk `index` (virtio allows 20 bytes):
    /// the mode's own (`sata01`, `usb01`, ...), so that the disks of the
    /// modes sharing a guest are told apart; `rescue01`, ... in dom0.
    fn serial(self, index: usize) -> String {
        let tag = match self {
            Mode::IsoVirtio => "virtio",
            Mode::IsoSata => "sata",
            Mode::IsoNvme => "nvme",
            Mode::IsoVirtioScsi => "vscsi",
            Mode::IsoMegasas => "megasas",
            Mode::IsoUsb => "usb",
            Mode::Uml | Mode::XenXl => "rescue",
        };
        format!("{tag}{:02}", index + 1)
    }
}

/// The ISO modes that share one qemu guest, each with its controller(s)
/// and its own copies of the disks: a boot of the standard ISO with 15
/// disks took 34 s of the 63 s of a mode run alone (TCG), so three modes
/// per boot save two boots in three. Each guest has at most one mode with
/// a network card (both lease 10.0.2.15 on their own user network) and
/// fits the PCI bus's 32 slots (virtio-blk and NVMe take a slot per disk:
/// not together).
pub const ISO_GUESTS: [&[Mode]; 2] = [
    &[Mode::IsoVirtio, Mode::IsoVirtioScsi, Mode::IsoUsb],
    &[Mode::IsoSata, Mode::IsoNvme, Mode::IsoMegasas],
];

/// `modes` as the guests that run them, in order: the ISO modes of one
/// [`ISO_GUESTS`] entry together (where the first of them stood), any
/// other mode alone.
pub fn guests(modes: &[Mode]) -> Vec<Vec<Mode>> {
    let mut out: Vec<Vec<Mode>> = Vec::new();
    for &m in modes {
        let group = ISO_GUESTS.iter().position(|g| g.contains(&m));
        let joined = group.and_then(|g| {
            out.iter_mut()
                .find(|run| run.iter().all(|r| ISO_GUESTS[g].contains(r)))
        });
        match joined {
            Some(run) if !run.contains(&m) => run.push(m),
            Some(_) => {}
            None => out.push(vec![m]),
        }
    }
    out
}

/// A guest's name: its modes', the later ones without `iso-`
/// (`iso-virtio+virtio-scsi+usb`).
pub fn guest_name(modes: &[Mode]) -> String {
    modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let n = m.name();
            if i > 0 {
                n.strip_prefix("iso-").unwrap_or(n)
            } else {
                n
            }
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// ubda, ubdb, ...: the letter of UML block device `n` (0-based).
fn ubd_letter(n: usize) -> char {
    (b'a' + n as u8) as char
}

/// The Xen virtual device of disk `index`: xvdb, xvdc, ... (xvda is the medium).
fn xen_vdev(index: usize) -> String {
    format!("xvd{}", ubd_letter(index + 1))
}

/// Standard base64 (RFC 4648, padded): the scripts travel to the guest's
/// shell as one typed line that the line discipline passes unchanged.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The line typed into the guest's shell to run `script` on a disk: the
/// script decoded into /tmp, run by `sh -e` with its variables, stderr
/// with stdout.
pub fn guest_line(script: &str, disk: &str, part: &str, payload: Option<&str>) -> String {
    let payload = payload.map(|p| format!(" PAYLOAD={p}")).unwrap_or_default();
    format!(
        "printf %s {} | base64 -d > /tmp/rescue.sh && DISK={disk} PART={part} MNT={MNT}{payload} sh -e /tmp/rescue.sh 2>&1",
        base64(script.as_bytes())
    )
}

/// Whether a scenario's run did what it must: its exit status, its own
/// disk's payload's sha256 as often as asked and no other digest (another
/// disk's payload is named: the wrong disk was read), the lines.
pub fn judge(
    s: &Scenario,
    code: i32,
    output: &str,
    payloads: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let payload_sha = payloads.get(&s.name).map(String::as_str).unwrap_or("");
    if s.fails_with.is_some() || s.exit_status.is_some() {
        if code == 0 {
            return Err("succeeded, but must fail (bad input)".into());
        }
        if let Some(want) = s.exit_status.filter(|w| *w != code) {
            return Err(format!("failed with exit status {code}, expected {want}"));
        }
        if let Some(msg) = s
            .fails_with
            .as_ref()
            .filter(|m| !output.contains(m.as_str()))
        {
            return Err(format!("failed without the tool's message {msg:?}"));
        }
    } else if code != 0 {
        return Err(format!("the script failed (exit status {code})"));
    }
    let digests: Vec<&str> = output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    if let Some(other) = digests.iter().find(|d| **d != payload_sha) {
        let whose = payloads
            .iter()
            .find(|(_, sha)| sha.as_str() == *other)
            .map(|(name, _)| format!(" (the payload of disk {name}: the wrong disk was read)"))
            .unwrap_or_default();
        return Err(format!(
            "read back data with sha256 {other}{whose}, this disk's payload's is {payload_sha}"
        ));
    }
    if digests.len() != s.payload {
        return Err(format!(
            "the payload's sha256 printed {} time(s), expected {}",
            digests.len(),
            s.payload
        ));
    }
    if let Some(missing) = s.lines.iter().find(|l| !output.contains(l.as_str())) {
        return Err(format!("no {missing:?} in the output"));
    }
    Ok(())
}

// ---- the preparation root and the disks ------------------------------------

/// The plain Debian root the disks are made in (cached).
pub fn prepare_root(ctx: &Ctx) -> Result<(PathBuf, crate::support::cache::Key)> {
    let recipe = Recipe {
        stage: StageId::RescueRoot,
        what: format!("the preparation root for check-rescue (Debian {SUITE}, upstream tools)"),
        version: ROOT_RECIPE,
        packages: debian_root::read_packages(ctx, PREPARE_PACKAGES)?,
        recommends: false,
        files: vec![],
    };
    let (entry, key) = debian_root::build(ctx, &recipe, |_, _, _| Ok(String::new()))?;
    Ok((entry.join("tree"), key))
}

/// The disks made by the upstream tools, with the payload they carry.
pub struct Disks {
    pub dir: PathBuf,
    /// Scenario name → the sha256 of its disk's payload.
    pub payloads: std::collections::BTreeMap<String, String>,
}

impl Disks {
    fn image(&self, s: &Scenario) -> PathBuf {
        self.dir.join(format!("{}.img", s.name))
    }
}

/// A scenario's payload file in the disks' entry.
fn payload_name(sc: &Scenario) -> String {
    format!("payload-{}", sc.name)
}

/// The preparation boot (cached): the Debian root on hostfs, read-only,
/// `/bin/sh` as init, the blank disks as ubda, ubdb, ...; each scenario's
/// `prepare` typed into that shell.
fn prepare_disks(
    ctx: &Ctx,
    uml: &crate::stages::kernel::Kernel,
    scenarios: &[Scenario],
) -> Result<Disks> {
    let (tree, root_key) = prepare_root(ctx)?;
    // The disks depend on how each is prepared, not on how it is rescued.
    let mut key = KeyBuilder::new(StageId::RescueDisks.key_label(), DISKS_RECIPE);
    for sc in scenarios {
        key.text(
            &format!("scenario {}", sc.name),
            format!(
                "{} MiB, prepare sha256 {}",
                sc.mib,
                crate::support::cache::sha256_hex(sc.prepare.as_bytes())
            ),
        );
    }
    let key = key
        .key("preparation root", &root_key)
        .key("UML kernel", &uml.key)
        .finish();
    let open = |entry: PathBuf, _| {
        let mut payloads = std::collections::BTreeMap::new();
        for sc in scenarios {
            payloads.insert(sc.name.clone(), sha256_file(&entry.join(payload_name(sc)))?);
        }
        Ok(Disks {
            dir: entry,
            payloads,
        })
    };
    ui::stage(
        &ctx.logs(),
        StageId::RescueDisks.name(),
        format!(
            "{} disks made by mkfs, cryptsetup, lvm, mdadm, sgdisk in a preparation boot (UML)",
            scenarios.len()
        ),
        |s| {
            cached_stage(
                &ctx.cache,
                s,
                StageId::RescueDisks.name(),
                key,
                open,
                |_| String::new(),
                |s, tmp| {
                    let started = Instant::now();
                    prepare_boot(ctx, s, &uml.image(), &tree, scenarios, tmp)?;
                    Ok(format!(
                        "preparation boot {:.0} s",
                        started.elapsed().as_secs_f64()
                    ))
                },
            )
        },
    )
}

fn prepare_boot(
    ctx: &Ctx,
    s: &mut Stage,
    kernel: &Path,
    tree: &Path,
    scenarios: &[Scenario],
    out: &Path,
) -> Result<()> {
    let mut disks = Vec::new();
    for sc in scenarios {
        let mut payload = vec![0u8; PAYLOAD_BYTES];
        std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut payload)?;
        fs::write(out.join(payload_name(sc)), &payload)?;
        let img = out.join(format!("{}.img", sc.name));
        fs::File::create(&img)?.set_len(sc.mib << 20)?;
        disks.push(img);
    }
    let root = PrepRoot { kernel, tree };
    in_preparation_root(ctx, s, &root, &disks, out, "rescue-prepare", |g, s| {
        for (i, sc) in scenarios.iter().enumerate() {
            let disk = format!("/dev/ubd{}", ubd_letter(i));
            let line = guest_line(
                &sc.prepare,
                &disk,
                &format!("{disk}1"),
                Some(&format!("{PREP_WORK}/{}", payload_name(sc))),
            );
            let (ok, text) = g.run_status(&line, SCRIPT_TIMEOUT)?;
            s.note(format!("--- prepare {}:\n{text}", sc.name));
            ensure!(ok, "preparing disk {:?} failed:\n{text}", sc.name);
        }
        Ok(())
    })?;
    let mut list = String::new();
    for sc in scenarios {
        let img = out.join(format!("{}.img", sc.name));
        list.push_str(&format!("{}  {}\n", sha256_file(&img)?, sc.name));
    }
    fs::write(out.join("disks.sha256"), list)?;
    Ok(())
}

/// A preparation root booted in UML: the UML kernel and the Debian tree.
pub struct PrepRoot<'a> {
    pub kernel: &'a Path,
    pub tree: &'a Path,
}

/// A UML boot of a preparation root (`tree`, read-only on hostfs, `/bin/sh`
/// as init) with `disks` as ubda, ubdb, ... and `host_dir` at /srv; `body`
/// types its commands into the shell; then a sync and a power-off.
pub fn in_preparation_root(
    ctx: &Ctx,
    s: &mut Stage,
    root: &PrepRoot,
    disks: &[PathBuf],
    host_dir: &Path,
    name: &str,
    body: impl FnOnce(&mut Guest, &mut Stage) -> Result<()>,
) -> Result<()> {
    let mut args = vec![
        format!("mem={UML_MIB}M"),
        "root=/dev/root".to_string(),
        "rootfstype=hostfs".to_string(),
        format!("rootflags={}", root.tree.display()),
        "ro".to_string(),
        "init=/bin/sh".to_string(),
    ];
    for (i, img) in disks.iter().enumerate() {
        args.push(format!("ubd{}={}", ubd_letter(i), img.display()));
    }
    let run = ctx.cache.temp_dir(&format!("{name}-run"))?;
    std::os::unix::fs::symlink(root.kernel, run.path().join("linux"))?;
    // Without `noreboot`: the kernel hands words it does not know to init
    // as arguments, and /bin/sh would take that one for a script. The boot
    // ends with a power-off (sysrq o), never a reboot.
    let cmd = crate::guest::uml::command(run.path(), run.path(), &args, true)?;
    let log = ctx.logs().join(format!("console-{name}.log"));
    s.note(format!("{cmd:?}\nconsole: {}", log.display()));
    let mut g = Guest::start(cmd, &log)?;
    let result = (|| -> Result<()> {
        g.expect("Run /bin/sh as init process", BOOT_TIMEOUT)?;
        // The root is read-only: lvm keeps its metadata archive under /run.
        let setup = format!(
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1; \
             mount -t proc proc /proc && mount -t sysfs sysfs /sys && \
             mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /tmp && \
             mkdir -p /run/lock /run/lvm /run/cryptsetup /run/lvm-system && \
             cp -a /etc/lvm/. /run/lvm-system/ && export LVM_SYSTEM_DIR=/run/lvm-system && \
             mount -t hostfs hostfs {PREP_WORK} -o {}",
            host_dir.display()
        );
        let (ok, text) = g.run_status(&setup, SCRIPT_TIMEOUT)?;
        ensure!(ok, "setting up the preparation root failed:\n{text}");
        body(&mut g, s)?;
        let (ok, text) = g.run_status("sync; umount /srv", SCRIPT_TIMEOUT)?;
        ensure!(ok, "sync failed:\n{text}");
        g.send("echo o > /proc/sysrq-trigger\n")?;
        g.wait(Duration::from_secs(60))
            .context("the preparation boot did not power off")?;
        Ok(())
    })();
    if let Err(e) = result {
        g.kill();
        bail!(
            "the preparation boot: {e:#}\nconsole {}:\n{}",
            ui::display_path(&log),
            g.tail(20)
        );
    }
    Ok(())
}

// ---- the rescue boots --------------------------------------------------------

/// One scenario's outcome in one mode.
#[derive(Debug, Clone)]
pub struct Cell {
    pub result: Result<(), String>,
    pub secs: f64,
}

/// Every scenario in each of `modes` (one guest, see [`guests`]): Finnix
/// booted with each mode's copies of the disks, each `rescue` script run
/// and judged, mode after mode; then the disks that must not change
/// compared. One column of cells per mode.
/// `booted`: when given, the Xen mode runs boot-xen-xl's checks too (see
/// [`check_with`]) and says there what they found.
fn run_guest(
    ctx: &Ctx,
    s: &mut Stage,
    modes: &[Mode],
    inputs: &crate::checks::boot::Inputs,
    disks: &Disks,
    scenarios: &[Scenario],
    booted: Option<&mut String>,
) -> Result<Vec<Vec<Cell>>> {
    let release = inputs
        .release
        .as_ref()
        .context("check-rescue needs the release files (the ISO, the UML tarball)")?;
    let name = guest_name(modes);
    let work = ctx.cache.temp_dir(&format!("rescue-{name}"))?;
    let mut attached = copy_disks(s, modes, work.path(), disks, scenarios)?;
    if modes == [Mode::XenXl] {
        let mine = attached.pop().context("xen-xl's disks")?;
        return run_xen(ctx, s, inputs, disks, scenarios, mine, work.path(), booted)
            .map(|c| vec![c]);
    }
    let cmd = match modes {
        [Mode::Uml] => uml_command(release, work.path(), &attached[0])?,
        _ => qemu_command(modes, &release.iso, &attached),
    };
    let log = ctx.logs().join(format!("console-rescue-{name}.log"));
    s.note(format!("{cmd:?}\nconsole: {}", log.display()));
    let mut g = Guest::start(cmd, &log)?;
    let columns = boot(&mut g, s, modes[0] == Mode::Uml, &name, &inputs.version)
        .and_then(|()| modes.iter().try_for_each(|&m| dhcp(&mut g, s, m)))
        .and_then(|()| {
            modes
                .iter()
                .map(|&m| run_scenarios(&mut g, s, m, disks, scenarios))
                .collect::<Result<Vec<_>>>()
        });
    // The planted faults, in one mode: the checks must catch them.
    let planted_copy = modes
        .iter()
        .position(|&m| m == PLANTED_MODE)
        .and_then(|k| attached[k].last().cloned());
    let columns = columns.and_then(|c| {
        if modes.contains(&PLANTED_MODE) {
            planted(&mut g, s, PLANTED_MODE, disks, scenarios)?;
        }
        g.check_dmesg()?;
        Ok(c)
    });
    // A guest that does not power off after `shutdown -h now` is a failure:
    // its filesystems may not be cleanly unmounted.
    let allowed: Vec<String> = modes.iter().flat_map(|m| m.allowed()).collect();
    let after = match &columns {
        Ok(_) => g
            .send("shutdown -h now\n")
            .and_then(|()| {
                g.wait(Duration::from_secs(300))
                    .context("the guest did not power off after shutdown -h now")
            })
            .and_then(|_| g.check_trouble_allowing(&allowed)),
        Err(_) => Ok(()),
    };
    let state = g.process_state();
    g.kill();
    let mut columns = match columns.and_then(|c| after.map(|()| c)) {
        Ok(c) => c,
        Err(e) => bail!(
            "{name}: {e:#}\nthe guest process: {state}\nconsole {}:\n{}",
            ui::display_path(&log),
            g.tail(25)
        ),
    };
    for (cells, mine) in columns.iter_mut().zip(&attached) {
        unchanged(cells, disks, scenarios, &mine[..scenarios.len()])?;
    }
    if let Some(copy) = planted_copy {
        planted_write_caught(disks, scenarios, &copy)?;
        s.note("planted: a write to a disk declared unchanged was caught");
    }
    Ok(columns)
}

/// Each mode its own copies of the disks, in a directory of its own under
/// `work`, in the order of `scenarios`; the planted mode one more, of the
/// planted-on disk, last, for the planted write.
fn copy_disks(
    s: &mut Stage,
    modes: &[Mode],
    work: &Path,
    disks: &Disks,
    scenarios: &[Scenario],
) -> Result<Vec<Vec<PathBuf>>> {
    let mut all = Vec::new();
    for &mode in modes {
        let dir = work.join(format!("disks-{}", mode.name()));
        fs::create_dir_all(&dir)?;
        let mut images: Vec<(PathBuf, &str)> = scenarios
            .iter()
            .map(|sc| (disks.image(sc), sc.name.as_str()))
            .collect();
        if mode == PLANTED_MODE {
            let on = scenarios
                .iter()
                .find(|sc| sc.name == PLANTED_ON)
                .context("planted scenario")?;
            images.push((disks.image(on), "planted"));
        }
        let mut mine = Vec::new();
        for (image, name) in images {
            let copy = dir.join(format!("{name}.img"));
            s.run(crate::cmd!("cp", "--sparse=always", image, &copy))?;
            mine.push(copy);
        }
        all.push(mine);
    }
    Ok(all)
}

/// UML booting the release's UML tarball as its README says, the ISO as
/// its medium and each disk copy as a ubd device.
fn uml_command(
    release: &crate::checks::boot::ReleaseInputs,
    work: &Path,
    copies: &[PathBuf],
) -> Result<Command> {
    let dir = work.join("uml");
    fs::create_dir_all(&dir)?;
    let top = crate::checks::boot::unpack_uml_tarball(&release.uml_tarball, &dir)?;
    std::os::unix::fs::symlink(&release.iso, top.join("finnix.iso"))?;
    let mut args = vec![
        format!("mem={UML_MIB}M"),
        "initrd=initrd.img".to_string(),
        "root=/dev/ubda".to_string(),
        "ubdar=finnix.iso".to_string(),
    ];
    for (i, c) in copies.iter().enumerate() {
        args.push(format!("ubd{}={}", ubd_letter(i + 1), c.display()));
    }
    args.push("uml".to_string());
    crate::guest::uml::command(&top, work, &args, false)
}

/// The mode that also runs the planted faults (qemu: room for one more disk).
const PLANTED_MODE: Mode = Mode::IsoVirtio;
/// The scenario whose disk the planted faults use (read-only, XFS), and the
/// other XFS disk the wrong-disk fault reads instead.
const PLANTED_ON: &str = "xfs";
const PLANTED_WRONG: &str = "xfs-repair";

/// Faults planted in a real rescue session, which the judging must catch:
/// the xfs scenario's rescue run on the other XFS disk (its payload is not
/// this disk's: "the wrong disk was read"), and a write into a copy of the
/// xfs disk (the last disk of this mode), which [`planted_write_caught`]
/// must find changed.
fn planted(
    g: &mut Guest,
    s: &mut Stage,
    mode: Mode,
    disks: &Disks,
    scenarios: &[Scenario],
) -> Result<()> {
    let index = |name: &str| {
        scenarios
            .iter()
            .position(|sc| sc.name == name)
            .with_context(|| format!("the planted faults need scenario {name}"))
    };
    let on = &scenarios[index(PLANTED_ON)?];
    let (wrong_disk, wrong_part) = mode.disk(index(PLANTED_WRONG)?);
    let (code, text) = g.run_code(
        &guest_line(&on.rescue, &wrong_disk, &wrong_part, None),
        SCRIPT_TIMEOUT,
    )?;
    s.note(format!(
        "--- planted: {PLANTED_ON}'s rescue on {wrong_disk}:\n{text}"
    ));
    match judge(on, code, &text, &disks.payloads) {
        Err(e) if e.contains(&format!("payload of disk {PLANTED_WRONG}")) => {}
        other => bail!(
            "planted fault not caught: {PLANTED_ON}'s rescue read {PLANTED_WRONG}'s disk and was judged {other:?}"
        ),
    }
    let (disk, _) = mode.disk(scenarios.len());
    let (ok, text) = g.run_status(
        &format!("printf planted | dd of={disk} bs=1 seek=4096 conv=notrunc,fsync"),
        SCRIPT_TIMEOUT,
    )?;
    ensure!(ok, "the planted write to {disk} failed:\n{text}");
    Ok(())
}

/// The planted write must show as a change of the disk, exactly as
/// [`unchanged`] judges a read-only scenario's disk.
fn planted_write_caught(disks: &Disks, scenarios: &[Scenario], copy: &Path) -> Result<()> {
    let on = scenarios
        .iter()
        .find(|sc| sc.name == PLANTED_ON)
        .context("planted scenario")?;
    let mut cells = vec![Cell {
        result: Ok(()),
        secs: 0.0,
    }];
    unchanged(
        &mut cells,
        disks,
        std::slice::from_ref(on),
        &[copy.to_path_buf()],
    )?;
    match &cells[0].result {
        Err(e) if e.contains("the disk image changed") => Ok(()),
        other => {
            bail!("planted fault not caught: a write to the {PLANTED_ON} disk was judged {other:?}")
        }
    }
}

/// Which 4 KiB blocks of two images differ: a count and the first few
/// offsets (where a write went tells who wrote it).
fn changed_blocks(a: &Path, b: &Path) -> Result<String> {
    use std::io::Read;
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 4096], vec![0u8; 4096]);
    let mut offsets = Vec::new();
    let mut count = 0u64;
    let mut at = 0u64;
    loop {
        let na = fa.read(&mut ba)?;
        let nb = fb.read(&mut bb)?;
        if na == 0 && nb == 0 {
            break;
        }
        if ba[..na] != bb[..nb] {
            count += 1;
            if offsets.len() < 6 {
                offsets.push(format!("{at:#x}"));
            }
        }
        at += na.max(nb) as u64;
    }
    Ok(format!(
        "{count} block(s) of 4 KiB differ, first at {}",
        offsets.join(", ")
    ))
}

/// Bad input must leave its disk as it was.
fn unchanged(
    cells: &mut [Cell],
    disks: &Disks,
    scenarios: &[Scenario],
    copies: &[PathBuf],
) -> Result<()> {
    for (i, sc) in scenarios.iter().enumerate() {
        if sc.unchanged && cells[i].result.is_ok() {
            let before = sha256_file(&disks.image(sc))?;
            let after = sha256_file(&copies[i])?;
            if before != after {
                cells[i].result = Err(format!(
                    "the disk image changed: sha256 {before} before, {after} after ({})",
                    changed_blocks(&disks.image(sc), &copies[i]).unwrap_or_else(|e| e.to_string())
                ));
            }
        }
    }
    Ok(())
}

/// The xen-xl mode: dom0 with the copies as virtio disks (serials
/// rescueNN), the README's untar and link lines, its `xl create` line,
/// each disk attached to the running guest as finnix-conf shows a disk,
/// the scenarios on the guest's console, `shutdown -h now`.
#[allow(clippy::too_many_arguments)]
fn run_xen(
    ctx: &Ctx,
    s: &mut Stage,
    inputs: &crate::checks::boot::Inputs,
    disks: &Disks,
    scenarios: &[Scenario],
    copies: Vec<PathBuf>,
    work: &Path,
    mut booted: Option<&mut String>,
) -> Result<Vec<Cell>> {
    use crate::checks::xen_xl::{self, Dom0};
    let host = inputs
        .xen_host
        .as_ref()
        .context("the Xen host was not prepared")?;
    let release = inputs
        .release
        .as_ref()
        .context("check-rescue needs the release files")?;
    let readme = xen_xl::readme_of(&release.xen_tarball)?;
    let disk = xen_xl::release_disk(work, &readme, release)?;
    let attached: Vec<(String, PathBuf)> = copies
        .iter()
        .enumerate()
        .map(|(i, c)| (Mode::XenXl.serial(i), c.clone()))
        .collect();
    let log = ctx.logs().join("console-rescue-xen-xl.log");
    let cmd = xen_xl::qemu_command(host, &disk, &attached, &xen_xl::serial_log(&log));
    s.note(format!("{cmd:?}\nconsole: {}", log.display()));
    let (mut dom0, dom0_secs) = Dom0::boot(cmd, &log)?;
    let result = (|| -> Result<Vec<Cell>> {
        if booted.is_some() {
            dom0.only_dom0()?;
        }
        dom0.install(&readme)?;
        // dom0's device for each serial, from sysfs (no udev in dom0).
        let map = dom0.sh(
            "for d in /sys/block/vd*; do echo \"${d##*/} $(cat $d/serial 2>/dev/null)\"; done",
        )?;
        // A guest made by the README's create line as written; then each
        // disk attached to it while it runs, as finnix-conf's disk line
        // shows one (`xl block-attach` takes the same words). xl runs one
        // hotplug script per disk and kills any not done 40 s after it was
        // started, waiting on the others included: attached one at a time,
        // each script has its 40 s to itself, and one boot serves all.
        s.note(format!("in dom0: {}", readme.create));
        let (banner, text) = dom0.create(&readme.create, &inputs.version)?;
        s.note(format!("xen-xl: banner {banner:.1} s after xl create"));
        let Some(said) = booted.as_deref_mut() else {
            dom0.detach()?;
            let cells = scenarios_in_guest(&mut dom0, s, &map, disks, scenarios)?;
            dom0.attach_console("finnix")?;
            dom0.shutdown_guest("finnix")?;
            dom0.power_off()?;
            return Ok(cells);
        };
        // With boot-xen-xl's checks: those of its PVH guest on this one;
        // the scenarios in the PV guest that follows (same disks, same
        // blkfront). Under TCG a PVH guest runs on shadow page tables: 15
        // to 80 s a scenario, its boot three times the PV guest's.
        xen_xl::running(&mut dom0, inputs, "PVH", &text)
            .with_context(|| format!("the PVH guest (`{}`)", readme.create))?;
        dom0.attach_console("finnix")?;
        let gone = dom0.shutdown_guest("finnix")?;
        // The ISO in dom0 must still be the release's, byte for byte.
        let sha = crate::support::cache::sha256_file(&release.iso)?;
        let pvh = xen_xl::GuestRun {
            kind: "PVH",
            banner_secs: banner,
            gone_secs: gone,
        };
        let mut cells = None;
        let pv = xen_xl::after_pvh(&mut dom0, inputs, &readme, &sha, |dom0| {
            cells = Some(scenarios_in_guest(dom0, s, &map, disks, scenarios)?);
            Ok(())
        })?;
        *said = format!(
            "dom0 ready in {dom0_secs:.1} s; {}; the scenarios in the PV guest",
            xen_xl::describe(&[pvh, pv])
        );
        s.note(format!("boot-xen-xl's checks: {said}"));
        dom0.power_off()?;
        cells.context("the PV guest ran no scenarios")
    })();
    let mut cells = match result {
        Ok(c) => c,
        Err(e) => {
            dom0.g.kill();
            bail!(
                "xen-xl: {e:#}\nconsole {}:\n{}\nlast lines of Xen's serial line ({}):\n{}",
                ui::display_path(&log),
                dom0.g.tail(25),
                ui::display_path(&xen_xl::serial_log(&log)),
                ui::tail(&xen_xl::serial_log(&log), 15)
            )
        }
    };
    unchanged(&mut cells, disks, scenarios, &copies)?;
    Ok(cells)
}

/// The scenarios in the running guest, dom0 at its prompt before and
/// after: its disks attached ([`attach_disks`]), each scenario on its
/// console, then the disks detached ([`detach_disks`]).
fn scenarios_in_guest(
    dom0: &mut crate::checks::xen_xl::Dom0,
    s: &mut Stage,
    map: &str,
    disks: &Disks,
    scenarios: &[Scenario],
) -> Result<Vec<Cell>> {
    attach_disks(dom0, s, map, scenarios)?;
    dom0.attach_console("finnix")?;
    let cells = run_scenarios(&mut dom0.g, s, Mode::XenXl, disks, scenarios)?;
    dom0.detach()?;
    detach_disks(dom0, s, scenarios)?;
    Ok(cells)
}

/// Each scenario's disk detached from the running guest again, one at a
/// time, as a user hands a disk back when the rescue is done (each
/// scenario closed what it opened on it). Left to the guest's shutdown,
/// xl would release all sixteen at once, a hotplug script each, and kill
/// any not done in 40 s: under TCG, on dom0's one CPU, the ISO's among
/// them at times (its loop device then stayed in dom0 for good).
fn detach_disks(
    dom0: &mut crate::checks::xen_xl::Dom0,
    s: &mut Stage,
    scenarios: &[Scenario],
) -> Result<()> {
    for (i, sc) in scenarios.iter().enumerate() {
        let detach = format!("xl block-detach finnix {}", xen_vdev(i));
        let t = Instant::now();
        dom0.sh(&detach).with_context(|| {
            format!(
                "detaching {}'s disk (does the guest still hold it: a mount, an open LUKS, LVM or md device?)",
                sc.name
            )
        })?;
        s.note(format!(
            "in dom0: {detach} ({:.1} s)",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Each scenario's disk attached to the running guest, one at a time:
/// dom0's device (`map`: device and serial per line) as the guest's
/// xvdb, xvdc, ...
fn attach_disks(
    dom0: &mut crate::checks::xen_xl::Dom0,
    s: &mut Stage,
    map: &str,
    scenarios: &[Scenario],
) -> Result<()> {
    for (i, sc) in scenarios.iter().enumerate() {
        let want = Mode::XenXl.serial(i);
        let dev = map
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
            .and_then(|l| l.split_whitespace().next())
            .with_context(|| format!("dom0 has no disk with serial {want}:\n{map}"))?;
        let attach = format!(
            "xl block-attach finnix 'format=raw, vdev={}, access=rw, target=/dev/{dev}'",
            xen_vdev(i)
        );
        let t = Instant::now();
        dom0.sh(&attach)
            .with_context(|| format!("attaching {}'s disk", sc.name))?;
        s.note(format!(
            "in dom0: {attach} ({:.1} s)",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// qemu booting the ISO from its CD (BIOS, 1 GiB) with each mode's disks
/// (`copies`, in the order of `modes`), each disk with its serial on the
/// mode's controller: virtio-blk, SATA on AHCI controllers (six ports
/// each), NVMe (a controller per disk), a virtio-scsi or MegaRAID SAS
/// adapter, USB storage on an xHCI controller; and the mode's network card
/// on qemu's user network (its DHCP server).
fn qemu_command(modes: &[Mode], iso: &Path, copies: &[Vec<PathBuf>]) -> Command {
    let mut c = crate::guest::qemu::bios_cd(iso);
    for (&mode, copies) in modes.iter().zip(copies) {
        add_controller(&mut c, mode, copies);
    }
    c
}

/// One mode's controller, network card and disks on the qemu command line.
fn add_controller(c: &mut Command, mode: Mode, copies: &[PathBuf]) {
    match mode {
        Mode::IsoSata => {
            for k in 0..copies.len().div_ceil(6) {
                c.args(["-device", &format!("ahci,id=ahci{k}")]);
            }
        }
        Mode::IsoVirtioScsi => {
            c.args(["-device", "virtio-scsi-pci,id=vscsi"]);
        }
        Mode::IsoMegasas => {
            c.args(["-device", "megasas,id=megasas"]);
        }
        Mode::IsoUsb => {
            c.args(["-device", "qemu-xhci,id=xhci,p2=15,p3=15"]);
        }
        _ => {}
    }
    if let Some((device, _)) = mode.nic() {
        c.args(["-netdev", "user,id=net0"])
            .args(["-device", &format!("{device},netdev=net0")]);
    }
    for (i, copy) in copies.iter().enumerate() {
        let serial = mode.serial(i);
        let id = format!("disk-{serial}");
        c.arg("-drive").arg(format!(
            "file={},format=raw,if=none,id={id}",
            copy.display()
        ));
        let device = match mode {
            Mode::IsoVirtio => format!("virtio-blk-pci,drive={id},serial={serial}"),
            Mode::IsoSata => format!(
                "ide-hd,drive={id},bus=ahci{}.{},serial={serial}",
                i / 6,
                i % 6
            ),
            Mode::IsoNvme => format!("nvme,drive={id},serial={serial}"),
            Mode::IsoVirtioScsi => {
                format!("scsi-hd,drive={id},bus=vscsi.0,scsi-id={i},serial={serial}")
            }
            Mode::IsoMegasas => {
                format!("scsi-hd,drive={id},bus=megasas.0,scsi-id={i},serial={serial}")
            }
            Mode::IsoUsb => format!("usb-storage,drive={id},bus=xhci.0,serial={serial}"),
            Mode::Uml | Mode::XenXl => unreachable!("not a qemu mode"),
        };
        c.args(["-device", &device]);
    }
}

/// Boot to the root shell: UML's console, or the ISO's serial entry.
fn boot(g: &mut Guest, s: &mut Stage, uml: bool, name: &str, version: &str) -> Result<()> {
    let start = Instant::now();
    let console = if uml {
        "tty0"
    } else {
        crate::checks::boot::choose_isolinux_default(g, BOOT_TIMEOUT)?;
        "ttyS0"
    };
    let (banner, _, _) = g.boot_to_shell(version, console, start, BOOT_TIMEOUT)?;
    s.note(format!("{name}: banner after {banner:.1} s"));
    Ok(())
}

/// The mode's network card: its driver (a module udev loaded) bound to an
/// interface that got a lease from qemu's DHCP server (10.0.2.15, the
/// default route through 10.0.2.2) by the boot's background request.
fn dhcp(g: &mut Guest, s: &mut Stage, mode: Mode) -> Result<()> {
    let Some((device, driver)) = mode.nic() else {
        return Ok(());
    };
    let t = Instant::now();
    let (ok, text) = g.run_status(
        &format!(
            "i=''; for n in /sys/class/net/*; do \
               [ \"$(basename \"$(readlink $n/device/driver/module)\")\" = {driver} ] && i=${{n##*/}}; done; \
             [ -n \"$i\" ] || {{ echo 'no interface is driven by {driver}'; false; }} && \
             for k in $(seq 600); do ip -4 -o addr show dev $i | grep -q 'inet 10.0.2.15/' && break; sleep 0.1; done; \
             echo \"interface $i\"; ip -4 -o addr show dev $i; ip route show default; \
             ip -4 -o addr show dev $i | grep -q 'inet 10.0.2.15/' && ip route show default | grep -q \"via 10.0.2.2 dev $i\""
        ),
        SCRIPT_TIMEOUT,
    )?;
    ensure!(
        ok,
        "{device} ({driver}): no DHCP lease from qemu's user network within 60 s:\n{text}"
    );
    s.note(format!(
        "{}: {device} ({driver}) leased 10.0.2.15 after {:.1} s:\n{text}",
        mode.name(),
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Each scenario's `rescue` in the guest's shell, judged.
fn run_scenarios(
    g: &mut Guest,
    s: &mut Stage,
    mode: Mode,
    disks: &Disks,
    scenarios: &[Scenario],
) -> Result<Vec<Cell>> {
    // udev done with its coldplug (in UML and Xen it starts after the
    // banner: its md and LVM rules must not race the scripts), and every
    // disk where the scripts will look (on the ISO, udev made the by-id
    // names; in Xen they were attached after the boot). The deadline is
    // the guest's own clock (bash's SECONDS, no process per round), well
    // inside the host's timeout, so a slow guest still says what it lacks.
    let paths: Vec<String> = (0..scenarios.len()).map(|i| mode.disk(i).0).collect();
    let (ok, text) = g.run_status(
        &format!(
            "end=$((SECONDS+{UDEV_WAIT_SECS})); \
             while [ ! -e {done} ] && [ $SECONDS -lt $end ]; do sleep 0.5; done; \
             missing=x; while [ -n \"$missing\" ] && [ $SECONDS -lt $end ]; do \
               missing=''; for d in {paths}; do [ -b $d ] || missing=\"$missing $d\"; done; \
               [ -n \"$missing\" ] && sleep 0.5; done; \
             if [ ! -e {done} ]; then \
               echo \"udev did not finish its coldplug in {UDEV_WAIT_SECS} s: no {done}\"; \
               tail -n 15 {log}; ps -eo pid,etime,args | grep -e udev -e lvm -e mdadm | grep -v grep; false; \
             elif [ -n \"$missing\" ]; then \
               echo \"no such block device after {UDEV_WAIT_SECS} s:$missing\"; ls /dev; false; \
             else udevadm settle --timeout=60 && ls -l {paths}; fi",
            paths = paths.join(" "),
            done = finnix_contract::udev::DONE,
            log = finnix_contract::udev::LOG,
        ),
        SCRIPT_TIMEOUT,
    )?;
    ensure!(ok, "the disks are not all there:\n{text}");
    let mut cells = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let (disk, part) = mode.disk(i);
        let t = Instant::now();
        let (code, text) = g
            .run_code(&guest_line(&sc.rescue, &disk, &part, None), SCRIPT_TIMEOUT)
            .with_context(|| format!("scenario {}", sc.name))?;
        let secs = t.elapsed().as_secs_f64();
        s.note(format!(
            "--- {} {} ({secs:.1} s, exit {code}):\n{text}",
            mode.name(),
            sc.name
        ));
        let result = judge(sc, code, &text, &disks.payloads).map_err(|e| {
            let tail: Vec<&str> = text.lines().collect();
            format!(
                "{e}\n      {}",
                tail[tail.len().saturating_sub(8)..].join("\n      ")
            )
        });
        cells.push(Cell { result, secs });
    }
    Ok(cells)
}

/// The table: scenario by mode, pass or FAIL and seconds.
pub fn table(scenarios: &[Scenario], modes: &[Mode], cells: &[Vec<Cell>]) -> String {
    let mut out = format!("{:<20}", "scenario");
    for m in modes {
        out.push_str(&format!(" {:>14}", m.name()));
    }
    out.push('\n');
    for (i, sc) in scenarios.iter().enumerate() {
        out.push_str(&format!("{:<20}", sc.name));
        for col in cells {
            let c = &col[i];
            let word = if c.result.is_ok() { "pass" } else { "FAIL" };
            out.push_str(&format!(" {:>14}", format!("{word} {:>5.1} s", c.secs)));
        }
        out.push('\n');
    }
    out
}

/// check-rescue on a release: the disks (cached), then each mode.
/// The rescue disks (a cached stage), made before parts that use them run.
pub fn prepare(ctx: &Ctx, r: &crate::pipeline::Release) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Rescue], &ctx.logs())?;
    prepare_disks(ctx, &r.live.uml, &load(&ctx.root)?).map(|_| ())
}

pub fn check(ctx: &Ctx, r: &crate::pipeline::Release, modes: &[Mode]) -> Result<()> {
    check_with(ctx, r, modes, false)
}

/// [`check`]; with `xen_boot`, the Xen mode also runs `boot --check
/// xen-xl`'s checks in the same dom0: its PVH guest checked as that target
/// checks it, then, once it is gone, the PV guest, in which the scenarios
/// run (its disks attached), xl's refusals and the ISO unchanged. The suite
/// boots the Xen host (several minutes under TCG) once for both.
pub fn check_with(
    ctx: &Ctx,
    r: &crate::pipeline::Release,
    modes: &[Mode],
    xen_boot: bool,
) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Rescue], &ctx.logs())?;
    let scenarios = load(&ctx.root)?;
    let disks = prepare_disks(ctx, &r.live.uml, &scenarios)?;
    let mut inputs = crate::checks::boot::inputs_of_release(ctx, r)?;
    if modes.contains(&Mode::XenXl) {
        crate::checks::boot::prepare(ctx, &mut inputs, &[crate::checks::boot::Target::XenXl])?;
    }
    let (mut order, mut columns) = (Vec::new(), Vec::new());
    for guest in guests(modes) {
        let name = guest_name(&guest);
        let cells = ui::stage(
            &ctx.logs(),
            &format!("check-rescue-{name}"),
            format!(
                "{} rescue scenarios, Finnix {} ({})",
                scenarios.len(),
                r.live.profile,
                guest
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            |s| {
                let mut booted = String::new();
                let columns = run_guest(
                    ctx,
                    s,
                    &guest,
                    &inputs,
                    &disks,
                    &scenarios,
                    xen_boot.then_some(&mut booted),
                )?;
                let count = |col: &[Cell]| col.iter().filter(|c| c.result.is_err()).count();
                let failed: usize = columns.iter().map(|c| count(c)).sum();
                let mut detail = guest
                    .iter()
                    .zip(&columns)
                    .map(|(m, col)| {
                        let f = count(col);
                        let each = format!("{} passed, {f} failed", col.len() - f);
                        if guest.len() > 1 {
                            format!("{}: {each}", m.name())
                        } else {
                            each
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                if !booted.is_empty() {
                    detail.push_str(&format!(
                        "; boot-xen-xl's checks in the same dom0: {booted}"
                    ));
                }
                // A failed scenario fails the check after the table.
                Ok((
                    columns,
                    if failed == 0 {
                        Outcome::Passed
                    } else {
                        Outcome::Failed
                    },
                    detail,
                ))
            },
        )?;
        order.extend(guest);
        columns.extend(cells);
    }
    let modes = &order;
    eprint!("{}", table(&scenarios, modes, &columns));
    let mut failures = Vec::new();
    for (m, col) in modes.iter().zip(&columns) {
        for (sc, c) in scenarios.iter().zip(col) {
            if let Err(e) = &c.result {
                failures.push(format!("  {} / {} ({}): {e}", m.name(), sc.name, sc.what));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "{} rescue scenario run(s) failed (logs: {}):\n{}",
        failures.len(),
        ui::display_path(&ctx.logs().join("check-rescue-*.log")),
        failures.join("\n")
    );
    Ok(())
}

impl crate::cli::CheckRescue {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::{release, RELEASE_STAGES};
        use crate::stages::ensure_tools;
        let modes = if self.mode.is_empty() {
            Mode::ALL.to_vec()
        } else {
            self.mode
                .iter()
                .map(|m| Mode::from_name(m))
                .collect::<Result<Vec<_>>>()?
        };
        if self.prepare_only {
            ensure_tools(
                ctx,
                &[StageId::KernelUm],
                &[crate::support::prereq::Tools::Rescue],
            )?;
            let uml = crate::stages::kernel::build(ctx, crate::stages::kernel::Flavor::Um)?;
            let disks = prepare_disks(ctx, &uml, &load(&ctx.root)?)?;
            println!("{}", disks.dir.display());
            return Ok(());
        }
        ensure_tools(ctx, RELEASE_STAGES, &[crate::support::prereq::Tools::Boot])?;
        let r = release(ctx, &self.profile)?;
        check(ctx, &r, &modes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(extra: &str) -> String {
        format!(
            "[[scenario]]\nname = \"xfs\"\nwhat = \"XFS\"\nmib = 300\nprepare = \"mkfs.xfs $DISK\"\nrescue = \"true\"\n{extra}"
        )
    }

    #[test]
    fn the_shipped_scenarios_parse_and_cover_what_the_issue_names() {
        let list = load(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()).unwrap();
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "xfs",
            "btrfs-subvolume",
            "ext4-backup-sb",
            "xfs-repair",
            "luks2",
            "lvm",
            "md-raid1-degraded",
            "ntfs-3g",
            "exfat",
            "fat32",
            "gpt-backup",
            "ddrescue",
            "luks-wrong-key",
            "unknown-fs",
        ] {
            assert!(names.contains(&want), "no scenario {want}");
        }
        assert!(list.iter().any(|s| s.exit_status.is_some() && s.unchanged));
    }

    #[test]
    fn bad_scenario_files_are_refused_with_the_reason() {
        assert!(parse(&one("payload = 1")).is_ok());
        let e = parse(&one("")).unwrap_err();
        assert!(e.contains("nothing to check"), "{e}");
        let e = parse(&one("payload = 1\nfails-with = \"x\"")).unwrap_err();
        assert!(e.contains("exclude"), "{e}");
        let e = parse(&format!("{}\n{}", one("payload = 1"), one("payload = 1"))).unwrap_err();
        assert!(e.contains("used twice"), "{e}");
        let e = parse(&one("payload = 1\ncolour = \"red\"")).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = parse(&one("payload = 1").replace("\"xfs\"", "\"X FS\"")).unwrap_err();
        assert!(e.contains("lower-case"), "{e}");
        let many: String = (0..16)
            .map(|i| one("payload = 1").replace("\"xfs\"", &format!("\"d{i}\"")))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&many).unwrap_err().contains("room for 15"));
    }

    #[test]
    fn base64_matches_coreutils() {
        for input in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let want = crate::cmd!("base64", "-w0")
                .stdin_bytes(input.as_bytes().to_vec())
                .output()
                .unwrap();
            assert_eq!(base64(input.as_bytes()), want.trim(), "{input:?}");
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
    }

    #[test]
    fn disks_are_named_as_each_mode_shows_them() {
        assert_eq!(Mode::Uml.disk(0), ("/dev/ubdb".into(), "/dev/ubdb1".into()));
        assert_eq!(Mode::Uml.disk(14).0, "/dev/ubdp");
        assert_eq!(
            Mode::IsoVirtio.disk(2),
            (
                "/dev/disk/by-id/virtio-virtio03".into(),
                "/dev/disk/by-id/virtio-virtio03-part1".into()
            )
        );
        assert_eq!(
            Mode::IsoSata.disk(0).0,
            "/dev/disk/by-id/ata-QEMU_HARDDISK_sata01"
        );
        // The modes sharing a guest: no two disks with one name.
        for guest in ISO_GUESTS {
            let mut names: Vec<String> = guest
                .iter()
                .flat_map(|m| (0..=MAX_DISKS).map(move |i| m.disk(i).0))
                .collect();
            let all = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all, "{guest:?}");
        }
        // As finnix-conf's disk to repair: xvdb first (xvda is the medium).
        assert_eq!(
            Mode::XenXl.disk(0),
            ("/dev/xvdb".into(), "/dev/xvdb1".into())
        );
        assert_eq!(Mode::XenXl.disk(14).0, "/dev/xvdp");
    }

    #[test]
    fn iso_modes_share_guests_and_the_rest_boot_alone() {
        use Mode::*;
        let all = guests(&Mode::ALL);
        assert_eq!(
            all,
            vec![
                vec![Uml],
                vec![IsoVirtio, IsoVirtioScsi, IsoUsb],
                vec![IsoSata, IsoNvme, IsoMegasas],
                vec![XenXl]
            ]
        );
        assert_eq!(guest_name(&all[1]), "iso-virtio+virtio-scsi+usb");
        assert_eq!(
            guests(&[IsoUsb, Uml, IsoVirtio]),
            vec![vec![IsoUsb, IsoVirtio], vec![Uml]]
        );
        assert_eq!(guests(&[IsoSata, IsoSata]), vec![vec![IsoSata]]);
        // Every mode runs, once; a guest has one network card at most (each
        // leases 10.0.2.15) and never both per-disk PCI controllers.
        assert_eq!(all.iter().map(Vec::len).sum::<usize>(), Mode::ALL.len());
        for g in ISO_GUESTS {
            assert!(g.iter().filter(|m| m.nic().is_some()).count() <= 1, "{g:?}");
            assert!(!(g.contains(&IsoVirtio) && g.contains(&IsoNvme)), "{g:?}");
        }
    }

    #[test]
    fn the_typed_line_runs_the_script_with_its_variables() {
        let line = guest_line(
            "echo \"$DISK\" 'x' $PAYLOAD\n",
            "/dev/ubdb",
            "/dev/ubdb1",
            Some("/srv/p"),
        );
        assert!(!line.contains('\n') && !line.contains("echo"));
        // The decode-and-run pipeline as the guest's shell runs it.
        let scratch = tempfile::tempdir().unwrap();
        let script = scratch.path().join("finnix-rescue.sh");
        let line = line.replace("/tmp/rescue.sh", &script.display().to_string());
        let out = crate::cmd!("sh", "-c", line).output().unwrap();
        std::fs::remove_file(&script).unwrap();
        assert_eq!(out.trim(), "/dev/ubdb x /srv/p");
    }

    fn scenario(extra: &str) -> Scenario {
        parse(&one(extra)).unwrap().remove(0)
    }

    fn payloads(sha: &str) -> std::collections::BTreeMap<String, String> {
        [
            ("xfs".to_string(), sha.to_string()),
            ("other".to_string(), "c".repeat(64)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn judging_wants_the_payload_and_only_the_payload() {
        let sha = "a".repeat(64);
        let p = payloads(&sha);
        let s = scenario("payload = 1\nlines = [\"raid1\"]");
        let out = format!("raid1 active\n{sha}  /mnt/payload\n");
        assert_eq!(judge(&s, 0, &out, &p), Ok(()));
        assert!(judge(&s, 1, &out, &p).unwrap_err().contains("failed"));
        let other = format!("raid1\n{}  /mnt/payload\n", "b".repeat(64));
        assert!(judge(&s, 0, &other, &p).unwrap_err().contains("read back"));
        // Another disk's payload: the wrong disk was read, and named.
        let wrong = format!("raid1\n{}  /mnt/payload\n", "c".repeat(64));
        let e = judge(&s, 0, &wrong, &p).unwrap_err();
        assert!(e.contains("payload of disk other"), "{e}");
        assert!(judge(&s, 0, "raid1\n", &p).unwrap_err().contains("0 time"));
        let nolines = format!("{sha}  /mnt/payload\n");
        assert!(judge(&s, 0, &nolines, &p).unwrap_err().contains("raid1"));
    }

    #[test]
    fn bad_input_must_fail_with_the_tools_message_and_status() {
        let s = scenario("fails-with = \"No key available\"\nexit-status = 2\nunchanged = true");
        let sha = payloads(&"a".repeat(64));
        assert_eq!(
            judge(&s, 2, "No key available with this passphrase.", &sha),
            Ok(())
        );
        assert!(judge(&s, 0, "No key available", &sha)
            .unwrap_err()
            .contains("succeeded"));
        assert!(judge(&s, 1, "No key available", &sha)
            .unwrap_err()
            .contains("exit status 1, expected 2"));
        assert!(judge(&s, 2, "Segmentation fault", &sha)
            .unwrap_err()
            .contains("message"));
        let e = parse(&one("exit-status = 0")).unwrap_err();
        assert!(e.contains("success"), "{e}");
    }
}
