//! What `tracebudget publish` does to a request: each `ExportTraceServiceRequest` becomes one
//! per partition holding the spans of that partition's traces, with their resource and scope
//! (and the rest of each `ResourceSpans`/`ScopeSpans`) kept, encoded as protobuf.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message as _;

use super::partition_of_bytes;

/// One partition's part of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub partition: u32,
    pub spans: u64,
    /// `ExportTraceServiceRequest`, protobuf.
    pub payload: Vec<u8>,
}

/// Splits `request` by partition (partitions in ascending order; a request without spans gives
/// none). Within a partition, spans keep their order and their resource/scope grouping.
pub fn split(request: ExportTraceServiceRequest, partitions: u32) -> Vec<Part> {
    split_within(request, partitions, usize::MAX)
}

/// [`split`], with every part's payload at most `max_bytes` (NATS's `max_payload`): a larger
/// part is cut in halves by span count, in order, as often as needed (a trace's spans may then
/// span messages of its partition, which the assembler joins). A single span larger than the
/// limit stays whole (NATS refuses it).
pub fn split_within(request: ExportTraceServiceRequest, partitions: u32, max_bytes: usize) -> Vec<Part> {
    let mut out = Vec::new();
    for (partition, (spans, req)) in by_partition(request, partitions) {
        fit(partition, spans, req, max_bytes, &mut out);
    }
    out
}

fn fit(partition: u32, spans: u64, req: ExportTraceServiceRequest, max_bytes: usize, out: &mut Vec<Part>) {
    if spans <= 1 || req.encoded_len() <= max_bytes {
        out.push(Part {
            partition,
            spans,
            payload: req.encode_to_vec(),
        });
        return;
    }
    let half = spans / 2;
    let (mut first, mut second) = (
        ExportTraceServiceRequest::default(),
        ExportTraceServiceRequest::default(),
    );
    let mut taken = 0u64;
    for rs in req.resource_spans {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for ss in rs.scope_spans {
            let room = (half - taken.min(half)) as usize;
            let n = ss.spans.len();
            taken += n as u64;
            if room >= n {
                a.push(ss);
            } else if room == 0 {
                b.push(ss);
            } else {
                let mut head = ss.clone();
                head.spans.truncate(room);
                let mut tail = ss;
                tail.spans.drain(..room);
                a.push(head);
                b.push(tail);
            }
        }
        for (scopes, to) in [(a, &mut first), (b, &mut second)] {
            if !scopes.is_empty() {
                to.resource_spans.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: scopes,
                    schema_url: rs.schema_url.clone(),
                });
            }
        }
    }
    fit(partition, half, first, max_bytes, out);
    fit(partition, spans - half, second, max_bytes, out);
}

fn by_partition(
    request: ExportTraceServiceRequest,
    partitions: u32,
) -> BTreeMap<u32, (u64, ExportTraceServiceRequest)> {
    let mut out: BTreeMap<u32, (u64, ExportTraceServiceRequest)> = BTreeMap::new();
    for rs in request.resource_spans {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = rs;
        // Per partition, this ResourceSpans' copy (created on its first span).
        let mut per: BTreeMap<u32, ResourceSpans> = BTreeMap::new();
        for ss in scope_spans {
            let ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema,
            } = ss;
            let mut by: BTreeMap<u32, Vec<_>> = BTreeMap::new();
            for span in spans {
                by.entry(partition_of_bytes(&span.trace_id, partitions))
                    .or_default()
                    .push(span);
            }
            for (p, spans) in by {
                let n = spans.len() as u64;
                per.entry(p)
                    .or_insert_with(|| ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    })
                    .scope_spans
                    .push(ScopeSpans {
                        scope: scope.clone(),
                        spans,
                        schema_url: scope_schema.clone(),
                    });
                out.entry(p).or_default().0 += n;
            }
        }
        for (p, rs) in per {
            out.entry(p).or_default().1.resource_spans.push(rs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    use super::*;
    use crate::jetstream::partition_of;

    fn span(trace: u8, id: u8) -> Span {
        let mut trace_id = vec![0u8; 16];
        trace_id[7] = trace;
        Span {
            trace_id,
            span_id: vec![id; 8],
            name: format!("op{id}"),
            ..Default::default()
        }
    }

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    #[test]
    fn a_request_splits_by_trace_partition_keeping_resources_and_scopes() {
        let scope = |name: &str, spans| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.into(),
                ..Default::default()
            }),
            spans,
            schema_url: "s".into(),
        };
        // Traces 1..4 over 3 partitions: 1 → 1, 2 → 2, 3 → 0, 4 → 1.
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: resource("frontend"),
                    scope_spans: vec![
                        scope("http", vec![span(1, 1), span(2, 2), span(4, 3)]),
                        scope("db", vec![span(3, 4)]),
                    ],
                    schema_url: "r".into(),
                },
                ResourceSpans {
                    resource: resource("payment"),
                    scope_spans: vec![scope("grpc", vec![span(1, 5)])],
                    schema_url: String::new(),
                },
            ],
        };
        let parts = split(request, 3);
        /// Per resource (its service), per scope (its name), the span ids' first bytes.
        type Layout = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let got: Vec<(u32, u64, Layout)> = parts
            .iter()
            .map(|p| {
                let req = ExportTraceServiceRequest::decode(p.payload.as_slice()).unwrap();
                let shape = req
                    .resource_spans
                    .iter()
                    .map(|rs| {
                        let service = match &rs.resource.as_ref().unwrap().attributes[0].value {
                            Some(AnyValue {
                                value: Some(any_value::Value::StringValue(s)),
                            }) => s.clone(),
                            _ => unreachable!(),
                        };
                        let scopes = rs
                            .scope_spans
                            .iter()
                            .map(|ss| {
                                let ids = ss.spans.iter().map(|s| s.span_id[0]).collect();
                                (ss.scope.as_ref().unwrap().name.clone(), ids)
                            })
                            .collect();
                        (service, scopes)
                    })
                    .collect();
                (p.partition, p.spans, shape)
            })
            .collect();
        let s = |v: &str| v.to_owned();
        assert_eq!(
            got,
            [
                (0, 1, vec![(s("frontend"), vec![(s("db"), vec![4])])]),
                (
                    1,
                    3,
                    vec![
                        (s("frontend"), vec![(s("http"), vec![1, 3])]),
                        (s("payment"), vec![(s("grpc"), vec![5])])
                    ]
                ),
                (2, 1, vec![(s("frontend"), vec![(s("http"), vec![2])])]),
            ]
        );
        for p in &parts {
            let req = ExportTraceServiceRequest::decode(p.payload.as_slice()).unwrap();
            for rs in &req.resource_spans {
                for ss in &rs.scope_spans {
                    for sp in &ss.spans {
                        let id = slis::TraceId(sp.trace_id.clone().try_into().unwrap());
                        assert_eq!(partition_of(&id, 3), p.partition);
                    }
                }
            }
        }
        assert!(split(ExportTraceServiceRequest::default(), 3).is_empty());
    }

    #[test]
    fn a_part_over_the_payload_limit_is_cut_in_order_without_losing_a_span() {
        let spans: Vec<Span> = (0..40u8).map(|i| span(3 * (i % 4), i)).collect(); // all partition 0 of 3
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource("frontend"),
                scope_spans: vec![
                    ScopeSpans {
                        spans: spans[..25].to_vec(),
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: spans[25..].to_vec(),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
        };
        let whole = split(request.clone(), 3);
        assert_eq!(whole.len(), 1);
        let limit = whole[0].payload.len() / 3;
        let parts = split_within(request, 3, limit);
        assert!(parts.len() >= 3, "{}", parts.len());
        let mut ids = Vec::new();
        for p in &parts {
            assert!(p.payload.len() <= limit, "{} > {limit}", p.payload.len());
            assert_eq!(p.partition, 0);
            let req = ExportTraceServiceRequest::decode(p.payload.as_slice()).unwrap();
            let mut n = 0;
            for rs in &req.resource_spans {
                assert_eq!(rs.resource, resource("frontend"));
                for ss in &rs.scope_spans {
                    n += ss.spans.len() as u64;
                    ids.extend(ss.spans.iter().map(|s| s.span_id[0]));
                }
            }
            assert_eq!(n, p.spans);
        }
        assert_eq!(ids, (0..40u8).collect::<Vec<_>>(), "every span once, in order");
    }
}
