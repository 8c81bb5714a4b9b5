//! What a person does in the emulated user flows: [`DeviceCodePolicy`] and [`AuthorizePolicy`].

use std::time::Duration;

/// What the device-code flow answers to polling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCodeOutcome {
    /// `authorization_pending` until the test calls [`Emulator::approve_device_code`](crate::emulator::Emulator::approve_device_code) or
    /// [`Emulator::decline_device_code`](crate::emulator::Emulator::decline_device_code) (or the code expires).
    Manual,
    /// `authorization_pending` for the first `polls - 1` polls (after any `slow_down` ones), then tokens for this
    /// user (by user name).
    ApproveAfterPolls {
        /// The poll that gets the tokens (1 = the first).
        polls: u32,
        /// The user name of the user who signs in.
        username: String,
    },
    /// `authorization_pending`, then `authorization_declined` at this poll.
    DeclineAfterPolls {
        /// The poll that gets `authorization_declined`.
        polls: u32,
    },
}

/// How device codes behave. Defaults: `expires_in` 900 s, `interval` 5 s, no `slow_down`,
/// [`DeviceCodeOutcome::Manual`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePolicy {
    /// Lifetime of a device code; polling after it answers `expired_token` (AADSTS70019).
    pub expires_in: Duration,
    /// The `interval` the devicecode response advertises.
    pub interval: Duration,
    /// How many first polls answer `slow_down`.
    pub slow_down_polls: u32,
    /// What the polls lead to.
    pub outcome: DeviceCodeOutcome,
}

impl Default for DeviceCodePolicy {
    fn default() -> Self {
        Self {
            expires_in: Duration::from_secs(900),
            interval: Duration::from_secs(5),
            slow_down_polls: 0,
            outcome: DeviceCodeOutcome::Manual,
        }
    }
}

impl DeviceCodePolicy {
    /// Approves as `username` at poll number `polls`.
    pub fn approve_after(polls: u32, username: impl Into<String>) -> Self {
        Self {
            outcome: DeviceCodeOutcome::ApproveAfterPolls {
                polls,
                username: username.into(),
            },
            ..Self::default()
        }
    }
}

/// How `/authorize` behaves. Default: approves at once as the user named by `login_hint`, else the first user
/// registered in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizePolicy {
    /// Sign in as this user (by user name) whatever `login_hint` says.
    pub username: Option<String>,
    /// Wait this long (tokio clock) before redirecting.
    pub delay: Duration,
    /// Refuse: redirect with `error` and `error_description` instead of a code.
    pub refuse: Option<(String, String)>,
}

impl AuthorizePolicy {
    /// Approves at once as the user named by `login_hint`, else the first registered user.
    pub fn approve() -> Self {
        Self::default()
    }

    /// Approves as this user.
    pub fn approve_as(username: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            ..Self::default()
        }
    }

    /// Refuses with `access_denied` (AADSTS65004, the user declined consent).
    pub fn refuse() -> Self {
        Self {
            refuse: Some((
                "access_denied".into(),
                "AADSTS65004: User declined to consent to access the app.".into(),
            )),
            ..Self::default()
        }
    }

    /// Waits `delay` before answering.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}
