//! [`Intake`]: what the front-ends of one process share — their destination and the limits
//! every request is held to before it gets there.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use super::budget::BodyBudget;
use super::destination::{Destination, Protocol};
use super::refusal::Refusal;
use crate::config::{AuthTokens, IngestConfig};

/// See the module docs.
#[derive(Debug)]
pub struct Intake<D> {
    /// Where accepted requests go.
    pub destination: D,
    /// Largest body accepted, before and after decompression.
    pub max_body: usize,
    /// `[ingest] auth_token`: the bearer tokens a request must carry one of; `None`: no token.
    pub auth: Option<AuthTokens>,
    /// `[ingest] max_body_bytes_in_flight`, shared by every front-end.
    pub budget: Arc<BodyBudget>,
}

impl<D: Destination> Intake<D> {
    /// The front-ends of `[ingest]` in front of `destination`; `in_flight` counts the budget.
    pub fn new(config: &IngestConfig, destination: D, in_flight: Gauge) -> Intake<D> {
        Intake {
            destination,
            max_body: usize::try_from(config.max_body_size.0).unwrap_or(usize::MAX),
            auth: config.auth_token.clone(),
            budget: BodyBudget::new(config.max_body_bytes_in_flight.0, in_flight),
        }
    }

    /// Whether a request with this `Authorization` value may send spans.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        self.auth.as_ref().is_none_or(|tokens| tokens.admit(authorization))
    }

    /// Counts a refusal under its `outcome` and hands it back to be answered.
    pub fn refused(&self, protocol: Protocol, refusal: Refusal) -> Refusal {
        self.destination.count(protocol, refusal.reason.outcome());
        refusal
    }
}
