//! Credential values, resolved only inside the binding proxy: from files (how Kubernetes mounts Secret
//! keys) or from the proxy's environment (local use). Files are re-read when they change, so a rotated
//! Secret applies without a restart. Every secret value ever resolved is handed to the [`Redactor`].

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    sync::{Arc, Mutex},
};

use mcp_guard_crds::{CredentialEntry, ValueSource};

use super::redact::Redactor;

/// A credential could not be resolved. The message names the entry and the source, never a value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("credential `{name}`: {reason}")]
pub struct CredentialError {
    pub name: String,
    pub reason: String,
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified_ns: i64,
}

/// Resolves credential entries, caching file contents until the file changes.
#[derive(Debug)]
pub struct Credentials {
    files: Mutex<HashMap<String, (FileStamp, String)>>,
    redactor: Arc<Redactor>,
}

impl Credentials {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Credentials { files: Mutex::new(HashMap::new()), redactor }
    }

    /// The full value of an entry (prefix included).
    pub fn resolve(&self, entry: &CredentialEntry) -> Result<String, CredentialError> {
        let err = |reason: String| CredentialError { name: entry.name.clone(), reason };
        let secret = match (&entry.value, &entry.value_from) {
            (Some(literal), _) => return Ok(format!("{}{literal}", entry.prefix)),
            (None, Some(ValueSource { file: Some(path), .. })) => self.read_file(path).map_err(err)?,
            (None, Some(ValueSource { env: Some(var), .. })) => std::env::var(var)
                .map_err(|_| err(format!("environment variable {var} is not set (or not UTF-8)")))?,
            _ => return Err(err("no value or valueFrom".into())),
        };
        let secret = secret.trim().to_string();
        if secret.is_empty() {
            return Err(err("the secret value is empty".into()));
        }
        self.redactor.add(&secret);
        Ok(format!("{}{secret}", entry.prefix))
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        let meta = fs::metadata(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let stamp = FileStamp {
            inode: meta.ino(),
            len: meta.len(),
            modified_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        };
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, value)) = files.get(path)
            && *cached == stamp
        {
            return Ok(value.clone());
        }
        let value = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        files.insert(path.to_string(), (stamp, value.clone()));
        Ok(value)
    }

    /// Resolve all entries as (name, value) pairs.
    pub fn resolve_all(&self, entries: &[CredentialEntry]) -> Result<Vec<(String, String)>, CredentialError> {
        entries.iter().map(|e| self.resolve(e).map(|v| (e.name.clone(), v))).collect()
    }

    /// The sources of `entries` that give no value now (a file that cannot be read or is empty, an
    /// environment variable unset or empty), each once, as `path` or `env:NAME`: in Kubernetes, a file
    /// missing from an optional Secret volume is a Secret or key that does not exist.
    pub fn missing<'a>(&self, entries: impl IntoIterator<Item = &'a CredentialEntry>) -> Vec<String> {
        let mut missing = Vec::new();
        for entry in entries {
            if self.resolve(entry).is_ok() {
                continue;
            }
            let source = match &entry.value_from {
                Some(ValueSource { file: Some(path), .. }) => path.clone(),
                Some(ValueSource { env: Some(var), .. }) => format!("env:{var}"),
                _ => continue,
            };
            if !missing.contains(&source) {
                missing.push(source);
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry_file(path: &str) -> CredentialEntry {
        CredentialEntry {
            name: "Authorization".into(),
            value: None,
            value_from: Some(ValueSource { file: Some(path.into()), env: None }),
            prefix: "Bearer ".into(),
        }
    }

    #[test]
    fn missing_names_each_source_that_gives_no_value_and_never_a_value() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-cred-missing-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (present, empty, absent) = (dir.join("present"), dir.join("empty"), dir.join("absent"));
        fs::write(&present, "value-1234\n").unwrap();
        fs::write(&empty, " \n").unwrap();
        let creds = Credentials::new(Arc::new(Redactor::default()));
        let env = |var: &str| CredentialEntry {
            name: "X-Key".into(),
            value: None,
            value_from: Some(ValueSource { file: None, env: Some(var.into()) }),
            prefix: String::new(),
        };
        let literal = CredentialEntry { value: Some("inline".into()), value_from: None, ..env("UNUSED") };
        let entries = [
            entry_file(present.to_str().unwrap()),
            entry_file(empty.to_str().unwrap()),
            entry_file(absent.to_str().unwrap()),
            entry_file(absent.to_str().unwrap()),
            env("MCP_GUARD_TEST_SURELY_UNSET_VARIABLE"),
            literal,
        ];
        let missing = creds.missing(&entries);
        assert_eq!(
            missing,
            vec![
                empty.to_str().unwrap().to_string(),
                absent.to_str().unwrap().to_string(),
                "env:MCP_GUARD_TEST_SURELY_UNSET_VARIABLE".to_string(),
            ]
        );
        assert!(!missing.iter().any(|m| m.contains("value-1234") || m.contains("inline")));
        // The file appears (a Secret created after the pod started): it is no longer missing.
        fs::write(&absent, "late-value\n").unwrap();
        assert!(!creds.missing(&entries[2..3]).iter().any(|m| m.ends_with("absent")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_are_reread_when_they_change_and_every_value_is_redacted() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-cred-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        fs::write(&path, "first-secret-value\n").unwrap();
        let redactor = Arc::new(Redactor::default());
        let creds = Credentials::new(redactor.clone());
        let entry = entry_file(path.to_str().unwrap());
        assert_eq!(creds.resolve(&entry).unwrap(), "Bearer first-secret-value");
        // Rotation: a new file (Kubernetes swaps a symlink; a rename gives a new inode too).
        let tmp = dir.join("token.new");
        fs::write(&tmp, "second-secret-value").unwrap();
        fs::rename(&tmp, &path).unwrap();
        assert_eq!(creds.resolve(&entry).unwrap(), "Bearer second-secret-value");
        assert_eq!(
            redactor.redact("a first-secret-value b second-secret-value"),
            "a [REDACTED] b [REDACTED]"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_sources_name_the_entry_but_not_a_value() {
        let creds = Credentials::new(Arc::new(Redactor::default()));
        let e = creds.resolve(&entry_file("/nonexistent/token")).unwrap_err().to_string();
        assert!(e.starts_with("credential `Authorization`: cannot read /nonexistent/token"), "{e}");
        let env = CredentialEntry {
            name: "TOKEN".into(),
            value: None,
            value_from: Some(ValueSource { file: None, env: Some("MCP_GUARD_SURELY_UNSET_VAR".into()) }),
            prefix: String::new(),
        };
        assert!(
            creds.resolve(&env).unwrap_err().to_string().contains("MCP_GUARD_SURELY_UNSET_VAR is not set")
        );
    }
}
