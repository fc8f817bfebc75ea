pub mod bench;
pub mod cache;
pub mod conformance;
pub mod run;
