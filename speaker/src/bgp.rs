//! BGP-4 codec, state machine and sessions. No Kubernetes dependency.
