//! Credentials and the bearer token's life cycle.
//!
//! A token is either handed to us ready-made (`ELEVATE_TOKEN`) or obtained by exchanging a username and
//! password at `POST {base}/authenticate`. Tokens live 15 minutes; the lifetime is read from the JWT's `exp`
//! claim when present (decoded without verifying the signature: the server verifies, we only schedule).
//! [`TokenState`] decides when a renewal is due: [`RENEW_MARGIN`] before expiry, or at once after a 401.
//! Each token carries a generation number, so that concurrent windows hit by the same 401 renew only once.

use secrecy::SecretString;
use std::time::{Duration, SystemTime};

/// Lifetime assumed for a token whose JWT carries no `exp` claim (the documented 15 minutes).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Renew this long before the token expires (less for very short-lived tokens, see [`renew_margin`]).
pub const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// Where bearer tokens come from.
pub enum Credentials {
    /// A ready bearer token; it cannot be renewed.
    Token(SecretString),
    /// A username and password exchanged for tokens at `/authenticate`.
    Password {
        /// API user name.
        username: String,
        /// API user password.
        password: SecretString,
        /// Brand name, sent only when set (older versions of the Authentication API require it).
        brand: Option<String>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(REDACTED)"),
            Credentials::Password {
                username, brand, ..
            } => f
                .debug_struct("Credentials::Password")
                .field("username", username)
                .field("password", &"REDACTED")
                .field("brand", brand)
                .finish(),
        }
    }
}

impl Credentials {
    /// Whether new tokens can be obtained (a ready-made token cannot be renewed).
    pub fn can_renew(&self) -> bool {
        matches!(self, Credentials::Password { .. })
    }
}

/// A bearer token with what is known of its lifetime.
pub struct Token {
    /// The token text.
    pub secret: SecretString,
    /// When it stops being valid, if known.
    pub expires_at: Option<SystemTime>,
    /// When it was installed.
    pub issued_at: SystemTime,
    /// Counts tokens: a 401 renews only if it was caused by the current generation.
    pub generation: u64,
}

/// The token currently in use, if any.
#[derive(Default)]
pub struct TokenState {
    current: Option<Token>,
    generation: u64,
}

impl TokenState {
    /// The current token if it is still good at `now` (outside the renewal margin).
    pub fn usable(&self, now: SystemTime) -> Option<&Token> {
        let token = self.current.as_ref()?;
        match token.expires_at {
            Some(expiry) if expiry <= now => None,
            _ => Some(token),
        }
    }

    /// Whether the current token should be replaced before use at `now`.
    pub fn renewal_due(&self, now: SystemTime) -> bool {
        match &self.current {
            None => true,
            Some(Token {
                expires_at: Some(expiry),
                issued_at,
                ..
            }) => now + renew_margin(*expiry, *issued_at) >= *expiry,
            Some(_) => false,
        }
    }

    /// Whether a 401 received with token `generation` still concerns the current token.
    pub fn is_current(&self, generation: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|t| t.generation == generation)
    }

    /// Installs a new token, reading its expiry from the JWT (or assuming the documented lifetime).
    pub fn install(
        &mut self,
        secret: SecretString,
        now: SystemTime,
        assume_lifetime: bool,
    ) -> &Token {
        use secrecy::ExposeSecret;
        self.generation += 1;
        let expires_at = jwt_expiry(secret.expose_secret())
            .or(assume_lifetime.then(|| now + DEFAULT_TOKEN_LIFETIME));
        self.current.insert(Token {
            secret,
            expires_at,
            issued_at: now,
            generation: self.generation,
        })
    }

    /// The current token, whatever its expiry.
    pub fn current(&self) -> Option<&Token> {
        self.current.as_ref()
    }
}

/// The renewal margin for a token: [`RENEW_MARGIN`], or a quarter of its lifetime if that is shorter.
pub fn renew_margin(expires_at: SystemTime, issued_at: SystemTime) -> Duration {
    let lifetime = expires_at
        .duration_since(issued_at)
        .unwrap_or(Duration::ZERO);
    RENEW_MARGIN.min(lifetime / 4)
}

/// Reads the `exp` claim of a JWT without verifying it; `None` if the token is not a JWT or has no `exp`.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<u64>,
    }
    let data = jsonwebtoken::dangerous::insecure_decode::<Claims>(token).ok()?;
    data.claims
        .exp
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(claims: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64.encode(claims),
            b64.encode("signature")
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiry_is_read_from_the_jwt() {
        let cases = [
            (
                jwt(r#"{"exp":1700000900,"sub":"demo"}"#),
                Some(at(1_700_000_900)),
            ),
            (jwt(r#"{"sub":"demo"}"#), None),
            ("not-a-jwt".to_string(), None),
            ("a.b.c".to_string(), None),
        ];
        for (token, want) in cases {
            assert_eq!(jwt_expiry(&token), want, "{token}");
        }
    }

    #[test]
    fn renewal_schedule() {
        let issued = at(1_000);
        let mut state = TokenState::default();
        assert!(state.renewal_due(issued), "no token yet");
        let exp = 1_000 + 900;
        state.install(jwt(&format!(r#"{{"exp":{exp}}}"#)).into(), issued, true);
        let cases = [
            (1_000, false),
            (1_839, false),
            (1_840, true),
            (1_900, true),
            (2_000, true),
        ];
        for (now, due) in cases {
            assert_eq!(state.renewal_due(at(now)), due, "now={now}");
        }
        assert!(state.usable(at(1_899)).is_some());
        assert!(state.usable(at(1_900)).is_none());
    }

    #[test]
    fn short_lived_tokens_renew_at_three_quarters() {
        let issued = at(1_000);
        let mut state = TokenState::default();
        state.install(jwt(r#"{"exp":1008}"#).into(), issued, true);
        assert!(!state.renewal_due(at(1_005)));
        assert!(state.renewal_due(at(1_006)));
    }

    #[test]
    fn opaque_tokens_get_the_documented_lifetime_or_none() {
        let now = at(5_000);
        let mut state = TokenState::default();
        let t = state.install("opaque".to_string().into(), now, true);
        assert_eq!(t.expires_at, Some(now + DEFAULT_TOKEN_LIFETIME));
        let t = state.install("opaque".to_string().into(), now, false);
        assert_eq!(t.expires_at, None);
        assert_eq!(t.generation, 2);
        assert!(state.is_current(2) && !state.is_current(1));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let creds = Credentials::Password {
            username: "bob".into(),
            password: "hunter2".to_string().into(),
            brand: None,
        };
        let token = Credentials::Token("eyJsecret".to_string().into());
        assert!(!format!("{creds:?}{token:?}").contains("hunter2"));
        assert!(!format!("{token:?}").contains("eyJsecret"));
    }
}
