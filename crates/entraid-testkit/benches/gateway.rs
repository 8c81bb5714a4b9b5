//! The gateway's cost: PING and SET+GET round trips through the gateway versus straight to redis-server, one
//! command at a time and pipelined, with the raw RESP client.
//!
//! Run: `cargo bench -p entraid-testkit --bench gateway`

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entraid_testkit::redis::{RedisHarness, RespClient, RespValue, token};

/// Commands per pipelined batch.
const BATCH: usize = 100;

struct Setup {
    runtime: tokio::runtime::Runtime,
    harness: RedisHarness,
}

impl Setup {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let harness = runtime
            .block_on(RedisHarness::standalone())
            .expect("redis-server behind a gateway (is redis-server installed?)");
        Self { runtime, harness }
    }

    async fn client(&self, through_gateway: bool) -> RespClient {
        if through_gateway {
            let mut client = self
                .harness
                .connect()
                .await
                .expect("connect to the gateway");
            let reply = client
                .command(&["AUTH", "bench", &token("bench", Duration::from_secs(3600))])
                .await
                .expect("AUTH");
            assert_eq!(reply, RespValue::Simple("OK".into()));
            client
        } else {
            self.harness.servers()[0]
                .connect()
                .await
                .expect("connect to redis-server")
        }
    }
}

fn route_name(through_gateway: bool) -> &'static str {
    if through_gateway { "gateway" } else { "direct" }
}

fn bench(c: &mut Criterion) {
    let setup = Setup::new();
    let ping = [["PING"]];
    let set_get = [
        ["SET", "bench-key", "bench-value"],
        ["GET", "bench-key", ""],
    ];

    let mut group = c.benchmark_group("ping");
    group.throughput(Throughput::Elements(1));
    for through_gateway in [false, true] {
        group.bench_function(
            format!("{}/unpipelined", route_name(through_gateway)),
            |b| {
                b.iter_custom(|iters| {
                    setup.runtime.block_on(async {
                        let mut client = setup.client(through_gateway).await;
                        let start = Instant::now();
                        for _ in 0..iters {
                            client.command(&ping[0]).await.expect("PING");
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.throughput(Throughput::Elements(BATCH as u64));
    for through_gateway in [false, true] {
        let batch: Vec<[&str; 1]> = ping.iter().cycle().take(BATCH).copied().collect();
        group.bench_function(
            format!("{}/pipelined_{BATCH}", route_name(through_gateway)),
            |b| {
                b.iter_custom(|iters| {
                    setup.runtime.block_on(async {
                        let mut client = setup.client(through_gateway).await;
                        let start = Instant::now();
                        for _ in 0..iters {
                            client.pipeline(&batch).await.expect("PING pipeline");
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("set_get");
    // One element = one SET plus one GET.
    group.throughput(Throughput::Elements(1));
    let set = &set_get[0][..];
    let get = &set_get[1][..2];
    for through_gateway in [false, true] {
        group.bench_function(
            format!("{}/unpipelined", route_name(through_gateway)),
            |b| {
                b.iter_custom(|iters| {
                    setup.runtime.block_on(async {
                        let mut client = setup.client(through_gateway).await;
                        let start = Instant::now();
                        for _ in 0..iters {
                            client.command(set).await.expect("SET");
                            client.command(get).await.expect("GET");
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.throughput(Throughput::Elements((BATCH / 2) as u64));
    for through_gateway in [false, true] {
        let batch: Vec<&[&str]> = (0..BATCH / 2).flat_map(|_| [set, get]).collect();
        group.bench_function(
            format!("{}/pipelined_{}", route_name(through_gateway), BATCH / 2),
            |b| {
                b.iter_custom(|iters| {
                    setup.runtime.block_on(async {
                        let mut client = setup.client(through_gateway).await;
                        let start = Instant::now();
                        for _ in 0..iters {
                            client.pipeline(&batch).await.expect("SET/GET pipeline");
                        }
                        start.elapsed()
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
