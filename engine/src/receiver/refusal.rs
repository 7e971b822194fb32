//! Why a request is refused as a whole, and the one table that says how each refusal is
//! answered (HTTP status, gRPC code, `Retry-After`/`RetryInfo`) and counted (`outcome` label).
//! Every front-end and every destination answers through it.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// How long a refused client should wait before retrying (`Retry-After`, gRPC `RetryInfo`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The body does not decode, or could not be read.
    Malformed,
    /// The body is larger than `max_body_size`, announced, on the wire or inflated.
    TooLarge,
    /// A `Content-Type` the front-end does not take.
    UnsupportedMediaType,
    /// A `Content-Encoding` the front-end cannot undo.
    UnsupportedEncoding,
    /// The body missed its deadline (`body_read_timeout`).
    Timeout,
    /// The body does not fit in `max_body_bytes_in_flight`.
    InFlightLimit,
    /// The trace assembler is full (`max_buffered_spans`).
    Backpressure,
    /// No valid `[ingest] auth_token`.
    Unauthorized,
    /// `tracebudget publish`: JetStream did not store every part.
    Unavailable,
    /// `tracebudget record`: the capture file could not be written.
    RecordFailed,
}

/// One row of the table: how a [`Reason`] is counted and answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The `outcome` label of the request counters.
    pub outcome: &'static str,
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code, also the `code` of an OTLP/HTTP `google.rpc.Status` body.
    pub code: Code,
    /// Whether the client is told to retry after [`RETRY_AFTER`].
    pub retry: bool,
}

impl Reason {
    /// The table: `outcome` label, HTTP status, gRPC code, whether the client retries.
    #[rustfmt::skip]
    pub const fn answer(self) -> Answer {
        use Code as C;
        use Reason as R;
        use StatusCode as S;
        let (outcome, status, code, retry) = match self {
            R::Malformed            => ("malformed",              S::BAD_REQUEST,            C::InvalidArgument, false),
            R::TooLarge             => ("too_large",              S::PAYLOAD_TOO_LARGE,      C::InvalidArgument, false),
            R::UnsupportedMediaType => ("unsupported_media_type", S::UNSUPPORTED_MEDIA_TYPE, C::InvalidArgument, false),
            R::UnsupportedEncoding  => ("unsupported_encoding",   S::UNSUPPORTED_MEDIA_TYPE, C::InvalidArgument, false),
            R::Timeout              => ("timeout",                S::REQUEST_TIMEOUT,        C::DeadlineExceeded, false),
            R::InFlightLimit        => ("in_flight_limit",        S::TOO_MANY_REQUESTS,      C::ResourceExhausted, true),
            R::Backpressure         => ("backpressure",           S::TOO_MANY_REQUESTS,      C::ResourceExhausted, true),
            R::Unauthorized         => ("unauthorized",           S::UNAUTHORIZED,           C::Unauthenticated, false),
            R::Unavailable          => ("unavailable",            S::SERVICE_UNAVAILABLE,    C::Unavailable, true),
            R::RecordFailed         => ("record_failed",          S::SERVICE_UNAVAILABLE,    C::Unavailable, false),
        };
        Answer {
            outcome,
            status,
            code,
            retry,
        }
    }

    /// The `outcome` label.
    pub const fn outcome(self) -> &'static str {
        self.answer().outcome
    }

    /// The HTTP answer: the table's status with `body`, then `Retry-After` when the client should
    /// retry and `WWW-Authenticate: Bearer` when it needs a token.
    pub fn http_response(self, body: impl IntoResponse) -> Response {
        let answer = self.answer();
        let mut response = (answer.status, body).into_response();
        if answer.retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
        }
        if self == Reason::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }

    /// What tonic refuses by itself before a gRPC handler runs, from the code it answers: a
    /// message over `max_decoding_message_size` (OUT_OF_RANGE) or one that is not valid
    /// protobuf (INTERNAL). Handlers never answer those codes.
    pub fn refused_by_tonic(code: Code) -> Option<Reason> {
        match code {
            Code::OutOfRange => Some(Reason::TooLarge),
            Code::Internal => Some(Reason::Malformed),
            _ => None,
        }
    }
}

/// A request refused as a whole: why, and the message the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    /// A refusal for `reason` with `message`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }

    /// The body does not decode.
    pub fn malformed(message: impl Into<String>) -> Refusal {
        Refusal::new(Reason::Malformed, message)
    }

    /// The table's row for this refusal.
    pub fn answer(&self) -> Answer {
        self.reason.answer()
    }

    /// The gRPC answer: the table's code and the message, with a `RetryInfo` detail when the
    /// client should retry.
    pub fn into_status(self) -> tonic::Status {
        let answer = self.answer();
        if answer.retry {
            tonic::Status::with_error_details(
                answer.code,
                self.message,
                ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
            )
        } else {
            tonic::Status::new(answer.code, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_row() {
        use Code as C;
        use Reason as R;
        use StatusCode as S;
        // (reason, outcome, HTTP status, gRPC code, retry)
        #[rustfmt::skip]
        let table = [
            (R::Malformed,            "malformed",              S::BAD_REQUEST,            C::InvalidArgument, false),
            (R::TooLarge,             "too_large",              S::PAYLOAD_TOO_LARGE,      C::InvalidArgument, false),
            (R::UnsupportedMediaType, "unsupported_media_type", S::UNSUPPORTED_MEDIA_TYPE, C::InvalidArgument, false),
            (R::UnsupportedEncoding,  "unsupported_encoding",   S::UNSUPPORTED_MEDIA_TYPE, C::InvalidArgument, false),
            (R::Timeout,              "timeout",                S::REQUEST_TIMEOUT,        C::DeadlineExceeded, false),
            (R::InFlightLimit,        "in_flight_limit",        S::TOO_MANY_REQUESTS,      C::ResourceExhausted, true),
            (R::Backpressure,         "backpressure",           S::TOO_MANY_REQUESTS,      C::ResourceExhausted, true),
            (R::Unauthorized,         "unauthorized",           S::UNAUTHORIZED,           C::Unauthenticated, false),
            (R::Unavailable,          "unavailable",            S::SERVICE_UNAVAILABLE,    C::Unavailable, true),
            (R::RecordFailed,         "record_failed",          S::SERVICE_UNAVAILABLE,    C::Unavailable, false),
        ];
        for (reason, outcome, status, code, retry) in table {
            let answer = reason.answer();
            assert_eq!(
                answer,
                Answer {
                    outcome,
                    status,
                    code,
                    retry
                },
                "{reason:?}"
            );
            let response = reason.http_response("why");
            assert_eq!(response.status(), status, "{reason:?}");
            assert_eq!(
                response.headers().get(header::RETRY_AFTER).is_some(),
                retry,
                "{reason:?}"
            );
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE).is_some(),
                reason == Reason::Unauthorized,
                "{reason:?}"
            );
            let status = Refusal::new(reason, "why").into_status();
            assert_eq!((status.code(), status.message()), (code, "why"), "{reason:?}");
            assert_eq!(
                status.get_details_retry_info().and_then(|r| r.retry_delay),
                retry.then_some(RETRY_AFTER),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn what_tonic_refuses_by_itself_is_counted_as_too_large_or_malformed() {
        let cases = [
            (Code::OutOfRange, Some(Reason::TooLarge)),
            (Code::Internal, Some(Reason::Malformed)),
            (Code::Ok, None),
            (Code::ResourceExhausted, None),
        ];
        for (code, reason) in cases {
            assert_eq!(Reason::refused_by_tonic(code), reason, "{code:?}");
        }
    }
}
