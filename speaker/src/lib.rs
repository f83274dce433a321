//! ferrolb-speaker.
