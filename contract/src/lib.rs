//! The contract between the three programs of Finnix: the initramfs `/init`
//! (initrd-src), the live system's `finnix` (live) and the build pipeline
//! (xtask), which checks what the other two do. One definition of each
//! thing they must agree on; pure, no dependencies, unit-tested.

/// The kernel command line as the initramfs and the live system read it.
pub mod cmdline {
    /// Where the running kernel shows it.
    pub const PROC: &str = "/proc/cmdline";

    /// Words of a command line; double quotes group (as the kernel does).
    pub fn words(cmdline: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut any = false;
        for c in cmdline.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    any = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if any {
                        words.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                c => {
                    cur.push(c);
                    any = true;
                }
            }
        }
        if any {
            words.push(cur);
        }
        words
    }
}

/// udev in the live system: `finnix boot start` starts it (on hardware
/// before the partition scan, in UML and Xen after the banner, in the
/// background) and marks the end of its coldplug here; a check waits for it
/// before it works with devices that udev rules act on (md, LVM).
pub mod udev {
    pub const DONE: &str = "/run/finnix/udev.done";
    pub const LOG: &str = "/run/finnix/udev.log";
}

/// `/run/finnix/boot.env`: what the initramfs found, for the live system
/// (`KEY=value` lines a shell can source).
pub mod boot_env {
    pub const PATH: &str = "/run/finnix/boot.env";
    pub const MODE: &str = "FINNIX_MODE";
    pub const MEDIUM: &str = "FINNIX_MEDIUM";
    pub const MEDIUM_TYPE: &str = "FINNIX_MEDIUM_TYPE";
    pub const SQUASHFS: &str = "FINNIX_SQUASHFS";
    pub const TORAM: &str = "FINNIX_TORAM";

    /// The facts of one boot.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BootEnv {
        pub mode: super::GuestMode,
        /// The device the medium was found on (`/dev/sr0`).
        pub medium: String,
        /// `iso9660`, or `squashfs` (squashroot).
        pub medium_type: String,
        /// The squashfs image the root comes from (a file or a device).
        pub squashfs: String,
        pub toram: bool,
    }

    impl BootEnv {
        pub fn render(&self) -> String {
            format!(
                "{MODE}={}\n{MEDIUM}={}\n{MEDIUM_TYPE}={}\n{SQUASHFS}={}\n{TORAM}={}\n",
                self.mode.name(),
                self.medium,
                self.medium_type,
                self.squashfs,
                u8::from(self.toram)
            )
        }
    }

    /// One value of a `KEY=value` file (boot.env, os-release); quotes removed.
    pub fn field(text: &str, key: &str) -> Option<String> {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    }
}

/// How the live system runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMode {
    Uml,
    Xen,
    /// Hardware or a full virtual machine: autodetection runs.
    Metal,
}

impl GuestMode {
    pub fn name(self) -> &'static str {
        match self {
            GuestMode::Uml => "uml",
            GuestMode::Xen => "xen",
            GuestMode::Metal => "metal",
        }
    }

    pub fn from_name(name: &str) -> Option<GuestMode> {
        match name {
            "uml" => Some(GuestMode::Uml),
            "xen" => Some(GuestMode::Xen),
            "metal" => Some(GuestMode::Metal),
            _ => None,
        }
    }

    /// Guests skip hardware autodetection.
    pub fn is_guest(self) -> bool {
        self != GuestMode::Metal
    }

    /// The one rule: the `uml` or `xen` word on the kernel command line wins;
    /// else UML says so in /proc/cpuinfo's vendor_id; else a Xen PV or PVH
    /// domain that is not dom0 is a Xen guest (as old Finnix told them
    /// apart); else hardware, which includes Xen's dom0 (it owns the
    /// machine) and HVM guests (emulated hardware, booted from the ISO).
    pub fn detect(cmdline: &str, cpuinfo: &str, xen: &XenFacts) -> GuestMode {
        for word in cmdline.split_whitespace() {
            match word {
                "uml" => return GuestMode::Uml,
                "xen" => return GuestMode::Xen,
                _ => {}
            }
        }
        if cpuinfo
            .lines()
            .any(|l| l.starts_with("vendor_id") && l.contains("User Mode Linux"))
        {
            GuestMode::Uml
        } else if xen.is_paravirtual_guest() {
            GuestMode::Xen
        } else {
            GuestMode::Metal
        }
    }
}

/// What Xen says of the running domain: /sys/hypervisor/type and
/// guest_type, and xenfs's `capabilities` (`control_d` in dom0 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XenFacts {
    pub hypervisor_type: String,
    pub guest_type: String,
    pub capabilities: String,
}

impl XenFacts {
    pub const HYPERVISOR_TYPE: &'static str = "/sys/hypervisor/type";
    pub const GUEST_TYPE: &'static str = "/sys/hypervisor/guest_type";
    /// In xenfs, wherever it is mounted (/proc/xen by convention).
    pub const CAPABILITIES: &'static str = "capabilities";

    /// A PV or PVH domain without dom0's control capability.
    pub fn is_paravirtual_guest(&self) -> bool {
        self.hypervisor_type.trim() == "xen"
            && matches!(self.guest_type.trim(), "PV" | "PVH")
            && !self
                .capabilities
                .split(|c: char| c == ',' || c.is_whitespace())
                .any(|c| c == "control_d")
    }
}

/// What the first bytes of a device or file say.
pub mod magic {
    /// A squashfs image starts with this.
    pub const SQUASHFS: &[u8] = b"hsqs";
    /// An ISO9660 primary volume descriptor's identifier, at this offset.
    pub const ISO9660: &[u8] = b"CD001";
    pub const ISO9660_OFFSET: usize = 0x8001;

    pub fn is_squashfs(head: &[u8]) -> bool {
        head.starts_with(SQUASHFS)
    }

    pub fn is_iso9660(head: &[u8]) -> bool {
        head.get(ISO9660_OFFSET..ISO9660_OFFSET + ISO9660.len()) == Some(ISO9660)
    }
}

/// The consoles of a boot (`/proc/consoles`): every `console=` of the
/// command line is one, the last is /dev/console (flag `C`). What the
/// initramfs and the live system say at boot (the medium search, a failure
/// report, the banner, the shutdown lines) goes to /dev/console *and* to
/// every other enabled console, so that a machine reached only by its
/// serial port (IPMI serial-over-LAN, a VM with `-nographic`) sees it all
/// with the default boot entry, as does its screen.
pub mod consoles {
    pub const PROC: &str = "/proc/consoles";

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Console {
        /// The device's name under /dev (`ttyS0`, `tty0`, `hvc0`).
        pub name: String,
        /// Flag `E`: enabled.
        pub enabled: bool,
        /// Flag `C`: the preferred console, the one /dev/console opens.
        pub preferred: bool,
    }

    /// `/proc/consoles`: `ttyS0  -W- (E  p a)    4:64` per line.
    pub fn parse(text: &str) -> Vec<Console> {
        let mut out: Vec<Console> = Vec::new();
        for line in text.lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let flags = line
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(f, _)| f)
                .unwrap_or("");
            if out.iter().any(|c| c.name == name) {
                continue;
            }
            out.push(Console {
                name: name.to_string(),
                enabled: flags.contains('E'),
                preferred: flags.contains('C'),
            });
        }
        out
    }

    /// The consoles to write to besides /dev/console: enabled, not the
    /// preferred one, `/dev/<name>` paths.
    pub fn mirrors(text: &str) -> Vec<String> {
        parse(text)
            .into_iter()
            .filter(|c| c.enabled && !c.preferred)
            .map(|c| format!("/dev/{}", c.name))
            .collect()
    }
}

/// The NAT network `finnix create` gives its guests.
pub mod net {
    pub const BRIDGE: &str = "finnixbr0";
    pub const PREFIX: &str = "10.182.250";
    pub const BRIDGE_ADDR: &str = "10.182.250.1";
    /// Guest number n gets 10.182.250.(FIRST_HOST + n).
    pub const FIRST_HOST: u32 = 10;
    pub const MAX_GUESTS: u32 = 240;

    pub fn address(index: u32) -> String {
        format!("{PREFIX}.{}", FIRST_HOST + index)
    }
}

/// The memory rule of `finnix create`.
pub mod memory {
    /// Guest memory when `--mem` is not given (the spec's 64 MB).
    pub const DEFAULT_GUEST_MIB: u32 = 64;
    /// Memory kept for the host when deciding whether another guest fits.
    pub const HOST_RESERVE_MIB: u64 = 32;

    /// Guests of `guest_mib` that fit in `available_mib`, by the rule.
    pub fn guests_that_fit(available_mib: u64, guest_mib: u64) -> u64 {
        available_mib.saturating_sub(HOST_RESERVE_MIB) / guest_mib.max(1)
    }

    /// Compressed swap in RAM (zram) on a machine with at most this much
    /// memory (MemTotal): a rescue system on a small machine, a UML or Xen
    /// guest of the spec's 64 MB, runs out of memory before it runs out of
    /// work. Above it, swap in RAM only costs.
    pub const ZRAM_MAX_TOTAL_MIB: u64 = 2048;
    /// zram's size: this share (percent) of MemTotal, upstream Finnix's.
    pub const ZRAM_PERCENT: u64 = 50;

    /// The zram swap device's size in bytes for a machine with `total_kib`
    /// of memory, or None when it gets none.
    pub fn zram_bytes(total_kib: u64) -> Option<u64> {
        (total_kib > 0 && total_kib <= ZRAM_MAX_TOTAL_MIB << 10)
            .then(|| (total_kib << 10) * ZRAM_PERCENT / 100 / 4096 * 4096)
    }

    /// The first page of a swap area of `bytes` (Linux's swap header v1, as
    /// `mkswap` writes it, with no UUID and no label): what `swapon` reads.
    /// The live system writes it itself: util-linux's mkswap took 2.1 s on
    /// the zram device of a 1 GiB qemu guest (TCG), on every boot.
    pub fn swap_header(bytes: u64, page_size: usize) -> Vec<u8> {
        let mut page = vec![0u8; page_size];
        let last_page = (bytes / page_size as u64).saturating_sub(1);
        // After 1024 bytes of boot sector: version, last page, bad pages.
        page[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        page[1028..1032].copy_from_slice(&(last_page.min(u32::MAX as u64) as u32).to_le_bytes());
        page[page_size - 10..].copy_from_slice(b"SWAPSPACE2");
        page
    }

    /// A value of /proc/meminfo, in KiB.
    pub fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }
}

/// The kernel's `ip=` boot parameter, read one way by the initramfs (a
/// network boot) and the live system: `ip=dhcp` (also `on`, `any`, `both`,
/// `bootp`), `ip=off` (also `none`), or the kernel's static form
/// `ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>`
/// where the netmask is a dotted quad or a prefix length (`24`), and the
/// client may carry its prefix (`192.0.2.10/24`). Empty fields are absent.
pub mod ip {
    use std::net::Ipv4Addr;

    /// What `ip=` asks for.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Config {
        Off,
        /// DHCP, on `device` only when one is named.
        Dhcp {
            device: Option<String>,
        },
        Static(Static),
    }

    /// A static address.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Static {
        pub address: Ipv4Addr,
        pub prefix: u8,
        pub gateway: Option<Ipv4Addr>,
        pub hostname: Option<String>,
        pub device: Option<String>,
        pub dns: Vec<Ipv4Addr>,
    }

    /// `24` or `255.255.255.0` → 24; a mask with holes is refused.
    pub fn prefix_of(mask: &str) -> Result<u8, String> {
        if let Ok(n) = mask.parse::<u8>() {
            return if n <= 32 {
                Ok(n)
            } else {
                Err(format!("netmask /{n}: a prefix length is 0 to 32"))
            };
        }
        let m: Ipv4Addr = mask.parse().map_err(|_| {
            format!(
                "netmask {mask:?}: neither a dotted quad (255.255.255.0) nor a prefix length (24)"
            )
        })?;
        let bits = u32::from(m);
        let n = bits.leading_ones();
        if bits.checked_shl(n).unwrap_or(0) != 0 {
            return Err(format!("netmask {mask}: its one bits are not contiguous"));
        }
        Ok(n as u8)
    }

    /// The dotted netmask of a prefix length.
    pub fn netmask(prefix: u8) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
    }

    fn addr(field: &str, what: &str) -> Result<Option<Ipv4Addr>, String> {
        if field.is_empty() {
            return Ok(None);
        }
        field
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {field:?} is not an IPv4 address"))
    }

    /// Parse the value of `ip=`; the error names the field that is wrong.
    pub fn parse(value: &str) -> Result<Config, String> {
        match value {
            "" | "dhcp" | "on" | "any" | "both" | "bootp" | "dhcp4" => {
                return Ok(Config::Dhcp { device: None })
            }
            "off" | "none" => return Ok(Config::Off),
            _ => {}
        }
        let f: Vec<&str> = value.split(':').collect();
        let bare_address = value
            .split_once('/')
            .map_or(value, |(a, _)| a)
            .parse::<Ipv4Addr>()
            .is_ok();
        if f.len() == 1 && !bare_address {
            return Err(format!(
                "ip={value}: expected dhcp, off, or <client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>"
            ));
        }
        let get = |i: usize| f.get(i).copied().unwrap_or("").trim();
        let device = Some(get(5).to_string()).filter(|d| !d.is_empty());
        let autoconf = get(6);
        let (client, inline_prefix) = match get(0).split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (get(0), None),
        };
        if client.is_empty() {
            return match autoconf {
                "" | "dhcp" | "on" | "any" | "both" | "bootp" => Ok(Config::Dhcp { device }),
                "off" | "none" => Ok(Config::Off),
                other => Err(format!("ip={value}: autoconf {other:?} is not dhcp, on, any, off or none, and no client address is given")),
            };
        }
        let address = addr(client, "the client address")?.expect("not empty");
        let prefix = match (inline_prefix, get(3)) {
            (Some(p), _) => prefix_of(p),
            (None, "") => Ok(default_prefix(address)),
            (None, m) => prefix_of(m),
        }
        .map_err(|e| format!("ip={value}: {e}"))?;
        let gateway = addr(get(2), "the gateway").map_err(|e| format!("ip={value}: {e}"))?;
        let mut dns = Vec::new();
        for (i, what) in [(7, "dns0"), (8, "dns1")] {
            if let Some(a) = addr(get(i), what).map_err(|e| format!("ip={value}: {e}"))? {
                dns.push(a);
            }
        }
        addr(get(1), "the server").map_err(|e| format!("ip={value}: {e}"))?;
        Ok(Config::Static(Static {
            address,
            prefix,
            gateway,
            hostname: Some(get(4).to_string()).filter(|h| !h.is_empty()),
            device,
            dns,
        }))
    }

    /// The kernel's default when no netmask is given: the address's class.
    fn default_prefix(a: Ipv4Addr) -> u8 {
        match a.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        }
    }
}

/// The network boot: how much memory it needs, where /init leaves what it
/// configured.
pub mod netboot {
    /// Memory a network boot keeps for the running system beside the
    /// squashfs it holds in RAM: MemAvailable must be at least the
    /// squashfs's size plus this when the download starts.
    pub const RESERVE_MIB: u64 = 128;
    /// One line per interface the initramfs configured
    /// (`<interface> dhcp|static <address>/<prefix>`): the live system
    /// leaves a static one alone.
    pub const CONFIGURED: &str = "/run/finnix/network";

    /// The MemAvailable a squashfs of `size` bytes needs, in bytes.
    pub fn needed_bytes(size: u64) -> u64 {
        size + (RESERVE_MIB << 20)
    }

    /// Interfaces the initramfs gave a static address, from [`CONFIGURED`].
    pub fn static_interfaces(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let iface = w.next()?;
                (w.next()? == "static").then(|| iface.to_string())
            })
            .collect()
    }
}

/// dpkg's status file (`/var/lib/dpkg/status`), read one way by xtask (the
/// SBOM, the source archive, the package benchmark) and by the live
/// system (`finnix`'s banner count).
pub mod dpkg {
    /// The value of field `name` in a paragraph (`Name: value`), trimmed.
    pub fn field<'a>(para: &'a str, name: &str) -> Option<&'a str> {
        para.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    }

    /// Whether a paragraph's package is installed: its Status field's last
    /// word, dpkg's state, is `installed`, whatever the want flag before it
    /// (install, hold, deinstall: still on disk).
    pub fn is_installed(para: &str) -> bool {
        field(para, "Package").is_some_and(|p| !p.is_empty())
            && field(para, "Status").and_then(|s| s.split_whitespace().nth(2)) == Some("installed")
    }

    /// (source package, version) from a binary package's `Source:` field (or
    /// none: the source is named like the package) and its own version.
    pub fn source_of(name: &str, version: &str, source_field: Option<&str>) -> (String, String) {
        match source_field.map(str::trim).filter(|s| !s.is_empty()) {
            None => (name.to_string(), version.to_string()),
            Some(s) => match s.split_once(' ') {
                Some((n, v)) => (
                    n.to_string(),
                    v.trim_matches(|c| c == '(' || c == ')').to_string(),
                ),
                None => (s.to_string(), binnmu_free(version)),
            },
        }
    }

    /// A binary-only rebuild's version (`1.2-3+b1`) is its source's plus
    /// `+bN`; without a `Source:` version the source has the version less that.
    pub fn binnmu_free(version: &str) -> String {
        match version.rfind("+b") {
            Some(i)
                if version[i + 2..].chars().all(|c| c.is_ascii_digit())
                    && i + 2 < version.len() =>
            {
                version[..i].to_string()
            }
            _ => version.to_string(),
        }
    }

    /// The paragraphs of installed packages, in the file's order.
    pub fn installed(text: &str) -> impl Iterator<Item = &str> {
        text.split("\n\n").filter(|p| is_installed(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_parameter_forms() {
        use ip::{parse, Config, Static};
        use std::net::Ipv4Addr;
        assert_eq!(parse("dhcp"), Ok(Config::Dhcp { device: None }));
        assert_eq!(parse("off"), Ok(Config::Off));
        assert_eq!(
            parse(":::::eth1:dhcp"),
            Ok(Config::Dhcp {
                device: Some("eth1".into())
            })
        );
        let want = Static {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            hostname: Some("rescue".into()),
            device: Some("eth0".into()),
            dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
        };
        // Upstream issue 60's forms: the netmask dotted, or as a prefix.
        for line in [
            "10.0.2.15::10.0.2.2:255.255.255.0:rescue:eth0:off:10.0.2.3",
            "10.0.2.15::10.0.2.2:24:rescue:eth0:none:10.0.2.3",
            "10.0.2.15/24::10.0.2.2::rescue:eth0:off:10.0.2.3",
        ] {
            assert_eq!(parse(line), Ok(Config::Static(want.clone())), "{line}");
        }
        let Ok(Config::Static(s)) = parse("192.168.1.9:::::") else {
            panic!("a bare address")
        };
        assert_eq!((s.prefix, s.gateway, s.device), (24, None, None));
        // The kernel takes the client address alone too.
        let Ok(Config::Static(s)) = parse("10.0.2.15/28") else {
            panic!("an address alone")
        };
        assert_eq!((s.address, s.prefix), (Ipv4Addr::new(10, 0, 2, 15), 28));
        assert!(matches!(parse("10.0.2.15"), Ok(Config::Static(s)) if s.prefix == 8));
        assert_eq!(ip::netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(ip::netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(ip::prefix_of("255.255.240.0"), Ok(20));
        for (bad, says) in [
            ("10.0.2.15::10.0.2.2:255.0.255.0:::", "not contiguous"),
            ("10.0.2.15::10.0.2.2:33:::", "0 to 32"),
            (
                "10.0.2.15::10.0.2.2:255.255.255:::",
                "neither a dotted quad",
            ),
            ("10.0.2.300::::::", "client address"),
            ("10.0.2.15::gw::::", "gateway"),
            ("10.0.2.15:::24::eth0:off:8.8.8", "dns0"),
            ("static", "expected dhcp"),
            ("10.0.2.15/40", "0 to 32"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn zram_on_small_machines_only() {
        assert_eq!(memory::zram_bytes(256 << 10), Some(128 << 20));
        assert_eq!(memory::zram_bytes(2048 << 10), Some(1024 << 20));
        assert_eq!(memory::zram_bytes((2048 << 10) + 1), None);
        assert_eq!(memory::zram_bytes(0), None);
        // Whole pages.
        assert_eq!(memory::zram_bytes(1001).map(|b| b % 4096), Some(0));
    }

    /// The header is util-linux's, byte for byte: `mkswap` (with an all-zero
    /// UUID, no label) on a file of the same size writes the same page.
    #[test]
    fn swap_header_is_what_mkswap_writes() {
        let dir = std::env::temp_dir().join(format!("finnix-swap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for bytes in [40u64 << 20, 480 << 20] {
            let file = dir.join("swap");
            let f = std::fs::File::create(&file).unwrap();
            f.set_len(bytes).unwrap();
            drop(f);
            let out = std::process::Command::new("mkswap")
                .args(["-U", "00000000-0000-0000-0000-000000000000"])
                .arg(&file)
                .output()
                .expect("mkswap (util-linux) for this test");
            assert!(out.status.success(), "{out:?}");
            let theirs = std::fs::read(&file).unwrap();
            let ours = memory::swap_header(bytes, 4096);
            let differs = (0..4096).find(|&i| ours[i] != theirs[i]);
            assert_eq!(differs, None, "{bytes} bytes: the first differing byte");
        }
        // A planted fault must show: one page too many.
        assert_ne!(
            memory::swap_header(40 << 20, 4096),
            memory::swap_header((40 << 20) + 4096, 4096)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn netboot_memory_rule_and_static_interfaces() {
        assert_eq!(netboot::needed_bytes(8 << 20), (8 + 128) << 20);
        assert_eq!(
            netboot::static_interfaces("eth0 static 10.0.2.15/24\neth1 dhcp 10.0.3.15/24\n"),
            ["eth0"]
        );
    }

    #[test]
    fn boot_env_renders_what_a_shell_sources_and_reads_back() {
        let env = boot_env::BootEnv {
            mode: GuestMode::Uml,
            medium: "/dev/ubda".into(),
            medium_type: "iso9660".into(),
            squashfs: "/run/finnix/medium/FINNIX/FINNIX".into(),
            toram: false,
        };
        let text = env.render();
        assert_eq!(
            text,
            "FINNIX_MODE=uml\nFINNIX_MEDIUM=/dev/ubda\nFINNIX_MEDIUM_TYPE=iso9660\nFINNIX_SQUASHFS=/run/finnix/medium/FINNIX/FINNIX\nFINNIX_TORAM=0\n"
        );
        assert_eq!(
            boot_env::field(&text, boot_env::MEDIUM).as_deref(),
            Some("/dev/ubda")
        );
        assert_eq!(
            boot_env::field("NAME=\"Finnix\"\n", "NAME").as_deref(),
            Some("Finnix")
        );
        assert_eq!(boot_env::field(&text, "NOPE"), None);
    }

    fn xen(guest_type: &str, capabilities: &str) -> XenFacts {
        XenFacts {
            hypervisor_type: "xen\n".into(),
            guest_type: format!("{guest_type}\n"),
            capabilities: capabilities.into(),
        }
    }

    #[test]
    fn one_rule_detects_the_mode() {
        let none = XenFacts::default();
        assert_eq!(
            GuestMode::detect("root=/dev/ubda uml", "", &none),
            GuestMode::Uml
        );
        assert_eq!(
            GuestMode::detect("console=hvc0 xen", "", &none),
            GuestMode::Xen
        );
        let uml = "processor\t: 0\nvendor_id\t: User Mode Linux\n";
        assert_eq!(GuestMode::detect("", uml, &none), GuestMode::Uml);
        let intel = "vendor_id\t: GenuineIntel\n";
        assert_eq!(GuestMode::detect("quiet", intel, &none), GuestMode::Metal);
        // Words that merely start like the keywords are not them; the
        // explicit word wins over what the system says.
        assert_eq!(
            GuestMode::detect("umlaut xenon", "", &none),
            GuestMode::Metal
        );
        assert_eq!(GuestMode::detect("xen", uml, &none), GuestMode::Xen);
        for m in [GuestMode::Uml, GuestMode::Xen, GuestMode::Metal] {
            assert_eq!(GuestMode::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn xen_guests_are_told_from_dom0_and_hvm() {
        let intel = "vendor_id\t: GenuineIntel\n";
        // A PV or PVH domU: no control capability (an empty file in xenfs).
        assert_eq!(
            GuestMode::detect("", intel, &xen("PVH", "")),
            GuestMode::Xen
        );
        assert_eq!(
            GuestMode::detect("", intel, &xen("PV", "\n")),
            GuestMode::Xen
        );
        // dom0 owns the hardware; an HVM guest has emulated hardware.
        assert_eq!(
            GuestMode::detect("", intel, &xen("PV", "control_d\n")),
            GuestMode::Metal
        );
        assert_eq!(
            GuestMode::detect("", intel, &xen("PVH", "control_d")),
            GuestMode::Metal
        );
        assert_eq!(
            GuestMode::detect("", intel, &xen("HVM", "")),
            GuestMode::Metal
        );
        // The word still overrides: dom0 told it is a guest.
        assert_eq!(
            GuestMode::detect("xen", intel, &xen("PV", "control_d")),
            GuestMode::Xen
        );
    }

    #[test]
    fn every_console_but_the_preferred_one_is_a_mirror() {
        // `console=ttyS0,115200 console=tty0`, the ISO's default entry.
        let text =
            "tty0                 -WU (EC p  )    4:7\nttyS0                -W- (E  p a)    4:64\n";
        let all = consoles::parse(text);
        assert_eq!(all.len(), 2);
        assert!(all[0].preferred && all[0].enabled && !all[1].preferred);
        assert_eq!(consoles::mirrors(text), ["/dev/ttyS0"]);
        // One console (UML's tty0, Xen's hvc0): nothing to mirror.
        assert!(consoles::mirrors("hvc0                 -W- (EC p  )    229:0\n").is_empty());
        // A disabled console is not written to; a name seen twice counts once.
        let text = "ttyS0 -W- (EC p a) 4:64\nttyS1 -W- (  p a) 4:65\nttyS0 -W- (E p a) 4:64\n";
        assert!(consoles::mirrors(text).is_empty());
        assert!(consoles::parse("").is_empty());
    }

    #[test]
    fn magic_numbers() {
        assert!(magic::is_squashfs(b"hsqs\0\0"));
        let mut iso = vec![0u8; 0x8006];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert!(magic::is_iso9660(&iso) && !magic::is_squashfs(&iso));
        assert!(!magic::is_iso9660(&iso[..0x8003]));
    }

    #[test]
    fn network_and_memory_rule() {
        assert_eq!(net::address(1), "10.182.250.11");
        assert_eq!(memory::guests_that_fit(936, 64), 14);
        assert_eq!(memory::guests_that_fit(10, 64), 0);
        let meminfo = "MemTotal:        1000 kB\nMemAvailable:     936000 kB\n";
        assert_eq!(memory::meminfo_kib(meminfo, "MemAvailable"), Some(936000));
        assert_eq!(memory::meminfo_kib(meminfo, "Mem"), None);
    }

    #[test]
    fn dpkg_installed_is_the_state_word() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1\n\n\
                      Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                      Package: c\nStatus: hold ok installed\nPackage-Type: x\n\n\
                      Package: d\nStatus: install ok unpacked\n\n\
                      Package: e\nStatus: deinstall ok installed\n";
        let names: Vec<&str> = super::dpkg::installed(status)
            .filter_map(|p| super::dpkg::field(p, "Package"))
            .collect();
        assert_eq!(names, ["a", "c", "e"]);
        let c = super::dpkg::installed(status).nth(1).unwrap();
        assert_eq!(super::dpkg::field(c, "Package"), Some("c"));
        assert_eq!(super::dpkg::field(c, "Version"), None);
    }
}
