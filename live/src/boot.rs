//! `finnix boot start` and `finnix boot stop`: the Finnix boot and shutdown
//! lines, called by the init scripts (busybox's rcS/rcK, sysvinit's
//! /etc/init.d/finnix).

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fsprobe;
use crate::fstab::{self, Found};
use crate::remote;
use crate::sysinfo::{self, Mode};
use finnix_contract::boot_env;

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// A boot or shutdown line on /dev/console (our stdout) and on every other
/// console of the boot (`finnix_contract::consoles`): with the ISO's default
/// entry the screen is /dev/console and a serial-only machine sees the
/// lines on ttyS0.
pub fn say(line: &str) {
    println!("{line}");
    flush();
    let consoles = read(finnix_contract::consoles::PROC);
    for dev in finnix_contract::consoles::mirrors(&consoles) {
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&dev)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

macro_rules! say {
    ($($arg:tt)*) => {
        say(&format!($($arg)*))
    };
}

/// What the initramfs wrote about this boot (/run/finnix/boot.env); absent
/// in COW mode, which has no initramfs.
pub fn boot_fact(key: &str) -> Option<String> {
    sysinfo::release_field(&read(boot_env::PATH), key)
}

pub fn mode() -> Mode {
    // The initramfs wrote what it decided; COW mode (no initramfs) detects.
    match boot_fact(boot_env::MODE).and_then(|m| Mode::from_name(&m)) {
        Some(mode) => mode,
        None => {
            use finnix_contract::XenFacts;
            let xen = XenFacts {
                hypervisor_type: read(XenFacts::HYPERVISOR_TYPE),
                guest_type: read(XenFacts::GUEST_TYPE),
                capabilities: read(&format!("/proc/xen/{}", XenFacts::CAPABILITIES)),
            };
            Mode::detect(&read("/proc/cmdline"), &read("/proc/cpuinfo"), &xen)
        }
    }
}

fn uname() -> (String, String, String) {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (field(&u.release), field(&u.version), field(&u.machine))
}

fn host_line(mode: Mode) -> Option<String> {
    match mode {
        Mode::Uml => sysinfo::uml_host(&read("/proc/cpuinfo")),
        Mode::Xen => {
            let v = |f: &str| {
                read(&format!("/sys/hypervisor/version/{f}"))
                    .trim()
                    .to_string()
            };
            let major = v("major");
            (!major.is_empty()).then(|| format!("Xen {major}.{}{}", v("minor"), v("extra")))
        }
        Mode::Metal => {
            let vendor = read("/sys/class/dmi/id/sys_vendor").trim().to_string();
            let product = read("/sys/class/dmi/id/product_name").trim().to_string();
            (!vendor.is_empty() || !product.is_empty())
                .then(|| format!("{vendor} {product}").trim().to_string())
        }
    }
}

/// Per-machine identities the image does not ship (NVMe-oF host NQN and
/// id, when nvme-cli is installed): made fresh at every boot.
fn make_identities() {
    if !have("nvme") || fs::metadata("/etc/nvme/hostnqn").is_ok() {
        return;
    }
    let uuid = read("/proc/sys/kernel/random/uuid").trim().to_string();
    if uuid.is_empty() {
        return;
    }
    let _ = fs::create_dir_all("/etc/nvme");
    let _ = fs::write("/etc/nvme/hostid", format!("{uuid}\n"));
    let _ = fs::write(
        "/etc/nvme/hostnqn",
        format!("nqn.2014-08.org.nvmexpress:uuid:{uuid}\n"),
    );
}

fn set_hostname() {
    let name = read("/etc/hostname").trim().to_string();
    let name = if name.is_empty() {
        "finnix".to_string()
    } else {
        name
    };
    unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) };
}

/// The devices worth listing in fstab, with what they hold.
fn scan_partitions(medium: Option<&str>) -> Vec<Found> {
    let mut found = Vec::new();
    let mounted = fstab::mounted_devices(&read("/proc/self/mountinfo"));
    for name in fstab::parse_partitions(&read("/proc/partitions")) {
        if fstab::skip(&name, medium) {
            continue;
        }
        let number = read(&format!("/sys/class/block/{name}/dev"));
        if mounted.iter().any(|m| m == number.trim()) {
            continue; // in use: the root filesystem in COW mode
        }
        let Ok(mut f) = fs::File::open(format!("/dev/{name}")) else {
            continue;
        };
        let mut buf = vec![0u8; fsprobe::PROBE_LEN];
        let mut got = 0;
        while got < buf.len() {
            match std::io::Read::read(&mut f, &mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        buf.truncate(got);
        if let Some(fs) = fsprobe::probe(&buf) {
            found.push(Found { name, fs });
        }
    }
    found
}

fn swapon(dev: &str) -> std::io::Result<()> {
    let path = CString::new(dev).expect("device path");
    if unsafe { libc::swapon(path.as_ptr(), 0) } < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The interfaces of /sys/class/net that `keep` accepts, sorted.
pub fn interfaces(keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/sys/class/net") else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| keep(name))
        .collect();
    out.sort();
    out
}

/// Ethernet-like interfaces of this machine (not loopback, bridges, taps).
fn network_interfaces() -> Vec<String> {
    interfaces(|name| {
        let base = format!("/sys/class/net/{name}");
        // Real network cards (and UML's, Xen's, virtio's) have a device;
        // loopback, bridges, taps, veth and dummy interfaces do not.
        // Wi-Fi cards get an address once joined (crate::wifi).
        read(&format!("{base}/type")).trim() == "1"
            && fs::metadata(format!("{base}/device")).is_ok()
            && !crate::wifi::is_wireless(name)
    })
}

pub fn have(cmd: &str) -> bool {
    ["/sbin", "/bin", "/usr/sbin", "/usr/bin"]
        .iter()
        .any(|d| fs::metadata(format!("{d}/{cmd}")).is_ok())
}

fn link(iface: &str, up: bool) {
    let _ = Command::new(if have("ip") { "ip" } else { "busybox" })
        .args(if have("ip") {
            vec!["link", "set", iface, if up { "up" } else { "down" }]
        } else {
            vec!["ip", "link", "set", iface, if up { "up" } else { "down" }]
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Start a DHCP client in the background: dhclient if installed, else busybox udhcpc.
pub fn start_dhcp(iface: &str) {
    link(iface, true);
    let _ = fs::create_dir_all("/run/finnix");
    let log = fs::File::create(format!("/run/finnix/dhcp-{iface}.log")).ok();
    let (out, err) = match log {
        Some(f) => (Stdio::from(f.try_clone().expect("dup")), Stdio::from(f)),
        None => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = if have("dhclient") {
        let mut c = Command::new("dhclient");
        c.args(["-nw", "-pf", &format!("/run/dhclient.{iface}.pid"), iface]);
        c
    } else {
        let mut c = Command::new("busybox");
        c.args([
            "udhcpc",
            "-b",
            "-S",
            // Three discovers 3 s apart, then 5 s before the next burst
            // (busybox waits 20 s by default): a server that came up a
            // moment after the link (a bridge port, a switch's STP) is
            // found within seconds.
            "-A",
            "5",
            "-s",
            "/etc/udhcpc/default.script",
            "-i",
            iface,
            "-p",
            &format!("/run/udhcpc.{iface}.pid"),
        ]);
        c
    };
    let _ = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
}

/// The kernel filesystems of a running system, as Debian's mountkernfs.sh
/// and mountdevsubfs.sh mount them: (mount point, type, flags, data, mode
/// of the mount point).
const KERNEL_MOUNTS: &[(&str, &str, libc::c_ulong, &str, u32)] = &[
    ("/proc", "proc", NOSUID_NODEV_NOEXEC, "", 0o555),
    ("/sys", "sysfs", NOSUID_NODEV_NOEXEC, "", 0o555),
    (
        "/run",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=755",
        0o755,
    ),
    ("/dev", "devtmpfs", libc::MS_NOSUID, "mode=755", 0o755),
    (
        "/dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "gid=5,mode=620,ptmxmode=000",
        0o755,
    ),
    (
        "/dev/shm",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
        0o1777,
    ),
];
const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// The mount points of /proc/self/mounts.
pub fn mount_points(mounts: &str) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|m| m.replace("\\040", " "))
        .collect()
}

pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> std::io::Result<()> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    let (src, tgt, ty, dat) = (c(source), c(target), c(fstype), c(data));
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            ty.as_ptr(),
            flags,
            dat.as_ptr() as *const libc::c_void,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `finnix boot early`, first in rcS: what Debian's mountkernfs.sh,
/// mountdevsubfs.sh, hostname.sh and bootmisc.sh do for a live system, in
/// one process. Those scripts fork dozens of times each, and a fork is slow
/// under UML: together they took 5 s of a 64 MB UML boot.
pub fn early() -> i32 {
    let mut status = 0;
    let mounted = mount_points(&read("/proc/self/mounts"));
    for (target, fstype, flags, data, mode) in KERNEL_MOUNTS {
        if mounted.iter().any(|m| m == target) {
            continue;
        }
        let _ = fs::create_dir_all(target);
        let _ = fs::set_permissions(target, std::os::unix::fs::PermissionsExt::from_mode(*mode));
        if let Err(e) = mount(fstype, target, fstype, *flags, data) {
            eprintln!("finnix: cannot mount {fstype} on {target}: {e}");
            status = 1;
        }
    }
    firmware_mounts();
    // COW mode boots an ext image without an initramfs: the kernel mounts
    // it read-only and Debian's checkroot.sh (gone: no fsck of a live
    // root) would remount it read-write.
    if root_read_only(&read("/proc/self/mounts")) {
        if let Err(e) = mount("", "/", "", libc::MS_REMOUNT, "") {
            eprintln!("finnix: cannot remount / read-write: {e}");
            status = 1;
        }
    }
    // /run/lock (world-writable, sticky) and the login records (utmp:
    // group utmp, 664), as mountkernfs.sh and bootmisc.sh leave them.
    let _ = fs::create_dir_all("/run/lock");
    let _ = fs::set_permissions(
        "/run/lock",
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    );
    if fs::write("/run/utmp", b"").is_ok() {
        let gid = group_id(&read("/etc/group"), "utmp").unwrap_or(0);
        let path = CString::new("/run/utmp").expect("path");
        unsafe { libc::chown(path.as_ptr(), 0, gid) };
        let _ = fs::set_permissions(
            "/run/utmp",
            std::os::unix::fs::PermissionsExt::from_mode(0o664),
        );
    }
    set_hostname();
    status
}

/// UEFI's variables (efibootmgr, the Secure Boot state) on machines that
/// booted through UEFI, and securityfs (the lockdown state) where the
/// kernel has it. efivarfs is a module of Debian's kernel: loaded here, and
/// only on UEFI machines (on a BIOS machine it has nothing to show).
fn firmware_mounts() {
    let filesystems = |name: &str| {
        read("/proc/filesystems")
            .lines()
            .any(|l| l.split_whitespace().last() == Some(name))
    };
    let mounted = mount_points(&read("/proc/self/mounts"));
    let is_mounted = |p: &str| mounted.iter().any(|m| m == p);
    if filesystems("securityfs") && !is_mounted("/sys/kernel/security") {
        if let Err(e) = mount(
            "securityfs",
            "/sys/kernel/security",
            "securityfs",
            NOSUID_NODEV_NOEXEC,
            "",
        ) {
            eprintln!("finnix: cannot mount securityfs on /sys/kernel/security: {e}");
        }
    }
    const EFIVARS: &str = "/sys/firmware/efi/efivars";
    if !std::path::Path::new("/sys/firmware/efi").is_dir() || is_mounted(EFIVARS) {
        return;
    }
    if !filesystems("efivarfs") && have("modprobe") {
        let _ = Command::new("modprobe")
            .args(["-q", "efivarfs"])
            .stdin(Stdio::null())
            .status();
    }
    if let Err(e) = mount("efivarfs", EFIVARS, "efivarfs", NOSUID_NODEV_NOEXEC, "") {
        eprintln!("finnix: cannot mount efivarfs on {EFIVARS} (efibootmgr needs it): {e}");
    }
}

/// Whether the root filesystem (its last mount on /) is mounted read-only.
pub fn root_read_only(mounts: &str) -> bool {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"/")).then(|| f.get(3).copied())?
        })
        .next_back()
        .is_some_and(|opts| opts.split(',').any(|o| o == "ro"))
}

/// A group's id in /etc/group.
pub fn group_id(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
    })
}

/// Debian's udev init script (the standard profile; mini has no udev).
const UDEV_SCRIPT: &str = "/etc/init.d/udev";

/// udev and its coldplug. On hardware they come first, as Debian's rcS has
/// them: device names and symlinks, firmware, before the partition scan. A
/// UML or Xen guest has every node in devtmpfs already and nothing
/// hot-plugged at boot, so there udev starts after the banner, in the
/// background. Either way its output goes to a log and a marker says when
/// it is done.
fn start_udev(background: bool) {
    if !std::path::Path::new(UDEV_SCRIPT).exists() {
        return;
    }
    let script = format!("{UDEV_SCRIPT} start; : > {}", finnix_contract::udev::DONE);
    let _ = fs::create_dir_all("/run/finnix");
    let log = fs::File::create(finnix_contract::udev::LOG).ok();
    let (out, err) = match log.as_ref().map(|f| (f.try_clone(), f.try_clone())) {
        Some((Ok(a), Ok(b))) => (Stdio::from(a), Stdio::from(b)),
        _ => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if background {
        // Its own session: nothing of the boot script's (startpar's pipes,
        // its process group) is held by it.
        use std::os::unix::process::CommandExt;
        // Niced: the consoles and the user come first.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                Ok(())
            });
        }
        let _ = cmd.spawn();
    } else {
        let _ = cmd.status();
    }
}

/// Compressed swap in RAM on a small machine
/// (`finnix_contract::memory::zram_bytes`): zram0, preferred over any swap
/// partition. `nozram` turns it off.
fn start_zram() {
    use finnix_contract::memory;
    let total = memory::meminfo_kib(&read("/proc/meminfo"), "MemTotal").unwrap_or(0);
    let Some(bytes) = memory::zram_bytes(total) else {
        return;
    };
    const DEV: &str = "/sys/block/zram0";
    if !std::path::Path::new(DEV).exists() && have("modprobe") {
        let _ = Command::new("modprobe")
            .args(["-q", "zram", "num_devices=1"])
            .stdin(Stdio::null())
            .status();
    }
    if read(&format!("{DEV}/disksize")).trim() != "0" {
        return; // no zram in this kernel, or zram0 is in use already
    }
    let made = fs::write(format!("{DEV}/disksize"), bytes.to_string())
        .map_err(|e| e.to_string())
        .and_then(|()| {
            // The swap header, written here: mkswap took 2.1 s of a TCG
            // guest's boot for one page (memory::swap_header).
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/zram0")
                .and_then(|mut f| f.write_all(&memory::swap_header(bytes, page)))
                .map_err(|e| format!("writing the swap header: {e}"))
        })
        .and_then(|()| {
            // SWAP_FLAG_PREFER with priority 100: used before any disk.
            let path = CString::new("/dev/zram0").expect("path");
            if unsafe { libc::swapon(path.as_ptr(), 0x8000 | 100) } < 0 {
                Err(std::io::Error::last_os_error().to_string())
            } else {
                Ok(())
            }
        });
    match made {
        Ok(()) => say!(
            "[*] Using zram swap /dev/zram0: {} MiB compressed in RAM ({} MiB of memory)",
            bytes >> 20,
            total >> 10
        ),
        Err(e) => say!("[*] Not using zram swap: {e}"),
    }
}

pub fn start() -> i32 {
    // Kernel messages on the console: errors only (Debian's default), so the
    // boot lines stay readable.
    let _ = fs::write("/proc/sys/kernel/printk", "4 4 1 7\n");
    let mode = mode();
    let (release, _version, machine) = uname();
    say!("{}", sysinfo::welcome(mode));
    say!("{}", ".".repeat(80));
    say!("[*] Running Linux kernel {release} on {machine}");
    if let Some(host) = host_line(mode) {
        say!("[*] Host: {host}");
    }
    let cmdline = crate::access::Access::from_cmdline(&read(finnix_contract::cmdline::PROC));
    make_identities();

    if !mode.is_guest() {
        let count = |dir: &str| fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        say!(
            "[*] Hardware: {} PCI devices, {} USB devices",
            count("/sys/bus/pci/devices"),
            fs::read_dir("/sys/bus/usb/devices")
                .map(|d| d
                    .filter_map(|e| e.ok())
                    .filter(|e| !e.file_name().to_string_lossy().contains(':'))
                    .count())
                .unwrap_or(0)
        );
    }

    if !mode.is_guest() {
        start_udev(false);
    }

    // Each line is printed whole once its work is done: init systems that
    // collect scripts' output (startpar) break lines printed in two parts.
    let medium = boot_fact(boot_env::MEDIUM).unwrap_or_default();
    let found = scan_partitions((!medium.is_empty()).then_some(medium.as_str()));
    for dir in fstab::mount_points(&found) {
        let _ = fs::create_dir_all(dir);
    }
    match fs::write("/etc/fstab", fstab::render(&found)) {
        Ok(()) => say!("[*] Scanning for partitions and creating /etc/fstab... done"),
        Err(e) => say!("[*] Scanning for partitions and creating /etc/fstab... failed: {e}"),
    }
    // The settings file on the stick, under the command line's words.
    let access = remote::read_settings(&found, &medium).under(cmdline);
    remote::apply_hostname(&access);
    set_hostname();

    for f in found.iter().filter(|f| f.fs == fsprobe::Fs::Swap) {
        let dev = format!("/dev/{}", f.name);
        match swapon(&dev) {
            Ok(()) => say!("[*] Using swap partition {dev}"),
            Err(e) => say!("[*] Not using swap partition {dev}: {e}"),
        }
    }

    if !access.nozram {
        start_zram();
    }

    // An interface the initramfs gave a static address (ip=) keeps it.
    let fixed =
        finnix_contract::netboot::static_interfaces(&read(finnix_contract::netboot::CONFIGURED));
    for iface in &fixed {
        say!("[*] Keeping the static address of {iface} (ip=)");
    }
    let all = network_interfaces();
    let ifaces: Vec<String> = match remote::apply_ip(&access, &all, &fixed) {
        remote::Dhcp::AllBut(skip) => all.into_iter().filter(|i| !skip.contains(i)).collect(),
        remote::Dhcp::Only(dev) => all.into_iter().filter(|i| *i == dev).collect(),
        remote::Dhcp::Off => vec![],
    };
    if !ifaces.is_empty() {
        say!(
            "[*] Starting background DHCP request... {}",
            ifaces.join(" ")
        );
        for iface in &ifaces {
            start_dhcp(iface);
        }
    }
    crate::wifi::at_boot(&access.wifi);
    remote::apply_password(&access);
    let keys = remote::apply_keys(&access);
    remote::start_sshd(&access, keys);

    let release_text = read("/etc/finnix-release");
    let version =
        sysinfo::release_field(&release_text, "VERSION").unwrap_or_else(|| "unknown".into());
    let packages = sysinfo::installed_packages(&read("/var/lib/dpkg/status"));
    say!("[*] Finnix version {version} ready; {packages} packages available");
    flush();
    if mode.is_guest() {
        start_udev(true);
    }
    0
}

/// Processes to signal at shutdown: everything but init, kernel threads and
/// our own session (the script running us), as killall5 does.
fn killable() -> Vec<i32> {
    let me = std::process::id() as i32;
    let my_sid = unsafe { libc::getsid(0) };
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid > 1 && pid != me)
        .filter(|&pid| unsafe { libc::getsid(pid) } != my_sid)
        .filter(|&pid| !read(&format!("/proc/{pid}/cmdline")).is_empty()) // kernel threads have none
        .collect()
}

fn signal_all(sig: libc::c_int) {
    for pid in killable() {
        unsafe { libc::kill(pid, sig) };
    }
}

pub fn stop() -> i32 {
    signal_all(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !killable().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    say!("[*] Sent all processes the TERM signal...");
    signal_all(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    say!("[*] Sent all processes the KILL signal...");

    let is_up = |i: &String| {
        let flags = read(&format!("/sys/class/net/{i}/flags"));
        u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 != 0)
    };
    let ifaces: Vec<String> = network_interfaces().into_iter().filter(is_up).collect();
    if !ifaces.is_empty() {
        say!("[*] Shutting down network device... {}", ifaces.join(" "));
        for i in &ifaces {
            link(i, false);
        }
    }

    let mut swap_ok = true;
    for line in read("/proc/swaps").lines().skip(1) {
        if let Some(dev) = line.split_whitespace().next() {
            let path = CString::new(dev).expect("path");
            if unsafe { libc::swapoff(path.as_ptr()) } < 0 {
                swap_ok = false;
            }
        }
    }
    say!(
        "[*] Turning off swap.... {}",
        if swap_ok { "done" } else { "failed" }
    );

    let failed = unmount_all();
    if failed.is_empty() {
        say!("[*] Unmounting remaining file systems... done");
    } else {
        say!(
            "[*] Unmounting remaining file systems... still busy: {}",
            failed.join(" ")
        );
    }
    say!("[*] Shutting down...");
    flush();
    0
}

/// Mount points that stay: the root (remounted read-only instead) and the
/// kernel's own filesystems that the final halt still needs.
const KEEP: &[&str] = &["/", "/proc", "/sys", "/dev", "/run"];
/// Below these are in-memory filesystems (devpts, shm, the live medium and
/// the overlay's layers under /run/finnix): nothing to write back, and the
/// root filesystem stands on some of them. The kernel releases them at halt.
const VIRTUAL_PREFIXES: &[&str] = &["/dev/", "/proc/", "/sys/", "/run/"];

/// Unmount everything else, deepest first; remount the root read-only.
/// Returns what could not be unmounted.
fn unmount_all() -> Vec<String> {
    let mounts = read("/proc/self/mounts");
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| {
            !KEEP.contains(&p.as_str()) && !VIRTUAL_PREFIXES.iter().any(|v| p.starts_with(v))
        })
        .collect();
    points.reverse();
    let mut failed = Vec::new();
    for p in &points {
        let c = CString::new(p.as_str()).expect("path");
        if unsafe { libc::umount2(c.as_ptr(), 0) } < 0 {
            // Second chance for filesystems a killed process held a moment ago.
            std::thread::sleep(Duration::from_millis(100));
            if unsafe { libc::umount2(c.as_ptr(), 0) } < 0 {
                failed.push(p.clone());
            }
        }
    }
    let root = CString::new("/").expect("path");
    let none = CString::new("").expect("empty");
    unsafe { libc::sync() };
    unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            none.as_ptr(),
            libc::MS_REMOUNT | libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    failed
}

#[cfg(test)]
mod early_tests {
    use super::*;

    #[test]
    fn reads_mount_points_and_groups() {
        let mounts = "proc /proc proc rw 0 0\nnone /mnt/a\\040b tmpfs rw 0 0\n";
        assert_eq!(mount_points(mounts), ["/proc", "/mnt/a b"]);
        let group = "root:x:0:\nutmp:x:43:\n";
        assert_eq!(group_id(group, "utmp"), Some(43));
        assert_eq!(group_id(group, "tty"), None);
        assert!(root_read_only("/dev/root / ext4 ro,relatime 0 0\n"));
        assert!(!root_read_only(
            "/dev/root / ext4 ro 0 0\noverlay / overlay rw,lowerdir=x 0 0\n"
        ));
        assert!(!root_read_only("proc /proc proc ro 0 0\n"));
    }

    #[test]
    fn every_kernel_mount_has_its_parent_first() {
        for (i, (target, ..)) in KERNEL_MOUNTS.iter().enumerate() {
            let parent = std::path::Path::new(target).parent().unwrap();
            if parent != std::path::Path::new("/") {
                assert!(
                    KERNEL_MOUNTS[..i]
                        .iter()
                        .any(|(t, ..)| std::path::Path::new(t) == parent),
                    "{target}"
                );
            }
        }
    }
}
