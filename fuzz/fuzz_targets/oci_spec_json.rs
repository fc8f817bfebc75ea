//! (a) OCI runtime spec (`config.json` bytes) → WASI configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbay_shim_core::oci_spec::runtime::Spec;

mod common;

fuzz_target!(|data: &[u8]| {
    // Bytes that are not a spec are oci-spec's and serde's business; what is a spec must map
    // without panicking and within the rootfs.
    if let Ok(spec) = serde_json::from_slice::<Spec>(data) {
        common::check_spec(&spec);
    }
});
