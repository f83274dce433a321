//! ferrolb-controller.
