//! Lifecycles per second: `ctr run --rm` of one image from several client threads at once,
//! the way a node starting many short jobs would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use wasmbay_testkit::PrivateContainerd;

/// The rate of one image at one parallelism.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    pub parallelism: usize,
    pub lifecycles: usize,
    pub seconds: f64,
    pub per_second: f64,
}

/// Runs `total` lifecycles of `image` on `runtime` (containerd's default when `None`) from
/// `parallelism` threads, each starting its next container as soon as the last one is gone.
pub fn lifecycle_rate(
    cd: &PrivateContainerd,
    runtime: Option<&str>,
    image: &str,
    prefix: &str,
    parallelism: usize,
    total: usize,
) -> Result<Rate> {
    let next = AtomicUsize::new(0);
    let timeout = Duration::from_secs(120);
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..parallelism.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let mut run = cd.ctr_run();
                        run.arg("--rm");
                        if let Some(runtime) = runtime {
                            run.args(["--runtime", runtime]);
                        }
                        run.args([image, &format!("{prefix}-p{parallelism}-{i}")]);
                        match cd.run_ok(&mut run, timeout) {
                            Ok(output) if !output.stdout.is_empty() => {}
                            Ok(_) => failures.push(format!("{prefix} #{i}: no output")),
                            Err(e) => failures.push(format!("{prefix} #{i}: {e}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|_| vec!["worker panicked".into()]))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    if let Some(first) = failures.first() {
        bail!(
            "{} of {total} lifecycles failed; first: {first}",
            failures.len()
        );
    }
    Ok(Rate {
        parallelism,
        lifecycles: total,
        seconds,
        per_second: total as f64 / seconds,
    })
}
