//! `tracebudget replay` on one core (issue #8): writes an OTLP protobuf file of the example
//! shop's traffic (`tracebudget_synth::Generator`, 512 spans per request, the Collector `file`
//! exporter's framing) of each size in `REPLAY_BENCH_GB` (default `1,10`) into
//! `REPLAY_BENCH_DIR` (default the system's temporary directory), then replays it through
//! `tracebudget::cli::replay::replay` — the whole command: read, decode, pipeline, evaluator — in a child
//! process per size, and prints spans/s, the time per stage (the replay's own `Stages`) and the
//! child's peak RSS (`VmHWM`). The file is deleted afterwards.
//!
//! Run with `cargo bench -p tracebudget --bench replay`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use slis::Timestamp;
use tracebudget_engine::replay::{OutFormat, Request, Writer};
use tracebudget_synth::{Generator, Shape, ShapeDefaults};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIG: &str = include_str!("../../examples/tracebudget.toml");

/// The example shop, traces closing 5 s after their last span (about 50,000 spans open at the
/// bench's 10,240 spans per virtual second).
fn config() -> tracebudget::app::config::Config {
    let text = CONFIG.replace("trace_idle = \"30s\"", "trace_idle = \"5s\"");
    assert_ne!(text, CONFIG, "the example config changed shape");
    tracebudget::app::config::parse("examples/tracebudget.toml", &text).expect("the example config parses")
}

/// Writes about `bytes` of traffic, 512 spans per request.
fn generate(path: &Path, bytes: u64) -> (u64, Duration) {
    let config = config();
    let shape = Shape::from_journeys(&config.journeys, &ShapeDefaults::default()).expect("shape");
    let mut generator = Generator::new(shape, 42).expect("generator");
    let writer = Writer::create(path, OutFormat::Proto, false).expect("create the file");
    let started = Instant::now();
    let mut at = Timestamp::from_unix_secs(1_780_000_000);
    let (mut written, mut spans) = (0u64, 0u64);
    while written < bytes {
        let batch = generator.batch(at, 512, u64::MAX);
        written += 4 + prost::Message::encoded_len(&batch.request) as u64;
        spans += batch.spans;
        writer.write(Request::Otlp(&batch.request)).expect("write");
        // 64 traces of 8 spans every 50 ms: 1,280 traces/s of virtual time.
        at = at + Duration::from_millis(50);
    }
    (spans, started.elapsed())
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: replays one file, prints one line of figures.
fn child(path: &Path) {
    let name = path.to_str().expect("utf-8 path").to_owned();
    let started = Instant::now();
    let report =
        tracebudget::cli::replay::replay(vec![("example".to_owned(), config())], &[name], false).expect("replay");
    let elapsed = started.elapsed();
    let spans = report.read.spans;
    let hwm = vm_hwm_kib();
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let fired = report.configs[0].events.len();
    let st = report.read.stages;
    let rate = |d: Duration| spans as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "replay {:.2} GB: {spans} spans in {:.1}s = {:.0} spans/s ({:.0} MB/s); stages: read {:.1}s, \
         decode {:.1}s ({:.0} spans/s), pipeline+evaluator {:.1}s ({:.0} spans/s); peak RSS {} MiB; \
         {fired} alert transitions",
        bytes as f64 / 1e9,
        elapsed.as_secs_f64(),
        rate(elapsed),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        st.read.as_secs_f64(),
        st.decode.as_secs_f64(),
        rate(st.decode),
        st.engine.as_secs_f64(),
        rate(st.engine),
        hwm / 1024,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--replay-child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    // `cargo bench` passes `--bench`; a filter or anything else is ignored.
    let sizes = std::env::var("REPLAY_BENCH_GB").unwrap_or_else(|_| "1,10".to_owned());
    let dir = std::env::var("REPLAY_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), PathBuf::from);
    for size in sizes.split(',').filter_map(|s| s.trim().parse::<f64>().ok()) {
        let path = dir.join(format!("tracebudget-replay-bench-{size}gb.pb"));
        let (spans, took) = generate(&path, (size * 1e9) as u64);
        println!(
            "generated {} ({spans} spans) in {:.1}s",
            path.display(),
            took.as_secs_f64()
        );
        let status = Command::new(std::env::current_exe().expect("own path"))
            .args(["--replay-child", path.to_str().expect("utf-8 path")])
            .status()
            .expect("run the child");
        let _ = std::fs::remove_file(&path);
        assert!(status.success(), "the replay child failed: {status}");
    }
}
