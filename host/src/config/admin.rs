//! `[admin]`: the admin listener's settings (served by `crate::admin`).

use crate::field_error::FieldError;
use serde::Deserialize;
use std::net::SocketAddr;

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `ip:port` to listen on, e.g. `127.0.0.1:9464`; port 0 takes a free one (the
    /// log says which).
    pub listen: String,
    /// A bearer token every request must carry (`Authorization: Bearer ...`, or
    /// `?token=...` for a browser); needed to listen beyond loopback. Write it as
    /// `${SLUICE_ADMIN_TOKEN}`.
    pub token: Option<String>,
}

/// The port the docs and `sluice status` default to.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

impl AdminConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let addr = self.addr()?;
        match self.token.as_deref() {
            Some(t) if t.trim().is_empty() => Err(FieldError::new(
                "token",
                "is empty: give a secret, or leave `token` out on loopback",
            )),
            None if !addr.ip().is_loopback() => Err(FieldError::new(
                "token",
                format!(
                    "is required to listen on {addr}, beyond loopback: set token = \"${{SLUICE_ADMIN_TOKEN}}\" (every request then needs it)"
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn addr(&self) -> Result<SocketAddr, FieldError> {
        self.listen.parse().map_err(|_| {
            FieldError::new(
                "listen",
                format!(
                    "`{}` is not an ip:port like \"127.0.0.1:9464\" (or \"0.0.0.0:9464\" with a token)",
                    self.listen
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(listen: &str, token: Option<&str>) -> AdminConfig {
        AdminConfig {
            listen: listen.into(),
            token: token.map(str::to_owned),
        }
    }

    #[test]
    fn beyond_loopback_a_token_is_required() {
        assert!(admin("127.0.0.1:9464", None).validate().is_ok());
        assert!(admin("[::1]:0", None).validate().is_ok());
        let FieldError { field, message } = admin("0.0.0.0:9464", None).validate().unwrap_err();
        assert_eq!(field, "token");
        assert!(message.contains("beyond loopback"), "{message}");
        assert!(admin("0.0.0.0:9464", Some("s3cret")).validate().is_ok());
        assert_eq!(
            admin("127.0.0.1:1", Some(" "))
                .validate()
                .unwrap_err()
                .field,
            "token"
        );
        assert_eq!(
            admin("localhost:9464", None).validate().unwrap_err().field,
            "listen"
        );
    }
}
