use super::*;

pub(super) fn token_from_env(var: &str) -> Result<Secret, SecretProblem> {
    secret_from_env(var, "token", "token_file")
}

/// Reads a secret (`what`: "token", "secret") from environment variable `var`;
/// `alternative` is the key to suggest when the variable is unset.
pub(super) fn secret_from_env(
    var: &str,
    what: &str,
    alternative: &str,
) -> Result<Secret, SecretProblem> {
    let looks_like_name = !var.is_empty()
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !var.starts_with(|c: char| c.is_ascii_digit());
    if !looks_like_name {
        // Not echoed: a value here is more likely a pasted secret than a variable name.
        return Err(SecretProblem::from(format!(
            "is not an environment variable name (letters, digits and _); it names the variable that holds the {what}, not the {what} itself"
        )));
    }
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim_end().to_string())),
        _ => Err(SecretProblem::unavailable(format!(
            "environment variable {var} is unset or empty; export it before starting scansync (or use {alternative})"
        ))),
    }
}

pub(super) fn token_from_credential(name: &str) -> Result<Secret, SecretProblem> {
    if name.is_empty() || name.contains('/') {
        return Err(SecretProblem::from(format!(
            "\"{name}\" is not a credential name (no slashes; the name given to LoadCredential=)"
        )));
    }
    let dir = match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            return Err(SecretProblem::unavailable(format!(
                "credential \"{name}\" needs $CREDENTIALS_DIRECTORY, which is unset; run under systemd with LoadCredential={name}:/path/to/token, or use token_file"
            )))
        }
    };
    let path = dir.join(name);
    let text = read_secret_file(&path).map_err(|e| {
        SecretProblem::unavailable(format!("cannot read credential {}: {e}", path.display()))
    })?;
    Ok(non_empty(
        text,
        &format!("credential {} is empty", path.display()),
    )?)
}

/// Why a secret was not read: its setting is wrong (always an error), or it is not there
/// for this process to read right now (see [`Secrets`]).
#[derive(Debug)]
pub struct SecretProblem {
    pub(super) message: String,
    pub(super) unavailable: bool,
}

impl SecretProblem {
    pub(super) fn unavailable(message: String) -> SecretProblem {
        SecretProblem {
            message,
            unavailable: true,
        }
    }
}

impl From<String> for SecretProblem {
    fn from(message: String) -> SecretProblem {
        SecretProblem {
            message,
            unavailable: false,
        }
    }
}

impl fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Tokens end where their line does: files written with `echo` carry a trailing newline.
pub(super) fn non_empty(text: String, empty_message: &str) -> Result<Secret, String> {
    let token = text.trim_end();
    if token.trim().is_empty() {
        Err(empty_message.to_string())
    } else {
        Ok(Secret::new(token.to_string()))
    }
}

/// The largest secret file read: a token or a key is a line; a path naming something else
/// (`/dev/zero`, a log) must not be read to the end.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret file's text, refused past [`MAX_SECRET_FILE`] bytes.
pub(super) fn read_secret_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(std::io::Error::other(format!(
            "it is larger than {} KiB, which no token or key is",
            MAX_SECRET_FILE / 1024
        )));
    }
    Ok(text)
}
