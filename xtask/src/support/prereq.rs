//! Host prerequisites: one table maps each stage's host tools to the Debian
//! packages that provide them. Missing ones are reported together before any
//! long work starts; as root on a Debian-family host they are installed.

use std::path::Path;

use anyhow::{bail, Result};

/// How to tell that a requirement is met.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// An executable found on PATH (or an absolute path).
    Command(&'static str),
    /// A file that must exist (headers, boot loader images, firmware).
    File(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    pub probe: Probe,
    pub package: &'static str,
}

const fn cmd(name: &'static str, package: &'static str) -> Requirement {
    Requirement {
        probe: Probe::Command(name),
        package,
    }
}

const fn file(path: &'static str, package: &'static str) -> Requirement {
    Requirement {
        probe: Probe::File(path),
        package,
    }
}

// What each part of the pipeline runs, and the Debian package providing it.

const UNIT_TESTS: &[Requirement] = &[
    cmd("cpio", "cpio"),
    cmd("mksquashfs", "squashfs-tools"),
    cmd("unsquashfs", "squashfs-tools"),
    cmd("patch", "patch"),
    cmd("tar", "tar"),
    cmd("gzip", "gzip"),
    cmd("git", "git"),
    cmd("cc", "gcc"),
];

const KERNEL: &[Requirement] = &[
    cmd("make", "make"),
    cmd("gcc", "gcc"),
    cmd("ld", "binutils"),
    cmd("bc", "bc"),
    cmd("bison", "bison"),
    cmd("flex", "flex"),
    cmd("perl", "perl"),
    cmd("patch", "patch"),
    cmd("rsync", "rsync"),
    cmd("xz", "xz-utils"),
    cmd("tar", "tar"),
    cmd("dpkg-deb", "dpkg"),
    cmd("apt-get", "apt"),
    cmd("curl", "curl"),
    cmd("git", "git"),
    file("/usr/include/libelf.h", "libelf-dev"),
    file("/usr/include/openssl/ssl.h", "libssl-dev"),
];

const INITRD: &[Requirement] = &[
    file("/bin/busybox", "busybox-static"),
    file("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
    cmd("cc", "gcc"),
    cmd("cpio", "cpio"),
    cmd("zstd", "zstd"),
    cmd("readelf", "binutils"),
];

const ROOTFS: &[Requirement] = &[
    file("/bin/busybox", "busybox-static"),
    cmd("mmdebstrap", "mmdebstrap"),
    cmd("chroot", "coreutils"),
    cmd("dpkg-query", "dpkg"),
    // mmdebstrap checks the archive's signatures with gpgv.
    cmd("gpgv", "gpgv"),
    file(
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "debian-archive-keyring",
    ),
];

const SQUASHFS: &[Requirement] = &[
    cmd("unsquashfs", "squashfs-tools"),
    cmd("mksquashfs", "squashfs-tools"),
];

const METAL: &[Requirement] = &[
    cmd("apt-get", "apt"),
    cmd("dpkg-deb", "dpkg"),
    cmd("depmod", "kmod"),
];

const SIGN: &[Requirement] = &[
    cmd("ssh-keygen", "openssh-client"),
    cmd("gpg", "gnupg"),
    cmd("gpgconf", "gnupg"),
    cmd("gpgv", "gpgv"),
    cmd("sha256sum", "coreutils"),
];

const SNAPSHOT: &[Requirement] = &[
    cmd("apt-ftparchive", "apt-utils"),
    cmd("mmdebstrap", "mmdebstrap"),
    cmd("gpg", "gnupg"),
    cmd("dpkg-deb", "dpkg"),
];

const SOURCE: &[Requirement] = &[
    cmd("apt-get", "apt"),
    cmd("curl", "curl"),
    cmd("git", "git"),
    cmd("dpkg-deb", "dpkg"),
    cmd("dpkg-source", "dpkg-dev"),
    cmd("tar", "tar"),
    cmd("sha256sum", "coreutils"),
];

const ISO: &[Requirement] = &[
    cmd("xorriso", "xorriso"),
    file("/usr/lib/ISOLINUX/isolinux.bin", "isolinux"),
    file("/usr/lib/ISOLINUX/isohdpfx.bin", "isolinux"),
    file(
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "syslinux-common",
    ),
    cmd("dpkg-deb", "dpkg"),
    cmd("mmd", "mtools"),
    cmd("mcopy", "mtools"),
    cmd("mkfs.fat", "dosfstools"),
];

const BOOT: &[Requirement] = &[
    cmd("qemu-system-x86_64", "qemu-system-x86"),
    cmd("qemu-img", "qemu-utils"),
    file("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
    file("/usr/share/OVMF/OVMF_VARS_4M.fd", "ovmf"),
    file("/usr/share/ovmf/OVMF.fd", "ovmf"),
    file("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "ovmf"),
    file("/usr/share/OVMF/OVMF_VARS_4M.ms.fd", "ovmf"),
    cmd("sbverify", "sbsigntool"),
    file("/boot/xen-4.17-amd64.gz", "xen-hypervisor-4.17-amd64"),
    file("/usr/lib/xen-4.17/bin/readnotes", "xen-utils-4.17"),
    cmd("uml_mconsole", "uml-utilities"),
    cmd("setsid", "util-linux"),
    cmd("unshare", "util-linux"),
    cmd("ip", "iproute2"),
    cmd("mkswap", "util-linux"),
    cmd("mkfs.ext4", "e2fsprogs"),
    cmd("gzip", "gzip"),
    // xen-xl's Xen host: a Debian tree made into a disk image.
    cmd("mmdebstrap", "mmdebstrap"),
    cmd("gpgv", "gpgv"),
    file(
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "debian-archive-keyring",
    ),
    cmd("mke2fs", "e2fsprogs"),
];

const NETBOOT: &[Requirement] = &[
    cmd("qemu-system-x86_64", "qemu-system-x86"),
    file("/usr/lib/ipxe/qemu/pxe-virtio.rom", "ipxe-qemu"),
    file("/usr/lib/ipxe/ipxe.efi", "ipxe"),
    file("/usr/share/ovmf/OVMF.fd", "ovmf"),
    cmd("mkfs.fat", "dosfstools"),
    cmd("mmd", "mtools"),
    cmd("mcopy", "mtools"),
    cmd("grub-mkstandalone", "grub-common"),
    file("/usr/lib/grub/x86_64-efi/exfat.mod", "grub-efi-amd64-bin"),
];

const ACCESS: &[Requirement] = &[
    cmd("ssh", "openssh-client"),
    cmd("ssh-keyscan", "openssh-client"),
    cmd("ssh-keygen", "openssh-client"),
    cmd("nsenter", "util-linux"),
    cmd("unshare", "util-linux"),
    cmd("ip", "iproute2"),
    cmd("openssl", "openssl"),
    cmd("mkfs.fat", "dosfstools"),
    cmd("mcopy", "mtools"),
];

const COW: &[Requirement] = &[
    cmd("mke2fs", "e2fsprogs"),
    cmd("debugfs", "e2fsprogs"),
    cmd("e2fsck", "e2fsprogs"),
    cmd("cp", "coreutils"),
];

const CREATE: &[Requirement] = &[
    cmd("screen", "screen"),
    cmd("uml_mconsole", "uml-utilities"),
    cmd("ip", "iproute2"),
    cmd("dnsmasq", "dnsmasq-base"),
    cmd("iptables", "iptables"),
    cmd("setpriv", "util-linux"),
];

const REPRO: &[Requirement] = &[
    cmd("diffoscope", "diffoscope"),
    cmd("unshare", "util-linux"),
    cmd("timeout", "coreutils"),
    cmd("git", "git"),
];

const FRESH: &[Requirement] = &[
    cmd("mmdebstrap", "mmdebstrap"),
    cmd("unshare", "util-linux"),
    cmd("chroot", "coreutils"),
];

const RESCUE: &[Requirement] = &[
    // The preparation root (a Debian tree) and the qemu targets.
    cmd("mmdebstrap", "mmdebstrap"),
    cmd("gpgv", "gpgv"),
    file(
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "debian-archive-keyring",
    ),
    cmd("qemu-system-x86_64", "qemu-system-x86"),
    cmd("setsid", "util-linux"),
    cmd("cp", "coreutils"),
    cmd("head", "coreutils"),
];

const WORKFLOWS: &[Requirement] = &[
    file("/usr/bin/python3", "python3"),
    file(
        "/usr/lib/python3/dist-packages/pip/__init__.py",
        "python3-pip",
    ),
];

/// What a command needs on the host, by the part of the pipeline that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tools {
    /// What the unit tests run (GNU tools that read back what our writers wrote).
    UnitTests,
    Kernel,
    /// Debian's signed kernel: fetched and indexed, not compiled.
    Metal,
    Initrd,
    Rootfs,
    Squashfs,
    Iso,
    Boot,
    Cow,
    Create,
    Repro,
    /// check-fresh: a pristine Debian root to run the README's commands in.
    Fresh,
    /// check-rescue: the preparation root and boots with disks.
    Rescue,
    Workflows,
    /// sign and verify-release: SSH and OpenPGP signatures.
    Sign,
    /// check-snapshot: a local mirror (apt-ftparchive) and mmdebstrap.
    Snapshot,
    /// source and check-source: Debian source packages, read back.
    Source,
    /// check-netboot: iPXE (qemu's ROMs, Debian's ipxe.efi), a FAT disk.
    Netboot,
    /// check-access: OpenSSH's client, a network namespace.
    Access,
}

impl Tools {
    pub const ALL: [Tools; 19] = [
        Tools::UnitTests,
        Tools::Kernel,
        Tools::Metal,
        Tools::Initrd,
        Tools::Rootfs,
        Tools::Squashfs,
        Tools::Iso,
        Tools::Boot,
        Tools::Cow,
        Tools::Create,
        Tools::Repro,
        Tools::Fresh,
        Tools::Rescue,
        Tools::Workflows,
        Tools::Sign,
        Tools::Snapshot,
        Tools::Source,
        Tools::Netboot,
        Tools::Access,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tools::UnitTests => "unit-tests",
            Tools::Kernel => "kernel",
            Tools::Metal => "metal",
            Tools::Initrd => "initrd",
            Tools::Rootfs => "rootfs",
            Tools::Squashfs => "squashfs",
            Tools::Iso => "iso",
            Tools::Boot => "boot",
            Tools::Cow => "cow",
            Tools::Create => "create",
            Tools::Repro => "repro",
            Tools::Fresh => "fresh",
            Tools::Rescue => "rescue",
            Tools::Workflows => "workflows",
            Tools::Sign => "sign",
            Tools::Snapshot => "snapshot",
            Tools::Source => "source",
            Tools::Netboot => "netboot",
            Tools::Access => "access",
        }
    }

    /// What it runs on the host, and the Debian package providing each.
    pub fn requirements(self) -> &'static [Requirement] {
        match self {
            Tools::UnitTests => UNIT_TESTS,
            Tools::Kernel => KERNEL,
            Tools::Metal => METAL,
            Tools::Initrd => INITRD,
            Tools::Rootfs => ROOTFS,
            Tools::Squashfs => SQUASHFS,
            Tools::Iso => ISO,
            Tools::Boot => BOOT,
            Tools::Cow => COW,
            Tools::Create => CREATE,
            Tools::Repro => REPRO,
            Tools::Fresh => FRESH,
            Tools::Rescue => RESCUE,
            Tools::Workflows => WORKFLOWS,
            Tools::Sign => SIGN,
            Tools::Snapshot => SNAPSHOT,
            Tools::Source => SOURCE,
            Tools::Netboot => NETBOOT,
            Tools::Access => ACCESS,
        }
    }
}

pub fn requirements(groups: &[Tools]) -> Vec<Requirement> {
    groups
        .iter()
        .flat_map(|g| g.requirements().iter().copied())
        .collect()
}

fn present(probe: Probe) -> bool {
    match probe {
        Probe::File(p) => Path::new(p).exists(),
        Probe::Command(c) => on_path(c),
    }
}

/// An executable command: an absolute path, or found on PATH.
fn on_path(c: &str) -> bool {
    if c.contains('/') {
        return Path::new(c).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(c))))
        .unwrap_or(false)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The packages whose probes fail, sorted and deduplicated, with what was missing.
pub fn missing(stages: &[Tools]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut by_package: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for r in requirements(stages) {
        if !present(r.probe) {
            let what = match r.probe {
                Probe::Command(c) | Probe::File(c) => c,
            };
            by_package.entry(r.package).or_default().push(what);
        }
    }
    by_package.into_iter().collect()
}

pub fn install_line(packages: &[&str]) -> String {
    format!(
        "apt-get install --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Check the host for `stages`; install what is missing when we can (root on
/// a Debian-family host), otherwise fail with the exact command to run.
pub fn ensure(stages: &[Tools], logs: &Path) -> Result<()> {
    let missing = missing(stages);
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    let details: Vec<String> = missing
        .iter()
        .map(|(p, what)| format!("  {p}: {}", what.join(", ")))
        .collect();
    let names: Vec<&str> = stages.iter().map(|t| t.name()).collect();
    let can_install = unsafe { libc::geteuid() } == 0 && Path::new("/etc/debian_version").exists();
    if !can_install {
        bail!(
            "missing host tools for {}:\n{}\ninstall them with:\n  sudo {}",
            names.join(", "),
            details.join("\n"),
            install_line(&packages)
        );
    }
    eprintln!(
        "==> host: installing missing packages ({}): {}",
        names.join(", "),
        install_line(&packages)
    );
    crate::support::ui::stage(
        logs,
        "host-packages",
        format!("apt-get install {}", packages.join(" ")),
        |s| {
            s.run(crate::cmd!("apt-get", "update").env("DEBIAN_FRONTEND", "noninteractive"))?;
            let mut args: Vec<String> = ["install", "-y", "--no-install-recommends"]
                .map(String::from)
                .to_vec();
            args.extend(packages.iter().map(|p| p.to_string()));
            let replaced = blockers_to_replace(s, &args)?;
            if !replaced.is_empty() {
                args.push("--allow-downgrades".into());
                for b in &replaced {
                    s.warn(format!(
                        "{} {} is installed from outside this machine's archive and blocks {}: taking the archive's {} (apt-get install {}={})",
                        b.package, b.installed, packages.join(" "), b.candidate, b.package, b.candidate
                    ));
                    args.push(format!("{}={}", b.package, b.candidate));
                }
            }
            s.run(
                crate::support::cmd::Cmd::argv("apt-get", &args)
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
            Ok((
                (),
                crate::support::ui::Outcome::Built,
                format!("{} package(s)", packages.len()),
            ))
        },
    )?;
    let still = self::missing(stages);
    if !still.is_empty() {
        let names: Vec<&str> = still.iter().map(|(p, _)| *p).collect();
        bail!(
            "still missing after installation: {} (see the host-packages log)",
            names.join(" ")
        );
    }
    Ok(())
}

/// An installed package that keeps apt from installing what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub package: String,
    pub installed: String,
    /// The version this machine's archive has.
    pub candidate: String,
}

/// When `apt-get <args>` cannot be satisfied (simulated first), the
/// packages named in apt's complaint that are installed at a version the
/// configured archive does not have (a backport or a local .deb), with the
/// archive's version: taking that one makes the set consistent again. A
/// fresh Debian 12 machine here came with qemu-utils from backports, which
/// `Breaks` bookworm's qemu-system-x86.
fn blockers_to_replace(s: &crate::support::ui::Stage, args: &[String]) -> Result<Vec<Blocker>> {
    let mut sim: Vec<String> = args.to_vec();
    sim.insert(1, "--simulate".into());
    let (ok, text) = s.output(
        crate::support::cmd::Cmd::argv("apt-get", &sim).env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // apt may also satisfy the install by removing what breaks it (the
    // backport qemu-utils here): installing a tool must never take another
    // away, so a removal is a blocker too.
    let removed = removals(&text);
    if ok && removed.is_empty() {
        return Ok(vec![]);
    }
    let mut found: Vec<Blocker> = Vec::new();
    for name in removed.iter().cloned().chain(complaint_packages(&text)) {
        if found.iter().any(|b| b.package == name) {
            continue;
        }
        let (_, policy) = s.output(crate::cmd!("apt-cache", "policy", &name).env("LC_ALL", "C"))?;
        if let Some(b) = foreign_installed(&name, &policy) {
            found.push(b);
        }
    }
    let stuck: Vec<&str> = removed
        .iter()
        .filter(|r| !found.iter().any(|b| &b.package == *r))
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        stuck.is_empty(),
        "installing the host tools would remove {}: resolve that by hand (apt-get {})",
        stuck.join(", "),
        args.join(" ")
    );
    Ok(found)
}

/// The packages a simulated apt run removes (`Remv name [version]`).
pub fn removals(apt_output: &str) -> Vec<String> {
    apt_output
        .lines()
        .filter_map(|l| l.strip_prefix("Remv "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Package names in apt's unmet-dependency report: ` pkg : Breaks: other (< 1)`.
pub fn complaint_packages(apt_output: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in apt_output.lines() {
        let Some((head, rest)) = line.split_once(" : ") else {
            continue;
        };
        let mut add = |n: &str| {
            let n = n.trim();
            if !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_string());
            }
        };
        add(head);
        if let Some((_, rel)) = rest.split_once(": ") {
            add(rel.split_whitespace().next().unwrap_or(""));
        }
    }
    names
}

/// From `apt-cache policy PKG`: installed at a version only dpkg's status
/// knows (no archive serves it), and the archive's candidate differs.
pub fn foreign_installed(package: &str, policy: &str) -> Option<Blocker> {
    let field = |k: &str| {
        policy
            .lines()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_string()))
    };
    let installed = field("Installed:").filter(|v| v != "(none)")?;
    // The version table: "***" marks the installed version; the lines below
    // a version name where it comes from.
    let mut sources: Vec<&str> = Vec::new();
    let mut in_installed = false;
    let mut archive_versions: Vec<String> = Vec::new();
    let mut current = String::new();
    for l in policy.lines() {
        let t = l.trim();
        if l.starts_with("        ") {
            // A source line below a version: "500 http://... Packages".
            if current.is_empty() {
                continue;
            }
            let src = t.split_whitespace().nth(1).unwrap_or("");
            if in_installed {
                sources.push(src);
            }
            if src != "/var/lib/dpkg/status" && !archive_versions.contains(&current) {
                archive_versions.push(current.clone());
            }
        } else if l.starts_with(" *** ") || (l.starts_with("     ") && !l.starts_with("      ")) {
            // A version line: " *** 1:10.0 100" (installed) or "     1:7.2 500".
            let v = t.trim_start_matches("*** ");
            current = v.split_whitespace().next().unwrap_or("").to_string();
            in_installed = current == installed;
        }
    }
    let foreign = !sources.is_empty() && sources.iter().all(|s| *s == "/var/lib/dpkg/status");
    let candidate = archive_versions.first()?.clone();
    (foreign && candidate != installed).then(|| Blocker {
        package: package.to_string(),
        installed,
        candidate,
    })
}

/// For unit tests that run a host tool: fail with the package to install
/// (from [`Tools::UnitTests`], which `cargo xtask test`
/// installs first) instead of an obscure error when the tool is missing.
#[cfg(test)]
pub fn need_for_test(tool: &str) {
    let package = Tools::UnitTests
        .requirements()
        .iter()
        .find(|r| matches!(r.probe, Probe::Command(c) if c == tool))
        .map(|r| r.package)
        .unwrap_or_else(|| panic!("{tool} is not in Tools::UnitTests: add it"));
    assert!(
        on_path(tool),
        "this test runs `{tool}`, which is not installed (Debian package {package}): \
         `cargo xtask test` installs it first, or run `apt-get install {package}`"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_named_in_the_table_has_requirements() {
        for t in Tools::ALL {
            assert!(!t.requirements().is_empty(), "{}", t.name());
        }
        assert!(requirements(&[Tools::Kernel])
            .iter()
            .any(|r| r.package == "libelf-dev"));
    }

    #[test]
    fn a_package_installed_from_elsewhere_that_blocks_an_install_is_found() {
        // What this machine printed (qemu-utils from bookworm-backports).
        let apt = "Some packages could not be installed.\n\
The following packages have unmet dependencies:\n\
 qemu-utils : Breaks: qemu-system-common (< 1:8.0+dfsg-5~) but 1:7.2+dfsg-7+deb12u18+b3 is to be installed\n\
E: Unable to correct problems, you have held broken packages.\n";
        assert_eq!(
            complaint_packages(apt),
            ["qemu-utils", "qemu-system-common"]
        );
        // Or apt resolves it by removing the backport (what it did here).
        let sim = "Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]\nInst qemu-system-common (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])\n";
        assert_eq!(removals(sim), ["qemu-utils"]);
        assert!(removals("Inst x (1 a [amd64])\n").is_empty());
        let policy = "qemu-utils:\n  Installed: 1:10.0.2+ds-2+deb13u1~bpo12+1\n  Candidate: 1:10.0.2+ds-2+deb13u1~bpo12+1\n  Version table:\n *** 1:10.0.2+ds-2+deb13u1~bpo12+1 100\n        100 /var/lib/dpkg/status\n     1:7.2+dfsg-7+deb12u18+b3 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n     1:7.2+dfsg-7+deb12u15 500\n        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n";
        assert_eq!(
            foreign_installed("qemu-utils", policy),
            Some(Blocker {
                package: "qemu-utils".into(),
                installed: "1:10.0.2+ds-2+deb13u1~bpo12+1".into(),
                candidate: "1:7.2+dfsg-7+deb12u18+b3".into(),
            })
        );
        // Installed from the archive, or not installed: nothing to replace.
        let ours = "coreutils:\n  Installed: 9.1-1\n  Candidate: 9.1-1\n  Version table:\n *** 9.1-1 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n        100 /var/lib/dpkg/status\n";
        assert_eq!(foreign_installed("coreutils", ours), None);
        let none = "qemu-system-common:\n  Installed: (none)\n  Candidate: 1:7.2\n  Version table:\n     1:7.2 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n";
        assert_eq!(foreign_installed("qemu-system-common", none), None);
    }

    #[test]
    fn a_missing_tool_is_reported_with_its_package() {
        assert!(!present(Probe::Command("surely-not-a-command-finnix")));
        assert!(present(Probe::Command("sh")));
        assert!(!present(Probe::File("/nonexistent/finnix")));
    }
}
