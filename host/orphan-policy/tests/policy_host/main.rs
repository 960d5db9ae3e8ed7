//! Tests of the policy host against real components built from
//! `guest-policies/` (no Docker involved). One binary, one module per area.

mod budgets;
mod cache;
mod defaults;
mod hostile;
mod inputs;
mod python;
mod python_build;
mod support;
