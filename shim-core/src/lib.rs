//! The core of wasmbay: everything that is common to all engines and all frontends.
//!
//! This crate owns:
//! - the [`Engine`] trait that each engine crate (`engines/*`) implements,
//! - the WASI configuration of a workload ([`WasiConfig`]) and how it is derived from an OCI
//!   runtime spec ([`oci`]),
//! - finding the module a container runs ([`entrypoint`]): a path in the rootfs, an optional
//!   `#func` suffix, and telling wasm apart from native programs,
//! - the on-disk cache of precompiled modules ([`cache`]),
//! - the life of an init or exec as a state machine the shim obeys ([`lifecycle`]),
//! - the exit-code conventions ([`exit`]),
//! - the names containerd and Kubernetes know the shims by ([`names`]),
//! - where an HTTP handler listens and what one request may use ([`serve`]).
//!
//! It must not depend on containerd, youki or any engine: frontends and engines depend on it,
//! never the other way round. Everything here is plain Rust that can be unit-tested without root.

pub mod cache;
pub mod cgroup_move;
pub mod engine;
pub mod entrypoint;
pub mod exit;
pub mod lifecycle;
pub mod names;
pub mod oci;
pub mod runner;
pub mod serve;
pub mod signals;
pub mod stop;
pub mod trace;
pub mod wasi;

pub use engine::{CompiledModule, Engine, EngineError, ModuleKind};
pub use exit::ExitStatus;
pub use serve::{ServeLimits, ServeSettings};
pub use stop::{StopHandle, StopMode};
pub use wasi::{Preopen, Stdio, WasiConfig};

/// The OCI spec crate this crate's public API uses, re-exported so that callers never mix two
/// versions of the spec types.
pub use oci_spec;
