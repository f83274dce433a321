//! `lab apiproxy`: lets the nodes reach the API server without touching the root namespace's
//! network. The process runs in the root namespace; one short-lived thread enters the lab
//! namespace (setns) only to create the listening socket there, and a socket stays in the
//! namespace it was made in. Accepted connections are copied to and from the API server on the
//! root namespace's loopback.
//!
//! ```text
//!  flb-nodeN ── 192.0.2.250:6443 (socket in flb-router) ══ this process ══ 127.0.0.1:6443 (root)
//! ```

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsFd;

use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::error::{LabError, Result};

/// Binds a TCP listener inside network namespace `netns` (by its /run/netns name).
pub fn bind_in_netns(netns: &str, addr: SocketAddr) -> Result<std::net::TcpListener> {
    let path = format!("/run/netns/{netns}");
    let io = |what: &str, source: std::io::Error| LabError::SpawnCommand {
        command: format!("{what} ({path}, {addr})"),
        source,
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = File::open(&path).map_err(|e| io("open the namespace", e))?;
                // Only this thread changes namespace, and it ends right after.
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(|e| io("enter the namespace", e.into()))?;
                let listener = std::net::TcpListener::bind(addr).map_err(|e| io("listen", e))?;
                listener
                    .set_nonblocking(true)
                    .map_err(|e| io("listen", e))?;
                Ok(listener)
            })
            .join()
            .unwrap_or_else(|_| Err(io("listen", std::io::Error::other("thread panicked"))))
    })
}

/// Forwards every connection accepted in `netns` at `listen` to `connect`, until killed.
pub async fn run(netns: &str, listen: SocketAddr, connect: SocketAddr) -> Result<()> {
    let listener = TcpListener::from_std(bind_in_netns(netns, listen)?).map_err(|source| {
        LabError::SpawnCommand {
            command: format!("listen at {listen}"),
            source,
        }
    })?;
    info!(%listen, netns, %connect, "forwarding");
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        tokio::spawn(async move {
            match TcpStream::connect(connect).await {
                Ok(mut outbound) => {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    // Ends when either side closes; errors are ordinary disconnects here.
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => warn!(error = %e, %peer, "API server unreachable"),
            }
        });
    }
}
