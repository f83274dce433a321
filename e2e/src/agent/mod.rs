//! `lab agent`: what a kubelet and kube-proxy do for one lab node, run inside its namespace.
//!
//! ```text
//!  own Node watch ──┐
//!  1 s tick ────────┴─► heartbeat: register the Node, renew its Lease, post Ready when needed
//!  Pod watch (spec.nodeName = me) ─► pods: Running + Ready + pod IPs; finish deletions
//!  Service watch ────────┐
//!  EndpointSlice watch ──┴─► proxy: ProxyView ─► `ip -batch` on kube-ipvs0
//!                                     │        └► listeners per TCP port
//!                                     └──────────► responder: "nodeN" or dropped (Local policy)
//! ```
//!
//! Killing this process is what makes a lab node die for Kubernetes: the Lease stops, the
//! node-lifecycle controller marks the node NotReady and its Pods not ready.

pub mod pods;
pub mod proxy;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::error::{LabError, Result};
use crate::topology::{IPVS_LINK, NodeId};
use pods::PodIps;
use proxy::{ProxyView, Verdict};

/// What one agent serves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: NodeId,
    pub kubeconfig: PathBuf,
}

/// Builds a client from the lab's kubeconfig.
pub async fn client(kubeconfig: &std::path::Path) -> Result<Client> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| LabError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        source: e,
    };
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| err(Box::new(e)))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(Box::new(e)))?;
    Client::try_from(config).map_err(|e| err(Box::new(e)))
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Kube { what, source }
}

fn now() -> String {
    Timestamp::now().to_string()
}

/// Runs until SIGTERM.
pub async fn run(cfg: AgentConfig) -> Result<()> {
    let client = client(&cfg.kubeconfig).await?;
    let view = Arc::new(RwLock::new(ProxyView::new(cfg.node.name())));
    let heartbeat = tokio::spawn(heartbeat(client.clone(), cfg.node));
    let pods = tokio::spawn(pods_loop(client.clone(), cfg.node));
    let proxy = tokio::spawn(proxy_loop(client, cfg.node, view));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| LabError::SpawnCommand {
            command: "SIGTERM handler".into(),
            source,
        })?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        r = heartbeat => warn!(?r, "heartbeat task ended"),
        r = pods => warn!(?r, "pod task ended"),
        r = proxy => warn!(?r, "proxy task ended"),
    }
    Ok(())
}

// --- heartbeat -------------------------------------------------------------------------

fn node_object(n: NodeId) -> Node {
    let name = n.name();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH,
            },
        },
        "status": node_status(n, &now()),
    }))
    .expect("a Node built from constants deserialises")
}

fn node_status(n: NodeId, now: &str) -> serde_json::Value {
    json!({
        "addresses": [
            {"type": "InternalIP", "address": n.addr4().to_string()},
            {"type": "InternalIP", "address": n.addr6().to_string()},
            {"type": "Hostname", "address": n.name()},
        ],
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "nodeInfo": {
            "kubeletVersion": "v1.34.4-ferrolb-lab", "kubeProxyVersion": "",
            "architecture": std::env::consts::ARCH, "operatingSystem": "linux",
            "containerRuntimeVersion": "none://", "kernelVersion": "", "osImage": "ferrolb lab",
            "machineID": "", "systemUUID": "", "bootID": "",
        },
        "conditions": [ready_condition(now)],
    })
}

fn ready_condition(now: &str) -> serde_json::Value {
    json!({
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "lab agent is posting ready status",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    })
}

/// Posts the Ready condition (strategic merge by type, so conditions others set, like a test's
/// NetworkUnavailable, stay) and the addresses (merge patch: the list is replaced, since a
/// strategic merge by type would fold the two InternalIPs into one).
async fn post_ready(nodes: &Api<Node>, n: NodeId) -> Result<()> {
    let now = now();
    nodes
        .patch_status(
            &n.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addresses": node_status(n, &now)["addresses"]}})),
        )
        .await
        .map_err(kube_err("patch node addresses"))?;
    nodes
        .patch_status(
            &n.name(),
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [ready_condition(&now)]}})),
        )
        .await
        .map_err(kube_err("post node Ready"))?;
    Ok(())
}

async fn register(client: &Client, n: NodeId) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.create(&PostParams::default(), &node_object(n)).await {
        Ok(node) => {
            info!(node = %n, "registered node");
            Ok(node)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            post_ready(&nodes, n).await?;
            nodes.get(&n.name()).await.map_err(kube_err("get node"))
        }
        Err(e) => Err(kube_err("create node")(e)),
    }
}

async fn renew_lease(leases: &Api<Lease>, node: &Node, n: NodeId) -> Result<()> {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now());
    let renew = json!({"spec": {"renewTime": now}});
    match leases
        .patch(&n.name(), &PatchParams::default(), &Patch::Merge(&renew))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {
                    "name": n.name(), "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n.name(),
                                         "uid": node.metadata.uid.clone().unwrap_or_default()}],
                },
                "spec": {"holderIdentity": n.name(), "leaseDurationSeconds": 40,
                         "renewTime": renew["spec"]["renewTime"]},
            }))
            .expect("a Lease built from constants deserialises");
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(drop)
                .map_err(kube_err("create node lease"))
        }
        Err(e) => Err(kube_err("renew node lease")(e)),
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

async fn heartbeat(client: Client, n: NodeId) {
    let node = loop {
        match register(&client, n).await {
            Ok(node) => break node,
            Err(e) => {
                warn!(error = %e, "registering the node failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let own = watcher::watcher(
        nodes.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", n.name())),
    )
    .default_backoff()
    .applied_objects();
    let mut own = std::pin::pin!(own);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = renew_lease(&leases, &node, n).await {
                    warn!(error = %e, "lease renewal failed");
                }
            }
            Some(seen) = own.next() => match seen {
                // The node-lifecycle controller marked us Unknown (we were dead): say Ready.
                Ok(seen) if !is_ready(&seen) => {
                    if let Err(e) = post_ready(&nodes, n).await {
                        warn!(error = %e, "posting Ready failed");
                    }
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "node watch failed"),
            },
        }
    }
}

// --- pods ------------------------------------------------------------------------------

async fn pods_loop(client: Client, n: NodeId) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut ips = PodIps::new(n.pod_net4(), n.pod_net6());
    let stream = watcher::watcher(
        pods.clone(),
        watcher::Config::default().fields(&format!("spec.nodeName={}", n.name())),
    )
    .default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                if let Some(ip) = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse().ok())
                {
                    ips.adopt(pod.metadata.uid.as_deref().unwrap_or_default(), ip);
                }
                if let Err(e) = handle_pod(&client, &mut ips, n, &pod).await {
                    warn!(error = %e, pod = pod.metadata.name.as_deref().unwrap_or(""), "pod update failed");
                }
            }
            Ok(Event::Delete(pod)) => ips.release(pod.metadata.uid.as_deref().unwrap_or_default()),
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => warn!(error = %e, "pod watch failed"),
        }
    }
}

async fn handle_pod(client: &Client, ips: &mut PodIps, n: NodeId, pod: &Pod) -> Result<()> {
    let (Some(ns), Some(name), Some(uid)) = (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
        pod.metadata.uid.as_deref(),
    ) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if pod.metadata.deletion_timestamp.is_some() {
        if pods::hold_terminating(pod) {
            return Ok(());
        }
        // The containers "stopped": finish the deletion as a kubelet does.
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        return match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(kube_err(format!("delete pod {ns}/{name}"))(e)),
        };
    }
    let ready = pods::wanted_ready(pod);
    let Some(addrs) = ips.get_or_assign(uid) else {
        warn!(pod = name, "no pod address left on {n}");
        return Ok(());
    };
    if pods::status_is(pod, ready, addrs) {
        return Ok(());
    }
    let patch = pods::status_patch(pod, ready, addrs, (n.addr4(), n.addr6()), &now());
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube_err(format!("patch pod status {ns}/{name}"))(e)),
    }
}

// --- kube-proxy view -------------------------------------------------------------------

enum ProxyEvent {
    Service(Box<Event<Service>>),
    Slice(Box<Event<EndpointSlice>>),
}

async fn proxy_loop(client: Client, n: NodeId, view: Arc<RwLock<ProxyView>>) {
    // Addresses left from before a restart are forgotten; the watches list everything anew.
    if let Err(e) = ip_batch(&[format!("addr flush dev {IPVS_LINK}")]).await {
        warn!(error = %e, "flushing {IPVS_LINK} failed");
    }
    let services = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(|e| ProxyEvent::Service(Box::new(e))));
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(|e| ProxyEvent::Slice(Box::new(e))));
    let mut events = std::pin::pin!(futures::stream::select(services, slices));
    let mut listeners: HashMap<u16, JoinHandle<()>> = HashMap::new();
    while let Some(first) = events.next().await {
        // Take every event already waiting before touching the system: one `ip` run per burst.
        let mut batch = vec![first];
        while let Some(Some(more)) = events.next().now_or_never() {
            batch.push(more);
        }
        let changes = {
            let mut v = view.write().unwrap_or_else(|p| p.into_inner());
            for ev in batch {
                match ev {
                    Ok(ProxyEvent::Service(ev)) => match *ev {
                        Event::Apply(s) | Event::InitApply(s) => v.apply_service(&s),
                        Event::Delete(s) => v.delete_service(&s),
                        Event::Init => v.clear_services(),
                        Event::InitDone => {}
                    },
                    Ok(ProxyEvent::Slice(ev)) => match *ev {
                        Event::Apply(s) | Event::InitApply(s) => v.apply_slice(&s),
                        Event::Delete(s) => v.delete_slice(&s),
                        Event::Init => v.clear_slices(),
                        Event::InitDone => {}
                    },
                    Err(e) => warn!(error = %e, "service or endpointslice watch failed"),
                }
            }
            v.take_changes()
        };
        if changes.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        for ip in &changes.del_addrs {
            lines.push(format!("addr del {} dev {IPVS_LINK}", host_net(*ip)));
        }
        for ip in &changes.add_addrs {
            let nodad = if ip.is_ipv6() { " nodad" } else { "" };
            lines.push(format!("addr add {} dev {IPVS_LINK}{nodad}", host_net(*ip)));
        }
        if !lines.is_empty()
            && let Err(e) = ip_batch(&lines).await
        {
            warn!(error = %e, "updating {IPVS_LINK} failed");
        }
        for port in changes.close_ports {
            if let Some(h) = listeners.remove(&port) {
                h.abort();
            }
        }
        for port in changes.open_ports {
            match TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port))).await
            {
                Ok(l) => {
                    listeners.insert(port, tokio::spawn(serve(l, n, port, view.clone())));
                }
                Err(e) => warn!(error = %e, port, "cannot listen for Services on this port"),
            }
        }
    }
}

fn host_net(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

async fn ip_batch(lines: &[String]) -> Result<()> {
    let mut child = tokio::process::Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| LabError::SpawnCommand {
            command: "ip -force -batch -".into(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all((lines.join("\n") + "\n").as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| LabError::SpawnCommand {
            command: "ip -force -batch -".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::CommandFailed {
            command: "ip -force -batch -".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Answers HTTP on one port, for every Service address that has the port.
async fn serve(listener: TcpListener, n: NodeId, port: u16, view: Arc<RwLock<ProxyView>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let ip = match local.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let verdict = view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .verdict(ip, port);
        if verdict == Verdict::Answer {
            tokio::spawn(answer(stream, n));
        }
        // Otherwise the connection is dropped, as kube-proxy drops it.
    }
}

async fn answer(mut stream: TcpStream, n: NodeId) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    let read_head = async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => seen.extend_from_slice(&buf[..k]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), read_head).await,
        Ok(true)
    ) {
        return;
    }
    let body = format!("{}\n", n.name());
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
