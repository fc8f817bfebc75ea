pub mod bench;
pub mod bench_start;
pub mod cache;
pub mod conformance;
pub mod containerd;
pub mod image;
pub mod run;
