//! Which node owns an L2 address: rendezvous (highest-random-weight) hashing.
//!
//! Every speaker runs this with the same inputs (the eligible nodes for a Service and the
//! address) and so reaches the same answer without talking to the others. The algorithm is
//! part of the wire contract between speakers of different versions, so it is fixed here and
//! must never change silently (a change would make two versions elect two owners during a
//! rolling upgrade — two MACs answering for one IP):
//!
//! ```text
//! score(node, addr) = SHA-256( "ferrolb.io/l2-election/v1" 0x00
//!                              family   (1 byte: 0x04 or 0x06)
//!                              address  (4 or 16 bytes, network order)
//!                              name_len (2 bytes, big-endian, byte length of the UTF-8 name)
//!                              name     (the node name, UTF-8) )
//! ```
//!
//! The 32-byte digests are compared as big-endian unsigned integers (plain byte order); the
//! node with the *lowest* score ranks first and owns the address. Equal scores (never seen
//! in practice) are ordered by node name so the ranking is a total order. An IPv4-mapped IPv6
//! address is hashed as IPv6: the family is the one the caller gives.
//!
//! Why rendezvous hashing: each (node, address) pair is scored independently, so when a node
//! leaves only the addresses it owned move (each to its runner-up), and addresses spread
//! evenly because SHA-256 scores are uniform. No `std::hash::Hasher` is used: its output is
//! allowed to differ between Rust versions and platforms.

use std::net::IpAddr;

use ring::digest;

/// Domain-separation tag, so a digest from this scheme can never equal one from another use
/// of SHA-256 over the same name and address.
const DOMAIN: &[u8] = b"ferrolb.io/l2-election/v1\0";

/// The election score of `node` for `addr`: the SHA-256 digest of the encoding in the
/// module documentation. Lower ranks first.
pub fn score(node: &str, addr: IpAddr) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(DOMAIN);
    match addr {
        IpAddr::V4(v4) => {
            ctx.update(&[4]);
            ctx.update(&v4.octets());
        }
        IpAddr::V6(v6) => {
            ctx.update(&[6]);
            ctx.update(&v6.octets());
        }
    }
    // Kubernetes node names are at most 253 bytes; a longer name is still hashed in full,
    // with its length saturated, which keeps the function total.
    let len = u16::try_from(node.len()).unwrap_or(u16::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(node.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The eligible nodes ranked for `addr`, owner first. Duplicate names are kept as given.
pub fn rank<'a, N>(addr: IpAddr, nodes: impl IntoIterator<Item = &'a N>) -> Vec<&'a N>
where
    N: AsRef<str> + ?Sized + 'a,
{
    let mut scored: Vec<([u8; 32], &'a N)> = nodes
        .into_iter()
        .map(|n| (score(n.as_ref(), addr), n))
        .collect();
    scored.sort_by(|(sa, na), (sb, nb)| sa.cmp(sb).then_with(|| na.as_ref().cmp(nb.as_ref())));
    scored.into_iter().map(|(_, n)| n).collect()
}

/// The node that owns `addr` among the eligible `nodes`, or `None` when there is none.
pub fn owner<'a, N>(addr: IpAddr, nodes: impl IntoIterator<Item = &'a N>) -> Option<&'a N>
where
    N: AsRef<str> + ?Sized + 'a,
{
    nodes
        .into_iter()
        .map(|n| (score(n.as_ref(), addr), n))
        .min_by(|(sa, na), (sb, nb)| sa.cmp(sb).then_with(|| na.as_ref().cmp(nb.as_ref())))
        .map(|(_, n)| n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Vectors computed independently (Python hashlib over the documented encoding), so a
    /// change of the byte encoding or the hash fails here.
    #[test]
    fn score_vectors() {
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let cases = [
            (
                "node-a",
                v4,
                "0f190240f51fa4821c4730e857d607a66aa24c8833c108dc11bd4337a09aaf27",
            ),
            (
                "node-b",
                v4,
                "7f75c5529fce99c0056f36ef9e18e401b2729029023a5ae43e48e361df237e78",
            ),
            (
                "node-c",
                v4,
                "af84eae29f541f9846858fa97595b413a8827743d2583df471b4eaccb2f87f9a",
            ),
            (
                "node-a",
                v6,
                "b83bd9aadebe4051cd1463d5767a76dbab4fa7698dcabf9257beb8b784719993",
            ),
            (
                "node-b",
                v6,
                "39a0c421d2727a9ee2fa2a96587889d54db0793b024d2f3452a224539d666cad",
            ),
            (
                "node-c",
                v6,
                "fca9d1cc9c2e6dfc41e3bd827cabe5fba49b434aaccac99c0ff8725b634c0879",
            ),
        ];
        for (node, addr, want) in cases {
            assert_eq!(hex(&score(node, addr)), want, "{node} {addr}");
        }
        let nodes = ["node-c", "node-b", "node-a"];
        assert_eq!(rank(v4, &nodes), [&"node-a", &"node-b", &"node-c"]);
        assert_eq!(rank(v6, &nodes), [&"node-b", &"node-a", &"node-c"]);
        assert_eq!(owner(v6, &nodes), Some(&"node-b"));
    }

    #[test]
    fn owner_is_independent_of_input_order_and_empty_has_none() {
        let addr: IpAddr = "198.51.100.7".parse().unwrap();
        let a = ["n1", "n2", "n3", "n4"];
        let b = ["n4", "n2", "n1", "n3"];
        assert_eq!(owner(addr, &a), owner(addr, &b));
        assert_eq!(owner::<str>(addr, std::iter::empty()), None);
    }

    #[test]
    fn thirty_addresses_over_three_nodes_nobody_owns_more_than_half() {
        let nodes = ["node-1", "node-2", "node-3"];
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..30u8 {
            let addr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + i));
            *count.entry(owner(addr, &nodes).unwrap()).or_default() += 1;
        }
        assert_eq!(count.len(), 3, "every node owns something: {count:?}");
        assert!(count.values().all(|&c| c <= 15), "{count:?}");
    }

    proptest! {
        /// Over many addresses the spread stays close to even: with 300 addresses over 3
        /// nodes the expected share is 100 each; nobody exceeds half of all.
        #[test]
        fn spread_is_even(base in any::<u32>(), names in proptest::collection::btree_set("[a-z]{1,12}", 3..6)) {
            let nodes: Vec<String> = names.into_iter().collect();
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            let n = 300u32;
            for i in 0..n {
                let addr = IpAddr::V4(Ipv4Addr::from(base.wrapping_add(i)));
                *count.entry(owner(addr, &nodes).unwrap().as_str()).or_default() += 1;
            }
            let max = *count.values().max().unwrap();
            prop_assert!(max as u32 <= n / 2, "{count:?}");
        }

        /// Removing a node moves only the addresses it owned; every other owner is unchanged,
        /// and the moved ones go to their runner-up.
        #[test]
        fn minimal_movement_when_a_node_leaves(
            base in any::<u128>(),
            names in proptest::collection::btree_set("[a-z0-9-]{1,20}", 2..8),
            leave_idx in any::<prop::sample::Index>(),
        ) {
            let nodes: Vec<String> = names.into_iter().collect();
            let leaving = nodes[leave_idx.index(nodes.len())].clone();
            let rest: Vec<String> = nodes.iter().filter(|n| **n != leaving).cloned().collect();
            for i in 0..50u128 {
                let addr = IpAddr::V6(Ipv6Addr::from(base.wrapping_add(i)));
                let before = rank(addr, &nodes);
                let after = owner(addr, &rest).unwrap();
                if *before[0] == leaving {
                    prop_assert_eq!(after, before[1]);
                } else {
                    prop_assert_eq!(after, before[0]);
                }
            }
        }
    }
}
