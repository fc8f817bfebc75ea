//! Which cgroup driver places a container: cgroupfs (the shim writes the cgroup tree itself)
//! or systemd (a transient scope under a slice, made over D-Bus), decided as runc's shim does.
//!
//! Two things select systemd: the runtime options containerd passes with the create
//! (`containerd.runc.v1.Options`, field 9 `systemd_cgroup`, set by `SystemdCgroup = true` in a
//! runtime's options or `ctr run --runc-systemd-cgroup`), and a cgroups path of the systemd
//! form `slice:prefix:name`. containerd's CRI builds the second from a `.slice` pod parent
//! whatever the runtime's options say, and cgroupfs would otherwise make a literal top-level
//! directory named `kubepods-….slice:cri-containerd:<id>`, outside the pod's slice.

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::empty::Empty;
use containerd_shim::protos::protobuf::{Message, UnknownValueRef};

/// The runc shim's options message, which containerd sends to every shim it configures
/// with runc-style options (the wasm runtimes of an installer's config among them).
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// `bool systemd_cgroup = 9;` in containerd's `api/types/runc/options/oci.proto`.
const SYSTEMD_CGROUP_FIELD: u32 = 9;

/// A runtime-options message the shim cannot read.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("runtime options ({type_url}) are not a valid protobuf message: {source}")]
    Malformed {
        type_url: String,
        #[source]
        source: containerd_shim::protos::protobuf::Error,
    },
    #[error("runtime options ({type_url}): field systemd_cgroup (9) is not a boolean")]
    NotBoolean { type_url: String },
}

/// Whether the create's runtime options ask for the systemd cgroup driver. Options of
/// another type (a runtime that passes its own) say nothing about it.
pub fn options_ask_systemd(options: Option<&Any>) -> Result<bool, OptionsError> {
    let Some(options) = options else {
        return Ok(false);
    };
    let type_url = options.type_url.as_str();
    // Any's type URL is `<host>/<full name>`; containerd sends the bare full name too.
    if type_url.rsplit('/').next() != Some(RUNC_OPTIONS) {
        return Ok(false);
    }
    // Every field of the message is unknown to `Empty`, which keeps them: no generated type
    // for runc's options is needed for the one field read here.
    let message =
        Empty::parse_from_bytes(&options.value).map_err(|source| OptionsError::Malformed {
            type_url: type_url.to_string(),
            source,
        })?;
    // proto3 keeps the last occurrence of a scalar field (the values come grouped by wire
    // type, in their order within the group).
    let mut systemd = false;
    for (number, value) in message.special_fields.unknown_fields().iter() {
        if number != SYSTEMD_CGROUP_FIELD {
            continue;
        }
        match value {
            UnknownValueRef::Varint(value) => systemd = value != 0,
            _ => {
                return Err(OptionsError::NotBoolean {
                    type_url: type_url.to_string(),
                })
            }
        }
    }
    Ok(systemd)
}

/// Whether `path` is a systemd cgroups path: `slice:prefix:name`, the slice a `.slice` unit
/// (or empty, for systemd's default), no part holding a `/`.
pub fn is_systemd_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return false;
    };
    !name.is_empty()
        && !prefix.is_empty()
        && (slice.is_empty() || slice.ends_with(".slice"))
        && parts.iter().all(|p| !p.contains('/'))
}

/// The driver for a container whose create carried `options` and whose spec has
/// `cgroups_path`: true for systemd.
pub fn use_systemd(
    options: Option<&Any>,
    cgroups_path: Option<&str>,
) -> Result<bool, OptionsError> {
    Ok(options_ask_systemd(options)? || cgroups_path.is_some_and(is_systemd_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes containerd sends for runc options with the given fields set.
    fn runc_options(fields: &[u8]) -> Any {
        Any {
            type_url: format!("type.googleapis.com/{RUNC_OPTIONS}"),
            value: fields.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn systemd_cgroup_true_in_runc_options_selects_systemd() {
        // Field 7 `root` = "/r" (tag 0x3a), then field 9 = true (tag 0x48).
        let options = runc_options(&[0x3a, 2, b'/', b'r', 0x48, 1]);
        assert!(options_ask_systemd(Some(&options)).unwrap());
        let bare = Any {
            type_url: RUNC_OPTIONS.to_string(),
            ..options
        };
        assert!(options_ask_systemd(Some(&bare)).unwrap());
    }

    #[test]
    fn absent_or_false_systemd_cgroup_keeps_cgroupfs() {
        assert!(!options_ask_systemd(None).unwrap());
        assert!(!options_ask_systemd(Some(&runc_options(&[]))).unwrap());
        assert!(!options_ask_systemd(Some(&runc_options(&[0x48, 0]))).unwrap());
        // The last occurrence wins, as protobuf says.
        assert!(!options_ask_systemd(Some(&runc_options(&[0x48, 1, 0x48, 0]))).unwrap());
    }

    #[test]
    fn options_of_another_type_say_nothing() {
        let other = Any {
            type_url: "type.googleapis.com/runtimeoptions.v1.Options".into(),
            value: vec![0x48, 1],
            ..Default::default()
        };
        assert!(!options_ask_systemd(Some(&other)).unwrap());
    }

    #[test]
    fn malformed_options_are_refused_with_their_type() {
        // A length-delimited field 1 claiming 5 bytes where there are 2.
        let err = options_ask_systemd(Some(&runc_options(&[0x0a, 5, 1, 2]))).unwrap_err();
        assert!(err.to_string().contains(RUNC_OPTIONS), "{err}");
        // Field 9 as a string.
        let err = options_ask_systemd(Some(&runc_options(&[0x4a, 1, b'x']))).unwrap_err();
        assert!(matches!(err, OptionsError::NotBoolean { .. }), "{err}");
    }

    #[test]
    fn the_cri_systemd_path_form_is_recognised() {
        assert!(is_systemd_path(
            "kubepods-besteffort-pod1234.slice:cri-containerd:abc"
        ));
        assert!(is_systemd_path("system.slice:wb:x"));
        assert!(is_systemd_path(":wb:x"));
        for cgroupfs in [
            "/kubepods/besteffort/pod1234/abc",
            "wb/x",
            "system.slice:wb",
            "a:b:c:d",
            "notaslice:wb:x",
            "system.slice:wb:",
            "system.slice::x",
            "/system.slice:wb:x",
        ] {
            assert!(!is_systemd_path(cgroupfs), "{cgroupfs}");
        }
        assert!(use_systemd(None, Some("system.slice:wb:x")).unwrap());
        assert!(!use_systemd(None, Some("/wb/x")).unwrap());
        assert!(!use_systemd(None, None).unwrap());
    }
}
