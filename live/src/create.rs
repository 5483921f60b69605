//! `finnix create`, `finnix list`, `finnix stop`: UML guests of this very
//! system, each in a detached `screen` session, on a NAT bridge.
//!
//! State lives in `/run/finnix` (`FINNIX_RUN_DIR` moves it): `guests/<name>.env`
//! per guest (see `guests::Guest`), its console log `guests/<name>.log`, UML's
//! own `uml/<name>/{pid,mconsole}`, and the network's `net/`. A lock file
//! serialises the commands. Each guest runs under a supervisor (`finnix
//! guest-run <name>`, inside the screen session) that cleans up after it:
//! its TAP, its state, and the network when the last guest is gone.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::guests::{self, Guest, Row};

type Res<T> = Result<T, String>;

pub const CREATE_HELP: &str = "usage: finnix create [options]

Start a guest copy of this Finnix under User Mode Linux: the UML kernel and
initrd from /usr/share/finnix-uml/, the medium this system booted from
(read-only, ubdar=), in a detached screen session named after the guest.
Attach with `screen -r NAME`; Ctrl-A d detaches again.

Each guest gets a TAP device (fnx-NAME) on the bridge finnixbr0
(10.182.250.1/24); dnsmasq hands it the address 10.182.250.(10+N) and DNS,
and its traffic is masqueraded out of this system's default route. The
bridge, dnsmasq and the NAT rules are set up for the first guest and removed
when the last one stops.

options:
  --name NAME      guest name (default: finnix1, finnix2, ...); 1-10 of a-z 0-9 -
  --mem MIB        guest memory in MiB (default 64)
  --no-network     no network card
  --wait           return once the guest's ready banner is on its console
  --kernel PATH    UML kernel (default: /usr/share/finnix-uml/linux-*)
  --initrd PATH    initramfs (default: /usr/share/finnix-uml/initrd.img)
  --medium PATH    Finnix ISO or squashfs image, device or file (default: the
                   medium this system booted from, as /run/finnix/boot.env says)
  --squashroot     the medium is the squashfs itself (found by itself for files)
  --ssh-key FILE   public keys (a .pub file, or authorized_keys) root of the
                   guest accepts; its SSH server starts (repeatable), so
                   `ssh root@<address from finnix list>` reaches it

The other commands:
  finnix list                 name, state, address and memory of each guest
  finnix stop NAME... | --all clean shutdown (Ctrl-Alt-Del through mconsole),
                              halted then killed if it has not ended in 60 s

Needs root, and screen, uml_mconsole (uml-utilities), ip (iproute2),
dnsmasq (dnsmasq-base) and iptables. On any Linux host, give --kernel,
--initrd and --medium (from a Finnix release) to run a guest there.
";

const SHARE: &str = "/usr/share/finnix-uml";
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

struct Paths {
    run: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        Paths {
            run: std::env::var_os("FINNIX_RUN_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/run/finnix")),
        }
    }
    fn guests(&self) -> PathBuf {
        self.run.join("guests")
    }
    fn state(&self, name: &str) -> PathBuf {
        self.guests().join(format!("{name}.env"))
    }
    fn log(&self, name: &str) -> PathBuf {
        self.guests().join(format!("{name}.log"))
    }
    fn screenrc(&self, name: &str) -> PathBuf {
        self.guests().join(format!("{name}.screenrc"))
    }
    fn uml_dir(&self) -> PathBuf {
        self.run.join("uml")
    }
    fn net(&self) -> PathBuf {
        self.run.join("net")
    }
    /// UML's pid, once it has started (it writes the file itself).
    fn uml_pid(&self, name: &str) -> Option<i32> {
        let pid = fs::read_to_string(self.uml_dir().join(name).join("pid")).ok()?;
        let pid: i32 = pid.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }
    fn mconsole(&self, name: &str) -> PathBuf {
        self.uml_dir().join(name).join("mconsole")
    }
}

fn alive(pid: i32) -> bool {
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// An exclusive lock on `<run>/lock`, released when dropped.
struct Lock(#[allow(dead_code)] fs::File);

fn lock(p: &Paths) -> Res<Lock> {
    fs::create_dir_all(p.guests())
        .map_err(|e| format!("cannot create {}: {e}", p.guests().display()))?;
    let path = p.run.join("guests.lock");
    let f =
        fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    use std::os::fd::AsRawFd;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(Lock(f))
}

/// Run a command; its stderr in the error.
fn run(program: &str, args: &[&str]) -> Res<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn have(program: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/sbin", "/usr/sbin"])
        .any(|d| Path::new(d).join(program).is_file());
    found
}

fn all_guests(p: &Paths) -> Vec<Guest> {
    let mut v: Vec<Guest> = fs::read_dir(p.guests())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".env"))
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|t| Guest::from_env(&t).ok())
        .collect();
    v.sort_by_key(|g| g.index);
    v
}

fn fail(cmd: &str, r: Res<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("finnix {cmd}: {e}");
            1
        }
    }
}

fn require_root(what: &str) -> Res<()> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "must run as root ({what}): try `sudo finnix ...` or run it from the root shell"
        ));
    }
    Ok(())
}

fn require_tools(network: bool) -> Res<()> {
    let mut tools = vec![("screen", "screen"), ("uml_mconsole", "uml-utilities")];
    if network {
        tools.extend([
            ("ip", "iproute2"),
            ("dnsmasq", "dnsmasq-base"),
            ("iptables", "iptables"),
        ]);
    }
    let missing: Vec<_> = tools.iter().filter(|(t, _)| !have(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
    let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    pkgs.dedup();
    Err(format!(
        "missing programs: {} (install them: apt-get install {})",
        names.join(", "),
        pkgs.join(" ")
    ))
}

// ---------------------------------------------------------------- create

pub fn create(argv: &[&str]) -> i32 {
    if argv.iter().any(|a| matches!(*a, "--help" | "-h")) {
        print!("{CREATE_HELP}");
        return 0;
    }
    fail("create", try_create(argv))
}

/// A guest's network card is a TAP device.
fn require_tun(network: bool) -> Res<()> {
    if network && !Path::new("/dev/net/tun").exists() {
        return Err(
            "/dev/net/tun is missing: this kernel has no TUN/TAP (CONFIG_TUN); use --no-network"
                .into(),
        );
    }
    Ok(())
}

/// The keys of `--ssh-key` files as `sshkey=` values.
fn ssh_keys(files: &[String]) -> Res<Vec<String>> {
    let mut keys = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).map_err(|e| format!("--ssh-key {f}: {e}"))?;
        keys.extend(guests::ssh_key_words(f, &text)?);
    }
    Ok(keys)
}

fn try_create(argv: &[&str]) -> Res<()> {
    let wait = argv.contains(&"--wait");
    let argv: Vec<&str> = argv.iter().copied().filter(|a| *a != "--wait").collect();
    let args = guests::parse_create(&argv)?;
    require_root("it creates network devices and runs the guest's kernel")?;
    require_tools(args.network)?;

    let kernel = match &args.kernel {
        Some(k) => existing(k, "--kernel")?,
        None => default_kernel()?,
    };
    let initrd = match &args.initrd {
        Some(i) => existing(i, "--initrd")?,
        None => existing(&format!("{SHARE}/initrd.img"), "the UML initrd")
            .map_err(|e| format!("{e}; pass --initrd PATH"))?,
    };
    let (medium, squashroot) = match &args.medium {
        Some(m) => {
            let m = existing(m, "--medium")?;
            let squash = args.squashroot || starts_like_squashfs(&m);
            (m, squash)
        }
        None => booted_medium()?,
    };
    require_tun(args.network)?;
    let tmpdir = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());

    let p = Paths::new();
    let _lock = lock(&p)?;
    let existing_guests = all_guests(&p);
    let names: Vec<String> = existing_guests.iter().map(|g| g.name.clone()).collect();
    let indexes: Vec<u32> = existing_guests.iter().map(|g| g.index).collect();
    let (name, index) = match &args.name {
        Some(n) => {
            if names.contains(n) {
                return Err(format!(
                    "a guest named {n} exists already (finnix list; finnix stop {n})"
                ));
            }
            let (_, i) = guests::next_free(&names, &indexes).ok_or("no free guest slot")?;
            (n.clone(), i)
        }
        None => guests::next_free(&names, &indexes).ok_or("no free guest slot")?,
    };
    check_memory(&p, args.mem_mib, &existing_guests, &tmpdir)?;
    let sshkeys = ssh_keys(&args.ssh_key_files)?;

    let guest = Guest {
        name: name.clone(),
        index,
        mem_mib: args.mem_mib,
        kernel,
        initrd,
        medium,
        squashroot,
        network: args.network,
        tmpdir,
        sshkeys,
    };
    let state = p.state(&name);
    write_file(&state, &guest.to_env())?;
    let started = Instant::now();
    if let Err(e) = start_guest(&p, &guest) {
        let _ = fs::remove_file(&state);
        if guest.network {
            let _ = run("ip", &["link", "del", &guests::tap(&name)]);
        }
        let _ = after_guest_left(&p);
        return Err(e);
    }
    drop(_lock);

    println!(
        "{name}: started: {} MiB, {}, medium {}{}",
        guest.mem_mib,
        if guest.network {
            format!("address {} (DHCP)", guests::address(index))
        } else {
            "no network".into()
        },
        guest.medium,
        if guest.squashroot {
            " (squashroot)"
        } else {
            ""
        }
    );
    println!("  attach:  screen -r {name}    (Ctrl-A d detaches)");
    println!("  console: {}", p.log(&name).display());
    println!("  stop:    finnix stop {name}");
    if wait {
        let secs = wait_for_banner(&p, &name, Duration::from_secs(600), started)?;
        println!("{name}: ready after {secs:.1} s");
    }
    Ok(())
}

fn existing(path: &str, what: &str) -> Res<String> {
    let meta = fs::metadata(path).map_err(|e| format!("{what} {path}: {e}"))?;
    if meta.is_dir() {
        return Err(format!("{what} {path} is a directory"));
    }
    Ok(path.to_string())
}

fn starts_like_squashfs(path: &str) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|()| guests::is_squashfs(&head))
        .unwrap_or(false)
}

fn default_kernel() -> Res<String> {
    let found = fs::read_dir(SHARE).ok().and_then(|d| {
        let mut v: Vec<PathBuf> = d
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("linux"))
            })
            .collect();
        v.sort();
        v.pop()
    });
    found
        .map(|p| p.display().to_string())
        .ok_or_else(|| format!("UML kernel missing: no {SHARE}/linux-* (this system was built without it); pass --kernel PATH"))
}

/// The medium the initramfs booted from (or its copy in RAM with `toram`).
fn booted_medium() -> Res<(String, bool)> {
    use finnix_contract::boot_env;
    let facts = fs::read_to_string(boot_env::PATH).unwrap_or_default();
    let fact = |k: &str| boot_env::field(&facts, k).filter(|v| !v.is_empty());
    if fact(boot_env::MODE).as_deref() == Some("uml") {
        return Err("this Finnix is itself a UML guest, and UML does not run inside UML: run finnix create on a Finnix booted from the ISO, in Xen or on hardware".into());
    }
    if fact(boot_env::TORAM).as_deref() == Some("1") {
        if let Some(copy) = fact(boot_env::SQUASHFS).filter(|s| Path::new(s).is_file()) {
            return Ok((copy, true));
        }
    }
    match fact(boot_env::MEDIUM) {
        Some(m) if Path::new(&m).exists() => {
            let squash = fact(boot_env::MEDIUM_TYPE).as_deref() == Some("squashfs");
            Ok((m, squash))
        }
        Some(m) => Err(format!("no medium found: this system booted from {m}, which is gone (removed after toram?); pass --medium PATH")),
        None => Err("no medium found: /run/finnix/boot.env names none (booted without the Finnix initramfs, e.g. COW mode); pass --medium PATH to a Finnix ISO or squashfs".into()),
    }
}

/// Memory for one more guest: MemAvailable, less what running guests were
/// given but have not touched yet, and room in TMPDIR for the memory file.
fn check_memory(p: &Paths, mem_mib: u32, running: &[Guest], tmpdir: &str) -> Res<()> {
    let meminfo = fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    let available =
        guests::meminfo_mib(&meminfo, "MemAvailable").ok_or("/proc/meminfo has no MemAvailable")?;
    let untouched: u64 = running
        .iter()
        .map(|g| {
            let used = p.uml_pid(&g.name).map(memory_file_mib).unwrap_or(0);
            (g.mem_mib as u64).saturating_sub(used)
        })
        .sum();
    guests::fits(mem_mib, available, untouched)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(tmpdir).map_err(|_| "TMPDIR holds a NUL byte")?;
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        let free_mib = (st.f_bavail as u64 * st.f_frsize as u64) >> 20;
        if free_mib < mem_mib as u64 {
            return Err(format!(
                "out of memory for another guest: UML keeps its {mem_mib} MiB in a file in {tmpdir}, which has {free_mib} MiB free; set TMPDIR to a larger directory that allows exec, or use --mem"
            ));
        }
    }
    Ok(())
}

/// MiB allocated to the (deleted) memory file a UML process maps.
fn memory_file_mib(pid: i32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().ends_with("(deleted)"))
        })
        .filter_map(|e| fs::metadata(e.path()).ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .max()
        .unwrap_or(0)
        >> 20
}

fn write_file(path: &Path, text: &str) -> Res<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn start_guest(p: &Paths, g: &Guest) -> Res<()> {
    if g.network {
        let note = ensure_network(p)?;
        if let Some(note) = note {
            println!("{note}");
        }
        let tap = guests::tap(&g.name);
        let _ = run("ip", &["link", "del", &tap]); // a leftover of a killed guest
        run("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        run("ip", &["link", "set", &tap, "master", guests::BRIDGE, "up"])?;
        update_dhcp_hosts(p)?;
    }
    fs::create_dir_all(p.uml_dir())
        .map_err(|e| format!("cannot create {}: {e}", p.uml_dir().display()))?;
    let _ = fs::remove_dir_all(p.uml_dir().join(&g.name)); // stale, from a killed guest
    let log = p.log(&g.name);
    let _ = fs::remove_file(&log);
    write_file(
        &p.screenrc(&g.name),
        &format!(
            "startup_message off\ndefscrollback 5000\nlogfile {}\nlogfile flush 0\ndeflog on\n",
            log.display()
        ),
    )?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let rc = p.screenrc(&g.name);
    run(
        "screen",
        &[
            "-dmS",
            &g.name,
            "-c",
            &rc.to_string_lossy(),
            &exe.to_string_lossy(),
            "guest-run",
            &g.name,
        ],
    )?;
    // UML writes its pid file early; the supervisor removes the state file
    // when UML ends, so a guest that fails to start is seen here.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if p.uml_pid(&g.name).is_some() {
            return Ok(());
        }
        if !p.state(&g.name).exists() || Instant::now() > deadline {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let _ = run("screen", &["-S", &g.name, "-X", "quit"]);
            return Err(format!(
                "the guest did not start (its kernel {} wrote no pid file in {}); its console said:\n{}",
                g.kernel,
                p.uml_dir().join(&g.name).display(),
                tail.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_banner(p: &Paths, name: &str, timeout: Duration, started: Instant) -> Res<f64> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(p.log(name)).unwrap_or_default();
        if text.contains(" ready; ") {
            return Ok(started.elapsed().as_secs_f64());
        }
        if !p.state(name).exists() {
            return Err(format!(
                "{name} stopped before its ready banner; its console: {}",
                p.log(name).display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: no ready banner within {} s; its console: {}",
                timeout.as_secs(),
                p.log(name).display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- the network

fn read_kv(path: &Path, key: &str) -> Option<String> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .map(str::to_string)
    })
}

/// dnsmasq gives up root for an unprivileged user before it reads its
/// hosts file, which then answers every guest "no address available": each
/// directory above the file must let others pass (`x`), as /run does.
fn dnsmasq_can_reach(net: &Path) -> Res<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in net.ancestors() {
        let Ok(m) = fs::metadata(dir) else { continue };
        if m.permissions().mode() & 0o001 == 0 {
            return Err(format!(
                "dnsmasq (which runs as an unprivileged user) could not read its hosts file in {}: {} is closed to other users (chmod o+x it, or set FINNIX_RUN_DIR to a directory under /run)",
                net.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

fn dnsmasq_pid(p: &Paths) -> Option<i32> {
    let pid: i32 = fs::read_to_string(p.net().join("dnsmasq.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// The NAT rules, as iptables arguments after `-A`/`-D`.
fn nat_rules(wan: &str) -> Vec<Vec<String>> {
    let subnet = format!("{}.0/24", guests::NET_PREFIX);
    let v = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    vec![
        v(&format!(
            "-t nat POSTROUTING -s {subnet} -o {wan} -j MASQUERADE"
        )),
        v(&format!(
            "-t filter FORWARD -i {} -o {wan} -j ACCEPT",
            guests::BRIDGE
        )),
        v(&format!(
            "-t filter FORWARD -i {wan} -o {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            guests::BRIDGE
        )),
    ]
}

fn iptables(op: &str, rule: &[String]) -> Res<String> {
    // rule = ["-t", table, chain, ...]
    let mut args: Vec<&str> = vec![&rule[0], &rule[1], op, &rule[2]];
    args.extend(rule[3..].iter().map(String::as_str));
    args.insert(0, "-w");
    run("iptables", &args)
}

/// Bridge, DHCP and NAT, set up once for the first guest. Returns a line
/// to print when it did something.
fn ensure_network(p: &Paths) -> Res<Option<String>> {
    let bridge_up = Path::new("/sys/class/net").join(guests::BRIDGE).exists();
    if bridge_up && dnsmasq_pid(p).is_some() && p.net().join("nat.env").exists() {
        return Ok(None);
    }
    fs::create_dir_all(p.net()).map_err(|e| format!("cannot create {}: {e}", p.net().display()))?;
    let result = (|| -> Res<String> {
        if dnsmasq_pid(p).is_none() {
            dnsmasq_can_reach(&p.net())?;
        }
        if !bridge_up {
            run("ip", &["link", "add", guests::BRIDGE, "type", "bridge"])?;
            run(
                "ip",
                &[
                    "addr",
                    "add",
                    &format!("{}/24", guests::BRIDGE_ADDR),
                    "dev",
                    guests::BRIDGE,
                ],
            )?;
            run("ip", &["link", "set", guests::BRIDGE, "up"])?;
        }
        if dnsmasq_pid(p).is_none() {
            write_file(&p.net().join("dhcp-hosts"), "")?;
            let net = p.net();
            let arg = |k: &str, f: &str| format!("--{k}={}", net.join(f).display());
            run(
                "dnsmasq",
                &[
                    "--conf-file=/dev/null",
                    &arg("pid-file", "dnsmasq.pid"),
                    &arg("dhcp-hostsfile", "dhcp-hosts"),
                    &arg("log-facility", "dnsmasq.log"),
                    &format!("--interface={}", guests::BRIDGE),
                    "--except-interface=lo",
                    "--bind-interfaces",
                    &format!(
                        "--dhcp-range={}.{},static,255.255.255.0,12h",
                        guests::NET_PREFIX,
                        guests::FIRST_HOST
                    ),
                    &format!("--dhcp-option=option:router,{}", guests::BRIDGE_ADDR),
                    "--dhcp-authoritative",
                    "--leasefile-ro",
                    "--log-dhcp",
                ],
            )?;
        }
        let route = fs::read_to_string("/proc/net/route").unwrap_or_default();
        let wan = guests::default_route_iface(&route);
        let forward_was = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        write_file(
            &p.net().join("nat.env"),
            &format!(
                "WAN={}\nFORWARD_WAS={}\n",
                wan.as_deref().unwrap_or(""),
                forward_was.trim()
            ),
        )?;
        let nat = match &wan {
            Some(wan) => {
                fs::write("/proc/sys/net/ipv4/ip_forward", "1\n")
                    .map_err(|e| format!("cannot turn on IPv4 forwarding: {e}"))?;
                for rule in nat_rules(wan) {
                    iptables("-A", &rule)?;
                }
                format!("NAT out of {wan}")
            }
            None => {
                "no default route here, so no NAT: guests reach this system and each other".into()
            }
        };
        Ok(format!(
            "network: bridge {} {}/24, DHCP by dnsmasq, {nat}",
            guests::BRIDGE,
            guests::BRIDGE_ADDR
        ))
    })();
    match result {
        Ok(line) => Ok(Some(line)),
        Err(e) => {
            teardown_network(p);
            Err(format!("setting up the guests' network: {e}"))
        }
    }
}

fn update_dhcp_hosts(p: &Paths) -> Res<()> {
    write_file(
        &p.net().join("dhcp-hosts"),
        &guests::dhcp_hosts(&all_guests(p)),
    )?;
    if let Some(pid) = dnsmasq_pid(p) {
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }
    Ok(())
}

/// Undo `ensure_network`, as far as it got. Errors are printed, not fatal.
fn teardown_network(p: &Paths) {
    let nat = p.net().join("nat.env");
    if let Some(wan) = read_kv(&nat, "WAN").filter(|w| !w.is_empty()) {
        for rule in nat_rules(&wan) {
            if let Err(e) = iptables("-D", &rule) {
                eprintln!("finnix: {e}");
            }
        }
        if let Some(was) = read_kv(&nat, "FORWARD_WAS").filter(|w| !w.is_empty()) {
            let _ = fs::write("/proc/sys/net/ipv4/ip_forward", format!("{was}\n"));
        }
    }
    if let Some(pid) = dnsmasq_pid(p) {
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if Path::new("/sys/class/net").join(guests::BRIDGE).exists() {
        if let Err(e) = run("ip", &["link", "del", guests::BRIDGE]) {
            eprintln!("finnix: {e}");
        }
    }
    let _ = fs::remove_dir_all(p.net());
}

/// After a guest's state is gone: refresh DHCP, or take the network down
/// when no guest is left. Call with the lock held.
fn after_guest_left(p: &Paths) -> Res<()> {
    if all_guests(p).iter().any(|g| g.network) {
        update_dhcp_hosts(p)
    } else {
        if p.net().exists() {
            teardown_network(p);
        }
        Ok(())
    }
}

/// Remove what a guest held: its TAP, state, UML directory, screenrc.
fn cleanup_guest(p: &Paths, name: &str) {
    let tap = guests::tap(name);
    if Path::new("/sys/class/net").join(&tap).exists() {
        if let Err(e) = run("ip", &["link", "del", &tap]) {
            eprintln!("finnix: {e}");
        }
    }
    let _ = fs::remove_file(p.state(name));
    let _ = fs::remove_file(p.screenrc(name));
    let _ = fs::remove_dir_all(p.uml_dir().join(name));
    if let Err(e) = after_guest_left(p) {
        eprintln!("finnix: {e}");
    }
}

// ---------------------------------------------------------------- the supervisor

/// `finnix guest-run NAME` (inside the guest's screen session): run UML in
/// its own foreground process group (a guest panic signals its whole group),
/// then clean up after it.
pub fn guest_run(name: &str) -> i32 {
    let p = Paths::new();
    let guest = match fs::read_to_string(p.state(name))
        .map_err(|e| e.to_string())
        .and_then(|t| Guest::from_env(&t))
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("finnix guest-run: {}: {e}", p.state(name).display());
            return 1;
        }
    };
    unsafe {
        // The terminal going away must not stop the cleanup.
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let args = guest.uml_args(&p.uml_dir().to_string_lossy());
    let mut cmd = Command::new(&guest.kernel);
    cmd.args(&args).env("TMPDIR", &guest.tmpdir);
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::setpgid(0, 0);
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, libc::getpid());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            Ok(())
        });
    }
    println!(
        "finnix: starting {name}: {} {}",
        guest.kernel,
        args.join(" ")
    );
    let status = cmd.status();
    unsafe {
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(0, libc::getpgrp());
    }
    match &status {
        Ok(s) => println!("\r\nfinnix: guest {name} has ended ({s})"),
        Err(e) => println!("\r\nfinnix: cannot start {}: {e}", guest.kernel),
    }
    let _lock = lock(&p);
    cleanup_guest(&p, name);
    0
}

// ---------------------------------------------------------------- list, stop

pub fn list() -> i32 {
    let p = Paths::new();
    let rows: Vec<Row> = all_guests(&p)
        .into_iter()
        .map(|g| Row {
            running: p.uml_pid(&g.name).is_some(),
            address: if g.network {
                guests::address(g.index)
            } else {
                "-".into()
            },
            mem_mib: g.mem_mib,
            medium: g.medium,
            name: g.name,
        })
        .collect();
    if rows.is_empty() {
        println!("no guests (finnix create starts one)");
    } else {
        print!("{}", guests::table(&rows));
    }
    0
}

pub fn stop(argv: &[&str]) -> i32 {
    fail("stop", try_stop(argv))
}

fn try_stop(argv: &[&str]) -> Res<()> {
    let p = Paths::new();
    let names: Vec<String> = if argv == ["--all"] {
        all_guests(&p).into_iter().map(|g| g.name).collect()
    } else if argv.is_empty() || argv.iter().any(|a| a.starts_with('-')) {
        return Err("usage: finnix stop NAME... | --all (finnix list shows the names)".into());
    } else {
        argv.iter().map(|s| s.to_string()).collect()
    };
    require_root("it talks to the guests' consoles and removes their network devices")?;
    let mut errors = Vec::new();
    for name in &names {
        if let Err(e) = guests::valid_name(name) {
            errors.push(e);
            continue;
        }
        if !p.state(name).exists() {
            errors.push(format!(
                "no guest named {name} (finnix list shows the guests)"
            ));
            continue;
        }
        match stop_one(&p, name) {
            Ok(line) => println!("{name}: {line}"),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Wait until the guest's supervisor has cleaned up after it (its state is
/// gone, and the lock it holds meanwhile is free: the network is down too
/// when it was the last guest).
fn wait_gone(p: &Paths, name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while p.state(name).exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(lock(p));
    true
}

fn stop_one(p: &Paths, name: &str) -> Res<String> {
    let started = Instant::now();
    let mconsole = p.mconsole(name);
    let mconsole = mconsole.to_string_lossy();
    if let Some(pid) = p.uml_pid(name) {
        // Ctrl-Alt-Del: init shuts the guest down and reboots, which with
        // `noreboot` ends UML; the supervisor then cleans up.
        run("uml_mconsole", &[&mconsole, "cad"])?;
        if wait_gone(p, name, STOP_TIMEOUT) {
            return Ok(format!(
                "stopped (clean shutdown in {:.1} s)",
                started.elapsed().as_secs_f64()
            ));
        }
        eprintln!(
            "{name}: no clean shutdown within {} s; halting it",
            STOP_TIMEOUT.as_secs()
        );
        let _ = run("uml_mconsole", &[&mconsole, "halt"]);
        if wait_gone(p, name, Duration::from_secs(10)) {
            return Ok("halted (no clean shutdown in time)".into());
        }
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        if wait_gone(p, name, Duration::from_secs(10)) {
            return Ok("killed (no clean shutdown in time)".into());
        }
    }
    // No UML, or a supervisor that is gone too: clean up here.
    let _ = run("screen", &["-S", name, "-X", "quit"]);
    let _lock = lock(p)?;
    cleanup_guest(p, name);
    Ok("was not running; its leftovers are removed".into())
}
