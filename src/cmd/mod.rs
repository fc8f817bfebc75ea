pub mod bench;
pub mod cache;
pub mod conformance;
pub mod containerd;
pub mod image;
pub mod run;
