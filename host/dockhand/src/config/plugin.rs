//! The validated agent-side configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use super::daemon::DaemonSharing;
use super::defaults as d;
use super::duration::{format_go_duration, parse_go_duration};
use super::label_filter::parse_label_filter;
use super::raw::{RawPluginConfig, RawPolicySource};
use super::{ConfigError, ConfigErrors};

/// Minimum `gc.dangling_containers.creation_grace` (Nomad's rule).
pub const CREATION_GRACE_MINIMUM: Duration = Duration::from_secs(60);
/// Minimum `pull_activity_timeout` (Nomad's rule).
pub const PULL_ACTIVITY_TIMEOUT_MINIMUM: Duration = Duration::from_secs(60);
/// Largest `dockhand.policy_memory_mib`: the pooling allocator's per-instance ceiling.
pub const POLICY_MEMORY_MIB_MAXIMUM: u32 = 128;
/// Largest `dockhand.policy_deadline` an operator may configure.
pub const POLICY_DEADLINE_MAXIMUM: Duration = Duration::from_secs(2);

/// The agent-level registry credential sources (`auth { config, helper }`), consulted for a
/// pull when the task gives no credentials of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSources {
    /// A Docker config file (`auths`, `credHelpers`, `credsStore`).
    pub config: Option<PathBuf>,
    /// Helper suffix: runs `docker-credential-<helper>`.
    pub helper: Option<String>,
}

/// Client TLS material for `endpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Client certificate.
    pub cert: Option<String>,
    /// Client key.
    pub key: Option<String>,
    /// CA bundle.
    pub ca: Option<String>,
}

/// `gc.dangling_containers`: the orphan reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingConfig {
    /// Reconciler on/off.
    pub enabled: bool,
    /// Log only.
    pub dry_run: bool,
    /// Scan interval (> 0).
    pub period: Duration,
    /// Containers younger than this are never candidates (≥ 1m).
    pub creation_grace: Duration,
}

/// `gc { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcConfig {
    /// Reference-counted image removal.
    pub image: bool,
    /// Delay between the last reference going away and removal.
    pub image_delay: Duration,
    /// Remove the container in `DestroyTask`.
    pub container: bool,
    /// The orphan reconciler.
    pub dangling_containers: DanglingConfig,
}

/// `volumes { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumesConfig {
    /// Allow host paths outside the alloc dir, volume drivers and volume mounts.
    pub enabled: bool,
    /// SELinux label appended to binds.
    pub selinux_label: Option<String>,
}

/// Default Docker log driver (`logging { … }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// Driver name.
    pub r#type: String,
    /// Driver options.
    pub config: BTreeMap<String, String>,
}

/// `allowed_modes`: globs a task's namespace modes must match unless privileged is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedModes {
    /// `pid_mode` patterns.
    pub pid: Vec<String>,
    /// `ipc_mode` patterns.
    pub ipc: Vec<String>,
    /// `userns_mode` patterns.
    pub userns: Vec<String>,
    /// `uts_mode` patterns.
    pub uts: Vec<String>,
}

/// Whether policy decisions are carried out: `dockhand.mode`, the policy store's mode and the
/// mode of each policy in force are one type.
pub use orphan_policy::store::PolicyMode;

/// A policy component on disk, optionally pinned by digest; read, checked and loaded by
/// [`load_policy_file`](crate::reconcile::load_policy_file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// Absolute path of the component.
    pub path: PathBuf,
    /// Expected lowercase hex sha256 of the file; a mismatch refuses the policy.
    pub sha256: Option<String>,
}

/// The admin socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Serve the admin API.
    pub enabled: bool,
    /// Absolute path of the unix socket.
    pub socket: PathBuf,
    /// Peer uids allowed to use it.
    pub allowed_uids: Vec<u32>,
}

/// dockhand's own settings: the `dockhand { … }` block of the plugin config.
///
/// ```hcl
/// dockhand {
///   mode                  = "enforce"            # or "audit": log decisions only
///   data_dir              = "/var/lib/dockhand"
///   ownership_policy { path = "/etc/dockhand/owner.wasm"  sha256 = "…" }
///   kill_policy      { path = "/etc/dockhand/kill.wasm" }
///   policy_memory_mib     = 32                   # 1–128
///   policy_deadline       = "100ms"              # > 0, ≤ 2s
///   max_actions_per_sweep = 10                   # 0 = never act
///   docker_call_timeout   = "30s"
///   label_filter          = "com.example.fleet=batch"  # optional: `key` or `key=value`
///   daemon                = "shared-with-builtin-driver"  # or "exclusive", "shared-by-clients"
///   admin { enabled = true  socket = "/run/dockhand/admin.sock"  allowed_uids = [0] }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockhandConfig {
    /// Audit or enforce: the mode of the configured (or bundled) policies the plugin starts
    /// with, until an activation from the store replaces one.
    pub mode: PolicyMode,
    /// State directory (policy store, persisted refcounts).
    pub data_dir: PathBuf,
    /// Ownership policy; `None` uses the bundled default.
    pub ownership_policy: Option<PolicyFile>,
    /// Kill policy; `None` uses the bundled default.
    pub kill_policy: Option<PolicyFile>,
    /// Memory limit per policy evaluation, MiB.
    pub policy_memory_mib: u32,
    /// Wall-clock deadline per policy evaluation.
    pub policy_deadline: Duration,
    /// Most destructive actions executed in one sweep.
    pub max_actions_per_sweep: u32,
    /// Timeout for each Docker API call made by the reconciler.
    pub docker_call_timeout: Duration,
    /// Only containers carrying this label (`key` or `key=value`) are considered by the
    /// reconciler; `None` considers every running container. For daemons shared with other
    /// tools or other operators.
    pub label_filter: Option<String>,
    /// Who else uses the Docker daemon; bounds what an ownership policy may claim.
    pub daemon: DaemonSharing,
    /// The admin socket.
    pub admin: AdminConfig,
}

/// The validated plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// Docker endpoint; `None` means the environment (`DOCKER_HOST`, …).
    pub endpoint: Option<String>,
    /// Registry credentials.
    pub auth: AuthSources,
    /// TLS to the endpoint.
    pub tls: TlsConfig,
    /// Garbage collection.
    pub gc: GcConfig,
    /// Host volumes.
    pub volumes: VolumesConfig,
    /// Allow `privileged = true` (and bypass `allowed_modes`).
    pub allow_privileged: bool,
    /// Capabilities tasks may add (`"all"` allowed).
    pub allow_caps: Vec<String>,
    /// Name of the NVIDIA runtime.
    pub nvidia_runtime: String,
    /// Runtimes tasks may request.
    pub allow_runtimes: Vec<String>,
    /// Pause container image (`https://` stripped).
    pub infra_image: String,
    /// Pull timeout for the pause image.
    pub infra_image_pull_timeout: Duration,
    /// Default pull timeout for task images.
    pub image_pull_timeout: Duration,
    /// Abort a pull with no progress for this long (≥ 1m).
    pub pull_activity_timeout: Duration,
    /// Name-conflict purge-and-retry attempts.
    pub container_exists_attempts: u32,
    /// Parsed and unused, as in Nomad.
    pub oom_score_adj: i64,
    /// Default PID limit; `None` means unlimited.
    pub pids_limit: Option<i64>,
    /// Do not collect task logs.
    pub disable_log_collection: bool,
    /// Windows only.
    pub windows_allow_insecure_container_admin: bool,
    /// Glob patterns of extra `com.hashicorp.nomad.*` labels.
    pub extra_labels: Vec<String>,
    /// Default log driver.
    pub logging: LoggingConfig,
    /// Namespace-mode allow-lists.
    pub allowed_modes: AllowedModes,
    /// dockhand's own settings.
    pub dockhand: DockhandConfig,
}

impl Default for PluginConfig {
    fn default() -> PluginConfig {
        // The built-in defaults are constants; `defaults_are_valid` in the tests proves that
        // they pass validation, so this cannot fail at run time.
        PluginConfig::try_from(RawPluginConfig::default()).expect("built-in defaults are valid")
    }
}

/// Accumulates validation errors.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<ConfigError>);

impl Problems {
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(ConfigError::invalid(field, message));
    }

    /// Parse a Go duration, falling back to `default` (also used when the value is invalid,
    /// after recording the problem, so later checks still run).
    pub(crate) fn duration(&mut self, field: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match parse_go_duration(text) {
            Ok(d) => d,
            Err(e) => {
                let name = field.rsplit('.').next().unwrap_or(field);
                self.add(field, format!("failed to parse '{name}' duration: {e}"));
                parse_go_duration(default).unwrap_or_default()
            }
        }
    }

    pub(crate) fn at_least(&mut self, field: &str, value: Duration, min: Duration) {
        if value < min {
            let name = field.rsplit('.').next().unwrap_or(field);
            self.add(
                field,
                format!("{name} is less than minimum, {}", format_go_duration(min)),
            );
        }
    }

    pub(crate) fn u32_in(&mut self, field: &str, value: i64, min: u32, max: u32) -> u32 {
        match u32::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => v,
            _ => {
                self.add(
                    field,
                    format!("must be between {min} and {max}, found {value}"),
                );
                min
            }
        }
    }
}

fn absolute(p: &mut Problems, field: &str, value: String) -> PathBuf {
    let path = PathBuf::from(&value);
    if !path.is_absolute() {
        p.add(field, format!("must be an absolute path, found {value:?}"));
    }
    path
}

fn policy_source(
    p: &mut Problems,
    field: &str,
    raw: Option<RawPolicySource>,
) -> Option<PolicyFile> {
    let raw = raw?;
    let Some(path) = raw.path else {
        p.add(&format!("{field}.path"), "is required");
        return None;
    };
    let path = absolute(p, &format!("{field}.path"), path);
    let sha256 = raw.sha256.map(|s| s.to_ascii_lowercase());
    if let Some(s) = &sha256
        && !(s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        p.add(
            &format!("{field}.sha256"),
            format!("must be 64 hex digits, found {s:?}"),
        );
    }
    Some(PolicyFile { path, sha256 })
}

fn strip_https(image: String) -> String {
    image
        .strip_prefix("https://")
        .map(str::to_owned)
        .unwrap_or(image)
}

impl TryFrom<RawPluginConfig> for PluginConfig {
    type Error = ConfigErrors;

    fn try_from(raw: RawPluginConfig) -> Result<PluginConfig, ConfigErrors> {
        let (config, problems) = PluginConfig::build(raw);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

impl PluginConfig {
    /// Convert leniently: every problem is returned, alongside a configuration in which each
    /// invalid value was replaced by its default (so that dependent checks can still run).
    pub fn build(raw: RawPluginConfig) -> (PluginConfig, Vec<ConfigError>) {
        let mut p = Problems::default();
        let gc = raw.gc.unwrap_or_default();
        let dc = gc.dangling_containers.unwrap_or_default();
        let period = p.duration(
            "gc.dangling_containers.period",
            dc.period.as_deref(),
            d::DANGLING_PERIOD,
        );
        if period.is_zero() {
            p.add(
                "gc.dangling_containers.period",
                "period must be greater than zero",
            );
        }
        let creation_grace = p.duration(
            "gc.dangling_containers.creation_grace",
            dc.creation_grace.as_deref(),
            d::DANGLING_CREATION_GRACE,
        );
        p.at_least(
            "gc.dangling_containers.creation_grace",
            creation_grace,
            CREATION_GRACE_MINIMUM,
        );
        let gc = GcConfig {
            image: gc.image.unwrap_or(d::GC_IMAGE),
            image_delay: p.duration(
                "gc.image_delay",
                gc.image_delay.as_deref(),
                d::GC_IMAGE_DELAY,
            ),
            container: gc.container.unwrap_or(d::GC_CONTAINER),
            dangling_containers: DanglingConfig {
                enabled: dc.enabled.unwrap_or(d::DANGLING_ENABLED),
                dry_run: dc.dry_run.unwrap_or(d::DANGLING_DRY_RUN),
                period,
                creation_grace,
            },
        };
        let pull_activity_timeout = p.duration(
            "pull_activity_timeout",
            raw.pull_activity_timeout.as_deref(),
            d::PULL_ACTIVITY_TIMEOUT,
        );
        p.at_least(
            "pull_activity_timeout",
            pull_activity_timeout,
            PULL_ACTIVITY_TIMEOUT_MINIMUM,
        );
        let infra_image_pull_timeout = p.duration(
            "infra_image_pull_timeout",
            raw.infra_image_pull_timeout.as_deref(),
            d::INFRA_IMAGE_PULL_TIMEOUT,
        );
        let image_pull_timeout = p.duration(
            "image_pull_timeout",
            raw.image_pull_timeout.as_deref(),
            d::IMAGE_PULL_TIMEOUT,
        );
        let container_exists_attempts = p.u32_in(
            "container_exists_attempts",
            raw.container_exists_attempts
                .unwrap_or(d::CONTAINER_EXISTS_ATTEMPTS),
            0,
            u32::MAX,
        );
        let pids_limit = match raw.pids_limit {
            Some(n) if n < 0 => {
                p.add("pids_limit", format!("must not be negative, found {n}"));
                None
            }
            Some(0) | None => None,
            Some(n) => Some(n),
        };
        let logging = raw.logging.map_or_else(
            || LoggingConfig {
                r#type: d::LOGGING_TYPE.to_owned(),
                config: d::LOGGING_CONFIG
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            |l| LoggingConfig {
                r#type: l.r#type.unwrap_or_default(),
                config: l.config.unwrap_or_default(),
            },
        );
        let modes = raw.allowed_modes.unwrap_or_default();
        let allowed_modes = AllowedModes {
            pid: modes.pid.unwrap_or_default(),
            ipc: modes.ipc.unwrap_or_default(),
            userns: modes.userns.unwrap_or_default(),
            uts: modes.uts.unwrap_or_default(),
        };
        for (name, list) in [
            ("pid", &allowed_modes.pid),
            ("ipc", &allowed_modes.ipc),
            ("userns", &allowed_modes.userns),
            ("uts", &allowed_modes.uts),
        ] {
            if list.iter().any(|m| m.trim().is_empty()) {
                p.add(
                    &format!("allowed_modes.{name}"),
                    "patterns must not be empty",
                );
            }
        }
        let dockhand = dockhand_config(&mut p, raw.dockhand.unwrap_or_default());
        let auth = raw.auth.unwrap_or_default();
        let tls = raw.tls.unwrap_or_default();
        let endpoint = raw.endpoint.filter(|e| !e.is_empty());
        let tls = TlsConfig {
            cert: tls.cert.filter(|s| !s.is_empty()),
            key: tls.key.filter(|s| !s.is_empty()),
            ca: tls.ca.filter(|s| !s.is_empty()),
        };
        if endpoint.is_some() {
            check_tls_complete(&mut p, &tls);
        }
        let volumes = raw.volumes.unwrap_or_default();
        let config = PluginConfig {
            endpoint,
            auth: AuthSources {
                config: auth.config.filter(|s| !s.is_empty()).map(PathBuf::from),
                helper: auth.helper.filter(|s| !s.is_empty()),
            },
            tls,
            gc,
            volumes: VolumesConfig {
                enabled: volumes.enabled.unwrap_or(d::VOLUMES_ENABLED),
                selinux_label: volumes.selinuxlabel.filter(|s| !s.is_empty()),
            },
            allow_privileged: raw.allow_privileged.unwrap_or(d::ALLOW_PRIVILEGED),
            allow_caps: raw
                .allow_caps
                .unwrap_or_else(|| d::ALLOW_CAPS.iter().map(|s| (*s).to_owned()).collect()),
            nvidia_runtime: raw
                .nvidia_runtime
                .unwrap_or_else(|| d::NVIDIA_RUNTIME.to_owned()),
            allow_runtimes: raw
                .allow_runtimes
                .unwrap_or_else(|| d::ALLOW_RUNTIMES.iter().map(|s| (*s).to_owned()).collect()),
            infra_image: strip_https(raw.infra_image.unwrap_or_else(d::infra_image)),
            infra_image_pull_timeout,
            image_pull_timeout,
            pull_activity_timeout,
            container_exists_attempts,
            oom_score_adj: raw.oom_score_adj.unwrap_or(d::PLUGIN_OOM_SCORE_ADJ),
            pids_limit,
            disable_log_collection: raw
                .disable_log_collection
                .unwrap_or(d::DISABLE_LOG_COLLECTION),
            windows_allow_insecure_container_admin: raw
                .windows_allow_insecure_container_admin
                .unwrap_or(d::WINDOWS_ALLOW_INSECURE_CONTAINER_ADMIN),
            extra_labels: raw.extra_labels.unwrap_or_default(),
            logging,
            allowed_modes,
            dockhand,
        };
        (config, p.0)
    }
}

/// With an `endpoint`, any `tls` file means a TLS connection (as in Nomad); the client needs
/// all three files.
fn check_tls_complete(p: &mut Problems, tls: &TlsConfig) {
    let files = [("cert", &tls.cert), ("key", &tls.key), ("ca", &tls.ca)];
    if files.iter().all(|(_, f)| f.is_none()) {
        return;
    }
    for (name, file) in files {
        if file.is_none() {
            p.add(
                &format!("tls.{name}"),
                "must be set when any tls file is (a TLS connection needs cert, key and ca)",
            );
        }
    }
}

impl PluginConfig {
    /// Reads the `tls` files the Docker connection will use (with an `endpoint`): each must
    /// be readable PEM. Called by `SetConfig`, so that a bad file fails it naming the key as
    /// Nomad's client construction does; offline validation on another machine skips it.
    pub fn check_tls_files(&self) -> Result<(), ConfigErrors> {
        let mut p = Problems::default();
        if self.endpoint.is_some() {
            for (name, file) in [
                ("cert", &self.tls.cert),
                ("key", &self.tls.key),
                ("ca", &self.tls.ca),
            ] {
                let Some(path) = file else { continue };
                let field = format!("tls.{name}");
                match std::fs::read(path) {
                    Err(e) => p.add(&field, format!("cannot read {path:?}: {e}")),
                    Ok(bytes) if !bytes.windows(11).any(|w| w == b"-----BEGIN ") => {
                        p.add(&field, format!("{path:?} is not a PEM file"));
                    }
                    Ok(_) => {}
                }
            }
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(p.0))
        }
    }
}

fn dockhand_config(p: &mut Problems, raw: super::raw::RawDockhand) -> DockhandConfig {
    let mode = match raw.mode.as_deref().unwrap_or(d::DOCKHAND_MODE) {
        "audit" => PolicyMode::Audit,
        "enforce" => PolicyMode::Enforce,
        other => {
            p.add(
                "dockhand.mode",
                format!("must be \"audit\" or \"enforce\", found {other:?}"),
            );
            PolicyMode::Audit
        }
    };
    let data_dir = absolute(
        p,
        "dockhand.data_dir",
        raw.data_dir
            .unwrap_or_else(|| d::DOCKHAND_DATA_DIR.to_owned()),
    );
    let policy_memory_mib = p.u32_in(
        "dockhand.policy_memory_mib",
        raw.policy_memory_mib
            .unwrap_or(d::DOCKHAND_POLICY_MEMORY_MIB),
        1,
        POLICY_MEMORY_MIB_MAXIMUM,
    );
    let policy_deadline = p.duration(
        "dockhand.policy_deadline",
        raw.policy_deadline.as_deref(),
        d::DOCKHAND_POLICY_DEADLINE,
    );
    if policy_deadline.is_zero() || policy_deadline > POLICY_DEADLINE_MAXIMUM {
        p.add(
            "dockhand.policy_deadline",
            format!(
                "must be greater than zero and at most {}, found {}",
                format_go_duration(POLICY_DEADLINE_MAXIMUM),
                format_go_duration(policy_deadline)
            ),
        );
    }
    let max_actions_per_sweep = p.u32_in(
        "dockhand.max_actions_per_sweep",
        raw.max_actions_per_sweep
            .unwrap_or(d::DOCKHAND_MAX_ACTIONS_PER_SWEEP),
        0,
        u32::MAX,
    );
    let docker_call_timeout = p.duration(
        "dockhand.docker_call_timeout",
        raw.docker_call_timeout.as_deref(),
        d::DOCKHAND_DOCKER_CALL_TIMEOUT,
    );
    if docker_call_timeout.is_zero() {
        p.add("dockhand.docker_call_timeout", "must be greater than zero");
    }
    let label_filter = raw
        .label_filter
        .and_then(|value| match parse_label_filter(&value) {
            Ok(filter) => Some(filter),
            Err(message) => {
                p.add("dockhand.label_filter", message);
                None
            }
        });
    let daemon_text = raw.daemon.as_deref().unwrap_or(d::DOCKHAND_DAEMON);
    let daemon = DaemonSharing::parse(daemon_text).unwrap_or_else(|| {
        p.add(
            "dockhand.daemon",
            format!(
                "must be \"exclusive\", \"shared-with-builtin-driver\" or \"shared-by-clients\", \
                 found {daemon_text:?}"
            ),
        );
        // The strictest reading, so later checks never assume more than was said.
        DaemonSharing::SharedByClients
    });
    let admin = raw.admin.unwrap_or_default();
    let allowed_uids = admin
        .allowed_uids
        .unwrap_or_else(|| d::DOCKHAND_ADMIN_ALLOWED_UIDS.to_vec())
        .into_iter()
        .filter_map(|uid| match u32::try_from(uid) {
            Ok(u) => Some(u),
            Err(_) => {
                p.add(
                    "dockhand.admin.allowed_uids",
                    format!("{uid} is not a valid uid"),
                );
                None
            }
        })
        .collect();
    DockhandConfig {
        mode,
        data_dir,
        ownership_policy: policy_source(p, "dockhand.ownership_policy", raw.ownership_policy),
        kill_policy: policy_source(p, "dockhand.kill_policy", raw.kill_policy),
        policy_memory_mib,
        policy_deadline,
        max_actions_per_sweep,
        docker_call_timeout,
        label_filter,
        daemon,
        admin: AdminConfig {
            enabled: admin.enabled.unwrap_or(d::DOCKHAND_ADMIN_ENABLED),
            socket: absolute(
                p,
                "dockhand.admin.socket",
                admin
                    .socket
                    .unwrap_or_else(|| d::DOCKHAND_ADMIN_SOCKET.to_owned()),
            ),
            allowed_uids,
        },
    }
}
