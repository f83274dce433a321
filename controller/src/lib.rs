//! ferrolb-controller: assigns addresses from pools to LoadBalancer Services.

pub mod allocator;
