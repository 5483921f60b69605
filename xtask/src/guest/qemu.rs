//! qemu as the boot checks run it: no KVM (TCG), serial console on stdio,
//! no network card unless asked, no monitor, no reboot.

use std::path::Path;
use std::process::Command;

/// Memory for qemu guests (hardware boots need more than UML's 64 MiB: the
/// firmware, the boot loader, the kernel and initrd images in RAM).
pub const MIB: u32 = 1024;
/// OVMF (UEFI firmware), Debian package `ovmf`: the image with its own
/// variables (volatile: a fresh store every boot).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// OVMF's 4 MiB build as code and a variable store of its own (pflash):
/// variables written by one boot are there at the next.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF's Secure Boot build (SMM: q35 with smm=on, a secure pflash) and
/// its variable store with Microsoft's keys enrolled and Secure Boot on.
pub const OVMF_SECBOOT_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const OVMF_SECBOOT_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
/// Xen's hypervisor, Debian package `xen-hypervisor-4.17-amd64`.
pub const XEN_GZ: &str = "/boot/xen-4.17-amd64.gz";

/// qemu's flags every guest of the checks shares: TCG, one CPU, no
/// display, monitor, network card or reboot; the serial line is placed by
/// the caller.
pub fn machine(machine: &str, memory_mib: u32) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-machine", machine, "-accel", "tcg", "-m"])
        .arg(memory_mib.to_string())
        .args([
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
        ]);
    c
}

/// [`machine`] with its serial line on stdio (the console the checks read).
pub fn command(machine_type: &str, memory_mib: u32) -> Command {
    let mut c = machine(machine_type, memory_mib);
    c.args(["-serial", "stdio"]);
    c
}

/// UEFI firmware as flash: `code` read-only, `vars` (a copy of the
/// build's store) written by the firmware and kept across boots.
pub fn pflash(c: &mut Command, code: &str, vars: &Path) {
    c.arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={code}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ));
}

/// The `-drive` of the release's ISO (raw), with the drive's other options
/// (`opts`: media, interface, id, ...). qemu takes no lock on the file: UML's
/// ubd driver locks a whole file it is given (`ubdar=finnix.iso`: a read
/// lock), and qemu reads any lock on its lock bytes as another user that
/// forbids consistent reads: a qemu started while a UML check had the same
/// ISO open failed with `Failed to get "consistent read" lock`. The ISO is
/// only ever read. (A qcow2 over the ISO says `backing.file.locking=off`.)
pub fn iso_drive(iso: &Path, opts: &str) -> String {
    format!("file={},format=raw,{opts},file.locking=off", iso.display())
}

/// A PC with SeaBIOS booting `iso` as its CD.
pub fn bios_cd(iso: &Path) -> Command {
    let mut c = command("pc", MIB);
    c.arg("-drive")
        .arg(iso_drive(iso, "media=cdrom,readonly=on"))
        .args(["-boot", "d"]);
    c
}
