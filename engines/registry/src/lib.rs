//! The engines compiled into a binary, selected by name.
//!
//! Frontends (the CLI, the OCI runtime, the containerd shim) depend on this crate rather than on
//! engine crates directly, so that one Cargo feature per engine (`wasmtime`, `wasmer`,
//! `wasmedge`) decides what a binary holds. Asking for an engine that is not compiled in is an
//! error that says how to get it, never a silent substitution by another engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use wasmbay_shim_core::{Engine, EngineError, StopMode};

/// Engine used when none is named.
pub const DEFAULT_ENGINE: &str = "wasmtime";

/// Every engine wasmbay knows.
pub const KNOWN: [&str; 3] = ["wasmtime", "wasmer", "wasmedge"];

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "engine `{0}` is not compiled into this binary; rebuild with `cargo build --features {0}`"
    )]
    NotCompiledIn(String),
    #[error("unknown engine `{0}` (known engines: wasmtime, wasmer, wasmedge)")]
    Unknown(String),
    #[error("engine `{name}` failed to start: {source}")]
    Init { name: String, source: EngineError },
}

/// Whether this build holds the engine `name`.
// A `match` so that each engine added later is one more arm.
#[allow(clippy::match_like_matches_macro)]
pub fn is_compiled_in(name: &str) -> bool {
    match name {
        "wasmtime" => cfg!(feature = "wasmtime"),
        "wasmer" => cfg!(feature = "wasmer"),
        "wasmedge" => cfg!(feature = "wasmedge"),
        _ => false,
    }
}

/// The engines this build holds, in [`KNOWN`] order.
pub fn compiled_in() -> Vec<&'static str> {
    KNOWN.into_iter().filter(|n| is_compiled_in(n)).collect()
}

/// The version of each engine this build holds, in [`KNOWN`] order.
pub fn versions() -> Vec<(&'static str, String)> {
    KNOWN
        .into_iter()
        .filter_map(|name| version_of(name).map(|version| (name, version)))
        .collect()
}

/// The release of engine `name` when it is compiled in.
fn version_of(name: &str) -> Option<String> {
    match name {
        #[cfg(feature = "wasmtime")]
        "wasmtime" => Some(wasmbay_engine_wasmtime::WASMTIME_VERSION.to_string()),
        #[cfg(feature = "wasmer")]
        "wasmer" => Some(wasmbay_engine_wasmer::WASMER_VERSION.to_string()),
        #[cfg(feature = "wasmedge")]
        "wasmedge" => Some(wasmbay_engine_wasmedge::library_version()),
        _ => None,
    }
}

/// Whether this process's command line asks for `--version` (or `-V`): frontends build the
/// engines' version line only then, as `wasmbay-runtime create` sits on a container's start
/// path and a WasmEdge build would ask its library each time.
pub fn version_asked() -> bool {
    std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-V")
}

/// [`version_line`] as the `&'static str` clap keeps; made once per process, when asked.
pub fn leaked_version_line(own_version: &str) -> &'static str {
    Box::leak(version_line(own_version).into_boxed_str())
}

/// What a frontend's `--version` says after its own version: the engines it holds, e.g.
/// `0.1.0 (engines: wasmtime 48.0.8, wasmer 7.3.0)`, so that a bug report names them.
pub fn version_line(own_version: &str) -> String {
    let engines: Vec<String> = versions()
        .into_iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect();
    if engines.is_empty() {
        format!("{own_version} (no engine compiled in)")
    } else {
        format!("{own_version} (engines: {})", engines.join(", "))
    }
}

/// Creates the engine `name` with its default settings, for guests stopped as `stop_mode` says.
/// Frontends that give each guest its own process (container inits, `wasmbay run`) and the
/// frontends that precompile for them pass [`StopMode::ExitProcess`]; the two modes compile
/// different code, so a precompiler and its runner must agree.
pub fn create(name: &str, stop_mode: StopMode) -> Result<Arc<dyn Engine>, SelectError> {
    let init = |source| SelectError::Init {
        name: name.to_string(),
        source,
    };
    match name {
        #[cfg(feature = "wasmtime")]
        "wasmtime" => Ok(Arc::new(
            wasmbay_engine_wasmtime::WasmtimeEngine::new(&wasmbay_engine_wasmtime::Settings {
                stop_mode,
                // A guest that owns its process is the only instance its engine ever makes, and
                // the engine that precompiles for it instantiates nothing: a pool of slots
                // reserved up front would only cost set-up time.
                pooling: stop_mode == StopMode::InGuest,
                ..Default::default()
            })
            .map_err(init)?,
        )),
        // wasmer interrupts guest code by signal, which adds nothing to generated code, so one
        // mode serves both.
        #[cfg(feature = "wasmer")]
        "wasmer" => Ok(Arc::new(
            wasmbay_engine_wasmer::WasmerEngine::new(&wasmbay_engine_wasmer::Settings::default())
                .map_err(init)?,
        )),
        // WasmEdge interprets: its cancel costs guest code nothing, so one mode serves both.
        #[cfg(feature = "wasmedge")]
        "wasmedge" => Ok(Arc::new(
            wasmbay_engine_wasmedge::WasmEdgeEngine::new().map_err(init)?,
        )),
        known if KNOWN.contains(&known) => {
            let _ = (init, stop_mode);
            Err(SelectError::NotCompiledIn(known.to_string()))
        }
        unknown => Err(SelectError::Unknown(unknown.to_string())),
    }
}

/// The engine `name` with its default settings, created once per process and shared after
/// that. Engines are `Send + Sync` and meant to be shared: a shim serving a pod prepares every
/// container of it, and building a new engine (settings, allocator reservations) for each one
/// is repeated work on the container-start path.
pub fn shared(name: &str, stop_mode: StopMode) -> Result<Arc<dyn Engine>, SelectError> {
    type Engines = HashMap<(String, StopMode), Arc<dyn Engine>>;
    static ENGINES: OnceLock<Mutex<Engines>> = OnceLock::new();
    let mut engines = ENGINES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let key = (name.to_string(), stop_mode);
    if let Some(engine) = engines.get(&key) {
        return Ok(Arc::clone(engine));
    }
    let engine = create(name, stop_mode)?;
    engines.insert(key, Arc::clone(&engine));
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_engines_are_errors() {
        assert!(matches!(
            create("nope", StopMode::InGuest),
            Err(SelectError::Unknown(_))
        ));
        for name in KNOWN {
            if !is_compiled_in(name) {
                let err = create(name, StopMode::ExitProcess)
                    .err()
                    .expect("must refuse");
                assert!(err.to_string().contains("--features"), "{err}");
            }
        }
    }

    /// The version of package `name` that Cargo.lock resolved.
    fn locked_version(name: &str) -> Option<String> {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("the workspace's Cargo.lock");
        let entry = format!("name = \"{name}\"\nversion = \"");
        let start = lock.find(&entry)? + entry.len();
        Some(lock[start..].split('"').next()?.to_string())
    }

    #[test]
    fn versions_name_each_engine_compiled_in_with_the_release_built() {
        let versions = versions();
        let names: Vec<&str> = versions.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, compiled_in());
        for (name, version) in &versions {
            assert!(
                version.split('.').count() >= 3
                    && version.split('.').take(3).all(|part| part
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .count()
                        > 0),
                "{name}: {version}"
            );
            // wasmtime's and wasmer's come from their own crates: the release Cargo.lock
            // holds. wasmedge's is the loaded library's, which no lock file knows.
            if *name != "wasmedge" {
                assert_eq!(Some(version.clone()), locked_version(name), "{name}");
            }
        }
        let line = version_line("9.9.9");
        assert!(line.starts_with("9.9.9 ("), "{line}");
        for (name, version) in &versions {
            assert!(line.contains(&format!("{name} {version}")), "{line}");
        }
    }

    #[cfg(feature = "wasmtime")]
    #[test]
    fn shared_engines_are_created_once() {
        let a = shared("wasmtime", StopMode::ExitProcess).unwrap();
        let b = shared("wasmtime", StopMode::ExitProcess).unwrap();
        assert_eq!(Arc::as_ptr(&a).cast::<()>(), Arc::as_ptr(&b).cast::<()>());
        // The other mode compiles different code: a different engine.
        let c = shared("wasmtime", StopMode::InGuest).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert!(matches!(
            shared("nope", StopMode::InGuest),
            Err(SelectError::Unknown(_))
        ));
    }

    #[cfg(feature = "wasmtime")]
    #[test]
    fn wasmtime_is_selectable_by_name() {
        assert_eq!(
            create("wasmtime", StopMode::InGuest).unwrap().name(),
            "wasmtime"
        );
        assert!(compiled_in().contains(&"wasmtime"));
    }

    #[cfg(feature = "wasmer")]
    #[test]
    fn wasmer_is_selectable_by_name() {
        let engine = create("wasmer", StopMode::ExitProcess).unwrap();
        assert_eq!(engine.name(), "wasmer");
        assert!(!engine.supports(wasmbay_shim_core::ModuleKind::Component));
        assert!(compiled_in().contains(&"wasmer"));
    }

    #[cfg(feature = "wasmedge")]
    #[test]
    fn wasmedge_is_selectable_by_name() {
        assert_eq!(
            create("wasmedge", StopMode::ExitProcess).unwrap().name(),
            "wasmedge"
        );
        assert!(compiled_in().contains(&"wasmedge"));
    }
}
