//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one writes. Every write of the Lease is a replace guarded by the `resourceVersion` last
//! read: of two replicas racing for it, one gets a conflict and stays standby.
//!
//! ```text
//!            ┌──────────── standby ◄──────────────────────────────┐
//!            │  every retry period (or at the observed expiry):   │
//!            │  get Lease → free/expired? → replace (guarded)     │
//!            ▼                                                    │ lost: renew failed until
//!          leader: term token ──► reconciler (writes only while   │ the renew deadline, or
//!            │                     the token is not cancelled)    │ another holder seen
//!            │  every retry period: renew (guarded) ──────────────┘
//!            └─ shutdown: cancel term, wait for it, release the Lease
//! ```
//!
//! Expiry is judged on the local clock, from when this replica first saw the current
//! holder's latest renewal, never from the timestamps in the Lease (clocks differ). A standby
//! watches the Lease as well as looking every retry period, so it sees a renewal within
//! milliseconds and takes over about a lease duration after the leader's last one. A leader
//! stops writing when it has not renewed for the renew deadline, which is shorter than the
//! lease duration, so it has stopped before any other replica may take over.

use std::future::Future;
use std::time::{Duration, Instant};

use ferrolb_runtime::CancellationToken;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::metrics::Metrics;

/// The Lease and its timing.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's `holderIdentity`, unique per process.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it stops writing.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks.
    pub retry_period: Duration,
}

/// The timing flags contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error(
        "the renew deadline ({renew:?}) must be shorter than the lease duration ({lease:?}): a leader must stop writing before another may take over"
    )]
    RenewNotBelowLease { renew: Duration, lease: Duration },
    #[error("the retry period ({retry:?}) must be shorter than the renew deadline ({renew:?})")]
    RetryNotBelowRenew { retry: Duration, renew: Duration },
    #[error("the lease duration must be at least 1s, not {0:?}")]
    LeaseTooShort(Duration),
}

impl LeaseConfig {
    pub fn check(&self) -> Result<(), TimingError> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(TimingError::LeaseTooShort(self.lease_duration));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::RenewNotBelowLease {
                renew: self.renew_deadline,
                lease: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(TimingError::RetryNotBelowRenew {
                retry: self.retry_period,
                renew: self.renew_deadline,
            });
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// What a replica should do about the Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// There is no Lease: create one naming this replica.
    Create,
    /// The Lease names this replica already: renew it.
    Renew,
    /// The Lease is free or expired: take it over.
    TakeOver,
    /// Another replica holds it; look again after this long.
    Wait(Duration),
}

/// The parts of a Lease whose change proves its holder alive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    duration: Option<i32>,
    transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time,
            duration: spec.lease_duration_seconds,
            transitions: spec.lease_transitions,
        }
    }
}

/// Decides from Leases read over time, judging expiry on the local clock.
#[derive(Debug, Clone)]
pub struct Observer {
    identity: String,
    default_duration: Duration,
    retry_period: Duration,
    last: Option<(Record, Instant)>,
}

impl Observer {
    pub fn new(config: &LeaseConfig) -> Self {
        Observer {
            identity: config.identity.clone(),
            default_duration: config.lease_duration,
            retry_period: config.retry_period,
            last: None,
        }
    }

    /// The next step after reading `lease` (`None`: it does not exist) at `now`.
    pub fn observe(&mut self, lease: Option<&Lease>, now: Instant) -> Step {
        let Some(lease) = lease else {
            self.last = None;
            return Step::Create;
        };
        let record = Record::of(lease);
        let Some(holder) = record.holder.clone() else {
            self.last = Some((record, now));
            return Step::TakeOver;
        };
        if holder == self.identity {
            self.last = Some((record, now));
            return Step::Renew;
        }
        let since = match &self.last {
            Some((seen, at)) if *seen == record => *at,
            _ => now,
        };
        let duration = record
            .duration
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.default_duration, Duration::from_secs);
        self.last = Some((record, since));
        let expires = since + duration;
        if now >= expires {
            Step::TakeOver
        } else {
            Step::Wait((expires - now).min(self.retry_period))
        }
    }
}

/// The Lease naming `identity` as holder, renewed at `now`. `previous` is the Lease read
/// (its resourceVersion guards the write); a new holder counts a transition.
pub fn claimed(config: &LeaseConfig, previous: Option<&Lease>, now: Timestamp) -> Lease {
    let prev = previous.and_then(|l| l.spec.clone()).unwrap_or_default();
    let ours = prev.holder_identity.as_deref() == Some(config.identity.as_str());
    let transitions = prev.lease_transitions.unwrap_or(0);
    Lease {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            namespace: Some(config.namespace.clone()),
            resource_version: previous.and_then(|l| l.resource_version()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(config.identity.clone()),
            lease_duration_seconds: Some(config.duration_seconds()),
            acquire_time: if ours {
                prev.acquire_time
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..LeaseSpec::default()
        }),
    }
}

/// The Lease given up on shutdown: no holder, so a standby takes over at its next look.
pub fn released(previous: &Lease, now: Timestamp) -> Lease {
    let mut lease = previous.clone();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Why leader election gave up.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid leader election timing")]
    Timing(#[source] TimingError),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Runs leader election until `shutdown`. Each time this replica becomes leader, `lead` is
/// started with a token that is cancelled the moment the Lease is lost (or on shutdown);
/// `lead` must stop writing at once when it is, and return soon after.
pub async fn run<F, Fut>(
    client: Client,
    config: LeaseConfig,
    metrics: Metrics,
    on_first_look: impl FnOnce() + Send,
    shutdown: CancellationToken,
    mut lead: F,
) -> Result<(), LeaderError>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    config.check().map_err(LeaderError::Timing)?;
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observer = Observer::new(&config);
    let mut on_first_look = Some(on_first_look);
    metrics.set_leader(false);
    loop {
        let Some(lease) =
            acquire(&api, &config, &mut observer, &mut on_first_look, &shutdown).await
        else {
            return Ok(());
        };
        tracing::info!(
            lease = %format!("{}/{}", config.namespace, config.name),
            identity = %config.identity,
            "became leader"
        );
        metrics.set_leader(true);
        let term = shutdown.child_token();
        let mut task = tokio::spawn(lead(term.clone()));
        let mut lease = lease;
        // On shutdown the term ends with it, and the reconciler may well finish before
        // `keep` sees the cancellation: either way the Lease is still held, to be given up.
        let (held, finished) = tokio::select! {
            held = keep(&api, &config, &mut lease, &term) => (held, false),
            _ = &mut task => {
                if !term.is_cancelled() {
                    tracing::error!("the reconciler stopped while leading; giving up the Lease");
                }
                (true, true)
            }
        };
        term.cancel();
        metrics.set_leader(false);
        if !finished
            && tokio::time::timeout(Duration::from_secs(10), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        if held {
            release(&api, &config, &lease).await;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        tracing::warn!(identity = %config.identity, "lost the Lease; standing by");
    }
}

/// Waits until this replica holds the Lease; `None` on shutdown.
async fn acquire(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observer: &mut Observer,
    on_first_look: &mut Option<impl FnOnce()>,
    shutdown: &CancellationToken,
) -> Option<Lease> {
    let mut announced_wait = false;
    // A standby also watches the Lease (`list`/`watch` on its name only), to see each
    // renewal as it happens; the looks every retry period stay, should the watch fail.
    let fields = format!("metadata.name={}", config.name);
    let mut changes = watcher::watcher(api.clone(), watcher::Config::default().fields(&fields))
        .default_backoff()
        .boxed();
    let mut watching = true;
    loop {
        let mut pause = config.retry_period;
        match api.get_opt(&config.name).await {
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.name, "reading the Lease failed")
            }
            Ok(current) => {
                if let Some(f) = on_first_look.take() {
                    f();
                }
                let step = observer.observe(current.as_ref(), Instant::now());
                let now = Timestamp::now();
                let written = match step {
                    Step::Create => Some(
                        api.create(&PostParams::default(), &claimed(config, None, now))
                            .await,
                    ),
                    Step::Renew | Step::TakeOver => Some(
                        api.replace(
                            &config.name,
                            &PostParams::default(),
                            &claimed(config, current.as_ref(), now),
                        )
                        .await,
                    ),
                    Step::Wait(d) => {
                        if !announced_wait {
                            let holder = current
                                .as_ref()
                                .and_then(|l| l.spec.as_ref())
                                .and_then(|s| s.holder_identity.clone())
                                .unwrap_or_default();
                            tracing::info!(%holder, "standing by: another replica leads");
                            announced_wait = true;
                        }
                        pause = d;
                        None
                    }
                };
                match written {
                    Some(Ok(lease)) => return Some(lease),
                    // Another replica wrote first: read again at once.
                    Some(Err(e)) if is_conflict(&e) => pause = Duration::ZERO,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "writing the Lease failed")
                    }
                    None => {}
                }
            }
        }
        // Until the pause is over, renewals seen on the watch restart the expiry the moment
        // they are made, so that a crashed leader is replaced a lease duration after its last
        // renewal, not up to a retry period later (when a look would first have seen it).
        let mut wake = tokio::time::Instant::now() + pause;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep_until(wake) => break,
                event = changes.next(), if watching => match event {
                    Some(Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l))) => {
                        match observer.observe(Some(&l), Instant::now()) {
                            Step::Wait(d) => wake = tokio::time::Instant::now() + d,
                            // Free, ours or expired: read and write at once.
                            _ => break,
                        }
                    }
                    Some(Ok(watcher::Event::Delete(_))) => break,
                    Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "watching the Lease failed; retrying")
                    }
                    None => watching = false,
                },
            }
        }
    }
}

/// Renews the Lease every retry period while `term` lives, keeping `lease` the last one
/// written. Returns true when `term` was cancelled (the Lease is still held: release it),
/// false when the Lease was lost.
async fn keep(
    api: &Api<Lease>,
    config: &LeaseConfig,
    lease: &mut Lease,
    term: &CancellationToken,
) -> bool {
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = term.cancelled() => return true,
            _ = tokio::time::sleep(config.retry_period) => {}
        }
        let deadline = renewed + config.renew_deadline;
        let params = PostParams::default();
        let renewal = claimed(config, Some(lease), Timestamp::now());
        let attempt = api.replace(&config.name, &params, &renewal);
        let result = tokio::select! {
            _ = term.cancelled() => return true,
            r = tokio::time::timeout_at(deadline.into(), attempt) => r,
        };
        match result {
            Ok(Ok(l)) => {
                *lease = l;
                renewed = Instant::now();
            }
            Ok(Err(e)) if is_conflict(&e) => match api.get_opt(&config.name).await {
                Ok(Some(current))
                    if current
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_deref())
                        == Some(config.identity.as_str()) =>
                {
                    // Our own earlier renewal landed after its timeout: carry on from it.
                    *lease = current;
                }
                Ok(current) => {
                    let holder = current
                        .and_then(|l| l.spec)
                        .and_then(|s| s.holder_identity)
                        .unwrap_or_default();
                    tracing::warn!(%holder, "the Lease was taken over");
                    return false;
                }
                Err(e) => tracing::warn!(error = %e, "reading the Lease failed"),
            },
            Ok(Err(e)) => tracing::warn!(error = %e, "renewing the Lease failed"),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                renew_deadline = ?config.renew_deadline,
                "no renewal within the renew deadline: stopping writes"
            );
            return false;
        }
    }
}

/// Gives the Lease up. A renewal cut off by the shutdown may have landed after all, leaving
/// `lease` one resourceVersion behind: on a conflict, release from a fresh read if this
/// replica still holds it.
async fn release(api: &Api<Lease>, config: &LeaseConfig, lease: &Lease) {
    let give_up = async {
        let params = PostParams::default();
        match api
            .replace(&config.name, &params, &released(lease, Timestamp::now()))
            .await
        {
            Err(e) if is_conflict(&e) => {}
            other => return other.map(|_| true),
        }
        match api.get_opt(&config.name).await? {
            Some(current)
                if current
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.as_deref())
                    == Some(config.identity.as_str()) =>
            {
                api.replace(&config.name, &params, &released(&current, Timestamp::now()))
                    .await
                    .map(|_| true)
            }
            // Someone else holds it already: nothing to give up.
            _ => Ok(false),
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), give_up).await {
        Ok(Ok(true)) => tracing::info!("released the Lease"),
        Ok(Ok(false)) => tracing::info!("the Lease was no longer ours to release"),
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the Lease failed"),
        Err(_) => tracing::warn!("releasing the Lease timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "kube-system".into(),
            name: "ferrolb-controller".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn lease(holder: Option<&str>, renewed: &str, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("ferrolb-controller".into()),
                namespace: Some("kube-system".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn no_lease_is_created() {
        let mut o = Observer::new(&config("a"));
        assert_eq!(o.observe(None, Instant::now()), Step::Create);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut o = Observer::new(&config("a"));
        let l = lease(None, "2025-01-01T00:00:00Z", "1");
        assert_eq!(o.observe(Some(&l), Instant::now()), Step::TakeOver);
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let mut o = Observer::new(&config("a"));
        let l = lease(Some("a"), "2025-01-01T00:00:00Z", "1");
        assert_eq!(o.observe(Some(&l), Instant::now()), Step::Renew);
    }

    #[test]
    fn a_held_lease_expires_a_lease_duration_after_its_last_renewal_was_seen() {
        let mut o = Observer::new(&config("a"));
        let t = Instant::now();
        let l = lease(Some("b"), "2025-01-01T00:00:00Z", "1");
        // Seen first now: its own timestamp (long ago) does not count.
        assert_eq!(o.observe(Some(&l), t), Step::Wait(Duration::from_secs(2)));
        assert_eq!(
            o.observe(Some(&l), t + Duration::from_secs(14)),
            Step::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            o.observe(Some(&l), t + Duration::from_secs(15)),
            Step::TakeOver
        );
    }

    #[test]
    fn a_renewal_seen_restarts_the_expiry() {
        let mut o = Observer::new(&config("a"));
        let t = Instant::now();
        o.observe(Some(&lease(Some("b"), "2025-01-01T00:00:00Z", "1")), t);
        let renewed = lease(Some("b"), "2025-01-01T00:00:10Z", "2");
        let at = t + Duration::from_secs(10);
        assert!(matches!(o.observe(Some(&renewed), at), Step::Wait(_)));
        assert!(matches!(
            o.observe(Some(&renewed), at + Duration::from_secs(14)),
            Step::Wait(_)
        ));
        assert_eq!(
            o.observe(Some(&renewed), at + Duration::from_secs(15)),
            Step::TakeOver
        );
    }

    #[test]
    fn claiming_another_holders_lease_counts_a_transition_and_keeps_the_resource_version() {
        let prev = lease(Some("b"), "2025-01-01T00:00:00Z", "42");
        let now: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let l = claimed(&config("a"), Some(&prev), now);
        assert_eq!(l.metadata.resource_version.as_deref(), Some("42"));
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn renewing_keeps_acquire_time_and_transitions() {
        let mut prev = lease(Some("a"), "2025-01-01T00:00:00Z", "7");
        let acquired: Timestamp = "2024-12-31T00:00:00Z".parse().unwrap();
        prev.spec.as_mut().unwrap().acquire_time = Some(MicroTime(acquired));
        let l = claimed(
            &config("a"),
            Some(&prev),
            "2025-01-01T00:00:02Z".parse().unwrap(),
        );
        let spec = l.spec.unwrap();
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(spec.acquire_time, Some(MicroTime(acquired)));
    }

    #[test]
    fn released_lease_has_no_holder() {
        let prev = lease(Some("a"), "2025-01-01T00:00:00Z", "7");
        let l = released(&prev, "2025-01-01T00:00:05Z".parse().unwrap());
        assert_eq!(l.spec.as_ref().unwrap().holder_identity, None);
        assert_eq!(l.metadata.resource_version.as_deref(), Some("7"));
        let mut o = Observer::new(&config("b"));
        assert_eq!(o.observe(Some(&l), Instant::now()), Step::TakeOver);
    }

    #[test]
    fn timing_must_let_a_leader_stop_before_another_takes_over() {
        let mut c = config("a");
        assert_eq!(c.check(), Ok(()));
        c.renew_deadline = Duration::from_secs(15);
        assert!(matches!(
            c.check(),
            Err(TimingError::RenewNotBelowLease { .. })
        ));
        c.renew_deadline = Duration::from_secs(10);
        c.retry_period = Duration::from_secs(10);
        assert!(matches!(
            c.check(),
            Err(TimingError::RetryNotBelowRenew { .. })
        ));
    }
}
