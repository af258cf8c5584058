//! Transport addresses: `shm:NAME`, `unix:PATH`, `pipe:`, `tcp:HOST:PORT`.

use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The longest Unix socket path (`sun_path` holds 108 bytes with the terminating NUL).
const MAX_UNIX_PATH: usize = 107;

/// Where a transport endpoint is, written `KIND:WHERE`.
///
/// | text | meaning |
/// |---|---|
/// | `shm:NAME` | the named shared-memory link `NAME` (segments `NAME.a2b` and `NAME.b2a`) |
/// | `unix:PATH` | a `SOCK_SEQPACKET` Unix socket bound at `PATH` |
/// | `pipe:` | the pipes this process inherited (see [`Pipe::inherited`](super::Pipe::inherited)) |
/// | `tcp:HOST:PORT` | a TCP socket; an IPv6 `HOST` is written in brackets: `tcp:[::1]:7000` |
///
/// ```
/// use zipc::transport::Address;
/// # fn main() -> zipc::Result<()> {
/// let a: Address = "tcp:[::1]:7000".parse()?;
/// assert_eq!(a, Address::Tcp { host: "::1".into(), port: 7000 });
/// assert_eq!(a.to_string(), "tcp:[::1]:7000");
/// assert!("tcp:localhost".parse::<Address>().is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// `shm:NAME`.
    Shm(String),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `pipe:`.
    Pipe,
    /// `tcp:HOST:PORT`.
    Tcp {
        /// A host name or an IP address (an IPv6 one without brackets).
        host: String,
        /// The port.
        port: u16,
    },
}

fn invalid(text: &str, why: impl fmt::Display) -> Error {
    Error::InvalidArgument(format!("transport address {text:?}: {why}"))
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(text: &str) -> Result<Address> {
        let Some((kind, rest)) = text.split_once(':') else {
            return Err(invalid(
                text,
                "expected shm:NAME, unix:PATH, pipe: or tcp:HOST:PORT",
            ));
        };
        match kind {
            "shm" => {
                // The link's two segments are NAME.a2b and NAME.b2a: check the longer form.
                crate::shm::shm_name(rest).map_err(|e| invalid(text, e))?;
                crate::shm::shm_name(&format!("{rest}.a2b")).map_err(|e| invalid(text, e))?;
                Ok(Address::Shm(rest.to_string()))
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid(text, "the socket path is empty"));
                }
                if rest.contains('\0') {
                    return Err(invalid(text, "the socket path contains a NUL byte"));
                }
                if rest.len() > MAX_UNIX_PATH {
                    return Err(invalid(
                        text,
                        format!(
                            "the socket path is {} bytes, more than {MAX_UNIX_PATH}",
                            rest.len()
                        ),
                    ));
                }
                Ok(Address::Unix(PathBuf::from(rest)))
            }
            "pipe" if rest.is_empty() => Ok(Address::Pipe),
            "pipe" => Err(invalid(
                text,
                "pipe: takes nothing after the colon (the fds are inherited)",
            )),
            "tcp" => {
                let Some((host, port)) = rest.rsplit_once(':') else {
                    return Err(invalid(text, "expected tcp:HOST:PORT"));
                };
                let port: u16 = port
                    .parse()
                    .map_err(|_| invalid(text, format!("{port:?} is not a port number")))?;
                let host = match host.strip_prefix('[') {
                    Some(h) => h
                        .strip_suffix(']')
                        .ok_or_else(|| invalid(text, "an unclosed '[' in the host"))?,
                    None if host.contains(':') => {
                        return Err(invalid(text, "write an IPv6 host in brackets: [::1]"));
                    }
                    None => host,
                };
                if host.is_empty() {
                    return Err(invalid(text, "the host is empty"));
                }
                Ok(Address::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            other => Err(invalid(
                text,
                format!("unknown transport {other:?} (shm, unix, pipe or tcp)"),
            )),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Shm(name) => write!(f, "shm:{name}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Pipe => f.write_str("pipe:"),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

impl Address {
    /// The kind of transport this address names.
    pub fn kind(&self) -> super::Kind {
        match self {
            Address::Shm(_) => super::Kind::Shm,
            Address::Unix(_) => super::Kind::UnixSocket,
            Address::Pipe => super::Kind::Pipe,
            Address::Tcp { .. } => super::Kind::Tcp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_and_prints_back() {
        for text in [
            "shm:jobs-1",
            "unix:/run/x.sock",
            "unix:rel/x.sock",
            "pipe:",
            "tcp:127.0.0.1:80",
            "tcp:example.org:65535",
            "tcp:[::1]:0",
        ] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn bad_addresses_are_invalid_arguments() {
        for text in [
            "",
            "shm",
            "shm:",
            "shm:a/b",
            "unix:",
            "unix:a\0b",
            "pipe:3",
            "tcp:host",
            "tcp:host:",
            "tcp:host:65536",
            "tcp::80",
            "tcp:::1:80",
            "tcp:[::1:80",
            "udp:1.2.3.4:5",
        ] {
            match text.parse::<Address>() {
                Err(Error::InvalidArgument(why)) => assert!(why.contains("transport address")),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        let long = format!("unix:/{}", "x".repeat(MAX_UNIX_PATH));
        assert!(matches!(
            long.parse::<Address>(),
            Err(Error::InvalidArgument(_))
        ));
    }
}
