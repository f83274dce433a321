//! Pure validation of the fields other than pool addresses (those are [`crate::addr`]'s).
//!
//! The CRDs' CEL rules ([`crate::rules`]) refuse bad objects at the API server; these functions
//! make the same checks for the controller, the speaker and `convert`, which also see objects
//! that never passed CEL (created before the CRD was updated, or converted from MetalLB).
//! Each error's message is the CEL rule's message prefixed with the field path, the way the
//! API server shows it, and a test holds the two equal. Functions that need more than one
//! object (the CEL rules cannot see across objects) live here too:
//! [`aggregation_fits_pool`].
//!
//! Each check returns the parsed, typed value so that callers use what was checked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::bgp::{BGPAdvertisementSpec, BGPPeerSpec, PasswordSecret};
use crate::l2::L2AdvertisementSpec;

/// A field that fails a validation rule. The message is the one the matching CEL rule gives,
/// prefixed with the field's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    /// AS number 0.
    #[error("{field}: AS number 0 is reserved (RFC 7607) and cannot be used")]
    ZeroAsn {
        /// Path of the field.
        field: String,
    },
    /// Not an IP address.
    #[error("{field}: \"{value}\" is not an IP address")]
    NotAnIpAddress {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// A router ID that is not written as an IPv4 address.
    #[error(
        "{field}: \"{value}\" is not a router ID: write it as an IPv4 address such as 192.0.2.1"
    )]
    NotARouterId {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// Not a duration in whole seconds.
    #[error("{field}: \"{value}\" is not a duration in whole seconds such as 90s, 3m or 1m30s")]
    NotADuration {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// A hold time of 1 or 2 seconds, or over 65535.
    #[error(
        "{field}: \"{value}\" is out of range: a hold time is 0s (no keepalives) or between 3s and 65535s"
    )]
    HoldTimeOutOfRange {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// A connect time of 0 or over 65535 seconds.
    #[error("{field}: \"{value}\" is out of range: a connect time is between 1s and 65535s")]
    ConnectTimeOutOfRange {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// A keepalive time that is not shorter than the hold time.
    #[error("{field}: keepaliveTime {keepalive} must be shorter than holdTime {hold}")]
    KeepaliveNotBelowHold {
        /// Path of the keepalive field.
        field: String,
        /// The keepalive time as written.
        keepalive: String,
        /// The hold time as written.
        hold: String,
    },
    /// A non-zero keepalive time with a zero hold time.
    #[error("{field}: keepaliveTime {keepalive} must be 0s when holdTime is 0s (no keepalives)")]
    KeepaliveWithoutHold {
        /// Path of the keepalive field.
        field: String,
        /// The keepalive time as written.
        keepalive: String,
    },
    /// Port 0.
    #[error("{field}: port 0 cannot be connected to")]
    PortZero {
        /// Path of the field.
        field: String,
    },
    /// A password Secret reference with an empty part.
    #[error("{field}: name, namespace and key of the password Secret must not be empty")]
    IncompleteSecretReference {
        /// Path of the field.
        field: String,
    },
    /// An aggregation length outside 1..=32 (IPv4) or 1..=128 (IPv6).
    #[error(
        "{field}: {value} is out of range: an IPv{family} aggregation length is between 1 and {max}"
    )]
    AggregationLengthOutOfRange {
        /// Path of the field.
        field: String,
        /// The value found.
        value: i64,
        /// 4 or 6.
        family: u8,
        /// 32 or 128.
        max: u8,
    },
    /// Not a BGP community.
    #[error(
        "{field}: \"{value}\" is not a community: write A:B with each part 0-65535 (65535:65282), or large:A:B:C with each part 0-4294967295"
    )]
    NotACommunity {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// Not a network interface name.
    #[error(
        "{field}: \"{value}\" is not a network interface name: 1 to 15 letters, digits, \"_\", \".\" or \"-\""
    )]
    NotAnInterfaceName {
        /// Path of the field.
        field: String,
        /// The value found.
        value: String,
    },
    /// An aggregation length shorter than a selected pool's prefix: the announced prefix would
    /// cover addresses outside the pool. Only the controller can check it (two objects).
    #[error(
        "{field}: aggregation length {length} is shorter than the prefix of {entry} in pool {pool}: the announced /{length} would cover addresses outside the pool"
    )]
    AggregationShorterThanPool {
        /// Path of the field.
        field: String,
        /// The aggregation length.
        length: u8,
        /// The pool's name.
        pool: String,
        /// The pool's CIDR (or a CIDR of one of its ranges) with the longer prefix.
        entry: IpNet,
    },
}

/// Parses an IP address the way the API server's CEL `isIP`/`ip()` do: dotted-decimal IPv4
/// without leading zeros or any IPv6 text form, but no zone (`%eth0`) and no IPv4-mapped IPv6
/// address (`::ffff:192.0.2.1`, which would make one address two).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    match IpAddr::from_str(text).ok()? {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => None,
        ip => Some(ip),
    }
}

/// Parses a duration of whole hours, minutes and seconds: one to three parts of one to five
/// digits, each followed by `h`, `m` or `s` (`90s`, `3m`, `1h30m`, `0s`). The same grammar as
/// the CEL rule's pattern; the value is the sum of the parts, as Go's and CEL's `duration()`
/// compute it.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.as_bytes();
    let mut seconds: u64 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=5).contains(&digits) || parts == 3 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let number: u64 = std::str::from_utf8(number).ok()?.parse().ok()?;
        let unit = match after.first()? {
            b'h' => 3600,
            b'm' => 60,
            b's' => 1,
            _ => return None,
        };
        seconds += number * unit;
        parts += 1;
        rest = &after[1..];
    }
    (parts > 0).then(|| Duration::from_secs(seconds))
}

/// A BGP community attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997: `A:B`, conventionally AS number and value.
    Standard {
        /// The high 16 bits.
        high: u16,
        /// The low 16 bits.
        low: u16,
    },
    /// RFC 8092: `large:A:B:C`, global administrator and two local data parts.
    Large {
        /// Global administrator.
        global: u32,
        /// First local data part.
        local1: u32,
        /// Second local data part.
        local2: u32,
    },
}

impl Community {
    /// Parses `A:B` (each part 1 to 5 digits, at most 65535) or `large:A:B:C` (each part 1 to
    /// 10 digits, at most 4294967295).
    pub fn parse(text: &str) -> Option<Self> {
        fn part<T: FromStr>(digits: &str, max_digits: usize) -> Option<T> {
            let ok = (1..=max_digits).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| digits.parse().ok()).flatten()
        }
        if let Some(large) = text.strip_prefix("large:") {
            let mut parts = large.split(':');
            let community = Self::Large {
                global: part(parts.next()?, 10)?,
                local1: part(parts.next()?, 10)?,
                local2: part(parts.next()?, 10)?,
            };
            parts.next().is_none().then_some(community)
        } else {
            let (high, low) = text.split_once(':')?;
            Some(Self::Standard {
                high: part(high, 5)?,
                low: part(low, 5)?,
            })
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standard { high, low } => write!(f, "{high}:{low}"),
            Self::Large {
                global,
                local1,
                local2,
            } => write!(f, "large:{global}:{local1}:{local2}"),
        }
    }
}

/// Whether `name` can be a Linux network interface name as the CEL rule accepts it.
pub fn is_interface_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name != "."
        && name != ".."
}

/// A BGPPeer's settings, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSettings {
    /// The local AS number.
    pub my_asn: u32,
    /// The peer's AS number.
    pub peer_asn: u32,
    /// The address to connect to.
    pub peer_address: IpAddr,
    /// The port to connect to.
    pub peer_port: u16,
    /// The local address to bind to, if any.
    pub source_address: Option<IpAddr>,
    /// The proposed hold time (zero: no keepalives).
    pub hold_time: Duration,
    /// The keepalive interval, if given (otherwise a third of the negotiated hold time).
    pub keepalive_time: Option<Duration>,
    /// The time between connection attempts.
    pub connect_time: Duration,
    /// The BGP identifier, if given.
    pub router_id: Option<Ipv4Addr>,
    /// Where the TCP MD5 password is, if any.
    pub password_secret: Option<PasswordSecret>,
    /// Whether the peer may be more than one hop away.
    pub ebgp_multi_hop: bool,
    /// Whether to negotiate graceful restart.
    pub graceful_restart: bool,
}

/// Checks a BGPPeer's spec: every rule of its CRD, and returns the typed settings.
pub fn bgp_peer(spec: &BGPPeerSpec) -> Result<PeerSettings, Vec<InvalidField>> {
    let mut errors = Vec::new();
    let mut asn = |field: &str, value: u32| {
        if value == 0 {
            errors.push(InvalidField::ZeroAsn {
                field: field.to_owned(),
            });
        }
        value
    };
    let my_asn = asn("spec.myASN", spec.my_asn);
    let peer_asn = asn("spec.peerASN", spec.peer_asn);

    let peer_address = ip_field(&mut errors, "spec.peerAddress", &spec.peer_address);
    let source_address = spec
        .source_address
        .as_deref()
        .map(|s| ip_field(&mut errors, "spec.sourceAddress", s));
    if spec.peer_port == 0 {
        errors.push(InvalidField::PortZero {
            field: "spec.peerPort".into(),
        });
    }

    let hold_time = duration_field(&mut errors, "spec.holdTime", &spec.hold_time);
    if let Some(hold) = hold_time
        && hold != Duration::ZERO
        && !(3..=65535).contains(&hold.as_secs())
    {
        errors.push(InvalidField::HoldTimeOutOfRange {
            field: "spec.holdTime".into(),
            value: spec.hold_time.clone(),
        });
    }
    let keepalive_time = spec
        .keepalive_time
        .as_deref()
        .map(|k| (k, duration_field(&mut errors, "spec.keepaliveTime", k)));
    if let (Some(hold), Some((text, Some(keepalive)))) = (hold_time, keepalive_time) {
        if hold == Duration::ZERO && keepalive != Duration::ZERO {
            errors.push(InvalidField::KeepaliveWithoutHold {
                field: "spec.keepaliveTime".into(),
                keepalive: text.to_owned(),
            });
        } else if hold != Duration::ZERO && keepalive >= hold {
            errors.push(InvalidField::KeepaliveNotBelowHold {
                field: "spec.keepaliveTime".into(),
                keepalive: text.to_owned(),
                hold: spec.hold_time.clone(),
            });
        }
    }
    let connect_time = duration_field(&mut errors, "spec.connectTime", &spec.connect_time);
    if let Some(connect) = connect_time
        && !(1..=65535).contains(&connect.as_secs())
    {
        errors.push(InvalidField::ConnectTimeOutOfRange {
            field: "spec.connectTime".into(),
            value: spec.connect_time.clone(),
        });
    }

    let router_id = spec.router_id.as_deref().map(|text| match parse_ip(text) {
        Some(IpAddr::V4(v4)) => Some(v4),
        _ => {
            errors.push(InvalidField::NotARouterId {
                field: "spec.routerID".into(),
                value: text.to_owned(),
            });
            None
        }
    });

    if let Some(secret) = &spec.password_secret
        && (secret.name.is_empty() || secret.namespace.is_empty() || secret.key.is_empty())
    {
        errors.push(InvalidField::IncompleteSecretReference {
            field: "spec.passwordSecret".into(),
        });
    }

    match (peer_address, hold_time, connect_time) {
        (Some(peer_address), Some(hold_time), Some(connect_time)) if errors.is_empty() => {
            Ok(PeerSettings {
                my_asn,
                peer_asn,
                peer_address,
                peer_port: spec.peer_port,
                source_address: source_address.flatten(),
                hold_time,
                keepalive_time: keepalive_time.and_then(|(_, k)| k),
                connect_time,
                router_id: router_id.flatten(),
                password_secret: spec.password_secret.clone(),
                ebgp_multi_hop: spec.ebgp_multi_hop,
                graceful_restart: spec.enable_graceful_restart,
            })
        }
        _ => Err(errors),
    }
}

/// A BGPAdvertisement's route attributes, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisementSettings {
    /// Prefix length IPv4 addresses are announced with.
    pub aggregation_length: u8,
    /// Prefix length IPv6 addresses are announced with.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF, if any.
    pub local_pref: Option<u32>,
    /// Communities, in the order given, duplicates removed.
    pub communities: Vec<Community>,
}

/// Checks a BGPAdvertisement's own fields (not its relation to pools: see
/// [`aggregation_fits_pool`]) and returns the typed attributes.
pub fn bgp_advertisement(
    spec: &BGPAdvertisementSpec,
) -> Result<AdvertisementSettings, Vec<InvalidField>> {
    let mut errors = Vec::new();
    let mut length = |field: &str, value: i32, family: u8, max: u8| {
        let ok = u8::try_from(value).ok().filter(|v| (1..=max).contains(v));
        if ok.is_none() {
            errors.push(InvalidField::AggregationLengthOutOfRange {
                field: field.to_owned(),
                value: value.into(),
                family,
                max,
            });
        }
        ok.unwrap_or(max)
    };
    let aggregation_length = length("spec.aggregationLength", spec.aggregation_length, 4, 32);
    let aggregation_length_v6 = length(
        "spec.aggregationLengthV6",
        spec.aggregation_length_v6,
        6,
        128,
    );

    let mut communities: Vec<Community> = Vec::with_capacity(spec.communities.len());
    for (i, text) in spec.communities.iter().enumerate() {
        match Community::parse(text) {
            Some(c) if !communities.contains(&c) => communities.push(c),
            Some(_) => {}
            None => errors.push(InvalidField::NotACommunity {
                field: format!("spec.communities[{i}]"),
                value: text.clone(),
            }),
        }
    }

    if errors.is_empty() {
        Ok(AdvertisementSettings {
            aggregation_length,
            aggregation_length_v6,
            local_pref: spec.local_pref,
            communities,
        })
    } else {
        Err(errors)
    }
}

/// Checks that an advertisement's aggregation lengths are no shorter than any prefix of a pool
/// it announces: aggregating an address of `198.51.100.0/24` to a /16 would announce
/// addresses the pool does not hold. `entries` are the pool's CIDRs (ranges given as the
/// CIDRs that cover them exactly).
pub fn aggregation_fits_pool(
    settings: &AdvertisementSettings,
    pool: &str,
    entries: impl IntoIterator<Item = IpNet>,
) -> Result<(), Vec<InvalidField>> {
    let errors: Vec<_> = entries
        .into_iter()
        .filter_map(|entry| {
            let (field, length) = match entry {
                IpNet::V4(_) => ("spec.aggregationLength", settings.aggregation_length),
                IpNet::V6(_) => ("spec.aggregationLengthV6", settings.aggregation_length_v6),
            };
            (entry.prefix_len() > length).then(|| InvalidField::AggregationShorterThanPool {
                field: field.to_owned(),
                length,
                pool: pool.to_owned(),
                entry,
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks an L2Advertisement's own fields.
pub fn l2_advertisement(spec: &L2AdvertisementSpec) -> Result<(), Vec<InvalidField>> {
    let errors: Vec<_> = spec
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, name)| !is_interface_name(name))
        .map(|(i, name)| InvalidField::NotAnInterfaceName {
            field: format!("spec.interfaces[{i}]"),
            value: name.clone(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn ip_field(errors: &mut Vec<InvalidField>, field: &str, text: &str) -> Option<IpAddr> {
    let ip = parse_ip(text);
    if ip.is_none() {
        errors.push(InvalidField::NotAnIpAddress {
            field: field.to_owned(),
            value: text.to_owned(),
        });
    }
    ip
}

fn duration_field(errors: &mut Vec<InvalidField>, field: &str, text: &str) -> Option<Duration> {
    let duration = parse_duration(text);
    if duration.is_none() {
        errors.push(InvalidField::NotADuration {
            field: field.to_owned(),
            value: text.to_owned(),
        });
    }
    duration
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_parse_like_go_for_whole_seconds() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("0s"), Some(0));
        assert_eq!(secs("3m"), Some(180));
        assert_eq!(secs("1h30m"), Some(5400));
        assert_eq!(secs("1m30s"), Some(90));
        assert_eq!(secs("1h1m1s"), Some(3661));
        assert_eq!(secs("99999h"), Some(99999 * 3600));
        for bad in [
            "", "90", "s", "1.5s", "500ms", "-1s", "1d", "100000s", "1h1m1s1s", " 90s", "90s ",
            "9０s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ip_parsing_refuses_what_the_api_server_refuses() {
        assert!(parse_ip("192.0.2.1").is_some());
        assert!(parse_ip("2001:db8::1").is_some());
        assert!(parse_ip("::1").is_some());
        for bad in [
            "::ffff:192.0.2.1",
            "fe80::1%eth0",
            "192.0.2.01",
            "192.0.2",
            "",
            " 192.0.2.1",
        ] {
            assert_eq!(parse_ip(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn communities_parse_both_forms_and_bounds() {
        assert_eq!(
            Community::parse("65535:65282"),
            Some(Community::Standard {
                high: 65535,
                low: 65282
            })
        );
        assert_eq!(
            Community::parse("large:4294967295:0:1"),
            Some(Community::Large {
                global: u32::MAX,
                local1: 0,
                local2: 1
            })
        );
        for bad in [
            "65536:1",
            "1:65536",
            "1",
            "1:2:3",
            ":1",
            "large:1:2",
            "large:1:2:3:4",
            "large:4294967296:1:1",
            "LARGE:1:2:3",
            "no-export",
            "1 :2",
            "+1:2",
        ] {
            assert_eq!(Community::parse(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn community_display_round_trips(high: u16, low: u16, g: u32, l1: u32, l2: u32) {
            for c in [
                Community::Standard { high, low },
                Community::Large { global: g, local1: l1, local2: l2 },
            ] {
                prop_assert_eq!(Community::parse(&c.to_string()), Some(c));
            }
        }

        #[test]
        fn duration_parts_sum(h in 0u64..100_000, m in 0u64..100_000, s in 0u64..100_000) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_duration(&text), Some(Duration::from_secs(h * 3600 + m * 60 + s)));
        }
    }

    fn peer() -> BGPPeerSpec {
        serde_json::from_value(serde_json::json!({
            "myASN": 64512, "peerASN": 64512, "peerAddress": "127.0.0.1"
        }))
        .unwrap()
    }

    #[test]
    fn a_minimal_peer_gets_the_defaults() {
        let settings = bgp_peer(&peer()).unwrap();
        assert_eq!(settings.peer_port, 179);
        assert_eq!(settings.hold_time, Duration::from_secs(90));
        assert_eq!(settings.keepalive_time, None);
        assert_eq!(settings.connect_time, Duration::from_secs(10));
        assert_eq!(settings.peer_address, IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn every_peer_error_is_reported_at_once() {
        let mut spec = peer();
        spec.my_asn = 0;
        spec.peer_address = "not-an-ip".into();
        spec.hold_time = "2s".into();
        spec.router_id = Some("2001:db8::1".into());
        let errors = bgp_peer(&spec).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.myASN: AS number 0 is reserved (RFC 7607) and cannot be used",
                "spec.peerAddress: \"not-an-ip\" is not an IP address",
                "spec.holdTime: \"2s\" is out of range: a hold time is 0s (no keepalives) or between 3s and 65535s",
                "spec.routerID: \"2001:db8::1\" is not a router ID: write it as an IPv4 address such as 192.0.2.1",
            ]
        );
    }

    #[test]
    fn keepalive_must_be_below_hold_or_zero_with_zero_hold() {
        let mut spec = peer();
        spec.keepalive_time = Some("90s".into());
        assert!(matches!(
            bgp_peer(&spec).unwrap_err()[..],
            [InvalidField::KeepaliveNotBelowHold { .. }]
        ));
        spec.keepalive_time = Some("89s".into());
        assert_eq!(
            bgp_peer(&spec).unwrap().keepalive_time,
            Some(Duration::from_secs(89))
        );
        spec.hold_time = "0s".into();
        assert!(matches!(
            bgp_peer(&spec).unwrap_err()[..],
            [InvalidField::KeepaliveWithoutHold { .. }]
        ));
        spec.keepalive_time = Some("0s".into());
        assert!(bgp_peer(&spec).is_ok());
    }

    fn advertisement(value: serde_json::Value) -> BGPAdvertisementSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn advertisement_defaults_and_duplicate_communities() {
        let settings = bgp_advertisement(&advertisement(serde_json::json!({
            "communities": ["65535:65282", "large:1:2:3", "65535:65282"]
        })))
        .unwrap();
        assert_eq!(settings.aggregation_length, 32);
        assert_eq!(settings.aggregation_length_v6, 128);
        assert_eq!(settings.communities.len(), 2);
    }

    #[test]
    fn advertisement_errors_name_field_and_value() {
        let errors = bgp_advertisement(&advertisement(serde_json::json!({
            "aggregationLength": 33, "aggregationLengthV6": 0, "communities": ["1:2", "x"]
        })))
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.aggregationLength: 33 is out of range: an IPv4 aggregation length is between 1 and 32",
                "spec.aggregationLengthV6: 0 is out of range: an IPv6 aggregation length is between 1 and 128",
                "spec.communities[1]: \"x\" is not a community: write A:B with each part 0-65535 (65535:65282), or large:A:B:C with each part 0-4294967295",
            ]
        );
    }

    #[test]
    fn aggregation_must_not_be_shorter_than_the_pools_prefixes() {
        let settings = bgp_advertisement(&advertisement(serde_json::json!({
            "aggregationLength": 24, "aggregationLengthV6": 64
        })))
        .unwrap();
        let nets = |s: &[&str]| {
            s.iter()
                .map(|n| n.parse::<IpNet>().unwrap())
                .collect::<Vec<_>>()
        };
        assert!(
            aggregation_fits_pool(&settings, "p", nets(&["198.51.100.0/24", "2001:db8::/48"]))
                .is_ok()
        );
        let errors = aggregation_fits_pool(
            &settings,
            "p",
            nets(&[
                "198.51.100.0/16",
                "198.51.100.0/25",
                "2001:db8::/64",
                "2001:db8:1::/96",
            ]),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].to_string(),
            "spec.aggregationLength: aggregation length 24 is shorter than the prefix of 198.51.100.0/25 in pool p: the announced /24 would cover addresses outside the pool"
        );
        assert!(matches!(
            &errors[1],
            InvalidField::AggregationShorterThanPool { length: 64, .. }
        ));
    }

    #[test]
    fn interface_names() {
        for good in ["eth0", "ens1f0", "bond0.100", "br-abc_1", "a23456789012345"] {
            assert!(is_interface_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "eth/0",
            "eth 0",
            "a234567890123456",
            "eth0:1",
        ] {
            assert!(!is_interface_name(bad), "{bad}");
        }
        let spec: L2AdvertisementSpec =
            serde_json::from_value(serde_json::json!({"interfaces": ["eth0", "x/y"]})).unwrap();
        let errors = l2_advertisement(&spec).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "spec.interfaces[1]: \"x/y\" is not a network interface name: 1 to 15 letters, digits, \"_\", \".\" or \"-\""
        );
    }
}
