//! The CRDs' CEL validation rules (`x-kubernetes-validations`).
//!
//! They use only what Kubernetes 1.33's CRD environment offers (its compatibility version is
//! 1.32, so everything up to 1.32 is usable): the IP and CIDR library (`isIP`, `ip()`,
//! `family()`, `isCIDR`, `cidr()`, `prefixLength()`, `masked()`, `string()`), the strings
//! extension (`split`, `trim`) and `matches`. That library has no ordering of addresses, so an
//! IPv4 range is ordered by turning its octets into an integer; an IPv6 range cannot be ordered
//! in CEL at all and the controller reports it instead (see [`crate::validate`] and the
//! README's list of controller-checked rules).
//!
//! Every rule has a static `message` (what the API server shows if evaluating the
//! `messageExpression` fails) and, where the bad value helps, a `messageExpression` naming it.
//! The API server prefixes either with the field path, so messages do not repeat the field.
//!
//! Cost: `string()` of an integer has no bounded cost estimate, and a messageExpression using
//! it makes the API server refuse the whole CRD ("exceeds budget by factor of more than 100x");
//! integers go into messages with `'%d'.format([x])` instead.
//!
//! Cost: the API server estimates each rule's worst case from `maxItems`/`maxLength`, so every
//! list whose items carry a rule has `maxItems` and every string a rule reads has `maxLength`.

use schemars::Schema;
use serde_json::{Map, Value};

/// One entry of `x-kubernetes-validations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The CEL expression that must hold; `self` is the value the rule is attached to.
    pub rule: &'static str,
    /// The message shown when the rule fails (and `messageExpression` cannot be evaluated).
    pub message: &'static str,
    /// A CEL expression building a message that names the offending value.
    pub message_expression: Option<&'static str>,
    /// Where the error points, relative to the value the rule is attached to.
    pub field_path: Option<&'static str>,
}

impl Rule {
    /// The rule as it appears in the CRD.
    pub fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("rule".into(), self.rule.into());
        entry.insert("message".into(), self.message.into());
        if let Some(expression) = self.message_expression {
            entry.insert("messageExpression".into(), expression.into());
        }
        if let Some(path) = self.field_path {
            entry.insert("fieldPath".into(), path.into());
        }
        Value::Object(entry)
    }
}

/// Attaches rules to every item of a list schema (`#[schemars(transform = EachItem(..))]`).
#[derive(Debug, Clone, Copy)]
pub struct EachItem(pub &'static [Rule]);

impl schemars::transform::Transform for EachItem {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(items) = schema.get_mut("items").and_then(Value::as_object_mut) {
            let rules = items
                .entry("x-kubernetes-validations")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = rules {
                list.extend(self.0.iter().map(Rule::to_json));
            }
        }
    }
}

// Fragments shared by several rules. They are macros so that `concat!` builds each rule as
// one `&'static str` at compile time.

/// The first address of a range entry `A-B` (blanks around the dash are allowed).
macro_rules! range_first {
    () => {
        "self.split('-')[0].trim()"
    };
}
/// The last address of a range entry.
macro_rules! range_last {
    () => {
        "self.split('-')[1].trim()"
    };
}
/// True when `self` is a well-formed range of two addresses.
macro_rules! is_range {
    () => {
        concat!(
            "(self.contains('-') && self.split('-').size() == 2 && isIP(",
            range_first!(),
            ") && isIP(",
            range_last!(),
            "))"
        )
    };
}
/// The prefix length of a CIDR entry must be plain decimal (the API server's `cidr()` refuses
/// leading zeros).
macro_rules! prefix_digits {
    () => {
        "'^(0|[1-9][0-9]{0,2})$'"
    };
}
/// True when `self` looks like `address/number` (the number may still be too large).
macro_rules! is_cidr_shaped {
    () => {
        concat!(
            "(!self.contains('-') && self.contains('/') && self.split('/').size() == 2 && ",
            "isIP(self.split('/')[0]) && self.split('/')[1].matches(",
            prefix_digits!(),
            "))"
        )
    };
}
/// An IPv4 address (given as a CEL string expression) as an integer, for ordering.
macro_rules! ipv4_as_int {
    ($addr:expr) => {
        concat!(
            "(int(",
            $addr,
            ".split('.')[0]) * 16777216 + int(",
            $addr,
            ".split('.')[1]) * 65536",
            " + int(",
            $addr,
            ".split('.')[2]) * 256 + int(",
            $addr,
            ".split('.')[3]))"
        )
    };
}
/// A duration in whole seconds, hours and minutes (`90s`, `3m`, `1h30m`): what BGP timers
/// need. Up to five digits per part keeps every value far from overflowing.
macro_rules! duration_pattern {
    () => {
        "'^([0-9]{1,5}[hms]){1,3}$'"
    };
}

/// Limits the API server's cost estimate relies on.
pub mod limits {
    /// Entries in one pool's `addresses`.
    pub const POOL_ADDRESSES: u32 = 1024;
    /// Characters in one address entry (an IPv6 range with blanks fits in 90).
    pub const ADDRESS_LENGTH: u32 = 100;
    /// Communities on one advertisement.
    pub const COMMUNITIES: u32 = 64;
    /// Characters in one community (`large:4294967295:4294967295:4294967295` is 38).
    pub const COMMUNITY_LENGTH: u32 = 40;
    /// Interfaces on one L2 advertisement.
    pub const INTERFACES: u32 = 64;
    /// Characters in a duration string.
    pub const DURATION_LENGTH: u32 = 24;
    /// Characters in an IP address field (the longest IPv6 text form is 45).
    pub const IP_LENGTH: u32 = 64;
}

// ---- IPAddressPool.spec.addresses[*] ----

/// An entry is a CIDR, a range of two addresses or one address.
pub const ADDRESS_FORM: Rule = Rule {
    rule: concat!(
        "self.contains('-') ? ",
        is_range!(),
        " : (self.contains('/') ? ",
        is_cidr_shaped!(),
        " : isIP(self))"
    ),
    message: "must be a CIDR (198.51.100.0/24), a range (198.51.100.10-198.51.100.20) or a single address",
    message_expression: Some(concat!(
        "'\"' + self + '\" is not a CIDR (198.51.100.0/24), a range (198.51.100.10-198.51.100.20) ",
        "or a single address'"
    )),
    field_path: None,
};

/// A CIDR's prefix length fits its family: at most 32 for IPv4, 128 for IPv6.
pub const ADDRESS_PREFIX_LENGTH: Rule = Rule {
    rule: concat!(
        "!",
        is_cidr_shaped!(),
        " || int(self.split('/')[1]) <= (ip(self.split('/')[0]).family() == 4 ? 32 : 128)"
    ),
    message: "prefix length is longer than the address (at most 32 for IPv4, 128 for IPv6)",
    message_expression: Some(concat!(
        "'\"' + self + '\": prefix length ' + self.split('/')[1] + ' is longer than an ' + ",
        "(ip(self.split('/')[0]).family() == 4 ? 'IPv4 address (at most 32)' : ",
        "'IPv6 address (at most 128)')"
    )),
    field_path: None,
};

/// Both ends of a range are of one family.
pub const RANGE_FAMILY: Rule = Rule {
    rule: concat!(
        "!",
        is_range!(),
        " || ip(",
        range_first!(),
        ").family() == ip(",
        range_last!(),
        ").family()"
    ),
    message: "a range must not mix IPv4 and IPv6",
    message_expression: Some(
        "'\"' + self + '\" mixes IPv4 and IPv6: both ends of a range must be of one family'",
    ),
    field_path: None,
};

/// An IPv4 range does not end before it starts. (IPv6 ranges: checked by the controller.)
pub const RANGE_ORDER_IPV4: Rule = Rule {
    rule: concat!(
        "!",
        is_range!(),
        " || ip(",
        range_first!(),
        ").family() != 4 || ip(",
        range_last!(),
        ").family() != 4 || ",
        ipv4_as_int!(range_first!()),
        " <= ",
        ipv4_as_int!(range_last!())
    ),
    message: "the range ends before it starts",
    message_expression: Some("'\"' + self + '\": the range ends before it starts'"),
    field_path: None,
};

/// Rules on each `IPAddressPool.spec.addresses` entry.
pub const POOL_ADDRESS: &[Rule] = &[
    ADDRESS_FORM,
    ADDRESS_PREFIX_LENGTH,
    RANGE_FAMILY,
    RANGE_ORDER_IPV4,
];

// ---- BGPPeer ----

/// AS number 0 is reserved (RFC 7607).
pub const ASN_NOT_ZERO: Rule = Rule {
    rule: "self != 0",
    message: "AS number 0 is reserved (RFC 7607) and cannot be used",
    message_expression: None,
    field_path: None,
};

/// An address field holds one IP address.
pub const IS_IP: Rule = Rule {
    rule: "isIP(self)",
    message: "must be an IP address",
    message_expression: Some("'\"' + self + '\" is not an IP address'"),
    field_path: None,
};

/// A BGP identifier is four octets, written as an IPv4 address.
pub const ROUTER_ID: Rule = Rule {
    rule: "isIP(self) && ip(self).family() == 4",
    message: "must be written as an IPv4 address such as 192.0.2.1",
    message_expression: Some(
        "'\"' + self + '\" is not a router ID: write it as an IPv4 address such as 192.0.2.1'",
    ),
    field_path: None,
};

/// A timer is a whole number of seconds written as a duration.
pub const DURATION_FORM: Rule = Rule {
    rule: concat!("self.matches(", duration_pattern!(), ")"),
    message: "must be a duration in whole seconds such as 90s, 3m or 1m30s",
    message_expression: Some(
        "'\"' + self + '\" is not a duration in whole seconds such as 90s, 3m or 1m30s'",
    ),
    field_path: None,
};

/// Hold time: 0 (no keepalives) or 3 s to 65535 s (RFC 4271 4.2; the field is 16 bits).
pub const HOLD_TIME_RANGE: Rule = Rule {
    rule: concat!(
        "!self.matches(",
        duration_pattern!(),
        ") || duration(self) == duration('0s') || ",
        "(duration(self) >= duration('3s') && duration(self) <= duration('65535s'))"
    ),
    message: "a hold time is 0s (no keepalives) or between 3s and 65535s",
    message_expression: Some(
        "'\"' + self + '\" is out of range: a hold time is 0s (no keepalives) or between 3s and 65535s'",
    ),
    field_path: None,
};

/// Connect retry time: 1 s to 65535 s.
pub const CONNECT_TIME_RANGE: Rule = Rule {
    rule: concat!(
        "!self.matches(",
        duration_pattern!(),
        ") || (duration(self) >= duration('1s') && duration(self) <= duration('65535s'))"
    ),
    message: "a connect time is between 1s and 65535s",
    message_expression: Some(
        "'\"' + self + '\" is out of range: a connect time is between 1s and 65535s'",
    ),
    field_path: None,
};

/// Keepalives are sent more often than the hold time runs out; with hold time 0 there are none.
pub const KEEPALIVE_BELOW_HOLD: Rule = Rule {
    rule: concat!(
        "!has(self.keepaliveTime) || !has(self.holdTime) || !self.keepaliveTime.matches(",
        duration_pattern!(),
        ") || !self.holdTime.matches(",
        duration_pattern!(),
        ") || (duration(self.holdTime) == duration('0s') ? ",
        "duration(self.keepaliveTime) == duration('0s') : ",
        "duration(self.keepaliveTime) < duration(self.holdTime))"
    ),
    message: "keepaliveTime must be shorter than holdTime, or 0s when holdTime is 0s",
    message_expression: Some(concat!(
        "duration(self.holdTime) == duration('0s') ? ",
        "'keepaliveTime ' + self.keepaliveTime + ' must be 0s when holdTime is 0s (no keepalives)' : ",
        "'keepaliveTime ' + self.keepaliveTime + ' must be shorter than holdTime ' + self.holdTime"
    )),
    field_path: Some(".keepaliveTime"),
};

// ---- BGPAdvertisement ----

/// IPv4 aggregation length is a prefix length 1..=32.
pub const AGGREGATION_LENGTH_V4: Rule = Rule {
    rule: "self >= 1 && self <= 32",
    message: "an IPv4 aggregation length is between 1 and 32",
    message_expression: Some(
        "'%d is out of range: an IPv4 aggregation length is between 1 and 32'.format([self])",
    ),
    field_path: None,
};

/// IPv6 aggregation length is a prefix length 1..=128.
pub const AGGREGATION_LENGTH_V6: Rule = Rule {
    rule: "self >= 1 && self <= 128",
    message: "an IPv6 aggregation length is between 1 and 128",
    message_expression: Some(
        "'%d is out of range: an IPv6 aggregation length is between 1 and 128'.format([self])",
    ),
    field_path: None,
};

/// A community is `A:B` (RFC 1997, 16 bits each) or `large:A:B:C` (RFC 8092, 32 bits each).
pub const COMMUNITY: Rule = Rule {
    rule: concat!(
        "self.matches('^[0-9]{1,5}:[0-9]{1,5}$') ? ",
        "(int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535) : ",
        "(self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && ",
        "int(self.split(':')[1]) <= 4294967295 && int(self.split(':')[2]) <= 4294967295 && ",
        "int(self.split(':')[3]) <= 4294967295)"
    ),
    message: "a community is A:B with each part 0-65535, or large:A:B:C with each part 0-4294967295",
    message_expression: Some(concat!(
        "'\"' + self + '\" is not a community: write A:B with each part 0-65535 (65535:65282), ",
        "or large:A:B:C with each part 0-4294967295'"
    )),
    field_path: None,
};

// ---- L2Advertisement ----

/// A Linux interface name: 1 to 15 characters, letters, digits, `_`, `.` and `-`.
pub const INTERFACE_NAME: Rule = Rule {
    rule: "self.matches('^[A-Za-z0-9_.-]{1,15}$') && self != '.' && self != '..'",
    message: "must be a network interface name: 1 to 15 letters, digits, '_', '.' or '-'",
    message_expression: Some(concat!(
        "'\"' + self + '\" is not a network interface name: 1 to 15 letters, digits, ",
        "\"_\", \".\" or \"-\"'"
    )),
    field_path: None,
};

/// Every rule, with the schema location it is attached to (for tests and documentation).
pub const ALL: &[(&str, Rule)] = &[
    ("IPAddressPool spec.addresses[*]", ADDRESS_FORM),
    ("IPAddressPool spec.addresses[*]", ADDRESS_PREFIX_LENGTH),
    ("IPAddressPool spec.addresses[*]", RANGE_FAMILY),
    ("IPAddressPool spec.addresses[*]", RANGE_ORDER_IPV4),
    ("BGPPeer spec.myASN", ASN_NOT_ZERO),
    ("BGPPeer spec.peerASN", ASN_NOT_ZERO),
    ("BGPPeer spec.peerAddress", IS_IP),
    ("BGPPeer spec.sourceAddress", IS_IP),
    ("BGPPeer spec.routerID", ROUTER_ID),
    ("BGPPeer spec.holdTime", DURATION_FORM),
    ("BGPPeer spec.holdTime", HOLD_TIME_RANGE),
    ("BGPPeer spec.keepaliveTime", DURATION_FORM),
    ("BGPPeer spec.connectTime", DURATION_FORM),
    ("BGPPeer spec.connectTime", CONNECT_TIME_RANGE),
    ("BGPPeer spec", KEEPALIVE_BELOW_HOLD),
    (
        "BGPAdvertisement spec.aggregationLength",
        AGGREGATION_LENGTH_V4,
    ),
    (
        "BGPAdvertisement spec.aggregationLengthV6",
        AGGREGATION_LENGTH_V6,
    ),
    ("BGPAdvertisement spec.communities[*]", COMMUNITY),
    ("L2Advertisement spec.interfaces[*]", INTERFACE_NAME),
];
