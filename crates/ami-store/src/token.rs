//! The check of a presented API token against its stored record, which a
//! transition makes on its own connection.
//!
//! A token reads `ami_<token id>_<secret>`. The id finds the row; only the
//! SHA-256 of the secret is stored, and it is compared in constant time.
//! Making them is the `auth` module's, which uses this one.

use ami_core::{Actor, Definition};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::TokenRecord;

/// A token as parsed from a request; its `Debug` never shows the secret.
pub struct PresentedToken {
    pub id: Uuid,
    secret: String,
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl PresentedToken {
    pub fn parse(token: &str) -> Option<PresentedToken> {
        let rest = token.strip_prefix("ami_")?;
        let (id, secret) = rest.split_once('_')?;
        if secret.len() < 16 {
            return None;
        }
        Some(PresentedToken {
            id: Uuid::try_parse(id).ok()?,
            secret: secret.to_string(),
        })
    }

    /// Whether the secret matches the stored hash, in constant time.
    pub fn matches(&self, stored_sha256_hex: &str) -> bool {
        let presented = hash_secret(&self.secret);
        presented
            .as_bytes()
            .ct_eq(stored_sha256_hex.as_bytes())
            .into()
    }

    /// The person behind this token, given its stored record (`None` when
    /// there is none); otherwise why it is refused.
    /// A token whose agency or role the running definition lacks (it was
    /// made for another one) admits nobody.
    pub fn admit(
        &self,
        def: &Definition,
        stored: Option<(TokenRecord, String)>,
    ) -> Result<Actor, TokenRefusal> {
        let (record, secret_sha256) = stored.ok_or(TokenRefusal::Unknown)?;
        if !self.matches(&secret_sha256) {
            return Err(TokenRefusal::WrongSecret);
        }
        if record.revoked_at.is_some() {
            return Err(TokenRefusal::Revoked);
        }
        record.actor(def).ok_or(TokenRefusal::NotInDefinition)
    }
}

/// Why a presented token admits nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a token (`ami_<id>_<secret>`), or not sent as `Bearer`.
    Malformed,
    /// No token has this id.
    Unknown,
    /// The id is a token's, the secret is not its own.
    WrongSecret,
    /// The token was revoked.
    Revoked,
    /// Its agency or role is not in the running definition (the token was
    /// made for another one).
    NotInDefinition,
}

impl TokenRefusal {
    /// The code a client is told (the problem's `code`): `revoked_token`
    /// for a revoked token, `invalid_token` for any other, so that a guess
    /// learns nothing about which part was wrong.
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Revoked => "revoked_token",
            TokenRefusal::Malformed
            | TokenRefusal::Unknown
            | TokenRefusal::WrongSecret
            | TokenRefusal::NotInDefinition => "invalid_token",
        }
    }
}

/// The SHA-256 of a token's secret (hex), as stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_and_matches_only_its_own_secret() {
        let id = Uuid::new_v4();
        let text = format!("ami_{}_{}", id.simple(), "s3cret-s3cret-s3cret");
        let token = PresentedToken::parse(&text).expect("parses");
        assert_eq!(token.id, id);
        assert!(token.matches(&hash_secret("s3cret-s3cret-s3cret")));
        assert!(!token.matches(&hash_secret("another-secret-value")));
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(PresentedToken::parse("Bearer nope").is_none());
        assert!(PresentedToken::parse(&format!("ami_{}_short", id.simple())).is_none());
    }

    #[test]
    fn a_token_is_refused_for_what_is_wrong_with_it() {
        let def = Definition::ami2();
        let token = PresentedToken::parse(&format!(
            "ami_{}_{}",
            Uuid::new_v4().simple(),
            "s3cret-s3cret-s3cret"
        ))
        .expect("parses");
        let record = TokenRecord {
            id: token.id,
            person_id: "camille.martin@lecnam.net".into(),
            name: "Camille Martin".into(),
            agency: "dar".into(),
            role: "agent".into(),
            created_at: chrono::Utc::now(),
            revoked_at: None,
        };
        let stored =
            |record: &TokenRecord, secret: &str| Some((record.clone(), hash_secret(secret)));
        let admitted = token
            .admit(&def, stored(&record, "s3cret-s3cret-s3cret"))
            .expect("admitted");
        assert_eq!(admitted.id, "camille.martin@lecnam.net");
        assert_eq!(token.admit(&def, None), Err(TokenRefusal::Unknown));
        assert_eq!(
            token.admit(&def, stored(&record, "another-secret-value")),
            Err(TokenRefusal::WrongSecret)
        );
        let revoked = TokenRecord {
            revoked_at: Some(chrono::Utc::now()),
            ..record.clone()
        };
        assert_eq!(
            token.admit(&def, stored(&revoked, "s3cret-s3cret-s3cret")),
            Err(TokenRefusal::Revoked)
        );
        let elsewhere = TokenRecord {
            role: "directeur".into(),
            ..record
        };
        assert_eq!(
            token.admit(&def, stored(&elsewhere, "s3cret-s3cret-s3cret")),
            Err(TokenRefusal::NotInDefinition)
        );
        // What clients are told, as before the enum.
        assert_eq!(TokenRefusal::Revoked.code(), "revoked_token");
        for r in [
            TokenRefusal::Malformed,
            TokenRefusal::Unknown,
            TokenRefusal::WrongSecret,
            TokenRefusal::NotInDefinition,
        ] {
            assert_eq!(r.code(), "invalid_token");
        }
    }
}
