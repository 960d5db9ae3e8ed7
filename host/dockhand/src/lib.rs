//! dockhand: a Nomad task driver that runs tasks as Docker containers.

pub mod admin;
pub mod atomic_file;
pub mod cli;
pub mod config;
pub mod docker;
pub mod fingerprint;
pub mod plugin;
pub mod reconcile;
pub mod tasks;
