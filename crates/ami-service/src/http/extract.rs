//! Extractors whose failures are [`ApiError`]s in French naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;

/// A JSON body: 415 without a JSON content type, 413 over the limit, 400
/// naming the field for a syntax error, a wrong type or an unknown field.
pub struct ApiJson<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest {
                    code: "unreadable_body",
                    field: None,
                    detail: "Le corps de la requête n'a pas pu être lu.".into(),
                }
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(value) => Ok(ApiJson(value, bytes)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let (code, detail, field) = if inner.is_syntax() || inner.is_eof() {
                    (
                        "malformed_json",
                        format!(
                            "JSON mal formé (ligne {}, colonne {}) : {}",
                            inner.line(),
                            inner.column(),
                            inner
                                .to_string()
                                .split(" at line ")
                                .next()
                                .unwrap_or_default()
                        ),
                        None,
                    )
                } else {
                    let msg = translate_serde(&inner.to_string());
                    let field = if path == "." { None } else { Some(path) };
                    let detail = match &field {
                        Some(f) => format!("Champ « {f} » : {msg}"),
                        None => format!("Corps invalide : {msg}"),
                    };
                    // An unknown field is named by the message, not the path.
                    let field = field.or_else(|| unknown_field_name(&msg));
                    ("invalid_body", detail, field)
                };
                Err(ApiError::BadRequest {
                    code,
                    field,
                    detail,
                })
            }
        }
    }
}

/// Puts serde's English messages into French for the common cases; the
/// original follows for the rest.
fn translate_serde(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let name = rest.split(',').next().unwrap_or(rest);
        return format!("champ inconnu {name}");
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return format!("champ obligatoire manquant {rest}");
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let rest = rest
            .replace("expected u64", "attendu : un entier positif")
            .replace("expected u8", "attendu : un entier positif")
            .replace("expected a string", "attendu : un texte")
            .replace("expected a sequence", "attendu : une liste")
            .replace("expected struct", "attendu : un objet");
        return format!("type invalide ({rest})");
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        return format!("valeur invalide ({rest})");
    }
    format!("valeur invalide ({msg})")
}

fn unknown_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("champ inconnu ")?;
    Some(rest.trim_matches('`').to_string())
}

/// A dossier id from the path: 400 when it is not a UUID.
pub struct DossierPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for DossierPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_field("id", "Identifiant de dossier illisible."))?;
        let raw = params
            .iter()
            .find(|(name, _)| *name == "id")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        Uuid::try_parse(&raw).map(DossierPath).map_err(|_| {
            ApiError::bad_field(
                "id",
                format!("« {raw} » n'est pas un identifiant de dossier (UUID attendu)."),
            )
        })
    }
}

/// The raw query string as (name, value) pairs, for handlers that check each
/// parameter themselves and name it when it is wrong.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map(QueryPairs)
            .map_err(|_| ApiError::BadRequest {
                code: "invalid_query",
                field: None,
                detail: "Paramètres de requête illisibles.".into(),
            })
    }
}

impl QueryPairs {
    /// Refuses parameters other than `allowed` and repeated ones.
    pub fn check(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (i, (name, _)) in self.0.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_field(
                    name,
                    format!(
                        "Paramètre inconnu « {name} » ; paramètres acceptés : {}.",
                        allowed.join(", ")
                    ),
                ));
            }
            if self.0[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_field(
                    name,
                    format!("Paramètre « {name} » répété."),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
