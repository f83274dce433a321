//! The IP allocator: pure, synchronous, no Kubernetes I/O.
