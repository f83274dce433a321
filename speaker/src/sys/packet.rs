//! Raw link-layer access for L2 mode: AF_PACKET sockets with a classic BPF filter, Ethernet
//! multicast membership, the interface list (getifaddrs), a netlink socket that wakes on
//! link and address changes, and entering a network namespace (for tests and tools).
//!
//! Everything here is a thin, safe wrapper around one system call; all parsing of what the
//! kernel returns happens in safe code elsewhere or right after the call.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Packet type of a frame, as the kernel classified it on receive (`sll_pkttype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// To this host's MAC.
    Host,
    Broadcast,
    Multicast,
    /// To another host's MAC (seen only in promiscuous mode).
    OtherHost,
    /// Sent by this host (looped back to packet sockets).
    Outgoing,
    Other(u8),
}

impl From<u8> for PacketType {
    fn from(v: u8) -> Self {
        match v {
            0 => PacketType::Host,
            1 => PacketType::Broadcast,
            2 => PacketType::Multicast,
            3 => PacketType::OtherHost,
            4 => PacketType::Outgoing,
            other => PacketType::Other(other),
        }
    }
}

// Classic BPF opcodes (linux/filter.h), spelled out for the filter below.
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
const BPF_LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// Ancillary load of the packet type (SKF_AD_OFF + SKF_AD_PKTTYPE).
const ANC_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter attached to every responder socket: the kernel runs it on each frame of the
/// interface and queues to the socket only ARP frames and IPv6 frames carrying an ICMPv6
/// neighbour solicitation directly after the fixed header, never frames this host sent.
/// Everything else costs the process nothing (no wake-up, no copy).
///
/// ```text
///  0: ld  pkttype            ; ancillary
///  1: jeq #OUTGOING   -> 10 (drop)
///  2: ldh [12]               ; EtherType
///  3: jeq #0x0806     -> 9 (accept)
///  4: jeq #0x86dd     else -> 10
///  5: ldb [20]               ; IPv6 next header
///  6: jeq #58         else -> 10
///  7: ldb [54]               ; ICMPv6 type (14 + 40)
///  8: jeq #135        -> 9 else -> 10
///  9: ret #65535              accept, whole frame
/// 10: ret #0                  drop
/// ```
pub const RESPONDER_FILTER: [libc::sock_filter; 11] = [
    insn(BPF_LD_W_ABS, 0, 0, ANC_PKTTYPE),
    insn(BPF_JEQ_K, 8, 0, 4),
    insn(BPF_LD_H_ABS, 0, 0, 12),
    insn(BPF_JEQ_K, 5, 0, 0x0806),
    insn(BPF_JEQ_K, 0, 5, 0x86dd),
    insn(BPF_LD_B_ABS, 0, 0, 20),
    insn(BPF_JEQ_K, 0, 3, 58),
    insn(BPF_LD_B_ABS, 0, 0, 54),
    insn(BPF_JEQ_K, 0, 1, 135),
    insn(BPF_RET_K, 0, 0, 0xffff),
    insn(BPF_RET_K, 0, 0, 0),
];

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket bound to one interface, with
/// [`RESPONDER_FILTER`] attached. Frames are whole Ethernet frames both ways.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex`. The socket is created with protocol 0 (it
    /// receives nothing), gets its filter, and only then is bound to ETH_P_ALL on the
    /// interface, so no unfiltered frame is ever queued.
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too big"))?;
        // SAFETY: plain socket(2) call; on success we own the returned descriptor.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let prog = libc::sock_fprog {
            len: RESPONDER_FILTER.len() as u16,
            filter: RESPONDER_FILTER.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at a static array of `len` instructions; the kernel copies it.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll of the size we pass.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Receives one frame into `buf`: its length (the frame may be longer than `buf`, then
    /// it is cut) and how the kernel classified it. `WouldBlock` when nothing is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, PacketType)> {
        // SAFETY: zeroed sockaddr_ll is valid; recvfrom writes at most `len` into it.
        let mut from: libc::sockaddr_ll = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; `from`/`len` as above.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize, PacketType::from(from.sll_pkttype)))
    }

    /// Sends one complete Ethernet frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is valid for `frame.len()` readable bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Adds `mac` to the interface's multicast filter for as long as this socket lives (or
    /// until [`PacketSocket::leave_multicast`]): what makes a NIC that filters multicast in
    /// hardware deliver frames sent to it. The kernel reference-counts memberships.
    pub fn join_multicast(&self, mac: [u8; 6]) -> io::Result<()> {
        self.membership(libc::PACKET_ADD_MEMBERSHIP, mac)
    }

    pub fn leave_multicast(&self, mac: [u8; 6]) -> io::Result<()> {
        self.membership(libc::PACKET_DROP_MEMBERSHIP, mac)
    }

    fn membership(&self, op: libc::c_int, mac: [u8; 6]) -> io::Result<()> {
        let mut address = [0u8; 8];
        address[..6].copy_from_slice(&mac);
        let mreq = libc::packet_mreq {
            mr_ifindex: self.ifindex,
            mr_type: libc::PACKET_MR_MULTICAST as u16,
            mr_alen: 6,
            mr_address: address,
        };
        // SAFETY: `mreq` is a valid packet_mreq of the size we pass.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                op,
                (&mreq as *const libc::packet_mreq).cast(),
                size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }
}

impl PacketSocket {
    /// Registers the socket with the tokio reactor (readable interest). Must be called in
    /// a runtime.
    pub fn into_async(self) -> io::Result<AsyncFd<PacketSocket>> {
        // SAFETY: PacketSocket owns its descriptor (an OwnedFd never replaced), so
        // `as_raw_fd` returns the same open descriptor for the AsyncFd's whole lifetime.
        unsafe { AsyncFd::register_with_interest(self, Interest::READABLE) }
            .map_err(io::Error::from)
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One entry of the kernel's interface list, merged per interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawInterface {
    pub name: String,
    pub index: u32,
    /// `IFF_*` flags.
    pub flags: u32,
    /// ARPHRD_* hardware type (1 = Ethernet, 772 = loopback, 768+ tunnels, 65534 none).
    pub hardware_type: u16,
    pub mac: Option<[u8; 6]>,
    /// Addresses with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// `IFF_UP`
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// `IFF_RUNNING` (operationally up)
pub const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
/// `IFF_LOOPBACK`
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;

/// The interfaces of the calling thread's network namespace with their MACs and addresses
/// (getifaddrs(3), which asks the kernel over netlink).
pub fn list_interfaces() -> io::Result<Vec<RawInterface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out: Vec<RawInterface> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned and is not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let pos = match out.iter().position(|i| i.name == name) {
            Some(p) => p,
            None => {
                out.push(RawInterface {
                    name: name.clone(),
                    ..RawInterface::default()
                });
                out.len() - 1
            }
        };
        let entry = &mut out[pos];
        entry.flags = ifa.ifa_flags;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family tells its real type and size.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match family {
            libc::AF_PACKET => {
                // SAFETY: family AF_PACKET means the storage is a sockaddr_ll.
                let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                entry.index = u32::try_from(ll.sll_ifindex).unwrap_or(0);
                entry.hardware_type = ll.sll_hatype;
                if ll.sll_halen == 6 {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&ll.sll_addr[..6]);
                    entry.mac = Some(mac);
                }
            }
            libc::AF_INET => {
                // SAFETY: family AF_INET means sockaddr_in; the netmask has the same family.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                let prefix = if ifa.ifa_netmask.is_null() {
                    32
                } else {
                    // SAFETY: as above, for the netmask.
                    let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
                    u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                };
                entry.addresses.push((IpAddr::V4(ip), prefix));
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means sockaddr_in6; the netmask has the same family.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                let prefix = if ifa.ifa_netmask.is_null() {
                    128
                } else {
                    // SAFETY: as above, for the netmask.
                    let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in6) };
                    u128::from_be_bytes(m.sin6_addr.s6_addr).count_ones() as u8
                };
                entry.addresses.push((IpAddr::V6(ip), prefix));
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once; no reference into the
    // list outlives this point (everything was copied).
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// A netlink socket subscribed to link and address changes (RTMGRP_LINK, IPv4 and IPv6
/// address groups) of the calling thread's network namespace. It is used as a wake-up:
/// when it becomes readable the caller drains it and, when a notification may change the
/// [`LinkTable`](crate::l2::interfaces::LinkTable), re-reads the interface list; an
/// overflowed queue (ENOBUFS) counts as such a change. The messages are only looked at
/// by [`notification_matters`], in safe code.
#[derive(Debug)]
pub struct LinkMonitor {
    fd: OwnedFd,
}

impl LinkMonitor {
    pub fn open() -> io::Result<LinkMonitor> {
        // SAFETY: plain socket(2) call; on success we own the descriptor.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; zero is valid.
        let mut addr: libc::sockaddr_nl = unsafe { zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        // SAFETY: valid sockaddr_nl of the size passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(LinkMonitor { fd })
    }

    /// Reads every queued notification; returns whether any of them may change the
    /// interface table ([`notification_matters`]). An overflowed queue (ENOBUFS) does: what
    /// was lost is not known.
    pub fn drain(&self) -> io::Result<bool> {
        let mut buf = [0u8; 8192];
        let mut matters = false;
        loop {
            // SAFETY: `buf` is valid for its length.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(matters),
                    Some(libc::ENOBUFS) => matters = true,
                    Some(libc::EINTR) => {}
                    _ => return Err(e),
                }
            } else {
                let len = usize::try_from(r).unwrap_or(0).min(buf.len());
                matters |= notification_matters(&buf[..len]);
            }
        }
    }
}

/// RTM_NEWADDR / RTM_DELADDR (linux/rtnetlink.h).
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
/// RT_SCOPE_LINK: link-local addresses.
const RT_SCOPE_LINK: u8 = 253;
/// sizeof(struct nlmsghdr), sizeof(struct ifaddrmsg).
const NLMSG_HDR_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;

/// Whether one datagram of route-netlink notifications may change the interface table:
/// every link change does, and every address change except that of a host address (/32 or
/// /128) that is not link-local. Those are what kube-proxy in IPVS mode (and the lab's
/// agent) puts on `kube-ipvs0` for every Service address, one change per Service on every
/// node; the table keeps no such address (only subnets and the IPv6 link-local address
/// matter for announcing), so re-reading every address of the node for each of them would
/// make creating N Services cost O(N²) in the kernel. A datagram that does not parse as
/// notifications matters (the table is re-read rather than a change missed).
pub fn notification_matters(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    if rest.is_empty() {
        return true;
    }
    while !rest.is_empty() {
        let Some(hdr) = rest.get(..NLMSG_HDR_LEN) else {
            return true;
        };
        let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let kind = u16::from_ne_bytes([hdr[4], hdr[5]]);
        if len < NLMSG_HDR_LEN || len > rest.len() {
            return true;
        }
        let body = &rest[NLMSG_HDR_LEN..len];
        match kind {
            RTM_NEWADDR | RTM_DELADDR => {
                let Some(ifa) = body.get(..IFADDRMSG_LEN) else {
                    return true;
                };
                let (family, prefix_len, scope) = (i32::from(ifa[0]), ifa[1], ifa[3]);
                let host = (family == libc::AF_INET && prefix_len == 32)
                    || (family == libc::AF_INET6 && prefix_len == 128);
                if !host || scope == RT_SCOPE_LINK {
                    return true;
                }
            }
            _ => return true,
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        let next = len.div_ceil(4) * 4;
        rest = rest.get(next..).unwrap_or(&[]);
    }
    false
}

impl LinkMonitor {
    /// Registers the socket with the tokio reactor (readable interest). Must be called in
    /// a runtime.
    pub fn into_async(self) -> io::Result<AsyncFd<LinkMonitor>> {
        // SAFETY: as for PacketSocket: the owned descriptor never changes while registered.
        unsafe { AsyncFd::register_with_interest(self, Interest::READABLE) }
            .map_err(io::Error::from)
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Moves the calling thread into the network namespace `netns` (an open
/// `/run/netns/<name>` or `/proc/<pid>/ns/net`). Only this thread moves; threads it spawns
/// afterwards start there too. Sockets opened afterwards belong to that namespace.
pub fn enter_network_namespace(netns: &File) -> io::Result<()> {
    // SAFETY: setns(2) on a descriptor we borrow for the duration of the call.
    cvt(unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}
