//! (d) The `wasmbay.*` annotations (`wasmbay.wasi.root`, `wasmbay.memory.limit`) together
//! with the bind mounts and memory limit they interact with.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use wasmbay_shim_core::oci::{
    workload_from_spec, RootView, MEMORY_LIMIT_ANNOTATION, WASI_ROOT_ANNOTATION,
};
use wasmbay_shim_core::oci_spec::runtime::Spec;

mod common;

#[derive(Arbitrary, Debug)]
enum Key {
    WasiRoot,
    MemoryLimit,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum PathPart {
    /// Names that make interesting paths: climbing, current, empty, doubled slashes.
    Parent,
    Current,
    Empty,
    Data,
    Etc,
    Name(String),
}

#[derive(Arbitrary, Debug)]
struct GuestPath {
    absolute: bool,
    trailing_slash: bool,
    parts: Vec<PathPart>,
}

impl GuestPath {
    fn render(&self) -> String {
        let parts: Vec<&str> = self
            .parts
            .iter()
            .map(|p| match p {
                PathPart::Parent => "..",
                PathPart::Current => ".",
                PathPart::Empty => "",
                PathPart::Data => "data",
                PathPart::Etc => "etc",
                PathPart::Name(n) => n.as_str(),
            })
            .collect();
        let mut out = String::new();
        if self.absolute {
            out.push('/');
        }
        out.push_str(&parts.join("/"));
        if self.trailing_slash {
            out.push('/');
        }
        out
    }
}

#[derive(Arbitrary, Debug)]
enum AnnotationValue {
    Path(GuestPath),
    Number(u64),
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct Mount {
    destination: GuestPath,
    source: Option<String>,
    typ: Option<String>,
    options: Vec<String>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    annotations: Vec<(Key, AnnotationValue)>,
    mounts: Vec<Mount>,
    memory_limit: Option<i64>,
    readonly: Option<bool>,
    arg0: String,
}

fuzz_target!(|input: Input| {
    let mut annotations = Map::new();
    for (key, value) in &input.annotations {
        let key = match key {
            Key::WasiRoot => WASI_ROOT_ANNOTATION.to_string(),
            Key::MemoryLimit => MEMORY_LIMIT_ANNOTATION.to_string(),
            Key::Other(k) => k.clone(),
        };
        let value = match value {
            AnnotationValue::Path(p) => p.render(),
            AnnotationValue::Number(n) => n.to_string(),
            AnnotationValue::Text(t) => t.clone(),
        };
        annotations.insert(key, Value::String(value));
    }
    let mounts: Vec<Value> = input
        .mounts
        .iter()
        .map(|m| {
            let mut mount = json!({"destination": m.destination.render(), "options": m.options});
            if let Some(source) = &m.source {
                mount["source"] = json!(source);
            }
            if let Some(typ) = &m.typ {
                mount["type"] = json!(typ);
            }
            mount
        })
        .collect();
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {"cwd": "/", "args": [input.arg0], "user": {"uid": 0, "gid": 0}},
        "annotations": annotations,
        "mounts": mounts,
    });
    if let Some(readonly) = input.readonly {
        spec["root"] = json!({"path": "rootfs", "readonly": readonly});
    }
    if let Some(limit) = input.memory_limit {
        spec["linux"] = json!({"resources": {"memory": {"limit": limit}}});
    }
    let Ok(spec) = serde_json::from_value::<Spec>(spec) else {
        return;
    };
    common::check_spec(&spec);

    // Annotation-specific promises, in the view where the guest root is lexical.
    let view = RootView::Host {
        rootfs: common::ROOTFS.into(),
    };
    let wasi_root = annotations
        .get(WASI_ROOT_ANNOTATION)
        .and_then(Value::as_str);
    if let Ok(w) = workload_from_spec(&spec, &view) {
        if wasi_root != Some("") {
            assert_eq!(
                w.config.preopens.first().map(|p| p.guest.as_str()),
                Some("/"),
                "a root annotation {wasi_root:?} other than empty gives a root preopen"
            );
        }
    }
});
