//! The `--metrics [ADDR]` value: where the exporter listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Port used when `--metrics` names none.
pub const DEFAULT_PORT: u16 = 9477;

/// The listening address with no value given: loopback only, so nothing is exposed to the
/// network unless an address says so.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9477";

/// `PORT` (on 127.0.0.1), `IP` (on [`DEFAULT_PORT`]) or `IP:PORT` / `[IPv6]:PORT`.
pub fn parse_metrics_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(format!("{text:?} is not a port, an IP address or IP:PORT (e.g. 9477, 0.0.0.0:9477, [::1]:9477)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ports_bind_loopback_and_addresses_are_kept() {
        assert_eq!(parse_metrics_addr("9100"), Ok("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(parse_metrics_addr("0.0.0.0:9100"), Ok("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(parse_metrics_addr("[::1]:9100"), Ok("[::1]:9100".parse().unwrap()));
        assert_eq!(parse_metrics_addr("10.1.2.3"), Ok("10.1.2.3:9477".parse().unwrap()));
        assert_eq!(parse_metrics_addr("::1"), Ok("[::1]:9477".parse().unwrap()));
        assert_eq!(
            parse_metrics_addr(DEFAULT_ADDR),
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT))
        );
    }

    #[test]
    fn rejects_names_and_bad_ports() {
        for bad in ["localhost:9100", "70000", "1.2.3.4:99999", "", "http://127.0.0.1:9100"] {
            let err = parse_metrics_addr(bad).unwrap_err();
            assert!(err.contains("is not a port"), "{bad}: {err}");
        }
    }
}
