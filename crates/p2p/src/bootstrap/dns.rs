//! DNS bootstrap: the A and AAAA records of a name (a headless service lists every pod), each
//! address a candidate at this node's router port.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::source::{DiscoveryError, DnsSource};
use crate::messages::Candidate;

/// A resolver for one [`DnsSource`], built once and asked every round.
pub(crate) struct Resolver {
    source: DnsSource,
    resolver: TokioResolver,
}

impl Resolver {
    /// Builds the resolver. Answers are not cached: every round sees the records as they are.
    pub(crate) fn new(source: DnsSource) -> Result<Resolver, DiscoveryError> {
        let fail = |reason: String| DiscoveryError::Dns {
            name: source.domain.clone(),
            reason,
        };
        let mut builder = match source.nameserver {
            Some(server) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = server.port();
                        c
                    })
                    .collect();
                let ns = NameServerConfig::new(server.ip(), true, connections);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| fail(format!("reading the system resolver configuration: {e}")))?,
        };
        let opts = builder.options_mut();
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let resolver = builder.build().map_err(|e| fail(e.to_string()))?;
        Ok(Resolver { source, resolver })
    }

    /// The candidates the name lists now, each at `port`. A name with no records (or that does
    /// not exist) is an empty list, not a failure: a headless service lists no pod until one is
    /// ready.
    pub(crate) async fn candidates(&self, port: u16) -> Result<Vec<Candidate>, DiscoveryError> {
        match self.resolver.lookup_ip(self.source.domain.as_str()).await {
            Ok(lookup) => Ok(candidates_at(lookup.iter(), port)),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(DiscoveryError::Dns {
                name: self.source.domain.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

/// The candidates DNS answered with: each distinct IP once, in order, at `port`. Public so that
/// the fuzz targets (`crates/fuzz`) can feed it the addresses of decoded DNS answers.
pub fn candidates_at(ips: impl IntoIterator<Item = IpAddr>, port: u16) -> Vec<Candidate> {
    let mut ips: Vec<IpAddr> = ips.into_iter().collect();
    ips.sort();
    ips.dedup();
    ips.into_iter()
        .map(|ip| Candidate::at(SocketAddr::new(ip, port)))
        .collect()
}
