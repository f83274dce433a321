//! Kubernetes objects into allocator inputs: `IPAddressPool` → [`PoolSpec`], `Service` →
//! [`ServiceRequest`] (and [`ExistingService`] for the start-up load).
//!
//! Every parse goes through `ferrolb-api` (addresses, selectors, annotation spellings), so
//! what the controller accepts is what the CRDs and the speaker accept. A value that cannot be
//! parsed is an error whose message names the field or annotation key, for the object's
//! condition; nothing here panics on input from the API server.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::addr::{AddressRanges, Family, parse_ip_list};
use ferrolb_api::annotations::{Found, ServiceAnnotation};
use ferrolb_api::conditions::ConfigReason;
use ferrolb_api::selector::Selector;
use ferrolb_api::{IPAddressPool, IPAddressPoolSpec};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::allocator::{
    ExistingService, IpFamilyPolicy, Labels, PoolName, PoolSpec, Protocol, ServiceAllocation,
    ServiceKey, ServicePort, ServiceRequest, SharingKey, TrafficPolicy,
};

/// Which Services this controller serves: `type: LoadBalancer` with the configured
/// `spec.loadBalancerClass` (`None`: Services without a class).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassFilter {
    pub class: Option<String>,
}

impl ClassFilter {
    pub fn new(class: Option<String>) -> Self {
        ClassFilter { class }
    }

    /// Whether the Service is one this controller allocates for.
    pub fn serves(&self, svc: &Service) -> bool {
        is_load_balancer(svc) && self.class_matches(svc)
    }

    /// Whether the Service's class is ours (whatever its type).
    pub fn class_matches(&self, svc: &Service) -> bool {
        let class = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref());
        class == self.class.as_deref()
    }
}

/// Whether the Service is of `type: LoadBalancer`.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The allocator's key of a Service.
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

/// Why a Service's request could not be built: a value the user wrote is unusable. The
/// message names the annotation or field; it becomes the condition's message, with reason
/// `InvalidAnnotation`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("annotation {key}: {source}")]
    AddressList {
        key: &'static str,
        #[source]
        source: ferrolb_api::addr::IpListError,
    },
    #[error("spec.loadBalancerIP: {value:?} is not an IPv4 or IPv6 address")]
    LoadBalancerIp { value: String },
    #[error(
        "annotation {key}: {value:?} is not a pool name (a lowercase DNS subdomain such as \"web-pool\")"
    )]
    PoolName { key: &'static str, value: String },
    #[error("annotation {key} is empty: give a sharing key, or remove the annotation")]
    EmptySharingKey { key: &'static str },
    #[error("spec.ports[{index}]: port {port} is not between 1 and 65535")]
    Port { index: usize, port: i32 },
    #[error("spec.ports[{index}]: protocol {protocol:?} is not TCP, UDP or SCTP")]
    Protocol { index: usize, protocol: String },
    #[error(
        "spec.ipFamilyPolicy: {value:?} is not SingleStack, PreferDualStack or RequireDualStack"
    )]
    FamilyPolicy { value: String },
    #[error("spec.ipFamilies: {value:?} is not IPv4 or IPv6")]
    Family { value: String },
}

/// A Service converted for the allocator, with the MetalLB annotation spellings it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub request: ServiceRequest,
    /// Each MetalLB spelling found, for the `DeprecatedAnnotation` Event.
    pub deprecated: Vec<DeprecatedKey>,
}

/// A MetalLB annotation key a Service uses, and the message that names the ferrolb.io key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeprecatedKey {
    pub key: &'static str,
    pub message: String,
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Builds the allocator's request for a served Service. `namespace_labels` are the labels of
/// its namespace (empty when the namespace is not known yet).
pub fn service_request(
    svc: &Service,
    namespace_labels: Arc<Labels>,
) -> Result<Converted, InvalidRequest> {
    let annotations = svc.metadata.annotations.as_ref();
    let spec = svc.spec.clone().unwrap_or_default();
    let mut deprecated = Vec::new();
    let mut note = |found: &Found<'_>| {
        if let Some(message) = found.deprecation_message() {
            deprecated.push(DeprecatedKey {
                key: found.key(),
                message,
            });
        }
    };

    let requested_ips = match ServiceAnnotation::LoadBalancerIPs.lookup_in(annotations) {
        Some(found) => {
            note(&found);
            parse_ip_list(found.value).map_err(|source| InvalidRequest::AddressList {
                key: found.key(),
                source,
            })?
        }
        None => match spec.load_balancer_ip.as_deref().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(value) => vec![ferrolb_api::validate::parse_ip(value).ok_or_else(|| {
                InvalidRequest::LoadBalancerIp {
                    value: value.to_string(),
                }
            })?],
        },
    };

    let requested_pool = match ServiceAnnotation::AddressPool.lookup_in(annotations) {
        Some(found) => {
            note(&found);
            let value = found.value.trim();
            if !is_dns_subdomain(value) {
                return Err(InvalidRequest::PoolName {
                    key: found.key(),
                    value: found.value.to_string(),
                });
            }
            Some(PoolName(value.to_string()))
        }
        None => None,
    };

    let sharing_key = match ServiceAnnotation::AllowSharedIp.lookup_in(annotations) {
        Some(found) => {
            note(&found);
            let value = found.value.trim();
            if value.is_empty() {
                return Err(InvalidRequest::EmptySharingKey { key: found.key() });
            }
            Some(SharingKey(value.to_string()))
        }
        None => None,
    };

    let ip_family_policy = match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => IpFamilyPolicy::SingleStack,
        Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
        Some(other) => {
            return Err(InvalidRequest::FamilyPolicy {
                value: other.to_string(),
            });
        }
    };
    let ip_families = spec
        .ip_families
        .iter()
        .flatten()
        .map(|f| match f.as_str() {
            "IPv4" => Ok(Family::V4),
            "IPv6" => Ok(Family::V6),
            other => Err(InvalidRequest::Family {
                value: other.to_string(),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let ports = spec
        .ports
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, p)| {
            let port =
                u16::try_from(p.port)
                    .ok()
                    .filter(|n| *n != 0)
                    .ok_or(InvalidRequest::Port {
                        index,
                        port: p.port,
                    })?;
            let protocol = match p.protocol.as_deref() {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                Some(other) => {
                    return Err(InvalidRequest::Protocol {
                        index,
                        protocol: other.to_string(),
                    });
                }
            };
            Ok(ServicePort { port, protocol })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let traffic_policy = if spec.external_traffic_policy.as_deref() == Some("Local") {
        TrafficPolicy::Local {
            pod_selector: spec.selector.clone().unwrap_or_default(),
        }
    } else {
        TrafficPolicy::Cluster
    };

    let created = svc
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());

    Ok(Converted {
        request: ServiceRequest {
            key: service_key(svc),
            created,
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            namespace_labels,
            ip_family_policy,
            ip_families,
            requested_ips,
            requested_pool,
            sharing_key,
            ports,
            traffic_policy,
        },
        deprecated,
    })
}

/// The IP addresses of `status.loadBalancer.ingress`, in order (hostnames and unparsable
/// entries skipped: they are not addresses ferrolb could hold).
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref())
        .filter_map(ferrolb_api::validate::parse_ip)
        .collect()
}

/// The pools named by `ip-allocated-from-pool` (any spelling), comma-separated.
pub fn allocated_from(svc: &Service) -> Vec<PoolName> {
    ServiceAnnotation::IpAllocatedFromPool
        .lookup_in(svc.metadata.annotations.as_ref())
        .map(|found| {
            found
                .value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| PoolName(s.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A served Service as the start-up load takes it: its request and the addresses its
/// status already carries.
pub fn existing_service(request: ServiceRequest, svc: &Service) -> ExistingService {
    ExistingService {
        request,
        addresses: ingress_ips(svc),
        pools: allocated_from(svc),
    }
}

/// Why a pool is ignored; the message goes to its `Valid=False` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPool {
    pub reason: ConfigReason,
    pub message: String,
}

/// Builds the allocator's pool from an `IPAddressPool`, or says why it is not valid.
pub fn pool_spec(pool: &IPAddressPool) -> Result<PoolSpec, InvalidPool> {
    pool_spec_named(PoolName(pool.name_any()), &pool.spec)
}

pub fn pool_spec_named(name: PoolName, spec: &IPAddressPoolSpec) -> Result<PoolSpec, InvalidPool> {
    let ranges = AddressRanges::parse(spec.addresses.iter()).map_err(|e| InvalidPool {
        reason: ConfigReason::InvalidAddress,
        message: format!("spec.addresses: {e}"),
    })?;
    let allocation = match &spec.service_allocation {
        None => None,
        Some(a) => {
            let selectors = |field: &str, list: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector]| {
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        Selector::new(s).map_err(|e| InvalidPool {
                            reason: ConfigReason::InvalidSelector,
                            message: format!("spec.serviceAllocation.{field}[{i}]: {e}"),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            Some(ServiceAllocation {
                priority: a.priority,
                namespaces: a.namespaces.clone(),
                namespace_selectors: selectors("namespaceSelectors", &a.namespace_selectors)?,
                service_selectors: selectors("serviceSelectors", &a.service_selectors)?,
            })
        }
    };
    Ok(PoolSpec {
        name,
        ranges,
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        allocation,
    })
}

/// Whether the pool's allocation rules look at namespace labels (then a namespace's label
/// change can change which pools its Services may use).
pub fn uses_namespace_labels(spec: &PoolSpec) -> bool {
    spec.allocation
        .as_ref()
        .is_some_and(|a| !a.namespace_selectors.is_empty())
}

/// The labels of a namespace, shared by the requests of its Services.
pub fn namespace_labels(labels: Option<&BTreeMap<String, String>>) -> Arc<Labels> {
    Arc::new(labels.cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests;
