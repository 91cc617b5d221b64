use super::Failure;
use std::path::PathBuf;

pub fn validate(paths: &[PathBuf]) -> Result<(), Failure> {
    for pipeline in super::build_all(paths)? {
        check(&pipeline)?;
    }
    Ok(())
}

fn check(pipeline: &sluice::engine::Pipeline) -> Result<(), Failure> {
    let c = pipeline.config();
    let path = &c.file;
    // Outputs that could not be written are configuration errors too: found now,
    // not when `run` has started.
    let base = c.base_dir();
    for (i, sink) in c.sinks.iter().enumerate() {
        sink.check(&base).map_err(|why| {
            Failure::config(anyhow::anyhow!(
                "{}: sinks[{i}] ({}): {why}",
                path.display(),
                sink.describe()
            ))
        })?;
    }
    c.dead_letter.check(&base).map_err(|why| {
        Failure::config(anyhow::anyhow!("{}: dead_letter: {why}", path.display()))
    })?;
    let plugins = c.transforms.len() + usize::from(c.window.is_some());
    println!(
        "{}: ok (pipeline `{}`: {} transform(s), {}, {} sink(s); {plugins} plugin(s) loaded and initialised)",
        path.display(),
        c.name(),
        c.transforms.len(),
        if c.window.is_some() { "a window" } else { "no window" },
        c.sinks.len(),
    );
    Ok(())
}
