//! Pool address parsing into IPv4/IPv6 interval sets.
