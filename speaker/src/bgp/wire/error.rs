//! Decoding errors, each mapped to the NOTIFICATION that answers it (RFC 4271 §6) and to
//! the handling RFC 7606 prescribes.

use super::notification::{ErrorCode, MessageHeaderSubcode, Notification, OpenSubcode};
use super::notification::{RouteRefreshSubcode, UpdateSubcode};

/// How an error in a received message is handled (RFC 7606 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorHandling {
    /// Send the NOTIFICATION and close the session.
    SessionReset,
    /// The UPDATE's routes are treated as withdrawn; the session stays up. ferrolb keeps
    /// no routes learned from peers, so this amounts to logging the error.
    TreatAsWithdraw,
    /// The malformed attribute is ignored; the session stays up.
    AttributeDiscard,
}

/// Why a received message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message header marker is not all ones (connection not synchronized)")]
    ConnectionNotSynchronized,
    #[error("bad message length {length}")]
    BadMessageLength { length: u16 },
    #[error("bad message type {kind}")]
    BadMessageType { kind: u8 },
    #[error("unsupported BGP version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("malformed OPEN message: {what}")]
    MalformedOpen { what: &'static str },
    #[error("unsupported optional parameter type {kind} in OPEN")]
    UnsupportedOptionalParameter { kind: u8 },
    #[error("malformed attribute list: {what}")]
    MalformedAttributeList { what: &'static str },
    #[error("unrecognized well-known attribute type {type_code}")]
    UnrecognizedWellKnownAttribute { type_code: u8, attribute: Vec<u8> },
    #[error("missing well-known attribute type {type_code}")]
    MissingWellKnownAttribute { type_code: u8 },
    #[error("attribute type {type_code} has wrong flags")]
    AttributeFlags { type_code: u8, attribute: Vec<u8> },
    #[error("attribute type {type_code} has wrong length")]
    AttributeLength { type_code: u8, attribute: Vec<u8> },
    #[error("invalid ORIGIN value")]
    InvalidOrigin { attribute: Vec<u8> },
    #[error("invalid NEXT_HOP")]
    InvalidNextHop { attribute: Vec<u8> },
    #[error("malformed optional attribute type {type_code}")]
    OptionalAttribute { type_code: u8, attribute: Vec<u8> },
    #[error("invalid network field: {what}")]
    InvalidNetworkField { what: &'static str },
    #[error("malformed AS_PATH")]
    MalformedAsPath { attribute: Vec<u8> },
    #[error("bad ROUTE-REFRESH message length {length}")]
    BadRouteRefreshLength { length: u16 },
}

impl DecodeError {
    /// The NOTIFICATION to send in answer (RFC 4271 §6, RFC 7313 §5).
    pub fn notification(&self) -> Notification {
        use DecodeError::*;
        let (error, data) = match self {
            ConnectionNotSynchronized => (
                ErrorCode::MessageHeader(MessageHeaderSubcode::ConnectionNotSynchronized),
                Vec::new(),
            ),
            BadMessageLength { length } => (
                ErrorCode::MessageHeader(MessageHeaderSubcode::BadMessageLength),
                length.to_be_bytes().to_vec(),
            ),
            BadMessageType { kind } => (
                ErrorCode::MessageHeader(MessageHeaderSubcode::BadMessageType),
                vec![*kind],
            ),
            // The data is the largest version we support (RFC 4271 §6.2).
            UnsupportedVersion { .. } => (
                ErrorCode::Open(OpenSubcode::UnsupportedVersionNumber),
                u16::from(super::BGP_VERSION).to_be_bytes().to_vec(),
            ),
            MalformedOpen { .. } => (ErrorCode::Open(OpenSubcode::Unspecific), Vec::new()),
            UnsupportedOptionalParameter { .. } => (
                ErrorCode::Open(OpenSubcode::UnsupportedOptionalParameter),
                Vec::new(),
            ),
            MalformedAttributeList { .. } => (
                ErrorCode::Update(UpdateSubcode::MalformedAttributeList),
                Vec::new(),
            ),
            UnrecognizedWellKnownAttribute { attribute, .. } => (
                ErrorCode::Update(UpdateSubcode::UnrecognizedWellKnownAttribute),
                attribute.clone(),
            ),
            MissingWellKnownAttribute { type_code } => (
                ErrorCode::Update(UpdateSubcode::MissingWellKnownAttribute),
                vec![*type_code],
            ),
            AttributeFlags { attribute, .. } => (
                ErrorCode::Update(UpdateSubcode::AttributeFlagsError),
                attribute.clone(),
            ),
            AttributeLength { attribute, .. } => (
                ErrorCode::Update(UpdateSubcode::AttributeLengthError),
                attribute.clone(),
            ),
            InvalidOrigin { attribute } => (
                ErrorCode::Update(UpdateSubcode::InvalidOriginAttribute),
                attribute.clone(),
            ),
            InvalidNextHop { attribute } => (
                ErrorCode::Update(UpdateSubcode::InvalidNextHopAttribute),
                attribute.clone(),
            ),
            OptionalAttribute { attribute, .. } => (
                ErrorCode::Update(UpdateSubcode::OptionalAttributeError),
                attribute.clone(),
            ),
            InvalidNetworkField { .. } => (
                ErrorCode::Update(UpdateSubcode::InvalidNetworkField),
                Vec::new(),
            ),
            MalformedAsPath { .. } => (
                ErrorCode::Update(UpdateSubcode::MalformedAsPath),
                Vec::new(),
            ),
            BadRouteRefreshLength { .. } => (
                ErrorCode::RouteRefresh(RouteRefreshSubcode::InvalidMessageLength),
                Vec::new(),
            ),
        };
        Notification { error, data }
    }

    /// What RFC 7606 says to do about it. Errors that leave the message boundaries or
    /// the NLRI in doubt reset the session; errors confined to one attribute that bears on
    /// route selection withdraw the UPDATE's routes; errors in attributes that do not
    /// (ATOMIC_AGGREGATE, AGGREGATOR) discard just that attribute.
    pub fn handling(&self) -> ErrorHandling {
        use DecodeError::*;
        match self {
            AttributeFlags { type_code, .. }
            | AttributeLength { type_code, .. }
            | OptionalAttribute { type_code, .. } => match *type_code {
                super::attr_type::MP_REACH_NLRI | super::attr_type::MP_UNREACH_NLRI => {
                    ErrorHandling::SessionReset
                }
                super::attr_type::ATOMIC_AGGREGATE
                | super::attr_type::AGGREGATOR
                | super::attr_type::AS4_AGGREGATOR => ErrorHandling::AttributeDiscard,
                _ => ErrorHandling::TreatAsWithdraw,
            },
            InvalidOrigin { .. }
            | InvalidNextHop { .. }
            | MalformedAsPath { .. }
            | MissingWellKnownAttribute { .. } => ErrorHandling::TreatAsWithdraw,
            _ => ErrorHandling::SessionReset,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {length} octets exceeds the 4096-octet maximum")]
    TooLong { length: usize },
}
