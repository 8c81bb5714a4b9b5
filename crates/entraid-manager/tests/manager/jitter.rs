//! Refresh jitter: refreshes move earlier within a window, reproducibly for a seed, never past the lower bound or
//! the expiry; and a fleet of managers started together spreads its refreshes instead of refreshing in lock step.

use std::time::Duration;

use entraid_manager::{RefreshJitter, TokenManager, TokenManagerOptions};

use crate::support::{Fake, Script, Step, TestWall, exact, next_token, secs};

/// The time of the first refresh of a manager over one-hour tokens.
async fn first_refresh(options: TokenManagerOptions) -> Duration {
    let script = Script::new([], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    next_token(&mut sub).await;
    let times = script.call_times();
    assert_eq!(times.len(), 2, "{times:?}");
    times[1]
}

fn seeded(seed: u64) -> TokenManagerOptions {
    TokenManagerOptions {
        rng_seed: Some(seed),
        ..TokenManagerOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn refreshes_move_earlier_within_the_window_reproducibly() {
    // Default jitter: 5 % of an hour = 3 minutes before the ratio point (2520 s).
    let mut times = Vec::new();
    for seed in 0..8 {
        let at = first_refresh(seeded(seed)).await;
        assert!(at >= secs(2340) && at <= secs(2520), "seed {seed}: {at:?}");
        times.push(at);
    }
    let mut distinct = times.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 7, "{times:?}");
    // The same seed, the same schedule.
    assert_eq!(first_refresh(seeded(3)).await, times[3]);
    // Disabled: exactly the ratio point.
    assert_eq!(first_refresh(exact()).await, secs(2520));
}

#[tokio::test(start_paused = true)]
async fn jitter_never_moves_a_refresh_past_the_lower_bound_or_the_expiry() {
    // The lower bound (20 minutes before expiry: 2400 s) decides; jitter only moves it earlier.
    for seed in 0..8 {
        let options = TokenManagerOptions {
            lower_refresh_bound: secs(20 * 60),
            ..seeded(seed)
        };
        let at = first_refresh(options).await;
        assert!(at >= secs(2220) && at <= secs(2400), "seed {seed}: {at:?}");
    }
    // Ratio 1.0 (refresh at expiry): the jittered refresh comes before the expiry, within the window.
    for seed in 0..8 {
        let options = TokenManagerOptions {
            expiration_refresh_ratio: 1.0,
            refresh_jitter: RefreshJitter {
                share: 0.5,
                max: secs(600),
            },
            ..seeded(seed)
        };
        let at = first_refresh(options).await;
        assert!(at >= secs(3000) && at <= secs(3600), "seed {seed}: {at:?}");
    }
}

/// 200 managers started at the same instant over the same token lifetime (a fleet deployed together). Without
/// jitter all 200 refresh in the same millisecond (and re-authenticate every connection together); with the
/// default jitter the refreshes spread over the window, and no manager ever hands out an expired token.
#[tokio::test(start_paused = true)]
async fn a_fleet_spreads_its_refreshes_and_never_serves_an_expired_token() {
    const FLEET: usize = 200;
    const LIFETIME: u64 = 1200;
    // The default window: 5 % of 1200 s = 60 s before the ratio point (840 s).
    let (window_start, ratio_point) = (secs(780), secs(840));
    let wall = TestWall::new();
    let mut fleet = Vec::new();
    for seed in 0..FLEET {
        let script = Script::on_wall([], Step::token(LIFETIME), &wall);
        let options = TokenManagerOptions {
            rng_seed: Some(seed as u64),
            wall_clock: wall.clock(),
            ..TokenManagerOptions::default()
        };
        let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
        fleet.push((manager, script));
    }
    for (manager, _) in &fleet {
        manager.ready().await.unwrap();
    }

    // Three lifetimes, sampling every manager every second: each always serves a token valid on both clocks.
    let end = tokio::time::Instant::now() + secs(3 * LIFETIME);
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(secs(1)).await;
        let now = tokio::time::Instant::now();
        for (i, (manager, _)) in fleet.iter().enumerate() {
            let token = manager
                .current()
                .unwrap_or_else(|| panic!("manager {i}: no token"));
            assert!(
                token.expires_on() > wall.now(),
                "manager {i}: expired token"
            );
            let status = manager.status();
            assert!(
                status.token_expires_at.is_some_and(|at| at > now),
                "manager {i}"
            );
        }
    }

    let first: Vec<f64> = fleet
        .iter()
        .map(|(_, script)| script.call_times()[1].as_secs_f64())
        .collect();
    for (i, at) in first.iter().enumerate() {
        assert!(
            *at >= window_start.as_secs_f64() && *at <= ratio_point.as_secs_f64(),
            "manager {i} refreshed at {at}"
        );
    }
    // Spread over the window: range, standard deviation (uniform over 60 s: 17.3 s) and no 10 s bucket holding
    // more than twice its share.
    let n = first.len() as f64;
    let mean = first.iter().sum::<f64>() / n;
    let sd = (first.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n).sqrt();
    let (min, max) = first
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
    assert!(max - min > 50.0, "range {min}..{max}");
    assert!(sd > 12.0 && sd < 23.0, "standard deviation {sd}");
    let mut buckets = [0usize; 6];
    for t in &first {
        let b = ((t - window_start.as_secs_f64()) / 10.0).floor() as usize;
        buckets[b.min(5)] += 1;
    }
    for (b, count) in buckets.iter().enumerate() {
        assert!(
            *count >= FLEET / 12 && *count <= FLEET / 3,
            "bucket {b}: {count} of {FLEET} ({buckets:?})"
        );
    }
    // One request per rotation, every rotation before its expiry: no manager missed one.
    for (i, (manager, script)) in fleet.iter().enumerate() {
        let times = script.call_times();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= window_start && gap <= ratio_point + Duration::from_millis(2),
                "manager {i}: {times:?}"
            );
        }
        let status = manager.status();
        assert_eq!(status.refreshes as usize, times.len(), "manager {i}");
        assert_eq!(status.attempts as usize, times.len(), "manager {i}");
        assert!(times.len() >= 5, "manager {i}: {times:?}");
    }
    drop(fleet);
}
