//! The functions the `api/fuzz` targets call (one per target), so the committed corpora are also
//! a regression suite on stable: `fuzz_corpus` in this crate's tests feeds every corpus file
//! through the same function under `cargo test`.

use slis::Timestamp;
use tracebudget_alerting::mute::Silence;

use crate::app::config::{self, Config, Diagnostics};

/// `config`: a config file, as `serve`, `check` and a reload read it. Errors are rendered (with
/// their line:column and source excerpt) as `check` prints them.
pub fn config(text: &str) -> Result<Config, Diagnostics> {
    config::parse("fuzz.toml", text).inspect_err(|e| {
        let _ = e.to_string();
    })
}

/// The "now" of the `silence` target: 2026-01-01T00:00:00Z.
pub const SILENCE_NOW: Timestamp = Timestamp::from_unix_nanos(1_767_225_600_000_000_000);

/// `silence`: the body of `POST /api/v1/silences`, read and validated.
pub fn silence(body: &[u8]) -> Result<Silence, String> {
    let s = crate::app::silences::parse_silence(body, SILENCE_NOW).map_err(|e| e.to_string())?;
    assert!(
        s.starts_at < s.ends_at && SILENCE_NOW < s.ends_at,
        "an accepted silence ends after it starts and after now: {s:?}"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
        slis::fuzzing::corpus(env!("CARGO_MANIFEST_DIR"), target)
    }

    /// Every committed corpus file of the `config` target: no panic; a rejected config has at
    /// least one error and its report names the file.
    #[test]
    fn fuzz_corpus_config() {
        let (mut ok, mut failed) = (0, 0);
        for (name, data) in corpus("config") {
            let Ok(text) = std::str::from_utf8(&data) else { continue };
            match super::config(text) {
                Ok(_) => ok += 1,
                Err(d) => {
                    assert!(!d.errors.is_empty(), "config/{name}");
                    assert!(d.to_string().contains("  --> fuzz.toml"), "config/{name}: {d}");
                    failed += 1;
                }
            }
        }
        assert!(
            ok > 0 && failed > 0,
            "the corpus covers both outcomes: {ok} ok, {failed} failed"
        );
    }

    /// Every committed corpus file of the `silence` target: no panic, and an error is a
    /// sentence for the 400 answer.
    #[test]
    fn fuzz_corpus_silence() {
        let (mut ok, mut failed) = (0, 0);
        for (name, data) in corpus("silence") {
            match super::silence(&data) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(!e.is_empty(), "silence/{name}");
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
