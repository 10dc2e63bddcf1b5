//! Address blocks, for `server.trusted_proxies`.

use std::net::IpAddr;

use serde::Deserialize;

/// An address block, `10.0.0.0/8`, `fd00::/8` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(net.to_bits()), 32, self.prefix) == masked(u128::from(ip.to_bits()), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.to_bits(), 128, self.prefix) == masked(ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an address or an address/prefix block");
        let (net, prefix) = text.trim().split_once('/').map_or((text.trim(), None), |(n, p)| (n, Some(p)));
        let net: IpAddr = net.parse().map_err(|_| bad())?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse().ok().filter(|p| *p <= width).ok_or_else(bad)?,
        };
        Ok(Self { net, prefix })
    }
}
