//! ferrolb-controller on the lab's real API server: allocation, pool choice, families,
//! exhaustion and growth, sharing, release, pool status, bad input (issue 5).
//!
//! The tests share one lab and run at once; each works in its own namespace with pools that
//! serve only that namespace and own address ranges, so none can take another's addresses.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod controller_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_common::*;
use ferrolb_e2e::{Lab, poll};
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn a_service_gets_an_address_from_the_matching_pool_shown_by_kubectl() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-basic").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-basic", &ns, &["198.51.100.0/30"]).await;
    let api = services(&lab, &ns).await;
    create(&lab, &ns, service("web", json!({}), json!({}))).await;

    let svc = wait_allocated(&api, "web").await;
    assert_eq!(ingress(&svc), ["198.51.100.0"]);
    let c = condition(&svc).unwrap();
    assert_eq!(c.message, "allocated 198.51.100.0 from pool ctl-basic");
    assert_eq!(
        annotation(&svc, "ferrolb.io/ip-allocated-from-pool"),
        Some("ctl-basic")
    );
    let ip_mode = svc
        .status
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap()[0]
        .ip_mode
        .clone();
    assert_eq!(ip_mode.as_deref(), Some("VIP"));

    let row = lab
        .kubectl(&["get", "svc", "web", "-n", &ns, "--no-headers"])
        .await
        .unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[3], "198.51.100.0", "EXTERNAL-IP column: {row}");

    let (type_, message) = wait_event(&lab, &ns, "web", "IPAllocated").await;
    assert_eq!(type_, "Normal");
    assert!(message.contains("198.51.100.0"), "{message}");

    poll(
        "the pool's status counting the address",
        ALLOCATION,
        || async {
            let s = pool_status(&lab, "ctl-basic").await;
            let valid = pool_condition(&s, "Valid");
            if s["assignedIPv4"] == 1
                && s["availableIPv4"] == 3
                && valid.as_ref().is_some_and(|v| v.0 == "True")
            {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn requested_address_requested_pool_and_auto_assign_false() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-request").await.unwrap();
    let _auto = ns_pool(&lab, "ctl-req-auto", &ns, &["198.51.100.16/30"]).await;
    let _manual = pool(
        &lab,
        "ctl-req-manual",
        json!({"addresses": ["198.51.100.20/30"], "autoAssign": false,
               "serviceAllocation": {"namespaces": [&*ns]}}),
    )
    .await;
    let api = services(&lab, &ns).await;

    create(&lab, &ns, service("plain", json!({}), json!({}))).await;
    create(
        &lab,
        &ns,
        service(
            "by-ip",
            json!({"ferrolb.io/loadBalancerIPs": "198.51.100.22"}),
            json!({}),
        ),
    )
    .await;
    create(
        &lab,
        &ns,
        service(
            "by-pool",
            json!({"ferrolb.io/address-pool": "ctl-req-manual"}),
            json!({}),
        ),
    )
    .await;
    create(
        &lab,
        &ns,
        service(
            "by-field",
            json!({}),
            json!({"loadBalancerIP": "198.51.100.17"}),
        ),
    )
    .await;

    let plain = wait_allocated(&api, "plain").await;
    assert!(
        ["198.51.100.16", "198.51.100.18"].contains(&ingress(&plain)[0].as_str()),
        "autoAssign: false pools are not used unasked: {:?}",
        ingress(&plain)
    );
    let by_ip = wait_allocated(&api, "by-ip").await;
    assert_eq!(ingress(&by_ip), ["198.51.100.22"]);
    assert_eq!(
        annotation(&by_ip, "ferrolb.io/ip-allocated-from-pool"),
        Some("ctl-req-manual")
    );
    let by_pool = wait_allocated(&api, "by-pool").await;
    assert_eq!(ingress(&by_pool), ["198.51.100.20"]);
    let by_field = wait_allocated(&api, "by-field").await;
    assert_eq!(ingress(&by_field), ["198.51.100.17"]);

    // A manual pool alone serves nobody unasked.
    let only_manual = lab.namespace("ctl-request-manual").await.unwrap();
    let _manual_only = pool(
        &lab,
        "ctl-req-manual-only",
        json!({"addresses": ["198.51.100.24/30"], "autoAssign": false,
               "serviceAllocation": {"namespaces": [&*only_manual]}}),
    )
    .await;
    create(&lab, &only_manual, service("unasked", json!({}), json!({}))).await;
    let unasked = wait_reason(
        &services(&lab, &only_manual).await,
        "unasked",
        "NoMatchingPool",
    )
    .await;
    assert!(ingress(&unasked).is_empty());
}

#[tokio::test]
async fn namespace_and_service_selectors_with_priorities() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-select").await.unwrap();
    let tier = format!("tier-{}", &*ns);
    let selected = json!([{"matchLabels": {"flb-test-tier": &tier}}]);
    let _high = pool(
        &lab,
        "ctl-sel-high",
        json!({"addresses": ["198.51.100.32"],
               "serviceAllocation": {"priority": 10, "namespaceSelectors": selected}}),
    )
    .await;
    let _low = pool(
        &lab,
        "ctl-sel-low",
        json!({"addresses": ["198.51.100.33-198.51.100.34"],
               "serviceAllocation": {"priority": 20, "namespaceSelectors": selected}}),
    )
    .await;
    let _special = pool(
        &lab,
        "ctl-sel-special",
        json!({"addresses": ["198.51.100.35"],
               "serviceAllocation": {"priority": 5, "namespaces": [&*ns],
                   "serviceSelectors": [{"matchLabels": {"role": "special"}}]}}),
    )
    .await;
    let api = services(&lab, &ns).await;

    // Before the namespace carries the label, no pool serves a plain Service here.
    create(&lab, &ns, service("early", json!({}), json!({}))).await;
    wait_reason(&api, "early", "NoMatchingPool").await;
    // Labelling the namespace wakes its Services: the highest-priority pool serves.
    label_namespace(
        &lab,
        &ns,
        BTreeMap::from([("flb-test-tier", tier.as_str())]),
    )
    .await;
    let early = wait_allocated(&api, "early").await;
    assert_eq!(ingress(&early), ["198.51.100.32"]);
    // The high-priority pool is full: the next priority serves.
    create(&lab, &ns, service("second", json!({}), json!({}))).await;
    let second = wait_allocated(&api, "second").await;
    assert_eq!(ingress(&second), ["198.51.100.33"]);
    // A Service selected by the lowest-numbered priority pool's serviceSelectors goes there.
    let mut special = service("special", json!({}), json!({}));
    special.metadata.labels = Some([("role".to_string(), "special".to_string())].into());
    create(&lab, &ns, special).await;
    let special = wait_allocated(&api, "special").await;
    assert_eq!(ingress(&special), ["198.51.100.35"]);
}

#[tokio::test]
async fn prefer_and_require_dual_stack_show_both_families() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-dual").await.unwrap();
    let _pool = ns_pool(
        &lab,
        "ctl-dual",
        &ns,
        &["198.51.100.40/30", "2001:db8:c1::/120"],
    )
    .await;
    let api = services(&lab, &ns).await;
    create(
        &lab,
        &ns,
        service(
            "prefer",
            json!({}),
            json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        ),
    )
    .await;
    let prefer = wait_allocated(&api, "prefer").await;
    assert_eq!(ingress(&prefer), ["198.51.100.40", "2001:db8:c1::"]);
    create(
        &lab,
        &ns,
        service(
            "require",
            json!({}),
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"]}),
        ),
    )
    .await;
    let require = wait_allocated(&api, "require").await;
    assert_eq!(ingress(&require), ["2001:db8:c1::1", "198.51.100.41"]);
    let row = lab
        .kubectl(&["get", "svc", "require", "-n", &ns, "--no-headers"])
        .await
        .unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    let mut shown: Vec<&str> = columns[3].split(',').collect();
    shown.sort();
    assert_eq!(shown, ["198.51.100.41", "2001:db8:c1::1"], "{row}");

    // RequireDualStack with only IPv4 to offer: nothing, and a condition saying why.
    let v4only = lab.namespace("ctl-dual-v4").await.unwrap();
    let _v4 = ns_pool(&lab, "ctl-dual-v4", &v4only, &["198.51.100.44/30"]).await;
    create(
        &lab,
        &v4only,
        service(
            "require",
            json!({}),
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
        ),
    )
    .await;
    let refused = wait_reason(&services(&lab, &v4only).await, "require", "NoMatchingPool").await;
    assert!(ingress(&refused).is_empty());
    assert!(
        condition(&refused).unwrap().message.contains("IPv6"),
        "{:?}",
        condition(&refused)
    );
}

#[tokio::test]
async fn a_service_of_another_load_balancer_class_is_left_alone() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-class").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-class", &ns, &["198.51.100.48/30"]).await;
    let api = services(&lab, &ns).await;
    create(
        &lab,
        &ns,
        service(
            "theirs",
            json!({}),
            json!({"loadBalancerClass": "example.com/other-lb"}),
        ),
    )
    .await;
    create(&lab, &ns, service("ours", json!({}), json!({}))).await;
    // The controller has handled the namespace's events up to "ours" at least.
    wait_allocated(&api, "ours").await;
    let theirs = api.get("theirs").await.unwrap();
    assert!(ingress(&theirs).is_empty());
    assert!(condition(&theirs).is_none());
    assert!(annotation(&theirs, "ferrolb.io/ip-allocated-from-pool").is_none());
    let managers: Vec<String> = theirs
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m == "ferrolb-controller"),
        "{managers:?}"
    );
}

#[tokio::test]
async fn an_exhausted_pool_refuses_naming_itself_and_growing_it_serves_within_2s() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-exhaust").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-exhaust", &ns, &["198.51.100.52-198.51.100.53"]).await;
    let api = services(&lab, &ns).await;
    for name in ["a", "b"] {
        create(&lab, &ns, service(name, json!({}), json!({}))).await;
        wait_allocated(&api, name).await;
    }
    create(&lab, &ns, service("c", json!({}), json!({}))).await;
    let c = wait_reason(&api, "c", "PoolExhausted").await;
    let cond = condition(&c).unwrap();
    assert_eq!(cond.status, "False");
    assert!(cond.message.contains("ctl-exhaust"), "{}", cond.message);
    let (type_, message) = wait_event(&lab, &ns, "c", "AllocationFailed").await;
    assert_eq!(type_, "Warning");
    assert!(message.contains("ctl-exhaust"), "{message}");

    let before: Vec<_> = [api.get("a").await.unwrap(), api.get("b").await.unwrap()]
        .iter()
        .map(|s| (s.metadata.resource_version.clone(), ingress(s)))
        .collect();
    let grown = Instant::now();
    let _grown = ns_pool(&lab, "ctl-exhaust", &ns, &["198.51.100.52-198.51.100.54"]).await;
    let c = wait_reason_within(&api, "c", "Allocated", Duration::from_secs(2)).await;
    println!(
        "grown pool served the waiting Service in {:?}",
        grown.elapsed()
    );
    assert_eq!(ingress(&c), ["198.51.100.54"]);
    // No other change: the allocated Services were not even written.
    let after: Vec<_> = [api.get("a").await.unwrap(), api.get("b").await.unwrap()]
        .iter()
        .map(|s| (s.metadata.resource_version.clone(), ingress(s)))
        .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn sharing_one_key_different_ports_share_and_an_overlapping_port_conflicts() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-share").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-share", &ns, &["198.51.100.56/30"]).await;
    let api = services(&lab, &ns).await;
    let shared = |name: &str, port: i32, extra: serde_json::Value| {
        let mut annotations = json!({"ferrolb.io/allow-shared-ip": "web"});
        for (k, v) in extra.as_object().unwrap() {
            annotations[k] = v.clone();
        }
        service(
            name,
            annotations,
            json!({"ports": [{"name": "p", "port": port, "targetPort": 8080, "protocol": "TCP"}]}),
        )
    };
    create(&lab, &ns, shared("http", 80, json!({}))).await;
    let http = wait_allocated(&api, "http").await;
    create(&lab, &ns, shared("https", 443, json!({}))).await;
    let https = wait_allocated(&api, "https").await;
    assert_eq!(ingress(&http), ingress(&https), "one address for both");
    let address = ingress(&http)[0].clone();

    create(
        &lab,
        &ns,
        shared(
            "also-https",
            443,
            json!({"ferrolb.io/loadBalancerIPs": address}),
        ),
    )
    .await;
    let conflict = wait_reason(&api, "also-https", "SharingConflict").await;
    let message = &condition(&conflict).unwrap().message;
    assert!(message.contains("443"), "{message}");
    assert!(ingress(&conflict).is_empty());
}

#[tokio::test]
async fn type_change_releases_the_address_clears_the_status_and_serves_the_next() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-release").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-release", &ns, &["198.51.100.60"]).await;
    let api = services(&lab, &ns).await;
    create(&lab, &ns, service("first", json!({}), json!({}))).await;
    wait_allocated(&api, "first").await;
    create(&lab, &ns, service("waiting", json!({}), json!({}))).await;
    wait_reason(&api, "waiting", "PoolExhausted").await;

    api.patch(
        "first",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    let waiting = wait_allocated(&api, "waiting").await;
    assert_eq!(ingress(&waiting), ["198.51.100.60"]);
    let first = poll("first's status cleared", ALLOCATION, || async {
        let s = api.get("first").await.map_err(|e| e.to_string())?;
        if ingress(&s).is_empty()
            && condition(&s).is_none()
            && annotation(&s, "ferrolb.io/ip-allocated-from-pool").is_none()
        {
            Ok(s)
        } else {
            Err(format!("{:?}", s.status))
        }
    })
    .await
    .unwrap();
    assert!(ingress(&first).is_empty());
    let (_, message) = wait_event(&lab, &ns, "first", "IPReleased").await;
    assert!(message.contains("198.51.100.60"), "{message}");
}

#[tokio::test]
async fn pool_status_reports_overlaps_naming_the_other_pool_and_invalid_entries() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-poolstatus").await.unwrap();
    let _a = ns_pool(&lab, "ctl-overlap-a", &ns, &["198.51.100.64/29"]).await;
    let _b = ns_pool(&lab, "ctl-overlap-b", &ns, &["198.51.100.68/30"]).await;
    for (name, other) in [
        ("ctl-overlap-a", "ctl-overlap-b"),
        ("ctl-overlap-b", "ctl-overlap-a"),
    ] {
        poll(
            &format!("{name} Overlapping naming {other}"),
            ALLOCATION,
            || async {
                let s = pool_status(&lab, name).await;
                match pool_condition(&s, "Overlapping") {
                    Some((status, reason, message))
                        if status == "True"
                            && reason == "OverlapsOtherPool"
                            && message.contains(other) =>
                    {
                        Ok(())
                    }
                    c => Err(format!("{c:?}")),
                }
            },
        )
        .await
        .unwrap();
    }
    // An IPv6 range ending before it starts passes the API server (CEL cannot compare IPv6
    // addresses) but not ferrolb: Valid=False with the parser's message.
    let _bad = pool(
        &lab,
        "ctl-invalid",
        json!({"addresses": ["2001:db8:c9::9-2001:db8:c9::1"],
               "serviceAllocation": {"namespaces": [&*ns]}}),
    )
    .await;
    poll("ctl-invalid Valid=False", ALLOCATION, || async {
        let s = pool_status(&lab, "ctl-invalid").await;
        match pool_condition(&s, "Valid") {
            Some((status, reason, message))
                if status == "False"
                    && reason == "InvalidAddress"
                    && message.contains("2001:db8:c9::9-2001:db8:c9::1") =>
            {
                Ok(())
            }
            c => Err(format!("{c:?}")),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bad_input_ends_in_a_clear_condition_or_event_never_a_crash() {
    let lab = Lab::shared().await;
    let ns = lab.namespace("ctl-bad").await.unwrap();
    let _main = ns_pool(&lab, "ctl-bad-main", &ns, &["198.51.100.72/30"]).await;
    let spare = ns_pool(&lab, "ctl-bad-spare", &ns, &["198.51.100.76/30"]).await;
    let api = services(&lab, &ns).await;

    for (name, annotations, needle) in [
        (
            "bad-ips",
            json!({"ferrolb.io/loadBalancerIPs": "198.51.100.72,banana"}),
            "ferrolb.io/loadBalancerIPs",
        ),
        (
            "bad-pool",
            json!({"ferrolb.io/address-pool": "Not_A_Pool"}),
            "ferrolb.io/address-pool",
        ),
        (
            "bad-key",
            json!({"metallb.io/allow-shared-ip": ""}),
            "metallb.io/allow-shared-ip",
        ),
        (
            "two-v4",
            json!({"ferrolb.io/loadBalancerIPs": "198.51.100.72,198.51.100.73"}),
            "two IPv4",
        ),
    ] {
        create(&lab, &ns, service(name, annotations, json!({}))).await;
        let s = wait_reason(&api, name, "InvalidAnnotation").await;
        let c = condition(&s).unwrap();
        assert_eq!(c.status, "False");
        assert!(c.message.contains(needle), "{name}: {}", c.message);
        assert!(ingress(&s).is_empty());
    }

    create(
        &lab,
        &ns,
        service(
            "nowhere",
            json!({"ferrolb.io/loadBalancerIPs": "203.0.113.222"}),
            json!({}),
        ),
    )
    .await;
    let nowhere = wait_reason(&api, "nowhere", "RequestedIPUnavailable").await;
    assert!(
        condition(&nowhere)
            .unwrap()
            .message
            .contains("203.0.113.222 is not in any pool"),
        "{:?}",
        condition(&nowhere)
    );

    // A MetalLB spelling works and says which key to use.
    create(
        &lab,
        &ns,
        service(
            "old-style",
            json!({"metallb.universe.tf/address-pool": "ctl-bad-spare"}),
            json!({}),
        ),
    )
    .await;
    let old = wait_allocated(&api, "old-style").await;
    assert_eq!(
        annotation(&old, "ferrolb.io/ip-allocated-from-pool"),
        Some("ctl-bad-spare")
    );
    let (type_, message) = wait_event(&lab, &ns, "old-style", "DeprecatedAnnotation").await;
    assert_eq!(type_, "Warning");
    assert!(message.contains("use ferrolb.io/address-pool"), "{message}");

    // Pools deleted under live Services: each affected Service moves, with an Event.
    create(&lab, &ns, service("live", json!({}), json!({}))).await;
    let live = wait_allocated(&api, "live").await;
    assert_eq!(
        annotation(&live, "ferrolb.io/ip-allocated-from-pool"),
        Some("ctl-bad-main")
    );
    lab.kubectl(&["delete", "ipaddresspool", "ctl-bad-main"])
        .await
        .unwrap();
    let moved = poll("live moved to the spare pool", ALLOCATION, || async {
        let s = api.get("live").await.map_err(|e| e.to_string())?;
        match annotation(&s, "ferrolb.io/ip-allocated-from-pool") {
            Some("ctl-bad-spare") if !ingress(&s).is_empty() => Ok(s),
            a => Err(format!("{a:?} {:?}", ingress(&s))),
        }
    })
    .await
    .unwrap();
    assert!(
        ingress(&moved)[0].starts_with("198.51.100.7"),
        "{:?}",
        ingress(&moved)
    );
    let (type_, message) = wait_event(&lab, &ns, "live", "IPChanged").await;
    assert_eq!(type_, "Warning");
    assert!(
        message.contains("pool ctl-bad-main was deleted"),
        "{message}"
    );
    drop(spare);
    let gone = wait_reason(&api, "live", "NoMatchingPool").await;
    assert!(ingress(&gone).is_empty());
    wait_event(&lab, &ns, "live", "AllocationFailed").await;

    // Both replicas still answer: nothing crashed.
    for port in metrics_ports() {
        assert!(
            metric(
                port,
                "ferrolb_build_info{program=\"controller\",version=\"0.1.0\"}"
            )
            .await
            .is_some(),
            "replica on port {port} is down"
        );
    }
    assert_eq!(controller_panics(), Vec::<String>::new());
}
