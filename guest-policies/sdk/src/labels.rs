//! Label keys and environment names Nomad puts on task containers.

/// Allocation ID; Nomad sets it on every task and pause container.
pub const ALLOC_ID: &str = "com.hashicorp.nomad.alloc_id";
/// Node ID (an `extra_labels` label, since Nomad 1.1).
pub const NODE_ID: &str = "com.hashicorp.nomad.node_id";
/// Node name (an `extra_labels` label).
pub const NODE_NAME: &str = "com.hashicorp.nomad.node_name";
/// Job name (an `extra_labels` label).
pub const JOB_NAME: &str = "com.hashicorp.nomad.job_name";
/// Job ID (an `extra_labels` label).
pub const JOB_ID: &str = "com.hashicorp.nomad.job_id";
/// Task group name (an `extra_labels` label).
pub const TASK_GROUP_NAME: &str = "com.hashicorp.nomad.task_group_name";
/// Task name (an `extra_labels` label).
pub const TASK_NAME: &str = "com.hashicorp.nomad.task_name";
/// Namespace (an `extra_labels` label).
pub const NAMESPACE: &str = "com.hashicorp.nomad.namespace";

/// Environment variable holding the allocation ID inside a task.
pub const ENV_ALLOC_ID: &str = "NOMAD_ALLOC_ID";
/// Environment variable holding the datacenter inside a task.
pub const ENV_DATACENTER: &str = "NOMAD_DC";

/// Mount destinations every Nomad task container has.
pub const ALLOC_MOUNTS: [&str; 3] = ["/alloc", "/local", "/secrets"];
