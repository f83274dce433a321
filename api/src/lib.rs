//! ferrolb.io API: CRD types, annotation names and address parsing. No I/O.

pub mod addr;
pub mod selector;
