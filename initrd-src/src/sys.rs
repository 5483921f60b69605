//! System calls the initramfs needs: mounts, loop devices, block devices.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::medium::BlockDev;

fn cstr(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref()).expect("no NUL in paths")
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (s, t, f, d) = (cstr(source), cstr(target), cstr(fstype), cstr(data));
    let data_ptr = if data.is_empty() {
        std::ptr::null()
    } else {
        d.as_ptr() as *const libc::c_void
    };
    check(unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, data_ptr) })
}

pub fn bind(source: &str, target: &str, readonly: bool) -> io::Result<()> {
    mount(source, target, "", libc::MS_BIND, "")?;
    if readonly {
        mount(
            "",
            target,
            "",
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            "",
        )?;
    }
    Ok(())
}

pub fn move_mount(from: &str, to: &str) -> io::Result<()> {
    mount(from, to, "", libc::MS_MOVE, "")
}

pub fn umount(target: &str) -> io::Result<()> {
    let t = cstr(target);
    check(unsafe { libc::umount2(t.as_ptr(), 0) })
}

pub fn mkdir(path: &str) -> io::Result<()> {
    fs::create_dir_all(path)
}

/// Whether `path` is a mount point (its device differs from its parent's).
pub fn is_mountpoint(path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Ok(b)) = (fs::metadata(path), fs::metadata(format!("{path}/.."))) else {
        return false;
    };
    a.dev() != b.dev()
}

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attach `file` read-only to a free loop device, detached automatically
/// when its last user goes. Returns the device path and an open handle: keep
/// it until the device is mounted, or the kernel detaches it at once.
pub fn loop_attach(file: &str) -> io::Result<(String, File)> {
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let dev = format!("/dev/loop{n}");
    // devtmpfs creates the node; give it a moment if it is new.
    let mut loopdev = None;
    for _ in 0..50 {
        match OpenOptions::new().read(true).open(&dev) {
            Ok(f) => {
                loopdev = Some(f);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    let loopdev = loopdev
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{dev} did not appear")))?;
    let backing = File::open(file)?;
    let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
    info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY;
    let name = Path::new(file).as_os_str().as_bytes();
    let len = name.len().min(63);
    info.lo_file_name[..len].copy_from_slice(&name[..len]);
    // LOOP_CONFIGURE (Linux 5.8) sets the file, size and flags in one step,
    // so the device never shows a zero size to a quick mount.
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info,
        reserved: [0; 8],
    };
    let fd = loopdev.as_raw_fd();
    if unsafe { libc::ioctl(fd, LOOP_CONFIGURE, &config as *const LoopConfig) } == 0 {
        return Ok((dev, loopdev));
    }
    check(unsafe { libc::ioctl(fd, LOOP_SET_FD, backing.as_raw_fd()) })?;
    let mut info = config.info;
    info.lo_flags = LO_FLAGS_AUTOCLEAR;
    check(unsafe { libc::ioctl(fd, LOOP_SET_STATUS64, &info as *const LoopInfo64) })?;
    Ok((dev, loopdev))
}

/// Block devices from /sys/class/block.
pub fn block_devices() -> Vec<BlockDev> {
    let Ok(entries) = fs::read_dir("/sys/class/block") else {
        return vec![];
    };
    let mut out: Vec<BlockDev> = entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let partition = e.path().join("partition").exists();
            BlockDev { name, partition }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The first `len` bytes of a device.
pub fn read_head(dev: &str, len: usize) -> Result<Vec<u8>, String> {
    let mut f = File::open(dev).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Size in bytes of a file or a block device.
pub fn size_of(path: &str) -> io::Result<u64> {
    let mut f = File::open(path)?;
    use std::io::Seek;
    f.seek(io::SeekFrom::End(0))
}
