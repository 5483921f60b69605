//! `finnix boot start` applies what the command line asks for (access.rs):
//! the host name, a static address, a password, root's authorized keys and
//! the SSH server. Each failure is one line on every console naming the
//! word; the boot goes on.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::access::{self, Access};
use crate::boot::{have, say};
use finnix_contract::ip;

/// Run a program; its stderr (or its exit status) is the error.
pub fn run(prog: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            format!("{prog} {} failed ({})", args.join(" "), out.status)
        } else {
            format!("{prog}: {err}")
        })
    }
}

/// `ip` from iproute2, or busybox's.
pub fn ip_cmd(args: &[&str]) -> Result<String, String> {
    if have("ip") {
        run("ip", args, None)
    } else {
        let mut all = vec!["ip"];
        all.extend_from_slice(args);
        run("busybox", &all, None)
    }
}

/// The settings file (`access::SETTINGS_FILE`) from the first FAT
/// partition that holds one: labelled `access::SETTINGS_LABEL`, or on the
/// disk Finnix booted from (a stick's EFI partition). Mounted read-only
/// and let go at once. A file with a mistake is named and not used.
pub fn read_settings(found: &[crate::fstab::Found], medium: &str) -> Access {
    use crate::fsprobe::{fat_label, Fs};
    const MNT: &str = "/run/finnix/settings";
    let medium = medium.trim_start_matches("/dev/");
    for f in found.iter().filter(|f| f.fs == Fs::Vfat) {
        let dev = format!("/dev/{}", f.name);
        let mut head = [0u8; 512];
        let read =
            fs::File::open(&dev).and_then(|mut d| std::io::Read::read_exact(&mut d, &mut head));
        let on_medium = !medium.is_empty() && f.name != medium && f.name.starts_with(medium);
        if read.is_err()
            || !(on_medium || fat_label(&head).as_deref() == Some(access::SETTINGS_LABEL))
        {
            continue;
        }
        let _ = fs::create_dir_all(MNT);
        let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // The stick's EFI partition cannot be mounted while the whole
        // stick is (the medium): EBUSY. Through a loop device it can.
        let mounted = crate::boot::mount(&dev, MNT, "vfat", flags, "")
            .map(|()| true)
            .or_else(|e| {
                // util-linux's mount sets a loop device up over a block
                // device; busybox's (mini) does not, and mini has no vfat
                // module for Debian's kernel (ENODEV): there, the medium's
                // EFI partition is not read (a FINNIXCFG partition is).
                let util_linux = fs::symlink_metadata("/usr/bin/mount").is_ok_and(|m| m.is_file());
                let errno = e.raw_os_error();
                if on_medium && !util_linux && matches!(errno, Some(libc::EBUSY | libc::ENODEV)) {
                    return Ok(false);
                }
                if errno != Some(libc::EBUSY) || !util_linux {
                    return Err(e.to_string());
                }
                if have("modprobe") {
                    let _ = run("modprobe", &["-q", "loop"], None);
                }
                let opts = "ro,loop,nosuid,nodev,noexec";
                run("mount", &["-t", "vfat", "-o", opts, &dev, MNT], None).map(|_| true)
            });
        let mounted = match mounted {
            Ok(true) => Ok(()),
            Ok(false) => continue,
            Err(e) => Err(e),
        };
        if let Err(e) = mounted {
            say(&format!(
                "[!] {dev}: cannot mount it to look for {}: {e}",
                access::SETTINGS_FILE
            ));
            continue;
        }
        let text = fs::read(format!("{MNT}/{}", access::SETTINGS_FILE));
        let mnt = std::ffi::CString::new(MNT).expect("path");
        unsafe { libc::umount2(mnt.as_ptr(), 0) };
        let Ok(bytes) = text else {
            continue; // no settings file here
        };
        let parsed = String::from_utf8(bytes)
            .map_err(|_| {
                format!(
                    "{} is not UTF-8 text; the file is not used",
                    access::SETTINGS_FILE
                )
            })
            .and_then(|t| access::settings_file(&t));
        return match parsed {
            Ok(a) => {
                say(&format!(
                    "[*] Settings from {} on {dev}",
                    access::SETTINGS_FILE
                ));
                a
            }
            Err(e) => {
                say(&format!("[!] {dev}: {e}"));
                Access::default()
            }
        };
    }
    Access::default()
}

/// The host name from `hostname=`, else from a static `ip=`'s field.
pub fn apply_hostname(a: &Access) {
    let from_ip = || match a.ip.as_deref().map(ip::parse) {
        Some(Ok(ip::Config::Static(s))) => s.hostname,
        _ => None,
    };
    let Some(wanted) = a.hostname.clone().or_else(from_ip) else {
        return;
    };
    match access::hostname(&wanted) {
        Ok(name) => {
            let hosts =
                access::hosts_file(&fs::read_to_string("/etc/hosts").unwrap_or_default(), &name);
            if let Err(e) = fs::write("/etc/hostname", format!("{name}\n"))
                .and_then(|()| fs::write("/etc/hosts", hosts))
            {
                say(&format!(
                    "[*] hostname={name}: cannot write /etc/hostname or /etc/hosts: {e}"
                ));
            }
        }
        Err(e) => say(&format!("[!] {e}")),
    }
}

/// Which interfaces the boot's background DHCP may take.
pub enum Dhcp {
    /// Every interface but these (configured statically).
    AllBut(Vec<String>),
    /// This one only (`ip=dhcp` naming a device, `ip=:::::eth1:dhcp`).
    Only(String),
    /// None (`ip=off`).
    Off,
}

/// `ip=`, unless the initramfs already applied it (a network boot): a
/// static address on the named (or the first) interface, its gateway and
/// name servers; or which interfaces DHCP may take.
pub fn apply_ip(a: &Access, ifaces: &[String], fixed: &[String]) -> Dhcp {
    let mut keep = fixed.to_vec();
    let Some(value) = a.ip.as_deref() else {
        return Dhcp::AllBut(keep);
    };
    match ip::parse(value) {
        Err(e) => {
            say(&format!("[!] {e}; falling back to DHCP"));
            Dhcp::AllBut(keep)
        }
        Ok(ip::Config::Off) => Dhcp::Off,
        Ok(ip::Config::Dhcp { device: Some(d) }) => Dhcp::Only(d),
        Ok(ip::Config::Dhcp { device: None }) => Dhcp::AllBut(keep),
        Ok(ip::Config::Static(s)) => {
            let device = s
                .device
                .clone()
                .or_else(|| ifaces.iter().find(|i| !fixed.contains(i)).cloned());
            match device {
                Some(d) if fixed.contains(&d) => {}
                Some(d) if ifaces.contains(&d) => {
                    match set_static(&s, &d) {
                        Ok(line) => say(&line),
                        Err(e) => say(&format!("[!] ip={value}: {e}")),
                    }
                    keep.push(d);
                }
                Some(d) => say(&format!(
                    "[!] ip={value}: there is no network interface {d} (there are: {}); no static address set",
                    if ifaces.is_empty() { "none".to_string() } else { ifaces.join(" ") }
                )),
                None => say(&format!(
                    "[!] ip={value}: this machine has no network interface; no static address set"
                )),
            }
            Dhcp::AllBut(keep)
        }
    }
}

/// Whether an `ip` command failed only because the thing exists already
/// (Xen's kernel applies `ip=` itself before init).
fn exists_already(r: Result<String, String>) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.contains("File exists") || e.contains("Address already assigned") => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_static(s: &ip::Static, dev: &str) -> Result<String, String> {
    let cidr = format!("{}/{}", s.address, s.prefix);
    ip_cmd(&["link", "set", dev, "up"])?;
    exists_already(ip_cmd(&["addr", "add", &cidr, "dev", dev]))?;
    let mut line = format!("[*] Static address {cidr} on {dev} (ip=)");
    if let Some(gw) = s.gateway {
        let gw = gw.to_string();
        exists_already(ip_cmd(&[
            "route", "replace", "default", "via", &gw, "dev", dev,
        ]))?;
        line.push_str(&format!(", gateway {gw}"));
    }
    if !s.dns.is_empty() {
        let text: String = s.dns.iter().map(|d| format!("nameserver {d}\n")).collect();
        // /etc/resolv.conf may be a link into /run (resolvconf): replace it.
        let _ = fs::remove_file("/etc/resolv.conf");
        fs::write("/etc/resolv.conf", text)
            .map_err(|e| format!("cannot write /etc/resolv.conf: {e}"))?;
        let dns: Vec<String> = s.dns.iter().map(|d| d.to_string()).collect();
        line.push_str(&format!(", DNS {}", dns.join(" ")));
    }
    Ok(line)
}

/// `passwd=`: the user (made if missing, in group sudo where it exists)
/// gets the password or the crypt hash.
pub fn apply_password(a: &Access) {
    let Some(value) = a.passwd.as_deref() else {
        return;
    };
    let p = match access::password(value) {
        Ok(p) => p,
        Err(e) => return say(&format!("[!] {e}")),
    };
    let passwd_db = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let known = passwd_db
        .lines()
        .any(|l| l.split(':').next() == Some(p.user.as_str()));
    if !known {
        let made = if have("useradd") {
            let sudo = fs::read_to_string("/etc/group")
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("sudo:"));
            let mut args = vec!["-m", "-s", "/bin/bash"];
            if sudo {
                args.extend(["-G", "sudo"]);
            }
            args.push(&p.user);
            run("useradd", &args, None)
        } else {
            run("busybox", &["adduser", "-D", &p.user], None)
        };
        if let Err(e) = made {
            return say(&format!(
                "[!] passwd=: cannot create the user {}: {e}",
                p.user
            ));
        }
    }
    // A password is hashed with SHA-512 crypt, not PAM's default yescrypt:
    // yescrypt takes 16 MiB to check each login, which a 64 MB guest (the
    // spec's UML) does not have to spare (sshd was killed for it). A hash
    // given in passwd= is used as it is.
    let args: &[&str] = if p.hashed { &["-e"] } else { &["-c", "SHA512"] };
    let prog = if have("chpasswd") {
        "chpasswd"
    } else {
        "busybox"
    };
    let mut all: Vec<&str> = if prog == "busybox" {
        vec!["chpasswd"]
    } else {
        vec![]
    };
    all.extend_from_slice(args);
    match run(prog, &all, Some(&p.chpasswd_line())) {
        Ok(_) => say(&format!(
            "[*] Password set for {} (passwd={})",
            p.user,
            if p.hashed { ", a crypt hash" } else { "" }
        )),
        Err(e) => say(&format!(
            "[!] passwd=: setting {}'s password failed: {e}",
            p.user
        )),
    }
}

/// `sshkey=`: root's authorized keys. Returns how many were added.
pub fn apply_keys(a: &Access) -> usize {
    let mut lines = Vec::new();
    for value in &a.sshkeys {
        match access::authorized_key(value) {
            Ok(line) => lines.push(line),
            Err(e) => say(&format!("[!] {e}")),
        }
    }
    if lines.is_empty() {
        return 0;
    }
    let write = || -> std::io::Result<()> {
        fs::create_dir_all("/root/.ssh")?;
        fs::set_permissions("/root/.ssh", fs::Permissions::from_mode(0o700))?;
        let path = "/root/.ssh/authorized_keys";
        let mut text = fs::read_to_string(path).unwrap_or_default();
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(path, text)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
    };
    match write() {
        Ok(()) => {
            for l in &lines {
                let mut f = l.split_whitespace();
                let kind = f.next().unwrap_or("");
                let comment: Vec<&str> = f.skip(1).collect();
                say(&format!(
                    "[*] Authorized SSH key for root (sshkey=): {kind} {}",
                    comment.join(" ")
                ));
            }
            lines.len()
        }
        Err(e) => {
            say(&format!(
                "[!] sshkey=: cannot write /root/.ssh/authorized_keys: {e}"
            ));
            0
        }
    }
}

/// `sshd` (or a key that was added): host keys made now, never shipped,
/// their fingerprints shown; password logins only when `passwd=` gave a
/// password; then sshd.
pub fn start_sshd(a: &Access, keys_added: usize) {
    if !a.wants_sshd(keys_added) {
        return;
    }
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        return say("[!] sshd: this Finnix has no SSH server (the standard release has one)");
    }
    let password_user = a
        .passwd
        .as_deref()
        .and_then(|v| access::password(v).ok())
        .map(|p| p.user);
    let conf = access::sshd_config(password_user.as_deref());
    if let Err(e) = fs::create_dir_all("/etc/ssh/sshd_config.d")
        .and_then(|()| fs::write("/etc/ssh/sshd_config.d/finnix.conf", conf))
    {
        return say(&format!(
            "[!] sshd: cannot write its settings: {e}; not started"
        ));
    }
    if let Err(e) = run("ssh-keygen", &["-A"], None) {
        return say(&format!(
            "[!] sshd: making host keys failed: {e}; not started"
        ));
    }
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let path = format!("/etc/ssh/ssh_host_{kind}_key.pub");
        if let Ok(out) = run("ssh-keygen", &["-l", "-f", &path], None) {
            // "256 SHA256:... root@finnix (ED25519)"
            let f: Vec<&str> = out.split_whitespace().collect();
            if let (Some(fp), Some(t)) = (f.get(1), f.last()) {
                say(&format!(
                    "[*] SSH host key {}: {fp}",
                    t.trim_matches(|c| c == '(' || c == ')')
                ));
            }
        }
    }
    let _ = fs::create_dir_all("/run/sshd");
    let _ = fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755));
    match run("/usr/sbin/sshd", &[], None) {
        Ok(_) => say(&format!(
            "[*] SSH server started on port 22: {}",
            match password_user.as_deref() {
                Some(u) => format!("key and password logins ({u})"),
                None => "key logins only".to_string(),
            }
        )),
        Err(e) => say(&format!("[!] sshd: {e}")),
    }
}
