//! Outbound policies: domain lists read from configuration files match however hosts are
//! written (case, a trailing dot, Unicode or punycode), and IPv4-mapped IPv6 addresses are
//! checked as the IPv4 addresses they are. Pure checks: nothing connects anywhere.
#![allow(missing_docs, clippy::unwrap_used)]

use agentkit_core::ErrorKind;
use agentkit_tools::http::{HttpTool, HttpToolConfig, OutboundPolicy};
use serde_json::json;
use url::Url;

fn get(url: String) -> HttpToolConfig {
    HttpToolConfig::new("test.fetch", "Fetches a thing", url)
}

#[test]
fn domain_lists_from_a_config_file_are_normalised() {
    let policy: OutboundPolicy = serde_json::from_value(json!({
        "deny_domains": ["EVIL.Example.", "*.Corp.Example.", "Bücher.Example"],
        "allow_networks": []
    }))
    .unwrap();
    for url in [
        "https://evil.example/",
        "https://EVIL.example./x",
        "https://intranet.corp.example/",
        "https://bücher.example/",
    ] {
        let e = policy.check_url(&Url::parse(url).unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{url}");
        assert!(e.to_string().contains("deny list"), "{url}: {e}");
    }
    assert!(
        policy
            .check_url(&Url::parse("https://good.example/").unwrap())
            .is_ok()
    );
    // An HTTP tool built on the policy refuses the host too.
    let e = HttpTool::new(get("https://Evil.Example/x".into()), policy).unwrap_err();
    assert!(e.to_string().contains("deny list"), "{e}");

    let allow: OutboundPolicy =
        serde_json::from_value(json!({"allow_domains": ["API.Example.COM.", "Bücher.Example"]}))
            .unwrap();
    for url in [
        "https://api.example.com/v1",
        "https://xn--bcher-kva.example/",
    ] {
        assert!(allow.check_url(&Url::parse(url).unwrap()).is_ok(), "{url}");
    }
    // The builder normalises the same way.
    let built = OutboundPolicy::new().deny_domains(["Bücher.Example."]);
    assert!(
        built
            .check_url(&Url::parse("https://xn--bcher-kva.example/").unwrap())
            .is_err()
    );
}

#[test]
fn ipv4_mapped_ipv6_addresses_are_checked_as_their_ipv4_address() {
    // Opening IPv6 widely does not open IPv4 ranges through mapped addresses.
    let v6_open = OutboundPolicy::new().allow_network("::/0".parse().unwrap());
    for ip in [
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:192.168.1.1",
        "::ffff:169.254.169.254",
    ] {
        assert!(
            v6_open.check_ip(ip.parse().unwrap()).is_err(),
            "{ip} maps to a refused IPv4 address"
        );
        let url = Url::parse(&format!("http://[{ip}]/")).unwrap();
        assert!(v6_open.check_url(&url).is_err(), "{url}");
    }
    // An allowed IPv4 network allows its mapped form, and an IPv4 deny entry denies it.
    let internal = OutboundPolicy::new().allow_network("10.20.0.0/16".parse().unwrap());
    assert!(
        internal
            .check_ip("::ffff:10.20.1.2".parse().unwrap())
            .is_ok()
    );
    assert!(
        internal
            .check_ip("::ffff:10.21.1.2".parse().unwrap())
            .is_err()
    );
    let denied = internal.deny_domains(["10.20.1.2"]);
    let e = denied
        .check_url(&Url::parse("http://[::ffff:10.20.1.2]/").unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("deny list"), "{e}");
}
