//! The command line: one type per job (`cargo xtask <job> --help`). Each
//! job's `run` lives with the code that does the job; `main` only dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::support::config::Compression;

/// The suite's checks: each a job of its own (`cargo xtask check-<name>
/// --help`) and a part of `cargo xtask test` (`--list`, `--only NAME`).
const CHECKS_HELP: &str =
    "Checks (each also a part of `cargo xtask test`; `test --list`, `test --only NAME`):
  check-cow             COW mode: finnix.img booted three times
  check-create          finnix create on this host, in a network namespace
  check-nested          finnix create inside the ISO in qemu
  check-rescue          the rescue scenarios, by mode (UML, the ISO's controllers, Xen)
  check-hardware        the hardware matrix: storage controllers and network cards
  check-netboot         the network boot (iPXE BIOS and UEFI, DHCP, static ip=, bad cases) and findiso=
  check-access          sshd, passwd=, sshkey=, hostname=, ip=: SSH logins into UML from the host
  check-fresh           the README's commands in a pristine Debian root
  check-snapshot        the archive snapshot mechanism against a local mirror
  check-source          the source archive read back with tar, sha256sum, git, curl, dpkg-source
  check-verify-release  a signed release verifies; each tampering is refused";

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build Finnix: kernels, initrd, root filesystem, ISO, Xen and UML tarballs",
    after_help = CHECKS_HELP
)]
pub struct Cli {
    /// Fail if a fetched input (the kernel source) differs from finnix.lock (use for releases).
    #[arg(long, global = true)]
    pub locked: bool,
    /// Parallel jobs for compilers and compressors (default: all cores).
    #[arg(long, short, global = true)]
    pub jobs: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build every stage and write the release into dist/: ISO, Xen and UML
    /// tarballs, SHA256SUMS and the manifest (signed when keys are set).
    Dist(Dist),
    /// Write dist/finnix-<version>-source.tar: this repository, the kernel
    /// source tarball as fetched, the Debian source packages of everything
    /// shipped at the release's versions.
    Source(SourceJob),
    /// Sign dist/SHA256SUMS: SHA256SUMS.sig (SSH, namespace `file`) and
    /// SHA256SUMS.asc (OpenPGP), with keys from files named by
    /// FINNIX_SSH_SIGNING_KEY and FINNIX_OPENPGP_SIGNING_KEY (or the options).
    Sign(Sign),
    /// Make the release keys: the private halves into --private-dir (for the
    /// repository secrets), the public halves into keys/ (to commit).
    Keygen(Keygen),
    /// Check a release directory: both signatures against keys/, every
    /// checksum, the manifest against the files; `--rebuild`: verify-repro
    /// --against it.
    VerifyRelease(VerifyRelease),
    /// Build every artifact twice from scratch (different paths, time zone,
    /// locale, umask, host name, user, file order, time) and compare them bit
    /// for bit; or rebuild and compare with a published release (--against).
    VerifyRepro(VerifyRepro),
    /// Boot an artifact: interactively, or `--check` for a pass/fail run
    /// (`boot --check all`: every target, then a table). Targets: uml-iso,
    /// uml-squashroot, uml-readonly, uml-flow, toram, bios-cd, uefi-cd,
    /// uefi-secureboot,
    /// usb-bios, usb-uefi, xen-pvh, xen-pv, xen-xl.
    Boot(Boot),
    /// Run the test suite: unit tests, then every stage end to end with real boots.
    Test(Test),
    /// Benchmarks: `bench squashfs` compares our squashfs writer with
    /// mksquashfs; `bench boot` times the UML boot of mini and standard;
    /// `bench packages` measures the groups of a package list.
    Bench(Bench),
    /// Patch, configure and build the UML and/or the Xen domU kernel.
    Kernel(Kernel),
    /// Build the initramfs: the static /init and busybox, as a zstd newc cpio.
    Initrd(Initrd),
    /// Build a profile's root filesystem tree (configs/profiles/<name>.toml).
    Rootfs(Rootfs),
    /// Print each independent stage's cache key (`name=key` lines, for a CI
    /// cache): kernel-um, kernel-xen, rootfs-base-<profile>.
    Plan(Plan),
    /// Pack a profile's root filesystem as squashfs with backhand.
    Squashfs(Squashfs),
    /// Assemble the hybrid ISO (BIOS and UEFI, CD and USB) with xorriso.
    Iso(Iso),
    /// Write dist/finnix.img: the profile's root filesystem as an ext4 image
    /// for UML's COW mode (`./linux root=/dev/ubda ubda=COWFILE,finnix.img uml`).
    CowImage(CowImage),
    /// Remove the stage cache (and dist/ with --dist).
    Clean(Clean),
    /// Write a squashfs image of a directory tree (what the squashfs stage runs; used by the benchmark).
    #[command(hide = true)]
    WriteSquashfs(WriteSquashfs),
    /// Boot finnix.img in COW mode three times: a change persists in the COW
    /// file, a fresh COW file starts clean, the image never changes.
    #[command(hide = true)]
    CheckCow(CheckCow),
    /// `finnix create` on this host, in a network namespace of its own: two
    /// UML guests from the release ISO, DHCP, ping, list, stop, nothing left.
    #[command(hide = true)]
    CheckCreate(CheckCreate),
    /// `finnix create` inside a running Finnix: the ISO (standard profile by
    /// default) booted in qemu with 1 GiB, a nested UML guest started,
    /// pinged, listed and stopped. Slow: UML under TCG.
    #[command(hide = true)]
    CheckNested(CheckNested),
    /// Rescue scenarios (configs/rescue/scenarios.toml): disks made by the
    /// upstream tools in a preparation boot, read back by the released
    /// Finnix (standard profile by default) in UML and from the ISO in qemu
    /// (virtio-blk, SATA); a table of scenario by mode.
    #[command(hide = true)]
    CheckRescue(CheckRescue),
    /// The hardware matrix (configs/hardware/matrix.toml): the ISO booted
    /// behind each storage controller qemu emulates (mini), a DHCP lease on
    /// each network card (standard), side by side; a table.
    #[command(hide = true)]
    CheckHardware(CheckHardware),
    /// The network boot's files of the mini release served over HTTP on the
    /// loopback address and booted through iPXE: qemu's ROM (BIOS) and
    /// Debian's ipxe.efi (OVMF), DHCP and a static ip=; then a changed byte,
    /// a 404, a killed server, a stall and too little memory, each refused
    /// with its message. Part isofile: the ISO as a file on a stick's exFAT
    /// and ext4 partitions (GRUB loopback, findiso=).
    #[command(hide = true)]
    CheckNetboot(CheckNetboot),
    /// Remote access from the boot command line, in the standard live
    /// system under UML (eth0 on a TAP in a network namespace): `sshd
    /// passwd= hostname= ip=` and a password login over SSH; `sshkey=` and a
    /// key login, a password login refused, a new host key; bad input named
    /// on the console and nothing listening. Part iso: the standard ISO in
    /// qemu, a crypt hash as the password, a login through a forwarded port.
    #[command(hide = true)]
    CheckAccess(CheckAccess),
    /// The README's commands on a pristine Debian 12 root (mmdebstrap):
    /// `test --unit-only` and `dist` set themselves up there (kernels seeded).
    #[command(hide = true)]
    CheckFresh(CheckFresh),
    /// The archive snapshot mechanism against a local mirror this check
    /// builds (apt-ftparchive): the configured URL is used, a changed
    /// package version is named.
    #[command(hide = true)]
    CheckSnapshot(CheckSnapshot),
    /// The mini release's source archive (`cargo xtask source`), read back
    /// with tar, sha256sum, git, curl and dpkg-source; a run that cannot
    /// fetch everything fails and writes nothing.
    #[command(hide = true)]
    CheckSource(CheckSource),
    /// Sign a copy of a release directory (default dist/) with throwaway keys,
    /// verify it, then check that each tampering fails naming its culprit.
    #[command(hide = true)]
    CheckVerifyRelease(CheckVerifyRelease),
}

#[derive(Args)]
pub struct Kernel {
    #[arg(long, value_enum, default_value = "all")]
    pub flavor: FlavorArg,
}

#[derive(Args)]
pub struct Initrd;

#[derive(Args)]
pub struct Rootfs {
    #[arg(long)]
    pub profile: Option<String>,
    /// Only the base tree (busybox or mmdebstrap), which needs no kernel.
    #[arg(long)]
    pub base_only: bool,
}

#[derive(Args)]
pub struct Plan {
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Args)]
pub struct Squashfs {
    #[arg(long)]
    pub profile: Option<String>,
    /// Overrides configs/finnix.toml.
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Bytes (power of two, 4096 to 1048576); overrides configs/finnix.toml.
    #[arg(long)]
    pub block_size: Option<u32>,
}

#[derive(Args)]
pub struct Iso {
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Args)]
pub struct Dist {
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Args)]
pub struct Boot {
    #[arg(value_parser = parse_boot_target)]
    pub target: BootTarget,
    #[arg(long)]
    pub profile: Option<String>,
    /// Non-interactive: wait for the ready banner, run a command, shut down.
    #[arg(long)]
    pub check: bool,
}

#[derive(Args)]
pub struct CowImage {
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Args)]
pub struct CheckCow {
    #[arg(long)]
    pub profile: Option<String>,
    /// Instead: the spec's manual recipe (dd, mke2fs -j, mount -o loop,
    /// rsync -a /FINNIX/) run in a live Finnix, its image booted with COW.
    #[arg(long)]
    pub recipe: bool,
}

#[derive(Args)]
pub struct CheckCreate {
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Args)]
pub struct CheckNested {
    #[arg(long, default_value = "standard")]
    pub profile: String,
}

#[derive(Args)]
pub struct CheckRescue {
    #[arg(long, default_value = "standard")]
    pub profile: String,
    /// Only these modes (repeatable; default: all): uml, iso-virtio,
    /// iso-sata, iso-nvme, iso-virtio-scsi, iso-megasas, iso-usb, xen-xl.
    #[arg(long)]
    pub mode: Vec<String>,
    /// Only make the disks (the preparation boot) and print their directory.
    #[arg(long)]
    pub prepare_only: bool,
}

#[derive(Args)]
pub struct CheckHardware {
    /// Only these rows (repeatable; default: all).
    #[arg(long)]
    pub only: Vec<String>,
}

#[derive(Args)]
pub struct CheckNetboot {
    /// Only these parts (repeatable: bios, uefi, static, faults, isofile; default: all).
    #[arg(long)]
    pub part: Vec<String>,
}

#[derive(Args)]
pub struct CheckAccess {
    /// Only these parts (repeatable: uml, iso; default: both).
    #[arg(long)]
    pub part: Vec<String>,
}

#[derive(Args)]
pub struct SourceJob {
    #[arg(long)]
    pub profile: Option<String>,
    /// When the archive no longer serves some source files, write
    /// finnix-<version>-source-incomplete.tar with a MISSING list instead of
    /// failing (not for releases).
    #[arg(long)]
    pub allow_incomplete: bool,
}

#[derive(Args)]
pub struct CheckVerifyRelease {
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckSnapshot;

#[derive(Args)]
pub struct CheckSource;

#[derive(Args)]
pub struct Keygen {
    /// A new directory for the private keys (mode 0700), outside the repository.
    #[arg(long)]
    pub private_dir: PathBuf,
    /// Where the public halves go (default: keys/ of this repository).
    #[arg(long)]
    pub public_dir: Option<PathBuf>,
    /// The OpenPGP user id.
    #[arg(long, default_value = "Finnix release <release@finnix>")]
    pub uid: String,
    /// Replace public keys already there (a key rotation).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct Sign {
    /// The release directory (default: dist/).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The SSH private key (default: $FINNIX_SSH_SIGNING_KEY).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// The OpenPGP secret key, armored, without passphrase (default:
    /// $FINNIX_OPENPGP_SIGNING_KEY).
    #[arg(long)]
    pub openpgp_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyRelease {
    /// The release directory (SHA256SUMS, its signatures, the artifacts).
    pub dir: PathBuf,
    /// The trusted SSH signers (default: keys/allowed_signers).
    #[arg(long)]
    pub allowed_signers: Option<PathBuf>,
    /// The trusted OpenPGP public key, armored (default: keys/release.asc).
    #[arg(long)]
    pub openpgp_key: Option<PathBuf>,
    /// Also rebuild the release and compare (verify-repro --against DIR).
    #[arg(long)]
    pub rebuild: bool,
}

#[derive(Args)]
pub struct VerifyRepro {
    #[arg(long)]
    pub profile: Option<String>,
    /// Reuse this checkout's kernels in both builds instead of compiling
    /// them twice (their reproducibility is then checked elsewhere).
    #[arg(long)]
    pub keep_kernels: bool,
    /// A published release to compare with: its dist directory or SHA256SUMS.
    #[arg(long)]
    pub against: Option<PathBuf>,
}

#[derive(Args)]
pub struct Bench {
    #[arg(value_enum)]
    pub what: BenchWhat,
    #[arg(long)]
    pub profile: Option<String>,
    /// Runs of each writer or boot (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// `bench kernels`: which kernels (default both).
    #[arg(long, value_enum, default_value = "all")]
    pub flavor: FlavorArg,
}

#[derive(Args)]
pub struct WriteSquashfs {
    #[arg(long, value_enum)]
    pub compression: Compression,
    #[arg(long)]
    pub block_size: u32,
    #[arg(long)]
    pub epoch: i64,
    #[arg(long)]
    pub threads: usize,
    pub tree: PathBuf,
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CheckFresh;

#[derive(Args)]
pub struct Test {
    /// Only the unit tests (no kernels, no boots).
    #[arg(long)]
    pub unit_only: bool,
    /// List the suite's parts and what each checks.
    #[arg(long)]
    pub list: bool,
    /// Only these parts (repeatable; `boot` and `rescue` take all of theirs).
    /// What they need is built first.
    #[arg(long)]
    pub only: Vec<String>,
}

#[derive(Args)]
pub struct Clean {
    #[arg(long)]
    pub dist: bool,
    /// Only this stage's cache entries (every profile's): kernel-um, iso, ...
    #[arg(long)]
    pub stage: Option<String>,
}

/// `all`, or one target's name (checks/boot.rs knows them; an unknown one
/// is refused there, naming them all).
#[derive(Clone, Debug)]
pub enum BootTarget {
    All,
    One(String),
}

pub fn parse_boot_target(s: &str) -> Result<BootTarget, String> {
    Ok(match s {
        "all" => BootTarget::All,
        _ => BootTarget::One(s.to_string()),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchWhat {
    /// backhand (our squashfs stage) against mksquashfs on the same tree.
    Squashfs,
    /// The spec's UML command line (uml-iso) at each profile's memory, mini
    /// and standard (or --profile): median seconds to the banner and to the
    /// shell prompt.
    Boot,
    /// What each group of the profile's package list (`# == name ==`) adds:
    /// the packages and installed size only it pulls in.
    Packages,
    /// A cold build of each compiled kernel (UML, domU) from the unpacked
    /// source: patch, configure, make; wall time each (--runs ignored).
    Kernels,
    /// A 256 MB UML guest (standard) with zram swap and with `nozram`: the
    /// largest amount of the system's own files a process holds in memory
    /// before it is killed, and zram's peak use.
    Zram,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlavorArg {
    Um,
    Xen,
    All,
}
