//! check-access: reaching a running Finnix over the network. The standard
//! live system in UML, its eth0 on a TAP in a private network namespace
//! (the host end is the gateway, 10.0.2.1), booted four times:
//!
//! 1. `sshd passwd=... hostname=... ip=<static>`: the gateway answers a
//!    ping, root logs in over SSH with the password (OpenSSH's client, from
//!    the namespace), a wrong password is refused, and the host key the
//!    client sees is the one the console printed;
//! 2. `sshkey=` twice (the `%20` and the colon spelling), no `sshd`, and
//!    a settings file (`finnix.conf` on a FAT disk labelled FINNIXCFG) with
//!    a third key and the host name: each key logs in, a password login is
//!    refused (none was given), and the host key differs from the first
//!    boot's (made at boot, not shipped);
//! 3. bad input (a malformed crypt hash, an unreadable key, a bad host
//!    name, a settings file with an unknown setting on its line 2): each
//!    named on the console, the boot goes on, root's password stays locked
//!    and nothing listens on port 22 (the file's `sshd = yes` unused);
//! 4. the ISO as the medium with `finnix.conf` on its EFI partition (the
//!    host name only): read through a loop device; with no access word at
//!    all, nothing listens on any TCP port.
//!
//! Part `iso`: the standard ISO's kernel and initramfs in qemu (hardware
//! mode, Debian's kernel), `sshd passwd=<a SHA-512 crypt hash>`, DHCP from
//! qemu's user network, a password login through a forwarded port; zram
//! swap on its 1 GiB; then Wi-Fi over the kernel's simulated radios
//! (wifi.rs), with a settings file on a second disk.

use fs_err as fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::guest::console::Guest;
use crate::support::cmd::Cmd;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome, Stage};

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The guest's static address and the host end of its TAP (the gateway).
const GUEST: &str = "10.0.2.15";
const GATEWAY: &str = "10.0.2.1";
/// A password with a space and a colon: the quoting and the user rule.
const PASSWORD: &str = "rescue me:42";

/// The parts of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Uml,
    Iso,
}

impl Part {
    pub const ALL: [Part; 2] = [Part::Uml, Part::Iso];

    pub fn name(self) -> &'static str {
        match self {
            Part::Uml => "uml",
            Part::Iso => "iso",
        }
    }
}

/// The live files one boot needs.
pub struct Live {
    pub uml_kernel: PathBuf,
    pub initrd: PathBuf,
    pub squashfs: PathBuf,
    /// The release's ISO (boot 4 adds a settings file to its EFI partition).
    pub iso: PathBuf,
    pub memory_mib: u32,
}

impl Live {
    pub fn of(ctx: &Ctx, r: &crate::pipeline::Release) -> Result<Live> {
        let l = &r.live;
        let profile = crate::support::config::Profile::load(&ctx.root, &l.profile)?;
        Ok(Live {
            uml_kernel: l.uml.image(),
            initrd: l.initrd.image(),
            squashfs: l.squashfs.image(),
            iso: r.iso.image(),
            memory_mib: profile.memory_mib,
        })
    }
}

/// A UML boot of the live system with `words` on its command line, eth0 on
/// a TAP in a network namespace of its own whose host end is the gateway.
fn boot(
    s: &Stage,
    dir: &Path,
    live: &Live,
    words: &[&str],
    log: &Path,
    version: &str,
) -> Result<Guest> {
    let mem = format!("mem={}M", live.memory_mib);
    let mut args = vec![mem.as_str(), "initrd=initrd.img", "root=/dev/ubda"];
    // The squashfs itself as ubda, unless the words name another medium.
    if !words.iter().any(|w| w.starts_with("ubdar=")) {
        args.extend(["ubdar=FINNIX", "squashroot"]);
    }
    args.extend(["eth0=tuntap,tap0", "uml"]);
    args.extend_from_slice(words);
    let inner = crate::guest::uml::command(dir, dir, &args, false)?;
    let line: Vec<String> = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| crate::support::cmd::shell_quote(&a.to_string_lossy()))
        .collect();
    let script = format!(
        "ip tuntap add dev tap0 mode tap && ip addr add {GATEWAY}/24 dev tap0 && ip link set tap0 up && exec {}",
        line.join(" ")
    );
    let mut c = std::process::Command::new("unshare");
    c.current_dir(dir)
        .args(["--net", "--", "sh", "-c", &script]);
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    s.note(format!(
        "{}: unshare --net ... {}",
        log.display(),
        words.join(" ")
    ));
    let start = Instant::now();
    let mut g = Guest::start(c, log)?;
    g.boot_to_shell(version, "tty0", start, BOOT_TIMEOUT)
        .with_context(|| {
            format!(
                "{}: the boot failed; its end:\n{}",
                log.display(),
                g.tail(25)
            )
        })?;
    Ok(g)
}

/// Where the host reaches the guest's SSH server: from inside the guest's
/// network namespace (UML's TAP), or through qemu's forwarded port.
struct Peer {
    /// The guest process whose network namespace the client enters.
    netns: Option<u32>,
    host: String,
    port: u16,
}

impl Peer {
    fn in_netns(g: &Guest) -> Result<Peer> {
        Ok(Peer {
            netns: Some(g.pid().context("the guest has no process")?),
            host: GUEST.into(),
            port: 22,
        })
    }

    fn forwarded(port: u16) -> Peer {
        Peer {
            netns: None,
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn cmd(&self, program: &str) -> Cmd {
        match self.netns {
            Some(pid) => crate::cmd!("nsenter", "-t", pid.to_string(), "-n", "--", program),
            None => Cmd::new(program),
        }
    }

    fn keyscan(&self, timeout_secs: u32) -> Cmd {
        self.cmd("ssh-keyscan")
            .args([
                "-T",
                &timeout_secs.to_string(),
                "-p",
                &self.port.to_string(),
                "-t",
                "ed25519",
            ])
            .arg(&self.host)
            .stdin_null()
    }

    /// OpenSSH's client with nothing of the host's own configuration: no
    /// agent, no known hosts but this check's, one way to log in.
    fn ssh(&self, dir: &Path, how: &[String], remote: &str) -> Cmd {
        self.cmd("ssh")
            .args([
                "-F",
                "none",
                "-o",
                "BatchMode=no",
                "-o",
                "ConnectTimeout=20",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-p",
                &self.port.to_string(),
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.join("known_hosts").display()
            ))
            .args(how)
            .arg(format!("root@{}", self.host))
            .arg(remote)
            .env_remove("SSH_AUTH_SOCK")
            .stdin_null()
            .stderr_to_stdout()
    }

    /// A password login: the password comes from an askpass program
    /// (OpenSSH asks it when SSH_ASKPASS_REQUIRE=force), never a terminal.
    fn password_login(
        &self,
        s: &Stage,
        dir: &Path,
        password: &str,
        remote: &str,
    ) -> Result<(bool, String)> {
        let askpass = dir.join("askpass");
        fs::write(
            &askpass,
            format!(
                "#!/bin/sh\nprintf '%s\\n' {}\n",
                crate::support::cmd::shell_quote(password)
            ),
        )?;
        fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let how = [
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ]
        .map(String::from);
        let cmd = self
            .ssh(dir, &how, remote)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", "none");
        s.output(cmd)
    }

    fn key_login(&self, s: &Stage, dir: &Path, key: &Path, remote: &str) -> Result<(bool, String)> {
        let how = [
            "-o".into(),
            "PreferredAuthentications=publickey".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            key.display().to_string(),
        ];
        s.output(self.ssh(dir, &how, remote))
    }

    /// Wait until sshd answers (it daemonizes before it listens; on the
    /// ISO, DHCP runs in the background).
    fn wait_for_sshd(&self, s: &Stage, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let (ok, out) = s.output(self.keyscan(5))?;
            if ok && out.contains("ssh-ed25519") {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nothing answers on {} port {} {}s after the banner",
                    self.host,
                    self.port,
                    within.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The ED25519 host key's fingerprint as the client sees it.
    fn served_fingerprint(&self, s: &Stage, dir: &Path) -> Result<String> {
        let scan = s.read(self.keyscan(10))?;
        let file = dir.join("scanned.pub");
        fs::write(&file, &scan)?;
        let out = s.read(crate::cmd!("ssh-keygen", "-l", "-f", &file))?;
        out.split_whitespace()
            .nth(1)
            .map(str::to_string)
            .with_context(|| format!("ssh-keygen -l printed {out:?} for the scanned key"))
    }
}

/// The fingerprint the console printed: "[*] SSH host key ED25519: SHA256:...".
fn printed_fingerprint(g: &Guest) -> Result<String> {
    g.output()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("[*] SSH host key ED25519: ")
                .map(|f| f.trim().to_string())
        })
        .context("the console shows no \"[*] SSH host key ED25519:\" line")
}

fn shutdown(g: &mut Guest) -> Result<()> {
    g.send("halt\n")?;
    let status = g.wait(Duration::from_secs(120))?;
    ensure!(status.success(), "UML exited with {status} after halt");
    Ok(())
}

pub fn check(ctx: &Ctx, live: &Live, version: &str) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-access",
        "sshd, passwd=, sshkey=, hostname=, ip= in UML: SSH logins from the host, bad input named on the console",
        |s| {
            let tmp = ctx.cache.temp_dir("check-access")?;
            let dir = tmp.path();
            for (from, name) in [(&live.uml_kernel, "linux"), (&live.initrd, "initrd.img"), (&live.squashfs, "FINNIX")] {
                crate::support::fsutil::link_or_copy(from, &dir.join(name))?;
            }
            let first = password_boot(ctx, s, dir, live, version)?;
            let second = key_boot(ctx, s, dir, live, version)?;
            ensure!(
                first != second,
                "both boots served the host key {first}: host keys must be made at each boot"
            );
            bad_input_boot(ctx, s, dir, live, version)?;
            esp_boot(ctx, s, dir, live, version)?;
            Ok((
                (),
                Outcome::Passed,
                format!("password and key logins over SSH, a new host key each boot ({first}, {second}), settings from a FAT disk and from the ISO's EFI partition, bad input named"),
            ))
        },
    )
}

/// Boot 1: sshd with root's password, a host name, a static address.
fn password_boot(ctx: &Ctx, s: &Stage, dir: &Path, live: &Live, version: &str) -> Result<String> {
    let passwd = format!("passwd=\"{PASSWORD}\"");
    let ip = format!("ip={GUEST}::{GATEWAY}:255.255.255.0::eth0:off");
    let log = ctx.logs().join("console-access-1.log");
    let mut g = boot(
        s,
        dir,
        live,
        &["sshd", &passwd, "hostname=rescue-a", &ip],
        &log,
        version,
    )?;
    let r = (|| -> Result<String> {
        let out = g.output();
        for want in [
            format!("[*] Static address {GUEST}/24 on eth0 (ip=), gateway {GATEWAY}"),
            "[*] Password set for root (passwd=)".to_string(),
            "[*] SSH server started on port 22: key and password logins (root)".to_string(),
        ] {
            ensure!(out.contains(&want), "the console lacks {want:?}");
        }
        let (ok, ping) = g.run_status(&format!("ping -c 1 -W 10 {GATEWAY}"), COMMAND_TIMEOUT)?;
        ensure!(ok, "the guest cannot ping its gateway {GATEWAY}:\n{ping}");
        let peer = Peer::in_netns(&g)?;
        peer.wait_for_sshd(s, Duration::from_secs(60))?;
        let printed = printed_fingerprint(&g)?;
        let served = peer.served_fingerprint(s, dir)?;
        ensure!(
            printed == served,
            "the console printed the host key {printed}, the server showed {served}"
        );
        let mem = g.run("cat /proc/swaps; grep -E 'Mem|Swap|Shmem|Anon' /proc/meminfo; ps -eo rss,comm --sort=-rss | head -12", COMMAND_TIMEOUT)?;
        s.note(format!("memory before the login:\n{mem}"));
        let (ok, out) = peer.password_login(s, dir, PASSWORD, "hostname; id -u")?;
        if !ok {
            let after = g.run(
                "dmesg | tail -40; grep -E 'Mem|Swap' /proc/meminfo",
                COMMAND_TIMEOUT,
            )?;
            bail!("root's password login over SSH failed:\n{out}\nthe guest then:\n{after}");
        }
        ensure!(
            out.lines().any(|l| l == "rescue-a") && out.lines().any(|l| l == "0"),
            "the SSH session says {out:?}, not rescue-a and uid 0"
        );
        let (ok, out) = peer.password_login(s, dir, "wrong password", "true")?;
        ensure!(
            !ok && out.contains("Permission denied"),
            "a wrong password was not refused:\n{out}"
        );
        g.check_trouble()?;
        Ok(served)
    })();
    let r = r.and_then(|fp| shutdown(&mut g).map(|()| fp));
    r.with_context(|| format!("{}: boot 1 (sshd passwd=)", log.display()))
}

/// A new key pair in `dir`; its public key's fields.
pub fn keypair(s: &Stage, dir: &Path, kind: &str, comment: &str) -> Result<(PathBuf, Vec<String>)> {
    let key = dir.join(format!("id_{comment}"));
    s.run(crate::cmd!(
        "ssh-keygen",
        "-q",
        "-t",
        kind,
        "-N",
        "",
        "-C",
        comment,
        "-f",
        &key
    ))?;
    let text = fs::read_to_string(key.with_extension("pub"))?;
    Ok((key, text.split_whitespace().map(str::to_string).collect()))
}

/// A whole-disk FAT image labelled FINNIXCFG holding `finnix.conf`, as a
/// user makes one (mkfs.fat -n, then copies the file on).
pub fn settings_disk(s: &Stage, dir: &Path, name: &str, text: &str, kib: u32) -> Result<PathBuf> {
    let img = dir.join(name);
    let _ = fs::remove_file(&img);
    s.run(crate::cmd!(
        "mkfs.fat",
        "-n",
        "FINNIXCFG",
        "-C",
        &img,
        kib.to_string()
    ))?;
    let conf = dir.join("finnix.conf");
    fs::write(&conf, text)?;
    s.run(crate::cmd!("mcopy", "-i", &img, &conf, "::finnix.conf"))?;
    Ok(img)
}

/// Boot 2: keys only, no `sshd` word, no password: two on the command line
/// (the `%20` and the colon spelling), a third and the host name from a
/// settings file on a FAT disk labelled FINNIXCFG.
fn key_boot(ctx: &Ctx, s: &Stage, dir: &Path, live: &Live, version: &str) -> Result<String> {
    let (key, k) = keypair(s, dir, "ed25519", "check@host")?;
    let (_, o) = keypair(s, dir, "ecdsa", "other")?;
    let (file_key, f) = keypair(s, dir, "ed25519", "from-file")?;
    let conf = format!(
        "# Finnix settings, read at boot\nhostname = rack-7\nsshkey = \"{}\"\n",
        f.join(" ")
    );
    let disk = settings_disk(s, dir, "settings-2.img", &conf, 4096)?;
    let percent = format!("sshkey={}", k.join("%20"));
    let colon = format!("sshkey={}", o.join(":"));
    let ubdb = format!("ubdbr={}", disk.display());
    let ip = format!("ip={GUEST}/24");
    let log = ctx.logs().join("console-access-2.log");
    let mut g = boot(s, dir, live, &[&ubdb, &percent, &colon, &ip], &log, version)?;
    let r = (|| -> Result<String> {
        let out = g.output();
        for want in [
            "[*] Settings from finnix.conf on /dev/ubdb",
            "[*] Authorized SSH key for root (sshkey=): ssh-ed25519 from-file",
            "[*] Authorized SSH key for root (sshkey=): ssh-ed25519 check@host",
            "[*] Authorized SSH key for root (sshkey=): ecdsa-sha2-nistp256 other",
            "[*] SSH server started on port 22: key logins only",
        ] {
            ensure!(out.contains(want), "the console lacks {want:?}");
        }
        let peer = Peer::in_netns(&g)?;
        peer.wait_for_sshd(s, Duration::from_secs(60))?;
        let (ok, out) =
            peer.key_login(s, dir, &key, "wc -l < /root/.ssh/authorized_keys; hostname")?;
        ensure!(
            ok && out.lines().any(|l| l.trim() == "3") && out.lines().any(|l| l == "rack-7"),
            "the key login failed, or found not 3 keys and the file's host name rack-7:\n{out}"
        );
        let (ok, out) = peer.key_login(s, dir, &file_key, "true")?;
        ensure!(ok, "the settings file's key does not log in:\n{out}");
        let (ok, out) = peer.password_login(s, dir, PASSWORD, "true")?;
        ensure!(
            !ok && out.contains("Permission denied (publickey)"),
            "a password login was not refused without passwd=:\n{out}"
        );
        let served = peer.served_fingerprint(s, dir)?;
        g.check_trouble()?;
        Ok(served)
    })();
    let r = r.and_then(|fp| shutdown(&mut g).map(|()| fp));
    r.with_context(|| format!("{}: boot 2 (sshkey=, settings file)", log.display()))
}

/// Boot 3: a malformed hash, an unreadable key, a bad host name, and a
/// settings file with a mistake on its second line (its first would start
/// sshd).
fn bad_input_boot(ctx: &Ctx, s: &Stage, dir: &Path, live: &Live, version: &str) -> Result<()> {
    let log = ctx.logs().join("console-access-3.log");
    let disk = settings_disk(
        s,
        dir,
        "settings-3.img",
        "sshd = yes\nhotsname = rack-7\n",
        4096,
    )?;
    let ubdb = format!("ubdbr={}", disk.display());
    let words = [
        &ubdb,
        "passwd=$6$salt$tooshort",
        "sshkey=ssh-ed25519:AAAAC3Nz",
        "hostname=-bad-",
        "ip=10.0.2.15/24",
    ];
    let mut g = boot(s, dir, live, &words, &log, version)?;
    let r = (|| -> Result<()> {
        let out = g.output();
        for want in [
            "[!] passwd=root:<hash>: the $6$ hash's last field must be 86 characters",
            "[!] sshkey=ssh-ed25519:AAAAC3Nz: its key is cut short; the key was not added",
            "[!] hostname=-bad-: a part may not start or end with a hyphen",
            "[!] /dev/ubdb: finnix.conf line 2: unknown setting \"hotsname\"",
        ] {
            ensure!(out.contains(want), "the console lacks {want:?}");
        }
        ensure!(
            !out.contains("SSH server started"),
            "sshd started without sshd or a usable key"
        );
        let shadow = g.run(
            "grep '^root:' /etc/shadow | cut -d: -f2; hostname",
            COMMAND_TIMEOUT,
        )?;
        ensure!(
            shadow.lines().collect::<Vec<_>>() == ["*", "finnix"],
            "root's password or the host name changed: {shadow:?}"
        );
        let (ok, out) = s.output(Peer::in_netns(&g)?.keyscan(5).stderr_to_stdout())?;
        let listening = g.run("ss -Hltn 'sport = :22' | wc -l", COMMAND_TIMEOUT)?;
        ensure!(
            listening.trim() == "0" && !out.contains("ssh-"),
            "something listens on port 22 (ss: {listening}; ssh-keyscan ok={ok}: {out})"
        );
        g.check_kernel_trouble()
    })();
    let r = r.and_then(|()| shutdown(&mut g));
    r.with_context(|| format!("{}: boot 3 (bad input)", log.display()))
}

/// Part `iso`: sshd from the standard ISO in qemu, a crypt hash as the
/// password, a login through qemu's forwarded port.
pub fn check_iso(ctx: &Ctx, iso: &Path, version: &str) -> Result<()> {
    ui::stage(
        &ctx.logs(),
        "check-access-iso",
        "sshd passwd=<crypt hash> from the standard ISO in qemu: a password login through a forwarded port; Wi-Fi with wifi-connect",
        |s| {
            let tmp = ctx.cache.temp_dir("check-access-iso")?;
            let dir = tmp.path();
            let b = crate::checks::hardware::iso_boot(s, iso, &dir.join("iso"))?;
            let wifi_disk = crate::checks::wifi::disk(ctx, s, dir)?;
            let hash = s.read(crate::cmd!("openssl", "passwd", "-6", "-salt", "finnixcheck", PASSWORD))?;
            let hash = hash.trim();
            ensure!(hash.starts_with("$6$finnixcheck$"), "openssl passwd -6 printed {hash:?}");
            // A port for qemu to forward: free when asked (qemu binds it next).
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut c = crate::guest::qemu::command("pc", crate::guest::qemu::MIB);
            c.arg("-kernel")
                .arg(&b.kernel)
                .arg("-initrd")
                .arg(&b.initrd)
                .arg("-append")
                .arg(format!("{} sshd passwd={hash} hostname=rescue-iso", b.append))
                .arg("-drive")
                .arg(crate::guest::qemu::iso_drive(
                    iso,
                    "media=cdrom,readonly=on",
                ))
                .arg("-drive")
                .arg(format!("file={},format=raw,if=virtio", wifi_disk.display()))
                .args(["-netdev", &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22")])
                .args(["-device", "virtio-net-pci,netdev=n0"]);
            let log = ctx.logs().join("console-access-iso.log");
            s.note(format!("{}: {c:?}", log.display()));
            let start = Instant::now();
            let fp = crate::guest::console::session(c, &log, |g| {
                g.boot_to_shell(version, "ttyS0", start, Duration::from_secs(600))?;
                let out = g.output();
                for want in [
                    "[*] Using zram swap /dev/zram0:",
                    "[*] Password set for root (passwd=, a crypt hash)",
                    "[*] SSH server started on port 22: key and password logins (root)",
                    "[*] Settings from finnix.conf on /dev/vda",
                ] {
                    ensure!(out.contains(want), "the console lacks {want:?}");
                }
                let peer = Peer::forwarded(port);
                peer.wait_for_sshd(s, Duration::from_secs(240))?;
                let printed = printed_fingerprint(g)?;
                let served = peer.served_fingerprint(s, dir)?;
                ensure!(printed == served, "the console printed the host key {printed}, the server showed {served}");
                let (ok, out) = peer.password_login(s, dir, PASSWORD, "hostname; id -u")?;
                ensure!(
                    ok && out.lines().any(|l| l == "rescue-iso") && out.lines().any(|l| l == "0"),
                    "root's password login (a crypt hash in passwd=) failed or says {out:?}"
                );
                let wifi = crate::checks::wifi::check(g)?;
                g.check_trouble()?;
                Ok(format!("host key {served}; {wifi}"))
            })?;
            Ok(((), Outcome::Passed, format!("a password login over SSH from the ISO ({fp})")))
        },
    )
}

/// The byte offset of the EFI system partition in a GPT disk image (the
/// hybrid ISO's, where a user puts the settings file once it is on a stick).
fn esp_offset(image: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const ESP: [u8; 16] = [
        0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9,
        0x3b,
    ];
    let mut f = fs::File::open(image)?;
    let mut header = [0u8; 92];
    f.seek(SeekFrom::Start(512))?;
    f.read_exact(&mut header)?;
    ensure!(
        &header[..8] == b"EFI PART",
        "{} has no GPT",
        image.display()
    );
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let (entries, count, size) = (
        le64(&header[72..80]),
        le32(&header[80..84]),
        le32(&header[84..88]),
    );
    let mut entry = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(entries * 512))?;
    for _ in 0..count {
        f.read_exact(&mut entry)?;
        if entry[..16] == ESP {
            return Ok(le64(&entry[32..40]) * 512);
        }
    }
    bail!("{} has no EFI system partition", image.display())
}

/// Boot 4: the ISO as the medium (the spec's `ubdar=` line), with
/// `finnix.conf` copied onto its EFI partition as a user does on a stick
/// (mtools, no mount): the stick's partition cannot be mounted while the
/// whole stick is the medium, so the live system reads it through a loop
/// device.
fn esp_boot(ctx: &Ctx, s: &Stage, dir: &Path, live: &Live, version: &str) -> Result<()> {
    let iso = dir.join("stick.iso");
    fs::copy(&live.iso, &iso)?;
    let offset = esp_offset(&iso)?;
    let conf = dir.join("finnix.conf");
    fs::write(&conf, "hostname = from-the-stick\n")?;
    let target = format!("{}@@{offset}", iso.display());
    s.run(crate::cmd!("mcopy", "-i", &target, &conf, "::finnix.conf"))?;
    let log = ctx.logs().join("console-access-4.log");
    let mut g = boot(s, dir, live, &["ubdar=stick.iso"], &log, version)?;
    let r = (|| -> Result<()> {
        let want = "[*] Settings from finnix.conf on /dev/ubda2";
        ensure!(g.output().contains(want), "the console lacks {want:?}");
        let name = g.run("hostname", COMMAND_TIMEOUT)?;
        ensure!(
            name.trim() == "from-the-stick",
            "the host name is {name:?}, not the stick's from-the-stick"
        );
        // No sshd, passwd= or sshkey= anywhere: nothing listens at all.
        let listening = g.run("ss -Hltn; ss -Hltn | wc -l", COMMAND_TIMEOUT)?;
        ensure!(
            listening.lines().last() == Some("0"),
            "without sshd, passwd= or a key something listens on TCP:\n{listening}"
        );
        let (ok, out) = s.output(Peer::in_netns(&g)?.keyscan(5).stderr_to_stdout())?;
        ensure!(
            !out.contains("ssh-"),
            "ssh-keyscan got a host key (ok={ok}): {out}"
        );
        g.check_trouble()
    })();
    let r = r.and_then(|()| shutdown(&mut g));
    fs::remove_file(&iso)?;
    r.with_context(|| {
        format!(
            "{}: boot 4 (finnix.conf on the ISO's EFI partition)",
            log.display()
        )
    })
}

impl crate::cli::CheckAccess {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::{self, RELEASE_STAGES};
        use crate::stages::ensure_tools;
        use crate::support::prereq::Tools;
        let parts: Vec<Part> = if self.part.is_empty() {
            Part::ALL.to_vec()
        } else {
            self.part
                .iter()
                .map(|n| {
                    Part::ALL
                        .into_iter()
                        .find(|p| p.name() == n)
                        .with_context(|| format!("--part {n}: the parts are uml and iso"))
                })
                .collect::<Result<_>>()?
        };
        ensure_tools(ctx, RELEASE_STAGES, &[Tools::Boot, Tools::Access])?;
        let version = &ctx.config.distribution.version;
        // sshd is in the standard profile only.
        for part in parts {
            match part {
                Part::Uml => {
                    let r = pipeline::release(ctx, "standard")?;
                    check(ctx, &Live::of(ctx, &r)?, version)?;
                }
                Part::Iso => {
                    let r = pipeline::release(ctx, "standard")?;
                    check_iso(ctx, &r.iso.image(), version)?;
                }
            }
        }
        Ok(())
    }
}
