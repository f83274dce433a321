//! Label-selector matching.
