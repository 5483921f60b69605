//! `cargo xtask check-hardware`: the hardware matrix
//! (`configs/hardware/matrix.toml`). qemu emulates many storage controllers
//! and network cards that Debian's kernel drives with its modules; the ISO
//! must boot behind each controller, and the live system must get a lease
//! on each card.
//!
//! Every boot starts the ISO's own kernel and initramfs the way its boot
//! menu's default entry does (the APPEND line read from the ISO's
//! isolinux.cfg), with the serial port as the only console a check reads:
//! so the matrix also proves that a serial-only machine sees the boot with
//! the default entry. Storage rows boot the mini ISO (the initramfs, which
//! finds the medium, is the same in every profile) with the medium behind
//! that controller alone; network rows boot the standard ISO, whose udev
//! loads the card drivers, a few cards per boot, each card on a qemu user
//! network of its own (10.0.N.0/24) so that each lease is told apart. A
//! card passes when it has its lease and an HTTP request bound to it
//! reaches a server this check runs on the host's loopback (qemu's user
//! network maps its gateway 10.0.N.2 to the host). Boots run side by side,
//! one per core.

use fs_err as fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

use crate::guest::console::Guest;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome};

pub const MATRIX: &str = "configs/hardware/matrix.toml";
/// Network cards per boot: each is a PCI device and a user network.
const CARDS_PER_BOOT: usize = 5;
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a card may take to get its lease after the banner.
const LEASE_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub storage: Vec<StorageRow>,
    pub network: Vec<NetworkRow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageRow {
    pub name: String,
    pub what: String,
    /// qemu's `-machine`.
    pub machine: String,
    /// `-device` arguments before the medium's.
    pub controller: Vec<String>,
    /// The `-device` the ISO is attached as (`drive=medium` is appended).
    pub medium: String,
    /// Where the initramfs must find it.
    pub found: String,
    /// The medium's size must be a power of two (an SD card).
    #[serde(default)]
    pub pow2: bool,
    /// Console lines this emulated controller makes the kernel print that
    /// read as errors and are not (each explained in the matrix).
    #[serde(default)]
    pub allowed: Vec<Allowed>,
    /// Why this row is not run (an emulation that cannot do it): shown in
    /// the table as not run, with the reason.
    #[serde(default)]
    pub skip: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowed {
    pub line: String,
    pub why: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRow {
    pub name: String,
    pub what: String,
    /// qemu's `-device` model.
    pub device: String,
}

impl StorageRow {
    /// The qemu device models the row needs.
    fn models(&self) -> Vec<&str> {
        self.controller
            .iter()
            .chain(std::iter::once(&self.medium))
            .map(|d| d.split(',').next().unwrap_or(""))
            .collect()
    }

    fn is_cd(&self) -> bool {
        self.medium.starts_with("scsi-cd") || self.medium.starts_with("ide-cd")
    }
}

pub fn parse(text: &str) -> Result<Matrix, String> {
    let m: Matrix = toml::from_str(text).map_err(|e| format!("{MATRIX}: {e}"))?;
    let mut names = std::collections::BTreeSet::new();
    for n in m
        .storage
        .iter()
        .map(|r| &r.name)
        .chain(m.network.iter().map(|r| &r.name))
    {
        if !names.insert(n.clone()) {
            return Err(format!("{MATRIX}: the name {n:?} is used twice"));
        }
    }
    for r in &m.storage {
        if let Some(a) = r
            .allowed
            .iter()
            .find(|a| a.why.trim().is_empty() || a.line.trim().is_empty())
        {
            return Err(format!(
                "{MATRIX}: {}: an allowed line needs its text and why it is not trouble ({:?})",
                r.name, a.line
            ));
        }
        if !r.found.starts_with("/dev/") {
            return Err(format!(
                "{MATRIX}: {}: found = {:?} is not a /dev path",
                r.name, r.found
            ));
        }
    }
    Ok(m)
}

pub fn load(root: &Path) -> Result<Matrix> {
    let text = fs::read_to_string(root.join(MATRIX))?;
    parse(&text).map_err(anyhow::Error::msg)
}

/// The kernel, initramfs and default command line of an ISO's boot menu.
pub struct IsoBoot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
}

/// The `APPEND` of isolinux.cfg's `DEFAULT` entry.
pub fn default_append(isolinux_cfg: &str) -> Option<String> {
    let default = isolinux_cfg.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()?.eq_ignore_ascii_case("DEFAULT")).then(|| w.next().map(String::from))?
    })?;
    let mut in_entry = false;
    for l in isolinux_cfg.lines() {
        let t = l.trim();
        let mut w = t.splitn(2, char::is_whitespace);
        let key = w.next().unwrap_or("").to_ascii_uppercase();
        let rest = w.next().unwrap_or("").trim();
        match key.as_str() {
            "LABEL" => in_entry = rest == default,
            "APPEND" if in_entry => return Some(rest.to_string()),
            _ => {}
        }
    }
    None
}

/// Take the boot menu's kernel, initramfs and default entry out of `iso`.
pub fn iso_boot(s: &ui::Stage, iso: &Path, dir: &Path) -> Result<IsoBoot> {
    fs::create_dir_all(dir)?;
    let (kernel, initrd, cfg) = (
        dir.join("vmlinuz"),
        dir.join("initrd.img"),
        dir.join("isolinux.cfg"),
    );
    s.run(crate::cmd!(
        "xorriso",
        "-osirrox",
        "on",
        "-indev",
        iso,
        "-extract",
        "/boot/vmlinuz",
        &kernel,
        "-extract",
        "/boot/initrd.img",
        &initrd,
        "-extract",
        "/isolinux/isolinux.cfg",
        &cfg
    ))?;
    let append = default_append(&fs::read_to_string(&cfg)?)
        .with_context(|| format!("{}'s isolinux.cfg has no default entry", iso.display()))?;
    Ok(IsoBoot {
        kernel,
        initrd,
        append,
    })
}

/// The device models this qemu has (`-device help`).
fn qemu_models() -> Result<Vec<String>> {
    let out = crate::cmd!("qemu-system-x86_64", "-device", "help").output()?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name \""))
        .filter_map(|l| l.split('"').next())
        .map(String::from)
        .collect())
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: &'static str,
    pub name: String,
    pub what: String,
    /// "ok", "FAILED: ...", or why it did not run.
    pub result: String,
    pub secs: Option<f64>,
    pub detail: String,
    pub log: PathBuf,
}

impl Row {
    /// Fill in a row's outcome: its time and detail, or its failure (the
    /// whole error in the stage log, its first line in the table).
    fn record(&mut self, s: &ui::Stage, outcome: Result<(f64, String)>) {
        match outcome {
            Ok((secs, detail)) => {
                self.result = "ok".into();
                self.secs = Some(secs);
                self.detail = detail;
            }
            Err(e) => {
                s.note(format!("{}: {e:#}", self.name));
                let first = format!("{e:#}").lines().next().unwrap_or("").to_string();
                self.result = format!("FAILED: {first}");
            }
        }
    }

    fn ok(&self) -> bool {
        self.result == "ok"
    }
}

fn qemu_base(b: &IsoBoot, machine: &str) -> Command {
    let mut c = crate::guest::qemu::command(machine, crate::guest::qemu::MIB);
    c.arg("-kernel")
        .arg(&b.kernel)
        .arg("-initrd")
        .arg(&b.initrd)
        .arg("-append")
        .arg(&b.append);
    c
}

/// The medium as the row attaches it: the ISO read-only for a CD, a
/// throwaway overlay for a disk (snapshot), a power-of-two overlay for an
/// SD card.
fn storage_command(
    s: &ui::Stage,
    row: &StorageRow,
    b: &IsoBoot,
    iso: &Path,
    work: &Path,
) -> Result<Command> {
    let mut c = qemu_base(b, &row.machine);
    let drive = if row.pow2 {
        let size = fs::metadata(iso)?.len().next_power_of_two();
        let card = work.join(format!("{}.qcow2", row.name));
        s.run(crate::cmd!(
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            iso,
            &card,
            size.to_string()
        ))?;
        // Its backing file is the ISO: no lock on it (qemu::iso_drive).
        format!(
            "file={},format=qcow2,if=none,id=medium,snapshot=on,backing.file.locking=off",
            card.display()
        )
    } else if row.is_cd() {
        crate::guest::qemu::iso_drive(iso, "if=none,id=medium,media=cdrom,readonly=on")
    } else {
        crate::guest::qemu::iso_drive(iso, "if=none,id=medium,snapshot=on")
    };
    c.arg("-drive").arg(drive);
    for d in &row.controller {
        c.args(["-device", d]);
    }
    c.args(["-device", &format!("{},drive=medium", row.medium)]);
    Ok(c)
}

fn storage_boot(
    ctx: &Ctx,
    s: &ui::Stage,
    row: &StorageRow,
    b: &IsoBoot,
    iso: &Path,
    version: &str,
    work: &Path,
) -> Row {
    let log = ctx.logs().join(format!("console-hw-{}.log", row.name));
    let mut out = Row {
        kind: "storage",
        name: row.name.clone(),
        what: row.what.clone(),
        result: String::new(),
        secs: None,
        detail: String::new(),
        log: log.clone(),
    };
    let r = (|| -> Result<(f64, String)> {
        let cmd = storage_command(s, row, b, iso, work)?;
        let mut g = Guest::start(cmd, &log)?;
        let start = Instant::now();
        let res = (|| {
            let (banner, _, _) = g.boot_to_shell(version, "ttyS0", start, BOOT_TIMEOUT)?;
            let medium = g.run(
                &format!(
                    ". {}; echo ${}",
                    finnix_contract::boot_env::PATH,
                    finnix_contract::boot_env::MEDIUM
                ),
                COMMAND_TIMEOUT,
            )?;
            ensure!(
                medium.trim() == row.found,
                "the medium was found on {:?}, expected {}",
                medium.trim(),
                row.found
            );
            g.check_dmesg()?;
            let allowed: Vec<String> = row.allowed.iter().map(|a| a.line.clone()).collect();
            g.check_trouble_allowing(&allowed)?;
            Ok((banner, format!("medium on {}", row.found)))
        })();
        g.kill();
        res.map_err(|e| anyhow::anyhow!("{e:#}\nlast console lines:\n{}", g.tail(15)))
    })();
    out.record(s, r);
    out
}

/// Bad input: the ISO's kernel and initramfs with the default entry (plus
/// `rootwait=5`) and no medium anywhere. The initramfs's report (what it
/// looked for, on which devices, what to do) and its emergency shell must
/// reach the serial port, which is not /dev/console with that entry.
fn no_medium_boot(ctx: &Ctx, b: &IsoBoot) -> Row {
    let log = ctx.logs().join("console-hw-no-medium.log");
    let mut row = Row {
        kind: "storage",
        name: "no-medium".into(),
        what: "bad input: no medium at all; the report on the serial port".into(),
        result: String::new(),
        secs: None,
        detail: String::new(),
        log: log.clone(),
    };
    let r = (|| -> Result<f64> {
        let mut c = qemu_base(
            &IsoBoot {
                kernel: b.kernel.clone(),
                initrd: b.initrd.clone(),
                append: format!("{} rootwait=5", b.append),
            },
            "pc",
        );
        c.arg("-nodefaults");
        let mut g = Guest::start(c, &log)?;
        let start = Instant::now();
        let res = (|| {
            let text = g.expect("Emergency shell (busybox)", BOOT_TIMEOUT)?;
            for want in [
                "finnix-init: finding the Finnix medium failed:",
                "looked for an ISO9660 medium holding FINNIX/FINNIX for 5 s",
                "no block devices named",
                "give the medium to the machine, or name it with root=/dev/<device>",
            ] {
                ensure!(text.contains(want), "the serial console lacks {want:?}");
            }
            // The emergency shell answers on the serial port too.
            g.expect("(finnix-initrd) # ", COMMAND_TIMEOUT)?;
            let out = g.run("echo serial-shell-$((6*7))", COMMAND_TIMEOUT)?;
            ensure!(
                out.contains("serial-shell-42"),
                "no shell on the serial port: {out:?}"
            );
            Ok(start.elapsed().as_secs_f64())
        })();
        g.kill();
        res.map_err(|e| anyhow::anyhow!("{e:#}\nlast console lines:\n{}", g.tail(15)))
    })();
    match r {
        Ok(secs) => {
            row.result = "ok".into();
            row.secs = Some(secs);
            row.detail = "report and emergency shell on ttyS0".into();
        }
        Err(e) => {
            row.result = format!("FAILED: {}", format!("{e:#}").lines().next().unwrap_or(""));
        }
    }
    row
}

/// The host side of the network rows: answers `GET /<card>` with
/// `finnix-hardware <card>`, until dropped.
struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    fn start() -> Result<TokenServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                let body = format!("finnix-hardware {path}\n");
                let _ = write!(
                    conn,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(TokenServer { port, stop })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A card's MAC address in its boot: 52:54:00:fe:<boot>:<card>.
fn mac(boot: usize, card: usize) -> String {
    format!("52:54:00:fe:{boot:02x}:{card:02x}")
}

/// What a network boot boots, and where its requests go.
struct NetTarget<'a> {
    boot: &'a IsoBoot,
    iso: &'a Path,
    version: &'a str,
    /// The host's token server.
    port: u16,
}

fn network_boot(
    ctx: &Ctx,
    s: &ui::Stage,
    index: usize,
    cards: &[NetworkRow],
    t: &NetTarget,
) -> Vec<Row> {
    let (b, iso, version, port) = (t.boot, t.iso, t.version, t.port);
    let log = ctx.logs().join(format!("console-hw-net{index}.log"));
    let mut rows: Vec<Row> = cards
        .iter()
        .map(|c| Row {
            kind: "network",
            name: c.name.clone(),
            what: c.what.clone(),
            result: String::new(),
            secs: None,
            detail: String::new(),
            log: log.clone(),
        })
        .collect();
    let mut c = qemu_base(b, "pc");
    c.arg("-drive").arg(crate::guest::qemu::iso_drive(
        iso,
        "if=none,id=medium,media=cdrom,readonly=on",
    ));
    c.args(["-device", "ide-cd,drive=medium,bus=ide.1"]);
    for (i, card) in cards.iter().enumerate() {
        c.args([
            "-netdev",
            &format!("user,id=n{i},net=10.0.{}.0/24", i + 10),
            "-device",
            &format!("{},netdev=n{i},mac={}", card.device, mac(index, i)),
        ]);
    }
    let result = (|| -> Result<Vec<Result<(f64, String)>>> {
        let mut g = Guest::start(c, &log)?;
        let start = Instant::now();
        let res = (|| -> Result<Vec<Result<(f64, String)>>> {
            g.boot_to_shell(version, "ttyS0", start, BOOT_TIMEOUT)?;
            let mut out = Vec::new();
            for (i, _) in cards.iter().enumerate() {
                out.push(card_check(&mut g, index, i, port, start));
            }
            let routes = g.run("ip -4 route show default", COMMAND_TIMEOUT)?;
            s.note(format!("boot {index}: default routes:\n{routes}"));
            ensure!(
                routes.contains("default via 10.0."),
                "no default route from any card's lease: {routes:?}"
            );
            g.check_dmesg()?;
            g.check_trouble()?;
            Ok(out)
        })();
        g.kill();
        res.map_err(|e| anyhow::anyhow!("{e:#}\nlast console lines:\n{}", g.tail(15)))
    })();
    match result {
        Ok(per_card) => {
            for (row, r) in rows.iter_mut().zip(per_card) {
                row.record(s, r);
            }
        }
        Err(e) => {
            s.note(format!("network boot {index}: {e:#}"));
            let first = format!("{e:#}").lines().next().unwrap_or("").to_string();
            for row in rows.iter_mut() {
                row.result = format!("FAILED: {first}");
            }
        }
    }
    rows
}

/// One card: its interface (by MAC), its lease on 10.0.N.0/24 (waited
/// for), and a request bound to it reaching the host through its gateway.
fn card_check(
    g: &mut Guest,
    boot: usize,
    i: usize,
    port: u16,
    start: Instant,
) -> Result<(f64, String)> {
    let net = format!("10.0.{}", i + 10);
    let want_mac = mac(boot, i);
    let iface = g.run(
        &format!("grep -l '^{want_mac}$' /sys/class/net/*/address | cut -d/ -f5"),
        COMMAND_TIMEOUT,
    )?;
    let iface = iface.trim().to_string();
    ensure!(
        !iface.is_empty() && !iface.contains('\n'),
        "no interface with the card's address {want_mac} (its driver did not load?)"
    );
    let deadline = Instant::now() + LEASE_TIMEOUT;
    let addr = loop {
        let a = g.run(
            &format!("ip -4 -o addr show dev {iface} | awk '{{print $4}}'"),
            COMMAND_TIMEOUT,
        )?;
        if a.starts_with(&format!("{net}.")) {
            break a.trim().to_string();
        }
        if Instant::now() >= deadline {
            let log = g.run(
                &format!("cat /run/finnix/dhcp-{iface}.log"),
                COMMAND_TIMEOUT,
            )?;
            bail!(
                "{iface} has no lease on {net}.0/24 after {} s (address {a:?}); dhclient: {log}",
                LEASE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let leased = start.elapsed().as_secs_f64();
    let reply = g.run(
        &format!("curl -sS --max-time 20 --interface {iface} http://{net}.2:{port}/card{i}"),
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        reply.trim() == format!("finnix-hardware card{i}"),
        "a request through {iface} to the host ({net}.2:{port}) got {reply:?}"
    );
    Ok((
        leased,
        format!("{iface} {addr}, HTTP to the host through it"),
    ))
}

/// What check-hardware runs: one boot per storage row, one per group of
/// cards, the boot without a medium; and the rows this qemu cannot run.
enum Job<'a> {
    Storage(&'a StorageRow),
    Network(usize, Vec<NetworkRow>),
    NoMedium,
    Missing(Row),
}

/// A row not run, and why.
fn not_run(kind: &'static str, name: &str, what: &str, why: String) -> Row {
    Row {
        kind,
        name: name.to_string(),
        what: what.to_string(),
        result: format!("not run: {why}"),
        secs: None,
        detail: String::new(),
        log: PathBuf::new(),
    }
}

/// The jobs for the rows `only` names (all when empty), the slow network
/// boots first so the cores stay busy.
fn plan<'a>(
    matrix: &'a Matrix,
    models: &[String],
    qemu_version: &str,
    only: &[String],
) -> Vec<Job<'a>> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut jobs = Vec::new();
    if wanted("no-medium") {
        jobs.push(Job::NoMedium);
    }
    for row in matrix.storage.iter().filter(|r| wanted(&r.name)) {
        if let Some(why) = &row.skip {
            jobs.push(Job::Missing(not_run(
                "storage",
                &row.name,
                &row.what,
                why.clone(),
            )));
            continue;
        }
        match row
            .models()
            .into_iter()
            .find(|m| !models.iter().any(|x| x == m))
        {
            None => jobs.push(Job::Storage(row)),
            Some(m) => jobs.push(Job::Missing(not_run(
                "storage",
                &row.name,
                &row.what,
                format!("{qemu_version} does not emulate {m}"),
            ))),
        }
    }
    let mut cards = Vec::new();
    for card in matrix.network.iter().filter(|r| wanted(&r.name)) {
        if models.contains(&card.device) {
            cards.push(card.clone());
        } else {
            jobs.push(Job::Missing(not_run(
                "network",
                &card.name,
                &card.what,
                format!("{qemu_version} does not emulate {}", card.device),
            )));
        }
    }
    for (i, group) in cards.chunks(CARDS_PER_BOOT).enumerate() {
        jobs.push(Job::Network(i, group.to_vec()));
    }
    jobs.sort_by_key(|j| match j {
        Job::Network(..) => 0,
        Job::Storage(_) | Job::NoMedium => 1,
        Job::Missing(_) => 2,
    });
    jobs
}

/// The matrix: every storage row on `mini_iso`, the network rows on
/// `standard_iso`, side by side; a table; fails if any row failed.
pub fn check(
    ctx: &Ctx,
    mini_iso: &Path,
    standard_iso: &Path,
    version: &str,
    only: &[String],
) -> Result<()> {
    let matrix = load(&ctx.root)?;
    let models = qemu_models()?;
    let qemu_version = crate::support::context::tool_version("qemu-system-x86_64");
    let rows = ui::stage(
        &ctx.logs(),
        "check-hardware",
        format!(
            "the hardware matrix ({MATRIX}): {} storage controllers, {} network cards, {} at a time",
            matrix.storage.len(),
            matrix.network.len(),
            crate::support::parallel::guest_workers(ctx.jobs)
        ),
        |s| {
            let work = ctx.cache.temp_dir("check-hardware")?;
            let mini = iso_boot(s, mini_iso, &work.path().join("mini"))?;
            let standard = iso_boot(s, standard_iso, &work.path().join("standard"))?;
            s.note(format!("default entry: {}", mini.append));
            let server = TokenServer::start()?;
            let jobs = plan(&matrix, &models, &qemu_version, only);
            let results = crate::support::parallel::map(&jobs, crate::support::parallel::guest_workers(ctx.jobs), |job| match job {
                Job::Storage(row) => vec![storage_boot(ctx, s, row, &mini, mini_iso, version, work.path())],
                Job::Network(i, group) => network_boot(
                    ctx,
                    s,
                    *i,
                    group,
                    &NetTarget { boot: &standard, iso: standard_iso, version, port: server.port },
                ),
                Job::NoMedium => vec![no_medium_boot(ctx, &mini)],
                Job::Missing(row) => vec![row.clone()],
            });
            drop(server);
            let mut rows: Vec<Row> = results.into_iter().flatten().collect();
            let order = |r: &Row| {
                matrix
                    .storage
                    .iter()
                    .map(|x| x.name.as_str())
                    .chain(["no-medium"])
                    .chain(matrix.network.iter().map(|x| x.name.as_str()))
                    .position(|n| n == r.name)
            };
            rows.sort_by_key(order);
            let table = table(&rows);
            s.note(&table);
            print!("{table}");
            let failed: Vec<&Row> = rows.iter().filter(|r| r.result.starts_with("FAILED")).collect();
            let ran = rows.iter().filter(|r| r.ok()).count();
            let not_run = rows.iter().filter(|r| r.result.starts_with("not run")).count();
            if !failed.is_empty() {
                let list: Vec<String> = failed
                    .iter()
                    .map(|r| format!("{}: {} (console {})", r.name, r.result, ui::display_path(&r.log)))
                    .collect();
                bail!("{} of {} hardware rows failed:\n{}", failed.len(), rows.len(), list.join("\n"));
            }
            Ok((rows, Outcome::Passed, format!("{ran} rows passed{}", if not_run > 0 { format!(", {not_run} not emulated by this qemu") } else { String::new() })))
        },
    )?;
    let _ = rows;
    Ok(())
}

pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<8} {:<14} {:<8} {:>8}  {}\n",
        "kind", "hardware", "result", "secs", "detail (driver)"
    );
    for r in rows {
        let result = if r.ok() {
            "ok"
        } else if r.result.starts_with("not run") {
            "not run"
        } else {
            "FAILED"
        };
        let secs = r
            .secs
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "-".into());
        let detail = if r.ok() {
            format!("{} ({})", r.detail, r.what)
        } else {
            format!("{} ({})", r.result, r.what)
        };
        out.push_str(&format!(
            "{:<8} {:<14} {:<8} {:>8}  {}\n",
            r.kind, r.name, result, secs, detail
        ));
    }
    out.push_str(
        "secs: storage to the ready banner, network to the card's lease; qemu without KVM (TCG)\n",
    );
    out
}

impl crate::cli::CheckHardware {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::RELEASE_STAGES;
        use crate::stages::ensure_tools;
        ensure_tools(ctx, RELEASE_STAGES, &[crate::support::prereq::Tools::Boot])?;
        let mini = crate::pipeline::release(ctx, "mini")?;
        let standard = crate::pipeline::release(ctx, "standard")?;
        check(
            ctx,
            &mini.iso.image(),
            &standard.iso.image(),
            &ctx.config.distribution.version,
            &self.only,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_matrix_parses_and_covers_what_users_bring() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let m = load(root).unwrap();
        for name in [
            "lsi53c895a",
            "mptsas1068",
            "megasas",
            "megasas-gen2",
            "pvscsi",
            "am53c974",
            "dc390",
            "virtio-scsi",
            "virtio-blk",
            "nvme",
            "ahci",
            "piix-ide",
            "usb-ehci",
            "usb-ohci",
            "xhci-storage",
            "xhci-uas",
            "sdhci",
        ] {
            assert!(m.storage.iter().any(|r| r.name == name), "storage {name}");
        }
        for name in [
            "e1000",
            "e1000e",
            "igb",
            "rtl8139",
            "ne2k_pci",
            "pcnet",
            "vmxnet3",
            "i82559er",
            "tulip",
            "virtio-net",
        ] {
            assert!(m.network.iter().any(|r| r.name == name), "network {name}");
        }
    }

    #[test]
    fn bad_matrices_are_named() {
        let e = parse("storage = []\nnetwork = []\n[[bogus]]\n").unwrap_err();
        assert!(e.contains(MATRIX), "{e}");
        let row = "[[network]]\nname = \"a\"\nwhat = \"x\"\ndevice = \"e1000\"\n";
        let e = parse(&format!("storage = []\n{row}{row}")).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn the_default_entry_is_read_from_isolinux_cfg() {
        let cfg = "SERIAL 0 115200\nDEFAULT finnix\nLABEL finnix\n  MENU LABEL ^Finnix\n  LINUX /boot/vmlinuz\n  APPEND console=ttyS0,115200 console=tty0\nLABEL toram\n  APPEND toram console=ttyS0\n";
        assert_eq!(
            default_append(cfg).as_deref(),
            Some("console=ttyS0,115200 console=tty0")
        );
        assert_eq!(default_append("LABEL x\n APPEND y\n"), None);
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("configs/boot/isolinux.cfg"),
        )
        .unwrap();
        assert!(default_append(&shipped).unwrap().contains("console=ttyS0"));
    }
}
