//! Kernel modules from the initramfs: on the ISO, Debian's kernel has its
//! disk, USB and filesystem drivers as modules, and the initramfs carries
//! those that find the medium under `/lib/modules/<release>/` with a
//! trimmed `modules.dep` and `modules.alias` (written by `cargo xtask`'s
//! kernel-metal stage). The UML and Xen kernels have everything built in
//! and no such directory: then nothing here runs.
//!
//! As modprobe and udev do it: every device's `modalias` in /sys is matched
//! against the aliases (shell patterns), and a matching module is loaded
//! after its dependencies (modules.dep lists them; the last loads first).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsRawFd;

/// The list of modules loaded at once (filesystems, loop).
const LOAD_LIST: &str = "finnix.load";

/// Where network cards' drivers live in the module tree.
const NET_DRIVERS: &str = "kernel/drivers/net/";

/// A module's name as the kernel knows it: dashes as underscores.
pub fn normalise(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.strip_suffix(".ko").unwrap_or(base).replace('-', "_")
}

/// Whether `text` matches `pattern` as kmod matches a modalias against
/// modules.alias: libc's fnmatch(3) without flags (`*`, `?`, `[...]`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (Ok(p), Ok(t)) = (
        std::ffi::CString::new(pattern),
        std::ffi::CString::new(text),
    ) else {
        return false; // a NUL byte: no alias has one
    };
    // SAFETY: two NUL-terminated strings that live across the call.
    unsafe { libc::fnmatch(p.as_ptr(), t.as_ptr(), 0) == 0 }
}

/// What modules.dep and modules.alias say.
#[derive(Debug, Default)]
pub struct Index {
    /// name → (path, dependency paths in modprobe's order)
    deps: BTreeMap<String, (String, Vec<String>)>,
    /// (pattern, module name)
    aliases: Vec<(String, String)>,
}

impl Index {
    pub fn parse(dep: &str, alias: &str) -> Index {
        let deps = dep
            .lines()
            .filter_map(|l| {
                let (m, d) = l.split_once(':')?;
                let m = m.trim();
                Some((
                    normalise(m),
                    (
                        m.to_string(),
                        d.split_whitespace().map(String::from).collect(),
                    ),
                ))
            })
            .collect();
        let aliases = alias
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "alias").then_some(())?;
                Some((w.next()?.to_string(), normalise(w.next()?)))
            })
            .collect();
        Index { deps, aliases }
    }

    /// The modules whose aliases match a device's modalias.
    pub fn modules_for(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if !out.contains(module) && glob(pattern, modalias) {
                out.push(module.clone());
            }
        }
        out
    }

    /// Whether `name` is a network card's driver (under drivers/net/): loaded
    /// only when the boot needs a network.
    pub fn is_network(&self, name: &str) -> bool {
        self.deps
            .get(&normalise(name))
            .is_some_and(|(path, _)| path.starts_with(NET_DRIVERS))
    }

    /// The files to load for a module, dependencies first; None if the
    /// initramfs does not carry it.
    pub fn load_order(&self, name: &str) -> Option<Vec<String>> {
        let (path, deps) = self.deps.get(&normalise(name))?;
        let mut order: Vec<String> = deps.iter().rev().cloned().collect();
        order.push(path.clone());
        Some(order)
    }
}

/// The modules of the running kernel in the initramfs, and what has been
/// loaded or tried.
pub struct Modules {
    dir: String,
    index: Index,
    load: Vec<String>,
    done: BTreeSet<String>,
    seen: BTreeSet<String>,
    /// Failures, for the debug output and the failure report.
    pub errors: Vec<String>,
    /// Load network cards' drivers too (a network boot): a boot from a
    /// medium leaves them to the live system's udev.
    pub network: bool,
}

impl Modules {
    /// None when the initramfs has no modules for this kernel (UML, Xen).
    pub fn open() -> Option<Modules> {
        let release = release()?;
        let dir = format!("/lib/modules/{release}");
        let dep = fs::read_to_string(format!("{dir}/modules.dep")).ok()?;
        let alias = fs::read_to_string(format!("{dir}/modules.alias")).unwrap_or_default();
        let load = fs::read_to_string(format!("{dir}/{LOAD_LIST}"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        Some(Modules {
            dir,
            index: Index::parse(&dep, &alias),
            load,
            done: BTreeSet::new(),
            seen: BTreeSet::new(),
            errors: Vec::new(),
            network: false,
        })
    }

    /// Load a module and its dependencies; the names newly loaded.
    pub fn load(&mut self, name: &str) -> Vec<String> {
        let mut loaded = Vec::new();
        let Some(order) = self.index.load_order(name) else {
            self.errors.push(format!("{name}: not in the initramfs"));
            return loaded;
        };
        for path in order {
            let module = normalise(&path);
            if self.done.contains(&module) {
                continue;
            }
            self.done.insert(module.clone());
            match finit_module(&format!("{}/{path}", self.dir)) {
                Ok(()) => loaded.push(module),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => self.errors.push(format!("{module}: {e}")),
            }
        }
        loaded
    }

    /// The modules every boot needs (the filesystems of the medium).
    pub fn load_listed(&mut self) -> Vec<String> {
        let names = self.load.clone();
        names.iter().flat_map(|n| self.load(n)).collect()
    }

    /// Load what the devices in /sys ask for that has not been tried yet;
    /// the names newly loaded. Called again while waiting for the medium:
    /// a loaded controller brings new devices (disks, USB devices).
    pub fn coldplug(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        walk_modaliases("/sys/devices", 0, &mut found);
        let mut loaded = Vec::new();
        for alias in found {
            let (wanted, held): (Vec<String>, Vec<String>) = self
                .index
                .modules_for(&alias)
                .into_iter()
                .partition(|m| self.network || !self.index.is_network(m));
            // A network card seen before the network was wanted is looked
            // at again once it is.
            if held.is_empty() && !self.seen.insert(alias.clone()) {
                continue;
            }
            for module in wanted {
                loaded.extend(self.load(&module));
            }
        }
        loaded
    }
}

fn release() -> Option<String> {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8(bytes).ok()
}

/// Every device's modalias under a /sys directory (symlinks not followed):
/// its `modalias` file, or the `MODALIAS=` of its `uevent` (some buses,
/// MMC's for one, have only the latter: an SD card is `mmc:block`).
fn walk_modaliases(dir: &str, depth: usize, out: &mut Vec<String>) {
    if depth > 24 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let path = e.path();
        if t.is_dir() {
            walk_modaliases(&path.to_string_lossy(), depth + 1, out);
        } else if t.is_file() && e.file_name() == "modalias" {
            if let Ok(text) = fs::read_to_string(&path) {
                let text = text.trim();
                if !text.is_empty() {
                    out.push(text.to_string());
                }
            }
        } else if t.is_file() && e.file_name() == "uevent" {
            if let Some(alias) = fs::read_to_string(&path)
                .ok()
                .as_deref()
                .and_then(uevent_modalias)
            {
                out.push(alias);
            }
        }
    }
}

/// The `MODALIAS=` line of a device's `uevent` file.
pub fn uevent_modalias(uevent: &str) -> Option<String> {
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("MODALIAS="))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
}

fn finit_module(path: &str) -> std::io::Result<()> {
    let file = fs::File::open(path)?;
    let params = c"";
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_fnmatch_does() {
        assert!(glob(
            "pci:v*d*sv*sd*bc01sc06i01*",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
        ));
        assert!(!glob(
            "pci:v*d*sv*sd*bc01sc06i01*",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc01i8F"
        ));
        assert!(glob("usb:v05ACp12A8d0[0-9]*", "usb:v05ACp12A8d05x"));
        assert!(!glob("usb:v05ACp12A8d0[0-4]*", "usb:v05ACp12A8d05x"));
        assert!(glob("a[!b]c", "axc") && !glob("a[!b]c", "abc"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("scsi:t-0x05*", "scsi:t-0x05") && !glob("scsi:t-0x05*", "scsi:t-0x00"));
        assert!(glob("x[", "x["));
    }

    const DEP: &str = "kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/scsi/scsi_mod.ko:\n\
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/hid/hid-generic.ko: kernel/drivers/hid/hid.ko\n";

    const ALIAS: &str = "# Aliases extracted from modules themselves.\n\
alias pci:v*d*sv*sd*bc01sc06i01* ahci\n\
alias scsi:t-0x05* sr_mod\n\
alias scsi:t-0x04* sr_mod\n\
alias hid:b*g0001v*p* hid_generic\n";

    #[test]
    fn a_uevent_gives_the_modalias_of_a_bus_without_the_attribute() {
        assert_eq!(
            uevent_modalias("DRIVER=\nMMC_TYPE=SD\nMMC_NAME=QEMU!\nMODALIAS=mmc:block\n")
                .as_deref(),
            Some("mmc:block")
        );
        assert_eq!(uevent_modalias("MAJOR=8\nDEVNAME=sda\n"), None);
    }

    #[test]
    fn a_device_gets_its_module_after_the_dependencies() {
        let ix = Index::parse(DEP, ALIAS);
        assert_eq!(ix.modules_for("scsi:t-0x05"), ["sr_mod"]);
        assert_eq!(
            ix.modules_for("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"),
            ["ahci"]
        );
        assert!(ix
            .modules_for("pci:v00008086d000010D3sv*bc02sc00i00")
            .is_empty());
        assert_eq!(
            ix.load_order("ahci").unwrap(),
            [
                "kernel/drivers/scsi/scsi_mod.ko",
                "kernel/drivers/ata/libata.ko",
                "kernel/drivers/ata/libahci.ko",
                "kernel/drivers/ata/ahci.ko"
            ]
        );
        assert_eq!(
            ix.load_order("hid-generic").unwrap(),
            [
                "kernel/drivers/hid/hid.ko",
                "kernel/drivers/hid/hid-generic.ko"
            ]
        );
        assert!(ix.load_order("e1000e").is_none());
        let ix = Index::parse(
            &format!("{DEP}kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:\n"),
            ALIAS,
        );
        assert!(ix.is_network("e1000e") && !ix.is_network("ahci") && !ix.is_network("nope"));
    }
}
