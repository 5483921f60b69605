//! Finding the live medium (pure decision logic; the probing is injected).

use crate::cmdline::Params;

/// Block device name prefixes worth scanning, in preference order: UML, Xen,
/// virtio, CD-ROMs, SCSI/SATA/USB disks, NVMe, SD/MMC cards.
pub const PREFIXES: &[&str] = &["ubd", "xvd", "vd", "sr", "sd", "nvme", "mmcblk"];

/// What the first bytes of a device say it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Iso9660,
    Squashfs,
    Other,
}

use finnix_contract::magic;

/// Bytes needed to recognise either format.
pub const PROBE_LEN: usize = magic::ISO9660_OFFSET + magic::ISO9660.len();

/// Recognise a squashfs (`hsqs` at 0) or an ISO9660 image (`CD001` at 0x8001).
pub fn recognise(head: &[u8]) -> Content {
    if magic::is_squashfs(head) {
        Content::Squashfs
    } else if magic::is_iso9660(head) {
        Content::Iso9660
    } else {
        Content::Other
    }
}

/// The filesystem holding an ISO file (`findiso=`) that a device's first
/// bytes show, as the kernel names it (NTFS: ntfs-3g's): FAT, exFAT,
/// NTFS, ext2/3/4.
pub fn host_fs(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, want: &[u8]| head.get(off..off + want.len()) == Some(want);
    if at(3, b"EXFAT   ") {
        Some("exfat")
    } else if at(3, b"NTFS    ") {
        Some("ntfs")
    } else if at(1080, &[0x53, 0xef]) {
        Some("ext4")
    } else if at(510, &[0x55, 0xaa]) && (at(54, b"FAT") || at(82, b"FAT32")) {
        Some("vfat")
    } else {
        None
    }
}

/// A block device as listed in /sys/class/block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    pub name: String,
    pub partition: bool,
}

/// The devices to try, best first: by prefix preference, whole disks before
/// their partitions, then by name. Others (loop, ram, zram, ...) are skipped.
pub fn candidates(devs: &[BlockDev]) -> Vec<String> {
    let mut list: Vec<(usize, bool, &str)> = devs
        .iter()
        .filter_map(|d| {
            let rank = PREFIXES.iter().position(|p| d.name.starts_with(p))?;
            Some((rank, d.partition, d.name.as_str()))
        })
        .collect();
    list.sort();
    list.into_iter()
        .map(|(_, _, n)| format!("/dev/{n}"))
        .collect()
}

/// Effects the search needs, provided by the caller (real devices at boot,
/// fakes in tests).
pub trait Probe {
    /// The first [`PROBE_LEN`] bytes of `dev`, or why they could not be read.
    fn head(&mut self, dev: &str) -> Result<Vec<u8>, String>;
    /// Whether the ISO9660 filesystem on `dev` holds `FINNIX/FINNIX`.
    fn iso_has_finnix(&mut self, dev: &str) -> Result<bool, String>;
}

/// Where the squashfs root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An ISO9660 medium holding `FINNIX/FINNIX`.
    Iso { device: String },
    /// `squashroot`: the device is the squashfs.
    Squashfs { device: String },
}

/// One line per device tried: what was found there.
pub type Report = Vec<String>;

/// Try `devices` in order for what `params` asks for.
pub fn search(
    params: &Params,
    devices: &[String],
    probe: &mut impl Probe,
) -> Result<Found, Report> {
    let mut report = Vec::new();
    for dev in devices {
        let head = match probe.head(dev) {
            Ok(h) => h,
            Err(e) => {
                report.push(format!("{dev}: cannot read ({e})"));
                continue;
            }
        };
        match (recognise(&head), params.squashroot) {
            (Content::Squashfs, true) => {
                return Ok(Found::Squashfs {
                    device: dev.clone(),
                })
            }
            (Content::Squashfs, false) => report.push(format!(
                "{dev}: a squashfs image, but `squashroot` is not on the command line"
            )),
            (Content::Iso9660, true) => report.push(format!(
                "{dev}: an ISO9660 image, but `squashroot` asks for a squashfs device"
            )),
            (Content::Iso9660, false) => match probe.iso_has_finnix(dev) {
                Ok(true) => {
                    return Ok(Found::Iso {
                        device: dev.clone(),
                    })
                }
                Ok(false) => report.push(format!("{dev}: an ISO9660 image without FINNIX/FINNIX")),
                Err(e) => report.push(format!(
                    "{dev}: an ISO9660 image that cannot be mounted ({e})"
                )),
            },
            (Content::Other, _) => {
                report.push(format!("{dev}: neither an ISO9660 image nor a squashfs"))
            }
        }
    }
    if devices.is_empty() {
        report.push(format!(
            "no block devices named {}* present",
            PREFIXES.join("*, ")
        ));
    }
    Err(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;
    use std::collections::HashMap;

    fn iso_head() -> Vec<u8> {
        let mut v = vec![0u8; PROBE_LEN];
        v[magic::ISO9660_OFFSET..magic::ISO9660_OFFSET + 5].copy_from_slice(b"CD001");
        v
    }

    fn squash_head() -> Vec<u8> {
        let mut v = vec![0u8; PROBE_LEN];
        v[..4].copy_from_slice(b"hsqs");
        v
    }

    #[test]
    fn recognises_the_filesystems_an_iso_file_lives_on() {
        let mut h = vec![0u8; PROBE_LEN];
        assert_eq!(host_fs(&h), None);
        h[3..11].copy_from_slice(b"EXFAT   ");
        assert_eq!(host_fs(&h), Some("exfat"));
        h[3..11].copy_from_slice(b"NTFS    ");
        assert_eq!(host_fs(&h), Some("ntfs"));
        let mut h = vec![0u8; PROBE_LEN];
        h[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert_eq!(host_fs(&h), Some("ext4"));
        let mut h = vec![0u8; PROBE_LEN];
        h[82..87].copy_from_slice(b"FAT32");
        assert_eq!(host_fs(&h), None, "no boot signature");
        h[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(host_fs(&h), Some("vfat"));
    }

    #[test]
    fn recognises_formats() {
        assert_eq!(recognise(&iso_head()), Content::Iso9660);
        assert_eq!(recognise(&squash_head()), Content::Squashfs);
        assert_eq!(recognise(&[0u8; 10]), Content::Other);
        assert_eq!(recognise(b"hsq"), Content::Other);
    }

    fn dev(name: &str, partition: bool) -> BlockDev {
        BlockDev {
            name: name.into(),
            partition,
        }
    }

    #[test]
    fn candidates_prefer_guest_devices_and_whole_disks() {
        let devs = [
            dev("sda1", true),
            dev("loop0", false),
            dev("sda", false),
            dev("sr0", false),
            dev("nvme0n1", false),
            dev("ubdb", false),
            dev("ubda", false),
            dev("xvda", false),
            dev("vda", false),
            dev("ram0", false),
        ];
        assert_eq!(
            candidates(&devs),
            [
                "/dev/ubda",
                "/dev/ubdb",
                "/dev/xvda",
                "/dev/vda",
                "/dev/sr0",
                "/dev/sda",
                "/dev/sda1",
                "/dev/nvme0n1"
            ]
        );
    }

    struct Fake {
        heads: HashMap<&'static str, Result<Vec<u8>, String>>,
        finnix: HashMap<&'static str, bool>,
    }

    impl Probe for Fake {
        fn head(&mut self, dev: &str) -> Result<Vec<u8>, String> {
            self.heads
                .get(dev)
                .cloned()
                .unwrap_or(Err("no such device".into()))
        }
        fn iso_has_finnix(&mut self, dev: &str) -> Result<bool, String> {
            Ok(*self.finnix.get(dev).unwrap_or(&false))
        }
    }

    fn devices(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_iso_holding_finnix() {
        let mut fake = Fake {
            heads: HashMap::from([
                ("/dev/sr0", Err("No medium found".to_string())),
                ("/dev/sda", Ok(iso_head())),
                ("/dev/sdb", Ok(iso_head())),
            ]),
            finnix: HashMap::from([("/dev/sdb", true)]),
        };
        let found = search(
            &parse(""),
            &devices(&["/dev/sr0", "/dev/sda", "/dev/sdb"]),
            &mut fake,
        );
        assert_eq!(
            found,
            Ok(Found::Iso {
                device: "/dev/sdb".into()
            })
        );
    }

    #[test]
    fn squashroot_takes_the_squashfs_device() {
        let mut fake = Fake {
            heads: HashMap::from([("/dev/ubda", Ok(squash_head()))]),
            finnix: HashMap::new(),
        };
        let found = search(
            &parse("squashroot uml"),
            &devices(&["/dev/ubda"]),
            &mut fake,
        );
        assert_eq!(
            found,
            Ok(Found::Squashfs {
                device: "/dev/ubda".into()
            })
        );
    }

    #[test]
    fn failure_says_what_was_tried_and_found() {
        let mut fake = Fake {
            heads: HashMap::from([
                ("/dev/ubda", Ok(squash_head())),
                ("/dev/ubdb", Ok(vec![0; PROBE_LEN])),
                ("/dev/ubdc", Ok(iso_head())),
            ]),
            finnix: HashMap::new(),
        };
        let report = search(
            &parse("uml"),
            &devices(&["/dev/ubda", "/dev/ubdb", "/dev/ubdc", "/dev/ubdd"]),
            &mut fake,
        )
        .unwrap_err();
        assert_eq!(
            report,
            [
                "/dev/ubda: a squashfs image, but `squashroot` is not on the command line",
                "/dev/ubdb: neither an ISO9660 image nor a squashfs",
                "/dev/ubdc: an ISO9660 image without FINNIX/FINNIX",
                "/dev/ubdd: cannot read (no such device)",
            ]
        );
        let report = search(&parse(""), &[], &mut fake).unwrap_err();
        assert!(
            report[0].starts_with("no block devices named ubd*"),
            "{report:?}"
        );
    }
}
