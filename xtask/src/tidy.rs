//! The project's conventions, checked by its own test suite (as
//! rust-analyzer's `tidy`): the map in ARCHITECTURE.md stays true or a unit
//! test fails, naming file and line.
//!
//! - Layers point down: support < guest < stages < pipeline, release <
//!   checks < cli, main. A file of xtask/src may name its own layer or one
//!   below (`crate::cli`'s types excepted: a job's `run` sits beside its
//!   code, as rust-analyzer's flags do).
//! - No function over [`MAX_FN_LINES`] lines outside tests, in any crate.
//! - Every environment variable the code reads, every key of finnix.toml
//!   and of a profile, and every kernel command line word the initramfs
//!   takes is in docs/configuration.md; every job is in the README or
//!   ARCHITECTURE.md.
//!
//! Each rule is a plain function of the text it reads; the tests at the end
//! plant a fault for each and see it named.

use std::path::{Path, PathBuf};

use regex::Regex;

const MAX_FN_LINES: usize = 100;

/// xtask's top-level modules, lowest first; equal ranks may name each other.
const LAYERS: &[(&str, u8)] = &[
    ("support", 0),
    ("guest", 1),
    ("stages", 2),
    ("pipeline", 3),
    ("release", 3),
    ("checks", 4),
    ("cli", 5),
    ("main", 5),
    ("tidy", 5),
];

/// The workspace's Rust sources, the configuration docs and the maps.
const CRATES: &[&str] = &["xtask/src", "live/src", "initrd-src/src", "contract/src"];
const CONFIG_DOC: &str = "docs/configuration.md";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// Every `.rs` file below `dir` (relative to the workspace), sorted, with
/// its text.
fn sources(dir: &str) -> Vec<(String, String)> {
    let base = root();
    let mut out: Vec<(String, String)> = walkdir::WalkDir::new(base.join(dir))
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| {
            let rel = e.path().strip_prefix(&base).unwrap().display().to_string();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The lines before the file's test module (a `#[cfg(test)]` at column 0),
/// numbered from 1.
fn non_test_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.starts_with("#[cfg(test)]"))
        .map(|(i, l)| (i + 1, l))
}

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// `path` (below xtask/src) naming a module of a higher layer.
fn layer_violations(path: &str, text: &str) -> Vec<String> {
    let rel = path.strip_prefix("xtask/src/").unwrap_or(path);
    let own = rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs");
    let Some(own_rank) = rank(own) else {
        return vec![format!(
            "{path}: module `{own}` has no layer in tidy.rs's LAYERS"
        )];
    };
    let re = Regex::new(r"crate::(\w+)").unwrap();
    let mut out = Vec::new();
    for (n, line) in non_test_lines(text) {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for m in re.captures_iter(line) {
            let to = &m[1];
            if to == "cli" {
                continue;
            }
            if let Some(r) = rank(to) {
                if r > own_rank {
                    out.push(format!(
                        "{path}:{n}: `{own}` (layer {own_rank}) names `{to}` (layer {r}): move what it needs down, or the code up"
                    ));
                }
            }
        }
    }
    out
}

/// Functions longer than `max` lines (signature to closing brace, as
/// rustfmt lays them out) outside the test module.
fn long_functions(path: &str, text: &str, max: usize) -> Vec<String> {
    let re = Regex::new(r"^(\s*)(pub(\([^)]*\))? )?((const|async|unsafe|extern \S+) )*fn (\w+)")
        .unwrap();
    let lines: Vec<(usize, &str)> = non_test_lines(text).collect();
    let mut out = Vec::new();
    for (i, (n, line)) in lines.iter().enumerate() {
        let Some(c) = re.captures(line) else { continue };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{}}}", &c[1]);
        if let Some(len) = lines[i..].iter().position(|(_, l)| *l == close) {
            if len + 1 > max {
                out.push(format!(
                    "{path}:{n}: fn {} is {} lines (at most {max}): split it along its steps",
                    &c[6],
                    len + 1
                ));
            }
        }
    }
    out
}

/// The environment variables a file reads: `env::var("X")`,
/// `env::var_os("X")`, `Env`'s `text("X")` and `path("X")`, and any
/// `"FINNIX_..."` name.
fn env_vars(text: &str) -> Vec<String> {
    let read = Regex::new(r#"\b(?:var|var_os|text|path)\("([A-Z][A-Z0-9_]+)"\)"#).unwrap();
    let named = Regex::new(r#""(FINNIX_[A-Z0-9_]+)""#).unwrap();
    let mut out = Vec::new();
    for (_, line) in non_test_lines(text) {
        for c in read.captures_iter(line).chain(named.captures_iter(line)) {
            out.push(c[1].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The keys of the TOML structs in `config.rs`: the fields of every struct
/// deriving `Deserialize` with `rename_all = "kebab-case"`, kebab-cased.
fn config_keys(text: &str) -> Vec<String> {
    let field = Regex::new(r"^\s+(?:pub )?([a-z_][a-z0-9_]*): ").unwrap();
    let mut out = Vec::new();
    let mut derive = false;
    let mut kebab = false;
    let mut inside = false;
    for (_, line) in non_test_lines(text) {
        let t = line.trim();
        if t.starts_with("#[derive(") {
            derive = t.contains("Deserialize");
        } else if t.starts_with("#[serde(") && t.contains("rename_all = \"kebab-case\"") {
            kebab = true;
        } else if t.starts_with("pub struct ") || t.starts_with("struct ") {
            inside = derive && kebab && t.ends_with('{');
            derive = false;
            kebab = false;
        } else if line == "}" {
            inside = false;
        } else if inside {
            if let Some(c) = field.captures(line) {
                out.push(c[1].replace('_', "-"));
            }
        }
    }
    out
}

/// The kernel command line words the initramfs takes: `("word", None)` and
/// `("word", Some(..))` arms of its parser.
fn boot_params(text: &str) -> Vec<String> {
    let re = Regex::new(r#"\("([a-z][a-z0-9_.]*)", (None|Some)"#).unwrap();
    non_test_lines(text)
        .flat_map(|(_, l)| {
            re.captures_iter(l)
                .map(|c| c[1].to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The jobs of the command line: `Command`'s variants, kebab-cased as clap
/// names them.
fn jobs(cli: &str) -> Vec<String> {
    let start = cli
        .find("pub enum Command {")
        .expect("cli.rs has `enum Command`");
    let body = &cli[start..cli[start..].find("\n}").map(|e| start + e).unwrap()];
    let variant = Regex::new(r"^    ([A-Z]\w*)\(").unwrap();
    body.lines()
        .filter_map(|l| variant.captures(l).map(|c| kebab(&c[1])))
        .collect()
}

fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// Names missing from `doc` as a code span: `` `name` ``, `` `name=``,
/// `` `name ``, a table `` `[name]`` or a key after one (`` `[t] name` ``).
fn undocumented(names: &[String], doc: &str, what: &str, doc_name: &str) -> Vec<String> {
    let mut seen: Vec<&String> = names.iter().collect();
    seen.sort();
    seen.dedup();
    seen.into_iter()
        .filter(|n| {
            ![
                format!("`{n}`"),
                format!("`{n}="),
                format!("`{n} "),
                format!("`[{n}]"),
                format!("] {n}`"),
            ]
            .iter()
            .any(|p| doc.contains(p.as_str()))
        })
        .map(|n| format!("{what} `{n}` is not in {doc_name}: document it there"))
        .collect()
}

/// A check's `debs::fetch` whose lock role lacks the `check-` prefix: its
/// package would be listed as shipped (manifest, SBOM, source archive).
fn unmarked_check_debs(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("debs::fetch(") {
        let role = text[at..].split('"').nth(1).unwrap_or_default().to_string();
        if !role.starts_with(crate::support::lock::CHECK_ROLE_PREFIX) {
            let line = text[..at].lines().count();
            out.push(format!(
                "{path}:{line}: a check fetches a .deb with role {role:?}: name it check-{role} so no release lists it"
            ));
        }
    }
    out
}

fn fail_on(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn layers_point_down() {
    fail_on(
        sources("xtask/src")
            .iter()
            .flat_map(|(p, t)| layer_violations(p, t))
            .collect(),
    );
}

#[test]
fn no_function_is_over_a_hundred_lines() {
    fail_on(
        CRATES
            .iter()
            .flat_map(|c| sources(c))
            .flat_map(|(p, t)| long_functions(&p, &t, MAX_FN_LINES))
            .collect(),
    );
}

#[test]
fn every_variable_key_and_boot_word_is_documented() {
    let doc = std::fs::read_to_string(root().join(CONFIG_DOC)).unwrap();
    let vars: Vec<String> = CRATES
        .iter()
        .flat_map(|c| sources(c))
        .filter(|(p, _)| p != "xtask/src/tidy.rs")
        .flat_map(|(_, t)| env_vars(&t))
        .collect();
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let keys = config_keys(&read("xtask/src/support/config.rs"));
    let mut words = boot_params(&read("initrd-src/src/cmdline.rs"));
    // The live system's own words (sshd, passwd=, ...).
    words.extend(boot_params(&read("live/src/access.rs")));
    assert!(
        keys.len() > 20 && words.len() > 5,
        "the scans found too little"
    );
    let mut problems = undocumented(&vars, &doc, "environment variable", CONFIG_DOC);
    problems.extend(undocumented(&keys, &doc, "configuration key", CONFIG_DOC));
    problems.extend(undocumented(&words, &doc, "boot parameter", CONFIG_DOC));
    fail_on(problems);
}

#[test]
fn every_job_is_on_the_map() {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let maps = read("README.md") + &read("ARCHITECTURE.md");
    let cli = read("xtask/src/cli.rs");
    let jobs = jobs(&cli);
    assert!(jobs.len() > 20, "found only {jobs:?}");
    let mut problems: Vec<String> = jobs
        .iter()
        .filter(|j| !maps.contains(&format!("xtask {j}")) && !maps.contains(&format!("`{j}`")))
        .map(|j| format!("job `{j}` is in neither README.md nor ARCHITECTURE.md"))
        .collect();
    // The checks are hidden from the job list: `--help` lists them apart.
    let checks_help = &cli[cli
        .find("const CHECKS_HELP")
        .expect("cli.rs lists the checks")..];
    problems.extend(
        jobs.iter()
            .filter(|j| j.starts_with("check-") && !checks_help.contains(&format!("\n  {j} ")))
            .map(|j| {
                format!(
                    "xtask/src/cli.rs: `{j}` is not in CHECKS_HELP, the checks' heading of --help"
                )
            }),
    );
    fail_on(problems);
}

/// Each rule on a planted fault: it must name it.
#[test]
fn the_checks_debs_are_never_shipped() {
    fail_on(
        sources("xtask/src/checks")
            .iter()
            .flat_map(|(p, t)| unmarked_check_debs(p, t))
            .collect(),
    );
}

#[test]
fn planted_faults_are_named() {
    let fetch =
        "fn d() {\n    let deb = debs::fetch(\n        ctx,\n        s,\n        \"hostapd\",\n";
    let v = unmarked_check_debs("xtask/src/checks/wifi.rs", fetch);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("xtask/src/checks/wifi.rs:2:"), "{v:?}");
    assert!(unmarked_check_debs("c.rs", &fetch.replace("\"hostapd", "\"check-hostapd")).is_empty());
    let up =
        "use crate::support::cmd;\nuse crate::checks::boot;\n#[cfg(test)]\nuse crate::checks::x;\n";
    let v = layer_violations("xtask/src/stages/iso.rs", up);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("xtask/src/stages/iso.rs:2:"), "{v:?}");
    assert!(layer_violations("xtask/src/checks/x.rs", up).is_empty());
    assert!(
        layer_violations("xtask/src/stages/x.rs", "fn f() -> crate::cli::Kernel {}").is_empty()
    );
    assert_eq!(layer_violations("xtask/src/newtop.rs", "").len(), 1);

    let body = |n: usize| {
        format!(
            "pub fn big(\n    a: u8,\n) {{\n{}}}\n",
            "    x();\n".repeat(n)
        )
    };
    let long = long_functions("f.rs", &body(97), 100);
    assert_eq!(long.len(), 1, "{long:?}");
    assert!(long[0].contains("f.rs:1: fn big is 101 lines"), "{long:?}");
    assert!(long_functions("f.rs", &body(96), 100).is_empty());
    let in_tests = format!("#[cfg(test)]\nmod tests {{\n{}}}\n", body(200));
    assert!(long_functions("f.rs", &in_tests, 100).is_empty());
    assert!(long_functions("f.rs", "    fn decl(&self);\n", 0).is_empty());

    let vars =
        env_vars("let a = std::env::var(\"FINNIX_NEW\");\nlet b = text(\"SOURCE_DATE_EPOCH\");\n");
    assert_eq!(vars, ["FINNIX_NEW", "SOURCE_DATE_EPOCH"]);
    let doc = "| `SOURCE_DATE_EPOCH` | ... |\n| `root=/dev/X` |";
    let missing = undocumented(&vars, doc, "environment variable", "d.md");
    assert_eq!(
        missing,
        ["environment variable `FINNIX_NEW` is not in d.md: document it there"]
    );
    assert!(undocumented(&["root".into()], doc, "boot parameter", "d.md").is_empty());
    let tables = "| `[squashfs] compression`, `block-size` |";
    let keys: Vec<String> = ["squashfs", "compression", "block-size"]
        .map(String::from)
        .into();
    assert!(undocumented(&keys, tables, "key", "d.md").is_empty());

    let cfg = "#[derive(Debug, Deserialize)]\n#[serde(rename_all = \"kebab-case\")]\npub struct A {\n    pub block_size: u32,\n    other: String,\n}\n#[derive(Debug)]\nstruct B {\n    not_toml: u8,\n}\n";
    assert_eq!(config_keys(cfg), ["block-size", "other"]);
    assert_eq!(
        boot_params("(\"toram\", None) => x,\n(\"rootwait\", Some(s)) => y,"),
        ["toram", "rootwait"]
    );
    let cli =
        "pub enum Command {\n    /// doc\n    VerifyRelease(VerifyRelease),\n    Dist(Dist),\n}\n";
    assert_eq!(jobs(cli), ["verify-release", "dist"]);
}
