//! The conformance runner: cases in the wasi-testsuite JSON format, run through one wasmbay
//! frontend and compared with their expectations.
//!
//! A case is a module (`name.wasm` or `name.wat`) with an optional `name.json` spec next to it
//! (see `conformance/README.md` for the keys, including wasmbay's extensions). Frontends only
//! have to turn a [`Invocation`] into an [`Observed`] result; discovery, fixtures, comparison
//! and reporting are shared so that every frontend is judged by the same rules.

pub mod case;
pub mod compare;
pub mod containerd;
pub mod direct;
pub mod expectations;
pub mod fixture;
pub mod matrix;
pub mod oci_runtime;
pub mod operations;
pub mod report;
pub mod suite;

mod http_client;
mod test_servers;

pub use case::{Case, CaseSpec};
pub use compare::Verdict;
pub use containerd::ContainerdFrontend;
pub use direct::DirectFrontend;
pub use expectations::Expectations;
pub use matrix::Matrix;
pub use oci_runtime::OciRuntimeFrontend;
pub use report::{CaseResult, Report};
pub use suite::{discover, run_cases, Frontend, Invocation, Observed, Pace, Workload};
