//! The long fuzz run: every target (or those named) for `--inputs N` inputs each,
//! counting panics and measuring, per input, the time taken and the peak heap
//! allocated (a counting allocator). Prints one line per target and exits 1 if any
//! input panicked, took over 1 s or allocated over 64 MiB; such inputs are saved in
//! `target/fuzz-findings/`.
//!
//! ```sh
//! cargo run --profile ci --example fuzz -- --inputs 1000000 [--seed N] [TARGET...]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "targets.rs"]
mod targets;

/// Counts live heap bytes and their peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TIME_LIMIT: Duration = Duration::from_secs(1);
const MEMORY_LIMIT: usize = 64 << 20;

fn main() {
    let mut inputs = 1_000_000usize;
    let mut seed = 0x5eed_u64;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--inputs" => {
                inputs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--inputs N")
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            name => only.push(name.to_string()),
        }
    }
    std::panic::set_hook(Box::new(|_| {}));
    let findings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
    let mut bad = 0;
    println!(
        "{:<8} {:>10} {:>7} {:>11} {:>12} {:>10} {:>9}",
        "target", "inputs", "panics", "max time", "max memory", "inputs/s", "max size"
    );
    for t in targets::TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t.name))
    {
        let seeds = (t.seeds)();
        let mut rng = targets::Rng(seed ^ (t.name.len() as u64 * 0x9e37_79b9));
        let (mut panics, mut max_time, mut max_mem, mut max_size) = (0, Duration::ZERO, 0, 0);
        let started = Instant::now();
        for i in 0..inputs {
            let data = targets::input(t, &seeds, &mut rng, i);
            max_size = max_size.max(data.len());
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let t0 = Instant::now();
            let ok = std::panic::catch_unwind(|| (t.run)(&data)).is_ok();
            let took = t0.elapsed();
            let mem = PEAK.load(Ordering::Relaxed).saturating_sub(base);
            max_time = max_time.max(took);
            max_mem = max_mem.max(mem);
            if !ok || took > TIME_LIMIT || mem > MEMORY_LIMIT {
                panics += usize::from(!ok);
                bad += 1;
                let _ = std::fs::create_dir_all(&findings);
                let _ = std::fs::write(findings.join(format!("{}-{i}.bin", t.name)), &data);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:<8} {:>10} {:>7} {:>8.1} ms {:>9.2} MiB {:>10.0} {:>9}",
            t.name,
            inputs,
            panics,
            max_time.as_secs_f64() * 1e3,
            max_mem as f64 / (1 << 20) as f64,
            inputs as f64 / secs,
            max_size
        );
    }
    if bad > 0 {
        eprintln!(
            "{bad} input(s) broke a limit; saved in {}",
            findings.display()
        );
        std::process::exit(1);
    }
}
