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
    pub servers: Option<Vec<Server>>,
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
    /// An HTTP request to the served component (at the `http://` address on the first such
    /// line of its stderr), and the response expected.
    Request {
        #[serde(default = "get")]
        method: String,
        /// Path and query, joined to the served address's path.
        #[serde(default = "slash")]
        path: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: String,
        #[serde(default)]
        response: ExpectedResponse,
    },
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
fn get() -> String {
    "GET".into()
}
fn slash() -> String {
    "/".into()
}
fn ok() -> u16 {
    200
}

/// The world of a served component: the runner sends it requests instead of waiting for it.
pub const SERVICE_WORLD: &str = "wasi:http/service";

/// The response a `request` expects. As in the reference runner, every part has a default
/// and all are compared: a missing `body` expects an empty one.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedResponse {
    #[serde(default = "ok")]
    pub status: u16,
    /// Compared by name regardless of case; the value exactly.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

impl Default for ExpectedResponse {
    fn default() -> Self {
        ExpectedResponse {
            status: ok(),
            headers: BTreeMap::new(),
            body: String::new(),
        }
    }
}

/// An HTTP server the runner stands up for the guest's outgoing requests; the guest finds its
/// `HOST:PORT` in the environment variable [`Server::env_var`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    #[serde(default)]
    pub kind: ServerKind,
    /// Only for a listening server; `None` and empty differ so that a closed server given
    /// endpoints is refused, not silently deaf.
    pub endpoints: Option<Vec<Endpoint>>,
}

impl Server {
    /// `HTTP_SERVER_<NAME>`, as the reference runner names it.
    pub fn env_var(&self) -> String {
        format!("HTTP_SERVER_{}", self.name.to_ascii_uppercase())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    #[default]
    Listening,
    /// An address nothing listens on: connecting is refused.
    Closed,
}

/// What a server answers to `method` on `path` (the request target, exactly).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default)]
    pub mode: EndpointMode,
    /// Only in `static` mode (where it defaults to an empty 200).
    pub response: Option<EndpointResponse>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointMode {
    /// Answers the endpoint's `response`.
    #[default]
    Static,
    /// Answers 200 with the request's body.
    EchoBody,
    /// Answers 200 with the request line, headers and trailers as response headers.
    EchoHeaders,
}

/// A static endpoint's answer: a string is a 200 with that body. With `chunks` the body is
/// sent chunked, followed by `trailers`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "serde_json::Value")]
pub struct EndpointResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub chunks: Option<Vec<String>>,
    pub trailers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointResponseFields {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    chunks: Option<Vec<String>>,
    #[serde(default)]
    trailers: BTreeMap<String, String>,
}

/// Through a JSON value rather than an untagged enum, so that a typo in the object form is
/// refused by name instead of with "did not match any variant".
impl TryFrom<serde_json::Value> for EndpointResponse {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        if let serde_json::Value::String(body) = value {
            return Ok(EndpointResponse {
                status: ok(),
                body: Some(body),
                ..EndpointResponse::default()
            });
        }
        let f: EndpointResponseFields =
            serde_json::from_value(value).map_err(|e| format!("endpoint response: {e}"))?;
        Ok(EndpointResponse {
            status: f.status,
            headers: f.headers,
            body: f.body,
            chunks: f.chunks,
            trailers: f.trailers,
        })
    }
}

/// Methods a test server answers (the reference runner's list).
pub const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// Checks `servers` as the reference runner does, and spells endpoint methods in capitals
/// (the runner matches requests against them exactly).
fn check_servers(servers: &mut [Server]) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for server in servers.iter_mut() {
        let name = &server.name;
        // The name becomes part of an environment variable name.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "server name {name:?} must be letters, digits or `_`"
            ));
        }
        if !names.insert(name.to_ascii_uppercase()) {
            return Err(format!(
                "two servers are named {name:?} (names ignore case)"
            ));
        }
        if server.kind == ServerKind::Closed && server.endpoints.is_some() {
            return Err(format!(
                "server {name:?} is `closed`: it takes no `endpoints`"
            ));
        }
        for endpoint in server.endpoints.iter_mut().flatten() {
            endpoint.method = endpoint.method.to_ascii_uppercase();
            let at = format!(
                "server {name:?}, endpoint {} {}",
                endpoint.method, endpoint.path
            );
            if !HTTP_METHODS.contains(&endpoint.method.as_str()) {
                return Err(format!("{at}: unknown method"));
            }
            match (&endpoint.mode, &endpoint.response) {
                (EndpointMode::Static, Some(response)) => {
                    if response.body.is_some() && response.chunks.is_some() {
                        return Err(format!("{at}: `body` or `chunks`, not both"));
                    }
                    if !response.trailers.is_empty() && response.chunks.is_none() {
                        return Err(format!("{at}: `trailers` need `chunks`"));
                    }
                }
                (EndpointMode::Static, None) => {}
                (_, Some(_)) => {
                    return Err(format!("{at}: an echoing endpoint takes no `response`"))
                }
                (_, None) => {}
            }
        }
    }
    Ok(())
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
    if let Some(servers) = &mut spec.servers {
        check_servers(servers).map_err(|e| bad(format!("`servers`: {e}")))?;
    }
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
        if world != "wasi:cli/command" && world != SERVICE_WORLD {
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

    /// Whether the module is served (`wasmbay serve`) and sent requests, not run to its end.
    pub fn is_served(&self) -> bool {
        self.spec.world.as_deref() == Some(SERVICE_WORLD)
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
    fn served_cases_with_servers_load_as_the_reference_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("c.wasm");
        std::fs::write(&module, b"").unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"{"proposals": ["http"], "world": "wasi:http/service",
                "servers": [{"name": "main", "endpoints": [
                    {"method": "post", "path": "/e", "mode": "echo-body"},
                    {"path": "/s", "response": "short"},
                    {"path": "/c", "response": {"status": 201, "chunks": ["a"],
                                                "trailers": {"t": "1"}}}]},
                    {"name": "gone", "kind": "closed"}],
                "operations": [{"type": "run"},
                    {"type": "request", "path": "/x", "response": {"status": 404}}]}"#,
        )
        .unwrap();
        let case = Case::load("s", &module).unwrap();
        assert!(case.is_served());
        let servers = case.spec.servers.unwrap();
        assert_eq!(servers[0].env_var(), "HTTP_SERVER_MAIN");
        let endpoints = servers[0].endpoints.as_ref().unwrap();
        assert_eq!(
            endpoints[0].method, "POST",
            "methods are matched in capitals"
        );
        assert_eq!(endpoints[1].method, "GET");
        let short = endpoints[1].response.as_ref().unwrap();
        assert_eq!((short.status, short.body.as_deref()), (200, Some("short")));
        assert_eq!(servers[1].kind, ServerKind::Closed);
        assert_eq!(
            case.spec.operations.unwrap()[1],
            Operation::Request {
                method: "GET".into(),
                path: "/x".into(),
                headers: BTreeMap::new(),
                body: String::new(),
                response: ExpectedResponse {
                    status: 404,
                    ..ExpectedResponse::default()
                },
            }
        );
    }

    #[test]
    fn bad_servers_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("c.wasm");
        std::fs::write(&module, b"").unwrap();
        for (servers, needle) in [
            (r#"[{"name": "a-b"}]"#, "letters, digits"),
            (r#"[{"name": "a"}, {"name": "A"}]"#, "two servers"),
            (
                r#"[{"name": "a", "kind": "closed", "endpoints": []}]"#,
                "closed",
            ),
            (
                r#"[{"name": "a", "endpoints": [{"method": "BREW"}]}]"#,
                "unknown method",
            ),
            (
                r#"[{"name": "a", "endpoints": [{"mode": "echo-body", "response": "x"}]}]"#,
                "takes no `response`",
            ),
            (
                r#"[{"name": "a", "endpoints": [{"response": {"body": "x", "chunks": []}}]}]"#,
                "not both",
            ),
            (
                r#"[{"name": "a", "endpoints": [{"response": {"trailers": {"t": "1"}}}]}]"#,
                "need `chunks`",
            ),
            (
                r#"[{"name": "a", "endpoints": [{"response": {"bdy": "x"}}]}]"#,
                "bdy",
            ),
        ] {
            let spec = format!(r#"{{"servers": {servers}, "operations": [{{"type": "run"}}]}}"#);
            std::fs::write(dir.path().join("c.json"), &spec).unwrap();
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
