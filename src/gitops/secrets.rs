//! `${{ secrets.NAME }}` templates: finding them in text and resolving them from the environment
//! (`ANOMALYD_SECRET_<NAME>`) or from a file `<NAME>` in the secrets folder.

use std::path::PathBuf;

use thiserror::Error;

/// Prefix of the environment variables that contain secrets. A `-` in a name becomes `_`.
pub const ENV_PREFIX: &str = "ANOMALYD_SECRET_";

/// Sources of secret values.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    /// Folder with one file per secret, named after the secret. `None` uses only the environment.
    pub dir: Option<PathBuf>,
}

/// A secret that could not be resolved. Messages name the secret, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error(
        "secret {name} is not set; set the environment variable {env} or create the file \
         {name} in the secrets folder (--secrets-dir)"
    )]
    Missing { name: String, env: String },
    #[error("secret {name} could not be read from {path}: {reason}")]
    Unreadable {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

/// One template found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Byte range of the whole `${{ ... }}` in the text.
    pub range: std::ops::Range<usize>,
    pub name: String,
}

/// Finds every `${{ secrets.NAME }}` template in a text. Spaces inside the braces are optional
/// and names use `[A-Za-z0-9_-]`.
pub fn find_templates(text: &str) -> Vec<Template> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("${{") {
        let start = from + offset;
        match parse_template(&text[start..]) {
            Some((len, name)) => {
                found.push(Template {
                    range: start..start + len,
                    name,
                });
                from = start + len;
            }
            None => from = start + 3,
        }
    }
    found
}

/// Parses a template at the start of `text`, returning its length and the secret name.
fn parse_template(text: &str) -> Option<(usize, String)> {
    let inner = text.strip_prefix("${{")?;
    let trimmed = inner.trim_start();
    let after_prefix = trimmed.strip_prefix("secrets.")?;
    let name_len = after_prefix
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after_prefix.len());
    let name = &after_prefix[..name_len];
    let tail = after_prefix[name_len..].trim_start();
    if name.is_empty() || !tail.starts_with("}}") {
        return None;
    }
    let consumed = text.len() - tail.len() + 2;
    Some((consumed, name.to_owned()))
}

impl SecretSource {
    /// Resolves one secret by name.
    pub fn get(&self, name: &str) -> Result<String, SecretError> {
        let env = format!("{ENV_PREFIX}{}", name.replace('-', "_"));
        if let Ok(value) = std::env::var(&env) {
            return Ok(value);
        }
        let Some(dir) = &self.dir else {
            return Err(SecretError::Missing {
                name: name.to_owned(),
                env,
            });
        };
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(value) => Ok(value.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SecretError::Missing {
                name: name.to_owned(),
                env,
            }),
            Err(e) => Err(SecretError::Unreadable {
                name: name.to_owned(),
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Replaces every template in `text` with its secret value.
    pub fn resolve(&self, text: &str) -> Result<String, SecretError> {
        let mut resolved = String::with_capacity(text.len());
        let mut last = 0;
        for template in find_templates(text) {
            resolved.push_str(&text[last..template.range.start]);
            resolved.push_str(&self.get(&template.name)?);
            last = template.range.end;
        }
        resolved.push_str(&text[last..]);
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_templates_cases() {
        let cases: [(&str, &[&str]); 6] = [
            ("${{ secrets.A }}", &["A"]),
            ("${{secrets.B_2}}", &["B_2"]),
            ("x${{  secrets.c-d  }}y${{ secrets.E }}", &["c-d", "E"]),
            ("${{ secrets. }}", &[]),
            ("${{ vars.A }}", &[]),
            ("{{ secrets.A }}", &[]),
        ];
        for (text, names) in cases {
            let found: Vec<String> = find_templates(text).into_iter().map(|t| t.name).collect();
            assert_eq!(found, names.to_vec(), "text {text:?}");
        }
    }

    #[test]
    fn resolve_from_file_inside_longer_text() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("gitops-test-token"), "abc\n").expect("write secret");
        let source = SecretSource {
            dir: Some(dir.path().to_owned()),
        };
        let resolved = source.resolve("Bearer ${{ secrets.gitops-test-token }}!");
        assert_eq!(resolved, Ok("Bearer abc!".to_owned()));
    }

    #[test]
    fn missing_secret_names_it() {
        let source = SecretSource::default();
        let err = source
            .resolve("${{ secrets.GITOPS_TEST_ABSENT }}")
            .expect_err("secret is not set");
        assert!(err.to_string().contains("GITOPS_TEST_ABSENT"), "{err}");
        assert!(
            err.to_string()
                .contains("ANOMALYD_SECRET_GITOPS_TEST_ABSENT"),
            "{err}"
        );
    }
}
