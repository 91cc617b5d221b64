use super::Failure;
use std::path::Path;

pub fn validate(path: &Path) -> Result<(), Failure> {
    let pipeline = super::build(path)?;
    let c = pipeline.config();
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
