//! Telemetry of one rotation (first token, a failed refresh, the retry's new token): the `entraid.token_request`
//! spans with their fields and, with the `metrics` feature, the metrics sent through the `metrics` facade.
//!
//! A test binary of its own: it installs a process-wide tracing subscriber and metrics recorder.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap fails the test"
)]

#[allow(
    dead_code,
    reason = "the shared support module; this binary uses part of it"
)]
#[path = "manager/support.rs"]
mod support;

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use entraid_manager::telemetry::REQUEST_SPAN;
use entraid_manager::{RefreshJitter, TokenManager, TokenManagerOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use support::{Fail, Fake, Script, Step, next_error, next_token, secs};

/// One span: its name and fields, as `name=value` text.
#[derive(Debug, Clone, Default)]
struct SpanRecord {
    name: &'static str,
    fields: HashMap<String, String>,
}

/// A tracing subscriber that keeps every span with its fields.
#[derive(Clone, Default)]
struct Capture {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<HashMap<u64, SpanRecord>>>,
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
            name: attributes.metadata().name(),
            ..SpanRecord::default()
        };
        attributes.record(&mut Fields(&mut record.fields));
        self.spans.lock().unwrap().insert(id, record);
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    /// The spans named `name`, in creation order.
    fn spans(&self, name: &str) -> Vec<HashMap<String, String>> {
        let spans = self.spans.lock().unwrap();
        let mut ids: Vec<_> = spans.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .map(|id| &spans[id])
            .filter(|s| s.name == name)
            .map(|s| s.fields.clone())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
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

    let script = Script::new(
        [
            Step::token(100).delayed(secs(2)),
            Step::Fail(Fail::Transport),
        ],
        Step::token(100),
    );
    let options = TokenManagerOptions {
        refresh_jitter: RefreshJitter::NONE,
        ..TokenManagerOptions::default()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    // The refresh at 70 % of the lifetime fails, the retry brings the second token.
    next_error(&mut sub).await;
    next_token(&mut sub).await;

    let spans = capture.spans(REQUEST_SPAN);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let field = |i: usize, name: &str| spans[i].get(name).cloned().unwrap_or_default();
    for span in &spans {
        assert_eq!(span["provider"], "\"Fake\"", "{spans:#?}");
    }
    assert_eq!(
        (
            field(0, "attempt"),
            field(0, "outcome"),
            field(0, "generation")
        ),
        ("1".into(), "\"token\"".into(), "1".into())
    );
    // The first answer took 2 s on tokio's (paused) clock.
    assert_eq!(field(0, "duration_ms"), "2000", "{spans:#?}");
    assert_eq!(
        (
            field(1, "attempt"),
            field(1, "outcome"),
            field(1, "retryable")
        ),
        ("1".into(), "\"error\"".into(), "true".into())
    );
    assert_eq!(
        (
            field(2, "attempt"),
            field(2, "outcome"),
            field(2, "generation")
        ),
        ("2".into(), "\"token\"".into(), "2".into())
    );

    #[cfg(feature = "metrics")]
    {
        use entraid_manager::telemetry::{
            REFRESH_FAILURES, REFRESHES, REQUEST_DURATION, SECONDS_UNTIL_EXPIRY,
        };
        use metrics_util::debugging::DebugValue;

        let metrics: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key().clone();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (key.name().to_owned(), labels, value)
            })
            .collect();
        let find = |name: &str, labels: &[&str]| {
            metrics
                .iter()
                .find(|(n, l, _)| n == name && labels.iter().all(|x| l.iter().any(|y| y == x)))
                .map(|(_, _, v)| v)
                .unwrap_or_else(|| panic!("no {name} {labels:?} in {metrics:#?}"))
        };
        assert_eq!(find(REFRESHES, &["provider=Fake"]), &DebugValue::Counter(2));
        assert_eq!(
            find(REFRESH_FAILURES, &["provider=Fake", "retryable=true"]),
            &DebugValue::Counter(1)
        );
        let DebugValue::Gauge(left) = find(SECONDS_UNTIL_EXPIRY, &["provider=Fake"]) else {
            panic!("a gauge");
        };
        assert!((99.0..=100.0).contains(&left.0), "{left}");
        let DebugValue::Histogram(tokens) = find(REQUEST_DURATION, &["outcome=token"]) else {
            panic!("a histogram");
        };
        assert_eq!(tokens.len(), 2, "{tokens:?}");
        assert!(tokens.iter().any(|d| d.0 == 2.0), "{tokens:?}");
        let DebugValue::Histogram(errors) = find(REQUEST_DURATION, &["outcome=error"]) else {
            panic!("a histogram");
        };
        assert_eq!(errors.len(), 1);

        // The gauge follows the clock between tokens: refreshed at each clock check (every 10 s). A snapshot
        // resets what it reads, so each check below sees only what was set after the previous one.
        tokio::time::sleep(secs(11)).await;
        let gauge = |snapshot: metrics_util::debugging::Snapshot| {
            snapshot
                .into_vec()
                .into_iter()
                .find(|(k, ..)| k.key().name() == SECONDS_UNTIL_EXPIRY)
                .map(|(.., v)| match v {
                    DebugValue::Gauge(v) => v.0,
                    other => panic!("{other:?}"),
                })
        };
        let left = gauge(snapshotter.snapshot()).unwrap();
        assert!((88.0..=90.0).contains(&left), "{left}");
        // Shut down: no token held, the gauge says 0 (it would say about 79 s after the next clock check).
        tokio::time::sleep(secs(11)).await;
        manager.shutdown();
        tokio::task::yield_now().await;
        tokio::time::sleep(secs(1)).await;
        let after = gauge(snapshotter.snapshot());
        assert_eq!(after, Some(0.0));
    }
}
