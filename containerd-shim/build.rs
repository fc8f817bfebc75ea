//! Links the shim as a fixed-address (non-PIE) executable.
//!
//! A position-independent executable is relocated when it starts: the dynamic loader writes
//! the load address into every pointer of its read-only-after-relocation data (vtables,
//! string tables), which in this binary is about 700 KiB that become private, dirty memory in
//! every shim process and every container init cloned from one. Linked at a fixed address,
//! those pages stay clean and shared through the page cache. The code itself stays
//! position-independent; only the executable's own image loses address randomisation
//! (libraries, heap, stacks and guest memory keep theirs), as with runc's Go shims.
//!
//! A static build (`-C target-feature=+crt-static`, scripts/installer-image.sh) is left as
//! rustc links it (a static PIE that relocates itself on x86_64; on aarch64 the script
//! compiles for a fixed address anyway), rather than mixing `-no-pie` into rustc's
//! `-static-pie` link.
fn main() {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
