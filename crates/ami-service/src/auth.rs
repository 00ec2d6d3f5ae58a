//! API tokens: how they are made and shown once, and who a person is.
//!
//! A token reads `ami_<token id>_<secret>`; only the SHA-256 of the secret
//! is stored. Checking a presented token is the store's
//! ([`crate::store::PresentedToken`], re-exported here): a transition checks
//! it on its own connection.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use uuid::Uuid;

pub use crate::store::{hash_secret, PresentedToken};
use crate::store::{Store, StoreError, TokenRecord};

/// The stable identifier of a person: their professional e-mail address,
/// trimmed, in Unicode form C and lower case, so that « Camille.Martin@… »
/// and « camille.martin@… » are one person and two people who share a name
/// are two. The four-eyes rule compares it. `None` when it is not an
/// address (one `@`, something on each side, no space or control
/// character).
pub fn person_id(email: &str) -> Option<String> {
    let email = ami_core::text::nfc(email.trim()).to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.chars().count() <= 254
        && !email.chars().any(char::is_whitespace)
        && !ami_core::text::has_hidden_chars(&email);
    valid.then_some(email)
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("adresse électronique invalide « {0} » : l'adresse professionnelle de la personne est attendue")]
    InvalidEmail(String),
    #[error("{email} est déjà enregistré(e) à l'agence « {agency} » : une personne appartient à une seule agence")]
    OtherAgency { email: String, agency: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token for a person and returns its record and the token text,
/// which is shown once and never stored.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    email: &str,
    agency: &str,
    role: &str,
) -> Result<(TokenRecord, String), TokenError> {
    let person = person_id(email).ok_or_else(|| TokenError::InvalidEmail(email.to_string()))?;
    // A person may hold several tokens (one per device, say), all in the
    // same agency: revoking one leaves the others.
    if let Some(other) = store
        .list_tokens()
        .await?
        .into_iter()
        .find(|t| t.person_id == person && t.agency != agency)
    {
        return Err(TokenError::OtherAgency {
            email: person,
            agency: other.agency,
        });
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let record = TokenRecord {
        id: Uuid::new_v4(),
        person_id: person,
        name: ami_core::text::nfc(name.trim()),
        agency: agency.to_string(),
        role: role.to_string(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    store.insert_token(&record, &hash_secret(&secret)).await?;
    let text = format!("ami_{}_{}", record.id.simple(), secret);
    Ok((record, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_their_email_address_in_one_form() {
        assert_eq!(
            person_id("  Camille.Martin@Lecnam.NET ").as_deref(),
            Some("camille.martin@lecnam.net")
        );
        assert_eq!(
            person_id("e\u{301}lodie@anct.gouv.fr").as_deref(),
            Some("\u{e9}lodie@anct.gouv.fr")
        );
        for bad in [
            "",
            "camille",
            "@lecnam.net",
            "camille@",
            "ca mille@lecnam.net",
            "a@b@c.fr",
            "a@lecnam",
            "a\u{200b}@lecnam.net",
        ] {
            assert_eq!(person_id(bad), None, "{bad:?}");
        }
    }
}
