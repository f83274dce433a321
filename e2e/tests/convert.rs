//! `ferrolb-controller convert` end to end: MetalLB manifests written for this test (L2 with
//! node and interface selectors, BGP with a Community alias, a large community, a password
//! Secret, pool selectors, namespace selectors and priorities) are converted, the output is
//! applied to the lab's API server, and the lab then gives the addresses and makes the
//! announcements the MetalLB manifests describe.
//!
//! The BGP session of the manifests is authenticated with TCP MD5. The lab's node BIRD
//! (examples/lab/bird/node.conf) has no password on its session for the speaker, so this
//! test adds one more passive session to every node's BIRD, through the lab's file for
//! injected configuration, for a speaker that connects from 127.0.0.2 with the password; the
//! manifests' BGPPeer says so with `sourceAddress: 127.0.0.2`.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ip, net, wait_route_via};
use ferrolb_e2e::state::Paths;
use ferrolb_e2e::topology::{CLIENT_NS, L2CLIENT_NS};
use ferrolb_e2e::{Lab, NodeId, poll};

const WAIT: Duration = Duration::from_secs(30);

/// The password of the BGP sessions (in the MetalLB Secret and in the node BIRDs).
const PASSWORD: &str = "flb-convert-md5";

/// What these manifests describe, in MetalLB's terms:
/// - Services that ask for pool "office" (MetalLB's annotation) get 192.0.2.230 and
///   2001:db8:2::230 onwards, answered by ARP/NDP on eth0 of node2 or node3, never node1.
/// - Services in namespaces labelled team=web get 198.51.100.64/28 first (pool "web",
///   priority 1); other Services get pool "general" (198.51.100.128/28).
/// - Pools labelled advertise=bgp are announced over BGP from every node to its BIRD, over a
///   session with the password of Secret bgp-password, with community 64600:100 (through
///   the alias "web-routes") and large community 64600:1:2.
const METALLB: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: office
  namespace: metallb-system
spec:
  addresses:
    - 192.0.2.230-192.0.2.234
    - 2001:db8:2::230-2001:db8:2::234
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: office
  namespace: metallb-system
spec:
  ipAddressPools: [office]
  nodeSelectors:
    - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [node2, node3]}
  interfaces: [eth0]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: web
  namespace: metallb-system
  labels: {advertise: bgp}
spec:
  addresses: [198.51.100.64/28]
  serviceAllocation:
    priority: 1
    namespaceSelectors:
      - matchLabels: {team: web}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: general
  namespace: metallb-system
  labels: {advertise: bgp}
spec:
  addresses: [198.51.100.128/28]
  avoidBuggyIPs: true
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: fabric
  namespace: metallb-system
spec:
  communities:
    - {name: web-routes, value: "64600:100"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: to-node-bird
  namespace: metallb-system
spec:
  ipAddressPoolSelectors:
    - matchLabels: {advertise: bgp}
  peers: [node-bird]
  communities: [web-routes, "large:64600:1:2"]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: node-bird
  namespace: metallb-system
spec:
  myASN: 64700
  peerASN: 64600
  peerAddress: 127.0.0.1
  sourceAddress: 127.0.0.2
  holdTime: 9s
  keepaliveTime: 3s
  passwordSecret:
    name: bgp-password
    namespace: metallb-system
---
apiVersion: v1
kind: Secret
metadata:
  name: bgp-password
  namespace: metallb-system
type: kubernetes.io/basic-auth
stringData:
  password: flb-convert-md5
"#;

/// BIRD's side of the password session: like node.conf's `ferrolb_speaker`, for a speaker
/// connecting from 127.0.0.2 with the password.
fn md5_session() -> String {
    format!(
        r#"
protocol bgp convert_md5 {{
  local 127.0.0.1 as NODE_ASN;
  neighbor 127.0.0.2 as SPEAKER_ASN;
  passive on;
  multihop;
  password "{PASSWORD}";
  ipv4 {{ import filter ferrolb_speaker_import; export none; }};
  ipv6 {{ import filter ferrolb_speaker_import; export none; }};
}}
"#
    )
}

/// Puts the nodes' BIRD configuration back when the test ends, passing or not.
struct RestoreBird(Paths, Vec<NodeId>);

impl Drop for RestoreBird {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = ferrolb_e2e::routing::inject(&self.0, *n, &[]);
        }
    }
}

fn add_md5_session(paths: &Paths, n: NodeId) {
    let text = ferrolb_e2e::routing::injected_config(&[]) + &md5_session();
    ferrolb_e2e::state::write_file(&paths.bird_injected(n), &text).unwrap();
    ferrolb_e2e::routing::birdc(paths, Some(n), &["configure"]).unwrap();
}

/// Runs `ferrolb-controller convert` with `input` on stdin: (stdout, stderr).
fn convert(input: &str) -> (String, String) {
    use std::io::Write;
    let mut child = Command::new(ferrolb_e2e::harness::bin_dir().join("ferrolb-controller"))
        .arg("convert")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "convert failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

async fn addresses(lab: &Lab, ns: &str, svc: &str) -> Vec<IpAddr> {
    let out = lab
        .kubectl(&[
            "get",
            "service",
            svc,
            "-n",
            ns,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
        .await
        .unwrap();
    out.split_whitespace().map(|a| a.parse().unwrap()).collect()
}

async fn wait_addresses(lab: &Lab, ns: &str, svc: &str, want: &[&str]) {
    let want: Vec<IpAddr> = want.iter().map(|a| ip(a)).collect();
    poll(&format!("{ns}/{svc} to get {want:?}"), WAIT, || async {
        let got = addresses(lab, ns, svc).await;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
    .unwrap();
}

fn service(name: &str, annotations: &str, dual: bool) -> String {
    let families = if dual {
        "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\n\
         spec:\n  type: LoadBalancer\n{families}  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}]\n"
    )
}

/// The node whose MAC the L2 client resolves `addr` to, once it answers HTTP through it.
async fn l2_owner(lab: &Lab, addr: IpAddr) -> NodeId {
    poll(
        &format!("HTTP to {addr} from {L2CLIENT_NS}"),
        WAIT,
        || async {
            let body = lab
                .http_get(L2CLIENT_NS, addr, 80)
                .await
                .map_err(|e| e.to_string())?;
            let node: NodeId = body.parse()?;
            let mac = lab
                .neighbours(L2CLIENT_NS)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|n| n.ip == addr)
                .and_then(|n| n.mac);
            let want = lab.node_mac(node).await.map_err(|e| e.to_string())?;
            if mac.as_deref() == Some(want.as_str()) {
                Ok(node)
            } else {
                Err(format!("{node} answered, neighbour entry {mac:?}"))
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn converted_metallb_configuration_gives_the_same_addresses_and_announcements() {
    let lab = Lab::shared().await;
    let nodes = lab.nodes();

    // Convert. The password Secret is one the lab's speakers may read (the chart's
    // bgp.passwordSecrets), in the namespace they read it from.
    let (yaml, stderr) = convert(METALLB);
    assert!(
        stderr.contains(&format!(
            "set it to [\"{}\"]",
            ferrolb_e2e::chart::PASSWORD_SECRETS[0]
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("community alias \"web-routes\" is written as its value 64600:100"),
        "{stderr}"
    );
    assert!(
        !yaml
            .lines()
            .any(|l| l.starts_with("apiVersion: metallb.io")),
        "{yaml}"
    );

    // The API server accepts every object (a real apply, after a server-side dry run).
    lab.kubectl_input(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml))
        .await
        .unwrap();
    let _restore = RestoreBird(lab.paths.clone(), nodes.clone());
    for n in &nodes {
        add_md5_session(&lab.paths, *n);
    }
    let applied = lab
        .kubectl_input(&["apply", "-f", "-"], Some(&yaml))
        .await
        .unwrap();
    for object in [
        "secret/bgp-password",
        "ipaddresspool.ferrolb.io/office",
        "ipaddresspool.ferrolb.io/web",
        "ipaddresspool.ferrolb.io/general",
        "bgppeer.ferrolb.io/node-bird",
        "bgpadvertisement.ferrolb.io/to-node-bird",
        "l2advertisement.ferrolb.io/office",
    ] {
        assert!(
            applied.lines().any(|l| l.starts_with(object)),
            "{object} in {applied}"
        );
    }

    // Every node's BIRD takes the speaker's session with the password.
    for n in &nodes {
        let paths = lab.paths.clone();
        let n = *n;
        poll(
            &format!("{n}'s BIRD: convert_md5 Established"),
            WAIT,
            || {
                let paths = paths.clone();
                async move {
                    let sessions = tokio::task::spawn_blocking(move || {
                        ferrolb_e2e::routing::node_sessions(&paths, n)
                    })
                    .await
                    .unwrap()
                    .map_err(|e| e.to_string())?;
                    if sessions
                        .iter()
                        .any(|(name, state)| name == "convert_md5" && state == "Established")
                    {
                        Ok(())
                    } else {
                        Err(format!("{sessions:?}"))
                    }
                }
            },
        )
        .await
        .unwrap();
    }

    // Addresses as MetalLB would give them.
    let web = lab.namespace("convert-web").await.unwrap();
    lab.kubectl(&["label", "namespace", &web, "team=web"])
        .await
        .unwrap();
    let other = lab.namespace("convert-other").await.unwrap();
    for (ns, yaml) in [
        (&web, service("shop", "", false)),
        (&other, service("blog", "", false)),
        (
            &other,
            service("printer", "metallb.universe.tf/address-pool: office", true),
        ),
    ] {
        lab.kubectl_input(&["apply", "-n", ns, "-f", "-"], Some(&yaml))
            .await
            .unwrap();
    }
    wait_addresses(&lab, &web, "shop", &["198.51.100.64"]).await;
    wait_addresses(&lab, &other, "blog", &["198.51.100.128"]).await;
    wait_addresses(&lab, &other, "printer", &["192.0.2.230", "2001:db8:2::230"]).await;

    // BGP: both pools' addresses from every node, with the communities, over the password
    // session.
    for dst in ["198.51.100.64/32", "198.51.100.128/32"] {
        wait_route_via(&lab, net(dst), &nodes).await;
    }
    for a in ["198.51.100.64", "198.51.100.128"] {
        let body = lab.http_get(CLIENT_NS, ip(a), 80).await.unwrap();
        assert!(nodes.iter().any(|n| n.name() == body), "{a}: {body}");
    }
    for n in &nodes {
        let paths = lab.paths.clone();
        let n = *n;
        let out = tokio::task::spawn_blocking(move || {
            ferrolb_e2e::routing::birdc(
                &paths,
                Some(n),
                &["show", "route", "all", "for", "198.51.100.64/32"],
            )
        })
        .await
        .unwrap()
        .unwrap();
        let compact: String = out.split_whitespace().collect();
        assert!(out.contains("convert_md5"), "{n}: {out}");
        assert!(compact.contains("BGP.community:(64600,100)"), "{n}: {out}");
        assert!(
            compact.contains("BGP.large_community:(64600,1,2)"),
            "{n}: {out}"
        );
    }
    // The L2 pool is not announced over BGP.
    assert_eq!(lab.router_route(net("192.0.2.230/32")).await.unwrap(), None);

    // L2: node2 or node3 answers for both of the office addresses, node1 never.
    let mut owners = BTreeSet::new();
    for a in ["192.0.2.230", "2001:db8:2::230"] {
        owners.insert(l2_owner(&lab, ip(a)).await);
    }
    assert!(
        owners.is_subset(&BTreeSet::from([NodeId(2), NodeId(3)])),
        "{owners:?}"
    );
    let statuses = lab
        .kubectl(&[
            "get",
            "servicel2statuses",
            "-n",
            &other,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await
        .unwrap();
    assert!(!statuses.contains("node1"), "{statuses}");
    assert!(statuses.contains("printer."), "{statuses}");
}
