//! `cargo xtask boot <target>`: boot an artifact the way a user would, either
//! interactively or (`--check`) non-interactively: wait for the ready
//! banner, run commands in the guest's shell, shut it down cleanly.
//!
//! UML runs as an ordinary process; qemu boots the ISO (SeaBIOS + isolinux,
//! OVMF + GRUB, as a CD or a USB stick) and the domU kernel (PVH entry)
//! without KVM; Xen's own hypervisor boots under qemu with our kernel as its
//! PV guest. Guests never touch the host's network: UML's eth0 is a TAP in
//! a network namespace made for the run; qemu guests have no network card.

use fs_err as fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::guest::console::Guest;
use crate::support::context::Ctx;
use crate::support::ui;
use finnix_contract::{boot_env, memory, GuestMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The spec's command line with the UML tarball and the ISO:
    /// `./linux mode=tt mem=64M initrd=initrd.img root=/dev/ubda ubdar=finnix.iso uml`.
    UmlIso,
    /// UML with the squashfs itself as the root device: `ubdar=FINNIX squashroot uml`.
    UmlSquashroot,
    /// UML from the ISO; in the guest, writing to /dev/ubda fails and the
    /// ISO's sha256 on the host is unchanged afterwards.
    UmlReadonly,
    /// UML squashroot plus a swap partition (ubdb), an ext4 data partition
    /// (ubdc) and eth0 on a TAP inside a private network namespace: the
    /// boot flow lines, fstab, swap, DHCP, `shutdown -h now`.
    UmlFlow,
    /// qemu (TCG) boots the ISO as a CD: SeaBIOS, isolinux, serial console.
    BiosCd,
    /// qemu (TCG) boots the ISO as a CD: OVMF, GRUB, serial console.
    UefiCd,
    /// qemu (TCG) boots the ISO as a CD with Secure Boot enforced: OVMF's
    /// Secure Boot build with Microsoft's keys enrolled (q35, SMM), shim,
    /// Debian's signed GRUB and kernel; inside, the kernel says Secure Boot
    /// is on (its log and the SecureBoot EFI variable) and is locked down.
    UefiSecureboot,
    /// qemu (TCG) boots the ISO file as a USB stick (hybrid MBR): SeaBIOS, isolinux.
    UsbBios,
    /// qemu (TCG) boots the ISO file as a USB stick (GPT ESP): OVMF, GRUB.
    UsbUefi,
    /// qemu boots the domU vmlinux through its PVH entry point, with the
    /// initrd and the ISO as a disk.
    XenPvh,
    /// Xen 4.17 (Debian's hypervisor) under qemu, our domU kernel and initrd
    /// as its PV guest with `xen` on the command line, the ISO as a disk;
    /// the banner on hvc0.
    XenPv,
    /// Xen 4.17 under qemu with a Debian dom0: the Xen tarball's README run
    /// as written (`xl create -c /root/finnix-conf 'name="finnix"'`), the
    /// guest as PVH and as PV: banner, read-only xvda, DHCP on xenbr0,
    /// `xl list`, shutdown; then xl's errors for bad configurations.
    XenXl,
    /// UML from the ISO with `toram`: after the banner the medium is no
    /// longer in use.
    Toram,
}

/// How a target's firmware and boot loader are reached, for the checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loader {
    /// The kernel is started directly (UML, qemu -kernel, Xen's modules).
    None,
    /// SeaBIOS then isolinux: its menu, the serial entry's hotkey.
    Isolinux,
    /// OVMF then GRUB: its menu, the serial entry's hotkey.
    Grub,
}

/// What a target is: one row of [`SPECS`].
struct Spec {
    target: Target,
    name: &'static str,
    /// It boots release files (the ISO, the tarballs, the domU kernel).
    needs_release: bool,
    /// It boots the standard release whatever the profile under test: what
    /// it checks lives only there (efibootmgr; Secure Boot of the release
    /// users get).
    standard: bool,
    /// UML (an ordinary process) rather than qemu.
    uml: bool,
    /// The console the root shell is on (its prompt names it).
    console: &'static str,
    /// What FINNIX_MODE in /run/finnix/boot.env must say.
    mode: GuestMode,
    /// The device the initramfs must have found the medium on.
    medium: &'static str,
    loader: Loader,
}

/// Every boot target: how it is reached and what it must show. Its command
/// line is built by [`command`]; its own checks are its hook in [`drive`].
#[rustfmt::skip]
const SPECS: [Spec; 13] = [
    Spec { target: Target::UmlIso, name: "uml-iso", standard: false, needs_release: true, uml: true, console: "tty0", mode: GuestMode::Uml, medium: "/dev/ubda", loader: Loader::None },
    Spec { target: Target::UmlSquashroot, name: "uml-squashroot", standard: false, needs_release: false, uml: true, console: "tty0", mode: GuestMode::Uml, medium: "/dev/ubda", loader: Loader::None },
    Spec { target: Target::UmlReadonly, name: "uml-readonly", standard: false, needs_release: true, uml: true, console: "tty0", mode: GuestMode::Uml, medium: "/dev/ubda", loader: Loader::None },
    Spec { target: Target::UmlFlow, name: "uml-flow", standard: false, needs_release: false, uml: true, console: "tty0", mode: GuestMode::Uml, medium: "/dev/ubda", loader: Loader::None },
    Spec { target: Target::Toram, name: "toram", standard: false, needs_release: true, uml: true, console: "tty0", mode: GuestMode::Uml, medium: "/dev/ubda", loader: Loader::None },
    Spec { target: Target::BiosCd, name: "bios-cd", standard: false, needs_release: true, uml: false, console: "ttyS0", mode: GuestMode::Metal, medium: "/dev/sr0", loader: Loader::Isolinux },
    Spec { target: Target::UefiCd, name: "uefi-cd", standard: true, needs_release: true, uml: false, console: "ttyS0", mode: GuestMode::Metal, medium: "/dev/sr0", loader: Loader::Grub },
    Spec { target: Target::UefiSecureboot, name: "uefi-secureboot", standard: true, needs_release: true, uml: false, console: "ttyS0", mode: GuestMode::Metal, medium: "/dev/sr0", loader: Loader::Grub },
    Spec { target: Target::UsbBios, name: "usb-bios", standard: false, needs_release: true, uml: false, console: "ttyS0", mode: GuestMode::Metal, medium: "/dev/sda", loader: Loader::Isolinux },
    Spec { target: Target::UsbUefi, name: "usb-uefi", standard: false, needs_release: true, uml: false, console: "ttyS0", mode: GuestMode::Metal, medium: "/dev/sda", loader: Loader::Grub },
    Spec { target: Target::XenPvh, name: "xen-pvh", standard: false, needs_release: true, uml: false, console: "ttyS0", mode: GuestMode::Metal, medium: "/dev/vda", loader: Loader::None },
    Spec { target: Target::XenPv, name: "xen-pv", standard: false, needs_release: true, uml: false, console: "hvc0", mode: GuestMode::Xen, medium: "/dev/vda", loader: Loader::None },
    Spec { target: Target::XenXl, name: "xen-xl", standard: false, needs_release: true, uml: false, console: "hvc0", mode: GuestMode::Xen, medium: "/dev/xvda", loader: Loader::None },
];

impl Target {
    pub const ALL: [Target; 13] = [
        Target::UmlIso,
        Target::UmlSquashroot,
        Target::UmlReadonly,
        Target::UmlFlow,
        Target::Toram,
        Target::BiosCd,
        Target::UefiCd,
        Target::UefiSecureboot,
        Target::UsbBios,
        Target::UsbUefi,
        Target::XenPvh,
        Target::XenPv,
        Target::XenXl,
    ];

    fn spec(self) -> &'static Spec {
        SPECS
            .iter()
            .find(|s| s.target == self)
            .expect("every target has a row in SPECS")
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn needs_release(self) -> bool {
        self.spec().needs_release
    }

    /// It boots the standard release (`Inputs::standard`).
    pub fn needs_standard(self) -> bool {
        self.spec().standard
    }

    fn is_uml(self) -> bool {
        self.spec().uml
    }

    fn console(self) -> &'static str {
        self.spec().console
    }

    fn mode(self) -> &'static str {
        self.spec().mode.name()
    }

    fn medium(self) -> &'static str {
        self.spec().medium
    }

    fn loader(self) -> Loader {
        self.spec().loader
    }

    /// The bound on the whole boot, up to the shell.
    fn timeout(self) -> Duration {
        Duration::from_secs(if self.is_uml() { 240 } else { 600 })
    }
}

/// What a successful check measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub banner_secs: f64,
    pub shell_secs: f64,
    pub mem_used_kib: u64,
    pub log: PathBuf,
    /// What else the target measured, for its report line.
    pub detail: String,
}

/// The files a boot needs.
pub struct Inputs {
    pub uml_kernel: PathBuf,
    pub initrd: PathBuf,
    pub squashfs: PathBuf,
    pub kernel_release: String,
    pub version: String,
    pub memory_mib: u32,
    pub release: Option<ReleaseInputs>,
    /// The Xen host (dom0) for xen-xl, when a target needs it ([`prepare`]).
    pub xen_host: Option<crate::checks::xen_xl::Host>,
    /// The standard release's ISO, for the targets that boot it.
    pub standard_iso: Option<PathBuf>,
}

/// Release files, for the targets that boot them.
pub struct ReleaseInputs {
    pub iso: PathBuf,
    pub uml_tarball: PathBuf,
    pub xen_tarball: PathBuf,
    pub xen_kernel: PathBuf,
    pub xen_vmlinux: PathBuf,
    pub xen_release: String,
    /// Debian's kernel on the ISO: `6.1.0-56-amd64`.
    pub metal_release: String,
}

impl Inputs {
    fn release(&self) -> Result<&ReleaseInputs> {
        self.release
            .as_ref()
            .context("this target needs the release files (the ISO, the tarballs)")
    }

    /// The ISO a target boots: the standard release's for those that need it.
    fn iso(&self, target: Target) -> Result<&Path> {
        if target.needs_standard() {
            self.standard_iso
                .as_deref()
                .context("this target boots the standard release's ISO (Inputs::standard_iso)")
        } else {
            Ok(&self.release()?.iso)
        }
    }

    fn expected_release(&self, target: Target) -> Result<&str> {
        Ok(if target.is_uml() {
            &self.kernel_release
        } else if target.loader() == Loader::None {
            &self.release()?.xen_release
        } else {
            // The ISO boots Debian's signed kernel.
            &self.release()?.metal_release
        })
    }
}

/// Milestones of a boot, in order, and lines that prove each.
const MILESTONES: &[(&str, &[&str])] = &[
    (
        "firmware",
        &[
            "SeaBIOS",
            "BdsDxe",
            "UEFI",
            "Xen version",
            "Linux version",
            "Checking that ptrace",
        ],
    ),
    (
        "bootloader",
        &[
            "ISOLINUX",
            "GNU GRUB",
            "Finnix 1",
            "Linux version",
            "Xen version",
        ],
    ),
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

/// An empty file of `mib` MiB holding a filesystem made by `mkfs`.
fn disk_image(path: &Path, mib: u64, mkfs: &[&str]) -> Result<()> {
    let f = fs::File::create(path)?;
    f.set_len(mib << 20)?;
    drop(f);
    let (prog, args) = mkfs.split_first().expect("mkfs command");
    crate::cmd!(prog).args(args).arg(path).output()?;
    Ok(())
}

/// The UML tarball unpacked in `dir`, as a user would; returns its folder.
fn unpack_uml(r: &ReleaseInputs, dir: &Path) -> Result<PathBuf> {
    unpack_uml_tarball(&r.uml_tarball, dir)
}

/// A UML tarball unpacked in `dir`; returns its folder.
pub fn unpack_uml_tarball(tarball: &Path, dir: &Path) -> Result<PathBuf> {
    let gz =
        fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    archive.set_preserve_permissions(true);
    archive
        .unpack(dir)
        .with_context(|| format!("cannot unpack {}", tarball.display()))?;
    let top = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .find(|e| e.path().is_dir())
        .context("the UML tarball holds no directory")?
        .path();
    Ok(top)
}

use crate::guest::qemu::{self, OVMF, XEN_GZ};

/// The command line for a target, as a user would type it in `dir`.
fn command(target: Target, inputs: &Inputs, dir: &Path, interactive: bool) -> Result<Command> {
    match target {
        Target::UmlIso | Target::UmlReadonly | Target::Toram => {
            uml_from_tarball(target, inputs, dir, interactive)
        }
        Target::UmlSquashroot => uml_squashroot(inputs, dir, interactive),
        Target::UmlFlow => uml_flow(inputs, dir, interactive),
        Target::BiosCd => Ok(qemu::bios_cd(&inputs.release()?.iso)),
        Target::UefiCd => uefi_cd(inputs, dir),
        Target::UefiSecureboot => uefi_secureboot(inputs, dir),
        Target::UsbBios | Target::UsbUefi => usb_stick(target, inputs),
        Target::XenPvh => xen_pvh(inputs),
        Target::XenPv => xen_pv(inputs, dir),
        Target::XenXl => bail!("xen-xl is driven by checks::xen_xl"),
    }
}

/// The UML tarball unpacked as a user would, the ISO linked as finnix.iso, the spec's command line (with toram, more memory).
fn uml_from_tarball(
    target: Target,
    inputs: &Inputs,
    dir: &Path,
    interactive: bool,
) -> Result<Command> {
    let mem = format!("mem={}M", inputs.memory_mib);
    let uml = |cwd: &Path, args: &[&str]| crate::guest::uml::command(cwd, dir, args, interactive);
    // As a user would: unpack the UML tarball, symlink the ISO as
    // finnix.iso, type the spec's command line.
    let r = inputs.release()?;
    let top = unpack_uml(r, dir)?;
    link(&r.iso, &top, "finnix.iso")?;
    match target {
        Target::UmlIso => uml(
            &top,
            &[
                "mode=tt",
                &mem,
                "initrd=initrd.img",
                "root=/dev/ubda",
                "ubdar=finnix.iso",
                "uml",
            ],
        ),
        Target::UmlReadonly => uml(
            &top,
            &[
                &mem,
                "initrd=initrd.img",
                "root=/dev/ubda",
                "ubdar=finnix.iso",
                "uml",
            ],
        ),
        _ => {
            // toram needs the squashfs's size in memory on top.
            let need = fs::metadata(&r.iso)?.len() / (1 << 20) + inputs.memory_mib as u64 + 64;
            let mem = format!("mem={need}M");
            uml(
                &top,
                &[
                    &mem,
                    "initrd=initrd.img",
                    "root=/dev/ubda",
                    "ubdar=finnix.iso",
                    "toram",
                    "uml",
                ],
            )
        }
    }
}

/// `linux`, `initrd.img` and the squashfs `FINNIX` in `dir`, as the spec
/// names them.
fn link_live_files(inputs: &Inputs, dir: &Path) -> Result<()> {
    link(&inputs.uml_kernel, dir, "linux")?;
    link(&inputs.initrd, dir, "initrd.img")?;
    link(&inputs.squashfs, dir, "FINNIX")
}

/// The squashfs itself as ubda: `ubdar=FINNIX squashroot uml`.
fn uml_squashroot(inputs: &Inputs, dir: &Path, interactive: bool) -> Result<Command> {
    let mem = format!("mem={}M", inputs.memory_mib);
    let uml = |cwd: &Path, args: &[&str]| crate::guest::uml::command(cwd, dir, args, interactive);
    link_live_files(inputs, dir)?;
    uml(
        dir,
        &[
            &mem,
            "initrd=initrd.img",
            "root=/dev/ubda",
            "ubdar=FINNIX",
            "squashroot",
            "uml",
        ],
    )
}

/// squashroot plus swap (ubdb), an ext4 data disk (ubdc) and eth0 on a TAP in a private network namespace.
fn uml_flow(inputs: &Inputs, dir: &Path, interactive: bool) -> Result<Command> {
    let mem = format!("mem={}M", inputs.memory_mib);
    let uml = |cwd: &Path, args: &[&str]| crate::guest::uml::command(cwd, dir, args, interactive);
    link_live_files(inputs, dir)?;
    disk_image(&dir.join("swap.img"), 32, &["mkswap", "-q"])?;
    disk_image(&dir.join("data.img"), 32, &["mkfs.ext4", "-q", "-F"])?;
    let inner = uml(
        dir,
        &[
            &mem,
            "initrd=initrd.img",
            "root=/dev/ubda",
            "ubdar=FINNIX",
            "ubdb=swap.img",
            "ubdc=data.img",
            "eth0=tuntap,tap0",
            "squashroot",
            "uml",
        ],
    )?;
    // A private network namespace with its own TAP: nothing on the
    // host's network changes.
    let script = format!(
        "ip tuntap add dev tap0 mode tap && ip link set tap0 up && exec {}",
        shell_words(&inner)
    );
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

/// OVMF (its 4 MiB build, variables in their own flash from a copy of the
/// empty store, kept in `dir` for a second boot), the standard ISO as an
/// IDE CD, and a blank disk for a boot repair (`efibootmgr --create`).
fn uefi_cd(inputs: &Inputs, dir: &Path) -> Result<Command> {
    let vars = dir.join("OVMF_VARS.fd");
    if !vars.exists() {
        fs::copy(qemu::OVMF_VARS, &vars)?;
    }
    let disk = dir.join("esp-disk.img");
    if !disk.exists() {
        fs::File::create(&disk)?.set_len(64 << 20)?;
    }
    let mut c = qemu::command("q35", qemu::MIB);
    qemu::pflash(&mut c, qemu::OVMF_CODE, &vars);
    c.arg("-drive")
        .arg(qemu::iso_drive(
            inputs.iso(Target::UefiCd)?,
            "media=cdrom,readonly=on,if=none,id=cd",
        ))
        // No bootindex: with qemu's boot order OVMF keeps only the entries
        // it names and deletes the others (a boot repair's among them). The
        // firmware's own order finds the CD (the blank disk holds no loader).
        .args(["-device", "ide-cd,drive=cd"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()));
    Ok(c)
}

/// OVMF's Secure Boot build (SMM, so q35 with smm=on and a secure flash)
/// with Microsoft's keys enrolled and Secure Boot on, from a copy of its
/// variable store; the standard ISO as a CD.
fn uefi_secureboot(inputs: &Inputs, dir: &Path) -> Result<Command> {
    let vars = dir.join("OVMF_VARS.fd");
    fs::copy(qemu::OVMF_SECBOOT_VARS, &vars)?;
    let mut c = qemu::command("q35,smm=on", qemu::MIB);
    c.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    qemu::pflash(&mut c, qemu::OVMF_SECBOOT_CODE, &vars);
    c.arg("-drive")
        .arg(qemu::iso_drive(
            inputs.iso(Target::UefiSecureboot)?,
            "media=cdrom,readonly=on,if=none,id=cd",
        ))
        .args(["-device", "ide-cd,drive=cd,bootindex=0"]);
    Ok(c)
}

/// The ISO file as a USB stick (snapshot: writes never reach it), SeaBIOS or OVMF.
fn usb_stick(target: Target, inputs: &Inputs) -> Result<Command> {
    // The ISO file as a USB stick; snapshot=on: writes never reach the file.
    let mut c = if target == Target::UsbBios {
        qemu::command("pc", qemu::MIB)
    } else {
        qemu::command("q35", qemu::MIB)
    };
    if target == Target::UsbUefi {
        c.args(["-bios", OVMF]);
    }
    c.args(["-device", "qemu-xhci,id=xhci"])
        .arg("-drive")
        .arg(qemu::iso_drive(
            &inputs.release()?.iso,
            "if=none,id=stick,snapshot=on",
        ))
        .args(["-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0"]);
    Ok(c)
}

/// qemu's PVH loader: the domU vmlinux, the initrd, the ISO on virtio.
fn xen_pvh(inputs: &Inputs) -> Result<Command> {
    let r = inputs.release()?;
    let mut c = qemu::command("pc", qemu::MIB);
    c.arg("-kernel")
        .arg(&r.xen_vmlinux)
        .arg("-initrd")
        .arg(&inputs.initrd)
        .args(["-append", "console=ttyS0,115200"]);
    c.arg("-drive")
        .arg(qemu::iso_drive(&r.iso, "if=virtio,readonly=on"));
    Ok(c)
}

/// Xen 4.17 under qemu, our domU kernel and initrd as its first (PV) domain,
/// the ISO on virtio (the domU kernel has no disk controller drivers).
fn xen_pv(inputs: &Inputs, dir: &Path) -> Result<Command> {
    let r = inputs.release()?;
    // Debian ships the hypervisor gzipped; qemu -kernel wants it plain.
    crate::support::fsutil::gunzip(Path::new(XEN_GZ), &dir.join("xen"))?;
    link(&r.xen_kernel, dir, "vmlinuz")?;
    link(&inputs.initrd, dir, "initrd.img")?;
    let mut c = qemu::command("pc", qemu::MIB);
    c.current_dir(dir)
        .args([
            "-cpu",
            "qemu64",
            "-kernel",
            "xen",
            "-append",
            "console=com1 com1=115200,8n1 dom0_mem=512M noreboot",
        ])
        // hostname=: the live system's boot words reach a Xen guest too.
        .args([
            "-initrd",
            "vmlinuz xen console=hvc0 hostname=xen-rescue,initrd.img",
        ])
        .arg("-drive")
        .arg(qemu::iso_drive(&r.iso, "if=virtio,readonly=on"));
    Ok(c)
}

fn shell_words(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| crate::support::cmd::shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What targets need beyond the release: the Xen host for xen-xl (a
/// cached stage of its own, built here rather than inside a boot's line).
pub fn prepare(ctx: &Ctx, inputs: &mut Inputs, targets: &[Target]) -> Result<()> {
    if targets.contains(&Target::XenXl) && inputs.xen_host.is_none() {
        inputs.xen_host = Some(crate::checks::xen_xl::host(ctx)?);
    }
    Ok(())
}

fn xen_host(inputs: &Inputs) -> Result<&crate::checks::xen_xl::Host> {
    inputs
        .xen_host
        .as_ref()
        .context("the Xen host was not prepared (boot::prepare)")
}

/// Boot interactively: the guest's console is this terminal.
pub fn interactive(ctx: &Ctx, target: Target, inputs: &Inputs) -> Result<()> {
    if target == Target::XenXl {
        return crate::checks::xen_xl::interactive(ctx, inputs, xen_host(inputs)?);
    }
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
    check_named(ctx, target, inputs, target.name())
}

/// [`check`] with its console log named after `name` (a target booted twice
/// with other inputs, side by side).
pub fn check_named(ctx: &Ctx, target: Target, inputs: &Inputs, name: &str) -> Result<Report> {
    let run = ctx.cache.temp_dir(&format!("boot-{name}"))?;
    let logs = ctx.logs();
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("console-{name}.log"));
    if target == Target::XenXl {
        return crate::checks::xen_xl::check(ctx, inputs, xen_host(inputs)?, &log);
    }
    let iso_before = match (target, &inputs.release) {
        (Target::UmlReadonly, Some(r)) => Some(crate::support::cache::sha256_file(&r.iso)?),
        _ => None,
    };
    let cmd = command(target, inputs, run.path(), false)?;
    let mut guest = Guest::start(cmd, &log)?;
    if target == Target::XenPv {
        // Its console is Xen's serial line (Guest::pace_input): 32 bytes
        // every 50 ms leave the ring room for a dom0 that stalls 200 ms.
        guest.pace_input(32, Duration::from_millis(50));
    }
    let mut step = Step::Boot;
    match drive(&mut guest, target, inputs, &mut step) {
        Ok((banner_secs, shell_secs, mem_used_kib)) => {
            let detail = if target == Target::UefiCd {
                let entry = second_uefi_boot(ctx, inputs, run.path())?;
                format!("second boot, same variables: {}", entry.trim())
            } else {
                String::new()
            };
            if let (Some(before), Some(r)) = (iso_before, &inputs.release) {
                let after = crate::support::cache::sha256_file(&r.iso)?;
                ensure!(
                    before == after,
                    "{}: the ISO changed on the host: sha256 {before} before, {after} after",
                    target.name()
                );
            }
            Ok(Report {
                banner_secs,
                shell_secs,
                mem_used_kib,
                log,
                detail,
            })
        }
        Err(e) => {
            guest.kill();
            // Before the banner, the first milestone missing from the console
            // says how far the boot got; after it, the step that was running.
            let what = match step {
                Step::Boot => format!("the {} did not arrive", missing_milestone(&guest.output())),
                other => format!("failed at: {}", other.describe()),
            };
            bail!(
                "{}: {e:#}\n{what}; last console lines ({}):\n{}",
                target.name(),
                ui::display_path(&log),
                guest.tail(25)
            )
        }
    }
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The trouble checks must see trouble: a UML boot (squashroot) in which a
/// kernel warning is planted in the kernel's log (/dev/kmsg, below the
/// console's level: only dmesg has it) and an oops-like line is printed on
/// the console; each check must fail naming its line. Returns what each
/// said.
pub fn planted_trouble(ctx: &Ctx, inputs: &Inputs) -> Result<String> {
    const WARNING: &str = "WARNING: CPU: 0 PID: 1 at finnix-planted-warning";
    const OOPS: &str = "BUG: finnix-planted-oops";
    let run = ctx.cache.temp_dir("check-trouble")?;
    let log = ctx.logs().join("console-planted-trouble.log");
    let cmd = command(Target::UmlSquashroot, inputs, run.path(), false)?;
    let mut guest = Guest::start(cmd, &log)?;
    let result = (|| -> Result<String> {
        let start = Instant::now();
        guest.boot_to_shell(
            &inputs.version,
            "tty0",
            start,
            Target::UmlSquashroot.timeout(),
        )?;
        guest.check_dmesg().context("dmesg of a clean boot")?;
        guest
            .check_trouble()
            .context("the console of a clean boot")?;
        guest.run(&format!("echo '<4>{WARNING}' > /dev/kmsg"), COMMAND_TIMEOUT)?;
        let dmesg = match guest.check_dmesg() {
            Ok(()) => bail!("a kernel warning in dmesg ({WARNING:?}) went unseen"),
            Err(e) if format!("{e:#}").contains(WARNING) => format!("{e:#}"),
            Err(e) => bail!("dmesg's check failed without naming the planted warning: {e:#}"),
        };
        guest.run(&format!("echo '<2>{OOPS}' > /dev/kmsg"), COMMAND_TIMEOUT)?;
        let mut step = Step::Shutdown;
        shutdown(&mut guest, Target::UmlSquashroot, &mut step)?;
        let console = match guest.check_trouble() {
            Ok(()) => bail!("an oops line on the console ({OOPS:?}) went unseen"),
            Err(e) if format!("{e:#}").contains(OOPS) => format!("{e:#}"),
            Err(e) => bail!("the console's check failed without naming the planted line: {e:#}"),
        };
        Ok(format!(
            "{}\n{}",
            dmesg.lines().last().unwrap_or(""),
            console.lines().nth(1).unwrap_or("")
        ))
    })();
    if result.is_err() {
        guest.kill();
    }
    result
}

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

/// At isolinux's menu (SeaBIOS), take the default entry, as a user at a
/// serial-only machine does.
pub fn choose_isolinux_default(guest: &mut Guest, timeout: Duration) -> Result<()> {
    choose_default_entry(guest, Loader::Isolinux, timeout)
}

/// The boot menu's default entry (`console=ttyS0,115200 console=tty0`: the
/// screen is /dev/console), with no hotkey: everything the initramfs and
/// the live system say must reach the serial port all the same. Enter
/// starts it at once; isolinux's own timeout would too, GRUB's countdown
/// does not run under qemu's TCG (see the reference notes).
fn choose_default_entry(guest: &mut Guest, loader: Loader, timeout: Duration) -> Result<()> {
    match loader {
        Loader::None => Ok(()),
        Loader::Isolinux | Loader::Grub => {
            guest
                .expect(
                    "erial console (ttyS0",
                    timeout.min(Duration::from_secs(240)),
                )
                .context("no boot menu on the serial port")?;
            // Let the menu settle, then take the highlighted (default) entry.
            std::thread::sleep(Duration::from_millis(500));
            guest.send("\r")?;
            Ok(())
        }
    }
}

/// Where a boot check is, for the error when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Firmware, boot loader, kernel, initrd, init: up to the ready banner
    /// and the root shell's prompt.
    Boot,
    Commands,
    Shutdown,
    Exit,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Step::Boot => "the boot, up to the ready banner",
            Step::Commands => "the checks run in the guest's shell",
            Step::Shutdown => "`shutdown -h now` and its shutdown lines",
            Step::Exit => "the guest process's exit after the shutdown lines",
        }
    }
}

fn drive(
    guest: &mut Guest,
    target: Target,
    inputs: &Inputs,
    step: &mut Step,
) -> Result<(f64, f64, u64)> {
    let start = Instant::now();
    let deadline = target.timeout();
    choose_default_entry(guest, target.loader(), deadline)?;
    let banner = format!("Finnix version {} ready;", inputs.version);
    let (banner_secs, shell_secs, boot_text) =
        guest.boot_to_shell(&inputs.version, target.console(), start, deadline)?;
    *step = Step::Commands;

    check_facts(guest, target, inputs, &boot_text)?;
    match target {
        Target::UmlIso => check_uml_iso(guest),
        Target::UmlReadonly => check_readonly(guest, "/dev/ubda"),
        Target::Toram => check_toram(guest),
        Target::UmlFlow => check_uml_flow(guest, &boot_text, &banner),
        Target::XenPv => check_xen_pv(guest, &boot_text),
        Target::UefiSecureboot => check_secure_boot(guest, &boot_text),
        Target::UefiCd => check_boot_repair(guest),
        _ => Ok(()),
    }?;
    let used = memory_in_use(guest)?;
    guest.check_dmesg()?;
    shutdown(guest, target, step)?;
    guest.check_trouble()?;
    Ok((banner_secs, shell_secs, used))
}

/// The label of the boot entry uefi-cd makes, and looks for at its second boot.
const REPAIR_LABEL: &str = "Finnix repair test";

/// UEFI's variables as a rescue needs them: efivarfs mounted at boot,
/// efibootmgr listing the firmware's Boot#### entries; then a boot repair:
/// an EFI system partition on the blank disk and a boot entry for it made
/// with `efibootmgr --create` (looked for again at the second boot).
fn check_boot_repair(guest: &mut Guest) -> Result<()> {
    let mounted = guest.run(
        "grep -c ' /sys/firmware/efi/efivars efivarfs ' /proc/mounts",
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        mounted.trim() == "1",
        "efivarfs is not mounted on /sys/firmware/efi/efivars after boot"
    );
    let (ok, list) = guest.run_status("efibootmgr", COMMAND_TIMEOUT)?;
    ensure!(
        ok && list.lines().any(|l| l.starts_with("Boot0")),
        "efibootmgr lists no Boot#### entry:\n{list}"
    );
    let (ok, out) = guest.run_status(
        &format!(
            "sgdisk --clear --new=1:0:0 --typecode=1:ef00 /dev/vda >/dev/null && \
             mkfs.vfat -n REPAIR /dev/vda1 >/dev/null && \
             efibootmgr --create --disk /dev/vda --part 1 --label '{REPAIR_LABEL}' --loader '\\EFI\\BOOT\\BOOTX64.EFI'"
        ),
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        ok && out.contains(REPAIR_LABEL),
        "efibootmgr --create did not make the entry:\n{out}"
    );
    Ok(())
}

/// uefi-cd's second boot, with the same variable store: the entry the
/// first boot made is there (the firmware kept it).
fn second_uefi_boot(ctx: &Ctx, inputs: &Inputs, run: &Path) -> Result<String> {
    let log = ctx.logs().join("console-uefi-cd-second.log");
    let cmd = uefi_cd(inputs, run)?;
    let mut guest = Guest::start(cmd, &log)?;
    let mut step = Step::Boot;
    let r = (|| -> Result<String> {
        let start = Instant::now();
        choose_default_entry(&mut guest, Loader::Grub, Target::UefiCd.timeout())?;
        guest.boot_to_shell(&inputs.version, "ttyS0", start, Target::UefiCd.timeout())?;
        step = Step::Commands;
        guest.check_dmesg()?;
        let list = guest.run("efibootmgr", COMMAND_TIMEOUT)?;
        let entry = list
            .lines()
            .find(|l| l.contains(REPAIR_LABEL))
            .with_context(|| {
                format!("the second boot's efibootmgr does not list {REPAIR_LABEL:?}:\n{list}")
            })?
            .to_string();
        shutdown(&mut guest, Target::UefiCd, &mut step)?;
        // The entry the first boot made names a loader its blank ESP does
        // not hold: the firmware tries it first, says so, and takes the CD.
        guest.check_trouble_allowing(&[format!("\"{REPAIR_LABEL}\" from HD(")])?;
        Ok(entry)
    })();
    r.map_err(|e| {
        guest.kill();
        anyhow::anyhow!(
            "uefi-cd, second boot on the same variable store: {e:#}\nat: {}; last console lines ({}):\n{}",
            step.describe(),
            ui::display_path(&log),
            guest.tail(25)
        )
    })
}

/// Secure Boot, as the running kernel sees it: its own log line, the
/// firmware's SecureBoot variable (efivarfs) set to 1, and lockdown.
fn check_secure_boot(guest: &mut Guest, boot_text: &str) -> Result<()> {
    let log = guest.run(
        "dmesg | grep -i -e 'secure boot' -e lockdown",
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        log.contains("Secure boot enabled"),
        "the kernel does not say \"Secure boot enabled\" (dmesg: {log:?})"
    );
    ensure!(
        log.contains("Kernel is locked down from EFI Secure Boot"),
        "the kernel is not locked down by Secure Boot (dmesg: {log:?})"
    );
    // efivarfs and securityfs are the live system's to mount at boot.
    let var = guest.run(
        "od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
        COMMAND_TIMEOUT,
    )?;
    let bytes: Vec<&str> = var.split_whitespace().collect();
    ensure!(
        bytes.last() == Some(&"1"),
        "the SecureBoot EFI variable is not 1: {var:?} (attributes, then the value)"
    );
    ensure!(
        !boot_text.contains("shim_lock") || !boot_text.contains("verification failed"),
        "GRUB reported a verification failure"
    );
    let lockdown = guest.run("cat /sys/kernel/security/lockdown", COMMAND_TIMEOUT)?;
    ensure!(
        lockdown.contains("[integrity]") || lockdown.contains("[confidentiality]"),
        "/sys/kernel/security/lockdown does not show a lockdown: {lockdown:?}"
    );
    let (ok, list) = guest.run_status("efibootmgr", COMMAND_TIMEOUT)?;
    ensure!(
        ok && list.lines().any(|l| l.starts_with("Boot0")),
        "efibootmgr lists no Boot#### entry under Secure Boot:\n{list}"
    );
    Ok(())
}

/// What every target must show: the kernel release, the host name, the
/// mode and medium the initramfs recorded, /FINNIX, dpkg's count in the banner.
pub(crate) fn check_facts(
    guest: &mut Guest,
    target: Target,
    inputs: &Inputs,
    boot_text: &str,
) -> Result<()> {
    let release = guest.run("uname -r", COMMAND_TIMEOUT)?;
    let want = inputs.expected_release(target)?;
    ensure!(
        release.trim() == want,
        "uname -r in the guest says {release:?}, expected {want:?}"
    );
    // The spec's transcript: uname -a, and the ways out (shutdown -h now
    // ends every check).
    let uname = guest.run("uname -a", COMMAND_TIMEOUT)?;
    // xen-pv is booted with hostname=xen-rescue (check_xen_pv).
    let host = if target == Target::XenPv {
        "xen-rescue"
    } else {
        "finnix"
    };
    ensure!(
        uname.starts_with(&format!("Linux {host} ")) && uname.contains(want),
        "uname -a says {uname:?}"
    );
    let (all, found) = guest.run_status(
        "(for c in shutdown halt poweroff; do command -v $c || { echo no $c; exit 1; }; done)",
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        all,
        "shutdown, halt and poweroff are not all there: {found:?}"
    );
    let facts = guest.run(
        &format!(
            "hostname; . {}; echo ${}; ls /FINNIX/etc/finnix-release; echo ${}",
            boot_env::PATH,
            boot_env::MODE,
            boot_env::MEDIUM
        ),
        COMMAND_TIMEOUT,
    )?;
    let facts: Vec<&str> = facts.lines().collect();
    ensure!(
        facts.first() == Some(&host),
        "the hostname is not {host}: {facts:?}"
    );
    ensure!(
        facts.get(1) == Some(&target.mode()),
        "FINNIX_MODE is not {}: {facts:?}",
        target.mode()
    );
    ensure!(
        facts.get(2) == Some(&"/FINNIX/etc/finnix-release"),
        "/FINNIX does not show the squashfs root: {facts:?}"
    );
    ensure!(
        facts.get(3) == Some(&target.medium()),
        "the medium is not {}: {facts:?}",
        target.medium()
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

    Ok(())
}

/// MemTotal - MemAvailable in the guest, KiB.
fn memory_in_use(guest: &mut Guest) -> Result<u64> {
    let mem = guest.run("cat /proc/meminfo", COMMAND_TIMEOUT)?;
    let field = |name: &str| memory::meminfo_kib(&mem, name).unwrap_or(0);
    Ok(field("MemTotal").saturating_sub(field("MemAvailable")))
}

/// `shutdown -h now`: the spec's shutdown lines, then the guest process exits 0.
fn shutdown(guest: &mut Guest, target: Target, step: &mut Step) -> Result<()> {
    *step = Step::Shutdown;
    // The spec's own line, in every profile.
    guest.send("shutdown -h now\n")?;
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
    if target == Target::XenPv {
        // Dom0's poweroff makes Xen power the machine off (ACPI S5).
        guest.expect("Entering ACPI S5 state", COMMAND_TIMEOUT)?;
    }
    // UML exits 0 after halt; qemu exits 0 when the guest powers off.
    *step = Step::Exit;
    let status = guest.wait(COMMAND_TIMEOUT)?;
    ensure!(
        status.success(),
        "the guest exited with {status} after shutting down (expected 0)"
    );
    Ok(())
}

/// uml-iso: the ISO on /dev/ubda; mode=tt acknowledged and kept away from init.
fn check_uml_iso(guest: &mut Guest) -> Result<()> {
    // mode=tt is harmless: the kernel says so once and keeps it from init.
    ensure!(
        guest.output().contains("mode=tt: TT mode was removed"),
        "the UML kernel did not acknowledge mode=tt"
    );
    let facts = guest.run(&format!(". {}; echo ${}; echo ${}; grep -c mode=tt /proc/cmdline; tr '\\0' '\\n' < /proc/1/environ | grep -c '^mode='", boot_env::PATH, boot_env::MEDIUM_TYPE, boot_env::MEDIUM), COMMAND_TIMEOUT)?;
    let facts: Vec<&str> = facts.lines().collect();
    ensure!(
        facts.len() == 4 && facts[0] == "iso9660" && facts[1] == "/dev/ubda",
        "the medium is not the ISO on /dev/ubda: {facts:?}"
    );
    ensure!(
        facts[2] == "0" && facts[3] == "0",
        "mode=tt reached the command line or init's environment: {facts:?}"
    );
    Ok(())
}

/// Writing to the medium `dev` fails because it is read-only.
pub(crate) fn check_readonly(guest: &mut Guest, dev: &str) -> Result<()> {
    let out = guest.run(
        &format!("dd if=/dev/zero of={dev} bs=512 count=1 conv=fsync; echo dd-status=$?"),
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        !out.contains("dd-status=0"),
        "writing to {dev} succeeded in the guest:\n{out}"
    );
    ensure!(
        out.to_lowercase().contains("read-only")
            || out.contains("Operation not permitted")
            || out.contains("Permission denied"),
        "dd failed, but not because the device is read-only:\n{out}"
    );
    Ok(())
}

/// toram: the squashfs comes from RAM, the medium is free.
fn check_toram(guest: &mut Guest) -> Result<()> {
    let facts = guest.run(&format!(". {}; echo ${}; grep -c ' iso9660 ' /proc/mounts; cat /sys/block/loop*/loop/backing_file 2>/dev/null; ls /sys/block/ubda/holders | wc -l; grep -c '^/dev/ubda ' /proc/mounts", boot_env::PATH, boot_env::TORAM), COMMAND_TIMEOUT)?;
    let facts: Vec<&str> = facts.lines().collect();
    ensure!(
        facts.first() == Some(&"1"),
        "toram was not recorded: {facts:?}"
    );
    ensure!(
        facts.get(1) == Some(&"0"),
        "the ISO is still mounted: {facts:?}"
    );
    ensure!(
        facts.contains(&"/run/finnix/toram/FINNIX"),
        "the squashfs does not come from RAM: {facts:?}"
    );
    ensure!(
        facts.ends_with(&["0", "0"]),
        "/dev/ubda is still in use: {facts:?}"
    );
    Ok(())
}

/// uml-flow: the spec's boot lines in order, fstab with swap and the data partition.
fn check_uml_flow(guest: &mut Guest, boot_text: &str, banner: &str) -> Result<()> {
    in_order(
        boot_text,
        &[
            "Welcome to Finnix for User Mode Linux!",
            "[*] Running Linux kernel",
            "[*] Host: Linux",
            "[*] Scanning for partitions and creating /etc/fstab... done",
            "[*] Using swap partition /dev/ubdb",
            "[*] Using zram swap /dev/zram0:",
            "[*] Starting background DHCP request... eth0",
            banner,
        ],
    )?;
    // sysvinit (the standard profile) then enters the spec's runlevel; the
    // faster boot must not lose the line.
    if boot_text.contains("INIT: version") {
        in_order(boot_text, &[banner, "INIT: Entering runlevel: 2"])?;
    }
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
    // A 64 MB guest swaps to compressed RAM first (priority 100).
    ensure!(
        fstab
            .lines()
            .any(|l| l.starts_with("/dev/zram0 ") && l.split_whitespace().nth(4) == Some("100")),
        "zram swap is not in use at priority 100:\n{fstab}"
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
    Ok(())
}

/// xen-pv: a Xen guest says so.
fn check_xen_pv(guest: &mut Guest, boot_text: &str) -> Result<()> {
    let t = guest.run("cat /sys/hypervisor/type", COMMAND_TIMEOUT)?;
    ensure!(t.trim() == "xen", "/sys/hypervisor/type says {t:?}");
    let name = guest.run("hostname", COMMAND_TIMEOUT)?;
    ensure!(
        name.trim() == "xen-rescue",
        "hostname=xen-rescue gave the host name {name:?}"
    );
    ensure!(
        boot_text.contains("Welcome to Finnix for Xen!"),
        "no Xen welcome line"
    );
    Ok(())
}

impl crate::cli::Boot {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::{self, RELEASE_STAGES};
        use crate::stages::ensure_tools;
        let targets: Vec<Target> = match self.target {
            crate::cli::BootTarget::All => Target::ALL.to_vec(),
            crate::cli::BootTarget::One(name) => {
                use clap::ValueEnum;
                vec![Target::from_str(&name, false).map_err(|_| {
                    let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                    anyhow::anyhow!(
                        "unknown boot target {name:?}: expected all, {}",
                        names.join(", ")
                    )
                })?]
            }
        };
        ensure_tools(ctx, RELEASE_STAGES, &[crate::support::prereq::Tools::Boot])?;
        let profile = ctx.profile(self.profile);
        let mut inputs = if targets.iter().any(|t| t.needs_release()) {
            let release = pipeline::release(ctx, &profile)?;
            crate::checks::boot::inputs_of_release(ctx, &release)?
        } else {
            let live = pipeline::live(ctx, &profile, pipeline::default_squashfs(ctx))?;
            crate::checks::boot::inputs_of_live(ctx, &live)?
        };
        if targets.iter().any(|t| t.needs_standard()) {
            inputs.standard_iso = Some(pipeline::release(ctx, "standard")?.iso.image());
        }
        prepare(ctx, &mut inputs, &targets)?;
        match (self.check, targets.as_slice()) {
            (false, [t]) => interactive(ctx, *t, &inputs),
            (false, _) => {
                bail!("`boot all` needs --check (one target at a time is interactive)")
            }
            (true, _) => check_boots(ctx, &targets, &inputs, &profile),
        }
    }
}

/// The files a boot of `live` needs.
pub fn inputs_of_live(ctx: &Ctx, live: &crate::pipeline::Live) -> Result<Inputs> {
    let profile = crate::support::config::Profile::load(&ctx.root, &live.profile)?;
    Ok(Inputs {
        uml_kernel: live.uml.image(),
        initrd: live.initrd.image(),
        squashfs: live.squashfs.image(),
        kernel_release: live.uml.info.release.clone(),
        version: ctx.config.distribution.version.clone(),
        memory_mib: profile.memory_mib,
        release: None,
        xen_host: None,
        standard_iso: None,
    })
}

/// The files a boot of a release needs (the ISO, the tarballs, the domU kernel).
pub fn inputs_of_release(ctx: &Ctx, r: &crate::pipeline::Release) -> Result<Inputs> {
    let mut inputs = inputs_of_live(ctx, &r.live)?;
    let file = |suffix: &str| {
        r.files
            .iter()
            .find(|(n, _)| n.ends_with(suffix))
            .map(|(_, p)| p.clone())
            .context("release file")
    };
    inputs.release = Some(ReleaseInputs {
        iso: r.iso.image(),
        uml_tarball: file("-uml.tar.gz")?,
        xen_tarball: file("-xen.tar.gz")?,
        xen_kernel: r.xen.image(),
        xen_vmlinux: r.xen.vmlinux().context("domU vmlinux")?,
        xen_release: r.xen.info.release.clone(),
        metal_release: r.live.metal.release.clone(),
    });
    Ok(inputs)
}

/// Boot a target non-interactively and check it.
pub fn check_boot(ctx: &Ctx, target: Target, inputs: &Inputs) -> Result<Report> {
    check_boot_named(ctx, target, inputs, target.name())
}

pub fn check_boot_named(ctx: &Ctx, target: Target, inputs: &Inputs, name: &str) -> Result<Report> {
    ui::stage(
        &ctx.logs(),
        &format!("boot-{name}"),
        format!("boot {name} and check it"),
        |_| {
            let r = check_named(ctx, target, inputs, name)?;
            let detail = if r.detail.is_empty() {
                format!(
                    "ready banner {:.1} s, shell {:.1} s, {} MiB in use, console log {}",
                    r.banner_secs,
                    r.shell_secs,
                    r.mem_used_kib / 1024,
                    ui::display_path(&r.log)
                )
            } else {
                format!("{}, console log {}", r.detail, ui::display_path(&r.log))
            };
            Ok((r, crate::support::ui::Outcome::Passed, detail))
        },
    )
}

/// `boot --check` on several targets: one row each (target, result, seconds
/// to the ready banner, console log), then fail if any failed.
pub fn check_boots(ctx: &Ctx, targets: &[Target], inputs: &Inputs, profile: &str) -> Result<()> {
    let start = std::time::Instant::now();
    let mut rows = Vec::new();
    for &t in targets {
        let log = ctx.logs().join(format!("console-{}.log", t.name()));
        match check_boot(ctx, t, inputs) {
            Ok(r) => rows.push((
                t.name(),
                "ok".to_string(),
                format!("{:.1}", r.banner_secs),
                r.log,
            )),
            Err(e) => {
                let first = format!("{e:#}").lines().next().unwrap_or("").to_string();
                rows.push((t.name(), format!("FAILED: {first}"), "-".into(), log))
            }
        }
    }
    let mut table = format!(
        "{:<16} {:<10} {:>10}  console log\n",
        "target", "result", "banner (s)"
    );
    for (name, result, secs, log) in &rows {
        let short = if result.len() > 10 {
            "FAILED"
        } else {
            result.as_str()
        };
        table.push_str(&format!(
            "{name:<16} {short:<10} {secs:>10}  {}\n",
            ui::display_path(log)
        ));
    }
    table.push_str(&format!(
        "profile {profile}; qemu targets run without KVM (TCG); total {}\n",
        ui::fmt_duration(start.elapsed())
    ));
    print!("{table}");
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.1 != "ok")
        .map(|r| format!("{}: {}", r.0, r.1))
        .collect();
    ensure!(
        failed.is_empty(),
        "{} boot target(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_milestone() {
        assert_eq!(missing_milestone(""), "firmware");
        assert_eq!(missing_milestone("SeaBIOS (version 1.16)"), "bootloader");
        assert_eq!(missing_milestone("SeaBIOS\nISOLINUX 6.04\n"), "kernel");
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

    #[test]
    fn every_target_has_one_row_and_a_distinct_name() {
        for t in Target::ALL {
            assert_eq!(SPECS.iter().filter(|s| s.target == t).count(), 1);
        }
        let names: std::collections::BTreeSet<&str> =
            Target::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), Target::ALL.len());
    }
}
