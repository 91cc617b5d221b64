//! The registry's REST API, the four calls Sluice makes: a schema by id, register a
//! schema under a subject, and check one for compatibility (for the message when
//! registering is refused). Errors are sorted the way a caller acts on them:
//! the registry unreachable or failing (retry), an id or subject it does not have,
//! a schema it refuses, credentials it refuses.

use super::{Auth, RegistryConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The most bytes of one answer read.
const MAX_ANSWER: usize = 8 << 20;

/// A registry client (cheap to clone: one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    urls: Vec<reqwest::Url>,
    auth: Option<Auth>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Unreachable, timed out, 5xx or 429: worth retrying.
    #[error("the schema registry is unavailable: {0}")]
    Unavailable(String),
    /// 404: no such schema id, subject or version.
    #[error("{0}")]
    NotFound(String),
    /// 401 or 403: the credentials are wrong or lack the right.
    #[error("the schema registry refused the credentials ({0})")]
    Denied(String),
    /// 409, 422 and other 4xx: the request (a schema) is refused.
    #[error("the schema registry refused it: {0}")]
    Refused(String),
    /// Its certificate is not trusted (or not for its name): retrying cannot help.
    #[error("the schema registry's certificate is refused: {0} (registry.tls.ca_file names the authorities to trust)")]
    Certificate(String),
}

impl RegistryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Unavailable(_))
    }
}

/// A schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// `AVRO`, `JSON` or `PROTOBUF`.
    pub schema_type: String,
    pub schema: String,
}

impl Client {
    pub fn new(config: &RegistryConfig, base_dir: &Path) -> Result<Client, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(*config.timeout)
            .connect_timeout(*config.timeout);
        if let Some(tls) = &config.tls {
            let tls = crate::tls::client_config(tls.ca_file.as_deref(), base_dir)
                .map_err(|e| format!("registry.{e}"))?;
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot make an HTTP client for the schema registry: {e}"))?;
        let urls = config
            .url
            .split(',')
            .map(|u| {
                reqwest::Url::parse(u.trim())
                    .map_err(|e| format!("registry.url `{}`: {e}", u.trim()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Client {
            http,
            urls,
            auth: config.auth.clone(),
        })
    }

    /// `GET /schemas/ids/{id}`.
    pub async fn schema_by_id(&self, id: u32) -> Result<Registered, RegistryError> {
        let v = self
            .call(
                reqwest::Method::GET,
                &["schemas", "ids", &id.to_string()],
                None,
                None,
            )
            .await
            .map_err(|e| match e {
                RegistryError::NotFound(m) => {
                    RegistryError::NotFound(format!("schema id {id} is not in the registry ({m})"))
                }
                other => other,
            })?;
        let schema = v["schema"].as_str().ok_or_else(|| {
            RegistryError::Refused(format!("schema id {id}: the answer has no `schema`: {v}"))
        })?;
        Ok(Registered {
            schema_type: v["schemaType"].as_str().unwrap_or("AVRO").to_owned(),
            schema: schema.to_owned(),
        })
    }

    /// `POST /subjects/{subject}/versions`: the schema's id (the same schema again
    /// gets the same id). A schema incompatible with the subject's history is
    /// refused with the registry's reasons.
    pub async fn register(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
    ) -> Result<u32, RegistryError> {
        let body = body(schema_type, schema);
        let path = ["subjects", subject, "versions"];
        match self
            .call(reqwest::Method::POST, &path, None, Some(&body))
            .await
        {
            Ok(v) => v["id"]
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    RegistryError::Unavailable(format!(
                        "registering under {subject}: the answer has no id: {v}"
                    ))
                }),
            Err(RegistryError::Refused(message)) => {
                let reasons = self
                    .why_incompatible(subject, &body)
                    .await
                    .unwrap_or_default();
                let reasons = if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join("; "))
                };
                Err(RegistryError::Refused(format!(
                    "subject {subject}: {message}{reasons}"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// The registry's reasons a schema is incompatible with the subject's latest
    /// version (none: compatible, or no history).
    async fn why_incompatible(
        &self,
        subject: &str,
        body: &Value,
    ) -> Result<Vec<String>, RegistryError> {
        let path = ["compatibility", "subjects", subject, "versions", "latest"];
        let v = self
            .call(
                reqwest::Method::POST,
                &path,
                Some("verbose=true"),
                Some(body),
            )
            .await?;
        Ok(v["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// One request to `path` (its segments, percent-encoded by the URL as it joins
    /// them: a subject may hold any character), to each URL in turn while the
    /// registry is unavailable there.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &[&str],
        query: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, RegistryError> {
        let mut last = None;
        for base in &self.urls {
            let mut url = base.clone();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend(path);
            }
            url.set_query(query);
            let mut request = self
                .http
                .request(method.clone(), url)
                .header(reqwest::header::ACCEPT, CONTENT_TYPE);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(body.to_string());
            }
            request = match &self.auth {
                Some(Auth::Basic { username, password }) => {
                    request.basic_auth(username, Some(password))
                }
                Some(Auth::Bearer { token }) => request.bearer_auth(token),
                None => request,
            };
            match answer(base.as_str(), request.send().await).await {
                Err(e @ RegistryError::Unavailable(_)) => last = Some(e),
                done => return done,
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Unavailable("no registry URL".into())))
    }
}

async fn answer(
    base: &str,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<Value, RegistryError> {
    let mut response = sent.map_err(|e| {
        let why = format!("{base}: {}", chain(&e));
        if why.contains("certificate") {
            RegistryError::Certificate(why)
        } else {
            RegistryError::Unavailable(why)
        }
    })?;
    let status = response.status();
    // An answer is a schema or less: one past the cap is refused, not held whole.
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| RegistryError::Unavailable(format!("{base}: reading the answer: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(RegistryError::Refused(format!(
                "{base}: the answer is over {} MiB: no schema is that big",
                MAX_ANSWER >> 20
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(v);
    }
    let message = match (&v["error_code"], v["message"].as_str()) {
        (Value::Number(code), Some(m)) => format!("{status}, error {code}: {m}"),
        _ => format!(
            "{status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ),
    };
    Err(match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound(message),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Denied(message),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
            RegistryError::Unavailable(format!("{base}: {message}"))
        }
        s if s.is_server_error() => RegistryError::Unavailable(format!("{base}: {message}")),
        _ => RegistryError::Refused(message),
    })
}

fn body(schema_type: &str, schema: &str) -> Value {
    if schema_type == "AVRO" {
        json!({ "schema": schema })
    } else {
        json!({ "schema": schema, "schemaType": schema_type })
    }
}

/// An error with its causes (reqwest's own message is "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
