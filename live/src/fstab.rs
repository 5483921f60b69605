//! `/etc/fstab` from the partitions found at boot (pure).

use crate::fsprobe::Fs;

/// A block device that holds something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Kernel name: `ubdb`, `sda1`, `nvme0n1p2`.
    pub name: String,
    pub fs: Fs,
}

/// Block devices that are never candidates: the live medium itself, loop
/// and RAM devices, CD-ROMs and floppy drives (removable: mounted by hand;
/// reading an empty floppy drive is an I/O error on the console),
/// device-mapper (made later).
pub fn skip(name: &str, medium: Option<&str>) -> bool {
    let medium = medium.map(|m| m.trim_start_matches("/dev/"));
    medium == Some(name)
        || ["loop", "ram", "zram", "sr", "fd", "dm-", "md"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// Device numbers (`major:minor`) of what is mounted, from
/// `/proc/self/mountinfo`: those devices are in use (the root filesystem in
/// COW mode is `/dev/root` in /proc/mounts, so names do not tell).
pub fn mounted_devices(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|d| !d.starts_with("0:"))
        .map(String::from)
        .collect()
}

/// Names of whole disks and partitions from `/proc/partitions`.
pub fn parse_partitions(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("major"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
        .collect()
}

/// The fstab text: a header, then one line per usable device; nothing is
/// mounted automatically (`noauto`), swap is listed as swap.
pub fn render(found: &[Found]) -> String {
    let mut out = String::from(
        "# /etc/fstab: written by Finnix at boot from the partitions it found.\n\
         # Nothing here is mounted automatically: `mount /mnt/<device>`.\n\
         # <file system> <mount point> <type> <options> <dump> <pass>\n",
    );
    for f in found {
        let Some(fstype) = f.fs.fstab_type() else {
            out.push_str(&format!(
                "# /dev/{} is {} (not mounted directly)\n",
                f.name,
                f.fs.name()
            ));
            continue;
        };
        let line = match f.fs {
            Fs::Swap => format!("/dev/{}\tnone\tswap\tsw\t0\t0\n", f.name),
            Fs::Iso9660 | Fs::Squashfs => format!(
                "/dev/{n}\t/mnt/{n}\t{fstype}\tnoauto,ro\t0\t0\n",
                n = f.name
            ),
            _ => format!(
                "/dev/{n}\t/mnt/{n}\t{fstype}\tnoauto,defaults\t0\t0\n",
                n = f.name
            ),
        };
        out.push_str(&line);
    }
    out
}

/// Mount points to create for `found`.
pub fn mount_points(found: &[Found]) -> Vec<String> {
    found
        .iter()
        .filter(|f| f.fs.fstab_type().is_some() && f.fs != Fs::Swap)
        .map(|f| format!("/mnt/{}", f.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_devices_from_mountinfo() {
        let mi = "22 1 98:0 / / rw,relatime - ext4 /dev/root rw\n23 22 0:21 / /proc rw - proc proc rw\n30 22 7:0 / /FINNIX ro - squashfs /dev/loop0 ro\n";
        assert_eq!(mounted_devices(mi), ["98:0", "7:0"]);
    }

    #[test]
    fn reads_proc_partitions() {
        let text = "major minor  #blocks  name\n\n  98        0     358400 ubda\n  98       16     65536 ubdb\n   7        0      1024 loop0\n";
        assert_eq!(parse_partitions(text), ["ubda", "ubdb", "loop0"]);
    }

    #[test]
    fn skips_the_medium_and_virtual_devices() {
        assert!(skip("ubda", Some("/dev/ubda")));
        assert!(skip("loop0", None) && skip("sr0", None) && skip("ram0", None));
        assert!(skip("fd0", None), "an empty floppy drive is never read");
        assert!(!skip("ubdb", Some("/dev/ubda")));
    }

    #[test]
    fn renders_swap_data_and_containers() {
        let found = [
            Found {
                name: "ubdb".into(),
                fs: Fs::Swap,
            },
            Found {
                name: "ubdc".into(),
                fs: Fs::Ext4,
            },
            Found {
                name: "sda2".into(),
                fs: Fs::Luks,
            },
        ];
        let text = render(&found);
        assert!(text.contains("/dev/ubdb\tnone\tswap\tsw\t0\t0\n"), "{text}");
        assert!(
            text.contains("/dev/ubdc\t/mnt/ubdc\text4\tnoauto,defaults\t0\t0\n"),
            "{text}"
        );
        assert!(
            text.contains("# /dev/sda2 is crypto_LUKS (not mounted directly)\n"),
            "{text}"
        );
        assert_eq!(mount_points(&found), ["/mnt/ubdc"]);
    }
}
