//! ping collector (stub, to be written).
use super::{CollectError, Collector};
use crate::config::PingConfig;
use crate::sample::Sample;

#[allow(dead_code)]
pub struct Ping {
    config: PingConfig,
}

impl Ping {
    pub fn new(config: PingConfig) -> Self {
        Ping { config }
    }
}

impl Collector for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn collect(&mut self, _sample: &mut Sample) -> Result<(), CollectError> {
        Ok(())
    }
}
