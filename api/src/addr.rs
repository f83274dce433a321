//! Pool address parsing into IPv4/IPv6 interval sets.
//!
//! An `IPAddressPool`'s `spec.addresses` entries are parsed here, once, for the controller,
//! the speaker and any conversion tool alike. Each entry is one of
//!
//! - a CIDR, `198.51.100.0/24` or `2001:db8::/64`;
//! - a range, `198.51.100.10-198.51.100.20` (both ends inclusive, same family, end not below
//!   start; whitespace around `-` is tolerated, as MetalLB does);
//! - a single address, `198.51.100.7` or `2001:db8::7`.
//!
//! Decisions (kept in line with MetalLB so migrating pools is mechanical):
//!
//! - A CIDR with host bits set (`198.51.100.1/24`) is accepted and means its whole network
//!   (`198.51.100.0/24`), as MetalLB's Go `net.ParseCIDR` does. The entry keeps what was written
//!   ([`AddressEntry::host_bits_set`] lets a caller warn about it).
//! - Leading and trailing whitespace of an entry is ignored; whitespace anywhere else (inside
//!   an address, around `/`) is an error.
//! - IPv4 octets with leading zeros (`198.051.100.1`) are refused (ambiguous: octal or decimal),
//!   and so are IPv4-mapped IPv6 addresses (`::ffff:198.51.100.1`): write the IPv4 address.
//!
//! Entries become [`IntervalSet`]s: sorted, merged, inclusive `u32`/`u128` bounds. Nothing here
//! enumerates addresses, so a `/48` costs exactly what a `/30` costs.

use std::cmp::{max, min};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    /// Longest prefix length of the family.
    pub fn max_prefix_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    /// Spelled as Kubernetes spells `ipFamilies`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for u128 {}
}

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub trait AddrInt:
    Copy + Ord + Eq + Hash + fmt::Debug + Default + Send + Sync + 'static + sealed::Sealed
{
    /// The std address type of the family.
    type Addr: Copy + Eq + Ord + fmt::Display + fmt::Debug;
    const FAMILY: Family;
    const MIN: Self;
    const MAX: Self;
    fn from_addr(addr: Self::Addr) -> Self;
    fn to_addr(self) -> Self::Addr;
    fn to_ip(self) -> IpAddr;
    /// `self + 1`, or `None` past the last address.
    fn next(self) -> Option<Self>;
    /// `self - 1`, or `None` before the first address.
    fn prev(self) -> Option<Self>;
    /// Number of addresses from `start` to `end` inclusive, saturating at `u128::MAX`.
    fn span(start: Self, end: Self) -> u128;
    /// The address as `u128` (IPv4 zero-extended), for family-independent arithmetic.
    fn widen(self) -> u128;
    /// If `start..=end` is exactly one aligned prefix, its number of host bits.
    fn prefix_host_bits(start: Self, end: Self) -> Option<u32>;
    /// The all-ones mask of the low `bits` bits.
    fn low_mask(bits: u32) -> Self;
    fn bitor(self, other: Self) -> Self;
    fn bitand(self, other: Self) -> Self;
    fn not(self) -> Self;
}

impl AddrInt for u32 {
    type Addr = Ipv4Addr;
    const FAMILY: Family = Family::V4;
    const MIN: Self = 0;
    const MAX: Self = u32::MAX;
    fn from_addr(addr: Ipv4Addr) -> Self {
        u32::from(addr)
    }
    fn to_addr(self) -> Ipv4Addr {
        Ipv4Addr::from(self)
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(self.to_addr())
    }
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn span(start: Self, end: Self) -> u128 {
        u128::from(end) - u128::from(start) + 1
    }
    fn widen(self) -> u128 {
        u128::from(self)
    }
    fn prefix_host_bits(start: Self, end: Self) -> Option<u32> {
        if start == 0 && end == u32::MAX {
            return Some(32);
        }
        let n = (end - start).checked_add(1)?;
        (n.is_power_of_two() && start & (n - 1) == 0).then(|| n.trailing_zeros())
    }
    fn low_mask(bits: u32) -> Self {
        if bits >= 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        }
    }
    fn bitor(self, other: Self) -> Self {
        self | other
    }
    fn bitand(self, other: Self) -> Self {
        self & other
    }
    fn not(self) -> Self {
        !self
    }
}

impl AddrInt for u128 {
    type Addr = Ipv6Addr;
    const FAMILY: Family = Family::V6;
    const MIN: Self = 0;
    const MAX: Self = u128::MAX;
    fn from_addr(addr: Ipv6Addr) -> Self {
        u128::from(addr)
    }
    fn to_addr(self) -> Ipv6Addr {
        Ipv6Addr::from(self)
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(self.to_addr())
    }
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn span(start: Self, end: Self) -> u128 {
        (end - start).saturating_add(1)
    }
    fn widen(self) -> u128 {
        self
    }
    fn prefix_host_bits(start: Self, end: Self) -> Option<u32> {
        if start == 0 && end == u128::MAX {
            return Some(128);
        }
        let n = (end - start).checked_add(1)?;
        (n.is_power_of_two() && start & (n - 1) == 0).then(|| n.trailing_zeros())
    }
    fn low_mask(bits: u32) -> Self {
        if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        }
    }
    fn bitor(self, other: Self) -> Self {
        self | other
    }
    fn bitand(self, other: Self) -> Self {
        self & other
    }
    fn not(self) -> Self {
        !self
    }
}

/// An inclusive run of addresses, `start <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval<T> {
    pub start: T,
    pub end: T,
}

impl<T: AddrInt> Interval<T> {
    /// The run from `a` to `b`, whichever order they come in.
    pub fn new(a: T, b: T) -> Self {
        Interval {
            start: min(a, b),
            end: max(a, b),
        }
    }

    pub fn single(a: T) -> Self {
        Interval { start: a, end: a }
    }

    pub fn contains(&self, x: T) -> bool {
        self.start <= x && x <= self.end
    }

    /// Number of addresses, saturating at `u128::MAX` (only `::/0` saturates).
    pub fn size(&self) -> u128 {
        T::span(self.start, self.end)
    }

    /// The shortest entry that writes this run: an address, a CIDR when the run is one
    /// aligned prefix, a range otherwise.
    pub fn to_entry(&self) -> AddressEntry {
        if self.start == self.end {
            return AddressEntry::Single(self.start.to_ip());
        }
        if let Some(host_bits) = T::prefix_host_bits(self.start, self.end) {
            let len = T::FAMILY.max_prefix_len() - host_bits as u8;
            return AddressEntry::Cidr {
                addr: self.start.to_ip(),
                prefix_len: len,
            };
        }
        AddressEntry::Range {
            start: self.start.to_ip(),
            end: self.end.to_ip(),
        }
    }
}

/// A set of addresses of one family as sorted, disjoint, non-adjacent inclusive intervals.
///
/// Every operation works on intervals, never on single addresses, so the cost depends on the
/// number of entries, not on how many addresses they hold.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct IntervalSet<T> {
    intervals: Vec<Interval<T>>,
}

/// IPv4 addresses as an interval set.
pub type Ipv4Set = IntervalSet<u32>;
/// IPv6 addresses as an interval set.
pub type Ipv6Set = IntervalSet<u128>;

impl<T: AddrInt> fmt::Debug for IntervalSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.intervals.iter().map(|iv| iv.to_entry().to_string()))
            .finish()
    }
}

impl<T: AddrInt> FromIterator<Interval<T>> for IntervalSet<T> {
    fn from_iter<I: IntoIterator<Item = Interval<T>>>(iter: I) -> Self {
        let mut v: Vec<Interval<T>> = iter.into_iter().collect();
        v.sort_unstable();
        let mut out: Vec<Interval<T>> = Vec::with_capacity(v.len());
        for iv in v {
            match out.last_mut() {
                // Overlapping or adjacent: extend. `end.next()` is None at the family's last
                // address, and then everything after is covered already.
                Some(last) if last.end.next().is_none_or(|n| iv.start <= n) => {
                    last.end = max(last.end, iv.end);
                }
                _ => out.push(iv),
            }
        }
        IntervalSet { intervals: out }
    }
}

impl<T: AddrInt> IntervalSet<T> {
    pub fn new() -> Self {
        IntervalSet {
            intervals: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The intervals, sorted, disjoint and non-adjacent.
    pub fn intervals(&self) -> &[Interval<T>] {
        &self.intervals
    }

    /// Number of addresses, saturating at `u128::MAX`.
    pub fn size(&self) -> u128 {
        self.intervals
            .iter()
            .fold(0u128, |acc, iv| acc.saturating_add(iv.size()))
    }

    /// Index of the first interval whose end is at or after `x`.
    fn first_ending_at_or_after(&self, x: T) -> usize {
        self.intervals.partition_point(|iv| iv.end < x)
    }

    pub fn contains(&self, x: T) -> bool {
        self.interval_containing(x).is_some()
    }

    /// The interval holding `x`, if any.
    pub fn interval_containing(&self, x: T) -> Option<Interval<T>> {
        let i = self.first_ending_at_or_after(x);
        self.intervals.get(i).filter(|iv| iv.start <= x).copied()
    }

    /// The smallest member at or after `x`.
    pub fn first_at_or_after(&self, x: T) -> Option<T> {
        let i = self.first_ending_at_or_after(x);
        self.intervals.get(i).map(|iv| max(iv.start, x))
    }

    /// The smallest member.
    pub fn first(&self) -> Option<T> {
        self.intervals.first().map(|iv| iv.start)
    }

    /// Whether any address is in both sets.
    pub fn intersects(&self, other: &Self) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.intervals.len() && j < other.intervals.len() {
            let (a, b) = (self.intervals[i], other.intervals[j]);
            if a.start <= b.end && b.start <= a.end {
                return true;
            }
            if a.end < b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// Addresses in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.intervals.len() && j < other.intervals.len() {
            let (a, b) = (self.intervals[i], other.intervals[j]);
            let (s, e) = (max(a.start, b.start), min(a.end, b.end));
            if s <= e {
                out.push(Interval { start: s, end: e });
            }
            if a.end < b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        // Pieces of disjoint, non-adjacent inputs are disjoint and non-adjacent themselves.
        IntervalSet { intervals: out }
    }

    /// Addresses in either set.
    pub fn union(&self, other: &Self) -> Self {
        self.intervals
            .iter()
            .chain(other.intervals.iter())
            .copied()
            .collect()
    }

    /// Addresses in `self` but not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let mut j = 0;
        for &a in &self.intervals {
            let mut start = Some(a.start);
            while j < other.intervals.len() && other.intervals[j].end < a.start {
                j += 1;
            }
            let mut k = j;
            while let Some(s) = start {
                let Some(b) = other.intervals.get(k).filter(|b| b.start <= a.end) else {
                    out.push(Interval {
                        start: s,
                        end: a.end,
                    });
                    break;
                };
                if b.start > s {
                    // b.start > s >= MIN, so prev exists.
                    if let Some(e) = b.start.prev() {
                        out.push(Interval { start: s, end: e });
                    }
                }
                start = if b.end >= a.end { None } else { b.end.next() };
                k += 1;
            }
        }
        IntervalSet { intervals: out }
    }

    /// One entry per interval (see [`Interval::to_entry`]); parsing them gives this set back.
    pub fn to_entries(&self) -> Vec<AddressEntry> {
        self.intervals.iter().map(Interval::to_entry).collect()
    }
}

/// One `spec.addresses` entry, as written (a CIDR keeps its host bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressEntry {
    Cidr { addr: IpAddr, prefix_len: u8 },
    Range { start: IpAddr, end: IpAddr },
    Single(IpAddr),
}

/// Why a `spec.addresses` entry was refused. Each message names the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address entry {entry:?} is empty")]
    Empty { entry: String },
    #[error(
        "address entry {entry:?}: {part:?} is not an IPv4 or IPv6 address \
         (an entry is a CIDR like 198.51.100.0/24, a range like \
         198.51.100.10-198.51.100.20, or a single address)"
    )]
    NotAnAddress { entry: String, part: String },
    #[error(
        "address entry {entry:?}: {addr} is an IPv4-mapped IPv6 address; write the IPv4 \
         address instead"
    )]
    Ipv4Mapped { entry: String, addr: Ipv6Addr },
    #[error("address entry {entry:?}: prefix length {text:?} is not a number")]
    PrefixNotANumber { entry: String, text: String },
    #[error(
        "address entry {entry:?}: prefix length {len} is longer than {max}, the {family} maximum"
    )]
    PrefixTooLong {
        entry: String,
        len: u32,
        max: u8,
        family: Family,
    },
    #[error("address entry {entry:?}: range end {end} is below its start {start}")]
    RangeEndBelowStart {
        entry: String,
        start: IpAddr,
        end: IpAddr,
    },
    #[error(
        "address entry {entry:?}: range mixes {start} ({start_family}) and {end} ({end_family})"
    )]
    RangeMixesFamilies {
        entry: String,
        start: IpAddr,
        end: IpAddr,
        start_family: Family,
        end_family: Family,
    },
}

/// Parses one address as ferrolb accepts it anywhere: IPv4 dotted quad without leading zeros
/// (std already refuses those) or IPv6, but not IPv4-mapped IPv6.
fn parse_ip(part: &str) -> Result<IpAddr, ParseIpError> {
    let ip = IpAddr::from_str(part).map_err(|_| ParseIpError::NotAnAddress)?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(ParseIpError::Ipv4Mapped(v6));
    }
    Ok(ip)
}

enum ParseIpError {
    NotAnAddress,
    Ipv4Mapped(Ipv6Addr),
}

impl AddressEntry {
    /// Parses one entry; the error names `s`.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let entry = || s.to_string();
        let ip = |part: &str| {
            parse_ip(part).map_err(|e| match e {
                ParseIpError::NotAnAddress => AddressError::NotAnAddress {
                    entry: entry(),
                    part: part.to_string(),
                },
                ParseIpError::Ipv4Mapped(addr) => AddressError::Ipv4Mapped {
                    entry: entry(),
                    addr,
                },
            })
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(AddressError::Empty { entry: entry() });
        }
        if let Some((a, b)) = t.split_once('-') {
            let (start, end) = (ip(a.trim())?, ip(b.trim())?);
            let (fs, fe) = (Family::of(start), Family::of(end));
            if fs != fe {
                return Err(AddressError::RangeMixesFamilies {
                    entry: entry(),
                    start,
                    end,
                    start_family: fs,
                    end_family: fe,
                });
            }
            if end < start {
                return Err(AddressError::RangeEndBelowStart {
                    entry: entry(),
                    start,
                    end,
                });
            }
            return Ok(AddressEntry::Range { start, end });
        }
        if let Some((a, len)) = t.split_once('/') {
            let addr = ip(a)?;
            let family = Family::of(addr);
            // Digits only: `u32::from_str` would also take "+24".
            if len.is_empty() || len.len() > 10 || !len.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AddressError::PrefixNotANumber {
                    entry: entry(),
                    text: len.into(),
                });
            }
            let n: u32 = len.parse().map_err(|_| AddressError::PrefixNotANumber {
                entry: entry(),
                text: len.to_string(),
            })?;
            let max = family.max_prefix_len();
            if n > u32::from(max) {
                return Err(AddressError::PrefixTooLong {
                    entry: entry(),
                    len: n,
                    max,
                    family,
                });
            }
            return Ok(AddressEntry::Cidr {
                addr,
                prefix_len: n as u8,
            });
        }
        Ok(AddressEntry::Single(ip(t)?))
    }

    pub fn family(&self) -> Family {
        match *self {
            AddressEntry::Cidr { addr, .. } => Family::of(addr),
            AddressEntry::Range { start, .. } => Family::of(start),
            AddressEntry::Single(a) => Family::of(a),
        }
    }

    /// Whether a CIDR was written with host bits set (`198.51.100.1/24`); it still means the
    /// whole network, as in MetalLB.
    pub fn host_bits_set(&self) -> bool {
        match *self {
            AddressEntry::Cidr {
                addr: IpAddr::V4(a),
                prefix_len,
            } => u32::from(a) & u32::low_mask(32 - u32::from(prefix_len)) != 0,
            AddressEntry::Cidr {
                addr: IpAddr::V6(a),
                prefix_len,
            } => u128::from(a) & u128::low_mask(128 - u32::from(prefix_len)) != 0,
            _ => false,
        }
    }

    /// The addresses of the entry as an inclusive interval of the entry's family.
    pub fn interval(&self) -> FamilyInterval {
        fn cidr<T: AddrInt>(a: T, len: u8) -> Interval<T> {
            let host = T::low_mask(u32::from(T::FAMILY.max_prefix_len() - len));
            Interval {
                start: a.bitand(host.not()),
                end: a.bitor(host),
            }
        }
        match *self {
            AddressEntry::Cidr {
                addr: IpAddr::V4(a),
                prefix_len,
            } => FamilyInterval::V4(cidr(u32::from(a), prefix_len)),
            AddressEntry::Cidr {
                addr: IpAddr::V6(a),
                prefix_len,
            } => FamilyInterval::V6(cidr(u128::from(a), prefix_len)),
            AddressEntry::Range {
                start: IpAddr::V4(s),
                end: IpAddr::V4(e),
            } => FamilyInterval::V4(Interval::new(s.into(), e.into())),
            AddressEntry::Range {
                start: IpAddr::V6(s),
                end: IpAddr::V6(e),
            } => FamilyInterval::V6(Interval::new(s.into(), e.into())),
            // Unreachable through `parse`; a hand-built mixed range counts as its start only.
            AddressEntry::Range {
                start: IpAddr::V4(s),
                end: IpAddr::V6(_),
            } => FamilyInterval::V4(Interval::single(s.into())),
            AddressEntry::Range {
                start: IpAddr::V6(s),
                end: IpAddr::V4(_),
            } => FamilyInterval::V6(Interval::single(s.into())),
            AddressEntry::Single(IpAddr::V4(a)) => FamilyInterval::V4(Interval::single(a.into())),
            AddressEntry::Single(IpAddr::V6(a)) => FamilyInterval::V6(Interval::single(a.into())),
        }
    }
}

impl FromStr for AddressEntry {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        AddressEntry::parse(s)
    }
}

impl fmt::Display for AddressEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressEntry::Cidr { addr, prefix_len } => write!(f, "{addr}/{prefix_len}"),
            AddressEntry::Range { start, end } => write!(f, "{start}-{end}"),
            AddressEntry::Single(a) => write!(f, "{a}"),
        }
    }
}

/// An interval tagged with its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyInterval {
    V4(Interval<u32>),
    V6(Interval<u128>),
}

/// A pool's addresses: one interval set per family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddressRanges {
    pub v4: Ipv4Set,
    pub v6: Ipv6Set,
}

impl AddressRanges {
    /// Parses a pool's `spec.addresses`; the error names the first bad entry.
    pub fn parse<I, S>(entries: I) -> Result<Self, AddressError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for e in entries {
            match AddressEntry::parse(e.as_ref())?.interval() {
                FamilyInterval::V4(iv) => v4.push(iv),
                FamilyInterval::V6(iv) => v6.push(iv),
            }
        }
        Ok(AddressRanges {
            v4: v4.into_iter().collect(),
            v6: v6.into_iter().collect(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(a.into()),
            IpAddr::V6(a) => self.v6.contains(a.into()),
        }
    }

    pub fn has_family(&self, family: Family) -> bool {
        match family {
            Family::V4 => !self.v4.is_empty(),
            Family::V6 => !self.v6.is_empty(),
        }
    }

    /// Whether the two pools share any address (for the pools' overlap condition).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.v4.intersects(&other.v4) || self.v6.intersects(&other.v6)
    }

    pub fn intersection(&self, other: &Self) -> Self {
        AddressRanges {
            v4: self.v4.intersection(&other.v4),
            v6: self.v6.intersection(&other.v6),
        }
    }

    pub fn union(&self, other: &Self) -> Self {
        AddressRanges {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    pub fn difference(&self, other: &Self) -> Self {
        AddressRanges {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
        }
    }

    /// Number of addresses of a family, saturating at `u128::MAX`.
    pub fn size(&self, family: Family) -> u128 {
        match family {
            Family::V4 => self.v4.size(),
            Family::V6 => self.v6.size(),
        }
    }

    /// A canonical entry list (IPv4 first, ascending) that parses back to these ranges.
    pub fn to_entries(&self) -> Vec<AddressEntry> {
        let mut out = self.v4.to_entries();
        out.extend(self.v6.to_entries());
        out
    }
}

/// Whether an address ends in `.0` or `.255`, which some old CPE firmware drops as
/// smurf-attack traffic (a pool's `avoidBuggyIPs`). Only IPv4 addresses can be buggy.
pub fn is_buggy_v4(a: u32) -> bool {
    matches!(a & 0xff, 0 | 0xff)
}

/// Why a requested-address list (`ferrolb.io/loadBalancerIPs`, its MetalLB aliases or
/// `spec.loadBalancerIP`) was refused. Each message names the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpListError {
    #[error("address list {value:?} has an empty item")]
    EmptyItem { value: String },
    #[error("address list {value:?}: {item:?} is not an IPv4 or IPv6 address")]
    NotAnAddress { value: String, item: String },
    #[error(
        "address list {value:?}: {addr} is an IPv4-mapped IPv6 address; write the IPv4 \
         address instead"
    )]
    Ipv4Mapped { value: String, addr: Ipv6Addr },
    #[error(
        "address list {value:?} names two {family} addresses, {first} and {second}; give at most one per family"
    )]
    TwoOfFamily {
        value: String,
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },
}

/// Parses a comma-separated list of requested addresses, at most one per family, in the order
/// given. Whitespace around items is ignored; an empty or all-blank value requests nothing.
pub fn parse_ip_list(value: &str) -> Result<Vec<IpAddr>, IpListError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<IpAddr> = Vec::with_capacity(2);
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(IpListError::EmptyItem {
                value: value.into(),
            });
        }
        let ip = parse_ip(item).map_err(|e| match e {
            ParseIpError::NotAnAddress => IpListError::NotAnAddress {
                value: value.into(),
                item: item.into(),
            },
            ParseIpError::Ipv4Mapped(addr) => IpListError::Ipv4Mapped {
                value: value.into(),
                addr,
            },
        })?;
        if let Some(&first) = out.iter().find(|o| Family::of(**o) == Family::of(ip)) {
            return Err(IpListError::TwoOfFamily {
                value: value.into(),
                family: Family::of(ip),
                first,
                second: ip,
            });
        }
        out.push(ip);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ranges(entries: &[&str]) -> AddressRanges {
        AddressRanges::parse(entries).unwrap()
    }

    fn v4(s: &str) -> u32 {
        s.parse::<Ipv4Addr>().unwrap().into()
    }

    fn v6(s: &str) -> u128 {
        s.parse::<Ipv6Addr>().unwrap().into()
    }

    #[test]
    fn parses_cidr_range_and_single() {
        let r = ranges(&["198.51.100.0/30", "203.0.113.10-203.0.113.20", "192.0.2.7"]);
        assert_eq!(
            r.v4.intervals(),
            &[
                Interval {
                    start: v4("192.0.2.7"),
                    end: v4("192.0.2.7")
                },
                Interval {
                    start: v4("198.51.100.0"),
                    end: v4("198.51.100.3")
                },
                Interval {
                    start: v4("203.0.113.10"),
                    end: v4("203.0.113.20")
                },
            ]
        );
        assert!(r.v6.is_empty());
        assert_eq!(r.size(Family::V4), 1 + 4 + 11);
    }

    #[test]
    fn parses_ipv6_entries() {
        let r = ranges(&[
            "2001:db8::/64",
            "2001:db8:1::5-2001:db8:1::9",
            "2001:db8:2::1",
        ]);
        assert_eq!(r.v6.intervals().len(), 3);
        assert_eq!(r.size(Family::V6), (1u128 << 64) + 5 + 1);
        assert!(r.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!r.contains("2001:db8:1::a".parse().unwrap()));
    }

    #[test]
    fn whitespace_around_dash_and_entry_is_tolerated() {
        assert_eq!(
            ranges(&[" 198.51.100.1 - 198.51.100.3 "]),
            ranges(&["198.51.100.1-198.51.100.3"])
        );
        assert_eq!(
            ranges(&["  198.51.100.0/24\t"]),
            ranges(&["198.51.100.0/24"])
        );
    }

    #[test]
    fn whitespace_inside_cidr_is_refused() {
        assert!(matches!(
            AddressEntry::parse("198.51.100.0 /24"),
            Err(AddressError::NotAnAddress { .. })
        ));
        assert!(matches!(
            AddressEntry::parse("198.51.100.0/ 24"),
            Err(AddressError::PrefixNotANumber { .. })
        ));
    }

    #[test]
    fn host_bits_set_means_the_whole_network() {
        let e = AddressEntry::parse("198.51.100.1/24").unwrap();
        assert!(e.host_bits_set());
        assert_eq!(e.to_string(), "198.51.100.1/24");
        assert_eq!(ranges(&["198.51.100.1/24"]), ranges(&["198.51.100.0/24"]));
        assert!(
            !AddressEntry::parse("198.51.100.0/24")
                .unwrap()
                .host_bits_set()
        );
        assert!(
            AddressEntry::parse("2001:db8::1/64")
                .unwrap()
                .host_bits_set()
        );
    }

    #[test]
    fn errors_name_the_entry_and_the_fault() {
        let cases: &[(&str, &str)] = &[
            ("", "is empty"),
            ("banana", "\"banana\" is not an IPv4 or IPv6 address"),
            (
                "198.51.100.0/33",
                "prefix length 33 is longer than 32, the IPv4 maximum",
            ),
            (
                "2001:db8::/129",
                "prefix length 129 is longer than 128, the IPv6 maximum",
            ),
            ("198.51.100.0/+24", "prefix length \"+24\" is not a number"),
            ("198.51.100.0/", "prefix length \"\" is not a number"),
            (
                "198.51.100.9-198.51.100.3",
                "range end 198.51.100.3 is below its start 198.51.100.9",
            ),
            (
                "198.51.100.1-2001:db8::1",
                "range mixes 198.51.100.1 (IPv4) and 2001:db8::1 (IPv6)",
            ),
            (
                "198.051.100.1",
                "\"198.051.100.1\" is not an IPv4 or IPv6 address",
            ),
            ("::ffff:198.51.100.1", "IPv4-mapped IPv6 address"),
            (
                "198.51.100.1-198.51.100.2-198.51.100.3",
                "\"198.51.100.2-198.51.100.3\" is not",
            ),
            (
                "198.51.100.0/24-198.51.100.255",
                "\"198.51.100.0/24\" is not",
            ),
            ("fe80::1%eth0", "is not an IPv4 or IPv6 address"),
        ];
        for (entry, want) in cases {
            let err = AddressRanges::parse([entry]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{entry:?}")),
                "{err} does not name {entry:?}"
            );
            assert!(err.contains(want), "{err} does not say {want}");
        }
    }

    #[test]
    fn a_range_may_be_a_single_address() {
        assert_eq!(ranges(&["192.0.2.1-192.0.2.1"]), ranges(&["192.0.2.1"]));
    }

    #[test]
    fn merges_overlapping_and_adjacent_entries() {
        let r = ranges(&[
            "198.51.100.0/25",
            "198.51.100.128/25",
            "198.51.100.10-198.51.100.20",
        ]);
        assert_eq!(
            r.v4.intervals(),
            &[Interval {
                start: v4("198.51.100.0"),
                end: v4("198.51.100.255")
            }]
        );
    }

    #[test]
    fn whole_address_spaces_do_not_overflow() {
        let r = ranges(&["0.0.0.0/0", "::/0"]);
        assert_eq!(r.size(Family::V4), 1u128 << 32);
        assert_eq!(r.size(Family::V6), u128::MAX);
        assert_eq!(
            r.to_entries()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["0.0.0.0/0", "::/0"]
        );
        let r = ranges(&["255.255.255.254-255.255.255.255", "255.255.255.250/31"]);
        assert_eq!(r.v4.intervals().len(), 2);
    }

    #[test]
    fn overlap_between_pools() {
        let a = ranges(&["198.51.100.0/24", "2001:db8::/64"]);
        let b = ranges(&["198.51.100.200-198.51.101.5"]);
        let c = ranges(&["198.51.101.0/24"]);
        let d = ranges(&["2001:db8::ffff"]);
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.overlaps(&d));
        assert_eq!(
            a.intersection(&b).to_entries()[0].to_string(),
            "198.51.100.200-198.51.100.255"
        );
    }

    #[test]
    fn first_at_or_after_skips_gaps() {
        let r = ranges(&["192.0.2.10-192.0.2.12", "192.0.2.20"]);
        assert_eq!(
            r.v4.first_at_or_after(v4("192.0.2.0")),
            Some(v4("192.0.2.10"))
        );
        assert_eq!(
            r.v4.first_at_or_after(v4("192.0.2.11")),
            Some(v4("192.0.2.11"))
        );
        assert_eq!(
            r.v4.first_at_or_after(v4("192.0.2.13")),
            Some(v4("192.0.2.20"))
        );
        assert_eq!(r.v4.first_at_or_after(v4("192.0.2.21")), None);
    }

    #[test]
    fn difference_cuts_holes() {
        let a = ranges(&["192.0.2.0/24"]);
        let b = ranges(&["192.0.2.0", "192.0.2.10-192.0.2.20", "192.0.2.255"]);
        let d = a.difference(&b);
        assert_eq!(
            d.to_entries()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["192.0.2.1-192.0.2.9", "192.0.2.21-192.0.2.254"]
        );
        assert_eq!(d.size(Family::V4), 256 - 1 - 11 - 1);
    }

    #[test]
    fn entries_are_minimal() {
        let e = |s: &str| ranges(&[s]).to_entries()[0].to_string();
        assert_eq!(e("198.51.100.0-198.51.100.255"), "198.51.100.0/24");
        assert_eq!(
            e("198.51.100.0-198.51.100.254"),
            "198.51.100.0-198.51.100.254"
        );
        assert_eq!(e("198.51.100.4-198.51.100.7"), "198.51.100.4/30");
        assert_eq!(e("2001:db8::/48"), "2001:db8::/48");
        assert_eq!(e("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn huge_ipv6_pool_costs_the_same_as_a_small_one() {
        let big = ranges(&["2001:db8::/48"]);
        let small = ranges(&["2001:db8::/126"]);
        assert_eq!(big.v6.intervals().len(), small.v6.intervals().len());
        assert_eq!(big.size(Family::V6), 1u128 << 80);
        assert_eq!(
            big.v6.first_at_or_after(v6("2001:db8:0:ffff::1")),
            Some(v6("2001:db8:0:ffff::1"))
        );
    }

    #[test]
    fn buggy_addresses_are_dot_zero_and_dot_255() {
        assert!(is_buggy_v4(v4("198.51.100.0")));
        assert!(is_buggy_v4(v4("198.51.100.255")));
        assert!(!is_buggy_v4(v4("198.51.100.1")));
        assert!(!is_buggy_v4(v4("198.51.100.254")));
    }

    #[test]
    fn ip_list_parses_one_per_family() {
        assert_eq!(
            parse_ip_list("198.51.100.1, 2001:db8::1").unwrap(),
            vec![
                "198.51.100.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert_eq!(parse_ip_list("  ").unwrap(), Vec::<IpAddr>::new());
        let err = parse_ip_list("198.51.100.1,198.51.100.2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("two IPv4 addresses, 198.51.100.1 and 198.51.100.2"),
            "{err}"
        );
        let err = parse_ip_list("198.51.100.1,").unwrap_err().to_string();
        assert!(err.contains("empty item"), "{err}");
        let err = parse_ip_list("198.51.100.1,nope").unwrap_err().to_string();
        assert!(
            err.contains("\"nope\" is not an IPv4 or IPv6 address"),
            "{err}"
        );
        assert!(matches!(
            parse_ip_list("::ffff:1.2.3.4"),
            Err(IpListError::Ipv4Mapped { .. })
        ));
    }

    // ---- property tests -------------------------------------------------------------------

    /// Small IPv4 intervals inside 192.0.2.0/24 so that random sets collide often.
    fn small_interval() -> impl Strategy<Value = Interval<u32>> {
        let base = v4("192.0.2.0");
        (0u32..64, 0u32..12).prop_map(move |(s, l)| Interval {
            start: base + s,
            end: base + s + l,
        })
    }

    fn small_set() -> impl Strategy<Value = IntervalSet<u32>> {
        prop::collection::vec(small_interval(), 0..6).prop_map(|v| v.into_iter().collect())
    }

    fn naive(set: &IntervalSet<u32>) -> std::collections::BTreeSet<u32> {
        set.intervals()
            .iter()
            .flat_map(|iv| iv.start..=iv.end)
            .collect()
    }

    fn any_entry() -> impl Strategy<Value = AddressEntry> {
        let v4a = any::<u32>().prop_map(|a| IpAddr::V4(a.into()));
        let v6a = any::<u128>()
            .prop_filter("not v4-mapped", |a| {
                Ipv6Addr::from(*a).to_ipv4_mapped().is_none()
            })
            .prop_map(|a| IpAddr::V6(a.into()));
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, l)| AddressEntry::Cidr {
                addr: IpAddr::V4(a.into()),
                prefix_len: l
            }),
            (v6a.clone(), 0u8..=128).prop_map(|(a, l)| AddressEntry::Cidr {
                addr: a,
                prefix_len: l
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| AddressEntry::Range {
                start: IpAddr::V4(min(a, b).into()),
                end: IpAddr::V4(max(a, b).into())
            }),
            (v6a.clone(), v6a.clone()).prop_map(|(a, b)| AddressEntry::Range {
                start: min(a, b),
                end: max(a, b)
            }),
            v4a.prop_map(AddressEntry::Single),
            v6a.prop_map(AddressEntry::Single),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn entry_display_parse_round_trip(e in any_entry()) {
            let text = e.to_string();
            prop_assert_eq!(AddressEntry::parse(&text), Ok(e));
        }

        #[test]
        fn ranges_to_entries_parse_round_trip(entries in prop::collection::vec(any_entry(), 0..8)) {
            let text: Vec<String> = entries.iter().map(ToString::to_string).collect();
            let r = AddressRanges::parse(&text).unwrap();
            let back: Vec<String> = r.to_entries().iter().map(ToString::to_string).collect();
            prop_assert_eq!(AddressRanges::parse(&back), Ok(r.clone()));
            // Canonical entries are one per interval.
            prop_assert_eq!(back.len(), r.v4.intervals().len() + r.v6.intervals().len());
        }

        #[test]
        fn parse_never_panics_on_text(s in "\\PC{0,40}") {
            let _ = AddressEntry::parse(&s);
            let _ = parse_ip_list(&s);
        }

        #[test]
        fn parse_never_panics_on_address_like_text(s in "[0-9a-f:./ -]{0,45}") {
            if let Ok(e) = AddressEntry::parse(&s) {
                // Whatever parses re-parses to itself from its canonical text.
                prop_assert_eq!(AddressEntry::parse(&e.to_string()), Ok(e));
            }
        }

        #[test]
        fn set_is_normalised_and_matches_naive_model(ivs in prop::collection::vec(small_interval(), 0..8)) {
            let set: IntervalSet<u32> = ivs.iter().copied().collect();
            let model: std::collections::BTreeSet<u32> = ivs.iter().flat_map(|iv| iv.start..=iv.end).collect();
            prop_assert_eq!(naive(&set), model.clone());
            for w in set.intervals().windows(2) {
                // Sorted, disjoint and not adjacent (else they would have merged).
                prop_assert!(w[0].end + 1 < w[1].start);
            }
            prop_assert_eq!(set.size(), model.len() as u128);
            let base = v4("192.0.2.0");
            for x in base..base + 80 {
                prop_assert_eq!(set.contains(x), model.contains(&x));
                prop_assert_eq!(set.first_at_or_after(x), model.range(x..).next().copied());
            }
        }

        #[test]
        fn set_operations_match_naive_model(a in small_set(), b in small_set()) {
            let (na, nb) = (naive(&a), naive(&b));
            prop_assert_eq!(naive(&a.union(&b)), na.union(&nb).copied().collect());
            prop_assert_eq!(naive(&a.intersection(&b)), na.intersection(&nb).copied().collect());
            prop_assert_eq!(naive(&a.difference(&b)), na.difference(&nb).copied().collect());
            prop_assert_eq!(a.intersects(&b), !na.is_disjoint(&nb));
            // Overlap is symmetric.
            prop_assert_eq!(a.intersects(&b), b.intersects(&a));
            // Results are normalised like any set built from intervals.
            let d = a.difference(&b);
            prop_assert_eq!(d.clone(), d.intervals().iter().copied().collect::<IntervalSet<u32>>());
            let i = a.intersection(&b);
            prop_assert_eq!(i.clone(), i.intervals().iter().copied().collect::<IntervalSet<u32>>());
        }

        #[test]
        fn huge_ipv6_sets_stay_small(prefixes in prop::collection::vec((any::<u128>(), 0u8..=64), 1..6)) {
            // However wide the prefixes, the set never has more intervals than entries, and
            // the size saturates rather than overflowing.
            let text: Vec<String> = prefixes
                .iter()
                .filter(|(a, _)| Ipv6Addr::from(*a).to_ipv4_mapped().is_none())
                .map(|(a, l)| format!("{}/{l}", Ipv6Addr::from(*a)))
                .collect();
            let r = AddressRanges::parse(&text).unwrap();
            prop_assert!(r.v6.intervals().len() <= text.len());
            let naive_sum = r.v6.intervals().iter().fold(0u128, |s, iv| s.saturating_add(iv.size()));
            prop_assert_eq!(r.size(Family::V6), naive_sum);
        }
    }
}
