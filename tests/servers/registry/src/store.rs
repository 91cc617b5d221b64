//! What the registry holds, kept in one JSON file replaced whole at each change:
//! schemas by id (shared by every subject that registers the same one), each
//! subject's versions, and the compatibility levels.

use crate::compat::{check, Kind, Level};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schema {
    pub id: u32,
    pub kind: Kind,
    /// As registered (what `GET /schemas/ids/{id}` answers).
    pub text: String,
    /// Its canonical form: two registrations of the same schema are one.
    pub canonical: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Version {
    pub version: u32,
    pub id: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    pub schemas: Vec<Schema>,
    pub subjects: BTreeMap<String, Vec<Version>>,
    pub global: Option<Level>,
    pub levels: BTreeMap<String, Level>,
}

pub struct Store {
    path: Option<PathBuf>,
    pub data: Data,
}

/// A refusal, as the registry's REST API says it: HTTP status, error code, message.
#[derive(Debug)]
pub struct Refusal(pub u16, pub u32, pub String);

impl Refusal {
    pub fn no_subject(subject: &str) -> Self {
        Refusal(404, 40401, format!("Subject '{subject}' not found."))
    }
    pub fn no_version(v: &str) -> Self {
        Refusal(404, 40402, format!("Version {v} not found."))
    }
}

impl Store {
    pub fn open(path: Option<PathBuf>) -> Result<Store, String> {
        let data = match &path {
            Some(p) if p.exists() => {
                let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))?
            }
            _ => Data::default(),
        };
        Ok(Store { path, data })
    }

    fn save(&self) -> Result<(), Refusal> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(&self.data).expect("always serializes");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Refusal(500, 50001, format!("cannot save {}: {e}", path.display())))
    }

    pub fn level(&self, subject: Option<&str>) -> Level {
        subject
            .and_then(|s| self.data.levels.get(s).copied())
            .or(self.data.global)
            .unwrap_or(Level::Backward)
    }

    pub fn set_level(&mut self, subject: Option<&str>, level: Level) -> Result<(), Refusal> {
        match subject {
            Some(s) => {
                self.data.levels.insert(s.to_owned(), level);
            }
            None => self.data.global = Some(level),
        }
        self.save()
    }

    pub fn schema(&self, id: u32) -> Option<&Schema> {
        self.data.schemas.iter().find(|s| s.id == id)
    }

    pub fn versions(&self, subject: &str) -> Result<&Vec<Version>, Refusal> {
        self.data
            .subjects
            .get(subject)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Refusal::no_subject(subject))
    }

    /// `latest`, or a version number.
    pub fn version(&self, subject: &str, which: &str) -> Result<Version, Refusal> {
        let versions = self.versions(subject)?;
        let found = match which {
            "latest" | "-1" => versions.last(),
            n => n
                .parse::<u32>()
                .ok()
                .and_then(|n| versions.iter().find(|v| v.version == n)),
        };
        found.copied().ok_or_else(|| Refusal::no_version(which))
    }

    /// The version of `subject` holding this schema, if any.
    pub fn find(&self, subject: &str, kind: Kind, text: &str) -> Result<Option<Version>, Refusal> {
        let canonical = kind.canonical(text).map_err(|e| Refusal(422, 42201, e))?;
        let versions = self.versions(subject)?;
        Ok(versions.iter().copied().find(|v| {
            self.schema(v.id)
                .is_some_and(|s| s.kind == kind && s.canonical == canonical)
        }))
    }

    /// Whether `text` is compatible with the versions its level compares it to.
    pub fn compatible(
        &self,
        subject: &str,
        kind: Kind,
        text: &str,
        against: Option<Version>,
    ) -> Result<Result<(), String>, Refusal> {
        kind.canonical(text).map_err(|e| Refusal(422, 42201, e))?;
        let level = self.level(Some(subject));
        let existing: Vec<&Schema> = match against {
            Some(v) => self.schema(v.id).into_iter().collect(),
            None => {
                let versions = self.data.subjects.get(subject).cloned().unwrap_or_default();
                let chosen: Vec<Version> = if level.transitive() {
                    versions
                } else {
                    versions.last().copied().into_iter().collect()
                };
                chosen.iter().filter_map(|v| self.schema(v.id)).collect()
            }
        };
        for old in existing {
            if old.kind != kind {
                return Ok(Err(format!(
                    "the subject's schema is {:?}, this one {:?}",
                    old.kind, kind
                )));
            }
            if let Err(why) = check(kind, level, &old.text, text) {
                return Ok(Err(why));
            }
        }
        Ok(Ok(()))
    }

    /// Register `text` under `subject`: its id (an existing one for a schema already
    /// there), or a refusal (invalid 422, incompatible 409).
    pub fn register(&mut self, subject: &str, kind: Kind, text: &str) -> Result<u32, Refusal> {
        let canonical = kind.canonical(text).map_err(|e| Refusal(422, 42201, e))?;
        if let Ok(Some(v)) = self.find(subject, kind, text) {
            return Ok(v.id);
        }
        if let Err(why) = self.compatible(subject, kind, text, None)? {
            return Err(Refusal(
                409,
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {why}"
                ),
            ));
        }
        let id = match self
            .data
            .schemas
            .iter()
            .find(|s| s.kind == kind && s.canonical == canonical)
        {
            Some(s) => s.id,
            None => {
                let id = self.data.schemas.iter().map(|s| s.id).max().unwrap_or(0) + 1;
                self.data.schemas.push(Schema {
                    id,
                    kind,
                    text: text.to_owned(),
                    canonical,
                });
                id
            }
        };
        let versions = self.data.subjects.entry(subject.to_owned()).or_default();
        let version = versions.last().map_or(1, |v| v.version + 1);
        versions.push(Version { version, id });
        self.save()?;
        Ok(id)
    }

    /// Delete a subject: the versions it had.
    pub fn delete(&mut self, subject: &str) -> Result<Vec<u32>, Refusal> {
        let versions = self.versions(subject)?.iter().map(|v| v.version).collect();
        self.data.subjects.remove(subject);
        self.data.levels.remove(subject);
        self.save()?;
        Ok(versions)
    }
}
