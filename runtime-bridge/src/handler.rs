//! Deciding whether a container runs as wasm or as a native program.
//!
//! The rules follow the annotations that crun and the containerd wasm shims understand, so
//! images and pod specs written for them work unchanged:
//! - `run.oci.handler=wasm` or `module.wasm.image/variant=compat`: always wasm;
//! - `module.wasm.image/variant=compat-smart` or `wasm-smart`: wasm if the entrypoint is a wasm
//!   or WAT file, otherwise native;
//! - no annotation: wasm if the entrypoint starts with the wasm magic (or is WAT), native if it
//!   is an ELF or `#!` file.
//!
//! Anything else is refused with the reason.

use std::collections::HashMap;

use wasmbay_shim_core::entrypoint::FileFormat;

pub const HANDLER_ANNOTATION: &str = "run.oci.handler";
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Wasm,
    Native,
    Refuse(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    ForceWasm,
    Smart,
    None,
}

fn hint(annotations: Option<&HashMap<String, String>>) -> Hint {
    let Some(annotations) = annotations else {
        return Hint::None;
    };
    if annotations.get(HANDLER_ANNOTATION).map(String::as_str) == Some("wasm") {
        return Hint::ForceWasm;
    }
    match annotations.get(VARIANT_ANNOTATION).map(String::as_str) {
        Some("compat") => Hint::ForceWasm,
        Some("compat-smart") | Some("wasm-smart") => Hint::Smart,
        _ => Hint::None,
    }
}

/// Decides how to run an entrypoint of `format`, given the container's annotations.
pub fn decide(annotations: Option<&HashMap<String, String>>, format: FileFormat) -> Decision {
    match (hint(annotations), format) {
        (_, FileFormat::Wasm(_) | FileFormat::Wat) => Decision::Wasm,
        (Hint::ForceWasm, other) => Decision::Refuse(format!(
            "the container is annotated as wasm but the entrypoint is {}",
            other.describe()
        )),
        (_, FileFormat::Elf | FileFormat::Script) => Decision::Native,
        (_, FileFormat::Unknown) => Decision::Refuse(format!(
            "the entrypoint is neither wasm nor a native program: {}",
            FileFormat::Unknown.describe()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbay_shim_core::ModuleKind;

    fn ann(key: &str, value: &str) -> HashMap<String, String> {
        HashMap::from([(key.to_string(), value.to_string())])
    }

    const WASM: FileFormat = FileFormat::Wasm(ModuleKind::Core);

    #[test]
    fn magic_decides_without_annotations() {
        assert_eq!(decide(None, WASM), Decision::Wasm);
        assert_eq!(decide(None, FileFormat::Wat), Decision::Wasm);
        assert_eq!(decide(None, FileFormat::Elf), Decision::Native);
        assert_eq!(decide(None, FileFormat::Script), Decision::Native);
        assert!(matches!(
            decide(None, FileFormat::Unknown),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn forcing_annotations_refuse_native_entrypoints() {
        for a in [
            ann(HANDLER_ANNOTATION, "wasm"),
            ann(VARIANT_ANNOTATION, "compat"),
        ] {
            assert_eq!(decide(Some(&a), WASM), Decision::Wasm);
            let Decision::Refuse(why) = decide(Some(&a), FileFormat::Elf) else {
                panic!("must refuse");
            };
            assert!(why.contains("ELF"), "{why}");
        }
    }

    #[test]
    fn smart_variants_pick_by_file() {
        for v in ["compat-smart", "wasm-smart"] {
            let a = ann(VARIANT_ANNOTATION, v);
            assert_eq!(decide(Some(&a), WASM), Decision::Wasm);
            assert_eq!(decide(Some(&a), FileFormat::Elf), Decision::Native);
        }
    }

    #[test]
    fn unrelated_annotations_change_nothing() {
        let a = ann("io.kubernetes.cri.container-type", "container");
        assert_eq!(decide(Some(&a), FileFormat::Elf), Decision::Native);
        assert_eq!(decide(Some(&a), WASM), Decision::Wasm);
    }
}
