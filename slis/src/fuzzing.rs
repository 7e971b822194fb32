//! The committed corpus of a cargo-fuzz target, read by the `fuzz_corpus` tests of `engine`,
//! `alerting` and `api` (the corpora are a regression suite on stable: see docs/dev/README.md, "Fuzzing").

use std::path::Path;

/// Every file of `<crate_dir>/fuzz/corpus/<target>`, sorted by name, as (name, bytes). Panics
/// when the directory is missing or empty: a target always has a committed corpus.
pub fn corpus(crate_dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(crate_dir).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("a readable directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().expect("a file name").to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files.sort();
    files
}
