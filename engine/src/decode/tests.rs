use slis::journey::{AttrMatcher, Journey, Journeys, RootMatcher};

use super::AttrKeys;

fn journey(root_attributes: &[&str], error_rules: &[&str]) -> Journey {
    let parse = |m: &&str| AttrMatcher::parse(m).unwrap();
    Journey {
        name: "checkout".to_owned(),
        root: RootMatcher {
            service: Some("frontend".to_owned()),
            http_route: Some("/api/checkout".to_owned()),
            attributes: root_attributes.iter().map(parse).collect(),
            ..Default::default()
        },
        status_error: true,
        error_rules: error_rules.iter().map(parse).collect(),
        expected_services: vec![],
        labels: vec![],
    }
}

#[test]
fn keys_from_journeys() {
    let journeys = Journeys(vec![
        journey(
            &["deployment.environment = \"prod\""],
            &["http.response.status_code >= 500"],
        ),
        journey(&[], &["rpc.grpc.status_code != 0", "error.type =~ \"timeout|reset\""]),
    ]);
    let keys = AttrKeys::from_journeys(&journeys);
    let cases = [
        ("http.route", true),
        ("http.request.method", true),
        ("http.method", true),
        ("http.response.status_code", true),
        ("http.status_code", true),
        ("deployment.environment", true),
        ("rpc.grpc.status_code", true),
        ("error.type", true),
        ("service.name", false),
        ("http.rout", false),
        ("http.routE", false),
        ("SampleRate", false),
        ("", false),
    ];
    for (key, kept) in cases {
        assert_eq!(keys.contains(key), kept, "{key}");
    }
    assert_eq!(keys.keys.len(), 9, "{keys:?}"); // each key once, `error` included
}

#[test]
fn keys_of_any_length() {
    let long = "k".repeat(200);
    let keys = AttrKeys::new([long.clone(), "a".to_owned(), String::new()]);
    assert!(keys.contains(&long));
    assert!(!keys.contains(&"k".repeat(199))); // shares the "64 or more" length bit
    assert!(keys.contains("a"));
    assert!(keys.contains(""));
    assert!(!AttrKeys::default().contains(""));
}
