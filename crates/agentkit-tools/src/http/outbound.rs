//! Outbound safety: which hosts and addresses HTTP tools may reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use agentkit_core::{Error, Result};
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Where HTTP tools may connect.
///
/// - Only `http` and `https` URLs.
/// - `deny_domains` always wins; when `allow_domains` is not empty, the host must match it.
///   Patterns are exact hosts (`api.example.com`) or `*.example.com` (any subdomain). Patterns
///   and request hosts are compared in one normal form, however a configuration file or a URL
///   writes them: lower case, without one trailing dot, Unicode names as their IDNA (punycode)
///   form, and IPv4-mapped IPv6 literals as their IPv4 address.
/// - Addresses that are not public — loopback, private (RFC 1918), link-local, unique-local
///   (`fc00::/7`), shared address space (CGNAT, `100.64.0.0/10`), unspecified, multicast,
///   broadcast, reserved, documentation and benchmarking ranges, and the same addresses
///   embedded in IPv6 (mapped, NAT64, 6to4) — are refused unless a network in `allow_networks`
///   contains them. An IPv4-mapped address (`::ffff:10.0.0.1`) is checked as the IPv4 address
///   it is, against IPv4 networks: an IPv6 network (even `::/0`) never opens one. Cloud metadata endpoints (`169.254.169.254`, `fd00:ec2::254`,
///   `169.254.170.2`, `100.100.100.200`, `168.63.129.16`) are refused unless listed as single
///   addresses (`169.254.169.254/32`): a wider allowed network does not open them.
///
/// The check runs **after DNS resolution**: HTTP tools resolve names through a resolver that
/// drops refused addresses and connect only to the addresses it returned, so a name that
/// resolves (or re-resolves: DNS rebinding) to a private address is refused. It runs again on
/// **every redirect**, before connecting to the new target.
///
/// ```
/// use agentkit_tools::http::OutboundPolicy;
///
/// let policy: OutboundPolicy = serde_json::from_value(serde_json::json!({
///     "allow_domains": ["api.example.com", "*.crm.example"],
///     "allow_networks": ["10.20.0.0/16"]
/// }))?;
/// assert!(policy.check_ip("10.20.1.2".parse().unwrap()).is_ok());
/// assert!(policy.check_ip("10.0.0.1".parse().unwrap()).is_err());
/// assert!(policy.check_ip("169.254.169.254".parse().unwrap()).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OutboundPolicy {
    /// When not empty, only these hosts (normalised when read and when compared).
    #[serde(default, deserialize_with = "normalized_hosts")]
    pub allow_domains: Vec<String>,
    /// Never these hosts (normalised when read and when compared).
    #[serde(default, deserialize_with = "normalized_hosts")]
    pub deny_domains: Vec<String>,
    /// Non-public networks that may be reached anyway (e.g. an internal API's subnet).
    #[serde(default)]
    pub allow_networks: Vec<IpNet>,
    /// Redirects followed per call (default 5).
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u8,
}

fn default_max_redirects() -> u8 {
    5
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            allow_networks: Vec::new(),
            max_redirects: default_max_redirects(),
        }
    }
}

impl OutboundPolicy {
    /// Public addresses only, any domain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these hosts (`api.example.com`, `*.example.com`).
    pub fn allow_domains(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allow_domains
            .extend(patterns.into_iter().map(|p| normalize_host(&p.into())));
        self
    }

    /// Never these hosts.
    pub fn deny_domains(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.deny_domains
            .extend(patterns.into_iter().map(|p| normalize_host(&p.into())));
        self
    }

    /// Allows a non-public network (e.g. `"127.0.0.1/32"` for a test server).
    pub fn allow_network(mut self, network: IpNet) -> Self {
        self.allow_networks.push(network);
        self
    }

    /// Sets how many redirects a call follows.
    pub fn max_redirects(mut self, n: u8) -> Self {
        self.max_redirects = n;
        self
    }

    /// Whether a host name may be contacted (before resolution).
    pub fn check_domain(&self, host: &str) -> Result<()> {
        let host = normalize_host(host);
        // Patterns are normalised when read; again here, for ones pushed onto the fields.
        let matches = |p: &String| host_matches(&normalize_host(p), &host);
        if let Some(p) = self.deny_domains.iter().find(|p| matches(p)) {
            return Err(refused(format!(
                "host `{host}` is on the deny list (`{p}`)"
            )));
        }
        if !self.allow_domains.is_empty() && !self.allow_domains.iter().any(matches) {
            return Err(refused(format!("host `{host}` is not on the allow list")));
        }
        Ok(())
    }

    /// Whether an address may be contacted. An IPv4-mapped IPv6 address is checked as its
    /// IPv4 address.
    pub fn check_ip(&self, given: IpAddr) -> Result<()> {
        let ip = given.to_canonical();
        match refusal_reason(ip) {
            None => Ok(()),
            Some(reason) => {
                let metadata = reason == METADATA;
                let allowed = self.allow_networks.iter().any(|net| {
                    net.contains(&ip) && (!metadata || net.prefix_len() == net.max_prefix_len())
                });
                if allowed {
                    Ok(())
                } else {
                    let shown = if ip == given {
                        ip.to_string()
                    } else {
                        format!("{given} (IPv4 {ip})")
                    };
                    Err(refused(format!(
                        "address {shown} is refused ({reason}); allow its network explicitly \
                         if this tool must reach it"
                    )))
                }
            }
        }
    }

    /// Puts this policy into an HTTP client: names resolve through a resolver that drops
    /// refused addresses (so DNS rebinding cannot reach a private address), redirects are not
    /// followed and no proxy is used. For clients other than the HTTP tools' own (the MCP
    /// client's Streamable HTTP transport); check the URL with [`OutboundPolicy::check_url`]
    /// first.
    pub fn guard_client(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder
            .dns_resolver(Arc::new(GuardedResolver {
                policy: Arc::new(self.clone()),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
    }

    /// Checks a URL's scheme, host and (for an address literal) address.
    pub fn check_url(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(refused(format!(
                    "scheme `{other}` is not allowed (http and https only)"
                )));
            }
        }
        match url.host() {
            None => Err(refused(format!("URL `{url}` has no host"))),
            Some(Host::Domain(d)) => self.check_domain(d),
            Some(Host::Ipv4(ip)) => {
                self.check_domain(&ip.to_string())?;
                self.check_ip(IpAddr::V4(ip))
            }
            Some(Host::Ipv6(ip)) => {
                self.check_domain(&ip.to_string())?;
                self.check_ip(IpAddr::V6(ip))
            }
        }
    }
}

/// A host or pattern in the one form policies compare: trimmed, without brackets and one
/// trailing dot; an address literal in its canonical text (an IPv4-mapped IPv6 address as its
/// IPv4 address); a name lower case and in IDNA ASCII form (`Bücher.example` →
/// `xn--bcher-kva.example`, as URLs carry it), a `*.` prefix kept. Used by the builder, the
/// configuration loader and every check.
fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    let h = h.strip_suffix('.').unwrap_or(h);
    if let Ok(ip) = h.parse::<IpAddr>() {
        return ip.to_canonical().to_string();
    }
    let (wildcard, name) = match h.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", h),
    };
    let name = match Host::parse(name) {
        Ok(Host::Domain(d)) => d,
        Ok(Host::Ipv4(ip)) => ip.to_string(),
        Ok(Host::Ipv6(ip)) => IpAddr::V6(ip).to_canonical().to_string(),
        // Not a valid host: compared as written, lower case (it matches no URL's host).
        Err(_) => name.to_lowercase(),
    };
    format!("{wildcard}{name}")
}

/// `allow_domains` and `deny_domains` from configuration, normalised like the builder's.
fn normalized_hosts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    Ok(raw.iter().map(|h| normalize_host(h)).collect())
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host.len() > parent.len() + 1 && host.ends_with(&format!(".{parent}")),
        None => pattern == host,
    }
}

const METADATA: &str = "cloud metadata endpoint";

/// Why an address is not public, or `None` when it is.
pub(crate) fn refusal_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    const METADATA_V4: [Ipv4Addr; 4] = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(169, 254, 170, 2),
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(168, 63, 129, 16),
    ];
    if METADATA_V4.contains(&ip) {
        return Some(METADATA);
    }
    if a == 0 {
        return Some("unspecified (0.0.0.0/8)");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_private() {
        return Some("private network");
    }
    if ip.is_link_local() {
        return Some("link-local");
    }
    if a == 100 && (b & 0xc0) == 64 {
        return Some("shared address space (CGNAT)");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if ip.is_broadcast() {
        return Some("broadcast");
    }
    if a >= 240 {
        return Some("reserved");
    }
    if (a, b, c) == (192, 0, 0) {
        return Some("IETF protocol assignments");
    }
    if ip.is_documentation() {
        return Some("documentation range");
    }
    if a == 198 && (b & 0xfe) == 18 {
        return Some("benchmarking range");
    }
    None
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some(METADATA);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let seg = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    // IPv4-compatible (deprecated): ::a.b.c.d
    if seg[..6] == [0; 6] {
        return v4_reason(embedded(seg[6], seg[7])).or(Some("IPv4-compatible address"));
    }
    // IPv4-translated (SIIT) ::ffff:0:a.b.c.d — not routable on the internet.
    if seg[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return Some("IPv4-translated address");
    }
    // NAT64 well-known prefix 64:ff9b::/96 embeds an IPv4 address.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_reason(embedded(seg[6], seg[7]));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        return Some("NAT64 local-use prefix");
    }
    // 6to4 2002::/16 embeds an IPv4 address in bits 16..48.
    if seg[0] == 0x2002 {
        return v4_reason(embedded(seg[1], seg[2]));
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        return Some("Teredo tunnel");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if ip.is_unique_local() {
        return Some("unique-local");
    }
    if ip.is_unicast_link_local() {
        return Some("link-local");
    }
    if (seg[0] & 0xffc0) == 0xfec0 {
        return Some("site-local");
    }
    if seg[0] == 0x2001 && seg[1] == 0xdb8 {
        return Some("documentation range");
    }
    if seg[0] == 0x100 && seg[1..4] == [0, 0, 0] {
        return Some("discard-only range");
    }
    None
}

/// A refusal by the outbound policy (also travels inside reqwest errors from the resolver).
#[derive(Debug)]
pub(crate) struct OutboundRefused(pub(crate) String);

impl std::fmt::Display for OutboundRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutboundRefused {}

fn refused(message: String) -> Error {
    Error::PermissionDenied(format!("outbound request refused: {message}"))
}

/// Resolves names and keeps only addresses the policy allows; reqwest connects to nothing else.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<OutboundPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            if let Err(e) = policy.check_domain(&host) {
                return Err(Box::new(OutboundRefused(e.to_string())) as _);
            }
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(_) => {
                        refusals.push(format!(
                            "{} ({})",
                            addr.ip(),
                            refusal_reason(addr.ip()).unwrap_or("refused")
                        ));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let detail = if refusals.is_empty() {
                    "no addresses".to_string()
                } else {
                    refusals.join(", ")
                };
                return Err(Box::new(OutboundRefused(format!(
                    "outbound request refused: host `{host}` resolves only to addresses that are \
                     not allowed: {detail}"
                ))) as _);
            }
            tracing::debug!(host = %host, addresses = allowed.len(), "resolved through the outbound policy");
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn non_public_addresses_are_refused() {
        let p = OutboundPolicy::new();
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "168.63.129.16",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(p.check_ip(ip).is_err(), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(p.check_ip(ip).is_ok(), "{ip} should be allowed");
        }
    }

    #[test]
    fn allowed_networks_open_non_public_ranges_but_not_metadata() {
        let p = OutboundPolicy::new()
            .allow_network("127.0.0.0/8".parse().unwrap())
            .allow_network("169.254.0.0/16".parse().unwrap());
        assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check_ip("169.254.1.1".parse().unwrap()).is_ok());
        let err = p
            .check_ip("169.254.169.254".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cloud metadata"), "{err}");
        let exact = p.allow_network("169.254.169.254/32".parse().unwrap());
        assert!(exact.check_ip("169.254.169.254".parse().unwrap()).is_ok());
    }

    #[test]
    fn hosts_have_one_normal_form() {
        for (given, normal) in [
            ("API.Example.COM.", "api.example.com"),
            (" *.Corp.Example. ", "*.corp.example"),
            ("Bücher.Example", "xn--bcher-kva.example"),
            ("*.bücher.example", "*.xn--bcher-kva.example"),
            ("[::FFFF:10.0.0.1]", "10.0.0.1"),
            ("::ffff:7f00:1", "127.0.0.1"),
            ("[2001:DB8::1]", "2001:db8::1"),
            ("example.com..", "example.com."),
        ] {
            assert_eq!(normalize_host(given), normal, "{given}");
        }
    }

    #[test]
    fn domain_lists() {
        let p = OutboundPolicy::new()
            .allow_domains(["api.example.com", "*.crm.example"])
            .deny_domains(["evil.crm.example"]);
        assert!(p.check_domain("API.example.com.").is_ok());
        assert!(p.check_domain("eu.crm.example").is_ok());
        assert!(p.check_domain("crm.example").is_err());
        assert!(p.check_domain("evil.crm.example").is_err());
        assert!(p.check_domain("example.com").is_err());
        let url = Url::parse("ftp://api.example.com/x").unwrap();
        assert!(p.check_url(&url).is_err());
    }
}
