//! TCP MD5 signatures (RFC 2385) through the `TCP_MD5SIG` socket option. The kernel signs
//! and checks every segment to and from the peer address with the key; it must be set
//! before `connect()` so that the SYN is signed too.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

/// The longest key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of <linux/tcp.h>: a `sockaddr_storage` (128 octets) naming the
/// peer, flags, prefix length, key length, interface index, and the key.
#[repr(C, align(8))]
struct TcpMd5Sig {
    addr: [u8; 128],
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: i32,
    key: [u8; MAX_KEY_LEN],
}

/// Sets (or, with an empty key, removes) the MD5 key for connections to `peer`.
pub fn set_tcp_md5_key(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key of {} octets exceeds the kernel's {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: [0; 128],
        flags: 0,
        prefix_len: 0,
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; MAX_KEY_LEN],
    };
    // The sockaddr is laid out by hand (family in host order, then the port, zero here,
    // then the address) so that building it needs no `unsafe`.
    match peer {
        IpAddr::V4(a) => {
            sig.addr[..2].copy_from_slice(&(libc::AF_INET as libc::sa_family_t).to_ne_bytes());
            sig.addr[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            sig.addr[..2].copy_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
            sig.addr[8..24].copy_from_slice(&a.octets());
        }
    }
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a fully initialised `repr(C)` value laid out as the kernel's
    // `struct tcp_md5sig`, alive for the whole call, and its size is passed alongside;
    // the descriptor is borrowed from a live socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn struct_matches_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn key_is_accepted_on_tcp_sockets_of_both_families() {
        let v4 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_tcp_md5_key(&v4, "192.0.2.1".parse().unwrap(), b"secret").unwrap();
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        set_tcp_md5_key(&v6, "2001:db8::1".parse().unwrap(), b"secret").unwrap();
        let long = [b'x'; 81];
        let err = set_tcp_md5_key(&v4, "192.0.2.1".parse().unwrap(), &long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_udp_socket_is_refused() {
        let udp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        assert!(set_tcp_md5_key(&udp, "192.0.2.1".parse().unwrap(), b"secret").is_err());
    }
}
