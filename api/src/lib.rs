//! ferrolb.io API: CRD types, annotation names and address parsing. No I/O.
