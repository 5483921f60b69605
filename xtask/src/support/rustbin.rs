//! The Rust programs that run inside the live system (the initramfs `/init`,
//! the `finnix` tool), built as static binaries: no shared libraries, the same
//! bytes from any checkout path.

use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::support::context::Ctx;
use crate::support::ui::Stage;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build --release -p <package> --bin <bin>`, statically linked.
pub fn build(ctx: &Ctx, stage: &Stage, package: &str, bin: &str) -> Result<PathBuf> {
    let target_dir = ctx.root.join("target/static");
    let cargo_home = ctx.env.cargo_home();
    let rustflags = [
        "-C target-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/finnix", ctx.root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        "-C link-arg=-Wl,--build-id=sha1".to_string(),
    ]
    .join(" ");
    let mut build = crate::cmd!(
        "cargo",
        "build",
        "--release",
        "--locked",
        "--package",
        package,
        "--bin",
        bin,
        "--target",
        TARGET,
        "--target-dir",
        &target_dir
    )
    .dir(&ctx.root)
    .env("RUSTFLAGS", rustflags)
    .env("SOURCE_DATE_EPOCH", ctx.epoch.global.to_string())
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("RUSTC_WRAPPER");
    // Cargo's own settings from the host's environment (a profile's
    // opt-level, a target's rustflags) would change the binaries.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if ["CARGO_PROFILE_", "CARGO_BUILD_", "CARGO_TARGET_"]
            .iter()
            .any(|p| key.starts_with(p))
            && key != "CARGO_TARGET_DIR"
        {
            build = build.env_remove(key.as_ref());
        }
    }
    stage.run(build)?;
    let path = target_dir.join(TARGET).join("release").join(bin);
    ensure!(path.is_file(), "cargo did not produce {}", path.display());
    Ok(path)
}
