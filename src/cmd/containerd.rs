//! `wasmbay containerd config|install`: the runtime entries containerd needs for the wasmbay
//! shims, and the shim binaries themselves on containerd's PATH.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ContainerdArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print the TOML runtime entries to add to containerd's config.toml.
    Config {
        /// containerd major version: 1 (config version 2) or 2 (config version 3).
        #[arg(long, default_value_t = 1)]
        containerd_version: u32,
        /// Engines to declare (default: every engine compiled into this build).
        #[arg(long = "engine")]
        engines: Vec<String>,
    },
    /// Install the shim into DIR (default /usr/local/bin) as containerd-shim-<engine>-v1 for
    /// every engine compiled in: one binary, linked under each name, so that
    /// `io.containerd.<engine>.v1` finds it. Replaces earlier installs atomically.
    Install {
        #[arg(long, default_value = "/usr/local/bin")]
        dir: PathBuf,
        /// The shim binary to install (default: containerd-shim-wasmtime-v1 next to wasmbay).
        #[arg(long)]
        shim: Option<PathBuf>,
    },
}

const SHIM_BINARY: &str = "containerd-shim-wasmtime-v1";

/// Copies `shim` into `dir` and links `containerd-shim-<engine>-v1` to it for each engine.
/// Every name is put in place by rename, so a containerd starting shims meanwhile sees either
/// the old or the new binary, never a partial one. Returns the installed names.
pub fn install(shim: &Path, dir: &Path, engines: &[&str]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join(SHIM_BINARY);
    let staging = dir.join(format!(".{SHIM_BINARY}.wasmbay-install"));
    std::fs::copy(shim, &staging)
        .with_context(|| format!("copying {} to {}", shim.display(), staging.display()))?;
    std::fs::rename(&staging, &target)
        .with_context(|| format!("moving {} into place", target.display()))?;
    let mut installed = vec![target.clone()];
    for engine in engines {
        let name = format!("containerd-shim-{engine}-v1");
        if name == SHIM_BINARY {
            continue;
        }
        let link = dir.join(&name);
        let staging = dir.join(format!(".{name}.wasmbay-install"));
        let _ = std::fs::remove_file(&staging);
        std::os::unix::fs::symlink(SHIM_BINARY, &staging)
            .with_context(|| format!("linking {}", staging.display()))?;
        std::fs::rename(&staging, &link)
            .with_context(|| format!("moving {} into place", link.display()))?;
        installed.push(link);
    }
    Ok(installed)
}

/// The CRI runtime tables for `engines`; the runtime handler name is the engine name, so a
/// RuntimeClass with `handler: wasmtime` selects `io.containerd.wasmtime.v1`.
pub fn render(containerd_version: u32, engines: &[String]) -> Result<String> {
    let plugin = match containerd_version {
        1 => "io.containerd.grpc.v1.cri\".containerd.runtimes",
        2 => "io.containerd.cri.v1.runtime\".containerd.runtimes",
        other => bail!("--containerd-version {other}: expected 1 or 2"),
    };
    let header = match containerd_version {
        1 => "version = 2",
        _ => "version = 3",
    };
    let mut out = format!(
        "# wasmbay runtimes for containerd {containerd_version}.x ({header} config).\n\
         # The shim binaries (containerd-shim-<engine>-v1) must be on containerd's PATH.\n"
    );
    for engine in engines {
        out.push_str(&format!(
            "\n[plugins.\"{plugin}.{engine}]\n  runtime_type = \"io.containerd.{engine}.v1\"\n  \
             # Containers of one pod share a shim: the pod's sandbox id groups them.\n  \
             pod_annotations = [\"wasmbay.*\"]\n  container_annotations = [\"wasmbay.*\", \"module.wasm.image/variant\", \"run.oci.handler\"]\n"
        ));
    }
    Ok(out)
}

pub fn main(args: ContainerdArgs) -> Result<i32> {
    match args.action {
        Action::Config {
            containerd_version,
            engines,
        } => {
            let engines = if engines.is_empty() {
                wasmbay_engines::compiled_in()
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            } else {
                engines
            };
            print!("{}", render(containerd_version, &engines)?);
            Ok(0)
        }
        Action::Install { dir, shim } => {
            let shim = match shim {
                Some(shim) => shim,
                None => std::env::current_exe()
                    .context("cannot locate the wasmbay binary")?
                    .with_file_name(SHIM_BINARY),
            };
            if !shim.is_file() {
                bail!(
                    "{}: no shim binary there (build it with `cargo build -p wasmbay-containerd-shim`, or pass --shim)",
                    shim.display()
                );
            }
            for path in install(&shim, &dir, &wasmbay_engines::compiled_in())? {
                println!("installed {}", path.display());
            }
            println!(
                "next: add the runtimes to containerd's config.toml (`wasmbay containerd config`) and restart containerd"
            );
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_table_per_engine_for_each_containerd() {
        let v1 = render(1, &["wasmtime".into()]).unwrap();
        assert!(v1.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmtime]"));
        assert!(v1.contains("runtime_type = \"io.containerd.wasmtime.v1\""));
        let v2 = render(2, &["wasmtime".into(), "wasmer".into()]).unwrap();
        assert!(v2.contains("io.containerd.cri.v1.runtime\".containerd.runtimes.wasmer]"));
        assert!(render(3, &[]).is_err());
    }

    #[test]
    fn install_puts_one_binary_under_every_engine_name() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("built-shim");
        std::fs::write(&shim, b"shim v1").unwrap();
        let bin = dir.path().join("bin");
        let installed = install(&shim, &bin, &["wasmtime", "wasmedge"]).unwrap();
        assert_eq!(installed.len(), 2);
        let link = bin.join("containerd-shim-wasmedge-v1");
        assert_eq!(std::fs::read(&link).unwrap(), b"shim v1");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from(SHIM_BINARY),
            "a relative link survives moving the directory"
        );
        // Installing again replaces the binary and keeps the links.
        std::fs::write(&shim, b"shim v2").unwrap();
        install(&shim, &bin, &["wasmtime", "wasmedge"]).unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"shim v2");
        let names: Vec<_> = std::fs::read_dir(&bin)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no staging files left: {names:?}");
    }
}
