//! Helpers of the controller's end-to-end tests: pools, Services, conditions and Events on
//! the lab's real API server, always polled with a deadline.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this; tests may unwrap

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrolb_api::conditions::IP_ALLOCATED;
use ferrolb_e2e::{Lab, poll};
use k8s_openapi::api::core::v1::{Event, Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long a Service may take to get its condition on a busy two-core machine.
pub const ALLOCATION: Duration = Duration::from_secs(20);

/// A pool, deleted (without waiting) when dropped.
pub struct Pool {
    pub name: String,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "ipaddresspool", &self.name, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn kubectl_path() -> PathBuf {
    // The lab's kubectl sits with the other Kubernetes binaries; `Lab` does not expose the
    // directory, so take it from the state file.
    let paths = ferrolb_e2e::state::Paths::from_build();
    ferrolb_e2e::state::State::load(&paths)
        .map(|s| s.k8s_dir.join("kubectl"))
        .unwrap()
}

/// Creates (or replaces) an IPAddressPool from its `spec`.
pub async fn pool(lab: &Lab, name: &str, spec: Value) -> Pool {
    let doc = json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": "IPAddressPool",
        "metadata": {"name": name},
        "spec": spec,
    });
    lab.apply_yaml(&serde_json::to_string(&doc).unwrap())
        .await
        .unwrap_or_else(|e| panic!("pool {name}: {e}"));
    Pool {
        name: name.to_string(),
        kubectl: kubectl_path(),
        kubeconfig: lab.paths.kubeconfig(),
    }
}

/// A pool that serves only Services of namespace `ns`, so that tests running at once never
/// take each other's addresses.
pub async fn ns_pool(lab: &Lab, name: &str, ns: &str, addresses: &[&str]) -> Pool {
    pool(
        lab,
        name,
        json!({"addresses": addresses, "serviceAllocation": {"namespaces": [ns]}}),
    )
    .await
}

/// A LoadBalancer Service with one TCP port (80 unless `spec` says otherwise).
pub fn service(name: &str, annotations: Value, spec: Value) -> Service {
    let mut s = json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "p", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        }
    });
    for (k, v) in spec.as_object().unwrap() {
        s["spec"][k] = v.clone();
    }
    serde_json::from_value(s).unwrap()
}

pub async fn create(lab: &Lab, ns: &str, svc: Service) -> Service {
    lab.create_service(ns, &svc).await.unwrap()
}

pub async fn services(lab: &Lab, ns: &str) -> Api<Service> {
    Api::namespaced(lab.client().await, ns)
}

/// ferrolb's condition on a Service.
pub fn condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == IP_ALLOCATED)
}

/// `status.loadBalancer.ingress[].ip` in order.
pub fn ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

pub fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Waits until the Service's condition has `reason`; returns the Service.
pub async fn wait_reason(api: &Api<Service>, name: &str, reason: &str) -> Service {
    wait_reason_within(api, name, reason, ALLOCATION).await
}

pub async fn wait_reason_within(
    api: &Api<Service>,
    name: &str,
    reason: &str,
    within: Duration,
) -> Service {
    poll(
        &format!("service {name} with condition reason {reason}"),
        within,
        || async {
            let s = api.get(name).await.map_err(|e| e.to_string())?;
            match condition(&s) {
                Some(c) if c.reason == reason => Ok(s),
                c => Err(format!(
                    "condition {:?}, ingress {:?}",
                    c.map(|c| (&c.status, &c.reason, &c.message)),
                    ingress(&s)
                )),
            }
        },
    )
    .await
    .unwrap()
}

/// Waits until the Service is allocated: condition True, ingress set, and the pool annotation
/// written (a write of its own, after the status); returns it.
pub async fn wait_allocated(api: &Api<Service>, name: &str) -> Service {
    poll(&format!("service {name} allocated"), ALLOCATION, || async {
        let s = api.get(name).await.map_err(|e| e.to_string())?;
        let c = condition(&s);
        let done = c.is_some_and(|c| c.reason == "Allocated" && c.status == "True")
            && !ingress(&s).is_empty()
            && annotation(&s, "ferrolb.io/ip-allocated-from-pool").is_some();
        if done {
            Ok(s)
        } else {
            Err(format!(
                "condition {:?}, ingress {:?}, pool annotation {:?}",
                c.map(|c| (&c.status, &c.reason, &c.message)),
                ingress(&s),
                annotation(&s, "ferrolb.io/ip-allocated-from-pool")
            ))
        }
    })
    .await
    .unwrap()
}

/// The Events about a Service as (type, reason, message), oldest first.
pub async fn events(lab: &Lab, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(lab.client().await, ns);
    let list = api
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap();
    let mut items = list.items;
    items.sort_by_key(|e| e.metadata.creation_timestamp.clone());
    items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Service"))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until the Service has an Event with `reason`; returns its (type, message).
pub async fn wait_event(lab: &Lab, ns: &str, name: &str, reason: &str) -> (String, String) {
    poll(
        &format!("a {reason} Event on service {ns}/{name}"),
        ALLOCATION,
        || async {
            let all = events(lab, ns, name).await;
            all.iter()
                .find(|(_, r, _)| r == reason)
                .map(|(t, _, m)| (t.clone(), m.clone()))
                .ok_or_else(|| format!("{all:?}"))
        },
    )
    .await
    .unwrap()
}

/// Sets labels on a namespace.
pub async fn label_namespace(lab: &Lab, ns: &str, labels: BTreeMap<&str, &str>) {
    let api: Api<Namespace> = Api::all(lab.client().await);
    api.patch(
        ns,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": labels}})),
    )
    .await
    .unwrap();
}

/// The pool's status as JSON (empty object while it has none).
pub async fn pool_status(lab: &Lab, name: &str) -> Value {
    let out = lab
        .kubectl(&["get", "ipaddresspool", name, "-o", "json"])
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v.get("status").cloned().unwrap_or(json!({}))
}

/// A pool condition as (status, reason, message).
pub fn pool_condition(status: &Value, type_: &str) -> Option<(String, String, String)> {
    status["conditions"].as_array()?.iter().find_map(|c| {
        (c["type"] == type_).then(|| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

/// Creates `svc` with a plain POST (for tests that create many at once).
pub async fn post(api: &Api<Service>, svc: &Service) {
    api.create(&PostParams::default(), svc).await.unwrap();
}

/// The controller replicas' metrics ports.
pub fn metrics_ports() -> Vec<u16> {
    let paths = ferrolb_e2e::state::Paths::from_build();
    ferrolb_e2e::state::State::load(&paths)
        .unwrap()
        .ports
        .controller_metrics
        .to_vec()
}

/// One metric's value from a controller replica's /metrics, if it answers.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let resp = ferrolb_runtime_probe(addr).await?;
    resp.lines().find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok()).flatten()
    })
}

async fn ferrolb_runtime_probe(addr: std::net::SocketAddr) -> Option<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "2", &format!("http://{addr}/metrics")])
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---- many Services, leaders and faults ----

/// An IPv6 single-stack LoadBalancer Service without node ports: cheap to make by the
/// hundred (the lab's IPv4 documentation ranges are too small, node ports too few).
pub fn v6_service(name: &str) -> Service {
    service(
        name,
        json!({}),
        json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"],
               "allocateLoadBalancerNodePorts": false}),
    )
}

/// Every Service of the namespace as name → (condition reason, ingress addresses).
pub async fn snapshot(api: &Api<Service>) -> BTreeMap<String, (String, Vec<String>)> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| {
            let reason = condition(s).map(|c| c.reason.clone()).unwrap_or_default();
            (
                s.metadata.name.clone().unwrap_or_default(),
                (reason, ingress(s)),
            )
        })
        .collect()
}

/// Addresses held by more than one Service in a snapshot, with their holders.
pub fn held_twice(snap: &BTreeMap<String, (String, Vec<String>)>) -> BTreeMap<String, Vec<String>> {
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, (_, ips)) in snap {
        for ip in ips {
            holders.entry(ip.clone()).or_default().push(name.clone());
        }
    }
    holders.retain(|_, names| names.len() > 1);
    holders
}

/// Counts the snapshot's Services by condition reason.
pub fn by_reason(snap: &BTreeMap<String, (String, Vec<String>)>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (reason, _) in snap.values() {
        *counts.entry(reason.clone()).or_insert(0) += 1;
    }
    counts
}

/// Watches a namespace's Services for as long as it lives and records every breach of
/// stickiness it sees: an address that changes or goes away while its Service lives, and an
/// address held by two Services at once. Watch events of one namespace come in
/// resourceVersion order, so the recorder's map is a state the API server really had.
pub struct Recorder {
    state: std::sync::Arc<std::sync::Mutex<RecorderState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RecorderState {
    ingress: BTreeMap<String, Vec<String>>,
    holder: BTreeMap<String, String>,
    violations: Vec<String>,
    relisted: Option<std::collections::BTreeSet<String>>,
}

impl RecorderState {
    fn apply(&mut self, name: String, now: Vec<String>) {
        if let Some(relisted) = self.relisted.as_mut() {
            relisted.insert(name.clone());
        }
        let before = self.ingress.get(&name).cloned().unwrap_or_default();
        if before == now {
            self.ingress.insert(name, now);
            return;
        }
        if !before.is_empty() {
            self.violations.push(format!(
                "service {name}: address {before:?} became {now:?} while it lived"
            ));
        }
        for ip in &before {
            if self.holder.get(ip) == Some(&name) {
                self.holder.remove(ip);
            }
        }
        for ip in &now {
            if let Some(other) = self.holder.insert(ip.clone(), name.clone())
                && other != name
            {
                self.violations
                    .push(format!("address {ip} held by {other} and {name} at once"));
            }
        }
        self.ingress.insert(name, now);
    }

    fn delete(&mut self, name: &str) {
        for ip in self.ingress.remove(name).unwrap_or_default() {
            if self.holder.get(&ip).map(String::as_str) == Some(name) {
                self.holder.remove(&ip);
            }
        }
    }
}

impl Recorder {
    pub fn start(api: Api<Service>) -> Recorder {
        use futures::StreamExt;
        use kube::runtime::watcher::{self, Event as W};
        let state = std::sync::Arc::new(std::sync::Mutex::new(RecorderState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(e) = events.next().await {
                let mut st = shared.lock().unwrap();
                match e {
                    Ok(W::Init) => st.relisted = Some(Default::default()),
                    Ok(W::InitApply(s) | W::Apply(s)) => {
                        let name = s.metadata.name.clone().unwrap_or_default();
                        st.apply(name, ingress(&s));
                    }
                    Ok(W::Delete(s)) => st.delete(s.metadata.name.as_deref().unwrap_or("")),
                    Ok(W::InitDone) => {
                        // Services deleted while the watch was down sent no Delete.
                        if let Some(seen) = st.relisted.take() {
                            let gone: Vec<String> = st
                                .ingress
                                .keys()
                                .filter(|k| !seen.contains(*k))
                                .cloned()
                                .collect();
                            for name in gone {
                                st.delete(&name);
                            }
                        }
                    }
                    Err(_) => {} // the watcher retries
                }
            }
        });
        Recorder { state, task }
    }

    /// What the recorder saw go wrong so far.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// The addresses of the Services it has seen, as of now.
    pub fn ingress(&self) -> BTreeMap<String, Vec<String>> {
        self.state.lock().unwrap().ingress.clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The holder of the controller's Lease, if any.
pub async fn lease_holder(lab: &Lab) -> Option<String> {
    use k8s_openapi::api::coordination::v1::Lease;
    let api: Api<Lease> = Api::namespaced(lab.client().await, ferrolb_e2e::chart::NAMESPACE);
    api.get_opt("ferrolb-controller")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// The controllers' Lease as it stands.
pub async fn controller_lease(lab: &Lab) -> k8s_openapi::api::coordination::v1::LeaseSpec {
    use k8s_openapi::api::coordination::v1::Lease;
    let api: Api<Lease> = Api::namespaced(lab.client().await, ferrolb_e2e::chart::NAMESPACE);
    api.get("ferrolb-controller").await.unwrap().spec.unwrap()
}

/// The lab's replica number in a holder identity (`controller-2_1a2b3c4d` → 2).
pub fn replica_of(holder: &str) -> Option<u8> {
    holder
        .strip_prefix("controller-")?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// Waits until a replica other than `not` holds the Lease; returns it.
pub async fn wait_leader(lab: &Lab, not: Option<u8>, within: Duration) -> u8 {
    poll("a controller replica to lead", within, || async {
        let holder = lease_holder(lab).await;
        match holder.as_deref().and_then(replica_of) {
            Some(r) if Some(r) != not => Ok(r),
            _ => Err(format!("holder {holder:?}")),
        }
    })
    .await
    .unwrap()
}

/// The pid of a controller replica, as the lab recorded it.
pub fn controller_pid(replica: u8) -> u32 {
    let paths = ferrolb_e2e::state::Paths::from_build();
    let st = ferrolb_e2e::state::State::load(&paths).unwrap();
    st.procs[&ferrolb_e2e::state::Part::Controller(replica)]
        .id
        .unwrap()
        .pid
}

/// Kills a controller replica outright (SIGKILL: no Lease released, no write finished), as
/// a crash or a lost node would; `lab restart controller N` starts it again.
pub fn crash_controller(replica: u8) {
    let paths = ferrolb_e2e::state::Paths::from_build();
    let st = ferrolb_e2e::state::State::load(&paths).unwrap();
    let id = st.procs[&ferrolb_e2e::state::Part::Controller(replica)]
        .id
        .unwrap();
    ferrolb_e2e::procs::stop_all(&[id], Duration::ZERO);
    assert!(
        !ferrolb_e2e::procs::alive(id),
        "replica {replica} survived SIGKILL"
    );
}

/// The index of a replica's metrics port (replicas count from 1).
pub fn metrics_port(replica: u8) -> u16 {
    metrics_ports()[usize::from(replica) - 1]
}

/// Panics of controller replicas, from their logs (kept across restarts: they append).
pub fn controller_panics() -> Vec<String> {
    let paths = ferrolb_e2e::state::Paths::from_build();
    (1..=ferrolb_e2e::state::CONTROLLER_REPLICAS)
        .flat_map(|r| {
            let log = paths.log(&ferrolb_e2e::state::Part::Controller(r));
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("panicked"))
                .map(|l| format!("controller {r}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}
