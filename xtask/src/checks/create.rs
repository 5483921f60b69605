//! `cargo xtask check-create`: the live system's `finnix create` run on this
//! host, as a user would on any Linux host (`--kernel --initrd --medium`),
//! inside a network namespace made for the test (never the host's own
//! network). Two guests boot the release ISO in their screen sessions, get
//! distinct 10.182.250.x addresses by DHCP, ping the bridge and each other;
//! `finnix list` shows both; `finnix stop` ends both cleanly; then nothing
//! (TAP, bridge, NAT rule, dnsmasq, screen session, state) is left. The clear
//! errors (not root, kernel or medium missing, out of memory) are checked too.

use fs_err as fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::console::Guest;
use crate::support::context::Ctx;
use crate::support::ui::{self, Outcome, Stage};
use finnix_contract::{memory, net};

/// What the check measured.
pub struct Figures {
    /// Seconds from `finnix create` to each guest's ready banner.
    pub ready_secs: Vec<f64>,
    /// Host memory (PSS of its processes) per guest after the banner, KiB.
    pub pss_kib: Vec<u64>,
}

/// The files a guest needs: the `finnix` program from the root filesystem,
/// the UML kernel, the initrd, the ISO.
pub struct Files {
    pub finnix: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub medium: PathBuf,
}

/// A network namespace for the test; on drop, whatever still runs in it is
/// stopped and the namespace removed.
struct Netns {
    name: String,
    finnix: PathBuf,
    run_dir: PathBuf,
}

impl Netns {
    fn create() -> Result<Netns> {
        // Namespaces of earlier runs that were killed.
        let list = crate::cmd!("ip", "netns", "list")
            .expr()
            .read()
            .unwrap_or_default();
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(pid) = name.strip_prefix("finnix-create-") {
                let alive = pid
                    .parse::<i32>()
                    .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    kill_netns(name);
                }
            }
        }
        let name = format!("finnix-create-{}", std::process::id());
        crate::cmd!("ip", "netns", "add", &name)
            .expr()
            .run()
            .context("ip netns add")?;
        Ok(Netns {
            name,
            finnix: PathBuf::new(),
            run_dir: PathBuf::new(),
        })
    }

    /// A command run inside the namespace.
    fn cmd(&self, program: &str, args: &[&str]) -> crate::support::cmd::Cmd {
        let mut argv: Vec<String> = vec!["netns".into(), "exec".into(), self.name.clone()];
        argv.push(program.into());
        argv.extend(args.iter().map(|s| s.to_string()));
        crate::support::cmd::Cmd::argv("ip", argv).env("FINNIX_RUN_DIR", &self.run_dir)
    }

    fn finnix(&self, args: &[&str]) -> crate::support::cmd::Cmd {
        self.cmd(&self.finnix.to_string_lossy(), args)
    }
}

fn kill_netns(name: &str) {
    let pids = crate::cmd!("ip", "netns", "pids", name)
        .expr()
        .read()
        .unwrap_or_default();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = crate::cmd!("screen", "-wipe")
        .expr()
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run();
    let _ = crate::cmd!("ip", "netns", "del", name)
        .expr()
        .stderr_null()
        .unchecked()
        .run();
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.finnix.as_os_str().is_empty() {
            let _ = self
                .finnix(&["stop", "--all"])
                .expr()
                .stdout_null()
                .stderr_null()
                .unchecked()
                .run();
        }
        kill_netns(&self.name);
    }
}

/// PSS of the processes in UML's process group (the guest), in KiB. UML's
/// helper threads are processes sharing one address space: each address
/// space is counted once.
fn guest_pss_kib(run_dir: &Path, guest: &str) -> u64 {
    let Some(pgid) = fs::read_to_string(run_dir.join("uml").join(guest).join("pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i64>().ok())
    else {
        return 0;
    };
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let group: Option<i64> = after.split_whitespace().nth(2).and_then(|g| g.parse().ok());
        let maps = fs::read(entry.path().join("maps")).unwrap_or_default();
        if group == Some(pgid) && seen.insert(maps) {
            let rollup = fs::read_to_string(entry.path().join("smaps_rollup")).unwrap_or_default();
            total += rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

pub fn check(ctx: &Ctx, files: &Files) -> Result<Figures> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Create], &ctx.logs())?;
    ui::stage(
        &ctx.logs(),
        "check-create",
        "finnix create: two UML guests in a network namespace, DHCP, ping, list, stop, nothing left",
        |s| {
            let figures = run_check(ctx, s, files)?;
            let detail = format!(
                "ready in {} s; {} MiB host memory per guest",
                figures
                    .ready_secs
                    .iter()
                    .map(|t| format!("{t:.1}"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                figures.pss_kib.iter().max().copied().unwrap_or(0) / 1024
            );
            Ok((figures, Outcome::Passed, detail))
        },
    )
}

fn run_check(ctx: &Ctx, s: &mut Stage, files: &Files) -> Result<Figures> {
    let tmp = ctx.cache.temp_dir("check-create")?;
    // finnix create's run directory holds UML's mconsole sockets: short.
    let run = crate::support::fsutil::socket_dir("check-create")?;
    // dnsmasq drops to an unprivileged user before it reads its hosts file
    // in the run directory: that user must be able to pass through (not
    // list) the directories above it, as through /run on a live system.
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o711))?;
    }
    let mut ns = Netns::create()?;
    ns.run_dir = run.path().join("run");
    ns.finnix = files.finnix.clone();
    let uml_tmp = crate::guest::uml::tmpdir(tmp.path());

    namespace_network(s, &ns)?;
    let kernel = files.kernel.to_string_lossy().into_owned();
    let initrd = files.initrd.to_string_lossy().into_owned();
    let medium = files.medium.to_string_lossy().into_owned();
    let base = [
        "create", "--kernel", &kernel, "--initrd", &initrd, "--medium", &medium,
    ];
    clear_errors(s, &ns, &base)?;
    // finnix1 gets a key (as the host's would be passed): its console must
    // show it added (the mini release has no SSH server to start; the
    // login itself is check-access's).
    let (key, _) = crate::checks::access::keypair(s, tmp.path(), "ed25519", "create-check")?;
    let bad_key = tmp.path().join("bad.pub");
    fs::write(&bad_key, "ssh-ed25519 AAAA-not-base64 x\n")?;
    let (ok, text) =
        s.output(ns.finnix(&[&base[..], &["--ssh-key", &bad_key.to_string_lossy()]].concat()))?;
    ensure!(
        !ok && text.contains("line 1: sshkey=") && text.contains("not base64"),
        "finnix create --ssh-key with a broken key should fail naming its line; it said:\n{text}"
    );
    let pub_key = key.with_extension("pub").to_string_lossy().into_owned();
    let guests = ["finnix1", "finnix2"];
    let (ready_secs, pss_kib) = start_guests(s, &ns, &base, &guests, &uml_tmp, &pub_key)?;
    list_and_host_side(s, &ns, &guests)?;
    guest_network(s, &ns, &guests)?;
    stop_and_nothing_left(s, &ns, &guests)?;
    Ok(Figures {
        ready_secs,
        pss_kib,
    })
}

/// The namespace's own network: loopback, and a default route out of a
/// veth pair for the NAT rule to name.
fn namespace_network(s: &Stage, ns: &Netns) -> Result<()> {
    for args in [
        "ip link set lo up",
        "ip link add wan0 type veth peer name wan1",
        "ip link set wan1 up",
        "ip addr add 192.0.2.2/24 dev wan0",
        "ip link set wan0 up",
        "ip route add default via 192.0.2.1",
    ] {
        let words: Vec<&str> = args.split(' ').collect();
        s.run(ns.cmd(words[0], &words[1..]))?;
    }

    Ok(())
}

/// The clear errors: --help, not root, a missing kernel or medium, too little
/// memory, bad guest names; nothing left behind by a failed create.
fn clear_errors(s: &Stage, ns: &Netns, base: &[&str]) -> Result<()> {
    let (ok, help) = s.output(ns.finnix(&["create", "--help"]))?;
    ensure!(
        ok && help.contains("screen -r NAME") && help.contains("--medium"),
        "finnix create --help does not explain attaching and --medium:\n{help}"
    );
    let errors: [(&[&str], &str, bool); 4] = [
        (
            &["--kernel", "/nonexistent/linux"],
            "--kernel /nonexistent/linux",
            false,
        ),
        (
            &["--medium", "/nonexistent.iso"],
            "--medium /nonexistent.iso",
            false,
        ),
        (
            &["--mem", "10000000"],
            "out of memory for another guest",
            false,
        ),
        (&[], "must run as root", true),
    ];
    for (extra, expected, as_nobody) in errors {
        let mut argv: Vec<&str> = base.to_vec();
        // Later options win: the bad value replaces the good one.
        argv.extend_from_slice(extra);
        let expr = if as_nobody {
            let mut v = vec!["--reuid=65534", "--regid=65534", "--clear-groups"];
            let finnix = ns.finnix.to_string_lossy().into_owned();
            v.push(&finnix);
            v.extend_from_slice(&argv);
            let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            ns.cmd("setpriv", &refs)
        } else {
            ns.finnix(&argv)
        };
        let (ok, text) = s.output(expr)?;
        ensure!(
            !ok && text.contains(expected),
            "finnix create {} should fail saying {expected:?}; it said:\n{text}",
            extra.join(" ")
        );
    }
    ensure!(
        !ns.run_dir.join("net").exists(),
        "a failed create left network state behind"
    );
    // A run directory dnsmasq's user cannot reach (below a 0700
    // directory): refused, saying which directory, before any guest starts.
    {
        use std::os::unix::fs::PermissionsExt;
        let parent = ns.run_dir.parent().context("run directory has a parent")?;
        let closed = parent.join("closed");
        fs::create_dir_all(&closed)?;
        fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700))?;
        let finnix = ns.finnix.to_string_lossy().into_owned();
        let mut argv: Vec<&str> = vec!["netns", "exec", &ns.name, &finnix];
        argv.extend_from_slice(base);
        let (ok, text) = s.output(
            crate::support::cmd::Cmd::argv("ip", &argv)
                .env("FINNIX_RUN_DIR", closed.join("run"))
                .env("TMPDIR", "/dev/shm"),
        )?;
        ensure!(
            !ok && text.contains("closed to other users") && text.contains(&*closed.to_string_lossy()),
            "finnix create with its run directory below a 0700 directory should fail naming it; it said:\n{text}"
        );
        crate::support::fsutil::remove_all(&closed)?;
    }
    for (name, expected) in [
        ("../etc", "invalid guest name"),
        ("nosuch", "no guest named nosuch"),
    ] {
        let (ok, text) = s.output(ns.finnix(&["stop", name]))?;
        ensure!(
            !ok && text.contains(expected),
            "finnix stop {name} should fail saying {expected:?}; it said:\n{text}"
        );
    }

    Ok(())
}

/// Two guests, each to its ready banner; seconds to it and host memory each.
fn start_guests(
    s: &Stage,
    ns: &Netns,
    base: &[&str],
    guests: &[&str],
    uml_tmp: &Path,
    pub_key: &str,
) -> Result<(Vec<f64>, Vec<u64>)> {
    let mut ready_secs = Vec::new();
    for (i, g) in guests.iter().enumerate() {
        let mut argv = base.to_vec();
        argv.push("--wait");
        if i == 0 {
            argv.extend(["--ssh-key", pub_key]);
        }
        // Timed here, on the host's clock: from the command to its return
        // with the guest at its banner (what the tool says is not evidence).
        let started = std::time::Instant::now();
        let (ok, text) = s.output(ns.finnix(&argv).env("TMPDIR", uml_tmp))?;
        let host_secs = started.elapsed().as_secs_f64();
        ensure!(ok, "finnix create failed:\n{text}");
        ensure!(
            text.contains(&format!("{g}: started"))
                && text.contains(&format!("screen -r {g}"))
                && text.contains(&net::address(1 + i as u32)),
            "finnix create did not report {g}, its address and how to attach:\n{text}"
        );
        if i == 0 {
            ensure!(
                text.contains("NAT out of wan0"),
                "the first guest did not set up NAT out of the default route:\n{text}"
            );
        }
        let said: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{g}: ready after ")))
            .and_then(|r| r.trim_end_matches(" s").parse().ok())
            .context("finnix create --wait printed no ready time")?;
        ensure!(
            said <= host_secs + 0.5,
            "finnix create says {g} was ready after {said} s, but the command returned after {host_secs:.1} s"
        );
        ready_secs.push(host_secs);
    }
    let log = |g: &str| ns.run_dir.join("guests").join(format!("{g}.log"));
    for g in guests {
        let text = fs::read_to_string(log(g))?;
        ensure!(
            text.contains("Welcome to Finnix") && text.contains("ready;"),
            "{g}'s screen log has no ready banner"
        );
        let keyed =
            text.contains("[*] Authorized SSH key for root (sshkey=): ssh-ed25519 create-check");
        ensure!(
            keyed == (*g == guests[0]),
            "{g}'s console {} the key given with --ssh-key to {}",
            if keyed { "shows" } else { "lacks" },
            guests[0]
        );
    }
    let pss_kib: Vec<u64> = guests
        .iter()
        .map(|g| guest_pss_kib(&ns.run_dir, g))
        .collect();

    Ok((ready_secs, pss_kib))
}

/// `finnix list` shows both running with their addresses; on the host side
/// the bridge holds both TAPs and the NAT rule is there.
fn list_and_host_side(s: &Stage, ns: &Netns, guests: &[&str]) -> Result<()> {
    // finnix list: both running, with their addresses.
    let (ok, list) = s.output(ns.finnix(&["list"]))?;
    ensure!(ok, "finnix list failed:\n{list}");
    for (i, g) in guests.iter().enumerate() {
        let row = list
            .lines()
            .find(|l| l.starts_with(g))
            .with_context(|| format!("finnix list does not show {g}:\n{list}"))?;
        ensure!(
            row.contains("running")
                && row.contains(&net::address(1 + i as u32))
                && row.contains("64 MiB"),
            "finnix list row for {g} is wrong: {row}"
        );
    }
    // The host side: the bridge with both TAPs, the NAT rule.
    let (_, links) = s.output(ns.cmd("ip", &["-o", "link", "show", "master", net::BRIDGE]))?;
    ensure!(
        links.contains("fnx-finnix1") && links.contains("fnx-finnix2"),
        "the bridge does not hold both guests' TAPs:\n{links}"
    );
    let (_, nat) = s.output(ns.cmd("iptables", &["-w", "-t", "nat", "-S", "POSTROUTING"]))?;
    ensure!(
        nat.contains(&format!("-s {}.0/24 -o wan0 -j MASQUERADE", net::PREFIX)),
        "no masquerading rule out of wan0:\n{nat}"
    );

    Ok(())
}

/// In each guest: its DHCP address, a ping to the bridge and to the other.
fn guest_network(s: &Stage, ns: &Netns, guests: &[&str]) -> Result<()> {
    let minute = Duration::from_secs(90);
    for (i, g) in guests.iter().enumerate() {
        let me = net::address(1 + i as u32);
        let other = net::address(2 - i as u32);
        let mut console = screen_console(s, ns, g)?;
        let (_, text) = console.run_status(
            // udhcpc retries 20 s after its first three discovers went
            // unanswered (dnsmasq starting, a loaded host): wait that out.
            &format!("for i in $(seq 60); do ip -4 addr show dev eth0 | grep -q {} && break; sleep 1; done; ip -4 addr show dev eth0", net::PREFIX),
            minute,
        )?;
        ensure!(
            text.contains(&format!("inet {me}/24")),
            "{g} did not get {me} by DHCP; its console:\n{text}"
        );
        for target in [net::BRIDGE_ADDR, other.as_str()] {
            let (ok, text) = console.run_status(&format!("ping -c 2 -W 5 {target}"), minute)?;
            ensure!(ok, "{g} cannot ping {target}; its console:\n{text}");
        }
    }
    Ok(())
}

/// A guest's console in its screen session, driven like any other: what it
/// prints is its screen log, what is typed goes in through `screen -X stuff`
/// (a newline becomes the Enter key).
fn screen_console(s: &Stage, ns: &Netns, guest: &str) -> Result<Guest> {
    let log = ns.run_dir.join("guests").join(format!("{guest}.log"));
    let stuff = |text: &str| ns.cmd("screen", &["-S", guest, "-p", "0", "-X", "stuff", text]);
    s.note(format!(
        "console of {guest}: {} ({})",
        log.display(),
        stuff("...").line()
    ));
    let (cmd, session) = (ns.cmd("screen", &[]), guest.to_string());
    let input: crate::guest::console::Input = Box::new(move |text: &str| {
        let text = text.replace('\n', "\r");
        let out = cmd
            .clone()
            .args(["-S", &session, "-p", "0", "-X", "stuff", &text])
            .expr()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        ensure!(
            out.status.success(),
            "screen -X stuff failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(())
    });
    Guest::follow(&log, input)
}

/// `finnix stop`: both end cleanly; no TAP, bridge, rule, forwarding, screen
/// session, process or state is left.
fn stop_and_nothing_left(s: &Stage, ns: &Netns, guests: &[&str]) -> Result<()> {
    let (ok, text) = s.output(ns.finnix(&["stop", "finnix1", "finnix2"]))?;
    ensure!(ok, "finnix stop failed:\n{text}");
    for g in guests {
        ensure!(
            text.contains(&format!("{g}: stopped (clean shutdown")),
            "{g} did not stop cleanly:\n{text}"
        );
        // Each guest's whole console, boot to halt, as its screen log has it.
        let log = ns.run_dir.join("guests").join(format!("{g}.log"));
        let console = String::from_utf8_lossy(&fs::read(&log)?).into_owned();
        crate::guest::console::check_log_trouble(&console, "root@tty0:")
            .with_context(|| format!("{g}'s console ({})", log.display()))?;
    }
    let (_, links) = s.output(ns.cmd("ip", &["-o", "link"]))?;
    ensure!(
        !links.contains("fnx-") && !links.contains(net::BRIDGE),
        "TAP devices or the bridge are left:\n{links}"
    );
    let (_, rules) = s.output(ns.cmd("iptables-save", &[]))?;
    ensure!(
        !rules.contains(net::PREFIX) && !rules.contains(net::BRIDGE),
        "NAT or forwarding rules are left:\n{rules}"
    );
    let forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let (_, ns_forward) = s.output(ns.cmd("cat", &["/proc/sys/net/ipv4/ip_forward"]))?;
    ensure!(
        ns_forward.trim() == "0",
        "IPv4 forwarding was not turned back off (host: {})",
        forward.trim()
    );
    let (_, screens) = s.output(ns.cmd("screen", &["-ls"]))?;
    // (Sessions of killed earlier runs show as dead; they are not ours.)
    let live_screens: Vec<&str> = screens.lines().filter(|l| !l.contains("Dead")).collect();
    ensure!(
        !live_screens
            .iter()
            .any(|l| l.contains(".finnix1") || l.contains(".finnix2")),
        "screen sessions are left:\n{screens}"
    );
    let (_, pids) = s.output(crate::cmd!("ip", "netns", "pids", &ns.name))?;
    ensure!(
        pids.trim().is_empty(),
        "processes are left in the namespace: {pids}"
    );
    let leftovers: Vec<_> = fs::read_dir(&ns.run_dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "guests" | "uml" | "guests.lock"))
        .chain(
            fs::read_dir(ns.run_dir.join("guests"))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".log")),
        )
        .collect();
    ensure!(
        leftovers.is_empty(),
        "state is left in the run directory: {leftovers:?}"
    );
    let (_, list) = s.output(ns.finnix(&["list"]))?;
    ensure!(
        list.contains("no guests"),
        "finnix list still shows guests:\n{list}"
    );
    Ok(())
}

/// What the nested check measured.
pub struct Nested {
    /// MemAvailable of the 1 GiB Finnix before the guest, MiB.
    pub available_mib: u64,
    /// How much less it had once the guest showed its banner, MiB.
    pub guest_mib: u64,
    pub ready_secs: f64,
    /// 64 MiB guests `finnix create` admits in that memory (its own rule).
    pub fit: u64,
}

/// `cargo xtask check-nested`: the release ISO (a profile with screen,
/// dnsmasq and iptables: standard) booted in qemu with 1 GiB as hardware
/// would boot it, then `finnix create --wait` inside it: a UML guest of the
/// same medium (/dev/sr0), given the host Finnix's SSH key (`--ssh-key`),
/// its banner in its screen log, its DHCP address answering pings from the
/// host Finnix, a key login into it with OpenSSH's client, `finnix list`,
/// `finnix stop`, and nothing left. Slow under TCG: UML's system calls are ptrace stops.
pub fn check_nested(ctx: &Ctx, iso: &Path, version: &str) -> Result<Nested> {
    crate::support::prereq::ensure(&[crate::support::prereq::Tools::Boot], &ctx.logs())?;
    ui::stage(
        &ctx.logs(),
        "check-nested",
        "finnix create inside the ISO booted in qemu (1 GiB, TCG)",
        |s| {
            let log = ctx.logs().join("console-nested.log");
            let c = crate::guest::qemu::bios_cd(iso);
            s.note(format!("{c:?}"));
            let mut g = crate::guest::console::Guest::start(c, &log)?;
            let result = nested_session(&mut g, version);
            if result.is_err() {
                g.kill();
            }
            let n = result
                .with_context(|| format!("console: {}\n{}", ui::display_path(&log), g.tail(25)))?;
            let detail = format!(
                "guest ready in {:.0} s; 1 GiB Finnix has {} MiB available, the guest takes {} MiB after its banner; by finnix's memory rule (finnix-contract) {} guests of 64 MiB would fit",
                n.ready_secs, n.available_mib, n.guest_mib, n.fit
            );
            Ok((n, Outcome::Passed, detail))
        },
    )
}

fn nested_session(g: &mut crate::guest::console::Guest, version: &str) -> Result<Nested> {
    let long = Duration::from_secs(900);
    let start = std::time::Instant::now();
    crate::checks::boot::choose_isolinux_default(g, long)?;
    g.boot_to_shell(version, "ttyS0", start, long)?;
    let avail = |g: &mut crate::guest::console::Guest| -> Result<u64> {
        let t = g.run("cat /proc/meminfo", Duration::from_secs(60))?;
        memory::meminfo_kib(&t, "MemAvailable")
            .map(|kib| kib / 1024)
            .with_context(|| format!("no MemAvailable: {t}"))
    };
    let available_mib = avail(g)?;
    // The host Finnix's own key, given to the guest (the spec's nested
    // guests reached by SSH).
    let made = g.run(
        "mkdir -p /root/.ssh && ssh-keygen -q -t ed25519 -N '' -C nested-check -f /root/.ssh/id_ed25519 </dev/null && echo key-made",
        Duration::from_secs(120),
    )?;
    ensure!(
        made.ends_with("key-made"),
        "ssh-keygen in the ISO's Finnix: {made}"
    );
    // Timed on the host: the command typed until its output came back.
    let started = std::time::Instant::now();
    let out = g.run(
        "finnix create --wait --ssh-key /root/.ssh/id_ed25519.pub 2>&1",
        long,
    )?;
    let ready_secs = started.elapsed().as_secs_f64();
    ensure!(
        out.contains("finnix1: started") && out.contains("medium /dev/sr0"),
        "finnix create did not start a guest from /dev/sr0:\n{out}"
    );
    ensure!(
        out.lines()
            .any(|l| l.trim().starts_with("finnix1: ready after ")),
        "no ready banner from the guest:\n{out}"
    );
    let guest_mib = available_mib.saturating_sub(avail(g)?);
    let list = g.run("finnix list", Duration::from_secs(60))?;
    ensure!(
        list.contains("finnix1") && list.contains("running") && list.contains(&net::address(1)),
        "finnix list does not show the guest:\n{list}"
    );
    let (answered, ping) = g.run_status(
        &format!("for i in $(seq 90); do ping -c 1 -W 2 {a} >/dev/null 2>&1 && break; done; ping -c 2 -W 5 {a}", a = net::address(1)),
        long,
    )?;
    ensure!(
        answered,
        "the guest does not answer at {}:\n{ping}",
        net::address(1)
    );
    let (ok, login) = g.run_status(
        &format!(
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=120 root@{} 'echo nested-login-as-$(id -un) $(finnix mode)'",
            net::address(1)
        ),
        long,
    )?;
    ensure!(
        ok && login.contains("nested-login-as-root uml"),
        "the host Finnix's key does not log in to its UML guest over SSH:\n{login}"
    );
    let stop = g.run("finnix stop finnix1 2>&1", long)?;
    ensure!(
        stop.contains("finnix1: stopped (clean shutdown"),
        "finnix stop did not shut the guest down cleanly:\n{stop}"
    );
    let left = g.run(
        &format!("ip -o link | grep -c -e {} -e fnx-; iptables -w -t nat -S | grep -c {}; screen -ls | grep -c finnix1", net::BRIDGE, net::PREFIX),
        Duration::from_secs(60),
    )?;
    ensure!(
        left.lines().all(|l| l.trim() == "0"),
        "the bridge, a TAP, a NAT rule or the screen session is left:\n{left}"
    );
    g.check_dmesg()?;
    // The nested guest's whole console (its screen log in the host Finnix).
    let inner = g.run(
        "cat /run/finnix/guests/finnix1.log",
        Duration::from_secs(60),
    )?;
    crate::guest::console::check_log_trouble(&inner, "root@tty0:")
        .context("the nested guest's console")?;
    g.send("shutdown -h now\n")?;
    g.wait(Duration::from_secs(300))
        .context("the ISO's Finnix did not power off after shutdown -h now")?;
    g.check_trouble()?;
    let fit = memory::guests_that_fit(available_mib, memory::DEFAULT_GUEST_MIB as u64);
    Ok(Nested {
        available_mib,
        guest_mib,
        ready_secs,
        fit,
    })
}

impl crate::cli::CheckCreate {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::{self, RELEASE_STAGES};
        use crate::stages::ensure_tools;
        ensure_tools(
            ctx,
            RELEASE_STAGES,
            &[crate::support::prereq::Tools::Create],
        )?;
        let profile = ctx.profile(self.profile);
        let release = pipeline::release(ctx, &profile)?;
        check(ctx, &crate::checks::create::files_of(&release))?;
        Ok(())
    }
}

impl crate::cli::CheckNested {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        use crate::pipeline::{self, RELEASE_STAGES};
        use crate::stages::ensure_tools;
        ensure_tools(ctx, RELEASE_STAGES, &[crate::support::prereq::Tools::Boot])?;
        let release = pipeline::release(ctx, &self.profile)?;
        check_nested(ctx, &release.iso.image(), &ctx.config.distribution.version)?;
        Ok(())
    }
}

/// The files `finnix create` needs on a host: the `finnix` program the root
/// filesystem ships, the UML kernel, the initrd, the release ISO.
pub fn files_of(r: &crate::pipeline::Release) -> Files {
    Files {
        finnix: r.live.rootfs.tree().join("usr/bin/finnix"),
        kernel: r.live.uml.image(),
        initrd: r.live.initrd.image(),
        medium: r.iso.image(),
    }
}
