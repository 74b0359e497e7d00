//! Secrets (webhook URLs, passwords, tokens, SNMP passphrases and communities): read from an environment variable or
//! a file, never from the configuration text, never printed, and compared without leaking where they differ.

use std::fmt;
use std::path::PathBuf;

/// A secret string: usable, but never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret could not be read: the setting at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretProblem {
    /// The setting (`url_env`, `auth_passphrase_file`...).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// The setting is right but the variable or file cannot be read here: the service may still see it.
    pub unreadable: bool,
}

/// The secret given as the environment variable `variable` or the file `path` (trimmed), at most one of them;
/// `fields` names the two settings for the errors. `None` when neither is given.
pub fn read(
    variable: Option<&String>,
    path: Option<&PathBuf>,
    (env_field, file_field): (&str, &str),
) -> Result<Option<Secret>, SecretProblem> {
    let problem =
        |field: &str, message: String, unreadable: bool| SecretProblem { field: field.to_owned(), message, unreadable };
    match (variable, path) {
        (None, None) => Ok(None),
        (Some(variable), None) => std::env::var(variable)
            .map(|v| Some(Secret(v)))
            .map_err(|_| problem(env_field, format!("environment variable {variable} is not set"), true)),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(Secret(s.trim().to_owned())))
            .map_err(|e| problem(file_field, format!("cannot read {}: {e}", path.display()), true)),
        (Some(_), Some(_)) => Err(problem(env_field, format!("give {env_field} or {file_field}, not both"), false)),
    }
}

/// Compares in time independent of where the first difference is and of either length: digests of both are
/// compared, so a guess learns neither the position of its first wrong byte nor the secret's length.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (given, expected) = (Sha256::digest(given), Sha256::digest(expected));
    given.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
    }

    #[test]
    fn a_secret_comes_from_one_place() {
        std::env::set_var("HSMWATCH_TEST_SECRET_READ", "s3cret");
        let variable = "HSMWATCH_TEST_SECRET_READ".to_owned();
        assert_eq!(read(Some(&variable), None, ("a_env", "a_file")).unwrap(), Some(Secret("s3cret".into())));
        let unset = "HSMWATCH_TEST_NEVER_SET".to_owned();
        let problem = read(Some(&unset), None, ("a_env", "a_file")).unwrap_err();
        assert!(problem.unreadable && problem.field == "a_env", "{problem:?}");
        let both = read(Some(&variable), Some(&PathBuf::from("/x")), ("a_env", "a_file")).unwrap_err();
        assert_eq!((both.message.as_str(), both.unreadable), ("give a_env or a_file, not both", false));
        assert_eq!(read(None, None, ("a_env", "a_file")).unwrap(), None);
    }
}
