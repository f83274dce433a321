//! Pod IPs and the status the kubelet would write for a running, ready Pod.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// Set `"false"` on a Pod to have the agent report it not ready (a failing readiness probe).
pub const READY_ANNOTATION: &str = "lab.ferrolb.io/ready";
/// Set `"true"` to keep a deleted Pod terminating until the annotation goes (the agent
/// otherwise finishes a deletion at once, like a container that stops quickly).
pub const HOLD_TERMINATING_ANNOTATION: &str = "lab.ferrolb.io/hold-terminating";

/// Hands out pod addresses of one node, index `i` being the i-th host of both ranges.
#[derive(Debug)]
pub struct PodIps {
    net4: Ipv4Net,
    net6: Ipv6Net,
    by_pod: HashMap<String, u32>,
    used: BTreeSet<u32>,
}

impl PodIps {
    pub fn new(net4: Ipv4Net, net6: Ipv6Net) -> Self {
        PodIps {
            net4,
            net6,
            by_pod: HashMap::new(),
            used: BTreeSet::new(),
        }
    }

    fn capacity(&self) -> u32 {
        // .0 is the network, .1 would be a gateway, the last one broadcast.
        (1u32 << (32 - u32::from(self.net4.prefix_len()))).saturating_sub(3)
    }

    fn addrs(&self, index: u32) -> (Ipv4Addr, Ipv6Addr) {
        let v4 = Ipv4Addr::from(u32::from(self.net4.network()) + 2 + index);
        let v6 = Ipv6Addr::from(u128::from(self.net6.network()) + 2 + u128::from(index));
        (v4, v6)
    }

    fn index_of(&self, ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(a) if self.net4.contains(&a) => {
                u32::from(a).checked_sub(u32::from(self.net4.network()) + 2)
            }
            _ => None,
        }
        .filter(|&i| i < self.capacity())
    }

    /// Records the address a Pod already has (after an agent restart).
    pub fn adopt(&mut self, uid: &str, ip: IpAddr) {
        if let Some(i) = self.index_of(ip) {
            self.by_pod.insert(uid.to_string(), i);
            self.used.insert(i);
        }
    }

    /// The Pod's addresses, allocating them on first use; `None` when the node is full.
    pub fn get_or_assign(&mut self, uid: &str) -> Option<(Ipv4Addr, Ipv6Addr)> {
        if let Some(&i) = self.by_pod.get(uid) {
            return Some(self.addrs(i));
        }
        let i = (0..self.capacity()).find(|i| !self.used.contains(i))?;
        self.used.insert(i);
        self.by_pod.insert(uid.to_string(), i);
        Some(self.addrs(i))
    }

    pub fn release(&mut self, uid: &str) {
        if let Some(i) = self.by_pod.remove(uid) {
            self.used.remove(&i);
        }
    }
}

/// Whether the agent wants the Pod ready (the default) or not.
pub fn wanted_ready(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(READY_ANNOTATION))
        .is_none_or(|v| v != "false")
}

pub fn hold_terminating(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HOLD_TERMINATING_ANNOTATION))
        .is_some_and(|v| v == "true")
}

fn condition_status(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// Whether the status already says what the agent would write.
pub fn status_is(pod: &Pod, ready: bool, ips: (Ipv4Addr, Ipv6Addr)) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    let want = if ready { "True" } else { "False" };
    status.phase.as_deref() == Some("Running")
        && status.pod_ip.as_deref() == Some(ips.0.to_string().as_str())
        && condition_status(pod, "Ready").as_deref() == Some(want)
}

/// The status a kubelet posts for a running Pod (JSON merge patch of the status subresource).
pub fn status_patch(
    pod: &Pod,
    ready: bool,
    ips: (Ipv4Addr, Ipv6Addr),
    host_ips: (Ipv4Addr, Ipv6Addr),
    now: &str,
) -> Value {
    let r = if ready { "True" } else { "False" };
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| now.to_string());
    json!({
        "status": {
            "phase": "Running",
            "hostIP": host_ips.0.to_string(),
            "hostIPs": [{"ip": host_ips.0.to_string()}, {"ip": host_ips.1.to_string()}],
            "podIP": ips.0.to_string(),
            "podIPs": [{"ip": ips.0.to_string()}, {"ip": ips.1.to_string()}],
            "startTime": start,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": start},
                {"type": "Initialized", "status": "True", "lastTransitionTime": start},
                {"type": "ContainersReady", "status": r, "lastTransitionTime": now},
                {"type": "Ready", "status": r, "lastTransitionTime": now},
            ],
            "containerStatuses": containers,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pool() -> PodIps {
        PodIps::new(
            "10.244.2.0/24".parse().unwrap(),
            "2001:db8:244:2::/64".parse().unwrap(),
        )
    }

    #[test]
    fn addresses_are_stable_reused_after_release_and_run_out() {
        let mut p = pool();
        let a = p.get_or_assign("a").unwrap();
        assert_eq!(a.0.to_string(), "10.244.2.2");
        assert_eq!(a.1.to_string(), "2001:db8:244:2::2");
        assert_eq!(p.get_or_assign("a"), Some(a));
        let b = p.get_or_assign("b").unwrap();
        assert_eq!(b.0.to_string(), "10.244.2.3");
        p.release("a");
        assert_eq!(p.get_or_assign("c"), Some(a));
        // A /24 holds .2 to .254: 253 pods, two of them b and c.
        for i in 0..251 {
            assert!(p.get_or_assign(&format!("x{i}")).is_some(), "pod {i}");
        }
        assert_eq!(p.get_or_assign("one-too-many"), None);
    }

    #[test]
    fn adopted_addresses_are_not_handed_out_again() {
        let mut p = pool();
        p.adopt("old", "10.244.2.2".parse().unwrap());
        p.adopt("foreign", "192.0.2.50".parse().unwrap());
        assert_eq!(p.get_or_assign("new").unwrap().0.to_string(), "10.244.2.3");
        assert_eq!(p.get_or_assign("old").unwrap().0.to_string(), "10.244.2.2");
    }

    #[test]
    fn the_patch_marks_every_container_and_round_trips_as_ready() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "annotations": {READY_ANNOTATION: "true"}},
            "spec": {"nodeName": "node2", "containers": [{"name": "app", "image": "lab.invalid/app"}]}
        }))
        .unwrap();
        let ips = pool().get_or_assign("p").unwrap();
        let host = (
            "192.0.2.12".parse().unwrap(),
            "2001:db8:2::12".parse().unwrap(),
        );
        assert!(wanted_ready(&pod));
        assert!(!status_is(&pod, true, ips));
        let patch = status_patch(&pod, true, ips, host, "2026-01-01T00:00:00Z");
        assert_eq!(patch["status"]["containerStatuses"][0]["name"], "app");
        pod.status = Some(serde_json::from_value(patch["status"].clone()).unwrap());
        assert!(status_is(&pod, true, ips));
        assert!(!status_is(&pod, false, ips));
    }
}
