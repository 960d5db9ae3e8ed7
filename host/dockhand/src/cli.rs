//! The `dockhand` operator CLI's subcommands, as library code so tests can drive them.

pub mod admin;
pub mod config_validate;
pub mod fingerprint;
pub mod policy;
pub mod reconcile;
pub mod record;
