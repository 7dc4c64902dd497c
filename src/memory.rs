//! The allocator, set for a daemon that runs for months on a small host: one malloc
//! arena, and freed memory given back once a minute (a training's rows among it); and
//! for a replay, which trains again and again and ends soon, freed memory kept. All
//! are glibc's; elsewhere they do nothing.

/// One malloc arena for the whole daemon, unless the operator set `MALLOC_ARENA_MAX`.
/// glibc gives each thread that allocates an arena of its own (up to eight per core);
/// the daemon's threads (pings, the history writer, HTTP, the blocking pool) allocate
/// little and seldom at once, and each extra arena kept 130-200 kB resident: 0.3 to
/// 0.4 MB of the daemon's RSS (README, "Memory"). Call before any thread starts.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator, which is thread-safe;
        // a refused value leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// For a batch run that trains again and again (replay): keep freed memory for the
/// next allocation instead of handing it back. glibc maps each large buffer (a
/// training's frame, its z-scores, its scores: megabytes each) afresh and trims the
/// heap's free top as it goes, so every training faulted its pages in again, a tenth
/// of a replay's time (README, "Replay"). Buffers up to 32 MiB (glibc's ceiling) now
/// come from the heap, and the heap keeps up to 1 GiB free; the process ends soon.
pub fn keep_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets parameters of the allocator, which is thread-safe; a
    // refused value leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Give the allocator's free pages back to the kernel. A training's rows (tens of MB
/// for a month of history) are freed at once when it ends, but glibc keeps freed heap
/// it cannot trim from the top, so without this the daemon would stay at its training
/// peak until the next one.
fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks the allocator's own free lists under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// [`give_back`] at most once a `period`, from the tick loop. Each tick formats,
/// renders and drops a few hundred small allocations (the sample, /metrics, the
/// history buffers), and now and then something larger (a ticket's report, a
/// forecast): freed, but kept by the allocator in holes it cannot trim from the top.
/// Over an hour that was a megabyte of RSS (README, "Memory"); a trim costs a walk of
/// the free lists, tens of microseconds for the daemon's heap.
pub struct Trim {
    period_ms: i64,
    last_ms: Option<i64>,
}

impl Trim {
    pub fn every(period: std::time::Duration) -> Trim {
        Trim {
            period_ms: period.as_millis() as i64,
            last_ms: None,
        }
    }

    /// Give back if a period has passed since the last time (or this is the first
    /// call); returns whether it did.
    pub fn tick(&mut self, now_ms: i64) -> bool {
        if self.last_ms.is_some_and(|t| now_ms - t < self.period_ms) {
            return false;
        }
        self.last_ms = Some(now_ms);
        give_back();
        true
    }
}

#[cfg(test)]
mod trim_tests {
    use super::Trim;

    #[test]
    fn gives_back_once_a_period() {
        let mut t = Trim::every(std::time::Duration::from_secs(60));
        let trimmed: Vec<i64> = (0..200)
            .map(|s| s * 1000)
            .filter(|&ms| t.tick(ms))
            .collect();
        assert_eq!(trimmed, vec![0, 60_000, 120_000, 180_000]);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
#[allow(clippy::unwrap_used)]
mod tests {
    fn rss_kib() -> i64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn freed_rows_go_back_to_the_kernel() {
        // 48 MB in small pieces, as a training's rows, with one piece in 64 still in
        // use afterwards (what the daemon allocated meanwhile): free() leaves holes
        // it cannot hand back, only pages inside them can go.
        let rows: Vec<Vec<u8>> = (0..48_000).map(|i| vec![i as u8 | 1; 1000]).collect();
        let (pin, rest): (Vec<_>, Vec<_>) =
            rows.into_iter().enumerate().partition(|(i, _)| i % 64 == 0);
        drop(rest);
        let freed = rss_kib();
        super::give_back();
        let given = rss_kib();
        assert!(
            freed - given > 24_000,
            "RSS {freed} kB after free, {given} kB after give_back"
        );
        assert_eq!(pin.len(), 750);
    }

    /// Minor page faults of the calling thread so far.
    fn faults() -> i64 {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes only into the zeroed struct we own.
        unsafe {
            libc::getrusage(libc::RUSAGE_THREAD, u.as_mut_ptr());
            u.assume_init().ru_minflt
        }
    }

    /// Faults taken by allocating, filling and freeing 16 MB (a training's buffer).
    fn faults_of_a_large_buffer() -> i64 {
        let before = faults();
        let v = vec![1u8; 16 << 20];
        std::hint::black_box(&v);
        drop(v);
        faults() - before
    }

    const KEEP_CHILD: &str = "ANOMALYD_TEST_KEEP_FREED_CHILD";

    /// A large buffer allocated again after `keep_freed` reuses the pages of the last
    /// one instead of faulting 16 MB in again; without it, it does not. In a child
    /// process: the allocator's settings are the whole process's.
    #[test]
    fn kept_memory_is_reused_without_faulting_it_in() {
        crate::child_test::run(
            "memory::tests::keep_freed_child",
            &[(KEEP_CHILD, "1")],
            "keep-freed-ok",
        );
    }

    #[test]
    #[ignore = "run by kept_memory_is_reused_without_faulting_it_in"]
    fn keep_freed_child() {
        if std::env::var_os(KEEP_CHILD).is_none() {
            return;
        }
        faults_of_a_large_buffer();
        let default = faults_of_a_large_buffer();
        super::keep_freed();
        faults_of_a_large_buffer();
        let kept = faults_of_a_large_buffer();
        println!("faults: {default} by default, {kept} after keep_freed");
        // 16 MB is 4096 pages (fewer faults with huge pages, still hundreds).
        assert!(default > 500, "the default faults the buffer in: {default}");
        assert!(kept < 50, "kept pages are reused: {kept}");
        println!("keep-freed-ok");
    }
}
