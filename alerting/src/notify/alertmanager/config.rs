//! `[[receivers]] alertmanager`: the section of an [`super::AlertmanagerNotifier`], beside it;
//! `crate::config` assembles the sections into a `ReceiverConfig`.

use serde::Deserialize;

use crate::notify::http::HttpUrl;

/// Push alerts to an existing Alertmanager (`POST /api/v2/alerts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://alertmanager:9093`.
    pub url: HttpUrl,
}
