#![no_main]

use std::sync::LazyLock;

use engine::decode::AttrKeys;
use engine::fuzzing;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<AttrKeys> = LazyLock::new(fuzzing::keys);

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::otlp_json(data, &KEYS);
});
