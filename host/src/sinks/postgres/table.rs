//! Making the table and checking its columns against a sink's layout.

use super::{Layout, PgType};
use crate::postgres::{describe, quoted};

/// The statements that make the schema and table if they are missing.
pub fn create_statements(schema: &str, table: &str, layout: &Layout) -> Vec<String> {
    let columns: Vec<String> = layout
        .columns
        .iter()
        .map(|(n, t)| {
            let not_null = if layout.key.contains(n) {
                " NOT NULL"
            } else {
                ""
            };
            format!("{} {}{not_null}", quoted(n), t.sql())
        })
        .collect();
    let key: Vec<String> = layout.key.iter().map(|k| quoted(k)).collect();
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {}", quoted(schema)),
        format!(
            "CREATE TABLE IF NOT EXISTS {}.{} ({}, PRIMARY KEY ({}))",
            quoted(schema),
            quoted(table),
            columns.join(", "),
            key.join(", ")
        ),
    ]
}

/// Check the table's columns against the layout: a column missing or of another type
/// stops the pipeline at start, naming it.
pub async fn check_columns(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    layout: &Layout,
) -> Result<(), String> {
    let rows = client
        .query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            &[&schema, &table],
        )
        .await
        .map_err(|e| describe(&e))?;
    if rows.is_empty() {
        return Err(format!(
            "table {schema}.{table} does not exist (set create = true to make it)"
        ));
    }
    for (name, t) in &layout.columns {
        let found = rows.iter().find(|r| r.get::<_, String>(0) == *name);
        match found {
            None => {
                return Err(format!(
                    "table {schema}.{table} has no column `{name}` (the sink writes it as {})",
                    t.sql()
                ))
            }
            Some(r) => {
                let actual: String = r.get(1);
                let accepted = actual == t.catalog_name()
                    || (*t == PgType::Text && actual == "character varying");
                if !accepted {
                    return Err(format!(
                        "column `{name}` of {schema}.{table} is {actual}, but the sink writes it as {}",
                        t.sql()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_made_with_its_key_not_null() {
        let layout = Layout {
            columns: vec![("id".into(), PgType::Uuid), ("n".into(), PgType::Bigint)],
            key: vec!["id".into()],
        };
        assert_eq!(
            create_statements("public", "t", &layout)[1],
            "CREATE TABLE IF NOT EXISTS \"public\".\"t\" (\"id\" uuid NOT NULL, \"n\" bigint, PRIMARY KEY (\"id\"))"
        );
    }
}
