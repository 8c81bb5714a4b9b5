//! The IMDS retry policy ([`ImdsRetryPolicy`]), as azidentity sets it: statuses 404, 410, 429, 500-508, 510 and
//! 511 (and timeouts or dropped connections) are retried up to 6 times, waiting `(2^retry - 1) * 2 s` times a
//! jitter in `[0.8, 1.3)`, at most 25 s; a `Retry-After` replaces the computed delay. Delays run on tokio's clock.

use std::future::Future;
use std::time::Duration;

use entraid_core::Error;

use crate::http::{Response, is_connect_error, random_bytes};

/// How IMDS requests are retried. Default: 6 retries, 2 s base delay, 25 s cap.
///
/// ```
/// use std::time::Duration;
/// use entraid_identity::ImdsRetryPolicy;
///
/// let policy = ImdsRetryPolicy::default();
/// assert_eq!(policy.max_retries, 6);
/// assert_eq!(policy.delay(1, 1.0), Duration::from_secs(2));
/// assert_eq!(policy.delay(3, 1.0), Duration::from_secs(14));
/// assert_eq!(policy.delay(5, 1.0), Duration::from_secs(25)); // capped
/// assert!(ImdsRetryPolicy::is_retryable_status(410));
/// assert!(!ImdsRetryPolicy::is_retryable_status(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImdsRetryPolicy {
    /// How many times a failed request is retried. Default 6.
    pub max_retries: u32,
    /// The base of the exponential delay. Default 2 s.
    pub base_delay: Duration,
    /// The longest delay; a `Retry-After` longer than this stops the retries. Default 25 s.
    pub max_delay: Duration,
}

impl Default for ImdsRetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 6,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(25),
        }
    }
}

impl ImdsRetryPolicy {
    /// A policy with the given retry count and delays.
    pub fn new(max_retries: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_retries,
            base_delay,
            max_delay,
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Whether IMDS answering with this status is worth another try: 404, 410, 429, 500-508, 510, 511.
    pub fn is_retryable_status(status: u16) -> bool {
        matches!(status, 404 | 410 | 429 | 500..=508 | 510 | 511)
    }

    /// The delay before retry number `retry` (1-based) with the given jitter factor:
    /// `(2^retry - 1) * base_delay * jitter`, at most `max_delay`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2f64.powi(retry.min(30) as i32) - 1.0;
        let seconds = self.base_delay.as_secs_f64() * factor * jitter;
        if !seconds.is_finite() || seconds >= self.max_delay.as_secs_f64() {
            return self.max_delay;
        }
        Duration::from_secs_f64(seconds.max(0.0))
    }
}

/// A jitter factor in `[0.8, 1.3)`.
fn jitter() -> f64 {
    let bytes = random_bytes::<4>().unwrap_or([0x80, 0, 0, 0]);
    0.8 + 0.5 * f64::from(u32::from_be_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// Sends with `send` until it succeeds, fails for good, or the policy's retries are spent.
pub(crate) async fn send_with_retries<F, Fut>(
    policy: &ImdsRetryPolicy,
    mut send: F,
) -> Result<Response, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response, Error>>,
{
    let mut retry = 0;
    loop {
        let result = send().await;
        let (retry_after, why) = match &result {
            Ok(response) if ImdsRetryPolicy::is_retryable_status(response.status) => {
                (response.retry_after(), format!("HTTP {}", response.status))
            }
            Err(e @ (Error::Timeout { .. } | Error::Transport { .. })) if !is_connect_error(e) => {
                (None, "no answer".to_owned())
            }
            _ => return result,
        };
        if retry >= policy.max_retries {
            return result;
        }
        retry += 1;
        let delay = match retry_after {
            Some(after) if after > policy.max_delay => {
                tracing::debug!(
                    retry_after_ms = after.as_millis() as u64,
                    "IMDS asked to wait longer than the retry cap; not retrying"
                );
                return result;
            }
            Some(after) => after,
            None => policy.delay(retry, jitter()),
        };
        tracing::debug!(
            retry,
            why = %why,
            delay_ms = delay.as_millis() as u64,
            "retrying the managed identity request"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use reqwest::header::{HeaderMap, HeaderValue};
    use tokio::time::Instant;

    use super::*;

    fn response(status: u16, retry_after: Option<&'static str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert("retry-after", HeaderValue::from_static(value));
        }
        Response {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Runs the retry loop over scripted answers; returns the result and the time of each attempt.
    async fn run(
        policy: ImdsRetryPolicy,
        script: Vec<Result<Response, Error>>,
    ) -> (Result<Response, Error>, Vec<Duration>) {
        let start = Instant::now();
        let script = Arc::new(Mutex::new(script.into_iter()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let result = send_with_retries(&policy, || {
            let script = script.clone();
            let times = times.clone();
            async move {
                times.lock().unwrap().push(start.elapsed());
                script.lock().unwrap().next().expect("script ran out")
            }
        })
        .await;
        let times = times.lock().unwrap().clone();
        (result, times)
    }

    #[test]
    fn statuses() {
        for s in [404, 410, 429, 500, 503, 508, 510, 511] {
            assert!(ImdsRetryPolicy::is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 408, 409, 509, 512] {
            assert!(!ImdsRetryPolicy::is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn delays_and_jitter() {
        let p = ImdsRetryPolicy::default();
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(6));
        assert!((p.delay(2, 0.8).as_secs_f64() - 4.8).abs() < 1e-6);
        assert!((p.delay(3, 1.3).as_secs_f64() - 18.2).abs() < 1e-6);
        assert_eq!(p.delay(4, 1.0), Duration::from_secs(25));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(25));
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.8..1.3).contains(&j), "{j}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_410_on_the_exponential_schedule_then_succeeds() {
        let (result, times) = run(
            ImdsRetryPolicy::default(),
            vec![
                Ok(response(410, None)),
                Ok(response(410, None)),
                Ok(response(503, None)),
                Ok(response(200, None)),
            ],
        )
        .await;
        assert_eq!(result.unwrap().status, 200);
        assert_eq!(times.len(), 4);
        // Gaps: 2 s, 6 s, 14 s nominal, each times a jitter in [0.8, 1.3).
        for (i, nominal) in [2.0, 6.0, 14.0].iter().enumerate() {
            let gap = (times[i + 1] - times[i]).as_secs_f64();
            assert!(
                gap >= nominal * 0.8 - 0.01 && gap < nominal * 1.3 + 0.01,
                "retry {}: {gap}",
                i + 1
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_six_retries_with_capped_delays() {
        let (result, times) = run(
            ImdsRetryPolicy::default(),
            (0..7).map(|_| Ok(response(500, None))).collect(),
        )
        .await;
        assert_eq!(result.unwrap().status, 500);
        assert_eq!(times.len(), 7);
        let last_gap = times[6] - times[5];
        assert_eq!(last_gap, Duration::from_secs(25));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_overrides_and_a_long_one_stops() {
        let (result, times) = run(
            ImdsRetryPolicy::default(),
            vec![Ok(response(429, Some("3"))), Ok(response(200, None))],
        )
        .await;
        assert_eq!(result.unwrap().status, 200);
        assert_eq!(times[1] - times[0], Duration::from_secs(3));

        let (result, times) = run(
            ImdsRetryPolicy::default(),
            vec![Ok(response(429, Some("60")))],
        )
        .await;
        assert_eq!(result.unwrap().status, 429);
        assert_eq!(times.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn final_answers_are_not_retried() {
        for status in [200, 400, 401, 403] {
            let (result, times) =
                run(ImdsRetryPolicy::default(), vec![Ok(response(status, None))]).await;
            assert_eq!(result.unwrap().status, status);
            assert_eq!(times.len(), 1);
        }
        let (result, times) = run(
            ImdsRetryPolicy::default(),
            vec![Err(Error::configuration("bad"))],
        )
        .await;
        assert!(result.is_err());
        assert_eq!(times.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_and_resets_are_retried_and_none_means_none() {
        let (result, times) = run(
            ImdsRetryPolicy::default(),
            vec![
                Err(Error::timeout("ManagedIdentity", Duration::from_secs(1))),
                Err(Error::transport("ManagedIdentity", "reset", None)),
                Ok(response(200, None)),
            ],
        )
        .await;
        assert_eq!(result.unwrap().status, 200);
        assert_eq!(times.len(), 3);
        let (result, times) = run(ImdsRetryPolicy::none(), vec![Ok(response(410, None))]).await;
        assert_eq!(result.unwrap().status, 410);
        assert_eq!(times.len(), 1);
    }
}
