//! Other instances sharing the database: what each counted, one set of windows **per instance**
//! (a sum would re-deflate histograms), laid out like this instance's, read-only.

use slis::window::{JourneyWindows, Merged};

/// Per journey, the windows of each other instance; empty on a single instance.
#[derive(Debug, Default)]
pub(super) struct Others(Vec<Vec<JourneyWindows>>);

impl Others {
    /// Installs `by_instance` (per instance, per journey) if every set is laid out like `own`;
    /// `false` and nothing changed otherwise. An empty vector: no others.
    pub fn set(&mut self, by_instance: Vec<Vec<JourneyWindows>>, own: &[JourneyWindows]) -> bool {
        let fits = by_instance
            .iter()
            .all(|windows| windows.len() == own.len() && windows.iter().zip(own).all(|(o, w)| o.same_layout(w)));
        if !fits {
            return false;
        }
        self.0.clear();
        if !by_instance.is_empty() {
            let mut per_journey: Vec<Vec<JourneyWindows>> =
                (0..own.len()).map(|_| Vec::with_capacity(by_instance.len())).collect();
            for windows in by_instance {
                for (j, w) in windows.into_iter().enumerate() {
                    per_journey[j].push(w);
                }
            }
            self.0 = per_journey;
        }
        true
    }

    /// Forgets them (their layout no longer matches).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Whether any are merged in.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Journey `journey`'s own windows `own` with the others'.
    pub fn merged<'a>(&'a self, own: &'a JourneyWindows, journey: usize) -> Merged<'a> {
        Merged::new(own, self.0.get(journey).map_or(&[], Vec::as_slice))
    }
}
