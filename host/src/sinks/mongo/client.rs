//! Connecting to MongoDB and creating indexes; shared by the sink and `sluice query
//! mongo`.

use super::Index;
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

/// A client whose server selection and connections give up after `timeout` (the
/// driver's default waits 30 s), checked with a `ping`.
pub async fn connect(uri: &str, timeout: std::time::Duration) -> Result<Client, String> {
    let where_ = redact(uri);
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(|e| format!("{where_}: {e}"))?;
    options.app_name.get_or_insert_with(|| "sluice".into());
    options.server_selection_timeout = Some(timeout);
    options.connect_timeout = Some(timeout);
    let client = Client::with_options(options).map_err(|e| format!("{where_}: {e}"))?;
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(|e| format!("cannot reach MongoDB at {where_}: {e}"))?;
    Ok(client)
}

/// The URI without its password, for messages.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => uri.to_owned(),
    }
}

/// The `createIndexes` entry for one configured index.
pub fn index_spec(index: &Index) -> Document {
    let mut keys = Document::new();
    for field in &index.fields {
        match field.strip_prefix('-') {
            Some(f) => keys.insert(f, -1),
            None => keys.insert(field, 1),
        };
    }
    let name = index.name.clone().unwrap_or_else(|| {
        keys.iter()
            .map(|(k, v)| format!("{k}_{v}"))
            .collect::<Vec<_>>()
            .join("_")
    });
    let mut spec = doc! { "key": keys, "name": name };
    if index.unique {
        spec.insert("unique", true);
    }
    spec
}

/// Create the indexes (a no-op for those that exist with the same definition).
pub async fn create_indexes(
    client: &Client,
    database: &str,
    collection: &str,
    indexes: &[Index],
) -> Result<(), String> {
    if indexes.is_empty() {
        return Ok(());
    }
    let specs: Vec<Document> = indexes.iter().map(index_spec).collect();
    client
        .database(database)
        .run_command(doc! { "createIndexes": collection, "indexes": specs })
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot create the indexes of {database}.{collection}: {e}"))
}

/// The documents of `database.collection` matching `filter` (in `sort` order, at most
/// `limit`), each as relaxed Extended JSON; `each` returns whether to go on.
pub async fn find_json(
    client: &Client,
    database: &str,
    collection: &str,
    filter: Document,
    sort: Option<Document>,
    limit: Option<i64>,
    mut each: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), String> {
    let coll = client.database(database).collection::<Document>(collection);
    let mut find = coll.find(filter);
    if let Some(sort) = sort {
        find = find.sort(sort);
    }
    if let Some(limit) = limit {
        find = find.limit(limit);
    }
    let place = format!("{database}.{collection}");
    let mut cursor = find.await.map_err(|e| format!("{place}: {e}"))?;
    while cursor
        .advance()
        .await
        .map_err(|e| format!("{place}: {e}"))?
    {
        let doc = cursor
            .deserialize_current()
            .map_err(|e| format!("{place}: {e}"))?;
        if !each(mongodb::bson::Bson::Document(doc).into_relaxed_extjson()) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("mongodb://app:s3cret@db1:27017,db2/?tls=true"),
            "mongodb://app:***@db1:27017,db2/?tls=true"
        );
        assert_eq!(
            redact("mongodb://127.0.0.1:27017"),
            "mongodb://127.0.0.1:27017"
        );
    }

    #[test]
    fn index_specs_keep_field_order_and_direction() {
        let spec = index_spec(&Index {
            fields: vec!["gender".into(), "-registered_date".into()],
            unique: true,
            name: None,
        });
        assert_eq!(
            spec,
            doc! { "key": { "gender": 1, "registered_date": -1 }, "name": "gender_1_registered_date_-1", "unique": true }
        );
    }
}
