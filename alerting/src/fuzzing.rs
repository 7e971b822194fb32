//! The function the `alerting/fuzz` target calls, so the committed corpus is also a regression
//! suite on stable: `fuzz_corpus` in this crate's tests feeds every corpus file through it.

use slis::journey::MatcherError;

use crate::labels::{LabelMatcher, Labels};

/// `matcher`: a label matcher as routes, inhibition rules and silences write it. One that parses
/// is evaluated against a label set (and the empty one), and its text parses again.
pub fn matcher(text: &str) -> Result<LabelMatcher, MatcherError> {
    let m = LabelMatcher::parse(text)?;
    let labels: Labels = [("slo", "checkout"), ("severity", "page"), ("burn", "14.4")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = m.matches(&labels);
    let _ = m.matches(&Labels::new());
    if let Err(e) = LabelMatcher::parse(m.as_str()) {
        panic!("{:?} parsed, but its text {:?} does not: {e}", text, m.as_str());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    /// Every committed corpus file of the `matcher` target: no panic; an error names the text
    /// and a reason. Files that are not UTF-8 are skipped, as the target skips them.
    #[test]
    fn fuzz_corpus_matcher() {
        let (mut ok, mut failed) = (0, 0);
        for (name, data) in slis::fuzzing::corpus(env!("CARGO_MANIFEST_DIR"), "matcher") {
            let Ok(text) = std::str::from_utf8(&data) else { continue };
            match super::matcher(text) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_eq!(e.text, text, "matcher/{name}");
                    assert!(!e.reason.is_empty(), "matcher/{name}");
                    failed += 1;
                }
            }
        }
        assert!(
            ok > 0 && failed > 0,
            "the corpus covers both outcomes: {ok} ok, {failed} failed"
        );
    }
}
