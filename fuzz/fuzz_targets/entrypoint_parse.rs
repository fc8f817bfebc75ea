//! (b) `path#func` splitting and file-format detection of an entrypoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmbay_oci_image::ModuleKind as ImageKind;
use wasmbay_shim_core::entrypoint::{Entrypoint, FileFormat};
use wasmbay_shim_core::ModuleKind;

fuzz_target!(|data: &[u8]| {
    if let Ok(arg0) = std::str::from_utf8(data) {
        let e = Entrypoint::parse(arg0);
        match &e.func {
            // A split loses nothing and keeps `/` out of the function name.
            Some(func) => {
                assert_eq!(format!("{}#{func}", e.path), arg0);
                assert!(!func.is_empty() && !func.contains(['/', '#']), "{e:?}");
                assert!(!e.path.is_empty(), "{e:?}");
            }
            None => assert_eq!(e.path, arg0),
        }
    }
    // The image builder and the runtime must agree on what a module is.
    let format = FileFormat::detect(data);
    match ImageKind::detect(data) {
        ImageKind::CoreModule => assert_eq!(format, FileFormat::Wasm(ModuleKind::Core)),
        ImageKind::Component => assert_eq!(format, FileFormat::Wasm(ModuleKind::Component)),
        ImageKind::Text => {}
    }
    assert_eq!(
        format.is_wasm(),
        matches!(format, FileFormat::Wasm(_) | FileFormat::Wat)
    );
    assert!(!format.describe().is_empty());
});
