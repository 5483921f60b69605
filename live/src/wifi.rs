//! Wi-Fi: `wifi-connect` (`finnix wifi-connect`) joins a network with
//! wpa_supplicant and asks for a DHCP lease over it; `finnix boot start`
//! joins the settings file's networks in the background when the machine
//! has a Wi-Fi card, and keeps them for a later `wifi-connect`.
//!
//! The configuration itself (names, passphrases, wpa_supplicant's file) is
//! pure and lives in access.rs; this module runs the programs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::access::{self, WifiNetwork};
use crate::boot::{have, say};
use crate::remote::{ip_cmd, run};

/// wpa_supplicant's control sockets (wpa_cli -p).
const CTRL_DIR: &str = "/run/wpa_supplicant";
/// The settings file's networks, kept by `finnix boot start` for a
/// `wifi-connect` without a network (settings-file syntax, mode 0600).
pub const SAVED: &str = "/run/finnix/wifi.conf";

const USAGE: &str = "usage: wifi-connect [-i IFACE] [--timeout SECS] NETWORK [PASSPHRASE|-]
       wifi-connect [-i IFACE]            join the networks of finnix.conf
       wifi-connect [-i IFACE] --scan     list the networks in range

Joins a Wi-Fi network with wpa_supplicant: WPA2-PSK with a passphrase (8 to
63 characters, or the key as 64 hex digits; `-` reads it from standard
input), an open network without one. Then asks for an address by DHCP.
IFACE: the first Wi-Fi interface unless given (`iw dev` lists them).
";

/// The Wi-Fi interfaces of this machine (those with a `wireless` or
/// `phy80211` entry in sysfs), sorted.
pub fn interfaces() -> Vec<String> {
    crate::boot::interfaces(is_wireless)
}

pub fn is_wireless(iface: &str) -> bool {
    let base = format!("/sys/class/net/{iface}");
    fs::metadata(format!("{base}/wireless")).is_ok()
        || fs::metadata(format!("{base}/phy80211")).is_ok()
}

/// A file only root reads (passphrases): made empty with mode 0600, then
/// written.
fn write_private(path: &str, text: &str) -> std::io::Result<()> {
    fs::write(path, "")?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    fs::write(path, text)
}

fn pid_file(iface: &str) -> String {
    format!("/run/finnix/wpa_supplicant.{iface}.pid")
}

fn log_file(iface: &str) -> String {
    format!("/run/finnix/wpa_supplicant.{iface}.log")
}

/// Stop what an earlier join started on `iface`: its wpa_supplicant and
/// DHCP client; its addresses go.
fn stop_earlier(iface: &str) {
    for pid_path in [
        pid_file(iface),
        format!("/run/dhclient.{iface}.pid"),
        format!("/run/udhcpc.{iface}.pid"),
    ] {
        let pid = fs::read_to_string(&pid_path)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            for _ in 0..50 {
                if unsafe { libc::kill(pid, 0) } != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = fs::remove_file(&pid_path);
    }
    let _ = ip_cmd(&["-4", "addr", "flush", "dev", iface]);
}

/// Start wpa_supplicant on `iface` for `networks` (in the background).
fn start_supplicant(iface: &str, networks: &[WifiNetwork]) -> Result<(), String> {
    if !have("wpa_supplicant") {
        return Err("this Finnix has no wpa_supplicant (the standard release has it)".into());
    }
    if have("rfkill") {
        // A radio switched off in software (not the hardware switch).
        let _ = run("rfkill", &["unblock", "wifi"], None);
    }
    stop_earlier(iface);
    fs::create_dir_all("/run/finnix").map_err(|e| format!("/run/finnix: {e}"))?;
    let conf = format!("/run/finnix/wpa_supplicant.{iface}.conf");
    // The passphrases: root's eyes only.
    write_private(&conf, &access::wpa_supplicant_conf(CTRL_DIR, networks))
        .map_err(|e| format!("cannot write {conf}: {e}"))?;
    let _ = fs::remove_file(log_file(iface));
    run(
        "wpa_supplicant",
        &[
            "-B",
            "-i",
            iface,
            "-c",
            &conf,
            "-D",
            "nl80211,wext",
            "-P",
            &pid_file(iface),
            "-f",
            &log_file(iface),
        ],
        None,
    )
    .map(|_| ())
}

/// wpa_cli's `status` fields of `iface`.
fn status(iface: &str) -> Vec<(String, String)> {
    run("wpa_cli", &["-p", CTRL_DIR, "-i", iface, "status"], None)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An IPv4 address of `iface` (`ip -4 -o addr`), with its prefix.
fn ipv4(iface: &str) -> Option<String> {
    let out = ip_cmd(&["-4", "-o", "addr", "show", "dev", iface]).ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(str::to_string)
}

/// A network in range, from `iw dev IFACE scan`.
#[derive(Debug, PartialEq)]
pub struct Seen {
    pub ssid: String,
    pub signal_dbm: f32,
    /// "WPA2", "WPA", "WPA3", "open"
    pub security: &'static str,
}

/// The networks of `iw dev ... scan`'s output, strongest first.
pub fn parse_scan(out: &str) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    let mut cur: Option<Seen> = None;
    for line in out.lines() {
        let t = line.trim();
        if line.starts_with("BSS ") {
            seen.extend(cur.take());
            cur = Some(Seen {
                ssid: String::new(),
                signal_dbm: -100.0,
                security: "open",
            });
        } else if let Some(c) = cur.as_mut() {
            if let Some(v) = t.strip_prefix("SSID: ") {
                c.ssid = v.to_string();
            } else if let Some(v) = t.strip_prefix("signal: ") {
                c.signal_dbm = v
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(-100.0);
            } else if t.starts_with("RSN:") {
                c.security = "WPA2";
            } else if t.contains("Authentication suites:")
                && t.contains("SAE")
                && !t.contains("PSK")
            {
                c.security = "WPA3";
            } else if t.starts_with("WPA:") && c.security == "open" {
                c.security = "WPA";
            }
        }
    }
    seen.extend(cur);
    seen.retain(|s| !s.ssid.is_empty());
    seen.sort_by(|a, b| b.signal_dbm.total_cmp(&a.signal_dbm));
    seen
}

fn scan(iface: &str) -> Result<Vec<Seen>, String> {
    let _ = ip_cmd(&["link", "set", iface, "up"]);
    // A radio that is busy (just up, or scanning for wpa_supplicant) says
    // EBUSY for a moment.
    let mut last = String::new();
    for _ in 0..10 {
        match run("iw", &["dev", iface, "scan"], None) {
            Ok(out) => return Ok(parse_scan(&out)),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(last)
}

/// Why joining failed, from wpa_supplicant's log and its last state.
fn failure(iface: &str, networks: &[WifiNetwork], state: &str, secs: u64) -> String {
    let log = fs::read_to_string(log_file(iface)).unwrap_or_default();
    let names: Vec<String> = networks.iter().map(|n| format!("{:?}", n.ssid)).collect();
    let names = names.join(", ");
    if log.contains("WRONG_KEY") || log.contains("4-Way Handshake failed") {
        return format!(
            "{iface}: {names}: the access point refused the passphrase (WPA2 4-way handshake failed); check it and run wifi-connect again"
        );
    }
    if log.contains("CTRL-EVENT-ASSOC-REJECT") {
        return format!("{iface}: {names}: the access point rejected the association");
    }
    let in_range: Vec<String> = run(
        "wpa_cli",
        &["-p", CTRL_DIR, "-i", iface, "scan_results"],
        None,
    )
    .unwrap_or_default()
    .lines()
    .skip(1)
    .filter_map(|l| l.split('\t').nth(4).map(|s| format!("{s:?}")))
    .filter(|s| s != "\"\"")
    .collect();
    if matches!(state, "SCANNING" | "DISCONNECTED" | "INACTIVE" | "") {
        return format!(
            "{iface}: no network named {names} found in {secs} s (in range: {}); wpa_supplicant's log: {}",
            if in_range.is_empty() { "none".into() } else { in_range.join(", ") },
            log_file(iface)
        );
    }
    format!(
        "{iface}: not joined {names} in {secs} s (wpa_supplicant is at {state}); its log: {}",
        log_file(iface)
    )
}

/// Join `networks` on `iface` and wait for a DHCP address.
fn connect(iface: &str, networks: &[WifiNetwork], timeout: Duration) -> Result<String, String> {
    start_supplicant(iface, networks)?;
    let start = Instant::now();
    let mut state = String::new();
    let joined = loop {
        let st = status(iface);
        let get = |k: &str| st.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        state = get("wpa_state").unwrap_or(state);
        if state == "COMPLETED" {
            break get("ssid").unwrap_or_default();
        }
        let log = fs::read_to_string(log_file(iface)).unwrap_or_default();
        if start.elapsed() > timeout || log.contains("WRONG_KEY") {
            let why = failure(iface, networks, &state, timeout.as_secs());
            stop_earlier(iface);
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    println!(
        "[*] {iface}: joined {joined:?} in {:.1} s; asking for an address by DHCP",
        start.elapsed().as_secs_f64()
    );
    crate::boot::start_dhcp(iface);
    let asked = Instant::now();
    loop {
        if let Some(addr) = ipv4(iface) {
            return Ok(format!("[*] {iface}: joined {joined:?}, address {addr}"));
        }
        if asked.elapsed() > timeout {
            return Err(format!(
                "{iface}: joined {joined:?}, but no DHCP server answered in {} s (the client keeps asking in the background; its log: /run/finnix/dhcp-{iface}.log)",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// At boot: the settings file's networks are kept for `wifi-connect`, and
/// joined in the background on the first Wi-Fi card, if there is one.
pub fn at_boot(networks: &[WifiNetwork]) {
    if networks.is_empty() {
        return;
    }
    let saved = fs::create_dir_all("/run/finnix")
        .and_then(|()| write_private(SAVED, &access::wifi_lines(networks)));
    if let Err(e) = saved {
        say(&format!(
            "[!] Wi-Fi: cannot keep the networks in {SAVED}: {e}"
        ));
    }
    let names: Vec<String> = networks.iter().map(|n| format!("{:?}", n.ssid)).collect();
    let names = names.join(", ");
    let Some(iface) = interfaces().into_iter().next() else {
        return say(&format!(
            "[*] Wi-Fi networks from finnix.conf: {names}; no Wi-Fi card yet (wifi-connect joins them)"
        ));
    };
    match start_supplicant(&iface, networks) {
        Ok(()) => {
            crate::boot::start_dhcp(&iface);
            say(&format!(
                "[*] Wi-Fi: joining {names} on {iface} in the background (wifi-connect -i {iface} to see it through)"
            ))
        }
        Err(e) => say(&format!("[!] Wi-Fi: {iface}: {e}")),
    }
}

/// `finnix wifi-connect ...` (and `/usr/sbin/wifi-connect`).
pub fn command(args: &[&str]) -> i32 {
    let mut iface = None;
    let mut timeout = Duration::from_secs(30);
    let mut do_scan = false;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "-i" | "--interface" => match it.next() {
                Some(v) => iface = Some(v.to_string()),
                None => return usage("-i needs an interface"),
            },
            "--timeout" => match it.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(s) if s > 0 => timeout = Duration::from_secs(s),
                _ => return usage("--timeout needs a number of seconds"),
            },
            "--scan" => do_scan = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            o if o.starts_with('-') && o != "-" => return usage(&format!("unknown option {o}")),
            o => rest.push(o.to_string()),
        }
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("wifi-connect: run it as root");
        return 1;
    }
    let iface = match pick_interface(iface) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    if do_scan {
        return match scan(&iface) {
            Ok(seen) => {
                for s in &seen {
                    println!("{:>6.1} dBm  {:<5} {}", s.signal_dbm, s.security, s.ssid);
                }
                if seen.is_empty() {
                    println!("no networks in range of {iface}");
                }
                0
            }
            Err(e) => {
                eprintln!("wifi-connect: scanning with {iface}: {e}");
                1
            }
        };
    }
    let networks = match networks_of(&rest) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let names: Vec<String> = networks.iter().map(|n| format!("{:?}", n.ssid)).collect();
    println!("[*] {iface}: joining {}", names.join(", "));
    match connect(&iface, &networks, timeout) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => fail(&e),
    }
}

/// The interface given (it must be a Wi-Fi one), else the first.
fn pick_interface(given: Option<String>) -> Result<String, String> {
    let all = interfaces();
    match given {
        Some(i) if !is_wireless(&i) => Err(format!(
            "{i} is not a Wi-Fi interface (Wi-Fi interfaces: {})",
            if all.is_empty() { "none".into() } else { all.join(", ") }
        )),
        Some(i) => Ok(i),
        None => all.first().cloned().ok_or_else(|| {
            "this machine has no Wi-Fi interface (`ip link` lists the network interfaces; a card without its driver or firmware shows in `dmesg`, a switched-off radio in `rfkill list`)".to_string()
        }),
    }
}

/// The networks the arguments name (none: finnix.conf's), or the exit
/// code after saying what is wrong.
fn networks_of(rest: &[String]) -> Result<Vec<WifiNetwork>, i32> {
    let n = match rest {
        [] => {
            let text = fs::read_to_string(SAVED).unwrap_or_default();
            match access::settings_file(&text) {
                Ok(a) if !a.wifi.is_empty() => a.wifi,
                _ => return Err(usage("no network given, and finnix.conf had no wifi lines")),
            }
        }
        [ssid] => match access::wifi_network(ssid, None) {
            Ok(n) => vec![n],
            Err(e) => return Err(fail(&e)),
        },
        [ssid, pass] => {
            let pass = if pass == "-" {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                line.trim_end_matches(['\n', '\r']).to_string()
            } else {
                pass.clone()
            };
            match access::wifi_network(ssid, Some(&pass)) {
                Ok(n) => vec![n],
                Err(e) => return Err(fail(&e)),
            }
        }
        _ => {
            return Err(usage(
                "too many arguments (a network name with spaces goes in quotes)",
            ))
        }
    };
    Ok(n)
}

fn usage(why: &str) -> i32 {
    eprintln!("wifi-connect: {why}\n{USAGE}");
    2
}

fn fail(why: &str) -> i32 {
    eprintln!("wifi-connect: {why}");
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_scan() {
        let out = "BSS 02:00:00:00:00:00(on wlan1)\n\tfreq: 2437\n\tsignal: -30.00 dBm\n\tSSID: Finnix Test\n\tRSN:\t * Version: 1\n\t\t * Authentication suites: PSK\n\
                   BSS 02:00:00:00:01:00(on wlan1)\n\tsignal: -70.00 dBm\n\tSSID: cafe\n\
                   BSS 02:00:00:00:02:00(on wlan1)\n\tsignal: -50.00 dBm\n\tSSID: \n";
        assert_eq!(
            parse_scan(out),
            [
                Seen {
                    ssid: "Finnix Test".into(),
                    signal_dbm: -30.0,
                    security: "WPA2"
                },
                Seen {
                    ssid: "cafe".into(),
                    signal_dbm: -70.0,
                    security: "open"
                }
            ]
        );
    }
}
