//! Judging what a run did against what its case expects.

use sha2::{Digest, Sha256};

use crate::case::CaseSpec;
use crate::suite::Observed;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(Vec<String>),
}

/// Compares every expectation and lists each mismatch (not only the first), so that one report
/// line says everything that went wrong.
///
/// `stdout` and `stderr` are compared only when the case gives them, as wasi-testsuite's
/// reference runner does: several upstream cases print diagnostics that no expectation lists.
pub fn judge(spec: &CaseSpec, observed: &Observed) -> Verdict {
    let mut problems = Vec::new();
    if observed.exit_code != spec.exit_code {
        problems.push(format!(
            "exit code {}, expected {}",
            observed.exit_code, spec.exit_code
        ));
    }
    if let Some(len) = spec.stdout_len {
        if observed.stdout.len() as u64 != len {
            problems.push(format!(
                "stdout is {} bytes, expected {len}",
                observed.stdout.len()
            ));
        }
    }
    if let Some(hash) = &spec.stdout_sha256 {
        let got = hex::encode(Sha256::digest(&observed.stdout));
        if !got.eq_ignore_ascii_case(hash) {
            problems.push(format!("stdout sha256 {got}, expected {hash}"));
        }
    }
    if let Some(expected) = &spec.stdout {
        if observed.stdout != expected.as_bytes() {
            problems.push(format!(
                "stdout {}, expected {}",
                excerpt(&observed.stdout),
                excerpt(expected.as_bytes())
            ));
        }
    }
    match &spec.stderr_contains {
        Some(needle) => {
            if !String::from_utf8_lossy(&observed.stderr).contains(needle.as_str()) {
                problems.push(format!(
                    "stderr {} does not contain {needle:?}",
                    excerpt(&observed.stderr)
                ));
            }
        }
        None => {
            if let Some(expected) = spec
                .stderr
                .as_deref()
                .filter(|e| observed.stderr != e.as_bytes())
            {
                problems.push(format!(
                    "stderr {}, expected {}",
                    excerpt(&observed.stderr),
                    excerpt(expected.as_bytes())
                ));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(problems)
    }
}

fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text:?}… ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(code: i32, out: &str, err: &str) -> Observed {
        Observed {
            exit_code: code,
            stdout: out.as_bytes().to_vec(),
            stderr: err.as_bytes().to_vec(),
        }
    }

    #[test]
    fn defaults_expect_success_and_compare_only_given_streams() {
        let spec = CaseSpec::default();
        assert_eq!(
            judge(&spec, &observed(0, "chatter", "noise")),
            Verdict::Pass
        );
        let Verdict::Fail(problems) = judge(&spec, &observed(1, "x", "y")) else {
            panic!("must fail");
        };
        assert_eq!(problems, ["exit code 1, expected 0"]);
        let silent = CaseSpec {
            stdout: Some(String::new()),
            stderr: Some(String::new()),
            ..CaseSpec::default()
        };
        let Verdict::Fail(problems) = judge(&silent, &observed(0, "x", "y")) else {
            panic!("must fail");
        };
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn hash_and_substring_extensions() {
        let spec = CaseSpec {
            stdout_sha256: Some(hex::encode(Sha256::digest(b"abc"))),
            stdout_len: Some(3),
            stderr_contains: Some("wasm trap".into()),
            exit_code: 251,
            ..CaseSpec::default()
        };
        assert_eq!(
            judge(&spec, &observed(251, "abc", "wasmbay: wasm trap: oops\n")),
            Verdict::Pass
        );
        assert!(matches!(
            judge(&spec, &observed(251, "abd", "wasm trap")),
            Verdict::Fail(p) if p.len() == 1
        ));
    }
}
