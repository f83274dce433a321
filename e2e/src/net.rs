//! Builds and removes the lab network (see `topology` for the picture) with iproute2.
//! Each namespace is configured by one `ip -batch` run.

use std::process::Command;

use crate::cmd;
use crate::error::Result;
use crate::topology::{self as t, NodeId, Topology};

fn batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    let mut c = Command::new("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    c.args(["-batch", "-"]);
    cmd::run_with_input(&mut c, &(lines.join("\n") + "\n")).map(drop)
}

fn sysctl(netns: Option<&str>, settings: &[&str]) -> Result<()> {
    let mut c = match netns {
        Some(ns) => cmd::in_netns(ns, "sysctl"),
        None => Command::new("sysctl"),
    };
    c.arg("-qw").args(settings);
    cmd::run(&mut c).map(drop)
}

/// Names of the network namespaces that exist now.
pub fn existing_namespaces() -> Result<Vec<String>> {
    let out = cmd::run(Command::new("ip").args(["netns", "list"]))?;
    // Lines look like "flb-node1 (id: 3)" or just "flb-node1".
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Creates every namespace and link, addresses and routes. Expects none of them to exist.
pub fn create(topo: &Topology) -> Result<()> {
    for ns in topo.namespaces() {
        cmd::run(Command::new("ip").args(["netns", "add", &ns]))?;
    }

    // The router: a bridge for the node segment, a link to the client subnet.
    let mut router = vec![
        "link set lo up".to_string(),
        format!("link add {} type bridge", t::BRIDGE),
        format!("addr add {}/24 dev {}", t::ROUTER_ADDR4, t::BRIDGE),
        format!("addr add {}/64 dev {} nodad", t::ROUTER_ADDR6, t::BRIDGE),
        format!("addr add {}/24 dev {}", t::API_ADDR4, t::BRIDGE),
        format!("link set {} up", t::BRIDGE),
    ];
    for n in topo.node_ids() {
        let port = n.router_port();
        router.push(format!(
            "link add {port} type veth peer name eth0 netns {}",
            n.netns()
        ));
        router.push(format!("link set {port} master {} up", t::BRIDGE));
    }
    router.extend([
        format!(
            "link add l2c type veth peer name eth0 netns {}",
            t::L2CLIENT_NS
        ),
        format!("link set l2c master {} up", t::BRIDGE),
        format!(
            "link add eth1 type veth peer name eth0 netns {}",
            t::CLIENT_NS
        ),
        format!("addr add {}/24 dev eth1", t::ROUTER_CLIENT_ADDR4),
        format!("addr add {}/64 dev eth1 nodad", t::ROUTER_CLIENT_ADDR6),
        "link set eth1 up".to_string(),
    ]);
    sysctl(
        Some(t::ROUTER_NS),
        &[
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            // Hash on ports too, so one client's connections spread over the nodes.
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ],
    )?;
    batch(Some(t::ROUTER_NS), &router)?;

    for n in topo.node_ids() {
        sysctl(
            Some(&n.netns()),
            &[
                // kube-proxy's IPVS view: Service addresses sit on kube-ipvs0, and the node
                // must never answer ARP for them itself; only a speaker does.
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.ip_forward=0",
                // `lab kill node` takes eth0 down; the addresses must survive that.
                "net.ipv6.conf.all.keep_addr_on_down=1",
                "net.ipv6.conf.default.keep_addr_on_down=1",
            ],
        )?;
        batch(Some(&n.netns()), &node_lines(n))?;
    }

    let hosts = [
        (
            t::L2CLIENT_NS,
            t::L2CLIENT_ADDR4,
            t::L2CLIENT_ADDR6,
            t::ROUTER_ADDR4,
            t::ROUTER_ADDR6,
        ),
        (
            t::CLIENT_NS,
            t::CLIENT_ADDR4,
            t::CLIENT_ADDR6,
            t::ROUTER_CLIENT_ADDR4,
            t::ROUTER_CLIENT_ADDR6,
        ),
    ];
    for (ns, a4, a6, gw4, gw6) in hosts {
        batch(
            Some(ns),
            &[
                "link set lo up".to_string(),
                format!("addr add {a4}/24 dev eth0"),
                format!("addr add {a6}/64 dev eth0 nodad"),
                "link set eth0 up".to_string(),
                format!("route add default via {gw4}"),
                format!("route add default via {gw6}"),
            ],
        )?;
    }

    Ok(())
}

fn node_lines(n: NodeId) -> Vec<String> {
    vec![
        "link set lo up".to_string(),
        format!("addr add {}/24 dev eth0", n.addr4()),
        format!("addr add {}/64 dev eth0 nodad", n.addr6()),
        "link set eth0 up".to_string(),
        format!("route add default via {}", t::ROUTER_ADDR4),
        format!("route add default via {}", t::ROUTER_ADDR6),
        // This kernel has no dummy driver; ifb is the same kind of sink that holds addresses.
        format!("link add {} type ifb", t::IPVS_LINK),
        format!("link set {} addrgenmode none", t::IPVS_LINK),
        format!("link set {} up", t::IPVS_LINK),
    ]
}

/// Cuts a node off the segment (both ends of its link down), as a dead machine would be.
pub fn node_down(n: NodeId) -> Result<()> {
    batch(
        Some(t::ROUTER_NS),
        &[format!("link set {} down", n.router_port())],
    )?;
    batch(Some(&n.netns()), &["link set eth0 down".to_string()])
}

/// Reconnects a node; its default routes went with the link, so they are put back.
pub fn node_up(n: NodeId) -> Result<()> {
    batch(
        Some(t::ROUTER_NS),
        &[format!("link set {} up", n.router_port())],
    )?;
    batch(
        Some(&n.netns()),
        &[
            "link set eth0 up".to_string(),
            format!("route replace default via {}", t::ROUTER_ADDR4),
            format!("route replace default via {}", t::ROUTER_ADDR6),
        ],
    )
}

/// Removes every lab namespace. Idempotent.
pub fn remove() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for ns in existing_namespaces()? {
        if t::is_lab_namespace(&ns) {
            cmd::run(Command::new("ip").args(["netns", "del", &ns]))?;
            removed.push(ns);
        }
    }
    Ok(removed)
}
