//! `findiso=<path>`: the Finnix ISO as a file on a disk (a multiboot USB
//! stick, GRUB's `loopback` and the ISO's `/boot/grub/loopback.cfg`).
//! Every partition and disk is looked at; one holding FAT, exFAT, ext4 or
//! NTFS is mounted read-only and searched for the path; the ISO found is
//! attached to a loop device and mounted as the medium.

use std::fs;
use std::time::{Duration, Instant};

use crate::medium::{self, BlockDev};
use crate::modules::Modules;
use crate::sys;

/// Where the filesystem holding the ISO file stays mounted (read-only).
pub const HOST_MNT: &str = "/run/finnix/isohost";
/// The filesystems' modules, loaded before the search.
const MODULES: &[&str] = &[
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "exfat",
    "crc32c_intel",
    "crc32c_generic",
    "ext4",
    "fuse",
];
/// NTFS through FUSE (Debian's kernel has no NTFS driver).
const NTFS_3G: &str = "/bin/ntfs-3g";

/// The devices to look at: partitions first (where filesystems usually
/// are), then whole disks.
fn devices(devs: &[BlockDev]) -> Vec<String> {
    let mut all = medium::candidates(devs);
    all.sort_by_key(|d| {
        let name = d.trim_start_matches("/dev/");
        !devs.iter().any(|b| b.name == name && b.partition)
    });
    all
}

/// One look at every device: the device holding `path`, or a line per
/// device saying what it held.
fn look(path: &str, say: &dyn Fn(String)) -> Result<(String, &'static str), Vec<String>> {
    let mut report = Vec::new();
    let list = devices(&sys::block_devices());
    for dev in &list {
        let head = match sys::read_head(dev, medium::PROBE_LEN) {
            Ok(h) => h,
            Err(e) => {
                report.push(format!("{dev}: cannot read ({e})"));
                continue;
            }
        };
        let Some(fstype) = medium::host_fs(&head) else {
            report.push(format!("{dev}: no FAT, exFAT, ext4 or NTFS filesystem"));
            continue;
        };
        let _ = sys::mkdir(HOST_MNT);
        if let Err(e) = mount_host(dev, fstype) {
            report.push(format!("{dev}: {fstype}, cannot be mounted ({e})"));
            continue;
        }
        let full = format!("{HOST_MNT}{path}");
        if fs::metadata(&full).is_ok_and(|m| m.is_file()) {
            say(format!("findiso: {path} found on {dev} ({fstype})"));
            return Ok((dev.clone(), fstype));
        }
        report.push(format!("{dev}: {fstype}, no {path}"));
        let _ = sys::umount(HOST_MNT);
    }
    if list.is_empty() {
        report.push("no disks or partitions present".into());
    }
    Err(report)
}

/// Mount `dev` read-only on [`HOST_MNT`]: the kernel's driver, or ntfs-3g.
fn mount_host(dev: &str, fstype: &str) -> Result<(), String> {
    if fstype != "ntfs" {
        return sys::mount(dev, HOST_MNT, fstype, libc::MS_RDONLY, "").map_err(|e| e.to_string());
    }
    const LOG: &str = "/run/finnix/ntfs-3g.log";
    let log = fs::File::create(LOG).map_err(|e| format!("{LOG}: {e}"))?;
    // ntfs-3g stays as the filesystem's daemon: no pipes for it to hold.
    let status = std::process::Command::new(NTFS_3G)
        .args(["-o", "ro", dev, HOST_MNT])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .status()
        .map_err(|e| format!("cannot run {NTFS_3G}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let said = fs::read_to_string(LOG).unwrap_or_default();
        Err(format!("ntfs-3g: {status}: {}", said.trim()))
    }
}

/// Find the ISO file, waiting up to `wait` for disks to appear; mount it
/// on `medium_mnt`. Returns the medium's description.
pub fn find(
    path: &str,
    wait: Duration,
    medium_mnt: &str,
    mut modules: Option<&mut Modules>,
    say: &dyn Fn(String),
) -> Result<String, Vec<String>> {
    if let Some(m) = modules.as_deref_mut() {
        for name in MODULES {
            m.load(name);
        }
    }
    let start = Instant::now();
    let mut announced = false;
    let (dev, fstype) = loop {
        if let Some(m) = modules.as_deref_mut() {
            m.coldplug();
        }
        match look(path, say) {
            Ok(found) => break found,
            Err(mut report) if start.elapsed() >= wait => {
                report.insert(
                    0,
                    format!(
                        "findiso={path}: no such file on any disk's FAT, exFAT, ext4 or NTFS filesystem (looked for {} s)",
                        wait.as_secs()
                    ),
                );
                report.push("the path is from the top of the filesystem holding the ISO, as GRUB's iso_path gives it".into());
                return Err(report);
            }
            Err(report) => {
                if !announced {
                    say!(
                        "finnix-init: looking for {path} on the disks (up to {} s)...",
                        wait.as_secs()
                    );
                    announced = true;
                }
                for line in report {
                    say(line);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let file = format!("{HOST_MNT}{path}");
    let fail = |what: String| {
        let _ = sys::umount(HOST_MNT);
        vec![what]
    };
    let (loopdev, _handle) = sys::loop_attach(&file)
        .map_err(|e| fail(format!("{file}: cannot attach to a loop device: {e}")))?;
    let _ = sys::mkdir(medium_mnt);
    sys::mount(&loopdev, medium_mnt, "iso9660", libc::MS_RDONLY, "").map_err(|e| {
        fail(format!(
            "{path} on {dev}: not an ISO9660 image that mounts ({e})"
        ))
    })?;
    if !fs::metadata(format!("{medium_mnt}/FINNIX/FINNIX")).is_ok_and(|m| m.is_file()) {
        let _ = sys::umount(medium_mnt);
        return Err(fail(format!(
            "{path} on {dev}: an ISO without FINNIX/FINNIX (not a Finnix ISO)"
        )));
    }
    say!("[*] Booting {path} from {dev} ({fstype}, read-only)");
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_looked_at_before_whole_disks() {
        let d = |n: &str, p: bool| BlockDev {
            name: n.into(),
            partition: p,
        };
        let devs = [
            d("sda", false),
            d("sda1", true),
            d("vda", false),
            d("vda2", true),
            d("loop0", false),
        ];
        assert_eq!(
            devices(&devs),
            ["/dev/vda2", "/dev/sda1", "/dev/vda", "/dev/sda"]
        );
    }
}
