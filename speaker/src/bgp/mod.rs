//! BGP-4 for the speaker: codec, UPDATE packing, state machine and sessions.
//! No Kubernetes dependency: the speaker maps its objects onto [`PeerConfig`] and
//! [`RouteSet`] and hands them to a [`BgpSpeaker`].

pub mod wire;
