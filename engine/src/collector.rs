//! Scrape-time metrics read from the pipeline's windows: roots per journey and, per SLO, its
//! weighted events and bad events, and what of them is not stored yet. Computed on each scrape,
//! never on the hot path.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::pipeline::Pipeline;

#[derive(Debug)]
pub struct PipelineCollector {
    pub pipeline: Arc<Mutex<Pipeline>>,
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let p = self.pipeline.lock().expect("pipeline lock poisoned");
        let journeys = &p.journeys().0;

        let mut family = encoder.encode_descriptor(
            "root_spans",
            "Weighted root spans matched to each journey (latency and error SLIs count these)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (j, c) in journeys.iter().zip(p.root_counts()) {
            let labels = [("journey", j.name.as_str())];
            ConstCounter::new(c.total).encode(family.encode_family(&labels)?)?;
        }

        let totals: Vec<_> = p.slo_totals().collect();
        let unflushed: Vec<_> = p.unflushed().collect();
        let families = [
            (
                "slo_events",
                "Weighted events counted by each SLO (since start or the restored history)",
                MetricType::Counter,
            ),
            (
                "slo_bad_events",
                "Weighted bad events counted by each SLO (since start or the restored history)",
                MetricType::Counter,
            ),
            (
                "storage_unflushed_events",
                "Weighted events of each SLO counted but not yet stored",
                MetricType::Gauge,
            ),
            (
                "storage_unflushed_bad_events",
                "Weighted bad events of each SLO counted but not yet stored",
                MetricType::Gauge,
            ),
        ];
        for (k, (name, help, kind)) in families.into_iter().enumerate() {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for ((slo, journey, total), pending) in totals.iter().zip(&unflushed) {
                let labels = [("slo", *slo), ("journey", journeys[*journey].name.as_str())];
                let v = [total.total, total.bad, pending.total, pending.bad][k];
                let family = family.encode_family(&labels)?;
                if matches!(kind, MetricType::Counter) {
                    ConstCounter::new(v).encode(family)?;
                } else {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(family)?;
                }
            }
        }
        Ok(())
    }
}
