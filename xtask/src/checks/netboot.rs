//! check-netboot: the release's network boot files, served by a small HTTP
//! server of this check on the loopback address (qemu's user network
//! reaches it as 10.0.2.2), booted the ways a machine boots them: qemu's
//! iPXE ROM (BIOS) and Debian's `ipxe.efi` under OVMF, DHCP and TFTP from
//! qemu's user network, the release's iPXE script chained over HTTP. To the
//! ready banner with DHCP and with a static `ip=`; then the bad cases, each
//! with its message on the console: a squashfs with one byte changed, a
//! 404, a server killed mid-transfer, a stalled transfer resumed, too
//! little memory.

use fs_err as fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::guest::console::{session, Guest};
use crate::guest::qemu;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome};

const BOOT_TIMEOUT: Duration = Duration::from_secs(900);
const STEP_TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Debian's iPXE for UEFI (package `ipxe`).
pub const IPXE_EFI: &str = "/usr/lib/ipxe/ipxe.efi";
/// The static address of the `ip=` boots, in qemu's user network.
const STATIC_IP: &str = "10.0.2.77::10.0.2.2:24::eth0:off:10.0.2.3";

/// What the server does to the squashfs's next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// One byte changed in the middle.
    Tampered,
    NotFound,
    /// Half the file, then the connection and the server are gone.
    Killed,
    /// Half the file, then nothing for longer than /init waits (once).
    StallOnce,
}

/// One release's network boot files, by name.
pub struct Files {
    pub dir: PathBuf,
    /// The release's ISO (the ISO-file part boots it from a stick).
    pub iso: String,
    pub script: String,
    pub kernel: String,
    pub initrd: String,
    pub squashfs: String,
}

impl Files {
    pub fn of(ctx: &Ctx, profile: &str, dir: &Path) -> Files {
        let n = crate::stages::tarballs::names(ctx, profile);
        Files {
            dir: dir.to_path_buf(),
            iso: n.iso,
            script: n.netboot_ipxe,
            kernel: n.netboot_kernel,
            initrd: n.netboot_initrd,
            squashfs: n.netboot_squashfs,
        }
    }

    /// The `fetchsha256=` the release's script carries.
    fn script_sha256(&self) -> Result<String> {
        let text = fs::read_to_string(self.dir.join(&self.script))?;
        let sha = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("fetchsha256="))
            .context("the iPXE script has no fetchsha256=")?;
        let actual = crate::support::cache::sha256_file(&self.dir.join(&self.squashfs))?;
        ensure!(
            sha == actual,
            "the iPXE script says fetchsha256={sha}, the squashfs is {actual}"
        );
        Ok(sha.to_string())
    }
}

struct ServerState {
    fault: Fault,
    log: Vec<String>,
}

/// A static-file HTTP server on 127.0.0.1 with Range support and faults.
pub struct Server {
    pub port: u16,
    dir: PathBuf,
    squashfs: String,
    state: Arc<Mutex<ServerState>>,
    alive: Arc<AtomicBool>,
}

impl Server {
    pub fn start(files: &Files) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let s = Server {
            port: listener.local_addr()?.port(),
            dir: files.dir.clone(),
            squashfs: files.squashfs.clone(),
            state: Arc::new(Mutex::new(ServerState {
                fault: Fault::None,
                log: Vec::new(),
            })),
            alive: Arc::new(AtomicBool::new(true)),
        };
        s.serve(listener);
        Ok(s)
    }

    fn serve(&self, listener: TcpListener) {
        let (dir, squashfs, state, alive) = (
            self.dir.clone(),
            self.squashfs.clone(),
            self.state.clone(),
            self.alive.clone(),
        );
        let _ = listener.set_nonblocking(true);
        std::thread::spawn(move || {
            while alive.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let kill = handle(conn, &dir, &squashfs, &state);
                        if kill {
                            alive.store(false, Ordering::SeqCst);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            // The listener is dropped here: connections are refused.
        });
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().expect("server state").fault = fault;
    }

    /// The server again, on the same port, after a `Killed` fault.
    pub fn revive(&self) -> Result<()> {
        std::thread::sleep(Duration::from_millis(200));
        let listener = TcpListener::bind(("127.0.0.1", self.port))?;
        self.alive.store(true, Ordering::SeqCst);
        self.serve(listener);
        Ok(())
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().expect("server state").log.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

/// Answer one request; true when the server is to die (`Killed`).
fn handle(conn: TcpStream, dir: &Path, squashfs: &str, state: &Mutex<ServerState>) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let name = path.trim_start_matches('/').to_string();
    let from: u64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range: bytes=")
                .map(String::from)
        })
        .and_then(|r| r.trim().trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let fault = {
        let mut st = state.lock().expect("server state");
        let f = if name == squashfs {
            st.fault
        } else {
            Fault::None
        };
        if f == Fault::StallOnce {
            st.fault = Fault::None;
        }
        f
    };
    let safe = !name.is_empty() && !name.contains('/') && !name.starts_with('.');
    let data = if safe && fault != Fault::NotFound {
        fs::read(dir.join(&name)).ok()
    } else {
        None
    };
    let mut out = &conn;
    let Some(mut data) = data else {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        state
            .lock()
            .expect("server state")
            .log
            .push(format!("GET {path} 404"));
        return false;
    };
    if fault == Fault::Tampered {
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
    }
    let total = data.len() as u64;
    let from = from.min(total);
    let (status, range) = if from > 0 {
        (
            "206 Partial Content",
            format!("Content-Range: bytes {from}-{}/{total}\r\n", total - 1),
        )
    } else {
        ("200 OK", String::new())
    };
    state.lock().expect("server state").log.push(format!(
        "GET {path}{} {} ({fault:?})",
        if from > 0 {
            format!(" from byte {from}")
        } else {
            String::new()
        },
        &status[..3]
    ));
    let body = &data[from as usize..];
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{range}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    match fault {
        Fault::Killed | Fault::StallOnce => {
            let _ = out.write_all(&body[..body.len() / 2]);
            let _ = out.flush();
            if fault == Fault::StallOnce {
                // Longer than /init's stall timeout, the connection open.
                std::thread::sleep(Duration::from_secs(30));
            }
            fault == Fault::Killed
        }
        _ => {
            let _ = out.write_all(body);
            false
        }
    }
}

/// The TFTP directory: `boot.ipxe` chains to the release's script over
/// HTTP, with `finnix-args` set (a menu's way).
fn tftp_dir(work: &Path, port: u16, files: &Files, args: &str) -> Result<PathBuf> {
    let dir = work.join("tftp");
    fs::create_dir_all(&dir)?;
    fs::write(
        dir.join("boot.ipxe"),
        format!(
            "#!ipxe\nset finnix-base http://10.0.2.2:{port}/\nset finnix-args {args}\nchain ${{finnix-base}}{}\n",
            files.script
        ),
    )?;
    Ok(dir)
}

/// A FAT disk whose `EFI/BOOT/BOOTX64.EFI` is Debian's ipxe.efi.
fn ipxe_efi_disk(work: &Path) -> Result<PathBuf> {
    let img = work.join("ipxe-efi.img");
    crate::cmd!("mkfs.fat", "-C", "-i", "12345678", &img, "8192").output()?;
    crate::cmd!("mmd", "-i", &img, "::/EFI", "::/EFI/BOOT").output()?;
    crate::cmd!("mcopy", "-i", &img, IPXE_EFI, "::/EFI/BOOT/BOOTX64.EFI").output()?;
    Ok(img)
}

/// How a boot reaches Finnix.
pub enum Way<'a> {
    /// qemu's iPXE ROM on `card` (a qemu network device; SeaBIOS), DHCP
    /// and TFTP. The card's driver must be in the initramfs too.
    IpxeBios { tftp: &'a Path, card: &'a str },
    /// OVMF starting Debian's ipxe.efi from a disk, then DHCP and TFTP.
    IpxeUefi { tftp: &'a Path, disk: &'a Path },
    /// The kernel and initramfs given to qemu, the boot line as written.
    Direct { files: &'a Files, append: String },
}

fn qemu_for(way: &Way, memory: u32) -> std::process::Command {
    let mut c = qemu::command("pc", memory);
    match way {
        Way::IpxeBios { tftp, card } => {
            c.args([
                "-netdev",
                &format!("user,id=n0,tftp={},bootfile=boot.ipxe", tftp.display()),
            ])
            .args(["-device", &format!("{card},netdev=n0"), "-boot", "n"]);
        }
        Way::IpxeUefi { tftp, disk } => {
            c.args(["-bios", qemu::OVMF])
                .args([
                    "-netdev",
                    &format!("user,id=n0,tftp={},bootfile=boot.ipxe", tftp.display()),
                ])
                .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
                .arg("-drive")
                .arg(format!(
                    "if=none,id=d0,format=raw,readonly=on,file={}",
                    disk.display()
                ))
                .args(["-device", "virtio-blk-pci,drive=d0,bootindex=0"]);
        }
        Way::Direct { files, append } => {
            c.args([
                "-netdev",
                "user,id=n0",
                "-device",
                "virtio-net-pci,netdev=n0",
            ])
            .arg("-kernel")
            .arg(files.dir.join(&files.kernel))
            .arg("-initrd")
            .arg(files.dir.join(&files.initrd))
            .args(["-append", append]);
        }
    }
    c
}

/// Boot to the ready banner and check what the live system says of its
/// boot: the medium is the URL, the network as configured.
fn boot_ok(ctx: &Ctx, name: &str, way: &Way, version: &str, want_static: bool) -> Result<String> {
    let log = ctx.logs().join(format!("console-netboot-{name}.log"));
    session(qemu_for(way, qemu::MIB), &log, |g| {
        let start = Instant::now();
        let (banner, _, text) = g.boot_to_shell(version, "ttyS0", start, BOOT_TIMEOUT)?;
        ensure!(
            text.contains("sha256 matches fetchsha256="),
            "no verified download on the console"
        );
        let env = g.run("cat /run/finnix/boot.env", COMMAND_TIMEOUT)?;
        ensure!(
            env.contains("FINNIX_MEDIUM=http://10.0.2.2:"),
            "boot.env names no URL: {env}"
        );
        let net = g.run(
            "cat /run/finnix/network; ip -4 addr show eth0",
            COMMAND_TIMEOUT,
        )?;
        if want_static {
            ensure!(
                net.contains("eth0 static 10.0.2.77/24") && net.contains("inet 10.0.2.77/24"),
                "no static address: {net}"
            );
            ensure!(
                text.contains("Keeping the static address of eth0"),
                "the live system did not keep ip="
            );
        } else {
            ensure!(
                net.contains("eth0 dhcp 10.0.2.15/24"),
                "no DHCP lease from the initramfs: {net}"
            );
        }
        g.check_trouble()?;
        Ok(format!(
            "ready banner at {banner:.0} s ({})",
            if want_static { "static ip=" } else { "DHCP" }
        ))
    })
}

/// Wait for a failure report holding every one of `says`, then leave the
/// emergency shell so that /init tries again.
fn expect_refusal(g: &mut Guest, what: &str, says: &[&str]) -> Result<String> {
    let text = g
        .expect("Emergency shell (busybox)", STEP_TIMEOUT)
        .with_context(|| format!("{what}: no failure report"))?;
    for s in says {
        ensure!(
            text.contains(s),
            "{what}: the report lacks {s:?}:\n{}",
            tail(&text, 12)
        );
    }
    g.expect("(finnix-initrd) # ", COMMAND_TIMEOUT)?;
    g.send("exit\n")?;
    Ok(format!("{what}: refused, {:?}", says[0]))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The bad cases in one boot: /init tries again after each emergency shell,
/// and the server changes what it does in between.
fn faults(ctx: &Ctx, files: &Files, server: &Server, version: &str) -> Result<Vec<String>> {
    let sha = files.script_sha256()?;
    let url = format!("http://10.0.2.2:{}/{}", server.port, files.squashfs);
    let append = format!("fetch={url} fetchsha256={sha} console=ttyS0,115200");
    let log = ctx.logs().join("console-netboot-faults.log");
    server.set_fault(Fault::Tampered);
    let cmd = qemu_for(&Way::Direct { files, append }, qemu::MIB);
    session(cmd, &log, |g| {
        let start = Instant::now();
        let mut said = Vec::new();
        said.push(expect_refusal(
            g,
            "one byte changed",
            &["sha256 mismatch", &url, &sha],
        )?);
        server.set_fault(Fault::NotFound);
        said.push(expect_refusal(g, "404", &["answered 404", &url])?);
        server.set_fault(Fault::Killed);
        said.push(expect_refusal(
            g,
            "server killed mid-transfer",
            &[
                "gave up after",
                "connection closed at",
                "Connection refused",
            ],
        )?);
        server.revive()?;
        server.set_fault(Fault::StallOnce);
        let (_, _, text) = g.boot_to_shell(version, "ttyS0", start, BOOT_TIMEOUT)?;
        ensure!(
            text.contains("no data for 20 s"),
            "the stall was not reported:\n{}",
            tail(&text, 20)
        );
        ensure!(
            text.contains("sha256 matches"),
            "the resumed download was not verified"
        );
        said.push("a stalled transfer: resumed (Range), verified, booted".into());
        Ok(said)
    })
}

/// Too little memory for the standard squashfs: said before the download.
fn too_little_ram(ctx: &Ctx, files: &Files, server: &Server) -> Result<String> {
    let sha = files.script_sha256()?;
    let append = format!(
        "fetch=http://10.0.2.2:{}/{} fetchsha256={sha} console=ttyS0,115200",
        server.port, files.squashfs
    );
    let log = ctx.logs().join("console-netboot-ram.log");
    session(qemu_for(&Way::Direct { files, append }, 384), &log, |g| {
        let said = expect_refusal(
            g,
            "384 MiB of memory",
            &["not enough memory", "MiB needed", "MiB available"],
        )?;
        // /init says how much it is receiving only once memory allows it.
        ensure!(
            !g.output().contains("to receive"),
            "the squashfs was downloaded anyway"
        );
        Ok(said)
    })
}

/// Which parts of the check to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Bios,
    Uefi,
    Static,
    Faults,
    /// The ISO as a file on a stick (`checks::isofile`).
    IsoFile,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Bios,
        Part::Uefi,
        Part::Static,
        Part::Faults,
        Part::IsoFile,
    ];
    pub fn from_name(name: &str) -> Result<Part> {
        Part::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .with_context(|| {
                format!(
                    "no netboot part {name:?}: the parts are bios, uefi, static, faults, isofile"
                )
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Part::Bios => "bios",
            Part::Uefi => "uefi",
            Part::Static => "static",
            Part::Faults => "faults",
            Part::IsoFile => "isofile",
        }
    }
}

/// One part: `mini` the mini release's dist directory, `standard` the
/// standard one's (its squashfs is the too-large one of the memory case).
pub fn check(ctx: &Ctx, part: Part, mini: &Files, standard: &Files, version: &str) -> Result<()> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Netboot], &ctx.logs())?;
    if part == Part::IsoFile {
        let (iso, kernel, initrd) = (
            mini.dir.join(&mini.iso),
            mini.dir.join(&mini.kernel),
            mini.dir.join(&mini.initrd),
        );
        let boot = crate::checks::isofile::Boot {
            iso: &iso,
            kernel: &kernel,
            initrd: &initrd,
        };
        return crate::checks::isofile::check(ctx, &boot, version);
    }
    let what = match part {
        Part::Bios => {
            "iPXE (qemu's ROM, BIOS, e1000e): DHCP, TFTP, the release's script over HTTP, to the banner"
        }
        Part::Uefi => {
            "Debian's ipxe.efi under OVMF (virtio-net): DHCP, TFTP, the script over HTTP, to the banner"
        }
        Part::Static => {
            "iPXE (BIOS, rtl8139) with a static ip= (netmask as a prefix) to the banner"
        }
        Part::Faults => "a changed byte, a 404, a killed server, a stall, too little memory",
        Part::IsoFile => "",
    };
    ui::stage(
        &ctx.logs(),
        &format!("check-netboot-{}", part.name()),
        what,
        |s| {
            let work = ctx
                .cache
                .temp_dir(&format!("check-netboot-{}", part.name()))?;
            let server = Server::start(mini)?;
            let said = match part {
                Part::Bios | Part::Static => {
                    let args = if part == Part::Static {
                        format!("ip={STATIC_IP}")
                    } else {
                        String::new()
                    };
                    let tftp = tftp_dir(work.path(), server.port, mini, &args)?;
                    // Cards other than the UEFI part's virtio-net: their
                    // drivers in the initramfs are proven too.
                    let card = if part == Part::Static {
                        "rtl8139"
                    } else {
                        "e1000e"
                    };
                    vec![boot_ok(
                        ctx,
                        part.name(),
                        &Way::IpxeBios { tftp: &tftp, card },
                        version,
                        part == Part::Static,
                    )?]
                }
                Part::Uefi => {
                    let tftp = tftp_dir(work.path(), server.port, mini, "")?;
                    let disk = ipxe_efi_disk(work.path())?;
                    vec![boot_ok(
                        ctx,
                        "uefi",
                        &Way::IpxeUefi {
                            tftp: &tftp,
                            disk: &disk,
                        },
                        version,
                        false,
                    )?]
                }
                Part::Faults | Part::IsoFile => {
                    let mut said = faults(ctx, mini, &server, version)?;
                    let big = Server::start(standard)?;
                    said.push(too_little_ram(ctx, standard, &big)?);
                    said
                }
            };
            s.note(format!("requests served:\n{}", server.log().join("\n")));
            if said.is_empty() {
                bail!("nothing checked");
            }
            Ok(((), Outcome::Passed, said.join("; ")))
        },
    )
}

impl crate::cli::CheckNetboot {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::RELEASE_STAGES;
        let parts = match self.part.is_empty() {
            true => Part::ALL.to_vec(),
            false => self
                .part
                .iter()
                .map(|p| Part::from_name(p))
                .collect::<Result<_>>()?,
        };
        crate::stages::ensure_tools(
            ctx,
            RELEASE_STAGES,
            &[crate::support::prereq::Tools::Netboot],
        )?;
        let dirs = [("mini", "test-dist"), ("standard", "test-dist-standard")];
        let mut files = Vec::new();
        for (profile, dir) in dirs {
            let dir = ctx.cache.root.join(dir);
            crate::release::dist::dist(ctx, profile, &dir)?;
            files.push(Files::of(ctx, profile, &dir));
        }
        let version = &ctx.config.distribution.version;
        let failed: Vec<String> = parts
            .into_iter()
            .filter_map(|p| {
                check(ctx, p, &files[0], &files[1], version)
                    .err()
                    .map(|e| format!("{}: {e:#}", p.name()))
            })
            .collect();
        ensure!(
            failed.is_empty(),
            "check-netboot failed:\n{}",
            failed.join("\n")
        );
        Ok(())
    }
}

/// Whether a read of `n` bytes from `r` ends early (for the tests).
#[cfg(test)]
fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(port: u16, path: &str, range: Option<u64>) -> Vec<u8> {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let r = range
            .map(|f| format!("Range: bytes={f}-\r\n"))
            .unwrap_or_default();
        write!(c, "GET /{path} HTTP/1.1\r\nHost: x\r\n{r}\r\n").unwrap();
        read_all(c)
    }

    #[test]
    fn the_server_serves_ranges_and_plants_its_faults() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f.squashfs"), b"0123456789").unwrap();
        let files = Files {
            dir: dir.path().to_path_buf(),
            iso: "f.iso".into(),
            script: "s.ipxe".into(),
            kernel: "k".into(),
            initrd: "i".into(),
            squashfs: "f.squashfs".into(),
        };
        let s = Server::start(&files).unwrap();
        let whole = String::from_utf8(get(s.port, "f.squashfs", None)).unwrap();
        assert!(whole.starts_with("HTTP/1.1 200") && whole.ends_with("\r\n\r\n0123456789"));
        let part = String::from_utf8(get(s.port, "f.squashfs", Some(7))).unwrap();
        assert!(part.contains("206") && part.contains("bytes 7-9/10") && part.ends_with("789"));
        assert!(String::from_utf8(get(s.port, "../etc/passwd", None))
            .unwrap()
            .contains("404"));
        s.set_fault(Fault::Tampered);
        let bad = get(s.port, "f.squashfs", None);
        assert!(bad.ends_with(b"\r\n\r\n0123446789"), "{bad:?}");
        s.set_fault(Fault::Killed);
        let half = String::from_utf8(get(s.port, "f.squashfs", None)).unwrap();
        assert!(half.ends_with("\r\n\r\n01234"));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            TcpStream::connect(("127.0.0.1", s.port)).is_err(),
            "killed means refused"
        );
        s.revive().unwrap();
        s.set_fault(Fault::None);
        assert!(String::from_utf8(get(s.port, "f.squashfs", None))
            .unwrap()
            .ends_with("0123456789"));
    }
}
