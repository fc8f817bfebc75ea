//! `wasmbay containerd config`: the runtime entries containerd needs for the wasmbay shims.

use anyhow::{bail, Result};
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
}
