//! The fuzz targets' seed corpus as a regression test: every committed input
//! under `fuzz/corpus/` goes through the same bodies `cargo fuzz` runs
//! (`fuzz/src/targets.rs`), with their assertions: no panic, only allowlisted
//! headers and no foreign address delivered, and seller → buyer no address or
//! remote URL in any decoded part. It also keeps the fuzz harness compiling
//! with the library, which `cargo fuzz` alone would not (it is not in CI).

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod bsm_milter_fuzz;

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 10, "{}: only {} seed inputs", dir.display(), inputs.len());
    inputs
}

#[test]
fn pipeline_seed_corpus_holds_the_fuzz_properties() {
    for (name, data) in corpus("pipeline") {
        eprintln!("pipeline: {name}");
        bsm_milter_fuzz::targets::pipeline(&data);
    }
}

#[test]
fn headers_seed_corpus_holds_the_fuzz_properties() {
    for (name, data) in corpus("headers") {
        eprintln!("headers: {name}");
        bsm_milter_fuzz::targets::headers(&data);
    }
}
