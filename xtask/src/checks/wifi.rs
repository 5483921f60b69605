//! Wi-Fi in check-access's ISO part: the standard ISO in qemu, the kernel's
//! `mac80211_hwsim` radios (two, joined by the module's own medium), an
//! access point on the first and Finnix's `wifi-connect` on the second.
//!
//! The access point is Debian's hostapd (not in the release: pinned in
//! finnix.lock, role `check-hostapd`, which no release lists) with dnsmasq as its DHCP server, in a
//! network namespace of its own with the first radio, so that the lease
//! really travels over the air. hostapd and its two configurations come on
//! a FAT disk labelled FINNIXCFG, whose `finnix.conf` names the WPA2
//! network: the live system reads it at boot and `wifi-connect` without a
//! network joins it.
//!
//! Checked: the boot line about the file's network; `wifi-connect --scan`;
//! a wrong passphrase refused by name; the file's WPA2 network joined and
//! a DHCP lease from the access point (ping, dnsmasq's lease file); an open
//! network joined by name; a name not in range reported.

use fs_err as fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::console::Guest;
use crate::support::context::Ctx;
use crate::support::ui::Stage;

/// The WPA2 network of the settings file, and the open one.
const WPA2_SSID: &str = "Finnix Test";
const PASSPHRASE: &str = "correct horse battery";
const OPEN_SSID: &str = "finnix-open";
/// The access point's address in its namespace; leases come from the same /24.
const AP_ADDR: &str = "192.168.77.1";
/// wifi-connect waits 30 s to join and 30 s for a lease.
const JOIN_TIMEOUT: Duration = Duration::from_secs(150);

/// hostapd's configuration for the first radio's interface.
fn hostapd_conf(ssid: &str, passphrase: Option<&str>) -> String {
    let mut c = format!("interface=wlan0\ndriver=nl80211\nssid={ssid}\nhw_mode=g\nchannel=6\n");
    if let Some(p) = passphrase {
        c.push_str(&format!(
            "wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={p}\n"
        ));
    }
    c
}

/// The second disk: a FAT image labelled FINNIXCFG with `finnix.conf`
/// (the WPA2 network), Debian's hostapd and its two configurations.
pub fn disk(ctx: &Ctx, s: &mut Stage, dir: &Path) -> Result<PathBuf> {
    let deb = crate::stages::debs::fetch(
        ctx,
        s,
        "check-hostapd",
        "hostapd",
        crate::stages::debs::no_metapackage,
    )?;
    let unpacked = dir.join("hostapd-deb");
    let _ = fs::remove_dir_all(&unpacked);
    s.run(crate::cmd!("dpkg-deb", "-x", &deb.path, &unpacked))?;
    let hostapd = unpacked.join("usr/sbin/hostapd");
    ensure!(
        hostapd.is_file(),
        "{} has no usr/sbin/hostapd",
        deb.path.display()
    );
    let conf = format!(
        "# Wi-Fi networks, joined at boot or by wifi-connect\nwifi = \"{WPA2_SSID}\" \"{PASSPHRASE}\"\n"
    );
    let img = crate::checks::access::settings_disk(s, dir, "wifi.img", &conf, 8192)?;
    let wpa2 = dir.join("wpa2.conf");
    fs::write(&wpa2, hostapd_conf(WPA2_SSID, Some(PASSPHRASE)))?;
    let open = dir.join("open.conf");
    fs::write(&open, hostapd_conf(OPEN_SSID, None))?;
    s.run(crate::cmd!(
        "mcopy", "-i", &img, &hostapd, &wpa2, &open, "::"
    ))?;
    Ok(img)
}

/// Start the access point in namespace `ap` with hostapd `conf` (on the
/// first radio) and wait until its interface is in AP mode.
fn start_ap(g: &mut Guest, conf: &str) -> Result<()> {
    let (ok, out) = g.run_status(
        &format!(
            "ip netns exec ap /mnt/wifi/hostapd -B -P /run/hostapd.pid -f /run/hostapd.log /mnt/wifi/{conf} && \
             for i in $(seq 100); do ip netns exec ap iw dev wlan0 info | grep -q 'type AP' && break; sleep 0.2; done; \
             ip netns exec ap iw dev wlan0 info | grep 'type AP'"
        ),
        Duration::from_secs(60),
    )?;
    ensure!(
        ok,
        "hostapd ({conf}) did not bring up the access point:\n{out}"
    );
    Ok(())
}

/// The Wi-Fi part, on a booted ISO whose second disk is [`disk`]'s.
pub fn check(g: &mut Guest) -> Result<String> {
    let want = format!(
        "[*] Wi-Fi networks from finnix.conf: \"{WPA2_SSID}\"; no Wi-Fi card yet (wifi-connect joins them)"
    );
    ensure!(g.output().contains(&want), "the console lacks {want:?}");
    // Two radios; the first (phy0, wlan0) goes to the access point's
    // namespace with its DHCP server.
    let (ok, out) = g.run_status(
        &format!(
            "modprobe mac80211_hwsim radios=2 && \
             for i in $(seq 50); do [ -e /sys/class/net/wlan1 ] && break; sleep 0.2; done; \
             mkdir -p /mnt/wifi && mount -o ro /dev/vda /mnt/wifi && \
             ip netns add ap && iw phy phy0 set netns name ap && \
             ip netns exec ap ip link set lo up && \
             ip netns exec ap ip addr add {AP_ADDR}/24 dev wlan0 && \
             ip netns exec ap dnsmasq --port=0 --interface=wlan0 --bind-interfaces \
               --dhcp-range=192.168.77.50,192.168.77.99,1h --dhcp-leasefile=/run/ap.leases \
               --pid-file=/run/ap-dnsmasq.pid && \
             iw dev"
        ),
        Duration::from_secs(60),
    )?;
    ensure!(
        ok,
        "setting up the hwsim radios and the access point's namespace failed:\n{out}"
    );
    start_ap(g, "wpa2.conf")?;

    let (ok, out) = g.run_status("wifi-connect --scan", Duration::from_secs(60))?;
    ensure!(
        ok && out
            .lines()
            .any(|l| l.contains(" WPA2 ") && l.ends_with(WPA2_SSID)),
        "wifi-connect --scan does not list {WPA2_SSID:?} as WPA2:\n{out}"
    );

    // A wrong passphrase: refused by name, not a silent wait.
    let (code, out) = g.run_code(
        &format!("wifi-connect --timeout 20 \"{WPA2_SSID}\" 'wrong horse battery'"),
        JOIN_TIMEOUT,
    )?;
    ensure!(
        code == 1 && out.contains("the access point refused the passphrase"),
        "a wrong passphrase was not refused by name (exit {code}):\n{out}"
    );

    // finnix.conf's network, joined without naming it; a lease over the air.
    let (ok, out) = g.run_status("wifi-connect", JOIN_TIMEOUT)?;
    let addr = joined(ok, &out, WPA2_SSID)?;
    reach(g, &addr)?;

    // An open network, by name.
    let (ok, out) = g.run_status(
        "pid=$(cat /run/hostapd.pid) && kill $pid && while kill -0 $pid 2>/dev/null; do sleep 0.2; done",
        Duration::from_secs(30),
    )?;
    ensure!(ok, "stopping the WPA2 access point failed:\n{out}");
    start_ap(g, "open.conf")?;
    let (ok, out) = g.run_status(&format!("wifi-connect {OPEN_SSID}"), JOIN_TIMEOUT)?;
    let open_addr = joined(ok, &out, OPEN_SSID)?;
    reach(g, &open_addr)?;

    // A name nobody sends.
    let (code, out) = g.run_code("wifi-connect --timeout 10 nosuchnet", JOIN_TIMEOUT)?;
    ensure!(
        code == 1 && out.contains("no network named \"nosuchnet\" found in 10 s"),
        "a network not in range was not reported as such (exit {code}):\n{out}"
    );
    Ok(format!(
        "Wi-Fi (mac80211_hwsim): WPA2 from finnix.conf ({addr}), open ({open_addr}), wrong passphrase and unknown network refused"
    ))
}

/// The address of wifi-connect's last line: "[*] wlan1: joined "NAME", address A/P".
fn joined(ok: bool, out: &str, ssid: &str) -> Result<String> {
    let want = format!("joined \"{ssid}\", address ");
    let addr = out
        .lines()
        .find_map(|l| l.split_once(&want).map(|(_, a)| a.trim().to_string()))
        .filter(|_| ok)
        .with_context(|| {
            format!("wifi-connect did not join {ssid:?} and get an address:\n{out}")
        })?;
    ensure!(
        addr.starts_with("192.168.77."),
        "{ssid:?}: the address {addr} is not from the access point's DHCP server"
    );
    Ok(addr)
}

/// The access point answers a ping over the air, and its DHCP server
/// leased the address.
fn reach(g: &mut Guest, addr: &str) -> Result<()> {
    let ip = addr.split('/').next().unwrap_or(addr);
    let (ok, out) = g.run_status(
        &format!("ping -c 2 -W 5 {AP_ADDR} && grep -c ' {ip} ' /run/ap.leases"),
        Duration::from_secs(60),
    )?;
    ensure!(
        ok,
        "the access point {AP_ADDR} does not answer over Wi-Fi, or did not lease {ip}:\n{out}"
    );
    Ok(())
}
