//! Benchmarks of the communes of the COG.
//!
//! * First use: the embedded files parsed (once per process, so timed once,
//!   before the benchmarks, and printed; run the bench a few times to see it
//!   vary).
//! * `communes/lookup`: `commune(code)` over codes spread through the file.
//! * `communes/check_match` and `check_mismatch`: `check_commune` with the
//!   name as typed (« saint etienne »), and with a wrong one (the message
//!   not rendered).
//!
//! Run with `cargo bench -p ami-core --bench communes`.

use std::hint::black_box;
use std::time::Instant;

use ami_core::communes::{check_commune, commune, communes};
use criterion::{criterion_group, Criterion};

fn lookups(c: &mut Criterion) {
    let codes: Vec<&str> = communes().iter().step_by(97).map(|c| c.code).collect();
    let mut group = c.benchmark_group("communes");
    group.bench_function("lookup", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % codes.len();
            black_box(commune(black_box(codes[i])))
        })
    });
    group.bench_function("check_match", |b| {
        b.iter(|| {
            black_box(check_commune(
                black_box("42218"),
                black_box("saint etienne"),
            ))
        })
    });
    group.bench_function("check_mismatch", |b| {
        b.iter(|| black_box(check_commune(black_box("58194"), black_box("Never"))))
    });
    group.finish();
}

criterion_group!(benches, lookups);

fn main() {
    let start = Instant::now();
    let first = commune("58194");
    let elapsed = start.elapsed();
    assert!(first.is_some());
    println!(
        "communes/first_use: {elapsed:?} to parse {} communes",
        communes().len()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
