//! The lab and its test harness.
