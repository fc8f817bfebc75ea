//! Properties of the shim executable itself.

/// build.rs links the shim at a fixed address so that its relocated data is not copied into
/// every shim and container init; an ELF type of ET_EXEC (not ET_DYN) shows that it took.
#[test]
fn the_shim_is_linked_at_a_fixed_address() {
    let path = env!("CARGO_BIN_EXE_containerd-shim-wasmbay-wasmtime-v1");
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{path} is not ELF");
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    assert_eq!(e_type, 2, "{path}: ELF type {e_type}, expected ET_EXEC (2)");
}

/// `-v`, as containerd's own shims answer it: the binary, the build with its engines, and the
/// runtime type it serves, with no socket or containerd needed.
#[test]
fn dash_v_prints_the_build_and_its_engines() {
    let path = env!("CARGO_BIN_EXE_containerd-shim-wasmbay-wasmtime-v1");
    let output = wasmbay_testkit::run_with_timeout(
        std::process::Command::new(path).arg("-v"),
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("containerd-shim-wasmbay-wasmtime-v1:\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Version: {}\n",
            wasmbay_engines::version_line(env!("CARGO_PKG_VERSION"))
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Runtime: io.containerd.wasmbay-wasmtime.v1"),
        "{stdout}"
    );
}
