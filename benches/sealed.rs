//! Sealed downloads: memory and speed of serving a private file (a message video, an export) by
//! segments, against unsealing it whole as ID photos, and every file before segmented sealing, are
//! served. See docs/BENCHMARKS.md ("Sealed downloads") for the command and the results.
//!
//! ```sh
//! cargo bench --bench sealed                 # 1, 16 and 50 MiB files, 5 runs each
//! cargo bench --bench sealed -- 100 3        # one size in MiB, runs
//! ```
//!
//! The files live in a temporary `MEDIA_DIR` (the local backend). A counting allocator reports the
//! peak heap the download added over what was allocated before it started; time is the median of
//! the runs. No HTTP: this measures the store and the sealing, which is what changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ecer_gateway::media::{Area, Location, MediaStore};
use ecer_gateway::seal::Sealer;
use futures_util::StreamExt;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns (its result, the time it took, the peak heap it added in bytes).
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed(), PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let sizes: Vec<usize> = match args.first() {
        Some(s) => vec![s.parse().expect("a size in MiB")],
        None => vec![1, 16, 50],
    };
    let runs: usize = args.get(1).map_or(5, |r| r.parse().expect("a number of runs"));
    let dir = tempfile::tempdir().unwrap();
    let key = Sealer::generate_entry("bench").unwrap();
    let sealer = Arc::new(Sealer::from_entries(&[key]).unwrap());
    let store = MediaStore::open(&Location::Local(dir.path().to_path_buf()), sealer, 4096).unwrap();

    println!(
        "| file | seal | whole: time | whole: peak heap | segments: time | segments: peak heap | 1 MiB range: time | range: peak heap |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for size in sizes {
        let plain: Vec<u8> = (0..size * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let id = uuid::Uuid::new_v4();
        let ((), seal, _) = measured(async { store.put_sealed(Area::Private, &id, &plain).await.unwrap() }).await;
        let (mut whole_t, mut seg_t, mut range_t) = (Vec::new(), Vec::new(), Vec::new());
        let (mut whole_peak, mut seg_peak, mut range_peak) = (0, 0, 0);
        for _ in 0..runs {
            let (len, t, peak) = measured(async {
                let file = store.open_sealed(Area::Private, &id, 1).await.unwrap().unwrap();
                file.bytes.len()
            })
            .await;
            assert_eq!(len, plain.len());
            whole_t.push(t);
            whole_peak = whole_peak.max(peak);

            let (len, t, peak) = measured(async {
                let file = store.open_sealed_file(Area::Private, &id, 1).await.unwrap().unwrap();
                let total = file.len();
                let mut body = file.stream(0..=total - 1);
                let mut got = 0;
                while let Some(chunk) = body.next().await {
                    got += chunk.unwrap().len();
                }
                got
            })
            .await;
            assert_eq!(len, plain.len());
            seg_t.push(t);
            seg_peak = seg_peak.max(peak);

            // A 1 MiB range from the middle (the second half of a 1 MiB file).
            let middle = (plain.len() / 2) as u64;
            let span = (1024 * 1024).min(plain.len() as u64 - middle);
            let (part, t, peak) = measured(async {
                let file = store.open_sealed_file(Area::Private, &id, 1).await.unwrap().unwrap();
                let mut body = file.stream(middle..=middle + span - 1);
                let mut part = Vec::new();
                while let Some(chunk) = body.next().await {
                    part.extend_from_slice(&chunk.unwrap());
                }
                part
            })
            .await;
            assert_eq!(part.as_slice(), &plain[middle as usize..(middle + span) as usize]);
            range_t.push(t);
            // Less the range the bench itself collects.
            range_peak = range_peak.max(peak.saturating_sub(span as usize));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {size} MiB | {:.0} ms | {:.0} ms | {:.1} MiB | {:.0} ms | {:.2} MiB | {:.1} ms | {:.2} MiB |",
            ms(seal),
            ms(median(whole_t)),
            mib(whole_peak),
            ms(median(seg_t)),
            mib(seg_peak),
            ms(median(range_t)),
            mib(range_peak),
        );
        store.remove(Area::Private, &id).await.unwrap();
    }
}
