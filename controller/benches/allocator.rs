//! Allocator benchmark (`cargo bench -p ferrolb-controller`).
//!
//! Two worlds: 100 IPv4 pools that together span a /12, and one IPv6 /64. For 1k, 10k and
//! 100k Services it prints, before criterion runs:
//!
//! - the mean time per allocation while filling from empty to N, and per release of all N;
//! - bytes of memory per held address: the growth of the process's resident set while
//!   allocating N Services, measured in a fresh child process per world so nothing freed by
//!   an earlier measurement is reused (this counts malloc's own overhead too; unsafe code is
//!   forbidden in this crate, so no counting global allocator);
//! - the time to `load` N existing assignments into a fresh allocator.
//!
//! Criterion then measures one allocation and one release with N addresses held (steady
//! state: each iteration advances time past the reuse delay, so the address freed by the
//! previous iteration is free again and N stays N).
//!
//! No documentation range is a /12, so the IPv4 world uses 240.0.0.0/12 (reserved, never
//! routed); nothing here leaves memory.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use ferrolb_api::addr::{AddressRanges, Interval};
use ferrolb_controller::allocator::{
    Allocator, DEFAULT_REUSE_DELAY, Family, Labels, PoolName, PoolSpec, Protocol, ServiceKey,
    ServicePort, ServiceRequest,
};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const MEMORY_ENV: &str = "FERROLB_BENCH_MEMORY";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum World {
    V4Pools,
    V6Slash64,
}

impl World {
    fn name(self) -> &'static str {
        match self {
            World::V4Pools => "ipv4-100-pools-/12",
            World::V6Slash64 => "ipv6-one-/64",
        }
    }

    fn pools(self) -> Vec<PoolSpec> {
        let pool = |name: String, ranges: AddressRanges| PoolSpec {
            name: PoolName(name),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        };
        match self {
            World::V4Pools => {
                let base = u32::from(Ipv4Addr::new(240, 0, 0, 0));
                let total = 1u32 << 20;
                let per = total / 100;
                (0..100u32)
                    .map(|i| {
                        let start = base + i * per;
                        let end = if i == 99 {
                            base + total - 1
                        } else {
                            start + per - 1
                        };
                        let ranges = AddressRanges {
                            v4: [Interval { start, end }].into_iter().collect(),
                            v6: Default::default(),
                        };
                        pool(format!("pool-{i:03}"), ranges)
                    })
                    .collect()
            }
            World::V6Slash64 => {
                let ranges = AddressRanges::parse(["2001:db8:1::/64"]).expect("a valid CIDR");
                vec![pool("v6".into(), ranges)]
            }
        }
    }

    fn request(self, i: usize, namespace_labels: &Arc<Labels>) -> ServiceRequest {
        let mut r = ServiceRequest::new(ServiceKey::new(
            format!("ns-{}", i % 100),
            format!("svc-{i}"),
        ));
        r.created = i as i64;
        r.namespace_labels = namespace_labels.clone();
        r.ports = vec![ServicePort {
            port: 80,
            protocol: Protocol::Tcp,
        }];
        r.ip_families = vec![match self {
            World::V4Pools => Family::V4,
            World::V6Slash64 => Family::V6,
        }];
        r
    }

    fn allocator(self, t: Instant) -> Allocator {
        let mut a = Allocator::new(DEFAULT_REUSE_DELAY);
        for p in self.pools() {
            a.set_pool(p, t);
        }
        a
    }

    /// An allocator holding `n` addresses.
    fn filled(self, n: usize, t: Instant) -> Allocator {
        let labels = Arc::new(Labels::new());
        let mut a = self.allocator(t);
        for i in 0..n {
            if a.assign(self.request(i, &labels), t).is_err() {
                panic!("the {} world has room for {n} services", self.name());
            }
        }
        a
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Runs in a child process: resident-set growth per held address while allocating `n`.
fn measure_memory(world: World, n: usize) {
    let t = Instant::now();
    let labels = Arc::new(Labels::new());
    let mut a = world.allocator(t);
    let before = rss_bytes();
    for i in 0..n {
        let _ = a.assign(world.request(i, &labels), t);
    }
    let after = rss_bytes();
    black_box(&a);
    println!("{}", (after.saturating_sub(before)) as f64 / n as f64);
}

fn memory_in_child(world: World, n: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .env(MEMORY_ENV, format!("{world:?}:{n}"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn print_figures() {
    println!("== ferrolb allocator figures ==");
    for world in [World::V4Pools, World::V6Slash64] {
        for n in SIZES {
            let t = Instant::now();
            let labels = Arc::new(Labels::new());
            let requests: Vec<ServiceRequest> = (0..n).map(|i| world.request(i, &labels)).collect();
            let mut a = world.allocator(t);
            let start = Instant::now();
            for r in requests {
                black_box(a.assign(r, t).is_ok());
            }
            let fill = start.elapsed();
            let keys: Vec<ServiceKey> = (0..n).map(|i| world.request(i, &labels).key).collect();
            let start = Instant::now();
            for k in &keys {
                black_box(a.release(k, t));
            }
            let release = start.elapsed();
            println!(
                "{:<20} n={:>6}  fill: {:>7.3} µs/alloc  release all: {:>7.3} µs/release",
                world.name(),
                n,
                fill.as_secs_f64() * 1e6 / n as f64,
                release.as_secs_f64() * 1e6 / n as f64,
            );
        }
        for n in SIZES {
            match memory_in_child(world, n) {
                Some(b) => println!(
                    "{:<20} n={:>6}  memory: {:>6.1} bytes per held address (RSS growth)",
                    world.name(),
                    n,
                    b
                ),
                None => println!(
                    "{:<20} n={:>6}  memory: could not be measured",
                    world.name(),
                    n
                ),
            }
        }
        let t = Instant::now();
        let n = 100_000;
        let source = world.filled(n, t);
        let existing = source.export();
        let mut fresh = world.allocator(t);
        let start = Instant::now();
        let report = fresh.load(existing);
        let load = start.elapsed();
        assert!(
            report.rejected.is_empty(),
            "every exported address loads back"
        );
        assert_eq!(fresh.service_count(), n);
        println!(
            "{:<20} n={:>6}  load: {:>7.1} ms",
            world.name(),
            n,
            load.as_secs_f64() * 1e3
        );
    }
    println!("== criterion: one operation with N addresses held ==");
}

fn bench(c: &mut Criterion) {
    let labels = Arc::new(Labels::new());
    let step = DEFAULT_REUSE_DELAY + Duration::from_secs(1);
    let mut assign = c.benchmark_group("assign_with_n_held");
    assign
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for world in [World::V4Pools, World::V6Slash64] {
        for n in SIZES {
            let mut t = Instant::now();
            let mut a = world.filled(n, t);
            let mut next = n;
            assign.bench_with_input(BenchmarkId::new(world.name(), n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        t += step;
                        let r = world.request(next, &labels);
                        let key = r.key.clone();
                        next += 1;
                        let start = Instant::now();
                        let got = a.assign(r, t);
                        total += start.elapsed();
                        assert!(black_box(got).is_ok());
                        a.release(&key, t);
                    }
                    total
                })
            });
        }
    }
    assign.finish();
    let mut release = c.benchmark_group("release_with_n_held");
    release
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for world in [World::V4Pools, World::V6Slash64] {
        for n in SIZES {
            let mut t = Instant::now();
            let mut a = world.filled(n, t);
            let mut next = n;
            release.bench_with_input(BenchmarkId::new(world.name(), n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        t += step;
                        let r = world.request(next, &labels);
                        let key = r.key.clone();
                        next += 1;
                        assert!(a.assign(r, t).is_ok());
                        let start = Instant::now();
                        black_box(a.release(&key, t));
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
    }
    release.finish();
    let mut load = c.benchmark_group("load");
    load.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for world in [World::V4Pools, World::V6Slash64] {
        let t = Instant::now();
        let n = 100_000;
        let existing = world.filled(n, t).export();
        load.bench_with_input(BenchmarkId::new(world.name(), n), &n, |b, _| {
            b.iter_batched(
                || (world.allocator(t), existing.clone()),
                // Returned, so dropping 100k Services is not timed.
                |(mut fresh, existing)| {
                    black_box(fresh.load(existing));
                    fresh
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    load.finish();
}

fn main() {
    if let Ok(spec) = std::env::var(MEMORY_ENV) {
        let (world, n) = spec.split_once(':').unwrap_or(("", ""));
        let world = if world == "V6Slash64" {
            World::V6Slash64
        } else {
            World::V4Pools
        };
        measure_memory(world, n.parse().unwrap_or(100_000));
        return;
    }
    // `cargo test --benches` runs this binary without `--bench`: only check it works.
    let benching = std::env::args().any(|a| a == "--bench");
    if benching {
        print_figures();
    }
    let mut c = Criterion::default().configure_from_args();
    if benching {
        bench(&mut c);
    }
    c.final_summary();
}
