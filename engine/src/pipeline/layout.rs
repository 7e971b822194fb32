//! Where every SLO counts: the config's journeys and SLOs laid out as window slots and storage
//! keys, and how a reloaded config's layout maps onto the one in force.

use std::collections::HashMap;
use std::time::Duration;

use slis::journey::Journeys;
use slis::sli::Rank;
use slis::slo::Slo;
use slis::window::Sli;

/// How long SLI buckets are kept beyond the longest SLO period.
pub const RETENTION_MARGIN: Duration = Duration::from_secs(86_400);

/// The storage key of the window slot that counts every root of a journey (bad = error), after
/// the slots of its SLOs.
pub const ROOTS_SERIES: &str = "roots";

/// The storage key of an SLO's window slot: its name and what it counts, so that changing an
/// SLO's threshold or kind starts a new series instead of reusing counts judged differently.
pub fn series_key(slo: &Slo) -> String {
    format!("{} ({})", slo.name, slo.sli)
}

/// What [`Pipeline::reconfigure`](super::Pipeline::reconfigure) changed; series are written
/// `journey/key`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub journeys_added: Vec<String>,
    pub journeys_removed: Vec<String>,
    /// Kept journeys whose slot layout changed: their stored blocks are rewritten at the next flush.
    pub reslotted_journeys: Vec<String>,
    pub new_series: Vec<String>,
    pub dropped_series: Vec<String>,
}

/// Where every SLO counts, derived from the config's journeys and SLOs.
#[derive(Debug)]
pub(super) struct Layout {
    /// Per journey, what each window slot counts: its SLOs', then all roots (bad = error).
    pub per_journey: Vec<Vec<Sli>>,
    /// Per journey, the storage key of each slot.
    pub series: Vec<Vec<String>>,
    /// Per SLO, (journey, slot).
    pub slots: Vec<(usize, usize)>,
    /// Per SLO, its name.
    pub slo_names: Vec<String>,
    /// Per SLO, what it counts: the rules it is judged by.
    pub slis: Vec<Sli>,
    /// Per journey, its SLOs' indices.
    pub journey_slos: Vec<Vec<usize>>,
    /// How long the windows keep buckets: the longest SLO period and a margin.
    pub retention: Duration,
}

/// Where a journey of a reloaded config takes its windows from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum JourneyFrom {
    /// A journey new to the config: empty windows.
    New,
    /// The old journey of this index, laid out alike: its windows as they are.
    Kept(usize),
    /// The old journey of this index, another layout: slot `k` holds old slot `from[k]`.
    Reslotted(usize, Vec<Option<usize>>),
}

/// How a reloaded config's layout maps onto the one in force.
#[derive(Debug)]
pub(super) struct Remap {
    /// Per new journey, where its windows come from.
    pub journeys: Vec<JourneyFrom>,
    /// Per old journey, its index in the new config (`None`: removed).
    pub journey_map: Vec<Option<usize>>,
    /// Per new SLO, the old SLO of the same journey name and storage key.
    pub slo_from: Vec<Option<usize>>,
    pub report: Reconfigured,
}

impl Layout {
    /// The layout of `slos` over `journeys` journeys.
    pub fn of(journeys: usize, slos: &[Slo]) -> Layout {
        let retention = slos.iter().map(|s| s.period.max_span()).max().unwrap_or(Duration::ZERO) + RETENTION_MARGIN;
        let mut per_journey: Vec<Vec<Sli>> = vec![Vec::new(); journeys];
        let mut series: Vec<Vec<String>> = vec![Vec::new(); journeys];
        let mut journey_slos = vec![Vec::new(); journeys];
        let slots = slos
            .iter()
            .enumerate()
            .map(|(i, s)| {
                per_journey[s.journey].push(s.sli.window_sli());
                series[s.journey].push(series_key(s));
                journey_slos[s.journey].push(i);
                (s.journey, per_journey[s.journey].len() - 1)
            })
            .collect();
        // The last slot of every journey counts all its roots (bad = error).
        for (slis, keys) in per_journey.iter_mut().zip(&mut series) {
            slis.push(Sli::Error);
            keys.push(ROOTS_SERIES.to_owned());
        }
        Layout {
            per_journey,
            series,
            slots,
            slo_names: slos.iter().map(|s| s.name.clone()).collect(),
            slis: slos.iter().map(|s| s.sli.window_sli()).collect(),
            journey_slos,
            retention,
        }
    }

    /// Per SLO, how it ranks its exemplars.
    pub fn ranks(&self) -> Vec<Rank> {
        self.slis.iter().map(Sli::rank).collect()
    }

    /// How `new` (laid out for `new_journeys`) takes over from this layout (for `journeys`): a
    /// journey is known by its name and an SLO's history by its storage key ([`series_key`]).
    pub fn remap(&self, journeys: &Journeys, new: &Layout, new_journeys: &Journeys) -> Remap {
        let mut report = Reconfigured::default();
        let old_journey: HashMap<&str, usize> = journeys
            .0
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();
        // Per old SLO, (journey name, storage key) → its index.
        let old_slo: HashMap<(&str, &str), usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, &(j, slot))| ((journeys.0[j].name.as_str(), self.series[j][slot].as_str()), i))
            .collect();
        let mut journey_map = vec![None; journeys.0.len()];
        let mut from_old = Vec::with_capacity(new_journeys.0.len());
        for (j, journey) in new_journeys.0.iter().enumerate() {
            let Some(&o) = old_journey.get(journey.name.as_str()) else {
                report.journeys_added.push(journey.name.clone());
                from_old.push(JourneyFrom::New);
                continue;
            };
            journey_map[o] = Some(j);
            let from: Vec<Option<usize>> = new.series[j]
                .iter()
                .map(|key| self.series[o].iter().position(|k| k == key))
                .collect();
            for (key, f) in new.series[j].iter().zip(&from) {
                if f.is_none() {
                    report.new_series.push(format!("{}/{key}", journey.name));
                }
            }
            for key in &self.series[o] {
                if !new.series[j].contains(key) {
                    report.dropped_series.push(format!("{}/{key}", journey.name));
                }
            }
            let same = from.len() == self.series[o].len() && from.iter().enumerate().all(|(k, f)| *f == Some(k));
            if same && new.retention == self.retention {
                from_old.push(JourneyFrom::Kept(o));
            } else {
                report.reslotted_journeys.push(journey.name.clone());
                from_old.push(JourneyFrom::Reslotted(o, from));
            }
        }
        for (o, j) in journeys.0.iter().enumerate() {
            if journey_map[o].is_none() {
                report.journeys_removed.push(j.name.clone());
                for key in &self.series[o] {
                    report.dropped_series.push(format!("{}/{key}", j.name));
                }
            }
        }
        let slo_from = new
            .slots
            .iter()
            .map(|&(j, slot)| {
                old_slo
                    .get(&(new_journeys.0[j].name.as_str(), new.series[j][slot].as_str()))
                    .copied()
            })
            .collect();
        Remap {
            journeys: from_old,
            journey_map,
            slo_from,
            report,
        }
    }
}
