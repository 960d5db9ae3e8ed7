//! Task checks that depend on the agent's plugin configuration.
//!
//! These mirror the builtin driver's create-time checks (privileged gate, runtime allow-list,
//! `allow_caps`, `allowed_modes`, volumes gate, `pids_limit` ceiling) but report **every**
//! problem instead of the first, so `dockhand config validate` and the `StartTask` error can
//! list them all.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::ConfigError;
use super::plugin::{LoggingConfig, PluginConfig, Problems};
use super::task::{MountKind, TaskConfig};

/// Every Linux capability name (lowercase, no `CAP_` prefix) up to `CAP_CHECKPOINT_RESTORE`;
/// what `"all"` expands to.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Where a task runs, when known. Without an alloc dir, absolute host paths are treated as
/// outside it (true for anything written literally in a jobspec).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskContext {
    /// The allocation directory.
    pub alloc_dir: Option<PathBuf>,
    /// The task directory (relative `volumes` sources resolve here).
    pub task_dir: Option<PathBuf>,
}

/// Normalise a capability name the way Nomad does: trim, lowercase, drop `cap_`.
pub fn normalize_capability(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    lower
        .strip_prefix("cap_")
        .map(str::to_owned)
        .unwrap_or(lower)
}

fn capability_set(names: &[String]) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for n in names {
        match normalize_capability(n).as_str() {
            "" => {}
            "all" => set.extend(ALL_CAPABILITIES.iter().map(|s| (*s).to_owned())),
            other => {
                set.insert(other.to_owned());
            }
        }
    }
    set
}

/// Capabilities in `cap_add` that `allow_caps` does not allow (sorted, normalised).
pub fn disallowed_capabilities(allow_caps: &[String], cap_add: &[String]) -> Vec<String> {
    let allowed = capability_set(allow_caps);
    capability_set(cap_add)
        .into_iter()
        .filter(|c| !allowed.contains(c))
        .collect()
}

/// Docker's default capability set, the basis [`capability_delta`] computes against.
pub fn docker_default_capabilities() -> BTreeSet<String> {
    let mut set: BTreeSet<String> = super::defaults::ALLOW_CAPS
        .iter()
        .map(|c| normalize_capability(c))
        .collect();
    set.insert("net_raw".to_owned());
    set
}

/// The `--cap-add` / `--cap-drop` lists for a task, as Nomad's `capabilities.Delta`: add what
/// the task adds (`["all"]` if it adds all); drop what the task drops plus every Docker
/// default that `allow_caps` does not allow (`["all"]` if the task drops all). `Err` carries
/// the capabilities the task may not add.
pub fn capability_delta(
    allow_caps: &[String],
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    let missing = disallowed_capabilities(allow_caps, cap_add);
    if !missing.is_empty() {
        return Err(missing);
    }
    let is_all = |caps: &[String]| caps.iter().any(|c| normalize_capability(c) == "all");
    let add = if is_all(cap_add) {
        vec!["all".to_owned()]
    } else {
        capability_set(cap_add).into_iter().collect()
    };
    let drop = if is_all(cap_drop) {
        vec!["all".to_owned()]
    } else {
        let allowed = capability_set(allow_caps);
        let mut drop: BTreeSet<String> = docker_default_capabilities()
            .into_iter()
            .filter(|c| !allowed.contains(c))
            .collect();
        drop.extend(capability_set(cap_drop));
        drop.into_iter().collect()
    };
    Ok((add, drop))
}

/// Glob match with `*` (any run of characters; every other character, `?` included, matches
/// itself), as Nomad's `allowed_modes` and `extra_labels` patterns.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn inside_alloc_dir(ctx: &TaskContext, source: &str) -> bool {
    let path = Path::new(source);
    let resolved = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match &ctx.task_dir {
            Some(dir) => dir.join(path),
            // Relative sources resolve under the task dir, which is inside the alloc dir.
            None => return true,
        }
    };
    match &ctx.alloc_dir {
        Some(alloc) => lexical_normalize(&resolved).starts_with(lexical_normalize(alloc)),
        None => false,
    }
}

impl TaskConfig {
    /// The pull timeout: the task's own, else `plugin_wide` (the plugin's
    /// `image_pull_timeout`).
    pub fn effective_image_pull_timeout(
        &self,
        plugin_wide: std::time::Duration,
    ) -> std::time::Duration {
        self.image_pull_timeout.unwrap_or(plugin_wide)
    }

    /// The log driver: the task's, else (when the task sets neither type nor config)
    /// `plugin_default` (the plugin's `logging`).
    pub fn effective_logging(&self, plugin_default: &LoggingConfig) -> LoggingConfig {
        if self.logging.driver.is_none() && self.logging.config.is_empty() {
            return plugin_default.clone();
        }
        LoggingConfig {
            r#type: self.logging.driver.clone().unwrap_or_default(),
            config: self.logging.config.clone(),
        }
    }

    /// Check this task against the agent's plugin configuration, reporting all problems.
    pub fn validate_against(&self, plugin: &PluginConfig) -> Result<(), Vec<ConfigError>> {
        self.validate_in(plugin, &TaskContext::default())
    }

    /// [`TaskConfig::validate_against`] with knowledge of the task's directories.
    pub fn validate_in(
        &self,
        plugin: &PluginConfig,
        ctx: &TaskContext,
    ) -> Result<(), Vec<ConfigError>> {
        let mut p = Problems::default();
        if self.privileged && !plugin.allow_privileged {
            p.add(
                "privileged",
                "Docker privileged mode is disabled on this Nomad agent",
            );
        }
        if let Some(runtime) = &self.runtime
            && !plugin.allow_runtimes.iter().any(|r| r == runtime)
        {
            p.add(
                "runtime",
                format!(
                    "requested runtime {runtime:?} is not allowed (allow_runtimes = {:?})",
                    plugin.allow_runtimes
                ),
            );
        }
        let missing = disallowed_capabilities(&plugin.allow_caps, &self.cap_add);
        if !missing.is_empty() {
            p.add(
                "cap_add",
                format!(
                    "driver does not allow the following capabilities: {}",
                    missing.join(", ")
                ),
            );
        }
        if !plugin.allow_privileged {
            for (field, value, patterns) in [
                ("ipc_mode", &self.ipc_mode, &plugin.allowed_modes.ipc),
                ("pid_mode", &self.pid_mode, &plugin.allowed_modes.pid),
                ("uts_mode", &self.uts_mode, &plugin.allowed_modes.uts),
                (
                    "userns_mode",
                    &self.userns_mode,
                    &plugin.allowed_modes.userns,
                ),
            ] {
                if let Some(v) = value
                    && !patterns.iter().any(|pat| glob_match(pat, v))
                {
                    p.add(
                        field,
                        format!("cannot apply {field:?} configuration: {v:?} does not match allowed_modes"),
                    );
                }
            }
        }
        if !plugin.volumes.enabled {
            if let Some(driver) = &self.volume_driver {
                p.add(
                    "volume_driver",
                    format!("volumes are not enabled; cannot use volume driver {driver:?}"),
                );
            }
            for (i, v) in self.volumes.iter().enumerate() {
                let src = v.split(':').next().unwrap_or_default();
                // A named volume (no '/') needs a volume driver, checked above.
                if src.contains('/') && !src.contains("${") && !inside_alloc_dir(ctx, src) {
                    p.add(
                        &format!("volumes[{i}]"),
                        format!("volumes are not enabled; cannot mount host path: {src:?}"),
                    );
                }
            }
            for (i, m) in self.mounts.iter().enumerate() {
                match &m.kind {
                    MountKind::Volume { .. } => p.add(
                        &format!("mount[{i}]"),
                        format!(
                            "volumes are not enabled; cannot mount volume: {:?}",
                            m.source
                        ),
                    ),
                    MountKind::Bind { .. }
                        if !m.source.contains("${") && !inside_alloc_dir(ctx, &m.source) =>
                    {
                        p.add(
                            &format!("mount[{i}]"),
                            format!(
                                "volumes are not enabled; cannot mount host path: {:?}",
                                m.source
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
        if let (Some(task), Some(limit)) = (self.pids_limit, plugin.pids_limit)
            && task > limit
        {
            p.add(
                "pids_limit",
                format!(
                    "pids_limit cannot be greater than nomad plugin config pids_limit: {limit}"
                ),
            );
        }
        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn capabilities_follow_nomad_set_semantics() {
        let allow = strings(&["CHOWN", "cap_kill"]);
        assert!(disallowed_capabilities(&allow, &strings(&["chown", "CAP_KILL"])).is_empty());
        assert_eq!(
            disallowed_capabilities(&allow, &strings(&["NET_ADMIN", "sys_time"])),
            strings(&["net_admin", "sys_time"])
        );
        assert!(disallowed_capabilities(&strings(&["all"]), &strings(&["sys_admin"])).is_empty());
        assert_eq!(
            disallowed_capabilities(&allow, &strings(&["all"])).len(),
            39
        );
    }

    #[test]
    fn capability_delta_matches_nomad() {
        let nomad_defaults: Vec<String> = crate::config::defaults::ALLOW_CAPS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            capability_delta(&nomad_defaults, &[], &[]),
            Ok((vec![], strings(&["net_raw"])))
        );
        assert_eq!(
            capability_delta(&nomad_defaults, &strings(&["chown"]), &strings(&["all"])),
            Ok((strings(&["chown"]), strings(&["all"])))
        );
        assert_eq!(
            capability_delta(&strings(&["all"]), &strings(&["ALL"]), &strings(&["KILL"])),
            Ok((strings(&["all"]), strings(&["kill"])))
        );
        assert_eq!(
            capability_delta(&nomad_defaults, &strings(&["net_admin"]), &[]),
            Err(strings(&["net_admin"]))
        );
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("host", "host"));
        assert!(!glob_match("host", "hostx"));
        assert!(glob_match("container:*", "container:abc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbbd"));
        assert!(!glob_match("", "a"));
        assert!(!glob_match("?b", "ab"), "`?` is no wildcard");
        assert!(glob_match("?b", "?b"));
    }

    #[test]
    fn alloc_dir_containment() {
        let ctx = TaskContext {
            alloc_dir: Some("/var/nomad/alloc/1".into()),
            task_dir: Some("/var/nomad/alloc/1/web".into()),
        };
        assert!(inside_alloc_dir(&ctx, "local/data"));
        assert!(inside_alloc_dir(&ctx, "/var/nomad/alloc/1/alloc/data"));
        assert!(!inside_alloc_dir(&ctx, "../../../etc"));
        assert!(!inside_alloc_dir(&ctx, "/etc"));
        assert!(inside_alloc_dir(&TaskContext::default(), "local/data"));
        assert!(!inside_alloc_dir(&TaskContext::default(), "/etc"));
    }
}
