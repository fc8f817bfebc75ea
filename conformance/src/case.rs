//! One conformance case: its module and its expectations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default time a case may run (wasi-testsuite's reference runner uses the same).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// The JSON spec of a case. Unknown keys are refused so that a typo in an expectation cannot
/// silently turn a check off.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Fixture directory next to the case, preopened as the guest's `/`.
    pub root: Option<String>,
    #[serde(default)]
    pub exit_code: i32,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    // wasmbay extensions (conformance/README.md).
    pub stdin: Option<String>,
    pub stdout_sha256: Option<String>,
    pub stdout_len: Option<u64>,
    pub stderr_contains: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_limit: Option<u64>,
    pub entrypoint: Option<String>,
}

/// A case ready to run: where its files are and what it expects.
#[derive(Debug, Clone)]
pub struct Case {
    /// `suite/name`, for reports.
    pub id: String,
    pub module: PathBuf,
    pub spec: CaseSpec,
    /// Absolute path of the `root` fixture, when the spec has one.
    pub root: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid case spec: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: `root` fixture {root} is not a directory")]
    MissingRoot { path: PathBuf, root: String },
    #[error("{path}: `root` fixture {root:?} must be a relative path below the case's directory (no `..`, not absolute)")]
    RootOutside { path: PathBuf, root: String },
}

/// Whether `root` names a directory below the case's own: relative, non-empty, plain names.
/// The fixture is preopened as the guest's `/`, so `..` or an absolute path would hand the
/// guest a host directory outside the corpus (`"root": "/"` would be the host's root).
fn root_stays_below(root: &str) -> bool {
    let path = Path::new(root);
    path.components().next().is_some()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
        && path
            .components()
            .any(|c| matches!(c, std::path::Component::Normal(_)))
}

impl Case {
    /// Loads the case for `module`, reading `<stem>.json` next to it when present.
    pub fn load(suite: &str, module: &Path) -> Result<Case, CaseError> {
        let stem = module
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let json = module.with_extension("json");
        let spec = if json.exists() {
            let text = std::fs::read_to_string(&json).map_err(|source| CaseError::Read {
                path: json.clone(),
                source,
            })?;
            serde_json::from_str(&text).map_err(|source| CaseError::Parse {
                path: json.clone(),
                source,
            })?
        } else {
            CaseSpec::default()
        };
        let root = match &spec.root {
            Some(name) => {
                if !root_stays_below(name) {
                    return Err(CaseError::RootOutside {
                        path: json,
                        root: name.clone(),
                    });
                }
                let dir = module.parent().unwrap_or(Path::new(".")).join(name);
                if !dir.is_dir() {
                    return Err(CaseError::MissingRoot {
                        path: json,
                        root: name.clone(),
                    });
                }
                Some(dir)
            }
            None => None,
        };
        Ok(Case {
            id: format!("{suite}/{stem}"),
            module: module.to_path_buf(),
            spec,
            root,
        })
    }

    pub fn timeout_ms(&self) -> u64 {
        self.spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference_semantics() {
        let spec: CaseSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.exit_code, 0);
        assert!(spec.args.is_empty() && spec.env.is_empty());
        assert_eq!(spec.stdout, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<CaseSpec>(r#"{"exitcode": 3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `exitcode`"));
    }

    /// Found by `cargo fuzz run conformance_inputs` (fuzz/corpus/conformance_inputs/
    /// regression_root_*): a `root` of `/` or `../x` was joined onto the case's directory and
    /// preopened, outside the corpus.
    #[test]
    fn roots_outside_the_case_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let suite = dir.path().join("suite");
        std::fs::create_dir_all(suite.join("fs.dir/sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside.dir")).unwrap();
        let module = suite.join("c.wat");
        std::fs::write(&module, "(module)").unwrap();
        for bad in ["/", "../outside.dir", "fs.dir/../../outside.dir", "", "."] {
            let spec = serde_json::json!({ "root": bad }).to_string();
            std::fs::write(suite.join("c.json"), spec).unwrap();
            let err = Case::load("s", &module).unwrap_err();
            assert!(
                matches!(err, CaseError::RootOutside { .. }),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("`root`"), "{err}");
        }
        for good in ["fs.dir", "./fs.dir", "fs.dir/sub"] {
            let spec = serde_json::json!({ "root": good }).to_string();
            std::fs::write(suite.join("c.json"), spec).unwrap();
            let case = Case::load("s", &module).unwrap();
            assert!(case.root.unwrap().starts_with(&suite), "{good:?}");
        }
    }

    #[test]
    fn missing_root_names_the_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("c.wat");
        std::fs::write(&module, "(module)").unwrap();
        std::fs::write(dir.path().join("c.json"), r#"{"root": "nope.dir"}"#).unwrap();
        let err = Case::load("s", &module).unwrap_err();
        assert!(err.to_string().contains("nope.dir"), "{err}");
    }
}
