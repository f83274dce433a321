//! Watches on the API server that feed the [`World`](crate::world::World): one task per kind,
//! each converting objects to their typed entries as they arrive (so the core never sees a
//! Kubernetes object) and forwarding them over one channel.
//!
//! ```text
//!  watcher(Services)        ─┐
//!  watcher(EndpointSlices)  ─┤
//!  watcher(Nodes)           ─┤   Watched::update (typed entry)
//!  watcher(IPAddressPools)  ─┼──────────────────────────────────▶ mpsc<Msg> ──▶ core
//!  watcher(L2/BGPAdvert.)   ─┤   Relist(kind, all) after a (re-)list,
//!  watcher(BGPPeers)        ─┤   Change(update) for every event
//!  watcher(Secret ns/name)  ─┘   (one per Secret a BGPPeer references, field-selected)
//! ```
//!
//! A watch that fails is retried with kube's default backoff; the world keeps its last state
//! meanwhile, so announcements (and L2 failover, which needs only the membership) carry on
//! while the API server is away.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use ferrolb_api::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::world::{
    BgpAdvEntry, Kind, L2AdvEntry, NodeEntry, PeerEntry, PoolEntry, SecretKey, ServiceEntry,
    ServiceKey, SliceEntry, SliceKey, Update, secret_data,
};

/// What a watch task sends.
#[derive(Debug)]
pub enum Msg {
    /// Every object of a kind, after a (re-)list.
    Relist(Kind, Vec<Update>),
    /// One object changed or went away.
    Change(Update),
}

/// How objects of a kind become world updates.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static
{
    const KIND: Kind;
    /// The update for this object, present (`true`) or deleted; `None` for objects that can
    /// never matter (no name).
    fn update(&self, present: bool, scope: &Scope) -> Option<Update>;
}

/// What decides which objects concern this speaker.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `spec.loadBalancerClass` served (`None`: Services without a class).
    pub load_balancer_class: Option<String>,
}

fn name_of<K: Resource>(obj: &K) -> Option<String> {
    obj.meta().name.clone()
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;
    fn update(&self, present: bool, scope: &Scope) -> Option<Update> {
        let key = ServiceKey::new(
            self.metadata.namespace.clone().unwrap_or_default(),
            name_of(self)?,
        );
        let entry = present
            .then(|| ServiceEntry::from_service(self, scope.load_balancer_class.as_deref()))
            .flatten()
            .map(|(_, e)| e);
        Some(Update::Service(key, entry))
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::Slice;
    fn update(&self, present: bool, _: &Scope) -> Option<Update> {
        let key = SliceKey {
            namespace: self.metadata.namespace.clone().unwrap_or_default(),
            name: name_of(self)?,
        };
        let entry = present
            .then(|| SliceEntry::from_slice(self))
            .flatten()
            .map(|(_, e)| e);
        Some(Update::Slice(key, entry))
    }
}

impl Watched for Node {
    const KIND: Kind = Kind::Node;
    fn update(&self, present: bool, _: &Scope) -> Option<Update> {
        let (name, entry) = NodeEntry::from_node(self)?;
        Some(Update::Node(name, present.then_some(entry)))
    }
}

impl Watched for IPAddressPool {
    const KIND: Kind = Kind::Pool;
    fn update(&self, present: bool, _: &Scope) -> Option<Update> {
        let (name, entry) = PoolEntry::from_pool(self)?;
        if let Err(error) = &entry.addresses {
            tracing::warn!(pool = %name, %error, "pool addresses unreadable: its addresses are not announced");
        }
        Some(Update::Pool(name, present.then_some(entry)))
    }
}

impl Watched for L2Advertisement {
    const KIND: Kind = Kind::L2Advertisement;
    fn update(&self, present: bool, _: &Scope) -> Option<Update> {
        let (name, entry) = L2AdvEntry::from_advertisement(self)?;
        if let (true, Err(error)) = (present, &entry) {
            tracing::warn!(advertisement = %name, %error, "L2Advertisement ignored");
        }
        Some(Update::L2Advertisement(name, present.then_some(entry)))
    }
}

impl Watched for BGPAdvertisement {
    const KIND: Kind = Kind::BgpAdvertisement;
    fn update(&self, present: bool, _: &Scope) -> Option<Update> {
        let (name, entry) = BgpAdvEntry::from_advertisement(self)?;
        if let (true, Err(error)) = (present, &entry) {
            tracing::warn!(advertisement = %name, %error, "BGPAdvertisement ignored");
        }
        Some(Update::BgpAdvertisement(name, present.then_some(entry)))
    }
}

impl Watched for BGPPeer {
    const KIND: Kind = Kind::Peer;
    fn update(&self, present: bool, _: &Scope) -> Option<Update> {
        let (name, entry) = PeerEntry::from_peer(self)?;
        if let (true, Err(error)) = (present, &entry) {
            tracing::warn!(peer = %name, %error, "BGPPeer ignored");
        }
        Some(Update::Peer(name, present.then_some(entry)))
    }
}

/// Runs the watch of one kind until the receiver is gone.
async fn watch_kind<K: Watched>(api: Api<K>, scope: Scope, tx: mpsc::Sender<Msg>) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listing: Vec<Update> = Vec::new();
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let msg = match event {
            Ok(Event::Init) => {
                listing.clear();
                None
            }
            Ok(Event::InitApply(obj)) => {
                listing.extend(obj.update(true, &scope));
                None
            }
            Ok(Event::InitDone) => Some(Msg::Relist(K::KIND, std::mem::take(&mut listing))),
            Ok(Event::Apply(obj)) => obj.update(true, &scope).map(Msg::Change),
            Ok(Event::Delete(obj)) => obj.update(false, &scope).map(Msg::Change),
            Err(error) => {
                // Once per outage, not once per retry.
                if !failing {
                    tracing::warn!(kind = ?K::KIND, %error, "watch failed; retrying, announcements continue from the last known state");
                }
                failing = true;
                None
            }
        };
        if let Some(msg) = msg {
            if failing {
                tracing::info!(kind = ?K::KIND, "watch resumed");
                failing = false;
            }
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

/// Starts the watches of every kind the world holds (Secrets aside: [`SecretWatches`]).
pub fn spawn_all(client: &Client, scope: &Scope, tx: &mpsc::Sender<Msg>) -> Vec<JoinHandle<()>> {
    fn spawn<K: Watched>(api: Api<K>, scope: &Scope, tx: &mpsc::Sender<Msg>) -> JoinHandle<()> {
        tokio::spawn(watch_kind(api, scope.clone(), tx.clone()))
    }
    vec![
        spawn(Api::<Service>::all(client.clone()), scope, tx),
        spawn(Api::<EndpointSlice>::all(client.clone()), scope, tx),
        spawn(Api::<Node>::all(client.clone()), scope, tx),
        spawn(Api::<IPAddressPool>::all(client.clone()), scope, tx),
        spawn(Api::<L2Advertisement>::all(client.clone()), scope, tx),
        spawn(Api::<BGPAdvertisement>::all(client.clone()), scope, tx),
        spawn(Api::<BGPPeer>::all(client.clone()), scope, tx),
    ]
}

/// The kinds [`spawn_all`] watches; the world is synced once each has listed once.
pub const KINDS: [Kind; 7] = [
    Kind::Service,
    Kind::Slice,
    Kind::Node,
    Kind::Pool,
    Kind::L2Advertisement,
    Kind::BgpAdvertisement,
    Kind::Peer,
];

/// One watch per referenced Secret, selected by name: the speaker never lists Secrets it
/// has no business reading.
pub struct SecretWatches {
    client: Client,
    tx: mpsc::Sender<Msg>,
    running: BTreeMap<SecretKey, JoinHandle<()>>,
}

impl std::fmt::Debug for SecretWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretWatches")
            .field("watching", &self.running.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Drop for SecretWatches {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

impl SecretWatches {
    pub fn new(client: Client, tx: mpsc::Sender<Msg>) -> Self {
        SecretWatches {
            client,
            tx,
            running: BTreeMap::new(),
        }
    }

    /// Watches exactly `wanted`: starts the missing watches, stops the others. The world
    /// is told about a stopped watch's Secret going away.
    pub fn set(&mut self, wanted: &BTreeSet<SecretKey>) {
        let stale: Vec<SecretKey> = self
            .running
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some(task) = self.running.remove(&key) {
                task.abort();
            }
            let _ = self.tx.try_send(Msg::Change(Update::Secret(key, None)));
        }
        for key in wanted {
            if !self.running.contains_key(key) {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
                let task = tokio::spawn(watch_secret(api, key.clone(), self.tx.clone()));
                self.running.insert(key.clone(), task);
            }
        }
    }
}

async fn watch_secret(api: Api<Secret>, key: SecretKey, tx: mpsc::Sender<Msg>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listed: Option<Update> = None;
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let update = match event {
            Ok(Event::Init) => {
                listed = None;
                None
            }
            Ok(Event::InitApply(s)) => {
                listed = secret_data(&s).map(|(k, d)| Update::Secret(k, Some(d)));
                None
            }
            Ok(Event::InitDone) => Some(
                listed
                    .take()
                    .unwrap_or_else(|| Update::Secret(key.clone(), None)),
            ),
            Ok(Event::Apply(s)) => secret_data(&s).map(|(k, d)| Update::Secret(k, Some(d))),
            Ok(Event::Delete(_)) => Some(Update::Secret(key.clone(), None)),
            Err(error) => {
                if !failing {
                    tracing::warn!(secret = %key, %error, "watching a BGP password secret failed; retrying");
                }
                failing = true;
                None
            }
        };
        if let Some(update) = update {
            failing = false;
            if tx.send(Msg::Change(update)).await.is_err() {
                return;
            }
        }
    }
}
