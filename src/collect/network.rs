//! network collector (stub, to be written).
use super::{CollectError, Collector, Paths};
use crate::config::NetworkConfig;
use crate::sample::Sample;

#[allow(dead_code)]
pub struct Network {
    paths: Paths,
    config: NetworkConfig,
}

impl Network {
    pub fn new(paths: Paths, config: NetworkConfig) -> Self {
        Network { paths, config }
    }
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }
    fn collect(&mut self, _sample: &mut Sample) -> Result<(), CollectError> {
        Ok(())
    }
}
