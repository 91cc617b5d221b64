//! A plugin's entry in the metrics and `/status`: its stage, name, version and file.

use crate::metrics::StageInfo;
use crate::plugin::{Plugin, World};

/// A plugin's stage entry for metrics and `/status`.
pub(crate) fn version_info<W: World>(stage: &str, plugin: &Plugin<W>) -> StageInfo {
    let (version, file) = plugin.version();
    StageInfo {
        stage: stage.to_owned(),
        plugin: plugin.name().to_owned(),
        version: version.to_owned(),
        file: file.display().to_string(),
    }
}
