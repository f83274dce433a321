//! ServiceL2Status and ServiceBGPStatus: the speaker's report of what it announces, one
//! object per (Service, node), in the Service's namespace and owned by the Service (so the
//! garbage collector removes it with the Service).
//!
//! ```text
//!  core ── watch<Desired> ──▶ writer task ◀── watch ServiceL2Status, ServiceBGPStatus
//!                                 │              (all namespaces, kept as `Observed`)
//!                                 │ actions(desired, observed)      (pure, below)
//!                                 ▼
//!                 create + status patch / status patch / delete; Event NodeAnnouncing
//!
//!  BgpSpeaker::status ── watch<PeerStatus per peer> ──▶ session reporter task
//!                                                        │ SessionReporter (pure, below)
//!                                                        ▼
//!                     Events BGPSessionEstablished / BGPSessionFailed on the BGPPeer
//! ```
//!
//! Each speaker writes only its own objects (annotation `ferrolb.io/node`), and writes only
//! when what it observes differs from what it wants. The objects of a node whose speaker is
//! gone (dead, or left the membership) would stay forever, so the live speaker with the
//! lowest name removes them: one deterministic janitor, re-chosen when it dies itself.
//!
//! Names are `<service>.<node>`: a Service name has no dots, so the pair is unambiguous.
//! When that exceeds the 253 characters of a name, the node part becomes a hash of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::{
    BGPPeer, BgpAnnouncement, InterfaceInfo, L2Announcement, ServiceBGPStatus, ServiceL2Status,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use ring::digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::bgp::{PeerKey, PeerStatus, ResetReason, SessionError};
use crate::membership::NodeName;
use crate::pace::{Pacer, sleep_until_opt};
use crate::world::ServiceKey;

/// The annotation naming the node whose speaker wrote the object.
pub const NODE_ANNOTATION: &str = "ferrolb.io/node";
/// Labels for `kubectl get -l`.
pub const SERVICE_LABEL: &str = "ferrolb.io/service-name";
pub const NODE_LABEL: &str = "ferrolb.io/node";
/// The reason of the Event on a Service whose announcing node changed.
pub const NODE_ANNOUNCING: &str = "NodeAnnouncing";

/// The name of the status object of `service` written by `node`.
pub fn object_name(service: &str, node: &str) -> String {
    let name = format!("{service}.{node}");
    if name.len() <= 253 {
        return name;
    }
    let d = digest::digest(&digest::SHA256, node.as_bytes());
    let hash: String = d.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{service}.{hash}")
}

/// What one status object should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<S> {
    /// The Service's UID, for the owner reference.
    pub uid: String,
    pub status: S,
    /// The announced addresses (for the Event's message).
    pub addresses: Vec<IpAddr>,
}

/// Everything this speaker wants reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    pub l2: BTreeMap<ServiceKey, Wanted<L2Announcement>>,
    pub bgp: BTreeMap<ServiceKey, Wanted<BgpAnnouncement>>,
    /// The live speakers; objects of other nodes are the janitor's.
    pub live: BTreeSet<NodeName>,
}

/// A status object as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed<S> {
    pub node: Option<String>,
    pub owner_uid: Option<String>,
    pub status: Option<S>,
}

/// namespace/name of a status object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<S> {
    Create {
        key: ObjectKey,
        service: String,
        uid: String,
        status: S,
        /// An Event for the Service: this node started announcing it.
        event: Option<String>,
    },
    Patch {
        key: ObjectKey,
        status: S,
    },
    Delete {
        key: ObjectKey,
        why: &'static str,
    },
}

/// Makes the note of the Event sent with a newly created object.
pub type EventMessage<S> = fn(&ServiceKey, &Wanted<S>) -> String;

/// The writes that make `observed` what `wanted` says, for node `me`. `announce_events`:
/// whether newly created objects come with an Event (L2, where one node announces).
pub fn actions<S: Clone + PartialEq>(
    me: &NodeName,
    wanted: &BTreeMap<ServiceKey, Wanted<S>>,
    live: &BTreeSet<NodeName>,
    observed: &BTreeMap<ObjectKey, Observed<S>>,
    event_message: Option<EventMessage<S>>,
) -> Vec<Action<S>> {
    let mut out = Vec::new();
    let mut wanted_keys: BTreeSet<ObjectKey> = BTreeSet::new();
    for (svc, w) in wanted {
        let key = ObjectKey {
            namespace: svc.namespace.clone(),
            name: object_name(&svc.name, me.as_str()),
        };
        wanted_keys.insert(key.clone());
        let create = Action::Create {
            key: key.clone(),
            service: svc.name.clone(),
            uid: w.uid.clone(),
            status: w.status.clone(),
            event: event_message.map(|m| m(svc, w)),
        };
        match observed.get(&key) {
            None => out.push(create),
            Some(o)
                if o.node.as_deref() != Some(me.as_str())
                    || o.owner_uid.as_deref() != Some(&w.uid) =>
            {
                // Another node's object under our name, or one owned by a Service of the
                // same name that was deleted and re-created: replace it.
                out.push(Action::Delete {
                    key,
                    why: "stale owner",
                });
                out.push(create);
            }
            Some(o) if o.status.as_ref() != Some(&w.status) => out.push(Action::Patch {
                key,
                status: w.status.clone(),
            }),
            Some(_) => {}
        }
    }
    let janitor = live.first() == Some(me);
    for (key, o) in observed {
        if wanted_keys.contains(key) {
            continue;
        }
        match o.node.as_deref() {
            Some(n) if n == me.as_str() => out.push(Action::Delete {
                key: key.clone(),
                why: "no longer announced here",
            }),
            Some(n) if janitor && !live.iter().any(|l| l.as_str() == n) => {
                out.push(Action::Delete {
                    key: key.clone(),
                    why: "its node's speaker is gone",
                })
            }
            _ => {}
        }
    }
    out
}

/// A status kind: ServiceL2Status or ServiceBGPStatus.
pub trait StatusKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    type Status: Clone + PartialEq + Debug + Serialize + Send + Sync + 'static;
    const NAME: &'static str;
    fn new_object(meta: ObjectMeta) -> Self;
    fn status(&self) -> Option<&Self::Status>;
}

impl StatusKind for ServiceL2Status {
    type Status = L2Announcement;
    const NAME: &'static str = "ServiceL2Status";
    fn new_object(meta: ObjectMeta) -> Self {
        ServiceL2Status {
            metadata: meta,
            ..Default::default()
        }
    }
    fn status(&self) -> Option<&L2Announcement> {
        self.status.as_ref()
    }
}

impl StatusKind for ServiceBGPStatus {
    type Status = BgpAnnouncement;
    const NAME: &'static str = "ServiceBGPStatus";
    fn new_object(meta: ObjectMeta) -> Self {
        ServiceBGPStatus {
            metadata: meta,
            ..Default::default()
        }
    }
    fn status(&self) -> Option<&BgpAnnouncement> {
        self.status.as_ref()
    }
}

fn observe<K: StatusKind>(obj: &K) -> Option<(ObjectKey, Version, Observed<K::Status>)> {
    let meta = obj.meta();
    let key = ObjectKey {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    };
    Some((
        key,
        meta.resource_version.clone(),
        Observed {
            node: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(NODE_ANNOTATION))
                .cloned(),
            owner_uid: meta
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.kind == "Service" && r.api_version == "v1")
                .map(|r| r.uid.clone()),
            status: obj.status().cloned(),
        },
    ))
}

/// An object's `resourceVersion`.
type Version = Option<String>;

/// Observed objects of one kind, kept current by a watch.
enum ObservedMsg<S> {
    Relist(BTreeMap<ObjectKey, Observed<S>>),
    Apply(ObjectKey, Version, Observed<S>),
    Delete(ObjectKey, Version),
}

async fn watch_observed<K: StatusKind>(api: Api<K>, tx: mpsc::Sender<ObservedMsg<K::Status>>) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listing = BTreeMap::new();
    while let Some(event) = stream.next().await {
        let msg = match event {
            Ok(Event::Init) => {
                listing.clear();
                None
            }
            Ok(Event::InitApply(o)) => {
                listing.extend(observe(&o).map(|(k, _, v)| (k, v)));
                None
            }
            Ok(Event::InitDone) => Some(ObservedMsg::Relist(std::mem::take(&mut listing))),
            Ok(Event::Apply(o)) => observe(&o).map(|(k, r, v)| ObservedMsg::Apply(k, r, v)),
            Ok(Event::Delete(o)) => observe(&o).map(|(k, r, _)| ObservedMsg::Delete(k, r)),
            Err(error) => {
                tracing::debug!(kind = K::NAME, %error, "status watch failed; retrying");
                None
            }
        };
        if let Some(msg) = msg
            && tx.send(msg).await.is_err()
        {
            return;
        }
    }
}

/// The objects a writer wrote, by the `resourceVersion` its last write produced, until the
/// watch event of that write arrives. The events before it are older than what the writer
/// already holds as observed (the create's event, without status, arriving after the status
/// was written): taken for a change, they would be written again.
#[derive(Debug, Default)]
pub struct Written(BTreeMap<ObjectKey, String>);

impl Written {
    /// This writer's write of `key` produced `version` (`None`: not known).
    pub fn wrote(&mut self, key: &ObjectKey, version: Option<String>) {
        match version {
            Some(v) => self.0.insert(key.clone(), v),
            None => self.0.remove(key),
        };
    }

    /// Whether an event about `key` at `version` comes before this writer's last write of
    /// it: the events of one object arrive in order, so until the event of that write
    /// arrives, every other one is older. That event itself is not stale and ends the wait.
    pub fn stale(&mut self, key: &ObjectKey, version: Option<&str>) -> bool {
        match self.0.get(key) {
            None => false,
            Some(w) if Some(w.as_str()) == version => {
                self.0.remove(key);
                false
            }
            Some(_) => true,
        }
    }

    /// The watch listed again: every wait is over.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Writes the status objects of one kind.
struct Writer<K: StatusKind> {
    api_client: Client,
    me: NodeName,
    observed: Option<BTreeMap<ObjectKey, Observed<K::Status>>>,
    rx: mpsc::Receiver<ObservedMsg<K::Status>>,
    /// A write failed: the next attempt is not before then.
    retry_at: Option<Instant>,
    /// This writer's writes whose watch events have not arrived yet.
    written: Written,
    /// What is observed or wanted changed since the last reconcile.
    dirty: bool,
    /// Paces the comparison of wanted and observed, which walks every object (pace.rs).
    pace: Pacer,
}

impl<K: StatusKind> Writer<K> {
    fn start(client: &Client, me: &NodeName) -> Self {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(watch_observed::<K>(Api::all(client.clone()), tx));
        Writer {
            api_client: client.clone(),
            me: me.clone(),
            observed: None,
            rx,
            retry_at: None,
            written: Written::default(),
            dirty: false,
            pace: Pacer::new(RECONCILE_PACE_FACTOR, RECONCILE_MAX_PAUSE),
        }
    }

    /// When this writer should compare wanted and observed next; `None`: nothing to do.
    fn next_run(&self, now: Instant) -> Option<Instant> {
        self.observed.as_ref()?;
        let at = match self.retry_at {
            Some(at) => at,
            None if self.dirty => now,
            None => return None,
        };
        Some(match self.pace.not_before() {
            Some(paced) if paced > at => paced,
            _ => at,
        })
    }

    /// Takes one watch event into `observed`.
    fn note(&mut self, msg: ObservedMsg<K::Status>) {
        let changed = match msg {
            ObservedMsg::Relist(all) => {
                self.written.clear();
                self.observed = Some(all);
                true
            }
            ObservedMsg::Apply(k, version, v) => {
                if self.written.stale(&k, version.as_deref()) {
                    return;
                }
                match &mut self.observed {
                    Some(o) if o.get(&k) != Some(&v) => {
                        o.insert(k, v);
                        true
                    }
                    _ => false,
                }
            }
            ObservedMsg::Delete(k, version) => {
                if self.written.stale(&k, version.as_deref()) {
                    return;
                }
                self.observed
                    .as_mut()
                    .is_some_and(|o| o.remove(&k).is_some())
            }
        };
        self.dirty |= changed;
    }

    async fn reconcile(
        &mut self,
        wanted: &BTreeMap<ServiceKey, Wanted<K::Status>>,
        live: &BTreeSet<NodeName>,
        recorder: &Recorder,
        event_message: Option<EventMessage<K::Status>>,
    ) {
        let Some(observed) = &self.observed else {
            return;
        };
        let started = Instant::now();
        let todo = actions(&self.me, wanted, live, observed, event_message);
        self.pace.ran(started, Instant::now());
        self.dirty = false;
        self.retry_at = None;
        for action in todo {
            if let Err(error) = self.perform(&action, recorder).await {
                tracing::warn!(kind = K::NAME, ?action, error = %error, "writing status failed; will retry");
                self.retry_at = Some(Instant::now() + RETRY);
                // The rest would likely fail the same way (API server away).
                return;
            }
        }
    }

    async fn perform(
        &mut self,
        action: &Action<K::Status>,
        recorder: &Recorder,
    ) -> Result<(), kube::Error> {
        match action {
            Action::Create {
                key,
                service,
                uid,
                status,
                event,
            } => {
                let api: Api<K> = Api::namespaced(self.api_client.clone(), &key.namespace);
                let mut labels = BTreeMap::from([(SERVICE_LABEL.to_owned(), service.clone())]);
                if self.me.as_str().len() <= 63 {
                    labels.insert(NODE_LABEL.to_owned(), self.me.as_str().to_owned());
                }
                let meta = ObjectMeta {
                    name: Some(key.name.clone()),
                    namespace: Some(key.namespace.clone()),
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        NODE_ANNOTATION.to_owned(),
                        self.me.as_str().to_owned(),
                    )])),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Service".into(),
                        name: service.clone(),
                        uid: uid.clone(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]),
                    ..ObjectMeta::default()
                };
                match api
                    .create(&PostParams::default(), &K::new_object(meta))
                    .await
                {
                    Ok(_) => {}
                    // Created by an earlier attempt whose answer was lost: patch it below.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
                // The status subresource ignores status on create.
                let version = write_status(&api, &key.name, status).await?;
                tracing::info!(kind = K::NAME, namespace = %key.namespace, name = %key.name, "status written");
                if let Some(note) = event {
                    let reference = ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Service".into()),
                        name: Some(service.clone()),
                        namespace: Some(key.namespace.clone()),
                        uid: Some(uid.clone()),
                        ..ObjectReference::default()
                    };
                    let ev = KubeEvent {
                        type_: EventType::Normal,
                        reason: NODE_ANNOUNCING.into(),
                        note: Some(note.clone()),
                        action: "Announce".into(),
                        secondary: None,
                    };
                    if let Err(error) = recorder.publish(&ev, &reference).await {
                        // An Event is informational: never retried at the cost of the status.
                        tracing::warn!(%error, service = %service, "publishing the NodeAnnouncing event failed");
                    }
                }
                self.mark(key, Some(status.clone()), Some(uid.clone()), version);
            }
            Action::Patch { key, status } => {
                let api: Api<K> = Api::namespaced(self.api_client.clone(), &key.namespace);
                let version = write_status(&api, &key.name, status).await?;
                let uid = self
                    .observed
                    .as_ref()
                    .and_then(|o| o.get(key))
                    .and_then(|o| o.owner_uid.clone());
                self.mark(key, Some(status.clone()), uid, version);
            }
            Action::Delete { key, why } => {
                let api: Api<K> = Api::namespaced(self.api_client.clone(), &key.namespace);
                match api.delete(&key.name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
                tracing::info!(kind = K::NAME, namespace = %key.namespace, name = %key.name, why, "status removed");
                if let Some(o) = &mut self.observed {
                    o.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Records a write before its watch event arrives, so it is not repeated meanwhile.
    fn mark(
        &mut self,
        key: &ObjectKey,
        status: Option<K::Status>,
        uid: Option<String>,
        version: Option<String>,
    ) {
        self.written.wrote(key, version);
        if let Some(o) = &mut self.observed {
            o.insert(
                key.clone(),
                Observed {
                    node: Some(self.me.as_str().to_owned()),
                    owner_uid: uid,
                    status,
                },
            );
        }
    }
}

/// Writes an object's status; returns the `resourceVersion` the write produced.
async fn write_status<K: StatusKind>(
    api: &Api<K>,
    name: &str,
    status: &K::Status,
) -> Result<Option<String>, kube::Error> {
    let written = api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await?;
    Ok(written.meta().resource_version.clone())
}

fn l2_event(_: &ServiceKey, w: &Wanted<L2Announcement>) -> String {
    let addrs: Vec<String> = w.addresses.iter().map(ToString::to_string).collect();
    let ifaces: Vec<&str> = w
        .status
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    format!(
        "node {} announces {} on {}",
        w.status.node,
        addrs.join(", "),
        if ifaces.is_empty() {
            "no interface".to_owned()
        } else {
            ifaces.join(", ")
        }
    )
}

/// How long failed writes wait before the next attempt.
const RETRY: Duration = Duration::from_secs(2);

/// The comparison of wanted and observed pauses four times its own duration between runs
/// while events keep coming, and never more than this.
const RECONCILE_PACE_FACTOR: u32 = 4;
const RECONCILE_MAX_PAUSE: Duration = Duration::from_millis(500);

/// Runs the status writers until `desired` closes.
pub async fn run(client: Client, me: NodeName, mut desired: watch::Receiver<Arc<Desired>>) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(me.as_str().to_owned()),
        },
    );
    let mut l2 = Writer::<ServiceL2Status>::start(&client, &me);
    let mut bgp = Writer::<ServiceBGPStatus>::start(&client, &me);
    let mut want = desired.borrow_and_update().clone();
    l2.dirty = true;
    bgp.dirty = true;
    loop {
        let now = Instant::now();
        let next = match (l2.next_run(now), bgp.next_run(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    return;
                }
                want = desired.borrow_and_update().clone();
                l2.dirty = true;
                bgp.dirty = true;
            }
            Some(msg) = l2.rx.recv() => l2.note(msg),
            Some(msg) = bgp.rx.recv() => bgp.note(msg),
            () = sleep_until_opt(next) => {}
        }
        // Take every pending observation first: one reconcile for a burst.
        while let Ok(msg) = l2.rx.try_recv() {
            l2.note(msg);
        }
        while let Ok(msg) = bgp.rx.try_recv() {
            bgp.note(msg);
        }
        let now = Instant::now();
        if l2.next_run(now).is_some_and(|at| at <= now) {
            l2.reconcile(&want.l2, &want.live, &recorder, Some(l2_event))
                .await;
        }
        let now = Instant::now();
        if bgp.next_run(now).is_some_and(|at| at <= now) {
            bgp.reconcile(&want.bgp, &want.live, &recorder, None).await;
        }
    }
}

/// Reason of the Event on a BGPPeer when this node's session with it is established.
pub const BGP_SESSION_ESTABLISHED: &str = "BGPSessionEstablished";
/// Reason of the Event on a BGPPeer when this node's session with it failed.
pub const BGP_SESSION_FAILED: &str = "BGPSessionFailed";

/// One Event about a node's session with a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNote {
    pub peer: PeerKey,
    pub warning: bool,
    pub reason: &'static str,
    /// The Event's action: `Connect`, or the kind of failure (`OpenRejected`, …). Events
    /// with the same reason and action are counted as one series and keep their first note,
    /// so each kind of failure gets its own action.
    pub action: &'static str,
    pub note: String,
}

/// What the session reporter knows of a configured peer besides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPeer {
    /// The BGPPeer the session comes from.
    pub name: String,
    /// A TCP MD5 password is set (a wrong one shows only as connects timing out).
    pub tcp_md5: bool,
}

/// What was last said about a session, so that each change is said once: a peer refusing
/// every attempt the same way gives one Event, not one per retry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    Established,
    Failed(String),
}

/// The Event action for a kind of failure.
fn failure_action(reason: ResetReason) -> &'static str {
    match reason {
        ResetReason::ConnectFailed => "ConnectFailed",
        ResetReason::ConnectionClosed => "ConnectionClosed",
        ResetReason::HoldTimerExpired => "HoldTimerExpired",
        ResetReason::NotificationReceived => "NotificationReceived",
        ResetReason::OpenRejected => "OpenRejected",
        ResetReason::MalformedMessage => "MalformedMessage",
        ResetReason::UnexpectedMessage => "UnexpectedMessage",
        ResetReason::Stopped => "Stopped",
    }
}

/// Turns successive session statuses into Events (pure; the task below publishes them).
#[derive(Debug, Default)]
pub struct SessionReporter {
    said: BTreeMap<PeerKey, Said>,
}

impl SessionReporter {
    pub fn update(
        &mut self,
        node: &NodeName,
        sessions: &BTreeMap<PeerKey, PeerStatus>,
        peers: &BTreeMap<PeerKey, SessionPeer>,
    ) -> Vec<SessionNote> {
        self.said.retain(|peer, _| sessions.contains_key(peer));
        let mut out = Vec::new();
        for (peer, s) in sessions {
            let (now, action, note) = if s.is_established() {
                let n = s.negotiated.as_ref();
                (
                    Said::Established,
                    "Connect",
                    format!(
                        "node {node}: BGP session with {peer} established (peer AS {}, hold time {} s)",
                        n.map_or(0, |n| n.peer_as),
                        n.map_or(0, |n| n.hold_time),
                    ),
                )
            } else if let Some(error) = &s.last_error {
                // The refusal behind later connection failures says more than they do.
                let cause = s
                    .last_protocol_error
                    .as_ref()
                    .filter(|_| error.is_transport())
                    .unwrap_or(error);
                let why = cause.to_string();
                let mut note = format!("node {node}: BGP session with {peer} failed: {why}");
                if cause != error {
                    note.push_str(&format!(" (latest attempt: {error})"));
                }
                if *cause == SessionError::ConnectTimeout
                    && peers.get(peer).is_some_and(|p| p.tcp_md5)
                {
                    note.push_str(
                        " (a TCP MD5 password is set: a password the peer does not share \
                         shows as exactly this)",
                    );
                }
                note.push_str("; retrying with backoff");
                (Said::Failed(why), failure_action(cause.reason()), note)
            } else {
                continue;
            };
            if self.said.get(peer) == Some(&now) {
                continue;
            }
            let warning = matches!(now, Said::Failed(_));
            self.said.insert(*peer, now);
            out.push(SessionNote {
                peer: *peer,
                warning,
                reason: if warning {
                    BGP_SESSION_FAILED
                } else {
                    BGP_SESSION_ESTABLISHED
                },
                action,
                note,
            });
        }
        out
    }
}

/// Publishes Events on the BGPPeers about this node's sessions, until `sessions` closes.
/// `peers` says which BGPPeer each session comes from.
pub async fn run_bgp_sessions(
    client: Client,
    me: NodeName,
    mut sessions: watch::Receiver<BTreeMap<PeerKey, PeerStatus>>,
    peers: watch::Receiver<BTreeMap<PeerKey, SessionPeer>>,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(me.as_str().to_owned()),
        },
    );
    let api: Api<BGPPeer> = Api::all(client);
    // BGPPeer UIDs, for references `kubectl describe bgppeer` finds.
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    let mut reporter = SessionReporter::default();
    loop {
        let known = peers.borrow().clone();
        // A BGPPeer deleted and made again under its name has a new UID.
        uids.retain(|name, _| known.values().any(|p| p.name == *name));
        let notes = reporter.update(&me, &sessions.borrow_and_update(), &known);
        for n in notes {
            let Some(name) = known.get(&n.peer).map(|p| p.name.clone()) else {
                continue;
            };
            let uid = match uids.get(&name) {
                Some(uid) => Some(uid.clone()),
                None => match api.get_opt(&name).await {
                    Ok(Some(p)) => p.metadata.uid.inspect(|uid| {
                        uids.insert(name.clone(), uid.clone());
                    }),
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::debug!(%error, peer = name, "reading the BGPPeer for its Event");
                        None
                    }
                },
            };
            let reference = ObjectReference {
                api_version: Some("ferrolb.io/v1alpha1".into()),
                kind: Some("BGPPeer".into()),
                name: Some(name.clone()),
                uid,
                ..ObjectReference::default()
            };
            let ev = KubeEvent {
                type_: if n.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: n.reason.into(),
                note: Some(n.note),
                action: n.action.into(),
                secondary: None,
            };
            if let Err(error) = recorder.publish(&ev, &reference).await {
                tracing::warn!(%error, peer = name, "publishing the BGP session event failed");
            }
        }
        if sessions.changed().await.is_err() {
            return;
        }
    }
}

/// The L2 status of a Service announced here.
pub fn l2_status(svc: &ServiceKey, node: &NodeName, interfaces: &[String]) -> L2Announcement {
    L2Announcement {
        node: node.as_str().to_owned(),
        service_name: svc.name.clone(),
        service_namespace: svc.namespace.clone(),
        interfaces: interfaces
            .iter()
            .map(|n| InterfaceInfo { name: n.clone() })
            .collect(),
    }
}

/// The BGP status of a Service announced here.
pub fn bgp_status(svc: &ServiceKey, node: &NodeName, peers: &[String]) -> BgpAnnouncement {
    BgpAnnouncement {
        node: node.as_str().to_owned(),
        service_name: svc.name.clone(),
        service_namespace: svc.namespace.clone(),
        peers: peers.to_vec(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(n: &str) -> NodeName {
        NodeName::new(n).unwrap()
    }

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn wanted(status: &str) -> Wanted<String> {
        Wanted {
            uid: "uid-a".into(),
            status: status.into(),
            addresses: vec![],
        }
    }

    fn observed(node: &str, uid: &str, status: &str) -> Observed<String> {
        Observed {
            node: Some(node.into()),
            owner_uid: Some(uid.into()),
            status: Some(status.into()),
        }
    }

    #[test]
    fn events_older_than_our_last_write_are_skipped_until_its_own_arrives() {
        let mut w = Written::default();
        let k = key("ns", "svc.node1");
        let other = key("ns", "svc2.node1");
        assert!(!w.stale(&k, Some("5")), "nothing written: nothing is stale");
        w.wrote(&k, Some("12".into()));
        assert!(
            w.stale(&k, Some("11")),
            "the create's event, before the status"
        );
        assert!(w.stale(&k, None));
        assert!(
            !w.stale(&other, Some("11")),
            "another object is not affected"
        );
        assert!(!w.stale(&k, Some("12")), "our write's own event is taken");
        assert!(!w.stale(&k, Some("13")), "and every later one");
        w.wrote(&k, None);
        assert!(
            !w.stale(&k, Some("14")),
            "a write of unknown version waits for nothing"
        );
        w.wrote(&k, Some("20".into()));
        w.clear();
        assert!(!w.stale(&k, Some("19")), "a relist ends the wait");
    }

    #[test]
    fn names_are_unambiguous_and_bounded() {
        assert_eq!(object_name("web", "node1"), "web.node1");
        assert_ne!(object_name("a-b", "c"), object_name("a", "b-c"));
        let long_node = "n".repeat(253);
        let name = object_name(&"s".repeat(63), &long_node);
        assert!(name.len() <= 253, "{}", name.len());
        assert_eq!(name, object_name(&"s".repeat(63), &long_node));
    }

    #[test]
    fn creates_what_is_missing_and_patches_only_what_differs() {
        let me = node("n1");
        let live = BTreeSet::from([me.clone()]);
        let want = BTreeMap::from([
            (ServiceKey::new("ns", "a"), wanted("eth0")),
            (ServiceKey::new("ns", "b"), wanted("eth1")),
            (ServiceKey::new("ns", "c"), wanted("eth0")),
        ]);
        let have = BTreeMap::from([
            (key("ns", "b.n1"), observed("n1", "uid-a", "eth0")),
            (key("ns", "c.n1"), observed("n1", "uid-a", "eth0")),
        ]);
        fn msg(_: &ServiceKey, _: &Wanted<String>) -> String {
            "announcing".into()
        }
        let acts = actions(&me, &want, &live, &have, Some(msg));
        assert_eq!(
            acts,
            vec![
                Action::Create {
                    key: key("ns", "a.n1"),
                    service: "a".into(),
                    uid: "uid-a".into(),
                    status: "eth0".into(),
                    event: Some("announcing".into()),
                },
                Action::Patch {
                    key: key("ns", "b.n1"),
                    status: "eth1".into()
                },
            ]
        );
        // Nothing to do once observed matches.
        let have: BTreeMap<_, _> = want
            .iter()
            .map(|(s, w)| {
                (
                    key("ns", &format!("{}.n1", s.name)),
                    observed("n1", "uid-a", &w.status),
                )
            })
            .collect();
        assert!(actions(&me, &want, &live, &have, None).is_empty());
    }

    #[test]
    fn removes_own_objects_no_longer_wanted_and_leaves_live_nodes_alone() {
        let me = node("n2");
        let live = BTreeSet::from([node("n1"), node("n2")]);
        let have = BTreeMap::from([
            (key("ns", "a.n2"), observed("n2", "u", "eth0")),
            (key("ns", "a.n1"), observed("n1", "u", "eth0")),
            (key("ns", "a.n3"), observed("n3", "u", "eth0")),
        ]);
        let acts = actions(&me, &BTreeMap::new(), &live, &have, None);
        assert_eq!(
            acts,
            vec![Action::Delete {
                key: key("ns", "a.n2"),
                why: "no longer announced here"
            }]
        );
    }

    #[test]
    fn the_lowest_live_node_removes_objects_of_dead_nodes() {
        let live = BTreeSet::from([node("n1"), node("n2")]);
        let have = BTreeMap::from([(key("ns", "a.n3"), observed("n3", "u", "eth0"))]);
        let acts = actions(&node("n1"), &BTreeMap::new(), &live, &have, None);
        assert_eq!(
            acts,
            vec![Action::Delete {
                key: key("ns", "a.n3"),
                why: "its node's speaker is gone"
            }]
        );
        assert!(actions(&node("n2"), &BTreeMap::new(), &live, &have, None).is_empty());
    }

    #[test]
    fn an_object_of_a_recreated_service_is_replaced() {
        let me = node("n1");
        let live = BTreeSet::from([me.clone()]);
        let want = BTreeMap::from([(ServiceKey::new("ns", "a"), wanted("eth0"))]);
        let have = BTreeMap::from([(key("ns", "a.n1"), observed("n1", "old-uid", "eth0"))]);
        let acts = actions(&me, &want, &live, &have, None);
        assert!(matches!(acts[0], Action::Delete { .. }));
        assert!(matches!(acts[1], Action::Create { .. }));
    }

    fn session(
        state: crate::bgp::State,
        last: Option<SessionError>,
        protocol: Option<SessionError>,
    ) -> PeerStatus {
        let mut s = PeerStatus::new(1);
        s.state = state;
        s.last_error = last;
        s.last_protocol_error = protocol;
        s
    }

    fn peer_key(port: u16) -> PeerKey {
        PeerKey::new("127.0.0.1".parse().unwrap(), port)
    }

    #[test]
    fn a_refusal_is_reported_once_and_not_hidden_by_later_connection_failures() {
        use crate::bgp::State;
        let me = node("node3");
        let peer = peer_key(1792);
        let peers = BTreeMap::from([(
            peer,
            SessionPeer {
                name: "bad-asn".into(),
                tcp_md5: false,
            },
        )]);
        let wrong_as = SessionError::BadPeerAs {
            expected: 64999,
            received: 64600,
        };
        let mut r = SessionReporter::default();
        let notes = r.update(
            &me,
            &BTreeMap::from([(
                peer,
                session(State::Idle, Some(wrong_as.clone()), Some(wrong_as.clone())),
            )]),
            &peers,
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].warning);
        assert_eq!(notes[0].reason, BGP_SESSION_FAILED);
        assert_eq!(notes[0].action, "OpenRejected");
        assert_eq!(
            notes[0].note,
            "node node3: BGP session with 127.0.0.1:1792 failed: peer AS 64600 is not the configured 64999; retrying with backoff"
        );
        // The peer now closes the connection at once, attempt after attempt: same cause,
        // nothing new to say.
        for _ in 0..3 {
            let notes = r.update(
                &me,
                &BTreeMap::from([(
                    peer,
                    session(
                        State::Active,
                        Some(SessionError::ConnectionClosed),
                        Some(wrong_as.clone()),
                    ),
                )]),
                &peers,
            );
            assert!(notes.is_empty(), "{notes:?}");
        }
    }

    #[test]
    fn established_and_failed_alternate_and_a_new_kind_of_failure_is_said() {
        use crate::bgp::State;
        let me = node("node1");
        let peer = peer_key(179);
        let peers = BTreeMap::new();
        let mut r = SessionReporter::default();
        let up = BTreeMap::from([(peer, session(State::Established, None, None))]);
        let notes = r.update(&me, &up, &peers);
        assert_eq!(notes.len(), 1);
        assert_eq!(
            (notes[0].warning, notes[0].reason, notes[0].action),
            (false, BGP_SESSION_ESTABLISHED, "Connect")
        );
        assert!(r.update(&me, &up, &peers).is_empty());

        let hold = SessionError::HoldTimerExpired { hold_time: 9 };
        let down = BTreeMap::from([(peer, session(State::Idle, Some(hold.clone()), Some(hold)))]);
        let notes = r.update(&me, &down, &peers);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].action, "HoldTimerExpired");
        assert!(
            notes[0].note.contains("hold timer expired"),
            "{}",
            notes[0].note
        );

        let refused = SessionError::ConnectFailed {
            message: "connecting: Connection refused (os error 111)".into(),
        };
        let notes = r.update(
            &me,
            &BTreeMap::from([(peer, session(State::Active, Some(refused), None))]),
            &peers,
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].action, "ConnectFailed");

        assert_eq!(r.update(&me, &up, &peers).len(), 1);
        // A removed peer is forgotten; configured again, it is reported afresh.
        assert!(r.update(&me, &BTreeMap::new(), &peers).is_empty());
        assert_eq!(r.update(&me, &up, &peers).len(), 1);
    }

    #[test]
    fn connect_timeouts_with_a_password_point_at_the_password() {
        use crate::bgp::State;
        let me = node("node3");
        let peer = peer_key(1794);
        let peers = BTreeMap::from([(
            peer,
            SessionPeer {
                name: "md5".into(),
                tcp_md5: true,
            },
        )]);
        let notes = SessionReporter::default().update(
            &me,
            &BTreeMap::from([(
                peer,
                session(State::Active, Some(SessionError::ConnectTimeout), None),
            )]),
            &peers,
        );
        assert!(
            notes[0].note.contains("TCP MD5 password"),
            "{}",
            notes[0].note
        );
    }
}
