//! `lab demo` (the end of `make lab`): applies examples/lab/ and shows, for a BGP Service and
//! an L2 Service, what a user would check by hand. A part that a later piece of ferrolb brings
//! says so instead of pretending.

use std::net::IpAddr;
use std::time::Duration;

use crate::cmd;
use crate::controlplane::kubectl;
use crate::error::Result;
use crate::routing;
use crate::state::{Paths, State};
use crate::topology::{self as t, Topology};
use crate::wait::poll_blocking;

/// How long the demo waits for each thing before saying it is not there.
const PATIENCE: Duration = Duration::from_secs(15);

/// Installs ferrolb's CRDs from crds/ (if there are any yet) and waits until they serve.
pub fn install_crds(paths: &Paths, st: &State) -> Result<Option<usize>> {
    let dir = paths.repo.join("crds");
    let count = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
                .count()
        })
        .unwrap_or(0);
    if count == 0 {
        return Ok(None);
    }
    cmd::run(
        kubectl(&st.k8s_dir, paths)
            .args(["apply", "--server-side", "-f"])
            .arg(&dir),
    )?;
    // The lab's only CRDs are ferrolb's.
    cmd::run(kubectl(&st.k8s_dir, paths).args([
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]))?;
    Ok(Some(count))
}

fn jsonpath(paths: &Paths, st: &State, args: &[&str]) -> String {
    cmd::run(kubectl(&st.k8s_dir, paths).args(args))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn external_ips(paths: &Paths, st: &State, svc: &str) -> Vec<IpAddr> {
    jsonpath(
        paths,
        st,
        &[
            "get",
            "service",
            svc,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ],
    )
    .split_whitespace()
    .filter_map(|s| s.parse().ok())
    .collect()
}

fn curl(netns: &str, ip: IpAddr) -> std::result::Result<String, String> {
    let url = match ip {
        IpAddr::V4(a) => format!("http://{a}/"),
        IpAddr::V6(a) => format!("http://[{a}]/"),
    };
    let out = cmd::output_any(cmd::in_netns(netns, "curl").args(["-sS", "--max-time", "2", &url]))
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Applies examples/lab/ and prints the demo.
pub fn run(paths: &Paths) -> Result<()> {
    let st = State::load(paths)?;
    let topo = st.topology();
    let have_crds = !jsonpath(
        paths,
        &st,
        &["get", "crd", "ipaddresspools.ferrolb.io", "-o", "name"],
    )
    .is_empty();
    let examples = paths.repo.join("examples/lab");
    println!("\n== ferrolb lab: demo ==");
    if have_crds {
        cmd::run(
            kubectl(&st.k8s_dir, paths)
                .arg("apply")
                .arg("-f")
                .arg(&examples),
        )?;
        println!(
            "applied examples/lab/ (pools lab-bgp and lab-l2, BGP peer, advertisements, demo)"
        );
    } else {
        cmd::run(
            kubectl(&st.k8s_dir, paths)
                .arg("apply")
                .arg("-f")
                .arg(examples.join("demo.yaml")),
        )?;
        println!(
            "applied examples/lab/demo.yaml only: ferrolb's CRDs are not installed (missing from \
             crds/, or refused by the API server: see `lab up`'s output), so the pools and \
             advertisements of examples/lab/ferrolb.yaml cannot exist"
        );
    }

    println!(
        "\n$ kubectl --kubeconfig {} get nodes",
        paths.kubeconfig().display()
    );
    println!("{}", jsonpath(paths, &st, &["get", "nodes"]));
    let eps = poll_blocking("the demo's EndpointSlice", PATIENCE, || {
        let s = jsonpath(
            paths,
            &st,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=demo-bgp",
                "-o",
                r#"jsonpath={range .items[*].endpoints[*]}{.addresses[0]} on {.nodeName} ready={.conditions.ready}{"\n"}{end}"#,
            ],
        );
        Ok(
            if s.lines().filter(|l| l.ends_with("ready=true")).count() >= 2 {
                Ok(s)
            } else {
                Err(s)
            },
        )
    });
    match eps {
        Ok(s) => println!("EndpointSlice of demo-bgp (Pods marked Ready by the lab's agent):\n{s}"),
        Err(e) => println!("EndpointSlice of demo-bgp: not complete ({e})"),
    }

    print_sessions(paths, &topo);
    let (bgp, l2) = wait_ips(paths, &st);
    show_bgp(&topo, bgp);
    show_l2(&topo, l2);
    println!(
        "\nTry: kubectl --kubeconfig .lab/kubeconfig get svc; target/debug/lab status; \
         ip netns exec flb-client curl http://<EXTERNAL-IP>/; make lab-down when done."
    );
    Ok(())
}

fn print_sessions(paths: &Paths, topo: &Topology) {
    match routing::router_sessions(paths, topo) {
        Ok(s) => {
            let up = s.iter().filter(|s| s.established()).count();
            println!(
                "\nflb-router ({}) BGP sessions to the nodes' BIRD: {up} of {} Established",
                topo.router,
                s.len()
            );
        }
        Err(e) => println!("\nflb-router BGP sessions: cannot read them ({e})"),
    }
}

/// Both demo Services' addresses, waiting (together) until each has one or time is up.
fn wait_ips(paths: &Paths, st: &State) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let both = || {
        (
            external_ips(paths, st, "demo-bgp"),
            external_ips(paths, st, "demo-l2"),
        )
    };
    poll_blocking("EXTERNAL-IPs for the demo Services", PATIENCE, || {
        let (bgp, l2) = both();
        Ok(if bgp.is_empty() || l2.is_empty() {
            Err(String::new())
        } else {
            Ok((bgp, l2))
        })
    })
    .unwrap_or_else(|_| both())
}

fn show_bgp(topo: &Topology, ips: Vec<IpAddr>) {
    println!("\n-- Service demo-bgp (pool lab-bgp, BGP) --");
    if ips.is_empty() {
        println!("no EXTERNAL-IP yet: the controller's allocation arrives with issue 5");
        return;
    }
    for ip in ips {
        println!("EXTERNAL-IP {ip}");
        let dst = ipnet::IpNet::from(ip);
        let route = poll_blocking("the route at flb-router", PATIENCE, || {
            let r = routing::routes(t::ROUTER_NS)?;
            Ok(r.into_iter()
                .find(|r| r.dst == dst)
                .ok_or_else(|| "none".to_string()))
        });
        match route {
            Ok(r) => {
                let hops: Vec<String> = r
                    .next_hops
                    .iter()
                    .map(|h| match routing::node_by_addr(topo, *h) {
                        Some(n) => format!("{h} ({n})"),
                        None => h.to_string(),
                    })
                    .collect();
                println!(
                    "  flb-router: {dst} proto {} via {}",
                    r.protocol,
                    hops.join(", ")
                );
            }
            Err(_) => {
                println!(
                    "  flb-router: no route to {dst} yet: the speaker's BGP mode arrives with issue 7"
                );
                continue;
            }
        }
        match curl(t::CLIENT_NS, ip) {
            Ok(body) => println!("  HTTP from flb-client through the router: answered by {body}"),
            Err(e) => println!("  HTTP from flb-client: failed ({e})"),
        }
    }
}

fn show_l2(topo: &Topology, ips: Vec<IpAddr>) {
    println!("\n-- Service demo-l2 (pool lab-l2, L2) --");
    if ips.is_empty() {
        println!("no EXTERNAL-IP yet: the controller's allocation arrives with issue 5");
        return;
    }
    let macs: Vec<(String, String)> = topo
        .node_ids()
        .filter_map(|n| Some((routing::mac_of(&n.netns(), "eth0").ok()?, n.name())))
        .collect();
    for ip in ips {
        println!("EXTERNAL-IP {ip}");
        let body = curl(t::L2CLIENT_NS, ip);
        let neigh = routing::neighbours(t::L2CLIENT_NS)
            .unwrap_or_default()
            .into_iter()
            .find(|n| n.ip == ip && n.mac.is_some());
        match neigh {
            Some(n) => {
                let mac = n.mac.unwrap_or_default();
                let owner = macs
                    .iter()
                    .find(|(m, _)| *m == mac)
                    .map(|(_, name)| name.as_str())
                    .unwrap_or("not a node");
                println!(
                    "  flb-l2client neighbour: {ip} lladdr {mac} ({owner}) {:?}",
                    n.state
                );
            }
            None => println!(
                "  flb-l2client neighbour: none for {ip} yet: the speaker's L2 mode (ARP/NDP) arrives with issue 6"
            ),
        }
        match body {
            Ok(b) => println!("  HTTP from flb-l2client: answered by {b}"),
            Err(e) => println!("  HTTP from flb-l2client: failed ({e})"),
        }
    }
}
