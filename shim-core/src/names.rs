//! The names by which containerd and Kubernetes find wasmbay's shims.
//!
//! containerd turns a runtime type `io.containerd.<name>.<version>` into the binary
//! `containerd-shim-<name>-<version>` on its `PATH`. runwasi's shims, and the copies Docker
//! Desktop and SpinKube put on nodes, take the bare engine as `<name>`
//! (`io.containerd.wasmtime.v1`, `containerd-shim-wasmtime-v1`), so a node holding one of them
//! could not hold wasmbay under the same names, nor could a distribution package both. Every
//! wasmbay name therefore carries the project's prefix: `wasmbay-<engine>`.

/// What every wasmbay shim, runtime type and runtime handler name starts with.
pub const PREFIX: &str = "wasmbay-";

/// The shim protocol version in the names (`…-v1`, `….v1`).
const VERSION: &str = "v1";

/// The shim binary containerd starts for `engine`: `containerd-shim-wasmbay-wasmtime-v1`.
pub fn shim_binary(engine: &str) -> String {
    format!("containerd-shim-{PREFIX}{engine}-{VERSION}")
}

/// The runtime type (`runtime_type` in containerd's config, `ctr run --runtime`) for
/// `engine`: `io.containerd.wasmbay-wasmtime.v1`.
pub fn runtime_type(engine: &str) -> String {
    format!("io.containerd.{PREFIX}{engine}.{VERSION}")
}

/// The CRI runtime handler (a RuntimeClass's `handler`) that selects `engine`:
/// `wasmbay-wasmtime`.
pub fn runtime_handler(engine: &str) -> String {
    format!("{PREFIX}{engine}")
}

/// The domain of wasmbay's Kubernetes node labels.
pub const LABEL_DOMAIN: &str = "wasmbay.dev";

/// The value of a node label that says its runtime works.
pub const LABEL_READY: &str = "ready";

/// The node label the installer sets, to [`LABEL_READY`], once containerd serves `engine`'s
/// handler, and that the engine's RuntimeClass schedules onto: `wasmbay.dev/wasmtime`.
pub fn node_label(engine: &str) -> String {
    format!("{LABEL_DOMAIN}/{engine}")
}

/// The node label set, to [`LABEL_READY`], once containerd serves every handler the installer
/// declared: the one label a pod that takes any wasmbay engine can schedule by.
pub fn node_label_any() -> String {
    format!("{LABEL_DOMAIN}/runtime")
}

/// The engine a shim binary's file name (or a path to it) names; `None` for any other name,
/// runwasi's among them.
pub fn engine_of_shim_binary(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    let engine = name
        .strip_prefix("containerd-shim-")?
        .strip_prefix(PREFIX)?
        .strip_suffix(VERSION)?
        .strip_suffix('-')?;
    valid_engine(engine)
}

/// The engine a runtime type names; `None` for any other runtime type.
pub fn engine_of_runtime_type(runtime_type: &str) -> Option<&str> {
    let engine = runtime_type
        .strip_prefix("io.containerd.")?
        .strip_prefix(PREFIX)?
        .strip_suffix(VERSION)?
        .strip_suffix('.')?;
    valid_engine(engine)
}

/// The engine a runtime handler names; `None` for any other handler.
pub fn engine_of_runtime_handler(handler: &str) -> Option<&str> {
    valid_engine(handler.strip_prefix(PREFIX)?)
}

/// Engine names are what a Cargo feature may be called: lower-case letters and digits.
fn valid_engine(engine: &str) -> Option<&str> {
    (!engine.is_empty()
        && engine
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_engine() {
        for engine in ["wasmtime", "wasmer", "wasmedge"] {
            assert_eq!(engine_of_shim_binary(&shim_binary(engine)), Some(engine));
            assert_eq!(engine_of_runtime_type(&runtime_type(engine)), Some(engine));
            assert_eq!(
                engine_of_runtime_handler(&runtime_handler(engine)),
                Some(engine)
            );
        }
        assert_eq!(
            shim_binary("wasmtime"),
            "containerd-shim-wasmbay-wasmtime-v1"
        );
        assert_eq!(runtime_type("wasmer"), "io.containerd.wasmbay-wasmer.v1");
        assert_eq!(runtime_handler("wasmedge"), "wasmbay-wasmedge");
        assert_eq!(node_label("wasmtime"), "wasmbay.dev/wasmtime");
        assert_eq!(node_label_any(), "wasmbay.dev/runtime");
    }

    #[test]
    fn runwasi_and_other_names_are_not_ours() {
        assert_eq!(
            engine_of_shim_binary("/usr/local/bin/containerd-shim-wasmbay-wasmer-v1"),
            Some("wasmer")
        );
        for name in [
            "containerd-shim-wasmtime-v1",
            "containerd-shim-spin-v2",
            "containerd-shim-runc-v2",
            "containerd-shim-wasmbay--v1",
            "containerd-shim-wasmbay-wasmtime-v2",
            "/bin/sh",
        ] {
            assert_eq!(engine_of_shim_binary(name), None, "{name}");
        }
        for runtime in [
            "io.containerd.wasmtime.v1",
            "io.containerd.runc.v2",
            "io.containerd.wasmbay-.v1",
            "io.containerd.wasmbay-Wasmtime.v1",
        ] {
            assert_eq!(engine_of_runtime_type(runtime), None, "{runtime}");
        }
        assert_eq!(engine_of_runtime_handler("wasmtime"), None);
        assert_eq!(engine_of_runtime_handler("runc"), None);
    }
}
