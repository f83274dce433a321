//! Maximal runs of occupied addresses, so that "the lowest free address at or after x" is one
//! ordered-map lookup however many addresses below x are taken.
//!
//! Walking gaps between single held addresses would cost one step per held address in the
//! worst case (a pool whose lowest thousand addresses are taken). Keeping maximal runs instead
//! makes the answer "x, or the end of the run holding x, plus one".
//!
//! `avoidBuggyIPs` pools must also skip `.0` and `.255`. A run set built with `bridge_buggy`
//! treats those addresses as occupied too ("virtual" members), so a run spans
//! `…​.254, .255, .0, .1…` and the same single lookup skips whole /24s of held addresses.
//! Virtual addresses exist everywhere, so only runs that contain at least one really occupied
//! address are stored; lone pairs of virtual addresses are implicit.

use std::collections::BTreeMap;

use ferrolb_api::addr::{AddrInt, is_buggy_v4};

/// Address integers that know whether an address is "buggy" (`.0`/`.255`; IPv4 only).
pub(crate) trait Bits: AddrInt {
    fn is_buggy(self) -> bool;
}

impl Bits for u32 {
    fn is_buggy(self) -> bool {
        is_buggy_v4(self)
    }
}

impl Bits for u128 {
    fn is_buggy(self) -> bool {
        false
    }
}

/// The maximal intervals of `occupied ∪ virtual` that contain an occupied address, where
/// `virtual` is the buggy addresses when `bridge_buggy` and nothing otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunSet<T> {
    runs: BTreeMap<T, T>,
    bridge_buggy: bool,
}

impl<T: Bits> RunSet<T> {
    pub(crate) fn new(bridge_buggy: bool) -> Self {
        RunSet {
            runs: BTreeMap::new(),
            bridge_buggy,
        }
    }

    fn is_virtual(&self, x: T) -> bool {
        self.bridge_buggy && x.is_buggy()
    }

    pub(crate) fn run_containing(&self, x: T) -> Option<(T, T)> {
        let (&s, &e) = self.runs.range(..=x).next_back()?;
        (e >= x).then_some((s, e))
    }

    /// The lowest address at or after `x` that is neither occupied nor virtual.
    pub(crate) fn first_free_at_or_after(&self, x: T) -> Option<T> {
        let mut c = x;
        while self.is_virtual(c) {
            c = c.next()?;
        }
        match self.run_containing(c) {
            // Runs are maximal, so the address after one is neither occupied nor virtual.
            Some((_, e)) => e.next(),
            // Every occupied address lies in a stored run.
            None => Some(c),
        }
    }

    /// `a` became occupied.
    pub(crate) fn insert(&mut self, a: T) {
        if self.run_containing(a).is_some() {
            // Only a virtual address can already be inside a run.
            return;
        }
        let (mut s, mut e) = (a, a);
        if let Some(p) = a.prev() {
            if let Some((ps, _)) = self.run_containing(p) {
                self.runs.remove(&ps);
                s = ps;
            } else {
                // A run-less neighbour component is virtual addresses only.
                while let Some(p) = s.prev().filter(|p| self.is_virtual(*p)) {
                    s = p;
                }
            }
        }
        if let Some(n) = a.next() {
            if let Some((ns, ne)) = self.run_containing(n) {
                self.runs.remove(&ns);
                e = ne;
            } else {
                while let Some(n) = e.next().filter(|n| self.is_virtual(*n)) {
                    e = n;
                }
            }
        }
        self.runs.insert(s, e);
    }

    /// `a` stopped being occupied. `occupied_in(s, e)` answers whether any address of `s..=e`
    /// is still occupied (asked only when bridging, where a piece of a run may be left with
    /// virtual addresses alone).
    pub(crate) fn remove(&mut self, a: T, occupied_in: impl Fn(T, T) -> bool) {
        let Some((s, e)) = self.run_containing(a) else {
            return;
        };
        self.runs.remove(&s);
        if self.is_virtual(a) {
            // `a` stays in the run as a virtual address.
            if occupied_in(s, e) {
                self.runs.insert(s, e);
            }
            return;
        }
        let keep = |from: T, to: T| !self.bridge_buggy || occupied_in(from, to);
        let left = a.prev().filter(|_| a > s).filter(|&le| keep(s, le));
        let right = a.next().filter(|_| a < e).filter(|&rs| keep(rs, e));
        if let Some(le) = left {
            self.runs.insert(s, le);
        }
        if let Some(rs) = right {
            self.runs.insert(rs, e);
        }
    }

    /// The bridged run set for the same occupied addresses as the plain set `plain`: each
    /// run grown over its buggy neighbours (at most two each side), touching runs merged.
    /// Costs the number of runs, not of addresses.
    pub(crate) fn bridged_from(plain: &RunSet<T>) -> Self {
        let mut out = RunSet::new(true);
        let mut last: Option<(T, T)> = None;
        for (&s, &e) in &plain.runs {
            let (mut s, mut e) = (s, e);
            while let Some(p) = s.prev().filter(|p| p.is_buggy()) {
                s = p;
            }
            while let Some(n) = e.next().filter(|n| n.is_buggy()) {
                e = n;
            }
            last = match last {
                Some((ls, le)) if le.next().is_none_or(|n| s <= n) => Some((ls, le.max(e))),
                Some((ls, le)) => {
                    out.runs.insert(ls, le);
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((ls, le)) = last {
            out.runs.insert(ls, le);
        }
        out
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> Vec<(T, T)> {
        self.runs.iter().map(|(s, e)| (*s, *e)).collect()
    }

    /// Number of stored runs (for memory accounting in the benchmark).
    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The runs the definition asks for, computed address by address over a small window.
    fn naive_runs(occupied: &BTreeSet<u32>, bridge: bool, lo: u32, hi: u32) -> Vec<(u32, u32)> {
        let in_u = |x: u32| occupied.contains(&x) || (bridge && x.is_buggy());
        let mut out = Vec::new();
        let mut x = lo;
        while x <= hi {
            if in_u(x) {
                let s = x;
                while x < hi && in_u(x + 1) {
                    x += 1;
                }
                if (s..=x).any(|y| occupied.contains(&y)) {
                    out.push((s, x));
                }
            }
            x += 1;
        }
        out
    }

    #[test]
    fn lowest_free_skips_a_whole_run_in_one_step() {
        let mut r = RunSet::<u32>::new(false);
        for a in 10..1000 {
            r.insert(a);
        }
        assert_eq!(r.runs(), vec![(10, 999)]);
        assert_eq!(r.first_free_at_or_after(10), Some(1000));
        assert_eq!(r.first_free_at_or_after(5), Some(5));
    }

    #[test]
    fn bridged_runs_span_buggy_addresses() {
        let mut r = RunSet::<u32>::new(true);
        // 256 + 1 ..= 256 + 254 and 512 + 1 ..= 512 + 10 held: one run through the .255/.0
        // pair into the next /24, starting at the virtual 0.0.0.255 just before.
        for a in (257..=510).chain(513..=522) {
            r.insert(a);
        }
        assert_eq!(r.runs(), vec![(255, 522)]);
        assert_eq!(r.first_free_at_or_after(256), Some(523));
        assert_eq!(r.first_free_at_or_after(255), Some(523));
        r.remove(300, |s, e| {
            (s..=e).any(|x| (257..=510).contains(&x) && x != 300 || (513..=522).contains(&x))
        });
        assert_eq!(r.runs(), vec![(255, 299), (301, 522)]);
    }

    #[test]
    fn last_address_has_no_successor() {
        let mut r = RunSet::<u32>::new(false);
        r.insert(u32::MAX);
        assert_eq!(r.first_free_at_or_after(u32::MAX), None);
        let mut r = RunSet::<u32>::new(true);
        assert_eq!(r.first_free_at_or_after(u32::MAX - 1), Some(u32::MAX - 1));
        r.insert(u32::MAX - 1);
        assert_eq!(r.first_free_at_or_after(u32::MAX - 1), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        Remove(u32),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        #[test]
        fn runs_match_the_definition(bridge in any::<bool>(), ops in prop::collection::vec(
            prop_oneof![(0u32..600).prop_map(Op::Insert), (0u32..600).prop_map(Op::Remove)], 0..60)
        ) {
            let mut r = RunSet::<u32>::new(bridge);
            let mut plain = RunSet::<u32>::new(false);
            let mut occupied = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(a) => {
                        if occupied.insert(a) {
                            r.insert(a);
                            plain.insert(a);
                        }
                    }
                    Op::Remove(a) => {
                        if occupied.remove(&a) {
                            r.remove(a, |s, e| occupied.range(s..=e).next().is_some());
                            plain.remove(a, |s, e| occupied.range(s..=e).next().is_some());
                        }
                    }
                }
                prop_assert_eq!(r.runs(), naive_runs(&occupied, bridge, 0, 700));
                if bridge {
                    prop_assert_eq!(RunSet::bridged_from(&plain).runs(), r.runs());
                }
            }
            for x in 0..650 {
                let taken = |y: &u32| occupied.contains(y) || (bridge && y.is_buggy());
                let free = (x..).find(|y| !taken(y));
                prop_assert_eq!(r.first_free_at_or_after(x), free);
            }
        }
    }
}
