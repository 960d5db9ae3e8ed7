//! Resource usage samples from `docker stats`, in Nomad's terms.
//!
//! Memory fields depend on the cgroup version: v1 reports `rss`/`cache`/`swap`/`mapped_file`,
//! v2 reports `anon`/`file`. Each sample lists what was actually measured, as Nomad expects.
//! CPU percent uses the previous sample Docker includes in a non-streamed stats call.

use std::time::SystemTime;

use crate::docker::models::ContainerStatsResponse;

/// Memory usage of one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryUsage {
    /// Resident set size (v1 `rss`, v2 `anon`), bytes.
    pub rss: u64,
    /// Page cache (v1 `cache`, v2 `file`), bytes.
    pub cache: u64,
    /// Swap, bytes (v1 only).
    pub swap: u64,
    /// Mapped files, bytes (v1 only).
    pub mapped_file: u64,
    /// Total usage, bytes.
    pub usage: u64,
    /// Peak usage, bytes (v1 only).
    pub max_usage: u64,
    /// Names of the fields above that were measured (`RSS`, `Cache`, …).
    pub measured: Vec<&'static str>,
}

/// CPU usage of one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUsage {
    /// Percent of one core × number of cores (100 = one core busy).
    pub percent: f64,
    /// Percent of time in kernel mode since the previous sample.
    pub system_mode: f64,
    /// Percent of time in user mode since the previous sample.
    pub user_mode: f64,
    /// CPU used in MHz-ticks (percent scaled by the node's compute per core).
    pub total_ticks: f64,
    /// Throttled periods (CFS).
    pub throttled_periods: u64,
    /// Throttled time, nanoseconds.
    pub throttled_time: u64,
    /// Names of the fields above that were measured.
    pub measured: Vec<&'static str>,
}

/// One resource usage sample of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUsage {
    /// When the sample was taken.
    pub timestamp: SystemTime,
    /// Memory.
    pub memory: MemoryUsage,
    /// CPU.
    pub cpu: CpuUsage,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Converts a Docker stats sample. `mhz_per_core` is the node's compute per core (0 = unknown,
/// then ticks are not reported).
pub fn usage_from_docker(stats: &ContainerStatsResponse, mhz_per_core: f64) -> TaskUsage {
    let mut memory = MemoryUsage::default();
    if let Some(m) = &stats.memory_stats {
        let s = m.stats.clone().unwrap_or_default();
        if let Some(rss) = s.get("rss") {
            // cgroup v1
            memory.rss = *rss;
            memory.cache = s.get("cache").copied().unwrap_or(0);
            memory.swap = s.get("swap").copied().unwrap_or(0);
            memory.mapped_file = s.get("mapped_file").copied().unwrap_or(0);
            memory.max_usage = m.max_usage.unwrap_or(0);
            memory.measured = vec!["RSS", "Cache", "Swap", "Usage", "Max Usage", "Mapped File"];
        } else {
            // cgroup v2
            memory.rss = s.get("anon").copied().unwrap_or(0);
            memory.cache = s.get("file").copied().unwrap_or(0);
            memory.measured = vec!["RSS", "Cache", "Usage"];
        }
        memory.usage = m.usage.unwrap_or(0);
    }

    let mut cpu = CpuUsage::default();
    if let (Some(now), Some(prev)) = (&stats.cpu_stats, &stats.precpu_stats) {
        let cur = now.cpu_usage.clone().unwrap_or_default();
        let old = prev.cpu_usage.clone().unwrap_or_default();
        let cpu_delta = cur
            .total_usage
            .unwrap_or(0)
            .saturating_sub(old.total_usage.unwrap_or(0));
        let sys_delta = now
            .system_cpu_usage
            .unwrap_or(0)
            .saturating_sub(prev.system_cpu_usage.unwrap_or(0));
        let cores = f64::from(now.online_cpus.filter(|c| *c > 0).unwrap_or(1));
        cpu.percent = ratio(cpu_delta, sys_delta) * cores * 100.0;
        let kernel = cur
            .usage_in_kernelmode
            .unwrap_or(0)
            .saturating_sub(old.usage_in_kernelmode.unwrap_or(0));
        let user = cur
            .usage_in_usermode
            .unwrap_or(0)
            .saturating_sub(old.usage_in_usermode.unwrap_or(0));
        cpu.system_mode = ratio(kernel, sys_delta) * cores * 100.0;
        cpu.user_mode = ratio(user, sys_delta) * cores * 100.0;
        if let Some(t) = &now.throttling_data {
            cpu.throttled_periods = t.throttled_periods.unwrap_or(0);
            cpu.throttled_time = t.throttled_time.unwrap_or(0);
        }
        cpu.measured = vec![
            "Throttled Periods",
            "Throttled Time",
            "Percent",
            "System Mode",
            "User Mode",
        ];
        if mhz_per_core > 0.0 {
            cpu.total_ticks = cpu.percent / 100.0 * mhz_per_core;
            cpu.measured.push("Total Ticks");
        }
    }
    TaskUsage {
        timestamp: SystemTime::now(),
        memory,
        cpu,
    }
}
