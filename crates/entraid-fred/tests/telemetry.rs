//! Telemetry of one rotation through the fred adapter: the `entraid.fanout` span and its `entraid.reauth` child,
//! the manager's `entraid.token_request` span, and, with the `metrics` feature, the adapter's and the manager's
//! metrics for that rotation.
//!
//! A test binary of its own: it installs a process-wide tracing subscriber and metrics recorder.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{MintingProvider, builder, settle, start_auth, wait_rotations};
use entraid_fred::telemetry::{FANOUT_SPAN, REAUTH_SPAN};
use entraid_manager::telemetry::REQUEST_SPAN;
use entraid_testkit::redis::RedisHarness;
use fred::prelude::*;
use fred::types::RespVersion;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span: its name, explicit parent and fields (as `Debug` text).
#[derive(Debug, Clone)]
struct SpanRecord {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: HashMap<String, String>,
}

/// A tracing subscriber that keeps every span.
#[derive(Clone, Default)]
struct Capture {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        write!(text, "{value:?}").unwrap();
        self.0.insert(field.name().to_owned(), text);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut record = SpanRecord {
            id,
            name: attributes.metadata().name(),
            parent: attributes.parent().map(Id::into_u64),
            fields: HashMap::new(),
        };
        attributes.record(&mut Fields(&mut record.fields));
        self.spans.lock().unwrap().push(record);
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some(span) = spans.iter_mut().find(|s| s.id == id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn named(&self, name: &str) -> Vec<SpanRecord> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

fn field<'a>(span: &'a SpanRecord, name: &str) -> &'a str {
    span.fields.get(name).map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rotation_emits_its_spans_and_metrics() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    #[cfg(feature = "metrics")]
    let snapshotter = {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        snapshotter
    };

    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("telemetry", Duration::from_secs(4));
    let (manager, auth) = start_auth(&provider);
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);
    settle(&auth).await;
    // The first token's fan-out may have finished before the attach (with no client): wait for the attached
    // client's own first AUTH too, so that what follows is the rotation's alone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while auth.stats().reauths_sent < 1 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", auth.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = manager.status().generation;
    assert_eq!(before, 1);
    #[cfg(feature = "metrics")]
    let first = metrics::Snapshot::take(&snapshotter);

    // One rotation.
    wait_rotations(&manager, 1).await;
    settle(&auth).await;
    let stats = auth.stats();

    let fanouts = capture.named(FANOUT_SPAN);
    let fanout = fanouts
        .iter()
        .find(|s| field(s, "generation") == "2")
        .unwrap_or_else(|| panic!("no fan-out span for generation 2: {fanouts:#?}"));
    assert_eq!(field(fanout, "clients"), "1", "{fanout:#?}");
    let duration: u64 = field(fanout, "duration_ms")
        .parse()
        .expect("duration recorded");
    assert_eq!(
        Some(Duration::from_millis(duration)),
        stats
            .last_fanout_latency
            .map(|d| Duration::from_millis(u64::try_from(d.as_millis()).unwrap())),
        "{fanout:#?} {stats:?}"
    );
    let reauths = capture.named(REAUTH_SPAN);
    let reauth = reauths
        .iter()
        .find(|s| s.parent == Some(fanout.id))
        .unwrap_or_else(|| panic!("no re-auth span under the fan-out: {reauths:#?}"));
    assert_eq!(field(reauth, "generation"), "2");
    assert_eq!(field(reauth, "target"), format!("client {}", client.id()));
    assert_eq!(field(reauth, "attempts"), "1");
    assert_eq!(field(reauth, "reconnected"), "false");
    let requests = capture.named(REQUEST_SPAN);
    assert!(
        requests
            .iter()
            .any(|s| field(s, "generation") == "2" && field(s, "outcome") == "\"token\""),
        "{requests:#?}"
    );

    #[cfg(feature = "metrics")]
    {
        use entraid_fred::telemetry::{ATTACHED, FANOUT_DURATION, FANOUTS, REAUTHS, ROTATIONS};
        use entraid_manager::telemetry::REFRESHES;

        assert_eq!(first.gauge(ATTACHED), Some(1.0), "{first:#?}");
        // What the rotation added (a snapshot resets what it reads).
        let rotation = metrics::Snapshot::take(&snapshotter);
        assert_eq!(rotation.counter(ROTATIONS), 1, "{rotation:#?}");
        assert_eq!(rotation.counter(FANOUTS), 1, "{rotation:#?}");
        assert_eq!(rotation.counter(REAUTHS), 1, "{rotation:#?}");
        assert_eq!(rotation.counter(REFRESHES), 1, "{rotation:#?}");
        let latencies = rotation.histogram(FANOUT_DURATION);
        assert_eq!(latencies.len(), 1, "{rotation:#?}");
        let latency = stats.last_fanout_latency.unwrap().as_secs_f64();
        assert!(
            (latencies[0] - latency).abs() < 1e-9,
            "{latencies:?} {latency}"
        );
    }
    client.quit().await.unwrap();
}

#[cfg(feature = "metrics")]
mod metrics {
    use metrics_util::debugging::{DebugValue, Snapshotter};

    /// A snapshot of the recorder: (name, value) pairs, labels ignored.
    #[derive(Debug)]
    pub(crate) struct Snapshot(Vec<(String, DebugValue)>);

    impl Snapshot {
        pub(crate) fn take(snapshotter: &Snapshotter) -> Self {
            Self(
                snapshotter
                    .snapshot()
                    .into_vec()
                    .into_iter()
                    .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
                    .collect(),
            )
        }

        pub(crate) fn counter(&self, name: &str) -> u64 {
            self.0
                .iter()
                .filter_map(|(n, v)| match v {
                    DebugValue::Counter(c) if n == name => Some(*c),
                    _ => None,
                })
                .sum()
        }

        pub(crate) fn gauge(&self, name: &str) -> Option<f64> {
            self.0.iter().find_map(|(n, v)| match v {
                DebugValue::Gauge(g) if n == name => Some(g.0),
                _ => None,
            })
        }

        pub(crate) fn histogram(&self, name: &str) -> Vec<f64> {
            self.0
                .iter()
                .filter_map(|(n, v)| match v {
                    DebugValue::Histogram(h) if n == name => Some(h.iter().map(|x| x.0)),
                    _ => None,
                })
                .flatten()
                .collect()
        }
    }
}
