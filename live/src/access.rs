//! The boot words the live system reads (`finnix boot start`, in every
//! mode): reaching a running Finnix (`hostname=`, `ip=`, `passwd=`,
//! `sshkey=`, `sshd`) and `nozram`. This
//! module is pure: it reads the words and checks their values; `remote.rs`
//! applies them.
//!
//! A value that is wrong is reported (naming the word and what is wrong)
//! and left out; the boot goes on without it.

/// What the command line asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Access {
    /// `sshd`: start the SSH server (host keys made at this boot).
    pub sshd: bool,
    /// `hostname=<name>`.
    pub hostname: Option<String>,
    /// `ip=<value>`, the kernel's syntax (`finnix_contract::ip`).
    pub ip: Option<String>,
    /// `passwd=<password>`, `passwd=<user>:<password>`, or either with a
    /// crypt hash (`$6$...`, `$y$...`) in place of the password.
    pub passwd: Option<String>,
    /// `nozram`: no compressed swap in RAM on a small machine.
    pub nozram: bool,
    /// `sshkey=<key>` (any number): root's authorized keys; one that is
    /// added starts the SSH server without `sshd`.
    pub sshkeys: Vec<String>,
    /// Wi-Fi networks (the settings file's `wifi` lines, first wanted
    /// most), checked when read (`wifi_network`).
    pub wifi: Vec<WifiNetwork>,
}

/// A Wi-Fi network to join: its name and, for WPA2-PSK, its passphrase
/// (8 to 63 printable ASCII characters) or raw key (64 hex digits); none
/// for an open network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WifiNetwork {
    pub ssid: String,
    pub passphrase: Option<String>,
}

impl Access {
    /// The words of a kernel command line (`/proc/cmdline`).
    pub fn from_cmdline(cmdline: &str) -> Access {
        let mut a = Access::default();
        for word in finnix_contract::cmdline::words(cmdline) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word.as_str(), None),
            };
            match (key, value) {
                ("sshd", None) => a.sshd = true,
                ("nozram", None) => a.nozram = true,
                ("hostname", Some(v)) => a.hostname = Some(v.to_string()),
                ("ip", Some(v)) => a.ip = Some(v.to_string()),
                ("passwd", Some(v)) => a.passwd = Some(v.to_string()),
                ("sshkey", Some(v)) => a.sshkeys.push(v.to_string()),
                _ => {}
            }
        }
        a
    }

    /// `self` (the settings file's) with `over` (the command line's) laid
    /// on top: the command line wins for single values, keys add up.
    pub fn under(mut self, over: Access) -> Access {
        self.sshd |= over.sshd;
        self.nozram |= over.nozram;
        self.hostname = over.hostname.or(self.hostname);
        self.ip = over.ip.or(self.ip);
        self.passwd = over.passwd.or(self.passwd);
        self.sshkeys.extend(over.sshkeys);
        self.wifi.extend(over.wifi);
        self
    }

    /// The SSH server runs: `sshd` was given, or a key was added (a key is
    /// given for nothing else; an unreadable one starts nothing).
    pub fn wants_sshd(&self, keys_added: usize) -> bool {
        self.sshd || keys_added > 0
    }
}

/// The settings file's name, at the root of a FAT partition: one labelled
/// [`SETTINGS_LABEL`], or the EFI partition of the stick Finnix booted from.
pub const SETTINGS_FILE: &str = "finnix.conf";
/// The FAT label (`mkfs.fat -n FINNIXCFG`, `fatlabel`) of a partition a
/// user adds for the settings file.
pub const SETTINGS_LABEL: &str = "FINNIXCFG";

/// The settings file: `name = value` lines (`#` comments, blank lines; a
/// value may be in double quotes): `hostname`, `ip`, `passwd`, `sshkey`
/// (repeatable), `sshd = yes|no`, `zram = yes|no`, `wifi = "<network>"
/// ["<passphrase>"]` (repeatable, the first wanted most). Any mistake
/// refuses the whole file, naming the line.
pub fn settings_file(text: &str) -> Result<Access, String> {
    let mut a = Access::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: String| {
            format!(
                "{SETTINGS_FILE} line {}: {why}; the file is not used",
                n + 1
            )
        };
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(format!("{line:?} is not <setting> = <value>")));
        };
        let (key, mut value) = (key.trim(), value.trim());
        if key == "wifi" {
            // Two values, each in double quotes when it has a space.
            if value.matches('"').count() % 2 == 1 {
                return Err(at("the value of wifi has an unbalanced double quote".into()));
            }
            let words = finnix_contract::cmdline::words(value);
            let network = match words.as_slice() {
                [ssid] => wifi_network(ssid, None),
                [ssid, pass] => wifi_network(ssid, Some(pass)),
                _ => Err(format!(
                    "wifi is \"<network name>\" or \"<network name>\" \"<passphrase>\", not {value:?}"
                )),
            };
            a.wifi.push(network.map_err(at)?);
            continue;
        }
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        } else if value.contains('"') {
            return Err(at(format!(
                "the value of {key} has an unbalanced double quote"
            )));
        }
        let yes_no = |v: &str| match v {
            "yes" | "true" | "on" | "1" => Ok(true),
            "no" | "false" | "off" | "0" => Ok(false),
            other => Err(at(format!("{key} is yes or no, not {other:?}"))),
        };
        match key {
            "hostname" => a.hostname = Some(value.to_string()),
            "ip" => a.ip = Some(value.to_string()),
            "passwd" => a.passwd = Some(value.to_string()),
            "sshkey" => a.sshkeys.push(value.to_string()),
            "sshd" => a.sshd = yes_no(value)?,
            "zram" => a.nozram = !yes_no(value)?,
            other => {
                return Err(at(format!(
                    "unknown setting {other:?} (the settings are hostname, ip, passwd, sshkey, sshd, zram, wifi)"
                )))
            }
        }
        if value.is_empty() {
            return Err(at(format!("{key} has no value")));
        }
    }
    Ok(a)
}

/// A Wi-Fi network as a user wrote it: a name of 1 to 32 bytes; a
/// passphrase of 8 to 63 printable ASCII characters (WPA2-PSK, as every
/// access point takes it) or the 64 hex digits of the key itself.
pub fn wifi_network(ssid: &str, passphrase: Option<&str>) -> Result<WifiNetwork, String> {
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(format!(
            "the Wi-Fi network name {ssid:?} has {} bytes; a name has 1 to 32",
            ssid.len()
        ));
    }
    if let Some(p) = passphrase {
        let hex = p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit());
        if !hex && !(8..=63).contains(&p.len()) {
            return Err(format!(
                "the passphrase of {ssid:?} has {} characters; WPA2 takes 8 to 63 (or the key as 64 hex digits)",
                p.len()
            ));
        }
        if !p.chars().all(|c| (' '..='~').contains(&c)) {
            return Err(format!(
                "the passphrase of {ssid:?} has a character that is not printable ASCII"
            ));
        }
    }
    Ok(WifiNetwork {
        ssid: ssid.to_string(),
        passphrase: passphrase.map(str::to_string),
    })
}

/// wpa_supplicant's configuration for `networks` (the first wanted most):
/// the name in hex (any byte goes), WPA-PSK with the passphrase or the
/// key, or no key management for an open network.
pub fn wpa_supplicant_conf(ctrl_dir: &str, networks: &[WifiNetwork]) -> String {
    let mut out = format!("# written by finnix (wifi-connect)\nctrl_interface={ctrl_dir}\n");
    for (i, n) in networks.iter().enumerate() {
        let hex: String = n.ssid.bytes().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("network={{\n\tssid={hex}\n\tscan_ssid=1\n"));
        match &n.passphrase {
            Some(p) if p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit()) => {
                out.push_str(&format!("\tkey_mgmt=WPA-PSK\n\tpsk={p}\n"))
            }
            Some(p) => out.push_str(&format!("\tkey_mgmt=WPA-PSK\n\tpsk=\"{p}\"\n")),
            None => out.push_str("\tkey_mgmt=NONE\n"),
        }
        out.push_str(&format!("\tpriority={}\n}}\n", networks.len() - i));
    }
    out
}

/// The networks as settings-file lines (how `finnix boot start` hands the
/// file's networks to a later `wifi-connect`).
pub fn wifi_lines(networks: &[WifiNetwork]) -> String {
    networks
        .iter()
        .map(|n| match &n.passphrase {
            Some(p) => format!("wifi = \"{}\" \"{p}\"\n", n.ssid),
            None => format!("wifi = \"{}\"\n", n.ssid),
        })
        .collect()
}

/// A host name: labels of letters, digits and hyphens (RFC 1123), each 1
/// to 63 characters and not starting or ending with a hyphen, 253 at most.
pub fn hostname(value: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "hostname={value}: {why}; the host name stays as it was"
        ))
    };
    if value.is_empty() || value.len() > 253 {
        return bad("a host name has 1 to 253 characters");
    }
    for label in value.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part has 1 to 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("only letters, digits, hyphens and dots are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part may not start or end with a hyphen");
        }
    }
    Ok(value.to_string())
}

/// /etc/hosts with the host's own line (127.0.1.1, Debian's) naming `name`.
pub fn hosts_file(current: &str, name: &str) -> String {
    let short = name.split('.').next().unwrap_or(name);
    let own = if short == name {
        format!("127.0.1.1\t{name}")
    } else {
        format!("127.0.1.1\t{name} {short}")
    };
    let mut out = String::new();
    let mut replaced = false;
    for line in current.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            if !replaced {
                out.push_str(&own);
                out.push('\n');
                replaced = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&own);
        out.push('\n');
    }
    out
}

/// What `passwd=` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password {
    pub user: String,
    /// The password, or its crypt hash when `hashed`.
    pub secret: String,
    pub hashed: bool,
}

impl Password {
    /// The line `chpasswd` reads (`chpasswd -e` when hashed).
    pub fn chpasswd_line(&self) -> String {
        format!("{}:{}\n", self.user, self.secret)
    }
}

/// A user name as useradd takes it (Debian's NAME_REGEX, lower case).
pub fn user_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `passwd=`: `<password>` (root's), `<user>:<password>`, or a crypt hash
/// (starting with `$`) in place of either password. A root password that
/// contains a colon is written `root:<password>`.
pub fn password(value: &str) -> Result<Password, String> {
    let (user, secret) = match value.split_once(':') {
        Some((u, s)) if user_name_ok(u) => (u, s),
        _ => ("root", value),
    };
    let shown = if secret.starts_with('$') {
        format!("passwd={user}:<hash>")
    } else {
        "passwd=".to_string()
    };
    if secret.is_empty() {
        return Err(format!(
            "{shown}: the password is empty; no password was set (an empty password would let anyone in)"
        ));
    }
    if secret.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{shown}: the password holds a control character; no password was set"
        ));
    }
    let hashed = secret.starts_with('$');
    if hashed {
        crypt_hash(secret).map_err(|e| {
            format!("{shown}: {e}; no password was set (make one with `openssl passwd -6` or `mkpasswd -m yescrypt`)")
        })?;
    }
    Ok(Password {
        user: user.to_string(),
        secret: secret.to_string(),
        hashed,
    })
}

/// The characters of crypt(3)'s salts and hashes.
fn crypt_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/')
}

/// A crypt hash libxcrypt can check: `$1$` (MD5), `$5$` and `$6$`
/// (SHA-256, SHA-512, optional `rounds=N$`), `$y$` (yescrypt), `$2b$`
/// (bcrypt). The error says what is wrong with it.
pub fn crypt_hash(hash: &str) -> Result<(), String> {
    let fields: Vec<&str> = hash.split('$').collect();
    // "$6$salt$hash" splits into ["", "6", "salt", "hash"].
    let id = fields.get(1).copied().unwrap_or("");
    let check = |salt: &str, max_salt: usize, body: &str, body_len: usize| -> Result<(), String> {
        if !crypt_chars(salt) || salt.len() > max_salt {
            return Err(format!(
                "the ${id}$ hash's salt must be 1 to {max_salt} characters of a-z A-Z 0-9 . /"
            ));
        }
        if !crypt_chars(body) || body.len() != body_len {
            return Err(format!(
                "the ${id}$ hash's last field must be {body_len} characters of a-z A-Z 0-9 . / (it has {})",
                body.len()
            ));
        }
        Ok(())
    };
    match (id, fields.len()) {
        ("1", 4) => check(fields[2], 8, fields[3], 22),
        ("5" | "6", 4 | 5) => {
            let rest = &fields[2..];
            let rest = match rest {
                [r, s, b] if r.starts_with("rounds=") => {
                    r["rounds=".len()..]
                        .parse::<u32>()
                        .map_err(|_| format!("the ${id}$ hash's {r} is not rounds=<number>"))?;
                    [*s, *b]
                }
                [s, b] => [*s, *b],
                _ => return Err(format!("a ${id}$ hash is ${id}$[rounds=N$]<salt>$<hash>")),
            };
            check(rest[0], 16, rest[1], if id == "5" { 43 } else { 86 })
        }
        ("y", 5) => {
            if !crypt_chars(fields[2]) {
                return Err("the $y$ hash's parameters (like j9T) are missing or malformed".into());
            }
            check(fields[3], 86, fields[4], 43)
        }
        ("2a" | "2b" | "2y", 4) => {
            let cost_ok = fields[2].len() == 2
                && fields[2].parse::<u8>().is_ok_and(|c| (4..=31).contains(&c));
            if !cost_ok {
                return Err(format!(
                    "the ${id}$ hash's cost must be two digits, 04 to 31"
                ));
            }
            if fields[3].len() != 53 || !crypt_chars(fields[3]) {
                return Err(format!(
                    "the ${id}$ hash's salt and hash must be 53 characters"
                ));
            }
            Ok(())
        }
        ("1" | "5" | "6" | "y" | "2a" | "2b" | "2y", _) => Err(format!(
            "the ${id}$ hash has the wrong number of $-separated fields"
        )),
        _ => Err(format!(
            "a crypt hash starts with $1$, $5$, $6$, $y$ or $2b$, not ${id}$"
        )),
    }
}

/// The key types OpenSSH's server accepts in authorized_keys.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// `%XX` escapes decoded (`%20` a space, `%25` a percent sign).
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "{:?} is not a %XX escape",
                        s.get(i..(i + 3).min(s.len())).unwrap_or("%")
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded key is not UTF-8".to_string())
}

/// Standard base64 (padding optional), or None.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (s.len() % 4 != 1).then_some(out)
}

/// `sshkey=`: an OpenSSH public key line, written so a kernel command line
/// carries it: in double quotes (`sshkey="ssh-ed25519 AAAA... me@host"`),
/// with `%20` for each space, or with colons for the spaces
/// (`sshkey=ssh-ed25519:AAAA...:me@host`). The key is decoded and its type
/// checked against the type its blob names. Returns the authorized_keys line.
pub fn authorized_key(value: &str) -> Result<String, String> {
    let shown: String = if value.chars().count() > 40 {
        format!("{}...", value.chars().take(40).collect::<String>())
    } else {
        value.to_string()
    };
    let fail = |why: String| format!("sshkey={shown}: {why}; the key was not added");
    let line = percent_decode(value).map_err(fail)?;
    let line = if line.contains(char::is_whitespace) {
        line
    } else {
        line.splitn(3, ':').collect::<Vec<_>>().join(" ")
    };
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return Err(fail(
            "expected <type> <base64> [comment], with %20 or : for the spaces".into(),
        ));
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(fail(format!(
            "{kind:?} is not a key type OpenSSH accepts ({})",
            KEY_TYPES.join(", ")
        )));
    }
    let bytes = base64_decode(blob).ok_or_else(|| fail("its key is not base64".into()))?;
    let named = bytes
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| bytes.get(4..4 + n))
        .ok_or_else(|| fail("its key is cut short".into()))?;
    if named != kind.as_bytes() {
        return Err(fail(format!(
            "its key is a {:?} key, not {kind}",
            String::from_utf8_lossy(named)
        )));
    }
    let comment: Vec<&str> = fields.collect();
    Ok(if comment.is_empty() {
        format!("{kind} {blob}")
    } else {
        format!("{kind} {blob} {}", comment.join(" "))
    })
}

/// /etc/ssh/sshd_config.d/finnix.conf: password logins only when `passwd=`
/// gave a password, and root's only when it was root's.
pub fn sshd_config(password_user: Option<&str>) -> String {
    let (password, root) = match password_user {
        Some("root") => ("yes", "yes"),
        Some(_) => ("yes", "prohibit-password"),
        None => ("no", "prohibit-password"),
    };
    format!(
        "# Written at boot by `finnix boot start` from the boot parameters\n\
         # (passwd=, sshkey=): password logins only when a password was given.\n\
         PasswordAuthentication {password}\n\
         PermitRootLogin {root}\n\
         KbdInteractiveAuthentication no\n\
         PermitEmptyPasswords no\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIG4oVO708dWQl79ahBQ3Z/K04FRF6ersH9GNw/2XYe5c";

    #[test]
    fn reads_the_words() {
        let a = Access::from_cmdline(
            "root=/dev/ubda sshd hostname=box passwd=\"a b\" sshkey=x sshkey=y ip=dhcp sshdx=1 nozram",
        );
        assert!(a.sshd && a.wants_sshd(0) && a.nozram);
        assert_eq!(a.hostname.as_deref(), Some("box"));
        assert_eq!(a.passwd.as_deref(), Some("a b"));
        assert_eq!(a.sshkeys, ["x", "y"]);
        assert_eq!(a.ip.as_deref(), Some("dhcp"));
        let none = Access::from_cmdline("uml mem=64M sshd=1 passwd");
        assert_eq!(none, Access::default());
        assert!(!none.wants_sshd(0));
        assert!(Access::from_cmdline("sshkey=k").wants_sshd(1));
    }

    #[test]
    fn the_settings_file() {
        let text = "# on the stick\n\nhostname = rack-7\nsshd = yes\nsshkey = \"ssh-ed25519 AAAA me\"\nsshkey=x\nzram = no\n";
        let a = settings_file(text).unwrap();
        assert_eq!(a.hostname.as_deref(), Some("rack-7"));
        assert!(a.sshd && a.nozram);
        assert_eq!(a.sshkeys, ["ssh-ed25519 AAAA me", "x"]);
        // The command line wins; keys add up.
        let cmd = Access::from_cmdline("hostname=box sshkey=y");
        let both = a.under(cmd);
        assert_eq!(both.hostname.as_deref(), Some("box"));
        assert_eq!(both.sshkeys, ["ssh-ed25519 AAAA me", "x", "y"]);
        assert!(both.sshd);
        for (bad, says) in [
            (
                "hostname = a\nsshd\n",
                "line 2: \"sshd\" is not <setting> = <value>",
            ),
            ("hotsname = a\n", "line 1: unknown setting \"hotsname\""),
            ("sshd = maybe\n", "line 1: sshd is yes or no"),
            (
                "# c\npasswd = \"x\n",
                "line 2: the value of passwd has an unbalanced",
            ),
            ("ip =\n", "line 1: ip has no value"),
        ] {
            let e = settings_file(bad).unwrap_err();
            assert!(
                e.starts_with("finnix.conf ")
                    && e.contains(says)
                    && e.ends_with("the file is not used"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn wifi_networks_in_the_settings_file() {
        let text = "wifi = \"Cafe Net\" \"correct horse\"\nwifi = open-one\n";
        let a = settings_file(text).unwrap();
        let want = [
            WifiNetwork {
                ssid: "Cafe Net".into(),
                passphrase: Some("correct horse".into()),
            },
            WifiNetwork {
                ssid: "open-one".into(),
                passphrase: None,
            },
        ];
        assert_eq!(a.wifi, want);
        // Handed on to wifi-connect through the same syntax.
        assert_eq!(settings_file(&wifi_lines(&a.wifi)).unwrap().wifi, want);
        let conf = wpa_supplicant_conf("/run/wpa_supplicant", &a.wifi);
        assert!(conf.contains("ctrl_interface=/run/wpa_supplicant\n"));
        assert!(conf.contains(
            "\tssid=43616665204e6574\n\tscan_ssid=1\n\tkey_mgmt=WPA-PSK\n\tpsk=\"correct horse\"\n\tpriority=2\n"
        ));
        assert!(conf.contains("\tkey_mgmt=NONE\n\tpriority=1\n}\n"));
        let raw = "0123456789abcdef".repeat(4);
        let n = wifi_network("x", Some(&raw)).unwrap();
        assert!(wpa_supplicant_conf("/r", &[n]).contains(&format!("\tpsk={raw}\n")));
        for (bad, says) in [
            (
                "wifi = \"a\" \"short\"\n",
                "line 1: the passphrase of \"a\" has 5 characters; WPA2 takes 8 to 63",
            ),
            (
                "\nwifi = \"a b\n",
                "line 2: the value of wifi has an unbalanced double quote",
            ),
            ("wifi = a b c\n", "line 1: wifi is \"<network name>\""),
            ("wifi =\n", "line 1: wifi is"),
            (
                &format!("wifi = {}\n", "n".repeat(33)),
                "has 33 bytes; a name has 1 to 32",
            ),
            ("wifi = \"a\" \"pass\u{e9}word1\"\n", "not printable ASCII"),
        ] {
            let e = settings_file(bad).unwrap_err();
            assert!(
                e.contains(says) && e.ends_with("the file is not used"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn host_names() {
        assert_eq!(
            hostname("rescue-1.example.org").unwrap(),
            "rescue-1.example.org"
        );
        for bad in ["", "-a", "a-", "a_b", "a..b", &"x".repeat(64), "ä"] {
            let e = hostname(bad).unwrap_err();
            assert!(e.starts_with(&format!("hostname={bad}:")), "{e}");
        }
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tfinnix\n::1\tlocalhost\n";
        assert_eq!(
            hosts_file(hosts, "box.lan"),
            "127.0.0.1\tlocalhost\n127.0.1.1\tbox.lan box\n::1\tlocalhost\n"
        );
        assert_eq!(hosts_file("", "box"), "127.0.1.1\tbox\n");
    }

    #[test]
    fn password_forms() {
        let p = password("s3cret").unwrap();
        assert_eq!((p.user.as_str(), p.hashed), ("root", false));
        assert_eq!(p.chpasswd_line(), "root:s3cret\n");
        let p = password("alice:pa:ss").unwrap();
        assert_eq!((p.user.as_str(), p.secret.as_str()), ("alice", "pa:ss"));
        // Not a user name before the colon: all of it is root's password.
        let p = password("Pa:ss").unwrap();
        assert_eq!((p.user.as_str(), p.secret.as_str()), ("root", "Pa:ss"));
        let sha = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        let p = password(&format!("bob:{sha}")).unwrap();
        assert!(p.hashed && p.user == "bob");
        assert!(
            password("$5$rounds=5000$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA").is_ok()
        );
        assert!(password(
            "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0"
        )
        .is_ok());
        assert!(password("$2b$12$R9h/cIPz0gi.URNNX3kh2OHOw2J0/MTYvLx.kiErzORhX4aQ.pv.q").is_ok());
    }

    #[test]
    fn bad_passwords_say_what_is_wrong_and_never_echo_the_password() {
        for (value, says) in [
            ("", "empty"),
            ("root:", "empty"),
            ("$6$salt$short", "86 characters"),
            ("$6$salt", "fields"),
            ("$6$rounds=x$salt$h", "rounds=x"),
            ("$9$abc$def", "not $9$"),
            ("$1$toolongsalt$0123456789012345678901", "salt"),
            (
                "$2b$99$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "cost",
            ),
            ("$y$j9T$salt", "fields"),
            ("a\tb", "control"),
        ] {
            let e = password(value).unwrap_err();
            assert!(e.contains(says), "{value}: {e}");
            assert!(e.contains("no password was set"), "{e}");
            if !value.starts_with('$') && value.len() > 4 {
                assert!(!e.contains(value), "{e}");
            }
        }
    }

    #[test]
    fn keys_in_every_spelling() {
        let want = format!("ssh-ed25519 {ED25519} me@host");
        assert_eq!(
            authorized_key(&format!("ssh-ed25519 {ED25519} me@host")).unwrap(),
            want
        );
        assert_eq!(
            authorized_key(&format!("ssh-ed25519%20{ED25519}%20me@host")).unwrap(),
            want
        );
        assert_eq!(
            authorized_key(&format!("ssh-ed25519:{ED25519}:me@host")).unwrap(),
            want
        );
        assert_eq!(
            authorized_key(&format!("ssh-ed25519:{ED25519}")).unwrap(),
            format!("ssh-ed25519 {ED25519}")
        );
    }

    #[test]
    fn unreadable_keys_are_refused_by_name() {
        for (value, says) in [
            ("AAAA", "expected <type>"),
            (&format!("ssh-dss:{ED25519}") as &str, "not a key type"),
            ("ssh-ed25519:not*base64", "not base64"),
            ("ssh-ed25519:AAAAC3Nz", "cut short"),
            (
                &format!("ssh-rsa:{ED25519}"),
                "\"ssh-ed25519\" key, not ssh-rsa",
            ),
            ("ssh-ed25519%2", "escape"),
        ] {
            let e = authorized_key(value).unwrap_err();
            assert!(
                e.contains(says) && e.ends_with("the key was not added"),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a-b_").is_none());
    }

    #[test]
    fn password_logins_only_with_a_password() {
        let none = sshd_config(None);
        assert!(
            none.contains("PasswordAuthentication no\n")
                && none.contains("PermitRootLogin prohibit-password\n")
        );
        let root = sshd_config(Some("root"));
        assert!(
            root.contains("PasswordAuthentication yes\n") && root.contains("PermitRootLogin yes\n")
        );
        let user = sshd_config(Some("alice"));
        assert!(
            user.contains("PasswordAuthentication yes\n")
                && user.contains("PermitRootLogin prohibit-password\n")
        );
    }
}
