//! The network of a network boot: the cards' drivers, then the address
//! `ip=` gives (`finnix_contract::ip`: DHCP by default, or static), set with
//! busybox's `ip`; DHCP is busybox's `udhcpc`, whose event script only
//! writes the lease down for /init to apply.

use std::fs;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use finnix_contract::ip::{self, Config};

use crate::modules::Modules;

/// How long to wait for a network card to appear, and for its link.
const CARD_WAIT: Duration = Duration::from_secs(20);
const LINK_WAIT: Duration = Duration::from_secs(6);
const LEASE_DIR: &str = "/run/finnix/net";
const UDHCPC_SCRIPT: &str = "/run/finnix/udhcpc.script";

/// udhcpc's event script: `bound` and `renew` write the lease down.
const SCRIPT: &str = r#"#!/bin/sh
case "$1" in bound|renew) ;; *) exit 0 ;; esac
f=/run/finnix/net/$interface.lease
printf 'ip=%s\nmask=%s\nrouter=%s\ndns=%s\nhostname=%s\n' \
  "$ip" "$mask" "$router" "$dns" "$hostname" > "$f.tmp" && mv "$f.tmp" "$f"
"#;

/// The address an interface got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub iface: String,
    pub how: &'static str,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
}

impl Lease {
    /// The line `/init` prints and leaves in `netboot::CONFIGURED`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {}/{} ({})",
            self.iface, self.address, self.prefix, self.how
        );
        if let Some(g) = self.gateway {
            s.push_str(&format!(", gateway {g}"));
        }
        if !self.dns.is_empty() {
            let dns: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
            s.push_str(&format!(", DNS {}", dns.join(" ")));
        }
        s
    }
}

/// Read udhcpc's lease file (written by [`SCRIPT`]).
pub fn parse_lease(iface: &str, text: &str) -> Result<Lease, String> {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::trim)
            .unwrap_or("")
    };
    let address = get("ip")
        .parse()
        .map_err(|_| format!("{iface}: the DHCP lease has no address ({:?})", get("ip")))?;
    let prefix = ip::prefix_of(get("mask")).unwrap_or(24);
    let addrs = |v: &str| -> Vec<Ipv4Addr> {
        v.split_whitespace()
            .filter_map(|a| a.parse().ok())
            .collect()
    };
    Ok(Lease {
        iface: iface.to_string(),
        how: "DHCP",
        address,
        prefix,
        gateway: addrs(get("router")).first().copied(),
        dns: addrs(get("dns")),
        hostname: Some(get("hostname").to_string()).filter(|h| !h.is_empty()),
    })
}

/// Bring the network up for a network boot; the lease, or what went wrong.
pub fn bring_up(
    ip_param: Option<&str>,
    modules: Option<&mut Modules>,
    say: &dyn Fn(String),
) -> Result<Lease, Vec<String>> {
    let config = match ip_param.map(ip::parse) {
        None => Config::Dhcp { device: None },
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(vec![e, "see `ip=` in docs/configuration.md".into()]),
    };
    let wanted = match &config {
        Config::Off => {
            return Err(vec![
                "ip=off, but fetch= needs the network".into(),
                "remove ip=off, or give a static address: ip=<client>::<gateway>:<netmask>::<device>:off:<dns>".into(),
            ])
        }
        Config::Dhcp { device } => device.clone(),
        Config::Static(s) => s.device.clone(),
    };
    let cards = wait_for_cards(wanted.as_deref(), modules, say)?;
    let _ = busybox_ip(&["link", "set", "lo", "up"]);
    for c in &cards {
        busybox_ip(&["link", "set", c, "up"]).map_err(|e| vec![e])?;
    }
    let lease = match config {
        Config::Static(s) => {
            let iface = first_with_link(&cards);
            let lease = Lease {
                iface,
                how: "static, ip=",
                address: s.address,
                prefix: s.prefix,
                gateway: s.gateway,
                dns: s.dns,
                hostname: s.hostname,
            };
            apply(&lease).map_err(|e| vec![e])?;
            lease
        }
        _ => dhcp(&cards, say)?,
    };
    record(&lease);
    Ok(lease)
}

/// Ethernet interfaces in /sys/class/net (not lo, bridges or tunnels).
fn ethernet_cards() -> Vec<String> {
    let mut cards: Vec<String> = fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let t = fs::read_to_string(format!("/sys/class/net/{n}/type")).unwrap_or_default();
            n != "lo" && t.trim() == "1"
        })
        .collect();
    cards.sort();
    cards
}

/// Load the cards' drivers until a card (the one named) shows up.
fn wait_for_cards(
    wanted: Option<&str>,
    mut modules: Option<&mut Modules>,
    say: &dyn Fn(String),
) -> Result<Vec<String>, Vec<String>> {
    let start = Instant::now();
    if let Some(m) = modules.as_deref_mut() {
        m.network = true;
    }
    loop {
        if let Some(m) = modules.as_deref_mut() {
            let loaded = m.coldplug();
            if !loaded.is_empty() {
                say(format!("loaded modules: {}", loaded.join(" ")));
            }
        }
        let cards = ethernet_cards();
        let found: Vec<String> = match wanted {
            Some(w) => cards.iter().filter(|c| *c == w).cloned().collect(),
            None => cards.clone(),
        };
        if !found.is_empty() {
            return Ok(found);
        }
        if start.elapsed() >= CARD_WAIT {
            let mut details = vec![format!(
                "no network card{} appeared in {} s (cards present: {})",
                wanted.map(|w| format!(" named {w}")).unwrap_or_default(),
                CARD_WAIT.as_secs(),
                if cards.is_empty() {
                    "none".to_string()
                } else {
                    cards.join(" ")
                }
            )];
            if let Some(m) = modules.as_deref() {
                if !m.errors.is_empty() {
                    details.push(format!(
                        "modules that failed to load: {}",
                        m.errors.join("; ")
                    ));
                }
            }
            details.push("a card whose driver the initramfs lacks needs the ISO instead; `ip=...:<device>:...` names another card".into());
            return Err(details);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn has_link(card: &str) -> bool {
    fs::read_to_string(format!("/sys/class/net/{card}/carrier")).is_ok_and(|c| c.trim() == "1")
}

/// The first card whose cable is in (waiting a little for links to come up).
fn first_with_link(cards: &[String]) -> String {
    let start = Instant::now();
    while start.elapsed() < LINK_WAIT {
        if let Some(c) = cards.iter().find(|c| has_link(c)) {
            return c.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cards[0].clone()
}

/// DHCP on each card in turn (those with a link first) until one gets a lease.
fn dhcp(cards: &[String], say: &dyn Fn(String)) -> Result<Lease, Vec<String>> {
    let _ = fs::create_dir_all(LEASE_DIR);
    fs::write(UDHCPC_SCRIPT, SCRIPT)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(UDHCPC_SCRIPT, fs::Permissions::from_mode(0o755))
        })
        .map_err(|e| vec![format!("cannot write {UDHCPC_SCRIPT}: {e}")])?;
    let first = first_with_link(cards);
    let mut order = vec![first.clone()];
    order.extend(cards.iter().filter(|c| **c != first).cloned());
    let mut tried = Vec::new();
    for card in order {
        crate::console::write(&format!("[*] DHCP on {card}..."));
        let out = Command::new("/bin/busybox")
            .args([
                "udhcpc", "-i", &card, "-f", "-q", "-n", "-t", "5", "-T", "2",
            ])
            .args(["-A", "1", "-s", UDHCPC_SCRIPT])
            .output();
        let lease_file = format!("{LEASE_DIR}/{card}.lease");
        match (out, fs::read_to_string(&lease_file)) {
            (Ok(o), Ok(text)) if o.status.success() => {
                let lease = parse_lease(&card, &text).map_err(|e| vec![e])?;
                apply(&lease).map_err(|e| vec![e])?;
                crate::console::write(" done\n");
                return Ok(lease);
            }
            (Ok(o), _) => {
                crate::console::write(" no answer\n");
                let log = String::from_utf8_lossy(&o.stderr);
                let last = log.lines().last().unwrap_or("").trim().to_string();
                say(format!("udhcpc on {card}: {}", log.trim()));
                tried.push(format!("{card}: no DHCP lease in 10 s ({last})"));
            }
            (Err(e), _) => {
                crate::console::write(" failed\n");
                tried.push(format!("{card}: cannot run busybox udhcpc: {e}"));
            }
        }
    }
    tried.push("is a DHCP server on this network? a static address: ip=<client>::<gateway>:<netmask>::<device>:off:<dns> (docs/configuration.md)".into());
    Err(tried)
}

/// Give the card its address, the default route and the name servers.
fn apply(l: &Lease) -> Result<(), String> {
    let cidr = format!("{}/{}", l.address, l.prefix);
    busybox_ip(&["addr", "flush", "dev", &l.iface])?;
    busybox_ip(&["addr", "add", &cidr, "dev", &l.iface])?;
    if let Some(g) = l.gateway {
        busybox_ip(&[
            "route",
            "replace",
            "default",
            "via",
            &g.to_string(),
            "dev",
            &l.iface,
        ])?;
    }
    let resolv: String = l.dns.iter().map(|d| format!("nameserver {d}\n")).collect();
    let _ = fs::create_dir_all("/etc");
    let _ = fs::write("/etc/resolv.conf", resolv);
    if let Some(h) = &l.hostname {
        unsafe {
            libc::sethostname(h.as_ptr().cast(), h.len());
        }
    }
    Ok(())
}

/// Leave what was configured for the live system (`netboot::CONFIGURED`).
fn record(l: &Lease) {
    let kind = if l.how == "DHCP" { "dhcp" } else { "static" };
    let _ = fs::create_dir_all("/run/finnix");
    let _ = fs::write(
        finnix_contract::netboot::CONFIGURED,
        format!("{} {kind} {}/{}\n", l.iface, l.address, l.prefix),
    );
}

fn busybox_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("/bin/busybox")
        .arg("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run busybox ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_as_the_script_writes_it() {
        let l = parse_lease(
            "eth0",
            "ip=10.0.2.15\nmask=24\nrouter=10.0.2.2 10.0.2.1\ndns=10.0.2.3\nhostname=\n",
        )
        .unwrap();
        assert_eq!(l.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(l.prefix, 24);
        assert_eq!(l.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(l.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(l.hostname, None);
        assert_eq!(
            l.describe(),
            "eth0 10.0.2.15/24 (DHCP), gateway 10.0.2.2, DNS 10.0.2.3"
        );
        assert!(parse_lease("eth0", "ip=\n")
            .unwrap_err()
            .contains("no address"));
    }
}
