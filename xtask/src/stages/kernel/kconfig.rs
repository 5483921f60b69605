//! Kernel `.config` files and config fragments (pure).
//!
//! A fragment is a list of `CONFIG_X=value` and `# CONFIG_X is not set`
//! lines. Fragments are merged over a base `.config` (later ones win), Kconfig
//! resolves dependencies (`olddefconfig`), and then every fragment line must
//! still hold in the final `.config`, as the kernel's kunit tool checks:
//! Kconfig silently drops options whose dependencies are unmet.

use std::collections::BTreeMap;
use std::fmt;

/// The value of one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `CONFIG_X=<raw>`: `y`, `m`, a number, or a quoted string, kept verbatim.
    Set(String),
    /// `# CONFIG_X is not set`.
    NotSet,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Set(v) => f.write_str(v),
            Value::NotSet => f.write_str("is not set"),
        }
    }
}

/// One line of a fragment, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub symbol: String,
    pub value: Value,
    pub file: String,
    pub line: usize,
}

/// Parse one config line. `Ok(None)` for blank lines and comments;
/// `Err` for anything that is neither.
fn parse_line(line: &str) -> Result<Option<(String, Value)>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix("# CONFIG_") {
        if let Some(name) = rest.strip_suffix(" is not set") {
            if valid_symbol(name) {
                return Ok(Some((format!("CONFIG_{name}"), Value::NotSet)));
            }
        }
        return Ok(None); // an ordinary comment that happens to mention CONFIG_
    }
    if line.starts_with('#') {
        return Ok(None);
    }
    let (symbol, value) = line
        .split_once('=')
        .ok_or_else(|| format!("expected CONFIG_X=value, got {line:?}"))?;
    let name = symbol
        .strip_prefix("CONFIG_")
        .ok_or_else(|| format!("expected an option starting with CONFIG_, got {symbol:?}"))?;
    if !valid_symbol(name) {
        return Err(format!("invalid option name {symbol:?}"));
    }
    if value.is_empty() {
        return Err(format!(
            "{symbol} has no value (write `# {symbol} is not set` to disable it)"
        ));
    }
    if value == "n" {
        return Err(format!(
            "{symbol}=n is not how Kconfig writes a disabled option: use `# {symbol} is not set`"
        ));
    }
    Ok(Some((symbol.to_string(), Value::Set(value.to_string()))))
}

fn valid_symbol(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parse a fragment file. Errors name the file and line.
pub fn parse_fragment(text: &str, file: &str) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((symbol, value))) => {
                if let Some(first) = seen.insert(symbol.clone(), i + 1) {
                    return Err(format!(
                        "{file}:{}: {symbol} is already set on line {first}",
                        i + 1
                    ));
                }
                out.push(Setting {
                    symbol,
                    value,
                    file: file.to_string(),
                    line: i + 1,
                });
            }
            Err(e) => return Err(format!("{file}:{}: {e}", i + 1)),
        }
    }
    Ok(out)
}

/// Parse a `.config` into option → value. Options never mentioned are absent.
pub fn parse_config(text: &str) -> BTreeMap<String, Value> {
    text.lines()
        .filter_map(|l| parse_line(l).ok().flatten())
        .collect()
}

fn render(symbol: &str, value: &Value) -> String {
    match value {
        Value::Set(v) => format!("{symbol}={v}"),
        Value::NotSet => format!("# {symbol} is not set"),
    }
}

/// Merge fragments over a base `.config`, as the kernel's merge_config.sh
/// does: lines of the base that a fragment sets are removed, and the
/// fragments' settings are appended in order (the last setting of an option
/// wins). Appending matters for choices: Kconfig lets the last line decide.
pub fn merge(base: &str, fragments: &[Setting]) -> String {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in fragments.iter().enumerate() {
        last.insert(&s.symbol, i);
    }
    let mut out = String::with_capacity(base.len() + 64 * fragments.len());
    for line in base.lines() {
        match parse_line(line).ok().flatten() {
            Some((symbol, _)) if last.contains_key(symbol.as_str()) => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, s) in fragments.iter().enumerate() {
        if last[s.symbol.as_str()] == i {
            out.push_str(&render(&s.symbol, &s.value));
            out.push('\n');
        }
    }
    out
}

/// A fragment line that does not hold in the final `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub setting: Setting,
    /// `None`: Kconfig dropped the option entirely (unmet dependency or unknown symbol).
    pub actual: Option<Value>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.setting;
        let actual = match &self.actual {
            Some(v) => v.to_string(),
            None => "absent (dropped by Kconfig: unmet dependency or unknown option)".to_string(),
        };
        write!(
            f,
            "{}:{}: {} wanted {}, got {}",
            s.file, s.line, s.symbol, s.value, actual
        )
    }
}

/// Every fragment line must hold in `config`. `# X is not set` holds when X
/// is not set or absent. Later fragments override earlier ones, so only the
/// last setting of each option is checked.
pub fn check(config: &BTreeMap<String, Value>, fragments: &[Setting]) -> Vec<Mismatch> {
    let mut last: BTreeMap<&str, &Setting> = BTreeMap::new();
    for s in fragments {
        last.insert(&s.symbol, s);
    }
    let mut out = Vec::new();
    for s in fragments {
        if !std::ptr::eq(last[s.symbol.as_str()], s) {
            continue;
        }
        let actual = config.get(&s.symbol);
        let holds = match (&s.value, actual) {
            (Value::NotSet, None) | (Value::NotSet, Some(Value::NotSet)) => true,
            (Value::Set(want), Some(Value::Set(got))) => want == got,
            _ => false,
        };
        if !holds {
            out.push(Mismatch {
                setting: s.clone(),
                actual: actual.cloned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(text: &str) -> Vec<Setting> {
        parse_fragment(text, "common.config").unwrap()
    }

    #[test]
    fn parses_fragments_with_comments() {
        let f = frag("# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"finnix\"\n# mentions CONFIG_D in prose\n");
        assert_eq!(f.len(), 3);
        assert_eq!(
            f[0],
            Setting {
                symbol: "CONFIG_A".into(),
                value: Value::Set("y".into()),
                file: "common.config".into(),
                line: 3
            }
        );
        assert_eq!(f[1].value, Value::NotSet);
        assert_eq!(f[2].value, Value::Set("\"finnix\"".into()));
    }

    #[test]
    fn rejects_garbage_with_file_and_line() {
        let e = parse_fragment("CONFIG_A=y\nSQUASHFS=y\n", "um.config").unwrap_err();
        assert!(e.starts_with("um.config:2: "), "{e}");
        let e = parse_fragment("CONFIG_A=n\n", "um.config").unwrap_err();
        assert!(e.contains("is not set"), "{e}");
        let e = parse_fragment("CONFIG_A=y\nCONFIG_A=m\n", "um.config").unwrap_err();
        assert!(e.contains("already set on line 1"), "{e}");
    }

    #[test]
    fn merge_replaces_in_place_and_appends() {
        let base = "CONFIG_A=m\n# CONFIG_B is not set\nCONFIG_C=y\n";
        let merged = merge(
            base,
            &frag("CONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"x\"\n"),
        );
        assert_eq!(
            merged,
            "CONFIG_A=m\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"x\"\n"
        );
    }

    #[test]
    fn later_fragments_win() {
        let mut f = frag("CONFIG_A=m\n");
        f.extend(parse_fragment("CONFIG_A=y\n", "um.config").unwrap());
        assert_eq!(merge("", &f), "CONFIG_A=y\n");
        let config = parse_config("CONFIG_A=y\n");
        assert!(check(&config, &f).is_empty());
    }

    #[test]
    fn check_finds_dropped_changed_and_unwanted_options() {
        let f = frag("CONFIG_SQUASHFS=y\nCONFIG_OVERLAY_FS=y\nCONFIG_ISO9660_FS=y\n# CONFIG_MODULES is not set\n# CONFIG_GONE is not set\nCONFIG_NAME=\"finnix\"\n");
        let config = parse_config(
            "CONFIG_SQUASHFS=y\nCONFIG_ISO9660_FS=m\nCONFIG_MODULES=y\nCONFIG_NAME=\"finnix\"\n",
        );
        let m = check(&config, &f);
        let described: Vec<String> = m.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            described,
            [
                "common.config:2: CONFIG_OVERLAY_FS wanted y, got absent (dropped by Kconfig: unmet dependency or unknown option)",
                "common.config:3: CONFIG_ISO9660_FS wanted y, got m",
                "common.config:4: CONFIG_MODULES wanted is not set, got y",
            ]
        );
    }

    #[test]
    fn not_set_in_config_counts_as_not_set() {
        let f = frag("# CONFIG_X is not set\nCONFIG_Y=y\n");
        let config = parse_config("# CONFIG_X is not set\n# CONFIG_Y is not set\n");
        let m = check(&config, &f);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].actual, Some(Value::NotSet));
        assert_eq!(
            m[0].to_string(),
            "common.config:2: CONFIG_Y wanted y, got is not set"
        );
    }
}
