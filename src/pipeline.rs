//! What happens to a sample after collection: history, model scoring, (later)
//! forecasts and incidents. The live daemon and `anomalyd replay` both drive this, so
//! a recorded series goes through exactly the code the daemon runs.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::export::http::Api;
use crate::sample::Sample;

pub struct Pipeline {}

impl Pipeline {
    pub fn open(_config: &Config, _state_dir: &Path) -> anyhow::Result<Self> {
        Ok(Pipeline {})
    }

    /// Process one sample; may append points (scores, model state) to it.
    pub fn process(&mut self, _sample: &mut Sample) {}

    pub fn reconfigure(&mut self, _config: &Config) {}

    /// One-line summary for systemd's STATUS=.
    pub fn status(&self) -> String {
        "model: not trained".to_string()
    }

    pub fn api(&self) -> Option<Arc<dyn Api>> {
        None
    }

    pub fn close(self) {}
}
