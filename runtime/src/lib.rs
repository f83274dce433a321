//! What both ferrolb programs share at run time: logging, health and metrics endpoints, shutdown.
