//! What a block device holds, from its first bytes (pure).

/// Bytes to read from a device to recognise everything below.
pub const PROBE_LEN: usize = 0x10100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Swap,
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Ntfs,
    Iso9660,
    Squashfs,
    Luks,
    LvmPv,
    MdRaid,
}

impl Fs {
    /// The fstab type field, or None for things that are not mounted directly.
    pub fn fstab_type(self) -> Option<&'static str> {
        Some(match self {
            Fs::Swap => "swap",
            Fs::Ext2 => "ext2",
            Fs::Ext3 => "ext3",
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
            Fs::Btrfs => "btrfs",
            Fs::Vfat => "vfat",
            Fs::Ntfs => "ntfs-3g",
            Fs::Iso9660 => "iso9660",
            Fs::Squashfs => "squashfs",
            Fs::Luks | Fs::LvmPv | Fs::MdRaid => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Fs::Luks => "crypto_LUKS",
            Fs::LvmPv => "LVM2_member",
            Fs::MdRaid => "linux_raid_member",
            other => other.fstab_type().expect("mountable"),
        }
    }
}

fn at(buf: &[u8], off: usize, magic: &[u8]) -> bool {
    buf.len() >= off + magic.len() && &buf[off..off + magic.len()] == magic
}

fn le32(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}

/// Recognise the filesystem (or container) whose first bytes are `buf`.
pub fn probe(buf: &[u8]) -> Option<Fs> {
    if at(buf, 0, b"LUKS\xba\xbe") {
        return Some(Fs::Luks);
    }
    if at(buf, 512, b"LABELONE") && at(buf, 512 + 24, b"LVM2 001") {
        return Some(Fs::LvmPv);
    }
    // md superblock 1.1 (offset 0) / 1.2 (offset 4096): magic a92b4efc
    if at(buf, 0, &[0xfc, 0x4e, 0x2b, 0xa9]) || at(buf, 4096, &[0xfc, 0x4e, 0x2b, 0xa9]) {
        return Some(Fs::MdRaid);
    }
    if finnix_contract::magic::is_squashfs(buf) {
        return Some(Fs::Squashfs);
    }
    if at(buf, 0, b"XFSB") {
        return Some(Fs::Xfs);
    }
    if at(buf, 0x10040, b"_BHRfS_M") {
        return Some(Fs::Btrfs);
    }
    if at(buf, 0x438, &[0x53, 0xef]) {
        // ext2/3/4: tell them apart by feature flags, as blkid does.
        let compat = le32(buf, 0x45c);
        let incompat = le32(buf, 0x460);
        let ro_compat = le32(buf, 0x464);
        const HAS_JOURNAL: u32 = 0x4;
        const EXT3_INCOMPAT: u32 = 0x2 | 0x4; // filetype, recover
        let ext4_incompat = incompat & !EXT3_INCOMPAT != 0;
        let ext4_ro = ro_compat & !(0x1 | 0x2 | 0x4) != 0; // beyond sparse_super, large_file, btree_dir
        return Some(if ext4_incompat || ext4_ro {
            Fs::Ext4
        } else if compat & HAS_JOURNAL != 0 {
            Fs::Ext3
        } else {
            Fs::Ext2
        });
    }
    if at(buf, 3, b"NTFS    ") {
        return Some(Fs::Ntfs);
    }
    if at(buf, 510, &[0x55, 0xaa])
        && (at(buf, 54, b"FAT")
            || at(buf, 82, b"FAT32")
            || at(buf, 3, b"MSDOS")
            || at(buf, 3, b"mkfs.fat"))
    {
        return Some(Fs::Vfat);
    }
    if finnix_contract::magic::is_iso9660(buf) {
        return Some(Fs::Iso9660);
    }
    // Swap: "SWAPSPACE2" at the end of the first page (4 KiB pages here).
    if at(buf, 4096 - 10, b"SWAPSPACE2") || at(buf, 4096 - 10, b"SWAP-SPACE") {
        return Some(Fs::Swap);
    }
    None
}

/// The volume label in a FAT boot sector (`mkfs.fat -n`, `fatlabel`
/// write it there and in the root directory), when it has one.
pub fn fat_label(buf: &[u8]) -> Option<String> {
    // FAT32 keeps its extended boot record further in than FAT12/16.
    let at_label = if at(buf, 82, b"FAT32   ") && buf.get(66) == Some(&0x29) {
        71
    } else if buf.get(38) == Some(&0x29) {
        43
    } else {
        return None;
    };
    let label = String::from_utf8_lossy(buf.get(at_label..at_label + 11)?)
        .trim_end_matches([' ', '\0'])
        .to_string();
    (!label.is_empty() && label != "NO NAME").then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> Vec<u8> {
        vec![0u8; PROBE_LEN]
    }

    #[test]
    fn recognises_swap_and_ext() {
        let mut b = blank();
        b[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(probe(&b), Some(Fs::Swap));

        let mut b = blank();
        b[0x438] = 0x53;
        b[0x439] = 0xef;
        assert_eq!(probe(&b), Some(Fs::Ext2));
        b[0x45c] = 0x4; // has_journal
        assert_eq!(probe(&b), Some(Fs::Ext3));
        b[0x460] = 0x40 | 0x2; // extents
        assert_eq!(probe(&b), Some(Fs::Ext4));
    }

    #[test]
    fn recognises_the_rest() {
        let cases: [(usize, &[u8], Fs); 7] = [
            (0, b"XFSB", Fs::Xfs),
            (0x10040, b"_BHRfS_M", Fs::Btrfs),
            (3, b"NTFS    ", Fs::Ntfs),
            (0, b"LUKS\xba\xbe", Fs::Luks),
            (0x8001, b"CD001", Fs::Iso9660),
            (0, b"hsqs", Fs::Squashfs),
            (4096, &[0xfc, 0x4e, 0x2b, 0xa9], Fs::MdRaid),
        ];
        for (off, magic, fs) in cases {
            let mut b = blank();
            b[off..off + magic.len()].copy_from_slice(magic);
            assert_eq!(probe(&b), Some(fs), "{fs:?}");
        }
        let mut b = blank();
        b[54..57].copy_from_slice(b"FAT");
        b[510] = 0x55;
        b[511] = 0xaa;
        assert_eq!(probe(&b), Some(Fs::Vfat));
        assert_eq!(fat_label(&b), None);
        b[38] = 0x29;
        b[43..54].copy_from_slice(b"FINNIXCFG  ");
        assert_eq!(fat_label(&b).as_deref(), Some("FINNIXCFG"));
        b[43..54].copy_from_slice(b"NO NAME    ");
        assert_eq!(fat_label(&b), None);
        let mut b = blank();
        b[82..90].copy_from_slice(b"FAT32   ");
        b[66] = 0x29;
        b[71..82].copy_from_slice(b"STICK      ");
        assert_eq!(fat_label(&b).as_deref(), Some("STICK"));
        let mut b = blank();
        b[512..520].copy_from_slice(b"LABELONE");
        b[536..544].copy_from_slice(b"LVM2 001");
        assert_eq!(probe(&b), Some(Fs::LvmPv));
        assert_eq!(probe(&blank()), None);
        assert_eq!(probe(&[]), None);
    }
}
