//! One term of leadership: watches, the start-up barrier, the Service reconciler, the pool
//! status writer and the Event sender. Everything stops the moment the term's token is
//! cancelled (the Lease was lost, or shutdown); a new term starts from scratch.
//!
//! ```text
//!  watch Services ──reflect──► store ◄────────────────────────┐ (read latest)
//!  watch IPAddressPools ─reflect─► store ◄──────────┐          │
//!  watch Namespaces (metadata) ─┐                   │          │
//!         │                     │                   │          │
//!         └──────────► term loop: barrier (all three listed → apply pools,
//!                      load every Service), then events → Engine ──► queue
//!                                                    │              │ keys
//!                                                    ▼              ▼
//!                                  pool status writer     kube::runtime applier
//!                                  (≤ 1/s per pool)       reconcile(svc): Engine → Plan
//!                                                           → status patch, annotation patch
//!                                                           → Event sender (bounded queue)
//! ```
//!
//! The Engine sits behind one lock and is never held across an await. Every API write waits
//! for the rate limiter and is raced against the term's token, so a replica that lost the
//! Lease stops writing at once. Status patches carry the `resourceVersion` the decision was
//! made from: a stale decision fails with a conflict instead of overwriting a newer one (a
//! newer watch event then reconciles again).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_api::IPAddressPool;
use ferrolb_api::annotations::ServiceAnnotation;
use ferrolb_api::conditions::IP_ALLOCATED;
use ferrolb_runtime::CancellationToken;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ApplierConfig, applier};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::allocator::{PoolName, ServiceKey};
use crate::convert::{self, ClassFilter};
use crate::engine::{Engine, Outcome};
use crate::metrics::Metrics;
use crate::pool_status;
use crate::ratelimit::RateLimiter;
use crate::status::EventSpec;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ferrolb-controller";
/// `reportingController` of ferrolb's Events.
pub const REPORTING_CONTROLLER: &str = "ferrolb.io/controller";

/// How a term runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub class: Option<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// How long a freed address is avoided.
    pub reuse_delay: Duration,
    /// Minimum time between two status writes of one pool.
    pub pool_status_interval: Duration,
    /// `reportingInstance` of Events.
    pub identity: String,
    /// Events waiting to be sent beyond this are dropped (and counted).
    pub event_queue: usize,
}

/// Why a reconcile failed; the applier retries it.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("patching the status of service {key}")]
    PatchStatus {
        key: ServiceKey,
        #[source]
        source: kube::Error,
    },
    #[error("patching the annotations of service {key}")]
    PatchAnnotations {
        key: ServiceKey,
        #[source]
        source: kube::Error,
    },
}

/// A write that did not happen.
enum WriteError {
    /// The term ended first.
    Stopped,
    Api(kube::Error),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

struct EventJob {
    regarding: ObjectReference,
    spec: EventSpec,
}

/// What reconciles share.
struct Ctx {
    engine: Mutex<Engine>,
    services: Store<Service>,
    client: Client,
    limiter: Arc<RateLimiter>,
    term: CancellationToken,
    metrics: Metrics,
    /// When the latest unhandled event of each Service was seen (for the latency metric).
    seen: Mutex<HashMap<ServiceKey, Instant>>,
    /// Versions of Services this controller's own writes have replaced.
    superseded: Mutex<Superseded>,
    queue: futures::channel::mpsc::UnboundedSender<ObjectRef<Service>>,
    pools_dirty: Notify,
    events: mpsc::Sender<EventJob>,
}

fn object_ref(key: &ServiceKey) -> ObjectRef<Service> {
    ObjectRef::new(&key.name).within(&key.namespace)
}

impl Ctx {
    fn enqueue(&self, keys: impl IntoIterator<Item = ServiceKey>) {
        for k in keys {
            // Fails only when the applier is gone, i.e. the term is over.
            let _ = self.queue.unbounded_send(object_ref(&k));
        }
    }

    /// Sends one API request: waits for the rate limiter, gives up when the term ends.
    async fn write<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        tokio::select! {
            biased;
            _ = self.term.cancelled() => return Err(WriteError::Stopped),
            _ = self.limiter.acquire() => {}
        }
        tokio::select! {
            biased;
            _ = self.term.cancelled() => Err(WriteError::Stopped),
            r = request => r.map_err(WriteError::Api),
        }
    }

    /// Counts a transition written and sends its Events.
    fn finish(
        &self,
        key: &ServiceKey,
        svc: &Service,
        outcome: Option<Outcome>,
        events: Vec<EventSpec>,
    ) {
        if let Some(outcome) = outcome {
            self.metrics.allocation(outcome);
            let result = match outcome {
                Outcome::Condition(reason) => reason.as_str(),
                Outcome::Released => "Released",
            };
            tracing::info!(service = %key, result, "status written");
        }
        self.emit(svc, events);
    }

    fn emit(&self, svc: &Service, events: Vec<EventSpec>) {
        for spec in events {
            let job = EventJob {
                regarding: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Service".into()),
                    name: svc.metadata.name.clone(),
                    namespace: svc.metadata.namespace.clone(),
                    uid: svc.metadata.uid.clone(),
                    ..ObjectReference::default()
                },
                spec,
            };
            if self.events.try_send(job).is_err() {
                self.metrics.event_dropped();
            }
        }
    }
}

/// Keeps of a Service only what the controller reads, so that 10,000 of them fit in a few
/// megabytes: no managed fields, only ferrolb's and MetalLB's annotations, and for Services
/// that are not LoadBalancers nothing but what says whether ferrolb must clean up after them.
fn strip_service(svc: &mut Service) {
    svc.metadata.managed_fields = None;
    if let Some(a) = svc.metadata.annotations.as_mut() {
        a.retain(|k, _| {
            ServiceAnnotation::ALL.iter().any(|ann| {
                ferrolb_api::annotations::Spelling::ALL
                    .iter()
                    .any(|s| ann.key(*s) == k)
            })
        });
        if a.is_empty() {
            svc.metadata.annotations = None;
        }
    }
    if !convert::is_load_balancer(svc) {
        svc.metadata.labels = None;
        if let Some(spec) = svc.spec.as_mut() {
            let type_ = spec.type_.take();
            let class = spec.load_balancer_class.take();
            *spec = Default::default();
            spec.type_ = type_;
            spec.load_balancer_class = class;
        }
    } else if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.session_affinity = None;
        spec.session_affinity_config = None;
        spec.internal_traffic_policy = None;
        spec.health_check_node_port = None;
        for p in spec.ports.iter_mut().flatten() {
            p.node_port = None;
            p.target_port = None;
            p.app_protocol = None;
        }
    }
    if let Some(status) = svc.status.as_mut()
        && let Some(conditions) = status.conditions.as_mut()
    {
        conditions.retain(|c| c.type_ == IP_ALLOCATED);
    }
}

fn strip_pool(pool: &mut IPAddressPool) {
    pool.metadata.managed_fields = None;
    if let Some(a) = pool.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Runs one term of leadership until `term` is cancelled.
pub async fn run_term(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    limiter: Arc<RateLimiter>,
    term: CancellationToken,
) {
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (pool_store, pool_writer) = reflector::store::<IPAddressPool>();
    let svc_events = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(strip_service)
    .default_backoff()
    .reflect(svc_writer)
    .boxed();
    let pool_events = watcher::watcher(
        Api::<IPAddressPool>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(strip_pool)
    .default_backoff()
    .reflect(pool_writer)
    .boxed();
    let ns_events = watcher::watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed();

    let (queue_tx, queue_rx) = futures::channel::mpsc::unbounded::<ObjectRef<Service>>();
    let (events_tx, events_rx) = mpsc::channel(settings.event_queue.max(1));
    let ctx = Arc::new(Ctx {
        engine: Mutex::new(Engine::new(
            ClassFilter::new(settings.class.clone()),
            settings.reuse_delay,
        )),
        services: svc_store.clone(),
        client: client.clone(),
        limiter,
        term: term.clone(),
        metrics,
        seen: Mutex::new(HashMap::new()),
        superseded: Mutex::new(Superseded::default()),
        queue: queue_tx,
        pools_dirty: Notify::new(),
        events: events_tx,
    });

    let mut tasks = JoinSet::new();
    tasks.spawn(run_events(
        ctx.clone(),
        events_rx,
        settings.identity.clone(),
    ));
    tasks.spawn(run_pool_status(
        ctx.clone(),
        pool_store.clone(),
        settings.pool_status_interval,
    ));
    let queue = queue_rx
        .map(Ok::<_, Infallible>)
        .take_until(term.clone().cancelled_owned());
    let reconciles = applier(
        |svc, ctx| Box::pin(reconcile(svc, ctx)),
        error_policy,
        ctx.clone(),
        svc_store.clone(),
        queue,
        ApplierConfig::default().concurrency(settings.concurrency),
    );
    tasks.spawn(async move {
        reconciles
            .for_each(|result| async move {
                match result {
                    Ok(_) => {}
                    Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                        tracing::debug!(object = %obj, "gone before its reconcile")
                    }
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "reconcile failed; retrying")
                    }
                }
            })
            .await
    });

    let mut driver = Driver {
        ctx: ctx.clone(),
        svc_store,
        pool_store,
        synced: [false; 3],
        loaded: false,
    };
    driver.run(svc_events, pool_events, ns_events, &term).await;
    tasks.shutdown().await;
    tracing::info!("stopped writing");
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The term's event loop.
struct Driver {
    ctx: Arc<Ctx>,
    svc_store: Store<Service>,
    pool_store: Store<IPAddressPool>,
    /// Services, pools, namespaces: listed once.
    synced: [bool; 3],
    loaded: bool,
}

type Events<K> = futures::stream::BoxStream<'static, Result<WatchEvent<K>, watcher::Error>>;

impl Driver {
    async fn run(
        &mut self,
        mut services: Events<Service>,
        mut pools: Events<IPAddressPool>,
        mut namespaces: Events<PartialObjectMeta<Namespace>>,
        term: &CancellationToken,
    ) {
        loop {
            tokio::select! {
                biased;
                _ = term.cancelled() => return,
                Some(e) = namespaces.next() => self.on_namespace(e),
                Some(e) = pools.next() => self.on_pool(e),
                Some(e) = services.next() => self.on_service(e),
                else => return,
            }
            if !self.loaded && self.synced.iter().all(|s| *s) {
                self.barrier();
            }
        }
    }

    /// Every Service, pool and namespace has been listed: take the Services' current
    /// addresses before allocating anything.
    fn barrier(&mut self) {
        let started = Instant::now();
        let now = Instant::now();
        let keys = {
            let mut engine = lock(&self.ctx.engine);
            for pool in self.pool_store.state() {
                engine.apply_pool(&pool, now);
            }
            let services = self.svc_store.state();
            engine.load(services.iter().map(AsRef::as_ref))
        };
        self.loaded = true;
        tracing::info!(
            services = keys.len(),
            pools = self.pool_store.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "loaded the addresses Services carry; allocating"
        );
        self.ctx.enqueue(keys);
        self.ctx.pools_dirty.notify_one();
    }

    fn on_namespace(
        &mut self,
        event: Result<WatchEvent<PartialObjectMeta<Namespace>>, watcher::Error>,
    ) {
        let keys = match event {
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "watching namespaces");
                return;
            }
            Ok(WatchEvent::Apply(ns) | WatchEvent::InitApply(ns)) => {
                lock(&self.ctx.engine).set_namespace(&ns.name_any(), ns.metadata.labels.as_ref())
            }
            Ok(WatchEvent::Delete(ns)) => {
                lock(&self.ctx.engine).remove_namespace(&ns.name_any());
                return;
            }
            Ok(WatchEvent::Init) => return,
            Ok(WatchEvent::InitDone) => {
                self.synced[2] = true;
                return;
            }
        };
        if self.loaded {
            self.ctx.enqueue(keys);
        }
    }

    fn on_pool(&mut self, event: Result<WatchEvent<IPAddressPool>, watcher::Error>) {
        let now = Instant::now();
        let keys = match event {
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "watching IPAddressPools");
                return;
            }
            Ok(WatchEvent::Init | WatchEvent::InitApply(_)) => return,
            Ok(WatchEvent::InitDone) => {
                self.synced[1] = true;
                if !self.loaded {
                    return;
                }
                // A re-list: pools may have changed or gone while the watch was down.
                let mut engine = lock(&self.ctx.engine);
                let mut keys = Vec::new();
                for pool in self.pool_store.state() {
                    keys.extend(engine.apply_pool(&pool, now));
                }
                for name in engine.pool_names() {
                    if self.pool_store.get(&ObjectRef::new(&name.0)).is_none() {
                        keys.extend(engine.delete_pool(&name, now));
                        self.ctx.metrics.remove_pool(&name);
                    }
                }
                keys
            }
            Ok(_) if !self.loaded => return,
            Ok(WatchEvent::Apply(pool)) => lock(&self.ctx.engine).apply_pool(&pool, now),
            Ok(WatchEvent::Delete(pool)) => {
                let name = PoolName(pool.name_any());
                self.ctx.metrics.remove_pool(&name);
                lock(&self.ctx.engine).delete_pool(&name, now)
            }
        };
        if !keys.is_empty() {
            tracing::info!(
                services = keys.len(),
                "pools changed; reconciling the Services they affect"
            );
        }
        self.ctx.enqueue(keys);
        self.ctx.pools_dirty.notify_one();
    }

    fn on_service(&mut self, event: Result<WatchEvent<Service>, watcher::Error>) {
        let now = Instant::now();
        match event {
            Err(e) => tracing::warn!(error = %error_chain(&e), "watching Services"),
            Ok(WatchEvent::Init) => {}
            Ok(WatchEvent::InitDone) => {
                self.synced[0] = true;
                if !self.loaded {
                    return;
                }
                // A re-list: Services deleted while the watch was down sent no Delete.
                let missing = lock(&self.ctx.engine)
                    .served_missing(|k| self.svc_store.get(&object_ref(k)).is_some());
                for key in missing {
                    self.forget(&key, now);
                }
                self.ctx.pools_dirty.notify_one();
            }
            Ok(WatchEvent::Apply(svc) | WatchEvent::InitApply(svc)) => {
                if !self.loaded {
                    return;
                }
                let key = convert::service_key(&svc);
                lock(&self.ctx.seen).entry(key.clone()).or_insert(now);
                self.ctx.enqueue([key]);
            }
            Ok(WatchEvent::Delete(svc)) => {
                if !self.loaded {
                    return;
                }
                self.forget(&convert::service_key(&svc), now);
                self.ctx.pools_dirty.notify_one();
            }
        }
    }

    fn forget(&self, key: &ServiceKey, now: Instant) {
        lock(&self.ctx.seen).remove(key);
        let wake = lock(&self.ctx.engine).forget(key, now);
        self.ctx.enqueue(wake);
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if ctx.term.is_cancelled() {
        return Ok(Action::await_change());
    }
    let key = convert::service_key(&svc);
    let (svc, plan) = {
        let mut engine = lock(&ctx.engine);
        // Decide on the latest copy, under the lock: a Service deleted (and forgotten by the
        // engine) since the applier picked it up must not be allocated again.
        let Some(current) = ctx.services.get(&ObjectRef::from_obj(&*svc)) else {
            lock(&ctx.superseded).replaced(&key, Vec::new());
            return Ok(Action::await_change());
        };
        if lock(&ctx.superseded).is_superseded(&key, current.resource_version().as_deref()) {
            // The watch has not brought our last write yet; its event reconciles again.
            return Ok(Action::await_change());
        }
        let plan = engine.reconcile(&current, Instant::now(), Timestamp::now());
        (current, plan)
    };
    ctx.enqueue(plan.wake.iter().cloned());
    if !plan.notices.is_empty() {
        ctx.emit(&svc, plan.notices);
    }
    if plan.status.is_some() || plan.annotation.is_some() {
        ctx.pools_dirty.notify_one();
    }
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let mut resource_version = svc.resource_version();
    // The versions our writes replace: the one decided on, and the status write's result
    // when the annotation write follows it.
    let mut replaced: Vec<String> = Vec::new();
    // Events and the outcome count go out once, after the writes they describe.
    let mut transition = Some((plan.outcome, plan.events));
    if let Some(mut patch) = plan.status {
        patch["metadata"] = json!({ "resourceVersion": resource_version });
        match ctx
            .write(api.patch_status(&key.name, &params, &Patch::Strategic(patch)))
            .await
        {
            Ok(updated) => {
                replaced.extend(resource_version.take());
                resource_version = updated.resource_version();
            }
            Err(WriteError::Stopped) => return Ok(Action::await_change()),
            // Conflict: the Service changed since the decision; its newer event reconciles it
            // again. Not found: it is gone.
            Err(WriteError::Api(e)) if matches!(api_code(&e), Some(409 | 404)) => {
                return Ok(Action::await_change());
            }
            Err(WriteError::Api(source)) => {
                return Err(ReconcileError::PatchStatus { key, source });
            }
        }
        if let Some(seen) = lock(&ctx.seen).remove(&key) {
            ctx.metrics.latency(seen.elapsed().as_secs_f64());
        }
        if let Some((outcome, events)) = transition.take() {
            ctx.finish(&key, &svc, outcome, events);
        }
    } else {
        lock(&ctx.seen).remove(&key);
    }
    if let Some(mut patch) = plan.annotation {
        patch["metadata"]["resourceVersion"] = json!(resource_version);
        match ctx
            .write(api.patch(&key.name, &params, &Patch::Merge(patch)))
            .await
        {
            Ok(_) => replaced.extend(resource_version.take()),
            Err(WriteError::Stopped) => {}
            Err(WriteError::Api(e)) if matches!(api_code(&e), Some(409 | 404)) => {}
            Err(WriteError::Api(source)) => {
                return Err(ReconcileError::PatchAnnotations { key, source });
            }
        }
    }
    if let Some((outcome, events)) = transition.take() {
        ctx.finish(&key, &svc, outcome, events);
    }
    lock(&ctx.superseded).replaced(&key, replaced);
    Ok(Action::await_change())
}

/// Versions of each Service that this controller decided on and then replaced with its own
/// writes, until the watch brings a version it has not acted on. The status write and the
/// annotation write each bring a watch event; deciding again on the version between them
/// (or on the one before both) would repeat a write the API server then refuses with a
/// conflict, one wasted request per Service. Watch events of one object arrive in order, so a
/// newer version always follows, and that one is decided on as usual.
#[derive(Debug, Default)]
struct Superseded(HashMap<ServiceKey, Vec<String>>);

impl Superseded {
    /// Whether `version` of `key` was already replaced by our own writes. Any other version
    /// ends the wait.
    fn is_superseded(&mut self, key: &ServiceKey, version: Option<&str>) -> bool {
        let hit = match (self.0.get(key), version) {
            (Some(replaced), Some(v)) => replaced.iter().any(|r| r == v),
            _ => false,
        };
        if !hit {
            self.0.remove(key);
        }
        hit
    }

    /// Our writes to `key` replaced these versions (none: forget the key).
    fn replaced(&mut self, key: &ServiceKey, versions: Vec<String>) {
        if versions.is_empty() {
            self.0.remove(key);
        } else {
            self.0.insert(key.clone(), versions);
        }
    }
}

fn error_policy(_svc: Arc<Service>, error: &ReconcileError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error_chain(error), "will retry");
    Action::requeue(Duration::from_secs(2))
}

/// Sends Events from the queue, a few at a time.
async fn run_events(ctx: Arc<Ctx>, rx: mpsc::Receiver<EventJob>, identity: String) {
    let counter = std::sync::atomic::AtomicU64::new(0);
    let counter = &counter;
    let identity = &identity;
    let ctx = &ctx;
    tokio_stream_from(rx)
        .for_each_concurrent(8, |job| async move {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let event = build_event(job, identity, n);
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Event> = Api::namespaced(ctx.client.clone(), &namespace);
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match ctx.write(api.create(&params, &event)).await {
                Ok(_) | Err(WriteError::Stopped) => {}
                Err(WriteError::Api(e)) => {
                    tracing::warn!(error = %e, reason = event.reason.as_deref().unwrap_or(""), "sending an Event failed")
                }
            }
        })
        .await;
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Truncates to at most `max` bytes on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn build_event(job: EventJob, identity: &str, n: u64) -> Event {
    let now = Timestamp::now();
    let name = format!(
        "{}.{:x}{:04x}",
        job.regarding.name.as_deref().unwrap_or("service"),
        now.as_nanosecond(),
        n & 0xffff
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: job.regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(job.spec.reason.action().to_string()),
        reason: Some(job.spec.reason.as_str().to_string()),
        note: Some(truncate(job.spec.note, 1024)),
        type_: Some(job.spec.type_.as_str().to_string()),
        regarding: Some(job.regarding),
        reporting_controller: Some(REPORTING_CONTROLLER.to_string()),
        reporting_instance: Some(truncate(identity.to_string(), 128)),
        ..Event::default()
    }
}

/// Writes pool statuses: at most once per `interval` per pool, only when they differ.
async fn run_pool_status(ctx: Arc<Ctx>, pools: Store<IPAddressPool>, interval: Duration) {
    let mut pending: BTreeSet<PoolName> = BTreeSet::new();
    let mut written: HashMap<PoolName, Instant> = HashMap::new();
    let mut next: Option<Instant> = None;
    loop {
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctx.term.cancelled() => return,
            _ = ctx.pools_dirty.notified() => {}
            _ = sleep => {}
        }
        pending.extend(lock(&ctx.engine).take_dirty_pools());
        let now = Instant::now();
        next = None;
        for name in pending.clone() {
            if let Some(at) = written.get(&name).map(|t| *t + interval)
                && at > now
            {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
                continue;
            }
            pending.remove(&name);
            match write_pool_status(&ctx, &pools, &name).await {
                PoolWrite::Written => {
                    written.insert(name, Instant::now());
                }
                PoolWrite::Unchanged => {}
                PoolWrite::Failed => {
                    // Retried after the interval.
                    written.insert(name.clone(), Instant::now());
                    pending.insert(name);
                    let at = Instant::now() + interval;
                    next = Some(next.map_or(at, |n: Instant| n.min(at)));
                }
            }
        }
        written.retain(|_, t| now.saturating_duration_since(*t) < interval);
    }
}

enum PoolWrite {
    Written,
    Unchanged,
    Failed,
}

async fn write_pool_status(ctx: &Ctx, pools: &Store<IPAddressPool>, name: &PoolName) -> PoolWrite {
    let view = lock(&ctx.engine).pool_view(name);
    let Some(view) = view else {
        ctx.metrics.remove_pool(name);
        return PoolWrite::Unchanged;
    };
    ctx.metrics.set_pool(name, view.counters);
    let Some(pool) = pools.get(&ObjectRef::new(&name.0)) else {
        return PoolWrite::Unchanged;
    };
    let wanted = pool_status::pool_status(&view, pool.status.as_ref(), Timestamp::now());
    if pool
        .status
        .as_ref()
        .is_some_and(|current| pool_status::same_status(current, &wanted))
    {
        return PoolWrite::Unchanged;
    }
    let api: Api<IPAddressPool> = Api::all(ctx.client.clone());
    let patch = Patch::Merge(json!({ "status": wanted }));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match ctx.write(api.patch_status(&name.0, &params, &patch)).await {
        Ok(_) => PoolWrite::Written,
        Err(WriteError::Stopped) => PoolWrite::Unchanged,
        Err(WriteError::Api(e)) if api_code(&e) == Some(404) => PoolWrite::Unchanged,
        Err(WriteError::Api(e)) => {
            tracing::warn!(pool = %name, error = %e, "writing the pool status failed");
            PoolWrite::Failed
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn versions_our_writes_replaced_are_skipped_until_a_newer_one_arrives() {
        let mut s = Superseded::default();
        let (a, b) = (key("a"), key("b"));
        assert!(!s.is_superseded(&a, Some("10")), "nothing written yet");
        // Decided on 10, status write made 11, annotation write made 12.
        s.replaced(&a, vec!["10".into(), "11".into()]);
        assert!(s.is_superseded(&a, Some("10")), "the version decided on");
        assert!(s.is_superseded(&a, Some("11")), "between our two writes");
        assert!(!s.is_superseded(&b, Some("11")), "another Service");
        assert!(!s.is_superseded(&a, None));
        s.replaced(&a, vec!["10".into(), "11".into()]);
        assert!(
            !s.is_superseded(&a, Some("12")),
            "our last write's result is decided on"
        );
        assert!(!s.is_superseded(&a, Some("11")), "and ends the wait");
        s.replaced(&a, vec!["20".into()]);
        s.replaced(&a, vec![]);
        assert!(
            !s.is_superseded(&a, Some("20")),
            "no write: nothing to wait for"
        );
    }
}
