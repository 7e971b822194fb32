#![no_main]

use libfuzzer_sys::fuzz_target;

// Not UTF-8: the matcher is text everywhere it comes from (TOML, JSON, the CLI).
fuzz_target!(|text: &str| {
    let _ = tracebudget_alerting::fuzzing::matcher(text);
});
