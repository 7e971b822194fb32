//! What the running server holds apart from any one interface: [`Live`], the config in force.
//! The HTTP layer (`http/`), the metrics collectors and a reload read it; only a reload replaces
//! it.

use std::sync::{Arc, RwLock};

use crate::app::config::Config;

/// The config in force. A reload replaces it whole, under the pipeline lock, together with the
/// pipeline's journeys and SLOs, so a reader that locks the pipeline and then reads the config
/// sees both change at once.
#[derive(Debug)]
pub struct Live(RwLock<Arc<Config>>);

impl Live {
    /// The config in force at start-up.
    pub fn new(config: Arc<Config>) -> Self {
        Live(RwLock::new(config))
    }

    /// The config in force now.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().expect("config lock poisoned").clone()
    }

    /// Only with the pipeline lock held, so readers that lock the pipeline see both change at
    /// once.
    pub fn set(&self, config: Arc<Config>) {
        *self.0.write().expect("config lock poisoned") = config;
    }
}
