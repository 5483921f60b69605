//! The Finnix initramfs `/init`.
//!
//! Finds the live medium (an ISO9660 image holding `FINNIX/FINNIX`, or with
//! `squashroot` a squashfs device), mounts the squashfs under an overlayfs
//! whose upper layer is a tmpfs, keeps the squashfs visible at `/FINNIX`,
//! moves /dev, /proc, /sys and /run into the new root and switches to
//! `/sbin/init`. Every failure says what was tried and what was found, then
//! starts an emergency shell; leaving the shell tries again.

mod cmdline;
#[macro_use]
mod console;
mod fetch;
mod isofile;
mod medium;
mod modules;
mod net;
mod sys;

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use cmdline::{GuestMode, Params};
use medium::Found;

const MEDIUM_MNT: &str = "/run/finnix/medium";
const SQUASH_MNT: &str = "/run/finnix/squashfs";
const TORAM_MNT: &str = "/run/finnix/toram";
const FETCH_MNT: &str = "/run/finnix/fetch";
const RW_MNT: &str = "/run/finnix/rw";
const NEWROOT: &str = "/newroot";
const DEFAULT_WAIT_SECS: u64 = 30;

/// A boot step that failed: what was tried, what was found.
struct Failure {
    step: &'static str,
    details: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "finnix-init: {} failed:", self.step)?;
        for d in &self.details {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

fn fail(step: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        step,
        details: vec![detail.into()],
    }
}

struct Boot {
    params: Params,
    mode: GuestMode,
}

impl Boot {
    fn say(&self, msg: impl AsRef<str>) {
        if self.params.debug {
            say!("finnix-init: {}", msg.as_ref());
        }
    }
}

fn main() {
    std::env::set_var("PATH", "/bin:/sbin:/usr/bin:/usr/sbin");
    loop {
        let failure = boot();
        console::write(&format!("\n{failure}"));
        emergency_shell("Exit the shell to try booting again.");
    }
}

/// Mount what the initramfs itself needs.
fn early_mounts() -> Result<(), Failure> {
    let nodev_nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    for (src, dir, fstype, flags, data) in [
        ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
        ("proc", "/proc", "proc", nodev_nosuid | libc::MS_NOEXEC, ""),
        ("sysfs", "/sys", "sysfs", nodev_nosuid | libc::MS_NOEXEC, ""),
        ("tmpfs", "/run", "tmpfs", nodev_nosuid, "mode=0755"),
    ] {
        let _ = sys::mkdir(dir);
        if !sys::is_mountpoint(dir) {
            sys::mount(src, dir, fstype, flags, data).map_err(|e| {
                fail(
                    "mounting the initramfs's own filesystems",
                    format!("mount -t {fstype} {src} {dir}: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// The mode: `uml`/`xen` on the command line, else what the system says
/// of itself (the contract's one rule).
fn detect_mode(cmdline: &str) -> GuestMode {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    GuestMode::detect(cmdline, &cpuinfo, &xen_facts())
}

/// What Xen says of this domain. dom0's capability is only in xenfs,
/// mounted here for the moment of reading it.
fn xen_facts() -> finnix_contract::XenFacts {
    use finnix_contract::XenFacts;
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let mut facts = XenFacts {
        hypervisor_type: read(XenFacts::HYPERVISOR_TYPE),
        guest_type: read(XenFacts::GUEST_TYPE),
        capabilities: String::new(),
    };
    if facts.hypervisor_type.trim() == "xen" {
        const XENFS: &str = "/run/finnix/xenfs";
        if sys::mkdir(XENFS).is_ok() && sys::mount("xenfs", XENFS, "xenfs", 0, "").is_ok() {
            facts.capabilities = read(&format!("{XENFS}/{}", XenFacts::CAPABILITIES));
            let _ = sys::umount(XENFS);
        }
        let _ = fs::remove_dir(XENFS);
    }
    facts
}

/// The real devices behind [`medium::Probe`].
struct Devices<'a> {
    boot: &'a Boot,
}

impl medium::Probe for Devices<'_> {
    fn head(&mut self, dev: &str) -> Result<Vec<u8>, String> {
        sys::read_head(dev, medium::PROBE_LEN)
    }

    fn iso_has_finnix(&mut self, dev: &str) -> Result<bool, String> {
        let _ = sys::mkdir(MEDIUM_MNT);
        sys::mount(dev, MEDIUM_MNT, "iso9660", libc::MS_RDONLY, "").map_err(|e| e.to_string())?;
        let has = fs::metadata(format!("{MEDIUM_MNT}/FINNIX/FINNIX")).is_ok_and(|m| m.is_file());
        self.boot.say(format!(
            "{dev}: ISO9660, FINNIX/FINNIX {}",
            if has { "present" } else { "absent" }
        ));
        if !has {
            let _ = sys::umount(MEDIUM_MNT);
        }
        Ok(has)
    }
}

/// Scan (or wait for `root=`) until the medium appears or time runs out.
fn find_medium(b: &Boot, mut modules: Option<&mut modules::Modules>) -> Result<Found, Failure> {
    let wait = Duration::from_secs(b.params.wait_secs.unwrap_or(DEFAULT_WAIT_SECS));
    let start = Instant::now();
    let mut announced = false;
    loop {
        // A loaded controller brings devices that want their own modules
        // (the disks on it, a USB stick on a USB controller).
        if let Some(m) = modules.as_deref_mut() {
            let loaded = m.coldplug();
            if !loaded.is_empty() {
                b.say(format!("loaded modules: {}", loaded.join(" ")));
            }
        }
        let devices = match b.params.root_device() {
            Some(root) => vec![root.to_string()],
            None => medium::candidates(&sys::block_devices()),
        };
        b.say(format!(
            "looking for the medium on: {}",
            if devices.is_empty() {
                "(no devices yet)".to_string()
            } else {
                devices.join(" ")
            }
        ));
        let result = medium::search(&b.params, &devices, &mut Devices { boot: b });
        match result {
            Ok(found) => return Ok(found),
            Err(report) if start.elapsed() >= wait => {
                let mut details = vec![format!(
                    "looked for {} for {} s{}",
                    if b.params.squashroot {
                        "a squashfs device (squashroot)"
                    } else {
                        "an ISO9660 medium holding FINNIX/FINNIX"
                    },
                    wait.as_secs(),
                    match b.params.root_device() {
                        Some(r) => format!(" on root={r}"),
                        None => format!(" on {}* devices", medium::PREFIXES.join("*, ")),
                    }
                )];
                details.extend(report);
                if let Some(m) = modules.as_deref() {
                    if !m.errors.is_empty() {
                        details.push(format!(
                            "modules that failed to load: {}",
                            m.errors.join("; ")
                        ));
                    }
                }
                details.push(
                    "give the medium to the machine, or name it with root=/dev/<device>".into(),
                );
                return Err(Failure {
                    step: "finding the Finnix medium",
                    details,
                });
            }
            Err(report) => {
                if !announced {
                    say!(
                        "finnix-init: waiting up to {} s for the Finnix medium...",
                        wait.as_secs()
                    );
                    announced = true;
                }
                for line in report {
                    b.say(line);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

fn mem_available() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// `toram`: copy the squashfs into a tmpfs; returns the copy's path.
fn copy_to_ram(b: &Boot, source: &str) -> Result<String, Failure> {
    let step = "copying the root filesystem to RAM (toram)";
    let size =
        sys::size_of(source).map_err(|e| fail(step, format!("cannot size {source}: {e}")))?;
    if let Some(avail) = mem_available() {
        // Keep a quarter of what is free for the system itself.
        if size > avail / 4 * 3 {
            return Err(fail(step, format!("{source} is {} MiB but only {} MiB of memory is available: boot without toram, or give the machine more memory", size >> 20, avail >> 20)));
        }
    }
    let _ = sys::mkdir(TORAM_MNT);
    let opts = format!("size={},mode=0700", size + (1 << 20));
    sys::mount(
        "tmpfs",
        TORAM_MNT,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        &opts,
    )
    .map_err(|e| fail(step, format!("mount tmpfs on {TORAM_MNT}: {e}")))?;
    let dest = format!("{TORAM_MNT}/FINNIX");
    console::write(&format!(
        "[*] Copying the root filesystem ({} MiB) to RAM...",
        size >> 20
    ));
    let copied = (|| -> std::io::Result<u64> {
        let mut from = fs::File::open(source)?;
        let mut to = fs::File::create(&dest)?;
        std::io::copy(&mut from, &mut to)
    })()
    .map_err(|e| fail(step, format!("copy {source} to {dest}: {e}")))?;
    console::write(" done\n");
    b.say(format!("copied {copied} bytes to {dest}"));
    Ok(dest)
}

/// Everything up to switch_root. Returns only on failure.
fn boot() -> Failure {
    match try_boot() {
        Ok(never) => match never {},
        Err(f) => f,
    }
}

enum Never {}

fn try_boot() -> Result<Never, Failure> {
    early_mounts()?;
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let params = cmdline::parse(&cmdline);
    let mode = detect_mode(&cmdline);
    let b = Boot { params, mode };
    b.say(format!("kernel command line: {}", cmdline.trim()));
    b.say(format!(
        "guest mode: {} ({})",
        mode.name(),
        if b.params.mode.is_some() {
            "from the command line"
        } else {
            "detected"
        }
    ));

    // Start from a clean slate when retrying after an emergency shell.
    for dir in [
        NEWROOT,
        SQUASH_MNT,
        RW_MNT,
        TORAM_MNT,
        MEDIUM_MNT,
        isofile::HOST_MNT,
        FETCH_MNT,
    ] {
        while sys::is_mountpoint(dir) {
            if sys::umount(dir).is_err() {
                break;
            }
        }
    }

    // Debian's kernel (the ISO): the filesystems of the medium, then the
    // drivers the devices present ask for. Built-in kernels have no modules.
    let mut modules = modules::Modules::open();
    if let Some(m) = modules.as_mut() {
        let loaded = m.load_listed();
        b.say(format!("loaded modules: {}", loaded.join(" ")));
    }
    let (medium, source, kind) = match b.params.fetch.clone() {
        Some(url) => (
            url.clone(),
            network_boot(&b, &url, modules.as_mut())?,
            "http",
        ),
        None => local_medium(&b, modules.as_mut())?,
    };

    mount_root(&b, &source)?;

    // What the live system needs to know about its boot (the banner, fstab,
    // finnix create): a shell-readable file.
    let env = finnix_contract::boot_env::BootEnv {
        mode: b.mode,
        medium: medium.clone(),
        medium_type: kind.to_string(),
        squashfs: source.clone(),
        toram: b.params.toram || b.params.fetch.is_some(),
    };
    let _ = fs::write(finnix_contract::boot_env::PATH, env.render());

    if b.params.break_shell {
        emergency_shell(&format!(
            "break: the new root is mounted on {NEWROOT}. Exit the shell to continue booting."
        ));
    }

    switch_to_live(&b, &source)
}

/// The squashfs from a medium: an ISO (in RAM with `toram`) or a squashfs
/// device. Returns the medium, the squashfs's path and the medium's kind.
fn local_medium(
    b: &Boot,
    modules: Option<&mut modules::Modules>,
) -> Result<(String, String, &'static str), Failure> {
    let found = match &b.params.findiso {
        Some(path) => {
            let wait = Duration::from_secs(b.params.wait_secs.unwrap_or(DEFAULT_WAIT_SECS));
            let say = |m: String| b.say(m);
            let device =
                isofile::find(path, wait, MEDIUM_MNT, modules, &say).map_err(|details| {
                    Failure {
                        step: "finding the ISO file (findiso=)",
                        details,
                    }
                })?;
            Found::Iso { device }
        }
        None => find_medium(b, modules)?,
    };
    let (medium, mut source, kind) = match &found {
        Found::Iso { device } => (
            device.clone(),
            format!("{MEDIUM_MNT}/FINNIX/FINNIX"),
            "iso9660",
        ),
        Found::Squashfs { device } => (device.clone(), device.clone(), "squashfs"),
    };
    b.say(format!(
        "medium: {medium} ({kind}); root filesystem image: {source}"
    ));

    if b.params.toram {
        source = copy_to_ram(b, &source)?;
        if matches!(found, Found::Iso { .. }) {
            sys::umount(MEDIUM_MNT).map_err(|e| {
                fail(
                    "releasing the medium after toram",
                    format!("umount {MEDIUM_MNT}: {e}"),
                )
            })?;
        }
        if b.params.findiso.is_some() {
            let _ = sys::umount(isofile::HOST_MNT);
        }
        b.say(format!("the medium {medium} is no longer in use"));
    }
    Ok((medium, source, kind))
}

/// `fetch=`: the network up, then the squashfs into RAM, verified.
fn network_boot(
    b: &Boot,
    url: &str,
    modules: Option<&mut modules::Modules>,
) -> Result<String, Failure> {
    let say = |m: String| b.say(m);
    let lease =
        net::bring_up(b.params.ip.as_deref(), modules, &say).map_err(|details| Failure {
            step: "bringing up the network for fetch=",
            details,
        })?;
    say!("[*] Network: {}", lease.describe());
    fetch::fetch(url, b.params.fetch_sha256.as_deref(), FETCH_MNT, &lease.dns).map_err(|details| {
        Failure {
            step: "fetching the root filesystem (fetch=)",
            details,
        }
    })
}

/// The squashfs (a block device directly, a file through loop) under an
/// overlay whose upper layer is a tmpfs, on /newroot; the squashfs also at
/// /FINNIX.
fn mount_root(b: &Boot, source: &str) -> Result<(), Failure> {
    // The squashfs: a block device mounts directly; a file goes through loop.
    let step = "mounting the squashfs root filesystem";
    let _ = sys::mkdir(SQUASH_MNT);
    // The loop handle stays open until the squashfs is mounted (autoclear).
    let (squash_dev, _loop_handle) = if source.starts_with("/dev/") {
        (source.to_string(), None)
    } else {
        let (dev, handle) = sys::loop_attach(source).map_err(|e| {
            fail(
                step,
                format!("cannot attach {source} to a loop device: {e}"),
            )
        })?;
        b.say(format!("{source} on {dev}"));
        (dev, Some(handle))
    };
    sys::mount(&squash_dev, SQUASH_MNT, "squashfs", libc::MS_RDONLY, "").map_err(|e| {
        fail(step, format!("mount -t squashfs -o ro {squash_dev} {SQUASH_MNT} ({source}): {e}: is it a squashfs image, and does the kernel have CONFIG_SQUASHFS with its compressor?"))
    })?;

    // The writable layer: overlayfs over the squashfs, upper layer in tmpfs.
    let step = "assembling the overlay root filesystem";
    let _ = sys::mkdir(RW_MNT);
    sys::mount("tmpfs", RW_MNT, "tmpfs", 0, "mode=0755")
        .map_err(|e| fail(step, format!("mount tmpfs {RW_MNT}: {e}")))?;
    for d in ["upper", "work"] {
        sys::mkdir(&format!("{RW_MNT}/{d}"))
            .map_err(|e| fail(step, format!("mkdir {RW_MNT}/{d}: {e}")))?;
    }
    let _ = sys::mkdir(NEWROOT);
    let opts = format!("lowerdir={SQUASH_MNT},upperdir={RW_MNT}/upper,workdir={RW_MNT}/work");
    sys::mount("overlay", NEWROOT, "overlay", 0, &opts).map_err(|e| {
        fail(
            step,
            format!("mount -t overlay -o {opts} overlay {NEWROOT}: {e}"),
        )
    })?;
    let finnix = format!("{NEWROOT}/FINNIX");
    let _ = sys::mkdir(&finnix);
    sys::bind(SQUASH_MNT, &finnix, true)
        .map_err(|e| fail(step, format!("bind {SQUASH_MNT} on {finnix}: {e}")))?;
    b.say(format!(
        "overlay root on {NEWROOT}; squashfs also at /FINNIX"
    ));
    Ok(())
}

/// Move /dev, /proc, /sys and /run into the new root and switch to its
/// /sbin/init, passing on the bare words of the kernel command line.
fn switch_to_live(b: &Boot, source: &str) -> Result<Never, Failure> {
    let init = format!("{NEWROOT}/sbin/init");
    if fs::symlink_metadata(&init).is_err() {
        return Err(fail(
            "starting the live system",
            format!("{init} does not exist in the root filesystem from {source}"),
        ));
    }
    for dir in ["/dev", "/proc", "/sys", "/run"] {
        let target = format!("{NEWROOT}{dir}");
        let _ = sys::mkdir(&target);
        sys::move_mount(dir, &target).map_err(|e| {
            fail(
                "moving mounts into the new root",
                format!("mount --move {dir} {target}: {e}"),
            )
        })?;
    }
    b.say("switch_root /newroot /sbin/init");
    let _ = std::io::stdout().flush();
    // Bare words from the kernel command line (uml, xen, ...) are our argv:
    // pass them on to init, as the kernel would have.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let err = Command::new("/bin/busybox")
        .arg("switch_root")
        .arg(NEWROOT)
        .arg("/sbin/init")
        .args(&args)
        .exec();
    Err(fail(
        "switch_root to /sbin/init",
        format!("exec /bin/busybox switch_root: {err}"),
    ))
}

/// A busybox shell on every console; returns when one exits.
fn emergency_shell(message: &str) {
    say!("{message}");
    say!("Emergency shell (busybox) on every console. `reboot -f` or `poweroff -f` leave the machine.");
    console::shells("(finnix-initrd) # ");
    // A shell with no input (closed console) exits at once: do not spin.
    std::thread::sleep(Duration::from_secs(1));
}
