//! Patch series (quilt convention): `kernel-patches/<set>/series` lists patch
//! files, one per line, applied in order; `#` starts a comment; a patch may
//! carry a `-pN` strip level (default 1).

use fs_err as fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// `kernel-patches/<set>/<name>`
    pub path: PathBuf,
    /// Name as written in the series.
    pub name: String,
    pub strip: u32,
    /// The series file and its line, for messages.
    pub series: String,
    pub line: usize,
}

/// Parse a series file's text. `dir` is the folder holding the patches.
pub fn parse_series(text: &str, dir: &Path, series: &str) -> Result<Vec<Patch>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().expect("non-empty line has a word").to_string();
        let mut strip = 1;
        for opt in words {
            strip = opt
                .strip_prefix("-p")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "{series}:{}: unknown option {opt:?} (only -pN is supported)",
                        i + 1
                    )
                })?;
        }
        if name.contains("..") || name.starts_with('/') {
            return Err(format!(
                "{series}:{}: patch name {name:?} must stay inside {}",
                i + 1,
                dir.display()
            ));
        }
        out.push(Patch {
            path: dir.join(&name),
            name,
            strip,
            series: series.to_string(),
            line: i + 1,
        });
    }
    Ok(out)
}

/// Read `<root>/kernel-patches/<set>/series`; a missing series is an empty one.
pub fn read_series(patches_root: &Path, set: &str) -> Result<Vec<Patch>> {
    let dir = patches_root.join(set);
    let series = dir.join("series");
    let label = format!("kernel-patches/{set}/series");
    let text = match fs::read_to_string(&series) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", series.display())),
    };
    let patches = parse_series(&text, &dir, &label).map_err(anyhow::Error::msg)?;
    for p in &patches {
        if !p.path.is_file() {
            bail!(
                "{}:{}: patch {} is listed but kernel-patches/{set}/{} does not exist",
                p.series,
                p.line,
                p.name,
                p.name
            );
        }
    }
    Ok(patches)
}

/// Apply `patches` in order to `tree` with GNU patch. The first one that does
/// not apply stops everything; the error names it and shows the rejected hunks.
/// `run` runs a command and returns (success, combined output).
pub fn apply(
    tree: &Path,
    patches: &[Patch],
    mut run: impl FnMut(crate::support::cmd::Cmd) -> Result<(bool, String)>,
) -> Result<()> {
    for p in patches {
        let strip = format!("-p{}", p.strip);
        let expr = crate::cmd!(
            "patch",
            &strip,
            "--forward",
            "--batch",
            "--no-backup-if-mismatch",
            "-i",
            &p.path
        )
        .dir(tree);
        let (ok, output) = run(expr)?;
        if !ok {
            let rejects = rejected_hunks(tree, &output);
            bail!(
                "patch {} ({}:{}) does not apply:\n{}{}",
                p.name,
                p.series,
                p.line,
                indent(&output),
                if rejects.is_empty() {
                    String::new()
                } else {
                    format!("rejected hunks:\n{}", indent(&rejects))
                }
            );
        }
    }
    Ok(())
}

/// The contents of the `.rej` files GNU patch reported writing.
fn rejected_hunks(tree: &Path, output: &str) -> String {
    let mut out = String::new();
    for line in output.lines() {
        if let Some(idx) = line.find("saving rejects to file ") {
            let file = line[idx + "saving rejects to file ".len()..].trim();
            if let Ok(text) = fs::read_to_string(tree.join(file)) {
                out.push_str(&format!("--- {file}\n{text}"));
            }
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_series() {
        let text = "# Finnix patches\n0001-a.patch\n\n0002-b.patch -p0  # old style\n";
        let p = parse_series(text, Path::new("kp/um"), "kernel-patches/um/series").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "0001-a.patch");
        assert_eq!(p[0].path, Path::new("kp/um/0001-a.patch"));
        assert_eq!((p[0].strip, p[0].line), (1, 2));
        assert_eq!((p[1].strip, p[1].line), (0, 4));
    }

    #[test]
    fn series_errors_name_the_line() {
        let e = parse_series("a.patch -R\n", Path::new("x"), "s").unwrap_err();
        assert!(e.starts_with("s:1: unknown option"), "{e}");
        let e = parse_series("\n../evil.patch\n", Path::new("x"), "s").unwrap_err();
        assert!(e.starts_with("s:2: "), "{e}");
    }

    fn run(c: crate::support::cmd::Cmd) -> Result<(bool, String)> {
        let o = c
            .expr()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        Ok((
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ))
    }

    #[test]
    fn a_failing_patch_is_reported_by_name_with_its_rejected_hunk() {
        crate::support::prereq::need_for_test("patch");
        let scratch = tempfile::tempdir().unwrap();
        let base = scratch.path().join("finnix-patch-test");
        let _ = fs::remove_dir_all(&base);
        let tree = base.join("tree");
        let pdir = base.join("patches");
        fs::create_dir_all(tree.join("init")).unwrap();
        fs::create_dir_all(&pdir).unwrap();
        fs::write(tree.join("init/main.c"), "int a;\nint b;\nint c;\n").unwrap();
        fs::write(
            pdir.join("0001-good.patch"),
            "--- a/init/main.c\n+++ b/init/main.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int bee;\n int c;\n",
        )
        .unwrap();
        fs::write(
            pdir.join("0002-bad.patch"),
            "Why: this hunk expects a line that is not there.\n--- a/init/main.c\n+++ b/init/main.c\n@@ -1,3 +1,3 @@\n int a;\n-int zzz;\n+int yyy;\n int c;\n",
        )
        .unwrap();
        fs::write(
            pdir.join("0003-never.patch"),
            "--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+x\n",
        )
        .unwrap();
        fs::write(
            pdir.join("series"),
            "0001-good.patch\n0002-bad.patch\n0003-never.patch\n",
        )
        .unwrap();

        let series = fs::read_to_string(pdir.join("series")).unwrap();
        let patches = parse_series(&series, &pdir, "kernel-patches/um/series").unwrap();
        let err = apply(&tree, &patches, run).unwrap_err().to_string();
        assert!(
            err.starts_with("patch 0002-bad.patch (kernel-patches/um/series:2) does not apply"),
            "{err}"
        );
        assert!(
            err.contains("rejected hunks:") && err.contains("-int zzz;"),
            "{err}"
        );
        // The good patch before it was applied; the one after it never ran.
        assert_eq!(
            fs::read_to_string(tree.join("init/main.c")).unwrap(),
            "int a;\nint bee;\nint c;\n"
        );
        assert!(!tree.join("x").exists());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_listed_patch_that_is_missing_is_an_error() {
        let scratch = tempfile::tempdir().unwrap();
        let base = scratch.path().join("finnix-series-test");
        fs::create_dir_all(base.join("um")).unwrap();
        fs::write(base.join("um/series"), "0001-missing.patch\n").unwrap();
        let err = read_series(&base, "um").unwrap_err().to_string();
        assert!(
            err.contains("kernel-patches/um/series:1") && err.contains("does not exist"),
            "{err}"
        );
        assert!(read_series(&base, "xen").unwrap().is_empty());
        fs::remove_dir_all(&base).unwrap();
    }
}
