//! `[[receivers]] email`: the section of an [`super::EmailNotifier`], beside it; `crate::config`
//! assembles the sections into a `ReceiverConfig`.

use std::fmt;

use serde::Deserialize;

use crate::redact::REDACTED;

/// `Debug` leaves the password out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipients.
    pub to: Vec<String>,
    pub from: String,
    /// SMTP server as `host:port`.
    pub smarthost: String,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (plain; local relays only).
    #[serde(default)]
    pub tls: TlsMode,
    pub username: Option<String>,
    /// Never logged.
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    #[default]
    Starttls,
    Tls,
    None,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("to", &self.to)
            .field("from", &self.from)
            .field("smarthost", &self.smarthost)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .finish()
    }
}
