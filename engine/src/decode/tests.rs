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
        ("peer.service", true),
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
    assert_eq!(keys.keys.len(), 10, "{keys:?}"); // each key once, `error` and `peer.service` included
    assert!(keys.watch_tags, "serve hashes every value for the cardinality sketches");
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

/// Issue 10: a value hashes alike whatever the wire format carried it in, so the cardinality
/// sketches count it once; a request's values are grouped by service and key.
#[test]
fn tag_values_hash_alike_across_encodings_and_group_by_key() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use prost::Message as _;

    use super::wire::{WireValue, value_hash};
    // As the protobuf projection keeps it: the whole `KeyValue`, still encoded.
    let encoded = |v: Value| {
        let kv = KeyValue {
            key: "http.request.method".to_owned(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        bytes::Bytes::from(kv.encode_to_vec())
    };
    let long = "u".repeat(300); // a two-byte length
    for text in ["", "GET", long.as_str()] {
        let raw = encoded(Value::StringValue(text.to_owned()));
        assert_eq!(
            value_hash(WireValue::Encoded(&raw)),
            value_hash(WireValue::Str(text.as_bytes())),
            "{text:?}"
        );
    }
    let raw = encoded(Value::IntValue(503));
    assert_eq!(value_hash(WireValue::Encoded(&raw)), value_hash(WireValue::Int(503)));
    assert_ne!(
        value_hash(WireValue::Int(1)),
        value_hash(WireValue::Str(b"1")),
        "the type counts"
    );
    assert_eq!(value_hash(WireValue::Other), None);

    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}},{"key":"host.name","value":{"stringValue":"h1"}}]},"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"k","value":{"stringValue":"v1"}}]},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"k","value":{"stringValue":"v1"}}]},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b176","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"k","value":{"stringValue":"v2"}}]}
    ]}]}]}"#;
    let keys = AttrKeys::from_journeys(&slis::journey::Journeys::default());
    let decoded = super::otlp::decode_json(body.as_bytes(), &keys).unwrap();
    let tags: Vec<(&str, &str, usize)> = decoded
        .tags
        .iter()
        .map(|t| (&*t.service, &*t.key, t.values.len()))
        .collect();
    assert_eq!(tags, [("a", "host.name", 1), ("a", "k", 3)], "one group per key");
    let k = &decoded.tags[1].values;
    assert_eq!((k[0] == k[1], k[1] == k[2]), (true, false), "v1, v1, v2");
    assert_eq!(k[0], value_hash(WireValue::Str(b"v1")).unwrap());
    let off = super::otlp::decode_json(body.as_bytes(), &AttrKeys::new(["k"])).unwrap();
    assert!(off.tags.is_empty(), "not watched: nothing hashed");
}

#[test]
fn names_keys_and_kept_values_longer_than_the_limit_are_cut_and_counted() {
    use super::MAX_STRING_BYTES;
    // A 10 MB service name, a span name whose cut falls inside a 3-byte character, a kept
    // value (http.route) and a watched key over the limit; a name of exactly the limit is whole.
    let service = "s".repeat(10 << 20);
    let name = format!("{}€tail", "n".repeat(MAX_STRING_BYTES - 1));
    let route = "r".repeat(MAX_STRING_BYTES + 1);
    let key = "k".repeat(5000);
    let exact = "e".repeat(MAX_STRING_BYTES);
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[
        {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"{name}","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{{"key":"http.route","value":{{"stringValue":"{route}"}}}},{{"key":"{key}","value":{{"stringValue":"v"}}}}]}},
        {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","name":"{exact}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}
    ]}}]}}]}}"#
    );
    let keys = AttrKeys::from_journeys(&Journeys(vec![journey(&[], &[])]));
    let decoded = super::otlp::decode_json(body.as_bytes(), &keys).unwrap();
    assert_eq!(decoded.truncated, 4, "service, span name, route, watched key");
    let [a, b] = &decoded.spans[..] else {
        panic!("two spans")
    };
    assert_eq!(&*a.service, &service[..MAX_STRING_BYTES]);
    assert_eq!(
        &*a.name,
        &name[..MAX_STRING_BYTES - 1],
        "cut before the '€', not inside it"
    );
    let kept: Vec<(&str, &slis::AttrValue)> = a.attributes.iter().map(|(k, v)| (&**k, v)).collect();
    match kept[..] {
        [("http.route", slis::AttrValue::Str(v))] => assert_eq!(&**v, &route[..MAX_STRING_BYTES]),
        _ => panic!("one kept attribute, the route: {kept:?}"),
    }
    assert_eq!(&*b.name, exact, "exactly the limit stays whole");
    assert_eq!(decoded.tags.iter().map(|t| t.key.len()).max(), Some(MAX_STRING_BYTES));
}
