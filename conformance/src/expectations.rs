//! Known engine bugs: `conformance/expectations/<engine>.toml` lists the cases an engine fails
//! for an upstream reason, each with that reason and a link to the upstream report.
//!
//! A listed case that fails is an expected failure (`XFAIL`), not a failure; a listed case that
//! passes is a failure, so that the list shrinks as engines are fixed and never hides a case
//! that works. Anything failing and not listed is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::report::{CaseResult, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum ExpectationsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    case: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    case: String,
    reason: String,
    upstream: String,
}

/// The expected failures of one engine, by case id.
#[derive(Debug, Default, Clone)]
pub struct Expectations {
    source: Option<PathBuf>,
    by_case: BTreeMap<String, Entry>,
}

impl Expectations {
    /// Reads `<dir>/<engine>.toml`; no file means no expected failures.
    pub fn load(dir: &Path, engine: &str) -> Result<Expectations, ExpectationsError> {
        let path = dir.join(format!("{engine}.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Expectations::default())
            }
            Err(source) => return Err(ExpectationsError::Read { path, source }),
        };
        Self::parse(&path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Expectations, ExpectationsError> {
        let invalid = |message: String| ExpectationsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut by_case = BTreeMap::new();
        for entry in file.case {
            if entry.reason.trim().is_empty() {
                return Err(invalid(format!("case {}: empty reason", entry.case)));
            }
            if !entry.upstream.starts_with("https://") {
                return Err(invalid(format!(
                    "case {}: upstream must be a link to the upstream report, got {:?}",
                    entry.case, entry.upstream
                )));
            }
            if by_case.insert(entry.case.clone(), entry.clone()).is_some() {
                return Err(invalid(format!("case {} listed twice", entry.case)));
            }
        }
        Ok(Expectations {
            source: Some(path.to_path_buf()),
            by_case,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_case.is_empty()
    }

    /// Turns failures of listed cases into expected failures and passes of listed cases into
    /// failures.
    pub fn apply(&self, results: &mut [CaseResult]) {
        for result in results {
            let Some(entry) = self.by_case.get(&result.id) else {
                continue;
            };
            result.outcome = match &result.outcome {
                Outcome::Fail(why) => Outcome::XFail(format!(
                    "{why} (known: {}; {})",
                    one_line(&entry.reason),
                    entry.upstream
                )),
                Outcome::Pass => Outcome::Fail(format!(
                    "passes, but {} lists it as a known failure ({}); remove the entry",
                    self.source
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    entry.upstream
                )),
                other => other.clone(),
            };
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(id: &str, outcome: Outcome) -> CaseResult {
        CaseResult {
            id: id.into(),
            module: "m.wasm".into(),
            outcome,
            duration: Duration::ZERO,
        }
    }

    const FILE: &str = r#"
[[case]]
case = "corpus/a"
reason = "engine bug"
upstream = "https://example.invalid/issue/1"
"#;

    #[test]
    fn listed_failures_are_expected_and_listed_passes_are_not() {
        let exp = Expectations::parse(Path::new("x.toml"), FILE).unwrap();
        let mut results = vec![
            result("corpus/a", Outcome::Fail("exit 137".into())),
            result("corpus/b", Outcome::Fail("exit 1".into())),
        ];
        exp.apply(&mut results);
        assert!(
            matches!(&results[0].outcome, Outcome::XFail(w) if w.contains("engine bug") && w.contains("issue/1"))
        );
        assert!(
            matches!(results[1].outcome, Outcome::Fail(_)),
            "unlisted stays a failure"
        );

        let mut passing = vec![result("corpus/a", Outcome::Pass)];
        exp.apply(&mut passing);
        assert!(matches!(&passing[0].outcome, Outcome::Fail(w) if w.contains("remove the entry")));
    }

    #[test]
    fn entries_need_a_reason_and_an_upstream_link() {
        let no_link = FILE.replace("https://example.invalid/issue/1", "TODO");
        let err = Expectations::parse(Path::new("x.toml"), &no_link).unwrap_err();
        assert!(
            err.to_string().contains("x.toml") && err.to_string().contains("upstream"),
            "{err}"
        );
        let twice = format!("{FILE}{FILE}");
        assert!(Expectations::parse(Path::new("x.toml"), &twice).is_err());
        let missing = Expectations::load(Path::new("/nonexistent"), "wasmtime").unwrap();
        assert!(missing.is_empty());
    }
}
