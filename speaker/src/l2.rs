//! L2 mode: ARP and NDP.
