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

/// Why an address is refused, or `None` when it is public.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
                Some("a cloud metadata address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else {
                None
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_private() {
        Some("a private address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a shared (carrier-grade NAT) address")
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
        Some(reason) if reason == "a cloud metadata address" => {
            Err(format!("refused to connect to {ip}: it is {reason}"))
        }
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
        None => Err(format!("{url} has no host")),
    }
}

/// Resolve the URL's host now and check every address, for a clear error before connecting. The
/// resolver below enforces the same rule on every connection, so a later re-resolution cannot bypass it.
pub async fn precheck(url: &url::Url, allow_private: bool) -> Result<(), String> {
    check_url(url, allow_private)?;
    if let Some(url::Host::Domain(host)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} has no addresses"));
        }
        for a in addrs {
            check(a.ip(), allow_private).map_err(|e| format!("{host}: {e}"))?;
        }
    }
    Ok(())
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
                let why = refused.unwrap_or_else(|| format!("{host} has no addresses"));
                return Err(format!("{host}: {why}").into());
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

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let r = GuardedResolver::new(false);
        let e = r.resolve("localhost".parse().unwrap()).await.err().unwrap().to_string();
        assert!(e.contains("loopback"), "{e}");
        let allowed = GuardedResolver::new(true);
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
