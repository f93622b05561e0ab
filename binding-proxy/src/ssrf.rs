//! The upstream address guard. NetworkPolicy cannot filter by host name, so the proxy checks every
//! address it connects to: loopback, link-local, private, shared, unspecified and multicast addresses
//! are refused unless the server allows private endpoints, and cloud metadata endpoints are refused
//! always. The check runs in the DNS resolver that every connection goes through, so a host name that
//! resolves (or re-resolves) to a refused address cannot slip past it; redirects are not followed.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The reason given for cloud metadata and credential endpoints, refused even for private servers.
pub const METADATA: &str = "a cloud metadata address";

/// Why an address is refused, or `None` when it is public.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let seg = v6.segments();
    let o = v6.octets();
    let v4 = |a: u8, b: u8, c: u8, d: u8| Ipv4Addr::new(a, b, c, d);
    // Forms that carry an IPv4 address are judged by it: IPv4-mapped (::ffff:a.b.c.d), NAT64 with the
    // well-known prefix (64:ff9b::/96), 6to4 (2002::/16) and the deprecated IPv4-compatible form
    // (::a.b.c.d). A translator or relay on the way would deliver the packets to that IPv4 address.
    if let Some(embedded) = v6.to_ipv4_mapped() {
        return classify_v4(embedded);
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(v4(o[12], o[13], o[14], o[15]));
    }
    if seg[..3] == [0x64, 0xff9b, 1] {
        // Local-use NAT64 (RFC 8215), /48 layout of RFC 6052: the IPv4 address sits in octets 6, 7, 9
        // and 10 (octet 8 is reserved). Local use means private even when the IPv4 address is public.
        return classify_v4(v4(o[6], o[7], o[9], o[10])).or(Some("a local-use NAT64 address"));
    }
    if seg[0] == 0x2002 {
        return classify_v4(v4(o[2], o[3], o[4], o[5]));
    }
    if seg[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
        return classify_v4(v4(o[12], o[13], o[14], o[15]));
    }
    if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023)
    {
        Some(METADATA)
    } else if v6.is_loopback() {
        Some("a loopback address")
    } else if v6.is_unspecified() {
        Some("the unspecified address")
    } else if v6.is_multicast() {
        Some("a multicast address")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if seg[0] & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else {
        None
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    // Instance metadata (AWS, GCP, Azure, OpenStack: 169.254.169.254; Alibaba: 100.100.100.200), the
    // Azure wire server (168.63.129.16) and the container credential endpoints (ECS: 169.254.170.2,
    // EKS Pod Identity: 169.254.170.23).
    if matches!(
        o,
        [169, 254, 169, 254]
            | [100, 100, 100, 200]
            | [168, 63, 129, 16]
            | [169, 254, 170, 2]
            | [169, 254, 170, 23]
    ) {
        Some(METADATA)
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_private() {
        Some("a private address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a shared (carrier-grade NAT) address")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("a benchmarking address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("the unspecified address")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else {
        None
    }
}

/// Whether `ip` may be connected to. Metadata addresses are never allowed.
pub fn check(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    match classify(ip) {
        None => Ok(()),
        Some(reason) if reason == METADATA => Err(format!("refused to connect to {ip}: it is {reason}")),
        Some(_) if allow_private => Ok(()),
        Some(reason) => Err(format!(
            "refused to connect to {ip}: it is {reason}; set allowPrivateEndpoint: true on the server if it really lives there"
        )),
    }
}

/// Check a URL before connecting: IP-literal hosts never reach the resolver.
pub fn check_url(url: &url::Url, allow_private: bool) -> Result<(), String> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check(IpAddr::V4(ip), allow_private),
        Some(url::Host::Ipv6(ip)) => check(IpAddr::V6(ip), allow_private),
        Some(url::Host::Domain(_)) => Ok(()),
        None => Err("the url has no host".into()),
    }
}

/// Why [`precheck`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrecheckError {
    /// The guard refused an address; the message names the host and the address, never the URL.
    Refused(String),
    /// The host name could not be resolved; the message is for the proxy's log.
    Unresolved(String),
}

/// The address guard's refusal, as the resolver reports it (found again in the connection error's
/// source chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolve the URL's host now and check every address, for a clear error before connecting. The
/// resolver below enforces the same rule on every connection, so a later re-resolution cannot bypass it.
pub async fn precheck(url: &url::Url, allow_private: bool) -> Result<(), PrecheckError> {
    match url.host() {
        Some(url::Host::Domain(host)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| PrecheckError::Unresolved(format!("cannot resolve {host}: {e}")))?
                .collect();
            if addrs.is_empty() {
                return Err(PrecheckError::Unresolved(format!("{host} has no addresses")));
            }
            for a in addrs {
                check(a.ip(), allow_private).map_err(|e| PrecheckError::Refused(format!("{host}: {e}")))?;
            }
            Ok(())
        }
        Some(_) => check_url(url, allow_private).map_err(PrecheckError::Refused),
        None => Err(PrecheckError::Refused("the url has no host".into())),
    }
}

/// A DNS resolver that drops refused addresses and fails when none is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl GuardedResolver {
    pub fn new(allow_private: bool) -> Arc<Self> {
        Arc::new(GuardedResolver { allow_private })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match check(a.ip(), allow_private) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some(why) => Box::new(Refused(format!("{host}: {why}")))
                        as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{host} has no addresses").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refused_ranges() {
        for (ip, refused) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("169.254.1.1", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("8.8.8.8", false),
            ("::1", true),
            ("fe80::1", true),
            ("fd00:ec2::254", true),
            ("fc00::1", true),
            ("::ffff:127.0.0.1", true),
            ("2001:4860:4860::8888", false),
            // NAT64, well-known and local-use prefixes: judged by the embedded IPv4 address.
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::a00:1", true),
            ("64:ff9b::808:808", false),
            ("64:ff9b:1:7f00:1::", true),
            ("64:ff9b:1:808:8:800::", true),
            // 6to4.
            ("2002:7f00:1::", true),
            ("2002:a9fe:a9fe::1", true),
            ("2002:c0a8:101::", true),
            ("2002:808:808::", false),
            // IPv4-compatible.
            ("::127.0.0.1", true),
            ("::10.0.0.1", true),
            ("::169.254.169.254", true),
            ("::8.8.8.8", false),
            // Site-local and benchmarking.
            ("fec0::1", true),
            ("feff::1", true),
            ("198.18.0.1", true),
            ("198.19.255.254", true),
            ("198.20.0.1", false),
            ("198.17.255.255", false),
        ] {
            assert_eq!(classify(ip.parse().unwrap()).is_some(), refused, "{ip}");
        }
    }

    #[test]
    fn private_endpoints_can_be_allowed_but_metadata_never() {
        assert!(check("127.0.0.1".parse().unwrap(), true).is_ok());
        let e = check("127.0.0.1".parse().unwrap(), false).unwrap_err();
        assert!(e.contains("loopback") && e.contains("allowPrivateEndpoint"), "{e}");
        assert!(check("169.254.169.254".parse().unwrap(), true).unwrap_err().contains("metadata"));
        assert!(check_url(&"http://[::1]:80/mcp".parse().unwrap(), false).is_err());
        assert!(check_url(&"https://mcp.example.com/mcp".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn embedded_ipv4_is_classified_like_ipv4() {
        for (v6, v4) in [
            ("64:ff9b::7f00:1", "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("2002:a9fe:a9fe::", "169.254.169.254"),
            ("2002:a00:1::", "10.0.0.1"),
            ("::127.0.0.1", "127.0.0.1"),
            ("::192.168.1.1", "192.168.1.1"),
            ("64:ff9b:1:a9fe:a9:fe00::", "169.254.169.254"),
        ] {
            assert_eq!(classify(v6.parse().unwrap()), classify(v4.parse().unwrap()), "{v6} carries {v4}");
        }
        // Metadata behind NAT64 or 6to4 is refused even for private servers.
        for ip in ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::169.254.169.254", "64:ff9b::a83f:8110"] {
            assert!(check(ip.parse().unwrap(), true).unwrap_err().contains("metadata"), "{ip}");
        }
        // Private ones are allowed with allowPrivateEndpoint, like their IPv4 address.
        assert!(check("64:ff9b::7f00:1".parse().unwrap(), true).is_ok());
        assert!(check("64:ff9b::7f00:1".parse().unwrap(), false).unwrap_err().contains("loopback"));
        assert!(check("2002:c0a8:101::".parse().unwrap(), false).unwrap_err().contains("private"));
        assert_eq!(classify("64:ff9b:1:808:8:800::".parse().unwrap()), Some("a local-use NAT64 address"));
    }

    #[test]
    fn site_local_and_benchmarking_are_private() {
        assert_eq!(classify("fec0::1".parse().unwrap()), Some("a site-local address"));
        assert_eq!(classify("198.18.0.1".parse().unwrap()), Some("a benchmarking address"));
        assert!(check("fec0::1".parse().unwrap(), true).is_ok());
        assert!(check("198.18.0.1".parse().unwrap(), false).unwrap_err().contains("allowPrivateEndpoint"));
    }

    #[test]
    fn azure_wire_server_and_container_credential_endpoints_are_metadata() {
        for ip in ["168.63.129.16", "169.254.170.2", "169.254.170.23", "fd00:ec2::23", "::ffff:168.63.129.16"]
        {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify(ip), Some(METADATA), "{ip}");
            assert!(
                check(ip, true).unwrap_err().contains("metadata"),
                "{ip}: refused even for private servers"
            );
        }
        assert_eq!(classify("168.63.129.17".parse().unwrap()), None);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let r = GuardedResolver::new(false);
        let e = r.resolve("localhost".parse().unwrap()).await.err().unwrap().to_string();
        assert!(e.contains("loopback"), "{e}");
        let allowed = GuardedResolver::new(true);
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
