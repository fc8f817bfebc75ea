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
    // The operation-based spec (wasi-testsuite's `wasm32-wasip3` cases; operations.rs). When
    // `operations` is given, its `run` supplies `args`, `env` and `root` above.
    /// WASI proposals the case needs (`sockets`, `http`).
    #[serde(default)]
    pub proposals: Vec<String>,
    /// `wasi:cli/command` (run) or `wasi:http/service` (served).
    pub world: Option<String>,
    /// HTTP servers the runner stands up for the guest's outgoing requests.
    pub servers: Option<Vec<serde_json::Value>>,
    pub operations: Option<Vec<Operation>>,
}

/// One step of an operation-based case, in wasi-testsuite's words (`runner/doc/specification.md`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Operation {
    /// Start the workload.
    Run {
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        root: Option<String>,
    },
    /// Wait for the end (stdin is closed first) and compare the exit code.
    Wait {
        #[serde(default)]
        exit_code: i32,
    },
    /// The next `payload.len()` bytes of `stdout` or `stderr` must be `payload`.
    Read {
        #[serde(default = "stdout_id")]
        id: String,
        #[serde(default)]
        payload: String,
    },
    /// Write to the workload's stdin.
    Write {
        #[serde(default = "stdin_id")]
        id: String,
        #[serde(default)]
        payload: String,
    },
    /// Read `HOST:PORT` from the guest's stdout and connect to it as `id`.
    Connect {
        #[serde(default = "server_id")]
        id: String,
        #[serde(default = "tcp")]
        protocol_type: String,
    },
    Send {
        id: String,
        #[serde(default)]
        payload: String,
    },
    /// The next `payload.len()` bytes received on `id` must be `payload`.
    Recv {
        id: String,
        #[serde(default)]
        payload: String,
    },
    /// An HTTP request to the served component, and the response expected.
    Request(serde_json::Map<String, serde_json::Value>),
    /// Send a signal (by name, default `SIGTERM`) to the workload.
    Kill {
        #[serde(default = "sigterm")]
        signal: String,
    },
}

fn stdout_id() -> String {
    "stdout".into()
}
fn stdin_id() -> String {
    "stdin".into()
}
fn server_id() -> String {
    "server".into()
}
fn tcp() -> String {
    "tcp".into()
}
fn sigterm() -> String {
    "SIGTERM".into()
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
    #[error("{path}: {problem}")]
    Operations { path: PathBuf, problem: String },
}

/// Checks an operation-based spec and moves its `run` into the legacy fields that frontends
/// read (`args`, `env`, `root`), so that every frontend starts both kinds of case the same way.
fn lift_run(spec: &mut CaseSpec, json: &Path) -> Result<(), CaseError> {
    let bad = |problem: String| CaseError::Operations {
        path: json.to_path_buf(),
        problem,
    };
    let legacy_given = !spec.args.is_empty()
        || !spec.env.is_empty()
        || spec.exit_code != 0
        || spec.stdout.is_some()
        || spec.stderr.is_some();
    let Some(operations) = &spec.operations else {
        if spec.servers.is_some() || !spec.proposals.is_empty() || spec.world.is_some() {
            // As in the reference runner, `proposals` or `servers` alone make an
            // operation-based spec: run, then wait for exit 0.
            if legacy_given || spec.root.is_some() {
                return Err(bad(
                    "`proposals`, `servers` or `world` cannot be mixed with the legacy keys".into(),
                ));
            }
            spec.operations = Some(vec![
                Operation::Run {
                    args: Vec::new(),
                    env: BTreeMap::new(),
                    root: None,
                },
                Operation::Wait { exit_code: 0 },
            ]);
        }
        return Ok(());
    };
    if legacy_given || spec.root.is_some() {
        return Err(bad(
            "`operations` cannot be mixed with the legacy keys (args, env, root, exit_code, stdout, stderr)".into(),
        ));
    }
    let runs: Vec<&Operation> = operations
        .iter()
        .filter(|op| matches!(op, Operation::Run { .. }))
        .collect();
    match (runs.as_slice(), operations.first()) {
        ([Operation::Run { args, env, root }], Some(Operation::Run { .. })) => {
            spec.args = args.clone();
            spec.env = env.clone();
            spec.root = root.clone();
        }
        ([], _) => return Err(bad("`operations` has no `run`".into())),
        ([_], _) => return Err(bad("`operations` must start with its `run`".into())),
        _ => return Err(bad("`operations` may have one `run` only".into())),
    }
    if let Some(world) = &spec.world {
        if world != "wasi:cli/command" && world != "wasi:http/service" {
            return Err(bad(format!("unknown `world` {world:?}")));
        }
    }
    Ok(())
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
        let mut spec = if json.exists() {
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
        lift_run(&mut spec, &json)?;
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

    /// Whether the guest needs a network (`sockets` or `http` among its proposals).
    pub fn needs_network(&self) -> bool {
        self.spec
            .proposals
            .iter()
            .any(|p| p == "sockets" || p == "http")
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
    fn an_operation_spec_lends_its_run_to_the_frontends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("fs.dir")).unwrap();
        let module = dir.path().join("c.wasm");
        std::fs::write(&module, b"").unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"{"proposals": ["sockets"], "operations": [
                {"type": "run", "args": ["a"], "env": {"K": "v"}, "root": "fs.dir"},
                {"type": "read", "payload": "x"},
                {"type": "kill", "signal": "SIGINT"},
                {"type": "wait", "exit_code": 3}]}"#,
        )
        .unwrap();
        let case = Case::load("s", &module).unwrap();
        assert_eq!(case.spec.args, ["a"]);
        assert_eq!(case.spec.env["K"], "v");
        assert!(case.root.as_ref().unwrap().ends_with("fs.dir"));
        assert!(case.needs_network());
        let ops = case.spec.operations.unwrap();
        assert_eq!(
            ops[1],
            Operation::Read {
                id: "stdout".into(),
                payload: "x".into()
            }
        );
        assert_eq!(ops[3], Operation::Wait { exit_code: 3 });
    }

    #[test]
    fn bad_operation_specs_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("c.wasm");
        std::fs::write(&module, b"").unwrap();
        for (spec, needle) in [
            (r#"{"operations": [{"type": "wait"}]}"#, "no `run`"),
            (
                r#"{"operations": [{"type": "run"}, {"type": "run"}]}"#,
                "one `run`",
            ),
            (
                r#"{"operations": [{"type": "run"}], "exit_code": 1}"#,
                "legacy keys",
            ),
            (r#"{"operations": [{"type": "jump"}]}"#, "jump"),
            (
                r#"{"operations": [{"type": "wait", "exitcode": 1}]}"#,
                "exitcode",
            ),
        ] {
            std::fs::write(dir.path().join("c.json"), spec).unwrap();
            let err = Case::load("s", &module).unwrap_err().to_string();
            assert!(err.contains("c.json"), "{spec}: {err}");
            assert!(err.contains(needle), "{spec}: {err}");
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
