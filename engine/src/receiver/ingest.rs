//! [`Ingest`]: `serve`'s destination. Decodes a request outside the pipeline lock, then runs it
//! through the shared [`Pipeline`] at the wall clock; a full assembler refuses the whole batch.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use slis::{Span, Timestamp};

use super::destination::{Accepted, Destination, Payload, Protocol};
use super::refusal::{RETRY_AFTER, Reason, Refusal};
use crate::decode::{AttrKeys, Decoded};
use crate::health::Tag;
use crate::metrics::EngineMetrics;
use crate::pipeline::{Backpressure, Ingested, Pipeline, Source};

/// The pipeline destination.
#[derive(Debug)]
pub struct Ingest {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub metrics: Arc<EngineMetrics>,
    /// The attribute keys the decoders keep.
    pub keys: AttrKeys,
    /// `[ingest] max_buffered_spans`, for the backpressure message.
    pub max_buffered_spans: usize,
}

impl Destination for Ingest {
    async fn accept(&self, payload: Payload) -> Result<Accepted, Refusal> {
        let decoded = payload.decode(&self.keys)?;
        match self.ingest(source(payload.protocol()), decoded) {
            Ok(result) => Ok(Accepted {
                rejected: result.rejected,
                first_rejection: result.first_rejection,
            }),
            Err(Backpressure) => Err(Refusal::new(Reason::Backpressure, self.backpressure_message())),
        }
    }

    fn count(&self, protocol: Protocol, outcome: &'static str) {
        self.metrics.request(protocol.name(), outcome);
    }
}

impl Ingest {
    /// Counts decode-level rejections, then runs the batch through the pipeline at the wall clock.
    pub fn ingest(&self, source: Source, decoded: Decoded) -> Result<Ingested, Backpressure> {
        self.metrics.decoded(source.as_str(), &decoded);
        let mut result = self.ingest_spans(source, decoded.spans, &decoded.tags)?;
        result.rejected += decoded.rejected;
        if result.first_rejection.is_none() {
            result.first_rejection = decoded.first_rejection;
        }
        Ok(result)
    }

    fn ingest_spans(&self, source: Source, spans: Vec<Span>, tags: &[Tag]) -> Result<Ingested, Backpressure> {
        let now = wall_clock();
        let mut p = self.pipeline.lock().expect("pipeline lock poisoned");
        let result = p.ingest(source, spans, now)?;
        p.ingest_tags(tags, now);
        Ok(result)
    }

    /// What a client refused with [`Reason::Backpressure`] reads.
    pub fn backpressure_message(&self) -> String {
        format!(
            "trace assembler is full (max_buffered_spans = {}): retry after {}s",
            self.max_buffered_spans,
            RETRY_AFTER.as_secs()
        )
    }
}

/// The pipeline's name for a front-end.
fn source(protocol: Protocol) -> Source {
    match protocol {
        Protocol::OtlpGrpc => Source::OtlpGrpc,
        Protocol::OtlpHttp(_) => Source::OtlpHttp,
        Protocol::Zipkin => Source::Zipkin,
    }
}

/// The system clock as a `Timestamp`; receivers are the edge where wall time enters.
pub fn wall_clock() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_unix_nanos(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}
