//! Shorthands for the `log` import. The host bounds lines per call and per
//! second and never logs a guest line above `info`, so log sparingly.

use crate::log::{Level, log};

/// Logs at `trace`.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs at `debug`.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at `info`.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at `warn` (recorded by the host as the guest's level, emitted at `info`).
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at `error` (recorded by the host as the guest's level, emitted at `info`).
pub fn error(message: &str) {
    log(Level::Error, message);
}
