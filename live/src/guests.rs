//! Pure parts of `finnix create`: names, addresses, command lines, the
//! arguments, and the `finnix list` table.

/// The NAT network the guests share (the contract's).
pub use finnix_contract::net::{
    address, BRIDGE, BRIDGE_ADDR, FIRST_HOST, MAX_GUESTS, PREFIX as NET_PREFIX,
};

/// A locally administered MAC address for guest `index`.
pub fn mac(index: u32) -> String {
    format!("02:46:4e:58:{:02x}:{:02x}", index >> 8, index & 0xff)
}

/// The host side of a guest's network: a TAP device named after it.
pub fn tap(name: &str) -> String {
    format!("fnx-{name}")
}

/// A guest name: 1 to 10 characters from a-z, 0-9 and '-' (it names the
/// TAP device, whose name the kernel limits to 15 bytes).
pub fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 10
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid guest name {name:?}: use 1 to 10 characters from a-z, 0-9 and -"
        ))
    }
}

/// The first free `finnixN` name and index.
pub fn next_free(used_names: &[String], used_indexes: &[u32]) -> Option<(String, u32)> {
    let index = (1..=MAX_GUESTS).find(|i| !used_indexes.contains(i))?;
    let mut n = index;
    loop {
        let name = format!("finnix{n}");
        if !used_names.contains(&name) {
            return Some((name, index));
        }
        n += 1;
    }
}

/// What `finnix create` was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateArgs {
    pub name: Option<String>,
    pub mem_mib: u32,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub medium: Option<String>,
    pub squashroot: bool,
    pub network: bool,
    /// `--ssh-key FILE` (repeatable): files of public keys for the guest.
    pub ssh_key_files: Vec<String>,
}

pub use finnix_contract::memory::DEFAULT_GUEST_MIB as DEFAULT_MEM_MIB;

pub fn parse_create(args: &[&str]) -> Result<CreateArgs, String> {
    let mut a = CreateArgs {
        mem_mib: DEFAULT_MEM_MIB,
        network: true,
        ..Default::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (*arg, None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .map(|v| v.to_string())
                    .ok_or_else(|| format!("{key} needs {what}")),
            }
        };
        match key {
            "--name" => a.name = Some(value("a name")?),
            "--mem" => {
                let v = value("a size in MiB")?;
                let mib: u32 = v
                    .trim_end_matches(['M', 'm'])
                    .parse()
                    .map_err(|_| format!("--mem {v:?}: expected MiB, e.g. 64 or 64M"))?;
                if mib < 32 {
                    return Err(format!("--mem {mib}: a guest needs at least 32 MiB"));
                }
                a.mem_mib = mib;
            }
            "--kernel" => a.kernel = Some(value("a path")?),
            "--initrd" => a.initrd = Some(value("a path")?),
            "--medium" => a.medium = Some(value("a path")?),
            "--squashroot" => a.squashroot = true,
            "--no-network" => a.network = false,
            "--ssh-key" => a.ssh_key_files.push(value("a file of public keys")?),
            other => {
                return Err(format!(
                    "unknown option {other:?} (see finnix create --help)"
                ))
            }
        }
    }
    if let Some(n) = &a.name {
        valid_name(n)?;
    }
    Ok(a)
}

/// The public keys of a file (`.pub`, or authorized_keys without options)
/// as `sshkey=` values for a guest's command line; a line that is not a
/// key is an error naming the file and the line.
pub fn ssh_key_words(path: &str, text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A file's line is as it is: no %XX escapes in it.
        let key = crate::access::authorized_key(&line.replace('%', "%25"))
            .map_err(|e| format!("--ssh-key {path} line {}: {e}", n + 1))?;
        out.push(
            key.replace('%', "%25")
                .replace(' ', "%20")
                .replace('"', "%22"),
        );
    }
    if out.is_empty() {
        return Err(format!("--ssh-key {path}: no public key in it"));
    }
    Ok(out)
}

/// What `finnix create` records for a guest (`<run>/guests/<name>.env`):
/// everything its supervisor needs to start it, and `list`/`stop` to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub name: String,
    pub index: u32,
    pub mem_mib: u32,
    pub kernel: String,
    pub initrd: String,
    pub medium: String,
    pub squashroot: bool,
    pub network: bool,
    /// Where UML keeps the guest's memory file (must allow exec).
    pub tmpdir: String,
    /// Root's authorized keys in the guest, as `sshkey=` values (spaces as
    /// `%20`): its SSH server starts with them.
    pub sshkeys: Vec<String>,
}

impl Guest {
    pub fn to_env(&self) -> String {
        format!(
            "NAME={}\nINDEX={}\nMEM_MIB={}\nKERNEL={}\nINITRD={}\nMEDIUM={}\nSQUASHROOT={}\nNETWORK={}\nTMPDIR={}\nSSHKEYS={}\n",
            self.name,
            self.index,
            self.mem_mib,
            self.kernel,
            self.initrd,
            self.medium,
            self.squashroot as u8,
            self.network as u8,
            self.tmpdir,
            self.sshkeys.join(" ")
        )
    }

    pub fn from_env(text: &str) -> Result<Guest, String> {
        let get = |key: &str| -> Result<String, String> {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_string)
                .ok_or_else(|| format!("no {key}= line"))
        };
        let num = |key: &str| -> Result<u32, String> {
            let v = get(key)?;
            v.parse().map_err(|_| format!("{key}={v}: not a number"))
        };
        Ok(Guest {
            name: get("NAME")?,
            index: num("INDEX")?,
            mem_mib: num("MEM_MIB")?,
            kernel: get("KERNEL")?,
            initrd: get("INITRD")?,
            medium: get("MEDIUM")?,
            squashroot: get("SQUASHROOT")? == "1",
            network: get("NETWORK")? == "1",
            tmpdir: get("TMPDIR")?,
            // Absent in a guest recorded before keys could be given.
            sshkeys: get("SSHKEYS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }

    /// The UML command line (the spec's, plus what a managed guest needs).
    pub fn uml_args(&self, uml_dir: &str) -> Vec<String> {
        let mut v = vec![
            format!("mem={}M", self.mem_mib),
            format!("initrd={}", self.initrd),
            "root=/dev/ubda".to_string(),
            format!("ubdar={}", self.medium),
        ];
        if self.squashroot {
            v.push("squashroot".into());
        }
        v.push("uml".into());
        if self.network {
            v.push(format!(
                "eth0=tuntap,{},{}",
                tap(&self.name),
                mac(self.index)
            ));
        }
        v.extend(self.sshkeys.iter().map(|k| format!("sshkey={k}")));
        v.extend([
            format!("umid={}", self.name),
            format!("uml_dir={uml_dir}"),
            // `finnix stop` asks for a clean shutdown (Ctrl-Alt-Del); a guest
            // that reboots ends instead of starting again.
            "noreboot".to_string(),
            "con=null".to_string(),
            "con0=fd:0,fd:1".to_string(),
        ]);
        v
    }
}

/// dnsmasq's `--dhcp-hostsfile`: each guest's MAC gets its fixed address.
pub fn dhcp_hosts(guests: &[Guest]) -> String {
    guests
        .iter()
        .filter(|g| g.network)
        .map(|g| format!("{},{},{}\n", mac(g.index), address(g.index), g.name))
        .collect()
}

/// Whether a file starts like a squashfs image (its magic, "hsqs").
pub use finnix_contract::magic::is_squashfs;

/// A value from /proc/meminfo, in MiB.
pub fn meminfo_mib(meminfo: &str, key: &str) -> Option<u64> {
    finnix_contract::memory::meminfo_kib(meminfo, key).map(|kib| kib / 1024)
}

use finnix_contract::memory::HOST_RESERVE_MIB;

/// Whether a guest of `mem_mib` fits: the host keeps a reserve, and guest
/// memory not yet touched by running guests counts as taken.
pub fn fits(mem_mib: u32, available_mib: u64, untouched_mib: u64) -> Result<(), String> {
    let need = mem_mib as u64 + HOST_RESERVE_MIB;
    let have = available_mib.saturating_sub(untouched_mib);
    if have >= need {
        Ok(())
    } else {
        Err(format!(
            "out of memory for another guest: it needs {mem_mib} MiB (and {HOST_RESERVE_MIB} MiB kept for this system), {have} MiB is free{}; stop a guest (finnix stop NAME) or ask for less (--mem)",
            if untouched_mib > 0 { format!(" once the running guests use the memory they were given ({untouched_mib} MiB more)") } else { String::new() }
        ))
    }
}

/// One `finnix list` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub running: bool,
    pub address: String,
    pub mem_mib: u32,
    pub medium: String,
}

pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<12} {:<8} {:<15} {:>7}  {}\n",
        "NAME", "STATE", "ADDRESS", "MEMORY", "MEDIUM"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<12} {:<8} {:<15} {:>4} MiB  {}\n",
            r.name,
            if r.running { "running" } else { "stopped" },
            r.address,
            r.mem_mib,
            r.medium
        ));
    }
    out
}

/// The interface of the default route, from /proc/net/route.
pub fn default_route_iface(route: &str) -> Option<String> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000" && f[0] != BRIDGE).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_macs_and_taps() {
        assert_eq!(address(1), "10.182.250.11");
        assert_eq!(mac(1), "02:46:4e:58:00:01");
        assert_eq!(tap("finnix1"), "fnx-finnix1");
        assert!(tap("abcdefghij").len() <= 15);
    }

    #[test]
    fn names_are_checked_and_allocated() {
        assert!(valid_name("finnix1").is_ok());
        assert!(
            valid_name("Finnix").is_err()
                && valid_name("").is_err()
                && valid_name("abcdefghijk").is_err()
                && valid_name("-x").is_err()
        );
        assert_eq!(next_free(&[], &[]), Some(("finnix1".into(), 1)));
        assert_eq!(
            next_free(&["finnix1".into()], &[1]),
            Some(("finnix2".into(), 2))
        );
        // A guest named finnix2 by hand holding index 1: the next takes index 2, name finnix3.
        assert_eq!(
            next_free(&["finnix2".into()], &[1]),
            Some(("finnix3".into(), 2))
        );
    }

    #[test]
    fn create_arguments() {
        let a = parse_create(&[
            "--mem",
            "96M",
            "--name=web",
            "--kernel",
            "/k",
            "--no-network",
        ])
        .unwrap();
        assert_eq!(a.mem_mib, 96);
        assert_eq!(a.name.as_deref(), Some("web"));
        assert_eq!(a.kernel.as_deref(), Some("/k"));
        assert!(!a.network);
        assert_eq!(parse_create(&[]).unwrap().mem_mib, 64);
        assert!(parse_create(&["--mem", "8"])
            .unwrap_err()
            .contains("at least 32"));
        assert!(parse_create(&["--bogus"])
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse_create(&["--mem"]).unwrap_err().contains("needs"));
        assert!(parse_create(&["--name", "Bad Name"]).is_err());
    }

    fn guest() -> Guest {
        Guest {
            name: "finnix1".into(),
            index: 1,
            mem_mib: 64,
            kernel: "/usr/share/finnix-uml/linux".into(),
            initrd: "/usr/share/finnix-uml/initrd.img".into(),
            medium: "/dev/sr0".into(),
            squashroot: false,
            network: true,
            tmpdir: "/tmp".into(),
            sshkeys: vec!["ssh-ed25519%20AAAA%20me@host".into()],
        }
    }

    #[test]
    fn state_files_round_trip() {
        let g = guest();
        assert_eq!(Guest::from_env(&g.to_env()).unwrap(), g);
        assert!(Guest::from_env("NAME=x\n").unwrap_err().contains("INDEX"));
        assert!(Guest::from_env(&g.to_env().replace("INDEX=1", "INDEX=one"))
            .unwrap_err()
            .contains("not a number"));
        assert_eq!(
            dhcp_hosts(&[
                g.clone(),
                Guest {
                    network: false,
                    ..g
                }
            ]),
            "02:46:4e:58:00:01,10.182.250.11,finnix1\n"
        );
    }

    #[test]
    fn memory_checks() {
        let m = "MemTotal:        1000000 kB\nMemAvailable:     204800 kB\n";
        assert_eq!(meminfo_mib(m, "MemAvailable"), Some(200));
        assert_eq!(meminfo_mib(m, "Mem"), None);
        assert!(fits(64, 200, 0).is_ok());
        assert!(fits(64, 200, 120).unwrap_err().contains("out of memory"));
        assert!(fits(180, 200, 0).is_err());
        assert!(is_squashfs(b"hsqs\0\0") && !is_squashfs(b"\0\0\0\0CD001"));
    }

    #[test]
    fn ssh_keys_become_boot_words() {
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIG4oVO708dWQl79ahBQ3Z/K04FRF6ersH9GNw/2XYe5c";
        let text = format!("# mine\nssh-ed25519 {key} me@host 100%\n");
        let words = ssh_key_words("k.pub", &text).unwrap();
        assert_eq!(words, [format!("ssh-ed25519%20{key}%20me@host%20100%25")]);
        // What the guest decodes is the line itself.
        assert_eq!(
            crate::access::authorized_key(&words[0]).unwrap(),
            format!("ssh-ed25519 {key} me@host 100%")
        );
        let e = ssh_key_words("k.pub", "\nnot a key\n").unwrap_err();
        assert!(e.starts_with("--ssh-key k.pub line 2: "), "{e}");
        assert!(ssh_key_words("e", "# none\n")
            .unwrap_err()
            .contains("no public key"));
    }

    #[test]
    fn the_uml_command_line() {
        let v = guest().uml_args("/run/finnix/uml");
        assert_eq!(
            &v[..5],
            [
                "mem=64M",
                "initrd=/usr/share/finnix-uml/initrd.img",
                "root=/dev/ubda",
                "ubdar=/dev/sr0",
                "uml"
            ]
        );
        assert!(v.contains(&"eth0=tuntap,fnx-finnix1,02:46:4e:58:00:01".to_string()));
        assert!(v.contains(&"umid=finnix1".to_string()) && v.contains(&"noreboot".to_string()));
        assert!(v.contains(&"sshkey=ssh-ed25519%20AAAA%20me@host".to_string()));
    }

    #[test]
    fn default_route() {
        let route = "Iface\tDestination\tGateway\tFlags\nfinnixbr0\t00FAB60A\t00000000\t0001\neth0\t00000000\t0102A8C0\t0003\n";
        assert_eq!(default_route_iface(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_iface("Iface\tDestination\n"), None);
    }

    #[test]
    fn list_table() {
        let t = table(&[Row {
            name: "finnix1".into(),
            running: true,
            address: address(1),
            mem_mib: 64,
            medium: "/dev/sr0".into(),
        }]);
        assert!(
            t.contains("finnix1      running  10.182.250.11     64 MiB  /dev/sr0"),
            "{t}"
        );
    }
}
