//! What a test steers while the emulator runs: its clock, the user flows' answers, the managed-identity hosts,
//! fault scripts ([`FaultScript`]), the request log and the token counters.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::{
    AuthorizePolicy, DeviceCodePolicy, Emulator, EmulatorError, Endpoint, Fault, Inner,
    RequestRecord,
};

impl Emulator {
    // ----- clock -----

    /// The emulator's clock, unix seconds (wall clock at start + tokio time elapsed + skew).
    pub fn now_unix(&self) -> i64 {
        let skew = self.inner.lock().skew_secs;
        self.inner.now_with(skew)
    }

    /// Skews the emulator's clock by `secs` (positive: ahead of the client). Affects `iat`/`nbf`/`exp` of
    /// minted tokens, `expires_on` of managed-identity answers and the checks of assertions.
    pub fn set_clock_skew(&self, secs: i64) {
        self.inner.lock().skew_secs = secs;
    }

    // ----- user flows -----

    /// Sets how device codes created from now on behave.
    pub fn set_device_code_policy(&self, policy: DeviceCodePolicy) {
        self.inner.lock().device_policy = policy;
    }

    /// The user codes of device codes not yet approved, declined or redeemed.
    pub fn pending_device_codes(&self) -> Vec<String> {
        let st = self.inner.lock();
        st.device_codes
            .values()
            .filter(|d| d.approved_by.is_none() && !d.declined && !d.redeemed)
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// Approves a device code (by its user code) as the user with this user name: the next poll gets tokens.
    pub fn approve_device_code(
        &self,
        user_code: &str,
        username: &str,
    ) -> Result<(), EmulatorError> {
        let mut st = self.inner.lock();
        let st = &mut *st;
        let record = st
            .device_codes
            .values_mut()
            .find(|d| d.user_code == user_code && !d.redeemed)
            .ok_or_else(|| EmulatorError::UnknownDeviceCode(user_code.to_owned()))?;
        if !st
            .users
            .contains_key(&(record.tenant.clone(), username.to_lowercase()))
        {
            return Err(EmulatorError::UnknownPrincipal(username.to_owned()));
        }
        record.approved_by = Some(username.to_lowercase());
        Ok(())
    }

    /// Declines a device code: the next poll gets `authorization_declined`.
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), EmulatorError> {
        let mut st = self.inner.lock();
        let record = st
            .device_codes
            .values_mut()
            .find(|d| d.user_code == user_code && !d.redeemed)
            .ok_or_else(|| EmulatorError::UnknownDeviceCode(user_code.to_owned()))?;
        record.declined = true;
        Ok(())
    }

    /// Sets how `/authorize` behaves.
    pub fn set_authorize_policy(&self, policy: AuthorizePolicy) {
        self.inner.lock().authorize_policy = policy;
    }

    /// Revokes every refresh token of the user with this `oid` (the refresh grant then answers AADSTS50173).
    pub fn revoke_refresh_tokens(&self, oid: &str) {
        let mut st = self.inner.lock();
        let st = &mut *st;
        for rt in st.refresh_tokens.values_mut() {
            if st
                .users
                .get(&rt.user_key)
                .is_some_and(|u| u.principal.oid == oid)
            {
                rt.revoked = true;
            }
        }
    }

    // ----- managed identity hosts -----

    /// Sets the folder where the Arc endpoint writes its challenge `.key` files.
    pub fn set_arc_key_dir(&self, dir: impl Into<PathBuf>) {
        self.inner.lock().arc_key_dir = Some(dir.into());
    }

    /// Whether the Arc endpoint honours user-assigned selectors. Default `false`, as real Arc: it answers for the
    /// system-assigned identity whatever the request asks (clients must check the echoed `client_id`).
    pub fn set_arc_honours_selectors(&self, honour: bool) {
        self.inner.lock().arc_honours_selectors = honour;
    }

    // ----- faults, log, counters -----

    /// The fault script of an endpoint: push faults; each request to the endpoint consumes one, then the endpoint
    /// behaves normally.
    ///
    /// ```
    /// # use entraid_testkit::emulator::{Emulator, Endpoint, Fault};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let emu = Emulator::start().await.unwrap();
    /// emu.faults(Endpoint::Imds)
    ///     .push(Fault::Status(410))
    ///     .push(Fault::Status(429).retry_after(2));
    /// assert_eq!(emu.faults(Endpoint::Imds).remaining(), 2);
    /// # }
    /// ```
    pub fn faults(&self, endpoint: Endpoint) -> FaultScript<'_> {
        FaultScript {
            inner: &self.inner,
            endpoint,
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().log.clone()
    }

    /// The requests that reached one endpoint, oldest first.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RequestRecord> {
        self.inner
            .lock()
            .log
            .iter()
            .filter(|r| r.endpoint == Some(endpoint))
            .cloned()
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.inner.lock().log.clear();
    }

    /// How many access tokens were minted for the principal with this `oid`.
    pub fn tokens_issued(&self, oid: &str) -> u64 {
        self.inner
            .lock()
            .tokens_issued
            .get(oid)
            .copied()
            .unwrap_or(0)
    }

    /// How many access tokens were minted in all.
    pub fn total_tokens_issued(&self) -> u64 {
        self.inner.lock().tokens_issued.values().sum()
    }
}

/// A handle on one endpoint's fault script; see [`Emulator::faults`].
#[derive(Clone, Copy)]
pub struct FaultScript<'a> {
    inner: &'a Inner,
    endpoint: Endpoint,
}

impl std::fmt::Debug for FaultScript<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultScript")
            .field("endpoint", &self.endpoint)
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl FaultScript<'_> {
    /// Appends a fault.
    pub fn push(&self, fault: Fault) -> &Self {
        self.inner
            .lock()
            .faults
            .entry(self.endpoint)
            .or_default()
            .push_back(fault);
        self
    }

    /// Appends a fault `times` times.
    pub fn push_n(&self, fault: Fault, times: usize) -> &Self {
        for _ in 0..times {
            self.push(fault.clone());
        }
        self
    }

    /// Removes the faults not yet consumed.
    pub fn clear(&self) -> &Self {
        self.inner.lock().faults.remove(&self.endpoint);
        self
    }

    /// How many faults are left.
    pub fn remaining(&self) -> usize {
        self.inner
            .lock()
            .faults
            .get(&self.endpoint)
            .map_or(0, VecDeque::len)
    }
}
