//! dockhand's integration tests: one binary, one module per area.

mod admin;
mod admin_crash;
mod claims;
mod config;
mod deadlines;
mod docker_engine;
mod handshake;
mod harness;
mod lifecycle;
mod log_forwarding;
mod network;
mod plugin_crash_sweep;
mod plugin_reconciler;
mod policy_cli;
mod policy_new;
mod reconcile;
mod reconcile_cli;
mod recover;
mod registry;
mod restart;
mod support;
mod task_options;
mod task_spans;
mod tasks;
mod wedged;
mod wire;
