//! The live interface table in a private namespace: changes made with `ip` show up through
//! the netlink subscription without a restart, and selection follows them. Run as root.
#![allow(clippy::unwrap_used)]

mod l2_support;

use std::sync::Arc;
use std::time::Duration;

use ferrolb_speaker::l2::interfaces::watch_links;
use ferrolb_speaker::l2::{InterfaceName, LinkTable};
use l2_support::{Netns, poll};
use tokio::sync::watch;

#[test]
fn l2_interface_changes_are_picked_up_without_restart() {
    let ns = Netns::new("if");
    ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "veth-peer",
    ]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "veth-peer", "up"]);

    // The watcher runs in the namespace; the test reads snapshots through a std channel.
    let (snap_tx, snap_rx) = std::sync::mpsc::channel::<Arc<LinkTable>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = ns.spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut rx: watch::Receiver<Arc<LinkTable>> = watch_links().unwrap();
            snap_tx.send(rx.borrow_and_update().clone()).unwrap();
            let forward = async {
                while rx.changed().await.is_ok() {
                    if snap_tx.send(rx.borrow_and_update().clone()).is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = stop_rx => {}
                _ = forward => {}
            }
        });
    });

    let mut latest = snap_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let eth0 = InterfaceName::from("eth0");
    let addr = "192.0.2.10".parse().unwrap();
    // eth0 is up with no address: the fallback picks it (veth-peer is excluded by name).
    assert_eq!(latest.select(addr, &[]), vec![eth0.clone()]);

    // A second interface with the address's subnet appears: selection narrows to it.
    ns.ip(&[
        "link",
        "add",
        "ens5",
        "type",
        "veth",
        "peer",
        "name",
        "veth-ens5",
    ]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ens5"]);
    ns.ip(&["link", "set", "ens5", "up"]);
    ns.ip(&["link", "set", "veth-ens5", "up"]);
    let ens5 = InterfaceName::from("ens5");
    let narrowed = poll(Duration::from_secs(5), || {
        while let Ok(t) = snap_rx.try_recv() {
            latest = t;
        }
        (latest.select(addr, &[]) == vec![ens5.clone()]).then_some(())
    });
    assert!(narrowed.is_some(), "table: {latest:?}");

    // It goes down: back to the fallback, which now includes only what is up.
    ns.ip(&["link", "set", "ens5", "down"]);
    let fell_back = poll(Duration::from_secs(5), || {
        while let Ok(t) = snap_rx.try_recv() {
            latest = t;
        }
        (latest.select(addr, &[]) == vec![eth0.clone()]).then_some(())
    });
    assert!(fell_back.is_some(), "table: {latest:?}");

    // A MAC change is visible too (the announcer restarts the interface task on it).
    ns.ip(&["link", "set", "eth0", "address", "02:00:5e:10:00:77"]);
    let mac = poll(Duration::from_secs(5), || {
        while let Ok(t) = snap_rx.try_recv() {
            latest = t;
        }
        latest
            .get(&eth0)
            .and_then(|l| l.mac)
            .filter(|m| m.to_string() == "02:00:5e:10:00:77")
    });
    assert!(mac.is_some(), "table: {latest:?}");

    stop_tx.send(()).unwrap();
    thread.join().unwrap();
}
