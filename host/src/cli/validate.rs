use super::Failure;
use sluice::sinks::{Input, DEFAULT_ROUTE};
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
    for (i, table) in c.tables.iter().enumerate() {
        match table.check(&base) {
            Ok(Some(rows)) => println!(
                "{}: tables[{i}] `{}`: {rows} rows ({})",
                path.display(),
                table.name(),
                table.describe()
            ),
            Ok(None) => {}
            Err(why) => {
                return Err(Failure::config(anyhow::anyhow!(
                    "{}: tables[{i}] `{}`: {why}",
                    path.display(),
                    table.name()
                )))
            }
        }
    }
    c.dead_letter.check(&base).map_err(|why| {
        Failure::config(anyhow::anyhow!("{}: dead_letter: {why}", path.display()))
    })?;
    for warning in route_warnings(c) {
        eprintln!("{}: warning: {warning}", path.display());
    }
    if c.stateful.is_some() && !c.source.resumes() {
        eprintln!(
            "{}: warning: [stateful] keeps its state in memory only: this source does not resume, so each run starts with no state",
            path.display()
        );
    }
    let plugins =
        c.transforms.len() + usize::from(c.stateful.is_some()) + usize::from(c.window.is_some());
    println!(
        "{}: ok (pipeline `{}`: {} transform(s), {}{}, {} sink(s); {plugins} plugin(s) loaded and initialised)",
        path.display(),
        c.name(),
        c.transforms.len(),
        if c.stateful.is_some() { "a stateful stage, " } else { "" },
        if c.window.is_some() { "a window" } else { "no window" },
        c.sinks.len(),
    );
    Ok(())
}

/// Routes known without running anything: those a transform's config names (a
/// `routes` table's values, `otherwise`, the convention of route_by_field) that no
/// sink takes, which would be dead letters; and sinks taking a route when no
/// transform could name one.
fn route_warnings(c: &sluice::config::PipelineConfig) -> Vec<String> {
    let records_sinks: Vec<_> = c
        .sinks
        .iter()
        .filter(|s| s.input() == Input::Records)
        .collect();
    let taken: Vec<String> = records_sinks.iter().flat_map(|s| s.routes()).collect();
    let mut warnings = Vec::new();
    let otherwise = c
        .transforms
        .iter()
        .any(|t| t.config.contains_key("otherwise"));
    if !records_sinks.is_empty() && !taken.iter().any(|r| r == DEFAULT_ROUTE) && !otherwise {
        warnings.push(format!(
            "every records sink takes a route, so records that name none would be dead letters (add a sink without `route`, or \"{DEFAULT_ROUTE}\" to a sink's routes)"
        ));
    }
    for (i, t) in c.transforms.iter().enumerate() {
        let mut named: Vec<&str> = match t.config.get("routes") {
            Some(toml::Value::Table(routes)) => {
                routes.values().filter_map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        };
        named.extend(t.config.get("otherwise").and_then(|v| v.as_str()));
        named.sort_unstable();
        named.dedup();
        for route in named.into_iter().filter(|r| !taken.iter().any(|t| t == r)) {
            warnings.push(format!(
                "transforms[{i}] ({}) may send records down route `{route}`, which no sink takes: they would be dead letters (add a sink with route = \"{route}\")",
                t.name()
            ));
        }
    }
    if c.transforms.is_empty() {
        for (i, s) in c.sinks.iter().enumerate() {
            if let Some(route) = s.routes.iter().find(|r| *r != DEFAULT_ROUTE) {
                warnings.push(format!(
                    "sinks[{i}] takes route `{route}`, but no transform could name one: it gets nothing"
                ));
            }
        }
    }
    warnings
}
