//! `rhai-kernel install`: writes the kernelspec directory (kernel.json and logos).

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Install for the current user (the default).
    #[arg(long, conflicts_with_all = ["sys_prefix", "prefix"])]
    pub user: bool,
    /// Install into the active virtual environment (or conda environment).
    #[arg(long, conflicts_with = "prefix")]
    pub sys_prefix: bool,
    /// Install under PREFIX/share/jupyter/kernels.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<PathBuf>,
    /// The kernelspec name.
    #[arg(long, default_value = "rhai")]
    pub name: String,
}

const LOGO_32: &[u8] = include_bytes!("../../kernelspec/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../../kernelspec/logo-64x64.png");
const LOGO_SVG: &[u8] = include_bytes!("../../kernelspec/logo-svg.svg");

/// Jupyter's per-user data directory, as jupyter_core computes it.
fn user_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let home = PathBuf::from(home);
    if cfg!(target_os = "macos") {
        return Ok(home.join("Library/Jupyter"));
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(xdg) if !xdg.is_empty() => Ok(PathBuf::from(xdg).join("jupyter")),
        _ => Ok(home.join(".local/share/jupyter")),
    }
}

fn kernels_dir(args: &InstallArgs) -> anyhow::Result<PathBuf> {
    if let Some(prefix) = &args.prefix {
        return Ok(prefix.join("share/jupyter/kernels"));
    }
    if args.sys_prefix {
        let prefix = std::env::var_os("VIRTUAL_ENV")
            .or_else(|| std::env::var_os("CONDA_PREFIX"))
            .context("--sys-prefix needs an active virtualenv (VIRTUAL_ENV) or conda environment; use --prefix DIR otherwise")?;
        return Ok(PathBuf::from(prefix).join("share/jupyter/kernels"));
    }
    Ok(user_data_dir()?.join("kernels"))
}

/// The kernel.json contents for a binary at `exe`.
pub fn kernel_json(exe: &Path) -> serde_json::Value {
    json!({
        "argv": [exe.to_string_lossy(), "kernel", "--connection-file", "{connection_file}"],
        "display_name": "Rhai",
        "language": "rhai",
        "interrupt_mode": "message",
        "kernel_protocol_version": crate::protocol::PROTOCOL_VERSION,
        "metadata": metadata(crate::kernel::curve_supported()),
    })
}

/// The kernelspec metadata. `supported_encryption` tells jupyter_client 8.10+ (with
/// `transport_encryption` "auto" or "required") to hand the kernel CurveZMQ keys; it is
/// claimed only when the linked libzmq can use them, or the kernel would refuse to start.
pub fn metadata(curve: bool) -> serde_json::Value {
    if curve {
        json!({ "debugger": true, "supported_encryption": ["curve"] })
    } else {
        json!({ "debugger": true })
    }
}

/// Writes the kernelspec and returns its directory.
pub fn install(args: &InstallArgs) -> anyhow::Result<PathBuf> {
    if args.name.is_empty()
        || !args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            "invalid kernelspec name {:?}: use letters, digits, '.', '_' or '-'",
            args.name
        );
    }
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find the path of this executable")?;
    let dir = kernels_dir(args)?.join(&args.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let spec = serde_json::to_string_pretty(&kernel_json(&exe))?;
    std::fs::write(dir.join("kernel.json"), spec + "\n")?;
    std::fs::write(dir.join("logo-32x32.png"), LOGO_32)?;
    std::fs::write(dir.join("logo-64x64.png"), LOGO_64)?;
    std::fs::write(dir.join("logo-svg.svg"), LOGO_SVG)?;
    Ok(dir)
}
