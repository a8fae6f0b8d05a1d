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
    let (path, outside_systemd) = match credential_path(name) {
        CredentialPath::Systemd(path) => (path, false),
        CredentialPath::Packaged(path) => (path, true),
        CredentialPath::Unset => {
            return Err(SecretProblem::unavailable(format!(
                "credential \"{name}\" needs $CREDENTIALS_DIRECTORY, which is unset; run under systemd with LoadCredential={name}:/path/to/token, or use token_file (the packaged unit provides scansync_FILE for each file FILE of {PACKAGED_CREDENTIALS})"
            )))
        }
    };
    let text = read_secret_file(&path).map_err(|e| {
        SecretProblem::unavailable(if outside_systemd {
            format!(
                "cannot read credential {name} from {}: {e}; {}",
                path.display(),
                packaged_hint(name)
            )
        } else {
            format!("cannot read credential {}: {e}", path.display())
        })
    })?;
    Ok(non_empty(
        text,
        &format!("credential {} is empty", path.display()),
    )?)
}

/// The folder the packaged unit loads its credentials from (systemd/scansync.service,
/// `LoadCredential=scansync:/etc/scansync/credentials`): systemd names each file FILE in it
/// `scansync_FILE`.
pub(super) const PACKAGED_CREDENTIALS: &str = "/etc/scansync/credentials";

/// Where a credential is read from.
pub(super) enum CredentialPath {
    /// `$CREDENTIALS_DIRECTORY/NAME`: under systemd, the copy it made for this service.
    Systemd(PathBuf),
    /// A `scansync_FILE` read by a command outside systemd (`test-connection`, which the
    /// alerts suggest, `check-config`, a one-off `scan`): the packaged unit's source file, so
    /// an operator with access to it tests the token the service uses, with no second copy.
    Packaged(PathBuf),
    /// Another name outside systemd: nothing says where it would come from.
    Unset,
}

/// Where credential `name` (no slash) is read from in this process.
pub(super) fn credential_path(name: &str) -> CredentialPath {
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if !dir.is_empty() => CredentialPath::Systemd(PathBuf::from(dir).join(name)),
        _ => match name.strip_prefix("scansync_") {
            Some(file) if !file.is_empty() && !file.contains('/') && file != ".." => {
                CredentialPath::Packaged(Path::new(PACKAGED_CREDENTIALS).join(file))
            }
            _ => CredentialPath::Unset,
        },
    }
}

/// What to do when a packaged credential cannot be read outside systemd: the folder is
/// root's (0700), and the unit's own view of it is one `systemd-run` away.
pub(super) fn packaged_hint(name: &str) -> String {
    format!(
        "$CREDENTIALS_DIRECTORY is unset, so {name} is read where the packaged unit loads it from \
         (readable by root: run it with sudo), or run it with the unit's credentials: \
         sudo systemd-run --pipe --wait -p LoadCredential=scansync:{PACKAGED_CREDENTIALS} \
         scansync COMMAND"
    )
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
