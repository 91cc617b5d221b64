//! A plugin's entry in the metrics and `/status`: its stage, name, version and file.

use crate::metrics::StageInfo;

/// A plugin's stage entry for metrics and `/status`.
pub(crate) fn version_info<P: HasVersion>(stage: &str, plugin: &P) -> StageInfo {
    let (version, file) = plugin.version_and_file();
    StageInfo {
        stage: stage.to_owned(),
        plugin: plugin.plugin_name().to_owned(),
        version: version.to_owned(),
        file: file.display().to_string(),
    }
}

pub(crate) trait HasVersion {
    fn version_and_file(&self) -> (&str, &std::path::Path);
    fn plugin_name(&self) -> &str;
}

impl HasVersion for crate::plugin::TransformPlugin {
    fn version_and_file(&self) -> (&str, &std::path::Path) {
        self.version()
    }
    fn plugin_name(&self) -> &str {
        self.name()
    }
}

impl HasVersion for crate::plugin::WindowPlugin {
    fn version_and_file(&self) -> (&str, &std::path::Path) {
        self.version()
    }
    fn plugin_name(&self) -> &str {
        self.name()
    }
}
