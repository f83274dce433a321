//! kube-proxy's view of one node, as far as the lab needs it: which LoadBalancer addresses sit
//! on kube-ipvs0, and whether a connection to (address, port) is served here. Pure; the agent
//! feeds it watch events and applies what it reports.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// namespace/name of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

/// namespace/name of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SliceKey {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Entry {
    ips: Vec<IpAddr>,
    tcp_ports: Vec<u16>,
    local_policy: bool,
}

/// What happens to a connection to (address, port) on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A Service is served here: the responder answers with the node's name.
    Answer,
    /// `externalTrafficPolicy: Local` and no usable endpoint on this node: kube-proxy drops.
    NoLocalEndpoint,
    /// No Service has this address and port.
    NoService,
}

/// Address changes for kube-ipvs0, listener changes for the responder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub add_addrs: Vec<IpAddr>,
    pub del_addrs: Vec<IpAddr>,
    pub open_ports: Vec<u16>,
    pub close_ports: Vec<u16>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

#[derive(Debug)]
pub struct ProxyView {
    node: String,
    services: HashMap<ServiceKey, Entry>,
    by_ip: HashMap<IpAddr, BTreeSet<ServiceKey>>,
    port_refs: HashMap<u16, usize>,
    /// Slices with a usable endpoint on this node, per Service.
    local_slices: HashMap<ServiceKey, HashSet<String>>,
    slice_service: HashMap<SliceKey, ServiceKey>,
    /// Touched since the last `take_changes`, to diff only those.
    dirty_ips: HashSet<IpAddr>,
    dirty_ports: HashSet<u16>,
    applied_ips: HashSet<IpAddr>,
    applied_ports: HashSet<u16>,
}

impl ProxyView {
    pub fn new(node: impl Into<String>) -> Self {
        ProxyView {
            node: node.into(),
            services: HashMap::new(),
            by_ip: HashMap::new(),
            port_refs: HashMap::new(),
            local_slices: HashMap::new(),
            slice_service: HashMap::new(),
            dirty_ips: HashSet::new(),
            dirty_ports: HashSet::new(),
            applied_ips: HashSet::new(),
            applied_ports: HashSet::new(),
        }
    }

    pub fn apply_service(&mut self, svc: &Service) {
        let Some(key) = service_key(svc) else { return };
        let entry = entry_of(svc);
        self.set_entry(key, entry);
    }

    pub fn delete_service(&mut self, svc: &Service) {
        if let Some(key) = service_key(svc) {
            self.set_entry(key, Entry::default());
        }
    }

    fn set_entry(&mut self, key: ServiceKey, new: Entry) {
        let old = self.services.remove(&key).unwrap_or_default();
        if old == new {
            if new != Entry::default() {
                self.services.insert(key, new);
            }
            return;
        }
        for ip in &old.ips {
            if let Some(keys) = self.by_ip.get_mut(ip) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.by_ip.remove(ip);
                }
            }
            self.dirty_ips.insert(*ip);
        }
        for port in &old.tcp_ports {
            if let Some(n) = self.port_refs.get_mut(port) {
                *n -= 1;
                if *n == 0 {
                    self.port_refs.remove(port);
                }
            }
            self.dirty_ports.insert(*port);
        }
        for ip in &new.ips {
            self.by_ip.entry(*ip).or_default().insert(key.clone());
            self.dirty_ips.insert(*ip);
        }
        for port in &new.tcp_ports {
            *self.port_refs.entry(*port).or_default() += 1;
            self.dirty_ports.insert(*port);
        }
        if new != Entry::default() {
            self.services.insert(key, new);
        }
    }

    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let Some((slice_key, svc_key)) = slice_keys(slice) else {
            return;
        };
        self.forget_slice(&slice_key);
        if has_usable_endpoint_on(slice, &self.node) {
            self.local_slices
                .entry(svc_key.clone())
                .or_default()
                .insert(slice_key.name.clone());
        }
        self.slice_service.insert(slice_key, svc_key);
    }

    pub fn delete_slice(&mut self, slice: &EndpointSlice) {
        if let Some((slice_key, _)) = slice_keys(slice) {
            self.forget_slice(&slice_key);
        }
    }

    fn forget_slice(&mut self, slice_key: &SliceKey) {
        if let Some(svc) = self.slice_service.remove(slice_key)
            && let Some(set) = self.local_slices.get_mut(&svc)
        {
            set.remove(&slice_key.name);
            if set.is_empty() {
                self.local_slices.remove(&svc);
            }
        }
    }

    /// Forgets everything (a watch restarted and will list again).
    pub fn clear_services(&mut self) {
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for k in keys {
            self.set_entry(k, Entry::default());
        }
    }

    pub fn clear_slices(&mut self) {
        self.local_slices.clear();
        self.slice_service.clear();
    }

    pub fn verdict(&self, ip: IpAddr, port: u16) -> Verdict {
        let Some(keys) = self.by_ip.get(&ip) else {
            return Verdict::NoService;
        };
        let mut found = false;
        for key in keys {
            let Some(e) = self.services.get(key) else {
                continue;
            };
            if !e.tcp_ports.contains(&port) {
                continue;
            }
            found = true;
            if !e.local_policy || self.local_slices.contains_key(key) {
                return Verdict::Answer;
            }
        }
        if found {
            Verdict::NoLocalEndpoint
        } else {
            Verdict::NoService
        }
    }

    /// What changed since the last call, considering only what events touched.
    pub fn take_changes(&mut self) -> Changes {
        let mut c = Changes::default();
        for ip in std::mem::take(&mut self.dirty_ips) {
            let want = self.by_ip.contains_key(&ip);
            if want && self.applied_ips.insert(ip) {
                c.add_addrs.push(ip);
            } else if !want && self.applied_ips.remove(&ip) {
                c.del_addrs.push(ip);
            }
        }
        for port in std::mem::take(&mut self.dirty_ports) {
            let want = self.port_refs.contains_key(&port);
            if want && self.applied_ports.insert(port) {
                c.open_ports.push(port);
            } else if !want && self.applied_ports.remove(&port) {
                c.close_ports.push(port);
            }
        }
        c.add_addrs.sort();
        c.del_addrs.sort();
        c.open_ports.sort();
        c.close_ports.sort();
        c
    }
}

fn service_key(svc: &Service) -> Option<ServiceKey> {
    Some(ServiceKey {
        namespace: svc.metadata.namespace.clone()?,
        name: svc.metadata.name.clone()?,
    })
}

/// The Service's contribution: like kube-proxy, LoadBalancer ingress addresses (except those
/// with ipMode Proxy, which a cloud load balancer terminates) and its TCP ports.
fn entry_of(svc: &Service) -> Entry {
    let Some(spec) = &svc.spec else {
        return Entry::default();
    };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return Entry::default();
    }
    let mut ips: Vec<IpAddr> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Entry::default();
    }
    let mut tcp_ports: Vec<u16> = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| u16::try_from(p.port).ok())
        .collect();
    tcp_ports.sort();
    tcp_ports.dedup();
    Entry {
        ips,
        tcp_ports,
        local_policy: spec.external_traffic_policy.as_deref() == Some("Local"),
    }
}

fn slice_keys(slice: &EndpointSlice) -> Option<(SliceKey, ServiceKey)> {
    let namespace = slice.metadata.namespace.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?
        .clone();
    Some((
        SliceKey {
            namespace: namespace.clone(),
            name: slice.metadata.name.clone()?,
        },
        ServiceKey {
            namespace,
            name: service,
        },
    ))
}

/// kube-proxy's rule for Local traffic: ready endpoints on this node, or failing those,
/// serving ones that are terminating.
fn has_usable_endpoint_on(slice: &EndpointSlice, node: &str) -> bool {
    let local: Vec<_> = slice
        .endpoints
        .iter()
        .filter(|e| e.node_name.as_deref() == Some(node))
        .collect();
    let ready = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
        // An unset `ready` means ready (EndpointConditions API doc).
        e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
    };
    let serving_terminating = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
        e.conditions
            .as_ref()
            .is_some_and(|c| c.serving.unwrap_or(false) && c.terminating.unwrap_or(false))
    };
    local.iter().any(ready) || local.iter().any(serving_terminating)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ips: &[&str], ports: &[u16], local: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer",
                     "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
                     "ports": ports.iter().map(|p| json!({"port": p})).collect::<Vec<_>>()},
            "status": {"loadBalancer": {"ingress": ips.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>()}}
        }))
        .unwrap()
    }

    fn slice(name: &str, service: &str, eps: &[(&str, bool)]) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": eps.iter().map(|(node, ready)| json!({
                "addresses": ["10.244.1.2"], "nodeName": node, "conditions": {"ready": ready}
            })).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ports_follow_services_and_shared_ips_stay_until_the_last_goes() {
        let mut v = ProxyView::new("node1");
        v.apply_service(&svc("a", &["198.51.100.1"], &[80], false));
        v.apply_service(&svc("b", &["198.51.100.1"], &[443], false));
        let c = v.take_changes();
        assert_eq!(c.add_addrs, vec![ip("198.51.100.1")]);
        assert_eq!(c.open_ports, vec![80, 443]);
        assert_eq!(v.verdict(ip("198.51.100.1"), 443), Verdict::Answer);
        assert_eq!(v.verdict(ip("198.51.100.1"), 8080), Verdict::NoService);

        v.delete_service(&svc("a", &[], &[], false));
        let c = v.take_changes();
        assert!(c.del_addrs.is_empty(), "b still holds the address");
        assert_eq!(c.close_ports, vec![80]);
        v.delete_service(&svc("b", &[], &[], false));
        assert_eq!(v.take_changes().del_addrs, vec![ip("198.51.100.1")]);
        assert!(v.take_changes().is_empty());
    }

    #[test]
    fn local_policy_answers_only_with_a_ready_endpoint_here() {
        let mut v = ProxyView::new("node1");
        v.apply_service(&svc("web", &["198.51.100.2"], &[80], true));
        assert_eq!(v.verdict(ip("198.51.100.2"), 80), Verdict::NoLocalEndpoint);
        v.apply_slice(&slice("web-abc", "web", &[("node2", true)]));
        assert_eq!(v.verdict(ip("198.51.100.2"), 80), Verdict::NoLocalEndpoint);
        v.apply_slice(&slice(
            "web-abc",
            "web",
            &[("node2", true), ("node1", false)],
        ));
        assert_eq!(v.verdict(ip("198.51.100.2"), 80), Verdict::NoLocalEndpoint);
        v.apply_slice(&slice("web-abc", "web", &[("node1", true)]));
        assert_eq!(v.verdict(ip("198.51.100.2"), 80), Verdict::Answer);
        v.delete_slice(&slice("web-abc", "web", &[]));
        assert_eq!(v.verdict(ip("198.51.100.2"), 80), Verdict::NoLocalEndpoint);
    }

    #[test]
    fn non_loadbalancer_and_proxy_mode_addresses_are_not_placed() {
        let mut v = ProxyView::new("node1");
        let mut s = svc("c", &["198.51.100.3"], &[80], false);
        s.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        v.apply_service(&s);
        assert!(v.take_changes().is_empty());
        let mut s = svc("d", &["198.51.100.4"], &[80], false);
        s.status
            .as_mut()
            .unwrap()
            .load_balancer
            .as_mut()
            .unwrap()
            .ingress
            .as_mut()
            .unwrap()[0]
            .ip_mode = Some("Proxy".into());
        v.apply_service(&s);
        assert!(v.take_changes().is_empty());
    }

    #[test]
    fn an_address_change_moves_the_address() {
        let mut v = ProxyView::new("node1");
        v.apply_service(&svc("a", &["198.51.100.5"], &[80], false));
        v.take_changes();
        v.apply_service(&svc(
            "a",
            &["198.51.100.6", "2001:db8:198::6"],
            &[80],
            false,
        ));
        let c = v.take_changes();
        assert_eq!(c.add_addrs, vec![ip("198.51.100.6"), ip("2001:db8:198::6")]);
        assert_eq!(c.del_addrs, vec![ip("198.51.100.5")]);
        assert!(c.open_ports.is_empty() && c.close_ports.is_empty());
    }
}
