//! What may be shown of a value that can carry a secret, for `Debug` output and error reasons of
//! the config and the notifiers alike. Depends on nothing else in the crate.

/// What `Debug` shows of a set secret: the one marker every crate writes.
pub(crate) use slis::config::REDACTED;

/// Scheme, host and port of a URL: all that may be shown of it (no userinfo, path or query).
pub(crate) fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_hides_path_query_and_userinfo() {
        for (url, want) in [
            (
                "https://hooks.slack.com/services/T000/B000/SECRET",
                "https://hooks.slack.com",
            ),
            ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
            ("http://h:1/x?token=SECRET", "http://h:1"),
            ("https://user:SECRET@h.example/x", "https://h.example"),
        ] {
            assert_eq!(origin(url), want);
        }
    }
}
