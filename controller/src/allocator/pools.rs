//! The allocator's pools: specs, choice order, counters, and which pools hold an address.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::addr::{AddrInt, Family, Interval, IntervalSet};

use super::runs::Bits;
use super::{PoolName, PoolSpec};

pub(crate) type PoolId = u32;

pub(crate) fn fidx(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// Address integers of one family, with access to that family's part of a pool.
pub(crate) trait PoolBits: Bits {
    fn ranges(spec: &PoolSpec) -> &IntervalSet<Self>;
    fn segments(pools: &Pools) -> &Segments<Self>;
}

impl PoolBits for u32 {
    fn ranges(spec: &PoolSpec) -> &IntervalSet<u32> {
        &spec.ranges.v4
    }
    fn segments(pools: &Pools) -> &Segments<u32> {
        &pools.seg4
    }
}

impl PoolBits for u128 {
    fn ranges(spec: &PoolSpec) -> &IntervalSet<u128> {
        &spec.ranges.v6
    }
    fn segments(pools: &Pools) -> &Segments<u128> {
        &pools.seg6
    }
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) spec: PoolSpec,
    /// Position in the choice order (pools with a `serviceAllocation` by priority and name,
    /// then the others by name); the lower, the more preferred.
    pub(crate) rank: u32,
    /// Addresses a Service can get, per family (`avoidBuggyIPs` removes `.0`/`.255`).
    pub(crate) usable: [u128; 2],
    /// Held addresses inside the pool, whichever pool they are attributed to.
    pub(crate) in_use: [u128; 2],
    /// Held addresses attributed to this pool.
    pub(crate) assigned: [u128; 2],
}

impl Pool {
    fn new(spec: PoolSpec) -> Self {
        let buggy = if spec.avoid_buggy_ips {
            buggy_count(&spec.ranges.v4)
        } else {
            0
        };
        let usable = [spec.ranges.v4.size() - buggy, spec.ranges.v6.size()];
        Pool {
            spec,
            rank: 0,
            usable,
            in_use: [0; 2],
            assigned: [0; 2],
        }
    }

    /// Whether a Service may get `x` from this pool (in its ranges, and not a skipped buggy
    /// address).
    pub(crate) fn contains<T: PoolBits>(&self, x: T) -> bool {
        T::ranges(&self.spec).contains(x) && !(self.spec.avoid_buggy_ips && x.is_buggy())
    }

    pub(crate) fn avoids_buggy<T: PoolBits>(&self) -> bool {
        self.spec.avoid_buggy_ips && T::FAMILY == Family::V4
    }

    pub(crate) fn name(&self) -> &PoolName {
        &self.spec.name
    }
}

/// Number of addresses ending in `.0` or `.255` in the set.
fn buggy_count(set: &IntervalSet<u32>) -> u128 {
    // Members of s..=e congruent to r modulo 256.
    fn congruent(s: u64, e: u64, r: u64) -> u64 {
        let upto = |n: u64| if n < r { 0 } else { (n - r) / 256 + 1 };
        upto(e) - if s == 0 { 0 } else { upto(s - 1) }
    }
    set.intervals()
        .iter()
        .map(|iv| {
            let (s, e) = (u64::from(iv.start), u64::from(iv.end));
            u128::from(congruent(s, e, 0) + congruent(s, e, 255))
        })
        .sum()
}

/// Which pools contain an address: the address space cut at every pool boundary, each piece
/// with the pools covering it. Rebuilt when a pool changes (rare); looked up per address.
#[derive(Debug)]
pub(crate) struct Segments<T> {
    segs: Vec<(Interval<T>, Box<[PoolId]>)>,
}

impl<T: AddrInt> Default for Segments<T> {
    fn default() -> Self {
        Segments { segs: Vec::new() }
    }
}

impl<T: AddrInt> Segments<T> {
    fn build(items: impl IntoIterator<Item = (PoolId, Interval<T>)>) -> Self {
        // (position, starts?, pool): a pool's interval starts at `start` and stops covering at
        // `end + 1` (never, for the family's last address).
        let mut events: Vec<(T, bool, PoolId)> = Vec::new();
        for (pid, iv) in items {
            events.push((iv.start, true, pid));
            if let Some(after) = iv.end.next() {
                events.push((after, false, pid));
            }
        }
        events.sort_unstable();
        let mut segs = Vec::new();
        let mut active: BTreeSet<PoolId> = BTreeSet::new();
        let mut i = 0;
        while i < events.len() {
            let pos = events[i].0;
            while i < events.len() && events[i].0 == pos {
                let (_, starts, pid) = events[i];
                if starts {
                    active.insert(pid);
                } else {
                    active.remove(&pid);
                }
                i += 1;
            }
            if !active.is_empty() {
                let end = match events.get(i) {
                    Some(&(next, _, _)) => next.prev().unwrap_or(T::MIN),
                    None => T::MAX,
                };
                segs.push((
                    Interval { start: pos, end },
                    active.iter().copied().collect(),
                ));
            }
        }
        Segments { segs }
    }

    pub(crate) fn pools_at(&self, x: T) -> &[PoolId] {
        let i = self.segs.partition_point(|(iv, _)| iv.end < x);
        match self.segs.get(i) {
            Some((iv, pools)) if iv.start <= x => pools,
            _ => &[],
        }
    }

    /// Pools sharing at least one address with `pid`.
    fn overlapping(&self, pid: PoolId, out: &mut BTreeSet<PoolId>) {
        for (_, pools) in &self.segs {
            if pools.len() > 1 && pools.contains(&pid) {
                out.extend(pools.iter().copied().filter(|p| *p != pid));
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Pools {
    slots: Vec<Option<Pool>>,
    free: Vec<PoolId>,
    by_name: BTreeMap<PoolName, PoolId>,
    /// Every pool in choice order: with a `serviceAllocation` by (priority, name), then the
    /// others by name.
    order: Vec<PoolId>,
    seg4: Segments<u32>,
    seg6: Segments<u128>,
}

impl Pools {
    pub(crate) fn get(&self, id: PoolId) -> Option<&Pool> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: PoolId) -> Option<&mut Pool> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    pub(crate) fn id(&self, name: &PoolName) -> Option<PoolId> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn name(&self, id: PoolId) -> Option<&PoolName> {
        self.get(id).map(Pool::name)
    }

    /// Pools in choice order.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = (PoolId, &Pool)> + '_ {
        self.order
            .iter()
            .filter_map(|&id| self.get(id).map(|p| (id, p)))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (PoolId, &Pool)> + '_ {
        self.by_name
            .values()
            .filter_map(|&id| self.get(id).map(|p| (id, p)))
    }

    /// Adds or replaces a pool; returns its id and the spec it replaced.
    pub(crate) fn upsert(&mut self, spec: PoolSpec) -> (PoolId, Option<Pool>) {
        let name = spec.name.clone();
        let new = Pool::new(spec);
        let (id, old) = match self.by_name.get(&name) {
            Some(&id) => (id, self.slots[id as usize].replace(new)),
            None => {
                let id = match self.free.pop() {
                    Some(id) => {
                        self.slots[id as usize] = Some(new);
                        id
                    }
                    None => {
                        self.slots.push(Some(new));
                        (self.slots.len() - 1) as PoolId
                    }
                };
                self.by_name.insert(name, id);
                (id, None)
            }
        };
        self.rebuild();
        (id, old)
    }

    pub(crate) fn remove(&mut self, name: &PoolName) -> Option<(PoolId, Pool)> {
        let id = self.by_name.remove(name)?;
        let pool = self.slots[id as usize].take()?;
        self.free.push(id);
        self.rebuild();
        Some((id, pool))
    }

    fn rebuild(&mut self) {
        let mut with: Vec<(i32, &PoolName, PoolId)> = Vec::new();
        let mut without: Vec<(&PoolName, PoolId)> = Vec::new();
        for (name, &id) in &self.by_name {
            let Some(pool) = self.get(id) else { continue };
            match &pool.spec.allocation {
                Some(a) => with.push((a.priority, name, id)),
                None => without.push((name, id)),
            }
        }
        with.sort();
        let order: Vec<PoolId> = with
            .iter()
            .map(|w| w.2)
            .chain(without.iter().map(|w| w.1))
            .collect();
        for (rank, &id) in order.iter().enumerate() {
            if let Some(p) = self.get_mut(id) {
                p.rank = rank as u32;
            }
        }
        self.order = order;
        let ids: Vec<PoolId> = self.by_name.values().copied().collect();
        self.seg4 = Segments::build(ids.iter().flat_map(|&id| {
            self.get(id)
                .into_iter()
                .flat_map(move |p| p.spec.ranges.v4.intervals().iter().map(move |iv| (id, *iv)))
        }));
        self.seg6 = Segments::build(ids.iter().flat_map(|&id| {
            self.get(id)
                .into_iter()
                .flat_map(move |p| p.spec.ranges.v6.intervals().iter().map(move |iv| (id, *iv)))
        }));
    }

    /// Names of the pools sharing an address with `name`.
    pub(crate) fn overlapping(&self, name: &PoolName) -> Vec<PoolName> {
        let Some(id) = self.id(name) else {
            return Vec::new();
        };
        let mut ids = BTreeSet::new();
        self.seg4.overlapping(id, &mut ids);
        self.seg6.overlapping(id, &mut ids);
        let mut names: Vec<PoolName> = ids
            .into_iter()
            .filter_map(|i| self.name(i).cloned())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ferrolb_api::addr::AddressRanges;

    #[test]
    fn buggy_count_counts_dot_zero_and_dot_255() {
        let r =
            AddressRanges::parse(["192.0.2.0/24", "198.51.100.255-198.51.101.0", "203.0.113.5"])
                .unwrap();
        assert_eq!(buggy_count(&r.v4), 2 + 2);
        let r = AddressRanges::parse(["0.0.0.0/0"]).unwrap();
        assert_eq!(buggy_count(&r.v4), 2 * (1 << 24));
    }

    #[test]
    fn segments_report_every_covering_pool() {
        let a = AddressRanges::parse(["192.0.2.0-192.0.2.100"]).unwrap();
        let b = AddressRanges::parse(["192.0.2.50-192.0.2.200", "255.255.255.255"]).unwrap();
        let s = Segments::build(
            a.v4.intervals()
                .iter()
                .map(|iv| (0, *iv))
                .chain(b.v4.intervals().iter().map(|iv| (1, *iv))),
        );
        let at = |t: &str| {
            s.pools_at(u32::from(t.parse::<std::net::Ipv4Addr>().unwrap()))
                .to_vec()
        };
        assert_eq!(at("192.0.2.0"), vec![0]);
        assert_eq!(at("192.0.2.50"), vec![0, 1]);
        assert_eq!(at("192.0.2.100"), vec![0, 1]);
        assert_eq!(at("192.0.2.101"), vec![1]);
        assert_eq!(at("192.0.2.201"), Vec::<PoolId>::new());
        assert_eq!(at("255.255.255.255"), vec![1]);
    }
}
