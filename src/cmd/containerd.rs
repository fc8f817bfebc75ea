//! `wasmbay containerd config|install`: the runtime entries containerd needs for the wasmbay
//! shims, and the shim binaries themselves on containerd's PATH.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wasmbay_shim_core::names;

use crate::node::binaries;
use crate::node::config_edit::{self, RuntimeEntry, Schema};

#[derive(Args)]
pub struct ContainerdArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print a containerd configuration file holding the runtime entries (to edit an existing
    /// file in place, use `wasmbay node install`).
    Config {
        /// containerd major version: 1 (config version 2) or 2 (config version 3).
        #[arg(long, default_value_t = 1)]
        containerd_version: u32,
        /// Engines to declare (default: every engine compiled into this build).
        #[arg(long = "engine")]
        engines: Vec<String>,
        /// Where the shims are on the node.
        #[arg(long, default_value = "/usr/local/bin")]
        bin_dir: PathBuf,
    },
    /// Install the shim into DIR (default /usr/local/bin) as containerd-shim-wasmbay-<engine>-v1
    /// for every engine compiled in: one binary, linked under each name, so that
    /// `io.containerd.wasmbay-<engine>.v1` finds it. Replaces earlier installs atomically.
    Install {
        #[arg(long, default_value = "/usr/local/bin")]
        dir: PathBuf,
        /// The shim binary to install (default: containerd-shim-wasmbay-wasmtime-v1 next to wasmbay).
        #[arg(long)]
        shim: Option<PathBuf>,
    },
}

/// A whole configuration file (`version` and one CRI runtime table per engine) for
/// containerd `major`: for a drop-in directory, or a containerd that has no file yet. Editing
/// an existing file is `wasmbay node install`'s work.
pub fn render(major: u32, engines: &[String], bin_dir: &Path) -> Result<String> {
    let schema = Schema::for_containerd(major)
        .with_context(|| format!("--containerd-version {major}: expected 1 or 2"))?;
    let bin_dir = bin_dir.to_string_lossy();
    let entries: Vec<RuntimeEntry> = engines
        .iter()
        .map(|e| RuntimeEntry::for_engine(e, &bin_dir))
        .collect();
    Ok(config_edit::fresh(schema, &entries)?)
}

pub fn main(args: ContainerdArgs) -> Result<i32> {
    match args.action {
        Action::Config {
            containerd_version,
            engines,
            bin_dir,
        } => {
            let engines = if engines.is_empty() {
                wasmbay_engines::compiled_in()
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            } else {
                engines
            };
            print!("{}", render(containerd_version, &engines, &bin_dir)?);
            Ok(0)
        }
        Action::Install { dir, shim } => {
            let shim = match shim {
                Some(shim) => shim,
                None => std::env::current_exe()
                    .context("cannot locate the wasmbay binary")?
                    .with_file_name(names::shim_binary("wasmtime")),
            };
            if !shim.is_file() {
                bail!(
                    "{}: no shim binary there (build it with `cargo build -p wasmbay-containerd-shim`, or pass --shim)",
                    shim.display()
                );
            }
            let engines: Vec<String> = wasmbay_engines::compiled_in()
                .into_iter()
                .map(str::to_string)
                .collect();
            for placed in binaries::place_shim(&shim, &dir, &engines, false)? {
                println!("installed {}", placed.path.display());
            }
            println!(
                "next: `wasmbay node install` declares them to containerd (or see `wasmbay containerd config`)"
            );
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_whole_file_for_each_containerd() {
        let v1 = render(1, &["wasmtime".into()], Path::new("/usr/local/bin")).unwrap();
        assert!(v1.starts_with("version = 2\n"), "{v1}");
        assert!(v1.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbay-wasmtime]"
        ));
        assert!(v1.contains("runtime_type = \"io.containerd.wasmbay-wasmtime.v1\""));
        let v2 = render(
            2,
            &["wasmtime".into(), "wasmer".into()],
            Path::new("/opt/bin"),
        )
        .unwrap();
        assert!(v2.starts_with("version = 3\n"), "{v2}");
        assert!(v2.contains("io.containerd.cri.v1.runtime\".containerd.runtimes.wasmbay-wasmer]"));
        assert!(v2.contains("runtime_path = \"/opt/bin/containerd-shim-wasmbay-wasmer-v1\""));
        assert!(render(3, &[], Path::new("/")).is_err());
    }
}
