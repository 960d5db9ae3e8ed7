//! dockhand: a Nomad task driver that runs tasks as Docker containers and cleans up the
//! containers Nomad no longer tracks through sandboxed WebAssembly policies.
//!
//! The wire protocol is [`nomad_plugin`]'s and the policy sandbox is [`orphan_policy`]'s; this
//! crate is what is specific to Docker: [`config`], [`docker`], [`fingerprint`], [`tasks`],
//! [`reconcile`], [`admin`], [`cli`], wired together by [`plugin`].
//!
//! Design decisions:
//! * **Validated once, at the edge.** Everything Nomad sends (agent config, task configs,
//!   handles) is decoded into raw types and validated by [`config`] into domain types before
//!   any other module sees it; a bad field is an `InvalidArgument` naming it. The offline
//!   `dockhand config validate` runs the same code.
//! * **One narrow Docker trait.** Every Docker call goes through [`docker::DockerApi`], each
//!   under its own timeout, with typed errors, so a caller on a destructive path can tell
//!   "failed" from "done" and tests can inject faults.
//! * **Nothing starts in `SetConfig`.** Nomad runs throw-away validation instances; the
//!   Docker client, task engine, reconciler and admin API are built lazily and the background
//!   work starts once, from the first `Fingerprint` or `Init` ([`plugin`]).
//! * **When in doubt, don't kill.** The reconciler never judges a tracked container, checks
//!   every ownership claim itself, and any failure on the way to a destructive action (policy,
//!   Docker, audit file, budget, audit mode put in force) leaves the container alone and says
//!   so.
//! * **Every action on record.** A destructive action's intent is fsynced to the audit file
//!   before the Docker call and its outcome after it.
//! * **Followable logs.** Each task RPC, sweep, policy call and action runs in a tracing span
//!   (`task_id`, `alloc_id`, `sweep_id`, `container_id`), whose fields the hclog layer puts on
//!   every line; errors are rendered with their whole cause chain by
//!   [`nomad_plugin::error_chain`].

pub mod admin;
pub mod atomic_file;
pub mod cli;
pub mod config;
pub mod docker;
pub mod fingerprint;
pub mod plugin;
pub mod reconcile;
mod table;
pub mod tasks;
