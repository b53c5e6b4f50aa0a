//! Users and their secrets. A user's `password_hash` is `scram-sha-256$<iterations>$<salt>$<salted
//! password>` (base64), made by `floe hash-password`: the SCRAM-SHA-256 salted password, which is
//! what the server needs to run SCRAM and not the password itself. It still lets whoever reads it
//! log in over SCRAM, so the config file is a secret, like PostgreSQL's `pg_authid`.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// PBKDF2 iterations of every hash (PostgreSQL's default).
pub const ITERATIONS: usize = 4096;
const SCHEME: &str = "scram-sha-256";

/// A new `password_hash` for `password`, with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, ITERATIONS);
    format!("{SCHEME}${ITERATIONS}${}${}", STANDARD.encode(salt), STANDARD.encode(salted))
}

/// A user's SCRAM secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(hash: &str) -> Result<Self, String> {
        let parts: Vec<&str> = hash.split('$').collect();
        let [scheme, iterations, salt, salted] = parts[..] else {
            return Err("is not scram-sha-256$<iterations>$<salt>$<salted password>".into());
        };
        if scheme != SCHEME {
            return Err(format!("uses scheme {scheme:?}; floe reads {SCHEME:?}"));
        }
        if iterations != ITERATIONS.to_string() {
            return Err(format!("has {iterations} iterations; floe's hashes have {ITERATIONS}"));
        }
        let decode = |part: &str, what: &str| STANDARD.decode(part).map_err(|e| format!("has an invalid {what}: {e}"));
        Ok(Secret { salt: decode(salt, "salt")?, salted_password: decode(salted, "salted password")? })
    }
}

/// The `Authorization` header's value, or `""` when there is none (or it is not text).
pub fn authorization(headers: &axum::http::HeaderMap) -> &str {
    headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// The (user, password) of an HTTP basic `Authorization` header value (`Basic base64(u:p)`).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    // Padded, as browsers and curl send it; unpadded, as Go's Flight client (ADBC) does.
    let encoded = encoded.trim().trim_end_matches('=');
    let decoded = String::from_utf8(STANDARD_NO_PAD.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// How long a bearer token stays valid.
pub const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);

/// Bearer tokens handed to users who proved their password (Flight SQL's handshake, the
/// Iceberg REST catalog's OAuth token endpoint), in this server's memory.
#[derive(Debug, Clone, Default)]
pub struct Tokens(std::sync::Arc<std::sync::Mutex<BTreeMap<String, (String, std::time::Instant)>>>);

impl Tokens {
    /// A token for `user`, valid at least half of [`TOKEN_LIFETIME`]: the user's newest when it
    /// is, else a new one (so clients that log in on every connection do not pile tokens up);
    /// expired ones are forgotten.
    pub fn issue(&self, user: &str) -> String {
        let now = std::time::Instant::now();
        let mut tokens = self.0.lock().expect("tokens lock");
        tokens.retain(|_, (_, expires)| *expires > now);
        let fresh = tokens.iter().find(|(_, (holder, expires))| holder == user && *expires > now + TOKEN_LIFETIME / 2);
        if let Some((token, _)) = fresh {
            return token.clone();
        }
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        tokens.insert(token.clone(), (user.to_string(), now + TOKEN_LIFETIME));
        token
    }

    /// The user `token` was issued to, while it is valid.
    pub fn user_of(&self, token: &str) -> Option<String> {
        let tokens = self.0.lock().expect("tokens lock");
        tokens.get(token.trim()).filter(|(_, expires)| *expires > std::time::Instant::now()).map(|(user, _)| user.clone())
    }
}

/// The users who may connect, by name.
#[derive(Debug, Default, Clone)]
pub struct Users(BTreeMap<String, Secret>);

impl Users {
    pub fn new(users: impl IntoIterator<Item = (String, Secret)>) -> Self {
        Self(users.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `password` is `user`'s (HTTP basic authentication; Postgres wire runs SCRAM).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(secret) = self.0.get(user) else { return false };
        let salted = gen_salted_password(password, &secret.salt, ITERATIONS);
        // Compared in full whatever differs first, so the time says nothing.
        salted.len() == secret.salted_password.len() && salted.iter().zip(&secret.salted_password).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn refused(user: &str) -> PgWireError {
    // One answer for an unknown user and a wrong password: names are not to be probed.
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        "28P01".into(),
        format!("password authentication failed for user \"{user}\""),
    )))
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let secret = self.0.get(user).ok_or_else(|| refused(user))?;
        Ok(Password::new(Some(secret.salt.clone()), secret.salted_password.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_reads_back_as_the_secret_of_its_password_and_never_prints_it() {
        let hash = hash_password("pencil");
        let secret: Secret = hash.parse().unwrap();
        assert_eq!(secret.salted_password, gen_salted_password("pencil", &secret.salt, ITERATIONS));
        assert_ne!(hash, hash_password("pencil"), "every hash has its own salt");
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        let users = Users::new([("ana".to_string(), secret)]);
        assert!(users.verify("ana", "pencil"));
        assert!(!users.verify("ana", "pencil2") && !users.verify("bob", "pencil"));
    }

    #[test]
    fn a_malformed_hash_says_what_is_wrong() {
        for (hash, says) in [
            ("pencil", "is not scram-sha-256$"),
            ("md5$4096$YQ==$YQ==", "scheme \"md5\""),
            ("scram-sha-256$1000$YQ==$YQ==", "1000 iterations"),
            ("scram-sha-256$4096$!!$YQ==", "invalid salt"),
        ] {
            let err = hash.parse::<Secret>().unwrap_err();
            assert!(err.contains(says), "{hash}: {err}");
        }
    }

    #[test]
    fn basic_credentials_are_read_padded_or_not() {
        let padded = format!("Basic {}", STANDARD.encode("ana:pencil!"));
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode("ana:pencil!"));
        assert!(padded.ends_with('='), "the example needs padding");
        for header in [padded, unpadded] {
            assert_eq!(basic_credentials(&header), Some(("ana".into(), "pencil!".into())), "{header}");
        }
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn a_token_names_its_user_and_nothing_else_does() {
        let tokens = Tokens::default();
        let token = tokens.issue("ana");
        assert_eq!(tokens.user_of(&token).as_deref(), Some("ana"));
        assert_eq!(tokens.issue("ana"), token, "a fresh token is handed out again");
        assert_ne!(tokens.issue("bob"), token);
        assert_eq!(tokens.user_of("guess"), None);
    }
}
