//! The conformance matrix: every engine × every frontend over one corpus, with the cases on
//! which engines disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{Outcome, Report};

/// One case whose outcome differs between engines under one frontend.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub frontend: String,
    pub case: String,
    /// Engine → `pass`/`fail`/`skip`/`xfail` and the reason, when there is one.
    pub outcomes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub arch: String,
    pub reports: Vec<Report>,
    pub differences: Vec<Difference>,
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Pass => "pass".to_string(),
        Outcome::Fail(why) | Outcome::Skip(why) | Outcome::XFail(why) => {
            format!("{}: {why}", outcome.word())
        }
    }
}

impl Matrix {
    pub fn new(reports: Vec<Report>) -> Matrix {
        let differences = differences(&reports);
        Matrix {
            arch: std::env::consts::ARCH.to_string(),
            reports,
            differences,
        }
    }

    pub fn success(&self) -> bool {
        self.reports.iter().all(Report::success)
    }

    fn engines(&self) -> Vec<&str> {
        unique(self.reports.iter().map(|r| r.engine.as_str()))
    }

    fn frontends(&self) -> Vec<&str> {
        unique(self.reports.iter().map(|r| r.frontend.as_str()))
    }

    /// The pass/fail table, one row per engine and one column per frontend, in Markdown.
    pub fn table(&self) -> String {
        let frontends = self.frontends();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| engine ({}) | {} |",
            self.arch,
            frontends.join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---|".repeat(frontends.len()));
        for engine in self.engines() {
            let cells: Vec<String> = frontends
                .iter()
                .map(|frontend| {
                    self.reports
                        .iter()
                        .find(|r| r.engine == engine && r.frontend == *frontend)
                        .map(cell)
                        .unwrap_or_else(|| "not run".to_string())
                })
                .collect();
            let _ = writeln!(out, "| {engine} | {} |", cells.join(" | "));
        }
        out
    }

    /// The table, then every difference between engines, in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("# Conformance matrix ({})\n\n", self.arch);
        out.push_str("Cells: passed/ran, then failures (F), expected failures with an upstream cause (X) and skips (S) when any.\n\n");
        out.push_str(&self.table());
        out.push_str("\n## Differences between engines\n\n");
        if self.differences.is_empty() {
            out.push_str("None: every case has the same outcome on every engine.\n");
        }
        for d in &self.differences {
            let _ = writeln!(out, "- `{}` via {}:", d.case, d.frontend);
            for (engine, outcome) in &d.outcomes {
                let _ = writeln!(out, "  - {engine}: {outcome}");
            }
        }
        out
    }
}

fn cell(report: &Report) -> String {
    let ran = report.passed + report.failed + report.xfailed;
    let mut cell = format!("{}/{ran}", report.passed);
    for (count, tag) in [
        (report.failed, "F"),
        (report.xfailed, "X"),
        (report.skipped, "S"),
    ] {
        if count > 0 {
            let _ = write!(cell, " {count}{tag}");
        }
    }
    cell
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

fn differences(reports: &[Report]) -> Vec<Difference> {
    let mut by_frontend: BTreeMap<&str, Vec<&Report>> = BTreeMap::new();
    for report in reports {
        by_frontend
            .entry(report.frontend.as_str())
            .or_default()
            .push(report);
    }
    let mut out = Vec::new();
    for (frontend, reports) in by_frontend {
        if reports.len() < 2 {
            continue;
        }
        let cases: BTreeSet<&str> = reports
            .iter()
            .flat_map(|r| r.results.iter().map(|c| c.id.as_str()))
            .collect();
        for case in cases {
            let words: BTreeSet<Option<&str>> = reports.iter().map(|r| r.status_of(case)).collect();
            if words.len() < 2 {
                continue;
            }
            let outcomes = reports
                .iter()
                .map(|r| {
                    let outcome = r
                        .results
                        .iter()
                        .find(|c| c.id == case)
                        .map(|c| describe(&c.outcome))
                        .unwrap_or_else(|| "not run".to_string());
                    (r.engine.clone(), outcome)
                })
                .collect();
            out.push(Difference {
                frontend: frontend.to_string(),
                case: case.to_string(),
                outcomes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CaseResult;
    use std::time::Duration;

    fn report(engine: &str, frontend: &str, outcomes: &[(&str, Outcome)]) -> Report {
        let results = outcomes
            .iter()
            .map(|(id, outcome)| CaseResult {
                id: id.to_string(),
                module: "m.wasm".into(),
                outcome: outcome.clone(),
                duration: Duration::ZERO,
            })
            .collect();
        Report::new(engine, frontend, results)
    }

    #[test]
    fn table_and_differences() {
        let matrix = Matrix::new(vec![
            report(
                "wasmtime",
                "direct",
                &[("a", Outcome::Pass), ("b", Outcome::Pass)],
            ),
            report(
                "wasmedge",
                "direct",
                &[
                    ("a", Outcome::Pass),
                    ("b", Outcome::Skip("no components".into())),
                ],
            ),
            report(
                "wasmtime",
                "oci-runtime",
                &[("a", Outcome::Fail("exit 1".into()))],
            ),
        ]);
        assert!(!matrix.success());
        let table = matrix.table();
        assert!(table.contains("| wasmtime | 2/2 | 0/1 1F |"), "{table}");
        assert!(table.contains("| wasmedge | 1/1 1S | not run |"), "{table}");
        assert_eq!(matrix.differences.len(), 1);
        let d = &matrix.differences[0];
        assert_eq!((d.frontend.as_str(), d.case.as_str()), ("direct", "b"));
        assert_eq!(d.outcomes["wasmedge"], "skip: no components");
        assert!(matrix.markdown().contains("`b` via direct"));
    }
}
