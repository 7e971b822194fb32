#![no_main]

use libfuzzer_sys::fuzz_target;

// Not UTF-8: `config::load` reads the file with `read_to_string`, which refuses it first.
fuzz_target!(|text: &str| {
    let _ = tracebudget::fuzzing::config(text);
});
