//! The fingerprint loop and the lowering of fingerprints to the wire form.

use std::sync::Arc;
use std::time::Duration;

use nomad_plugin::proto::drivers::FingerprintResponse;
use nomad_plugin::proto::drivers::fingerprint_response::HealthState;
use nomad_plugin::proto::structs::{Attribute, attribute};
use tokio::sync::watch;

use super::FingerprintSource;
use crate::fingerprint::{AttrValue, FingerprintOutcome, Health};

/// Fingerprints at once, then every `period`, publishing each result. Ends only when no
/// receiver is left (never, while the driver lives).
pub(super) async fn fingerprint_loop(
    source: Arc<dyn FingerprintSource>,
    period: Duration,
    tx: watch::Sender<Option<FingerprintResponse>>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = source.fingerprint().await;
        if tx.send(Some(fingerprint_to_proto(outcome))).is_err() {
            return;
        }
    }
}

/// Lowers a fingerprint to the wire form.
pub fn fingerprint_to_proto(outcome: FingerprintOutcome) -> FingerprintResponse {
    let health = match outcome.health {
        Health::Undetected => HealthState::Undetected,
        Health::Unhealthy => HealthState::Unhealthy,
        Health::Healthy => HealthState::Healthy,
    };
    FingerprintResponse {
        attributes: outcome
            .attributes
            .into_iter()
            .map(|(k, v)| (k, attribute_to_proto(v)))
            .collect(),
        health: health.into(),
        health_description: outcome.description,
        err: String::new(),
    }
}

fn attribute_to_proto(value: AttrValue) -> Attribute {
    let value = match value {
        AttrValue::Bool(b) => attribute::Value::BoolVal(b),
        AttrValue::Int(i) => attribute::Value::IntVal(i),
        AttrValue::Float(f) => attribute::Value::FloatVal(f),
        AttrValue::String(s) => attribute::Value::StringVal(s),
    };
    Attribute {
        value: Some(value),
        unit: String::new(),
    }
}
