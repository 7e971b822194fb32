//! The virtual clock of a replay: time is the newest span end seen so far, and the periodic work
//! of a live server (assembler ticks, evaluations) happens at the instants it would have, in
//! order, as the data moves the clock past them.

use std::time::Duration;

use slis::Timestamp;

/// Periodic work that fell due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Close idle traces (`Pipeline::tick`) at this instant.
    Tick(Timestamp),
    /// Evaluate every SLO at this instant (after the tick of the same instant, if any).
    Eval(Timestamp),
}

/// See the module docs. The first instant seen starts both schedules: ticks every `tick`,
/// evaluations every `eval`, from there.
#[derive(Clone, Debug)]
pub struct Clock {
    tick: Duration,
    eval: Duration,
    now: Option<Timestamp>,
    next_tick: Timestamp,
    next_eval: Timestamp,
}

impl Clock {
    pub fn new(tick: Duration, eval: Duration) -> Clock {
        Clock {
            tick: tick.max(Duration::from_millis(1)),
            eval: eval.max(Duration::from_millis(1)),
            now: None,
            next_tick: Timestamp::EPOCH,
            next_eval: Timestamp::EPOCH,
        }
    }

    /// The virtual now: the newest instant seen (`None` before any).
    pub fn now(&self) -> Option<Timestamp> {
        self.now
    }

    /// Moves the clock to `to` (never backwards) and calls `step` for every tick and evaluation
    /// due strictly before `to`, oldest first (a tick before an evaluation of the same instant):
    /// what arrives at `to` is ingested after them. Returns the clock's now.
    pub fn advance(&mut self, to: Timestamp, mut step: impl FnMut(Step)) -> Timestamp {
        let Some(now) = self.now else {
            self.now = Some(to);
            self.next_tick = to + self.tick;
            self.next_eval = to + self.eval;
            return to;
        };
        if to <= now {
            return now;
        }
        loop {
            let next = self.next_tick.min(self.next_eval);
            if next >= to {
                break;
            }
            if self.next_tick == next {
                step(Step::Tick(next));
                self.next_tick = next + self.tick;
            }
            if self.next_eval == next {
                step(Step::Eval(next));
                self.next_eval = next + self.eval;
            }
        }
        self.now = Some(to);
        to
    }
}

/// The newest end among spans that carry one: the instant a batch moves the clock to.
pub fn newest_end(spans: &[slis::Span]) -> Option<Timestamp> {
    spans.iter().map(|s| s.end).filter(|e| e.unix_nanos() > 0).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(1_780_000_000 + s)
    }

    fn steps(clock: &mut Clock, to: i64) -> Vec<String> {
        let mut out = Vec::new();
        clock.advance(t(to), |s| {
            out.push(match s {
                Step::Tick(at) => format!("tick {}", at.unix_secs() - 1_780_000_000),
                Step::Eval(at) => format!("eval {}", at.unix_secs() - 1_780_000_000),
            })
        });
        out
    }

    #[test]
    fn work_falls_due_as_the_data_moves_the_clock() {
        let mut c = Clock::new(Duration::from_secs(1), Duration::from_secs(3));
        // (advance to, steps due strictly before it)
        let cases: &[(i64, &[&str])] = &[
            (0, &[]), // the first instant starts the schedules
            (1, &[]), // the tick at 1 is not before 1
            (2, &["tick 1"]),
            (1, &[]), // never backwards
            (5, &["tick 2", "tick 3", "eval 3", "tick 4"]),
            (5, &[]),
            (7, &["tick 5", "tick 6", "eval 6"]),
        ];
        for (to, want) in cases {
            assert_eq!(steps(&mut c, *to), *want, "advance to {to}");
        }
        assert_eq!(c.now(), Some(t(7)));
    }

    #[test]
    fn a_gap_in_the_data_runs_every_step_inside_it() {
        let mut c = Clock::new(Duration::from_secs(10), Duration::from_secs(60));
        steps(&mut c, 0);
        let got = steps(&mut c, 3_600);
        assert_eq!(got.iter().filter(|s| s.starts_with("tick")).count(), 359);
        assert_eq!(got.iter().filter(|s| s.starts_with("eval")).count(), 59);
        assert_eq!(got.last().map(String::as_str), Some("tick 3590"));
    }

    #[test]
    fn newest_end_ignores_spans_without_one() {
        use slis::{Span, SpanId, SpanKind, StatusCode, TraceId};
        let span = |end: i64| Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([1; 8]),
            parent_span_id: None,
            service: "s".into(),
            name: "n".into(),
            kind: SpanKind::Server,
            start: Timestamp::from_unix_nanos(end.max(1) - 1),
            end: Timestamp::from_unix_nanos(end),
            status: StatusCode::Unset,
            attributes: vec![],
            weight: 1,
        };
        assert_eq!(newest_end(&[]), None);
        assert_eq!(newest_end(&[span(0)]), None);
        assert_eq!(
            newest_end(&[span(5), span(0), span(9), span(7)]),
            Some(Timestamp::from_unix_nanos(9))
        );
    }
}
