//! The cgroup of a container this shim made, through libcgroups, and containerd's cgroup v1
//! metrics message from its statistics.

use containerd_shim::protos::protobuf::MessageField;
use wasmbay_runtime_bridge::libcontainer::container::Container;

/// The cgroup manager of a container created by this shim.
pub(crate) fn cgroup_of(
    container: &Container,
) -> anyhow::Result<libcgroups::common::AnyCgroupManager> {
    let config = container.spec()?;
    Ok(libcgroups::common::create_cgroup_manager(
        libcgroups::common::CgroupConfig {
            cgroup_path: config.cgroup_path.clone(),
            systemd_cgroup: container.systemd(),
            container_name: container.id().to_string(),
        },
    )?)
}

/// containerd's cgroup v1 metrics message from libcgroups' statistics (cgroup v1 hosts only:
/// on v2 [`crate::cgroup_v2::metrics`] answers).
pub(crate) fn metrics_of(
    stats: &libcgroups::stats::Stats,
) -> containerd_shim::protos::cgroups::metrics::Metrics {
    use containerd_shim::protos::cgroups::metrics::{
        CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat,
    };
    let entry = |d: &libcgroups::stats::MemoryData| MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    };
    Metrics {
        pids: MessageField::some(PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: stats.cpu.usage.usage_total,
                kernel: stats.cpu.usage.usage_kernel,
                user: stats.cpu.usage.usage_user,
                per_cpu: stats.cpu.usage.per_core_usage_total.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            cache: stats.memory.cache,
            usage: MessageField::some(entry(&stats.memory.memory)),
            swap: MessageField::some(entry(&stats.memory.memswap)),
            kernel: MessageField::some(entry(&stats.memory.kernel)),
            kernel_tcp: MessageField::some(entry(&stats.memory.kernel_tcp)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
