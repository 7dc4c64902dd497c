//! Hot paths of the model, timed with std::time (no bench framework):
//! - training on 43,200 rows × 60 features (12 h of 1 s samples);
//! - scoring one sample (the per-tick cost in the daemon), with a model of 1 s rows, and
//!   with one of 4 days of minute rows (time-of-day bins on the local clock, smoothing
//!   weight from the time between samples), as the daemon has after a few days.
//!
//! `cargo bench --bench model`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use anomalyd::model::{Model, Spec};
use anomalyd::sample::Record;

struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn rows(n: usize, d: usize) -> Vec<Record> {
    rows_every(n, d, 0, 1000)
}

/// `n` rows of `d` features, `step_ms` apart from `start_ms` after the bench's epoch.
fn rows_every(n: usize, d: usize, start_ms: i64, step_ms: i64) -> Vec<Record> {
    let names: Vec<String> = (0..d)
        .map(|j| format!("metric_{j}{{dev=\"x{j}\"}}"))
        .collect();
    let mut z = Noise(0x2545_F491_4F6C_DD1D);
    (0..n)
        .map(|i| {
            let phase = (i as f64 / 3600.0).sin();
            Record {
                timestamp_ms: Some(1_700_000_000_000 + start_ms + i as i64 * step_ms),
                values: names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        let scale = 10f64.powi((j % 12) as i32 - 3);
                        (
                            n.clone(),
                            scale * (1.0 + 0.3 * phase * (j % 3) as f64 + 0.1 * z.next()),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

fn main() {
    let (n, d) = (43_200, 60);
    let data = rows(n, d);
    let spec = Spec::default();

    let t0 = Instant::now();
    let model = Arc::new(Model::train(&data, &spec).expect("trains"));
    let train_s = t0.elapsed().as_secs_f64();
    println!("train {n} rows x {d} features: {train_s:.3} s (target <= 5 s)");

    let probe = rows(10_000, d);
    let per = score_us(&model, &probe);
    println!("score one sample ({d} features): {per:.2} us (target <= 5 us)");

    let minutes = rows_every(4 * 1440, d, 0, 60_000);
    let daily = Arc::new(Model::train(&minutes, &spec).expect("trains"));
    assert!(daily.uses_time_of_day() && daily.row_interval_ms().is_some());
    let live = rows_every(10_000, d, 4 * 86_400_000, 1000);
    let per = score_us(&daily, &live);
    println!(
        "score one 1 s sample ({d} features, model of minute rows with time of day): \
         {per:.2} us (target <= 5 us)"
    );
}

/// Mean µs per `Scorer::score` over `probe`, cycled.
fn score_us(model: &Arc<Model>, probe: &[Record]) -> f64 {
    let mut scorer = model.scorer();
    for r in &probe[..1000] {
        black_box(scorer.score(r));
    }
    let iters = 200_000;
    let t0 = Instant::now();
    for i in 0..iters {
        black_box(scorer.score(black_box(&probe[i % probe.len()])));
    }
    t0.elapsed().as_secs_f64() / iters as f64 * 1e6
}
