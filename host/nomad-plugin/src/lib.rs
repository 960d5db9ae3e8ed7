//! A reusable framework for writing HashiCorp Nomad task-driver plugins in Rust.

pub mod cty;
pub mod hclspec;
