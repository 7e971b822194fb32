//! The shop the ingest benches share: three journeys over four services and an error, a latency
//! and a completeness SLO on each (included by `pipeline.rs` and `jetstream.rs` with `#[path]`).

use std::sync::Arc;
use std::time::Duration;

use slis::journey::{AttrMatcher, Journey, Journeys, RootMatcher};
use slis::slo::{Period, SliKind, Slo};

pub fn journeys() -> Journeys {
    let journey = |name: &str, method: &str, route: &str, services: &[&str]| Journey {
        name: name.into(),
        root: RootMatcher {
            service: Some("frontend".into()),
            http_route: Some(route.into()),
            http_method: Some(method.into()),
            ..Default::default()
        },
        status_error: true,
        error_rules: vec![AttrMatcher::parse("http.response.status_code >= 500").unwrap()],
        expected_services: services.iter().map(|s| Arc::from(*s)).collect(),
        labels: vec![],
    };
    Journeys(vec![
        journey(
            "checkout",
            "POST",
            "/api/checkout",
            &["frontend", "checkout", "payment", "catalog"],
        ),
        journey(
            "search",
            "GET",
            "/api/search",
            &["frontend", "catalog", "inventory", "checkout"],
        ),
        journey(
            "login",
            "POST",
            "/api/login",
            &["frontend", "auth", "catalog", "payment"],
        ),
    ])
}

pub fn slos() -> Vec<Slo> {
    let kinds = [
        SliKind::Latency {
            threshold: Duration::from_millis(800),
        },
        SliKind::Error,
        SliKind::Completeness,
    ];
    (0..9)
        .map(|i| Slo {
            name: format!("slo-{i}"),
            journey: i / 3,
            sli: kinds[i % 3],
            objective: 0.999,
            period: Period::Rolling(Duration::from_secs(28 * 86_400)),
            policy: 0,
            labels: vec![],
        })
        .collect()
}
