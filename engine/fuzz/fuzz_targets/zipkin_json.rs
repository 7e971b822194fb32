#![no_main]

use std::sync::LazyLock;

use tracebudget_engine::decode::AttrKeys;
use tracebudget_engine::fuzzing;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<AttrKeys> = LazyLock::new(fuzzing::keys);

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::zipkin_json(data, &KEYS);
});
