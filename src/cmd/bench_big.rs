//! The big-module part of `wasmbay bench start`: the first start of an image holding a large
//! module, the second, and one after containerd (and with it every shim) restarted, for both
//! image layouts.
//!
//! App images run through `ctr run --rm`. containerd 1.6.20 cannot unpack an artifact image
//! (its layer is the module, not a file system), so artifact images run through containerd's
//! API on an empty snapshot, as newer containerd does by itself; both are timed from the
//! client's side, from the request to the exit status.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use wasmbay_oci_image::{ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{process_spec, ApiClient, ApiContainer, ContainerdConfig, PrivateContainerd};

use crate::cmd::bench::median;
use crate::cmd::bench_report::BigModule;
use crate::cmd::bench_start::timed;

/// How long one start of the big module may take: its first start compiles 25 MB or more.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Where a big-module image runs: the private containerd, its settings (to restart it) and
/// the runtime and cache directory the shims use.
pub struct BigBench<'a> {
    pub containerd: &'a mut PrivateContainerd,
    pub config: &'a ContainerdConfig,
    pub runtime: &'a str,
    pub cache: &'a Path,
    pub work: &'a Path,
}

impl BigBench<'_> {
    /// First start, median of three second starts, and a start after restarting containerd,
    /// for `module` packed in `layout`. The cache is emptied first, so the first start is a
    /// cold one whatever ran before.
    pub fn measure(&mut self, module: &[u8], layout: Layout) -> Result<BigModule> {
        let name = layout_name(layout);
        if self.cache.exists() {
            std::fs::remove_dir_all(self.cache)
                .map_err(|e| anyhow!("emptying the cache {}: {e}", self.cache.display()))?;
        }
        let reference = ImageRef::parse(&format!("wasm-big-{name}:bench"))?;
        let mut spec = ImageSpec::new(reference.clone(), "big.wasm", module.to_vec());
        spec.layout = layout;
        spec.platform = Platform::parse("linux/amd64")?;
        let tar = self.work.join(format!("wasm-big-{name}.tar"));
        spec.build()?.write_to(&tar)?;
        let image = reference.to_string();

        self.import(&tar, layout)?;
        let cold = self.start(&image, layout, &format!("big-{name}-cold"))?;
        let warm = median(
            (0..3)
                .map(|i| self.start(&image, layout, &format!("big-{name}-warm{i}")))
                .collect::<Result<Vec<_>>>()?,
        );
        // The cache is on disk: a new containerd (and so new shims) still starts warm. The new
        // one has its own root, state and socket, so it may start before the old one stops.
        let fresh =
            PrivateContainerd::start_with(self.config.clone()).map_err(|e| anyhow!("{e}"))?;
        std::mem::replace(self.containerd, fresh).stop();
        self.import(&tar, layout)?;
        let restarted = self.start(&image, layout, &format!("big-{name}-restarted"))?;
        Ok(BigModule {
            size_mb: module.len() as f64 / (1 << 20) as f64,
            layout: name.to_string(),
            cold_ms: cold.as_secs_f64() * 1000.0,
            warm_ms: warm.as_secs_f64() * 1000.0,
            after_restart_ms: restarted.as_secs_f64() * 1000.0,
            ratio: warm.as_secs_f64() / cold.as_secs_f64(),
        })
    }

    fn import(&self, tar: &Path, layout: Layout) -> Result<()> {
        let flags: &[&str] = match layout {
            Layout::App => &[],
            // See the module docs: 1.6.20 refuses to unpack the module layer.
            Layout::Artifact => &["--no-unpack"],
        };
        self.containerd
            .import(tar, flags)
            .map_err(|e| anyhow!("importing {}: {e}", tar.display()))?;
        Ok(())
    }

    fn start(&self, image: &str, layout: Layout, id: &str) -> Result<Duration> {
        match layout {
            Layout::App => timed(self.containerd, Some(self.runtime), image, id, TIMEOUT),
            Layout::Artifact => {
                let client =
                    ApiClient::connect(self.containerd.address(), self.containerd.namespace())
                        .map_err(|e| anyhow!("{e}"))?;
                let (out, err) = (
                    self.work.join(format!("{id}.out")),
                    self.work.join(format!("{id}.err")),
                );
                let container = ApiContainer {
                    id,
                    image,
                    runtime: self.runtime,
                    spec_json: process_spec(&["/big.wasm"], &format!("/wasmbay-bench/{id}"))
                        .map_err(|e| anyhow!("{e}"))?,
                };
                let started = Instant::now();
                let status = client
                    .run_with_empty_rootfs(container, &out, &err, TIMEOUT)
                    .map_err(|e| anyhow!("{image}: {e}"))?;
                let elapsed = started.elapsed();
                let stdout = std::fs::read(&out).unwrap_or_default();
                if status != 0 || stdout.is_empty() {
                    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
                    bail!("{image}: exit status {status}, stdout empty or missing: {stderr}");
                }
                Ok(elapsed)
            }
        }
    }
}

fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::App => "app",
        Layout::Artifact => "artifact",
    }
}
