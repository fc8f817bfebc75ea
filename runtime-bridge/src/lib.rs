//! The low-level runtime path of wasmbay: a youki `libcontainer` [`Executor`] that runs wasm
//! through a wasmbay engine inside a real container (namespaces, cgroups, mounts, pivot_root
//! are libcontainer's), and falls back to a normal exec for native programs, so that pause
//! containers and sidecars run through the same runtime.
//!
//! Owns: deciding per container whether it is wasm ([`handler`]), preparing the precompiled
//! artifact on the host before the container exists ([`prepare`]), running the guest as the
//! container's init process with signal handling ([`guest`]), and the executor itself
//! ([`executor`]). The `wasmbay-runtime` binary (runc-compatible CLI) is built on these.
//! Must not depend on containerd; engines are reached through `wasmbay-engines` only.
//!
//! [`Executor`]: libcontainer::workload::Executor

pub mod cgroup_warmup;
pub mod console_socket;
pub mod delete;
pub mod dev_setup;
mod exec_caps;
pub mod executor;
pub mod fd_passing;
pub mod guest;
pub mod handler;
pub mod loopback;
pub mod prepare;
pub mod userns_bundle;
pub mod zygote;

pub use executor::WasmExecutor;
pub use libcontainer;

/// Annotation that selects the engine for one container.
pub const ENGINE_ANNOTATION: &str = "wasmbay.engine";
