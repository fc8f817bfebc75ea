//! Result lines, the summary line and the JSON report.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
    /// A failure listed in the engine's expectations file, with its upstream cause.
    XFail(String),
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Skip(_) => "skip",
            Outcome::XFail(_) => "xfail",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub module: PathBuf,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(serialize_with = "as_millis")]
    pub duration: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl CaseResult {
    /// The one line printed for this case.
    pub fn line(&self) -> String {
        match &self.outcome {
            Outcome::Pass => format!("PASS {}", self.id),
            Outcome::Fail(why) => format!("FAIL {}: {why}", self.id),
            Outcome::Skip(why) => format!("SKIP {}: {why}", self.id),
            Outcome::XFail(why) => format!("XFAIL {}: {why}", self.id),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engine: String,
    pub frontend: String,
    pub arch: String,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub xfailed: usize,
    pub results: Vec<CaseResult>,
}

impl Report {
    pub fn new(engine: &str, frontend: &str, results: Vec<CaseResult>) -> Report {
        let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
        Report {
            engine: engine.to_string(),
            frontend: frontend.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            passed: count(|o| matches!(o, Outcome::Pass)),
            failed: count(|o| matches!(o, Outcome::Fail(_))),
            skipped: count(|o| matches!(o, Outcome::Skip(_))),
            xfailed: count(|o| matches!(o, Outcome::XFail(_))),
            results,
        }
    }

    /// `N passed, N failed` and, when any, `, N expected failures, N skipped`.
    pub fn summary(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.xfailed > 0 {
            line.push_str(&format!(", {} expected failures", self.xfailed));
        }
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }

    /// The status word of case `id`, if it ran (`pass`, `fail`, `skip`, `xfail`).
    pub fn status_of(&self, id: &str) -> Option<&'static str> {
        self.results
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.outcome.word())
    }

    pub fn success(&self) -> bool {
        self.failed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome) -> CaseResult {
        CaseResult {
            id: "s/c".into(),
            module: "c.wasm".into(),
            outcome,
            duration: Duration::from_millis(3),
        }
    }

    #[test]
    fn summary_counts_each_outcome() {
        let report = Report::new(
            "wasmtime",
            "direct",
            vec![
                result(Outcome::Pass),
                result(Outcome::Fail("exit code 1, expected 0".into())),
                result(Outcome::Skip("no containerd".into())),
            ],
        );
        assert_eq!(report.summary(), "1 passed, 1 failed, 1 skipped");
        assert!(!report.success());
        assert_eq!(
            report.results[1].line(),
            "FAIL s/c: exit code 1, expected 0"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["results"][1]["status"], "fail");
    }
}
