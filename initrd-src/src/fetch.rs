//! `fetch=`: the squashfs downloaded over HTTP into RAM and checked against
//! `fetchsha256=` before anything of it is used. A dropped connection is
//! resumed (`Range:`), a stalled one dropped and resumed; a 404, a refused
//! connection or a stalled server after the retries end the boot with a
//! report naming the URL; too little memory is said before the download.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte for this long: the transfer has stopped.
const STALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts in a row that bring no byte before giving up.
const ATTEMPTS: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_secs(3);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{url}: {scheme}:// is not supported; serve the files over http:// (the sha256 on the boot line guards them)"
            ))
        }
        None => return Err(format!("{url}: not a URL; fetch= takes http://host[:port]/path")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| format!("{url}: port {p:?} is not a number"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// The status and headers of a response.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub length: Option<u64>,
    /// `Content-Range: bytes <start>-<end>/<total>`: start and total.
    pub range: Option<(u64, u64)>,
    pub chunked: bool,
}

pub fn parse_head(text: &str) -> Result<Head, String> {
    let mut lines = text.lines();
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !proto.starts_with("HTTP/") {
        return Err(format!("not an HTTP response: {status_line:?}"));
    }
    let mut h = Head {
        status: code
            .parse()
            .map_err(|_| format!("not an HTTP status: {status_line:?}"))?,
        reason: parts.next().unwrap_or("").trim().to_string(),
        ..Head::default()
    };
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => h.length = v.parse().ok(),
            "transfer-encoding" => h.chunked = v.eq_ignore_ascii_case("chunked"),
            "content-range" => {
                let r = v.strip_prefix("bytes ").unwrap_or(v);
                h.range = r.split_once('/').and_then(|(span, total)| {
                    Some((span.split_once('-')?.0.parse().ok()?, total.parse().ok()?))
                });
            }
            _ => {}
        }
    }
    Ok(h)
}

/// The hexadecimal digest a `fetchsha256=` must be.
pub fn check_expected(hex: &str) -> Result<(), String> {
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "fetchsha256={hex}: a sha256 is 64 hexadecimal digits (the netboot script from the release carries it)"
        ))
    }
}

fn mib(bytes: u64) -> u64 {
    (bytes + (1 << 20) - 1) >> 20
}

/// One attempt's end.
enum Attempt {
    Done,
    /// The connection ended early or stalled: worth resuming.
    Dropped(String),
    /// Nothing to retry (a 404, a wrong size).
    Fatal(Vec<String>),
}

/// What a download needs across its attempts.
struct Download<'a> {
    url: &'a str,
    u: Url,
    addr: SocketAddr,
    dest: String,
    got: u64,
    total: Option<u64>,
    hash: Sha256,
    file: Option<fs::File>,
    last_note: Instant,
    started: Instant,
}

/// Download `url` into a tmpfs at `dir`; the path of the file, verified.
pub fn fetch(
    url: &str,
    expected: Option<&str>,
    dir: &str,
    dns: &[Ipv4Addr],
) -> Result<String, Vec<String>> {
    if let Some(e) = expected {
        check_expected(e).map_err(|e| vec![e])?;
    }
    let u = parse_url(url).map_err(|e| vec![e])?;
    let ip = resolve(&u.host, dns).map_err(|e| vec![format!("{url}: {e}")])?;
    let mut d = Download {
        url,
        addr: SocketAddr::from((ip, u.port)),
        u,
        dest: format!("{dir}/FINNIX"),
        got: 0,
        total: None,
        hash: Sha256::new(),
        file: None,
        last_note: Instant::now(),
        started: Instant::now(),
    };
    say!("[*] Fetching the root filesystem from {url}");
    let mut failures = 0;
    let mut reasons = Vec::new();
    loop {
        let before = d.got;
        match d.attempt(dir) {
            Attempt::Done => break,
            Attempt::Fatal(details) => return Err(details),
            Attempt::Dropped(why) => {
                if d.got > before {
                    failures = 0;
                }
                failures += 1;
                say!("    {why}");
                reasons.push(why);
                if failures >= ATTEMPTS {
                    return Err(vec![
                        format!("{url}: gave up after {ATTEMPTS} attempts in a row without data; the last: {}", reasons.last().map(String::as_str).unwrap_or("")),
                        format!("{} of {} received", fmt_mib(d.got), d.total.map(fmt_mib).unwrap_or_else(|| "?".into())),
                        "is the server running and reachable from this machine?".into(),
                    ]);
                }
                say!(
                    "    retrying in {} s ({} of {ATTEMPTS})",
                    RETRY_PAUSE.as_secs(),
                    failures + 1
                );
                std::thread::sleep(RETRY_PAUSE);
            }
        }
    }
    let digest = hex(&d.hash.finalize());
    let secs = d.started.elapsed().as_secs_f64();
    say!("    {} in {:.0} s; sha256 {digest}", fmt_mib(d.got), secs);
    match expected {
        Some(e) if e != digest => {
            let _ = fs::remove_file(&d.dest);
            Err(vec![
                format!("{url}: sha256 mismatch, the download is refused"),
                format!("expected (fetchsha256=): {e}"),
                format!("received:                {digest}"),
                "the server holds another build of the squashfs, or it was changed: serve the files of one release with its own netboot script".into(),
            ])
        }
        Some(_) => {
            say!("    sha256 matches fetchsha256=");
            Ok(d.dest)
        }
        None => {
            say!("    WARNING: no fetchsha256= on the boot line: the download is not verified");
            Ok(d.dest)
        }
    }
}

fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Download<'_> {
    fn attempt(&mut self, dir: &str) -> Attempt {
        let stream = match TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(e) => return Attempt::Dropped(format!("connecting to {}: {e}", self.addr)),
        };
        let _ = stream.set_read_timeout(Some(STALL_TIMEOUT));
        let _ = stream.set_write_timeout(Some(STALL_TIMEOUT));
        let range = if self.got > 0 {
            format!("Range: bytes={}-\r\n", self.got)
        } else {
            String::new()
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: finnix-init\r\nAccept-Encoding: identity\r\n{range}Connection: close\r\n\r\n",
            self.u.path, self.u.host
        );
        if let Err(e) = (&stream).write_all(request.as_bytes()) {
            return Attempt::Dropped(format!("sending the request to {}: {e}", self.addr));
        }
        let mut reader = BufReader::with_capacity(1 << 16, stream);
        let head = match read_head(&mut reader) {
            Ok(h) => h,
            Err(e) => return Attempt::Dropped(format!("reading the response: {e}")),
        };
        if let Err(a) = self.accept(&head, dir) {
            return a;
        }
        self.body(&mut reader)
    }

    /// Check the response against what is wanted; set up the file.
    fn accept(&mut self, head: &Head, dir: &str) -> Result<(), Attempt> {
        let fatal = |lines: Vec<String>| Err(Attempt::Fatal(lines));
        match head.status {
            200 => {
                if self.got > 0 {
                    // The server ignored Range: start over.
                    self.got = 0;
                    self.hash = Sha256::new();
                    self.file = None;
                }
            }
            206 if head.range.map(|r| r.0) == Some(self.got) => {}
            206 => {
                return fatal(vec![format!(
                    "{}: asked for bytes from {}, the server sent {:?}",
                    self.url, self.got, head.range
                )])
            }
            500..=599 => {
                return Err(Attempt::Dropped(format!(
                    "{}: {} {}",
                    self.url, head.status, head.reason
                )))
            }
            s => {
                return fatal(vec![
                    format!("{}: the server answered {s} {}", self.url, head.reason),
                    "check the URL: fetch= names the squashfs of the release (its netboot script has it)".into(),
                ])
            }
        }
        if head.chunked {
            return fatal(vec![format!(
                "{}: the server sends chunks without a length; serve the file as a plain static file",
                self.url
            )]);
        }
        let total = match (head.range, head.length) {
            (Some((_, total)), _) => total,
            (None, Some(len)) => len,
            (None, None) => {
                return fatal(vec![format!(
                    "{}: the server did not say how long the file is (no Content-Length)",
                    self.url
                )])
            }
        };
        if self.total.is_some_and(|t| t != total) {
            return fatal(vec![format!(
                "{}: the file changed size between attempts ({} then {total} bytes)",
                self.url,
                self.total.unwrap_or(0)
            )]);
        }
        if self.file.is_none() {
            self.total = Some(total);
            enough_memory(self.url, total).map_err(Attempt::Fatal)?;
            self.file =
                Some(ram_file(dir, &self.dest, total).map_err(|e| Attempt::Fatal(vec![e]))?);
            say!("    {} to receive", fmt_mib(total));
        }
        Ok(())
    }

    fn body(&mut self, reader: &mut impl Read) -> Attempt {
        let total = self.total.unwrap_or(0);
        let mut buf = vec![0u8; 1 << 16];
        while self.got < total {
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    return Attempt::Dropped(format!(
                        "the connection closed at {} of {}",
                        fmt_mib(self.got),
                        fmt_mib(total)
                    ))
                }
                Ok(n) => n.min((total - self.got) as usize),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Attempt::Dropped(format!(
                        "no data for {} s at {} of {}",
                        STALL_TIMEOUT.as_secs(),
                        fmt_mib(self.got),
                        fmt_mib(total)
                    ))
                }
                Err(e) => return Attempt::Dropped(format!("receiving: {e}")),
            };
            let file = self.file.as_mut().expect("set up by accept");
            if let Err(e) = file.write_all(&buf[..n]) {
                return Attempt::Fatal(vec![format!("writing {}: {e}", self.dest)]);
            }
            self.hash.update(&buf[..n]);
            self.got += n as u64;
            if self.last_note.elapsed() >= PROGRESS_EVERY {
                self.last_note = Instant::now();
                say!(
                    "    {} of {} ({}%)",
                    fmt_mib(self.got),
                    fmt_mib(total),
                    self.got * 100 / total.max(1)
                );
            }
        }
        Attempt::Done
    }
}

fn read_head(r: &mut impl BufRead) -> Result<Head, String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return Err("the connection closed before a response".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        text.push_str(&line);
        if text.len() > 64 << 10 {
            return Err("a response head over 64 KiB".into());
        }
    }
    parse_head(&text)
}

/// The memory rule of a network boot (`finnix_contract::netboot`).
fn enough_memory(url: &str, size: u64) -> Result<(), Vec<String>> {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |k| finnix_contract::memory::meminfo_kib(&meminfo, k).unwrap_or(0);
    let available = kib("MemAvailable") << 10;
    let needed = finnix_contract::netboot::needed_bytes(size);
    if available >= needed {
        return Ok(());
    }
    Err(vec![
        format!("not enough memory for a network boot of {url}"),
        format!(
            "the squashfs is {} MiB and is kept in RAM, with {} MiB for the running system: {} MiB needed",
            mib(size),
            finnix_contract::netboot::RESERVE_MIB,
            mib(needed)
        ),
        format!(
            "this machine has {} MiB available ({} MiB in all)",
            available >> 20,
            kib("MemTotal") >> 10
        ),
        "give the machine more memory, or boot the ISO from a CD or USB stick (its squashfs stays on the medium)".into(),
    ])
}

/// A tmpfs sized for the file; the file created in it.
fn ram_file(dir: &str, dest: &str, size: u64) -> Result<fs::File, String> {
    let _ = crate::sys::mkdir(dir);
    if !crate::sys::is_mountpoint(dir) {
        let opts = format!("size={},mode=0700", size + (1 << 20));
        crate::sys::mount(
            "tmpfs",
            dir,
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            &opts,
        )
        .map_err(|e| format!("mount tmpfs on {dir}: {e}"))?;
    }
    fs::File::create(dest).map_err(|e| format!("create {dest}: {e}"))
}

/// An IPv4 literal, or the host's A record from the name servers.
fn resolve(host: &str, servers: &[Ipv4Addr]) -> Result<Ipv4Addr, String> {
    if let Ok(a) = host.parse() {
        return Ok(a);
    }
    if servers.is_empty() {
        return Err(format!(
            "{host} is a name and no DNS server is known (DHCP gave none; ip= takes two)"
        ));
    }
    let mut errors = Vec::new();
    for s in servers {
        match dns_query(host, *s) {
            Ok(a) => return Ok(a),
            Err(e) => errors.push(format!("{s}: {e}")),
        }
    }
    Err(format!("cannot resolve {host}: {}", errors.join("; ")))
}

/// One DNS question for `host`'s A record.
pub fn dns_request(host: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // recursion desired, one question
    for label in host.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]); // root, type A, class IN
    q
}

/// The first A record of a DNS answer to question `id`.
pub fn dns_answer(msg: &[u8], id: u16) -> Result<Ipv4Addr, String> {
    if msg.len() < 12 || msg[..2] != id.to_be_bytes() {
        return Err("not an answer to the question".into());
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("DNS error code {rcode} (3: no such name)"));
    }
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]) as usize;
    let (questions, answers) = (count(4), count(6));
    let mut i = 12;
    let skip_name = |mut i: usize| -> Option<usize> {
        loop {
            let len = *msg.get(i)? as usize;
            if len == 0 {
                return Some(i + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Some(i + 2);
            }
            i += 1 + len;
        }
    };
    for _ in 0..questions {
        i = skip_name(i).ok_or("a short answer")? + 4;
    }
    for _ in 0..answers {
        i = skip_name(i).ok_or("a short answer")?;
        let rec = msg.get(i..i + 10).ok_or("a short answer")?;
        let (kind, len) = (
            u16::from_be_bytes([rec[0], rec[1]]),
            u16::from_be_bytes([rec[8], rec[9]]) as usize,
        );
        let data = msg.get(i + 10..i + 10 + len).ok_or("a short answer")?;
        if kind == 1 && len == 4 {
            return Ok(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Err("no A record in the answer".into())
}

fn dns_query(host: &str, server: Ipv4Addr) -> Result<Ipv4Addr, String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let q = dns_request(host, id);
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        sock.send_to(&q, (server, 53)).map_err(|e| e.to_string())?;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return dns_answer(&buf[..n], id);
        }
    }
    Err("no answer in 9 s".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://10.0.2.2:8080/finnix/x.squashfs").unwrap(),
            Url {
                host: "10.0.2.2".into(),
                port: 8080,
                path: "/finnix/x.squashfs".into()
            }
        );
        assert_eq!(parse_url("http://boot.example").unwrap().path, "/");
        assert_eq!(parse_url("http://boot.example/a").unwrap().port, 80);
        assert!(parse_url("https://x/y")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_url("x/y").unwrap_err().contains("not a URL"));
        assert!(parse_url("http://x:80a/").unwrap_err().contains("port"));
    }

    #[test]
    fn response_heads() {
        let h = parse_head("HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 90-99/100\r\n").unwrap();
        assert_eq!(
            (h.status, h.length, h.range),
            (206, Some(10), Some((90, 100)))
        );
        let h = parse_head("HTTP/1.0 404 Not Found\r\n").unwrap();
        assert_eq!((h.status, h.reason.as_str()), (404, "Not Found"));
        assert!(
            parse_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n")
                .unwrap()
                .chunked
        );
        assert!(parse_head("SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn expected_digests() {
        assert!(check_expected(&"a".repeat(64)).is_ok());
        assert!(check_expected("abc")
            .unwrap_err()
            .contains("64 hexadecimal"));
        assert!(check_expected(&"g".repeat(64)).is_err());
    }

    #[test]
    fn dns_round_trip() {
        let q = dns_request("boot.example", 7);
        assert_eq!(&q[12..17], b"\x04boot");
        // The answer: the question echoed, then one A record by pointer.
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 1;
        a.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        assert_eq!(dns_answer(&a, 7), Ok(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(dns_answer(&a, 8).is_err());
        a[3] = 0x83;
        assert!(dns_answer(&a, 7).unwrap_err().contains("no such name"));
    }
}
