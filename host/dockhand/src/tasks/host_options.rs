//! Parts of the create body that follow one task option each, as Nomad's docker driver
//! builds them: `mount` blocks with their sub-options, the CFS quota of `cpu_hard_limit`,
//! `cgroupns`, the per-network endpoint settings (`network_aliases`, `ipv4_address`,
//! `ipv6_address`, `mac_address`) and the group network's hosts file. Pure functions (the
//! hosts file is rendered here and written by the engine).

use std::collections::HashMap;

use crate::docker::models::{
    EndpointIpamConfig, EndpointSettings, HostConfigCgroupnsModeEnum, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig, NetworkingConfig,
};

use super::TaskError;
use super::spec::{HostsSpec, TaskSpec};
use crate::config::{Mount as TaskMount, MountKind};

/// Where the group network's hosts file is mounted.
pub const HOSTS_TARGET: &str = "/etc/hosts";
/// Its file name, in the allocation directory (where Nomad writes it).
pub const HOSTS_FILE: &str = "hosts";

fn invalid(message: String) -> TaskError {
    TaskError::InvalidSpec(message)
}

/// One `mount` block as a Docker mount, every sub-option included.
pub fn docker_mount(m: &TaskMount) -> Result<Mount, TaskError> {
    let mut out = Mount {
        target: Some(m.target.clone()),
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        read_only: Some(m.readonly),
        ..Mount::default()
    };
    match &m.kind {
        MountKind::Bind { propagation } => {
            out.typ = Some(MountType::BIND);
            if let Some(p) = propagation {
                let propagation = p
                    .parse::<MountBindOptionsPropagationEnum>()
                    .ok()
                    .filter(|p| *p != MountBindOptionsPropagationEnum::EMPTY)
                    .ok_or_else(|| {
                        invalid(format!(
                            "mount {:?}: invalid bind_options.propagation {p:?} (expected \
                             private, rprivate, shared, rshared, slave or rslave)",
                            m.target
                        ))
                    })?;
                out.bind_options = Some(MountBindOptions {
                    propagation: Some(propagation),
                    ..MountBindOptions::default()
                });
            }
        }
        MountKind::Volume {
            no_copy,
            labels,
            driver,
            driver_options,
        } => {
            out.typ = Some(MountType::VOLUME);
            let has_driver = driver.is_some() || !driver_options.is_empty();
            if *no_copy || !labels.is_empty() || has_driver {
                out.volume_options = Some(MountVolumeOptions {
                    no_copy: Some(*no_copy),
                    labels: (!labels.is_empty()).then(|| labels.clone().into_iter().collect()),
                    driver_config: has_driver.then(|| MountVolumeOptionsDriverConfig {
                        name: driver.clone(),
                        options: (!driver_options.is_empty())
                            .then(|| driver_options.clone().into_iter().collect()),
                    }),
                    ..MountVolumeOptions::default()
                });
            }
        }
        MountKind::Tmpfs { size_bytes, mode } => {
            out.typ = Some(MountType::TMPFS);
            // 0 is unlimited: no size option at all.
            let size_bytes = (*size_bytes > 0).then_some(*size_bytes);
            if size_bytes.is_some() || mode.is_some() {
                out.tmpfs_options = Some(MountTmpfsOptions {
                    size_bytes,
                    mode: mode.map(i64::from),
                    ..MountTmpfsOptions::default()
                });
            }
        }
    }
    Ok(out)
}

/// The logical CPUs this process may run on (Go's `runtime.NumCPU`, which Nomad multiplies
/// the quota by): the affinity list of `/proc/self/status`, else the available parallelism.
pub fn host_cpu_count() -> i64 {
    let from_status = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let list = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                .trim()
                .to_owned();
            count_cpu_list(&list)
        });
    from_status
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .and_then(|n| i64::try_from(n.get()).ok())
        })
        .unwrap_or(1)
}

/// Counts a kernel CPU list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<i64> {
    let mut n = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<i64>().ok()? - a.parse::<i64>().ok()? + 1,
            None => {
                part.parse::<i64>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

/// `(CpuPeriod, CpuQuota)` for `cpu_hard_limit`, as Nomad computes them: the period is
/// `cpu_cfs_period` (0: Nomad's own period), the quota `PercentTicks × period` (truncated)
/// times the host's CPUs. `None` without `cpu_hard_limit`.
pub fn cpu_limits(spec: &TaskSpec, cpus: i64) -> Result<Option<(i64, i64)>, TaskError> {
    let c = &spec.config;
    if !c.cpu_hard_limit {
        return Ok(None);
    }
    let cfs_period = i64::from(c.cpu_cfs_period);
    if !(0..=1_000_000).contains(&cfs_period) {
        return Err(invalid(format!(
            "cpu_cfs_period: invalid value for cpu_cfs_period: {cfs_period} (must be 0 to 1000000)"
        )));
    }
    let period = if cfs_period == 0 {
        spec.resources.cpu_period
    } else {
        cfs_period
    };
    // Go truncates the float product towards zero before multiplying by the CPUs.
    let per_cpu = (spec.resources.percent_ticks * period as f64) as i64;
    Ok(Some((period, per_cpu.saturating_mul(cpus))))
}

/// `cgroupns` as Docker's enum; anything but `host` or `private` is refused by name.
pub fn cgroupns_mode(spec: &TaskSpec) -> Result<Option<HostConfigCgroupnsModeEnum>, TaskError> {
    match spec.config.cgroupns.as_deref() {
        None => Ok(None),
        Some("host") => Ok(Some(HostConfigCgroupnsModeEnum::HOST)),
        Some("private") => Ok(Some(HostConfigCgroupnsModeEnum::PRIVATE)),
        Some(other) => Err(invalid(format!(
            "cgroupns: invalid value {other:?} (expected \"host\" or \"private\")"
        ))),
    }
}

/// The endpoint settings on the task's network (`network_mode`, Docker's `default` when
/// unset): aliases, IPAM addresses and the MAC address, when any is set.
pub fn networking_config(spec: &TaskSpec) -> Option<NetworkingConfig> {
    let c = &spec.config;
    if c.network_aliases.is_empty()
        && c.ipv4_address.is_none()
        && c.ipv6_address.is_none()
        && c.mac_address.is_none()
    {
        return None;
    }
    let network = spec.network_mode().unwrap_or_else(|| "default".to_owned());
    let ipam = (c.ipv4_address.is_some() || c.ipv6_address.is_some()).then(|| EndpointIpamConfig {
        ipv4_address: c.ipv4_address.map(|a| a.to_string()),
        ipv6_address: c.ipv6_address.map(|a| a.to_string()),
        ..EndpointIpamConfig::default()
    });
    let endpoint = EndpointSettings {
        aliases: (!c.network_aliases.is_empty()).then(|| c.network_aliases.clone()),
        ipam_config: ipam,
        mac_address: c.mac_address.clone(),
        ..EndpointSettings::default()
    };
    Some(NetworkingConfig {
        endpoints_config: Some(HashMap::from([(network, endpoint)])),
    })
}

/// The hosts file Nomad writes for a task in a group network: the standard entries, the
/// allocation's address and hostname, then `extra_hosts` (`host:ip`, checked).
pub fn render_hosts(hosts: &HostsSpec, extra_hosts: &[String]) -> Result<String, TaskError> {
    let mut text = format!(
        "# this file was generated by Nomad\n\
         127.0.0.1 localhost\n\
         ::1 localhost\n\
         ::1 ip6-localhost ip6-loopback\n\
         fe00::0 ip6-localnet\n\
         ff00::0 ip6-mcastprefix\n\
         ff02::1 ip6-allnodes\n\
         ff02::2 ip6-allrouters\n\
         ff02::3 ip6-allhosts\n\
         \n\
         # this entry is the IP address and hostname of the allocation\n\
         # shared with tasks in the task group's network\n\
         {} {}\n",
        hosts.address, hosts.hostname
    );
    if !extra_hosts.is_empty() {
        text.push_str("\n# these entries are extra hosts added by the task config");
        for entry in extra_hosts {
            let (name, ip) = entry
                .split_once(':')
                .ok_or_else(|| invalid(format!("extra_hosts: invalid hosts entry {entry:?}")))?;
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(format!(
                    "extra_hosts: invalid IP address {entry:?}"
                )));
            }
            text.push_str(&format!("\n{ip} {name}"));
        }
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
        assert!(host_cpu_count() >= 1);
    }

    #[test]
    fn cpu_quota_is_percent_ticks_times_period_times_cpus() {
        let mut s = TaskSpec::default();
        s.resources.percent_ticks = 0.25;
        s.config.cpu_cfs_period = 100_000;
        assert_eq!(cpu_limits(&s, 4).unwrap(), None);
        s.config.cpu_hard_limit = true;
        assert_eq!(cpu_limits(&s, 4).unwrap(), Some((100_000, 100_000)));
        // 0: Nomad's own period.
        s.config.cpu_cfs_period = 0;
        s.resources.cpu_period = 50_000;
        assert_eq!(cpu_limits(&s, 2).unwrap(), Some((50_000, 25_000)));
    }

    #[test]
    fn mount_sub_options_reach_docker() {
        let mount = |kind| TaskMount {
            kind,
            target: "/t".into(),
            source: String::new(),
            readonly: false,
        };
        let m = docker_mount(&mount(MountKind::Tmpfs {
            size_bytes: 1 << 20,
            mode: Some(0o700),
        }))
        .unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!((t.size_bytes, t.mode), (Some(1 << 20), Some(0o700)));
        let m = docker_mount(&mount(MountKind::Tmpfs {
            size_bytes: 0,
            mode: None,
        }))
        .unwrap();
        assert_eq!(m.tmpfs_options, None, "0 is unlimited: no options");
        let err = docker_mount(&mount(MountKind::Bind {
            propagation: Some("sideways".into()),
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("bind_options.propagation"),
            "{err}"
        );
    }

    #[test]
    fn hosts_file_lists_the_allocation_then_extra_hosts() {
        let hosts = HostsSpec {
            hostname: "web".into(),
            address: "10.0.0.2".into(),
        };
        let text = render_hosts(&hosts, &["db:10.0.0.9".into(), "v6:::1".into()]).unwrap();
        assert!(text.contains("\n10.0.0.2 web\n"), "{text}");
        assert!(text.ends_with("\n10.0.0.9 db\n::1 v6\n"), "{text}");
        let err = render_hosts(&hosts, &["db:not-an-ip".into()]).unwrap_err();
        assert!(err.to_string().contains("extra_hosts"), "{err}");
    }
}
