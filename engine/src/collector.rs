//! Scrape-time metrics read from the pipeline's windows: roots per journey and, per SLO, its
//! weighted events and bad events since start. Computed on each scrape, never on the hot path.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use crate::pipeline::Pipeline;
use crate::receiver::wall_clock;

#[derive(Debug)]
pub struct PipelineCollector {
    pub pipeline: Arc<Mutex<Pipeline>>,
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let p = self.pipeline.lock().expect("pipeline lock poisoned");
        let now = wall_clock();
        let journeys = &p.journeys().0;

        let mut family = encoder.encode_descriptor(
            "root_spans",
            "Weighted root spans matched to each journey (latency and error SLIs count these)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (j, n) in journeys.iter().zip(p.root_counts()) {
            let labels = [("journey", j.name.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }

        let totals: Vec<_> = p.slo_totals(now).collect();
        let mut family = encoder.encode_descriptor(
            "slo_events",
            "Weighted events counted by each SLO since start",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (slo, journey, c) in &totals {
            let labels = [("slo", *slo), ("journey", journeys[*journey].name.as_str())];
            ConstCounter::new(c.total).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "slo_bad_events",
            "Weighted bad events counted by each SLO since start",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (slo, journey, c) in &totals {
            let labels = [("slo", *slo), ("journey", journeys[*journey].name.as_str())];
            ConstCounter::new(c.bad).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
