//! The API's one error type and its RFC 9457 problem body.

use ami_core::Rejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{StoreError, TokenRefusal};

/// An RFC 9457 problem, with a stable `code` and, where one field is at
/// fault, its name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:ami:problem:<code>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do, in French.
    pub detail: String,
    /// Stable machine code (the ami-core rejection code where there is one).
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The dossier's current version, on a 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request cannot be read (syntax, type, unknown field or parameter).
    BadRequest {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// 401: no token (`None`), or one that is refused.
    Unauthorized(Option<TokenRefusal>),
    /// 403: the caller's agency or role may not do this.
    Forbidden { code: &'static str, detail: String },
    /// 404
    NotFound { detail: String },
    /// 409: stale `expected_version`.
    Conflict { current: Option<u64> },
    /// 405: the route exists with other methods.
    MethodNotAllowed,
    /// 413
    TooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422: well-formed but not possible now.
    Unprocessable {
        code: String,
        field: Option<String>,
        detail: String,
    },
    /// 503: the database is away; retry later.
    Unavailable,
    /// Any other status with its own code and French title (a file too
    /// large, of a refused type, a range outside it, the file storage away).
    Other {
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// 500: logged with its cause, shown as a generic message.
    Internal(String),
}

impl ApiError {
    pub fn bad_field(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code: "invalid_parameter",
            field: Some(field.to_string()),
            detail: detail.into(),
        }
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            code: "invalid_field".into(),
            field: Some(field.to_string()),
            detail: detail.into(),
        }
    }

    /// 401: the token presented is refused.
    pub fn unauthorized(refusal: TokenRefusal) -> ApiError {
        ApiError::Unauthorized(Some(refusal))
    }

    /// 401: the request presents no token.
    pub fn missing_token() -> ApiError {
        ApiError::Unauthorized(None)
    }

    pub fn dossier_not_found() -> ApiError {
        ApiError::NotFound {
            detail: "Aucun dossier ne porte cet identifiant.".into(),
        }
    }

    pub(crate) fn problem(&self) -> Problem {
        let (status, code, title, detail, field, current_version): (
            StatusCode,
            String,
            &str,
            String,
            Option<String>,
            Option<u64>,
        ) = match self {
            ApiError::BadRequest { code, field, detail } => (
                StatusCode::BAD_REQUEST,
                code.to_string(),
                "Requête invalide",
                detail.clone(),
                field.clone(),
                None,
            ),
            ApiError::Unauthorized(refusal) => (
                StatusCode::UNAUTHORIZED,
                refusal.map_or("missing_token", TokenRefusal::code).into(),
                "Authentification requise",
                match refusal {
                    None => "Jeton absent : ajoutez l'en-tête « Authorization: Bearer <jeton> » (créez un jeton avec « ami token create »).",
                    Some(TokenRefusal::Revoked) => "Ce jeton a été révoqué ; demandez-en un nouveau.",
                    Some(_) => "Jeton invalide ou inconnu.",
                }
                .into(),
                None,
                None,
            ),
            ApiError::Forbidden { code, detail } => (
                StatusCode::FORBIDDEN,
                code.to_string(),
                "Action non autorisée",
                detail.clone(),
                None,
                None,
            ),
            ApiError::NotFound { detail } => (
                StatusCode::NOT_FOUND,
                "not_found".into(),
                "Introuvable",
                detail.clone(),
                None,
                None,
            ),
            ApiError::Conflict { current } => (
                StatusCode::CONFLICT,
                "version_conflict".into(),
                "Version périmée",
                match current {
                    Some(v) => format!(
                        "Le dossier a changé entre-temps : sa version est {v}. Relisez-le et renvoyez l'action avec expected_version = {v} si elle est toujours voulue."
                    ),
                    None => "Le dossier a changé entre-temps. Relisez-le et renvoyez l'action avec sa version actuelle.".into(),
                },
                Some("expected_version".into()),
                *current,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed".into(),
                "Méthode non autorisée",
                "Cette adresse n'accepte pas cette méthode ; voir /api/v1/openapi.json.".into(),
                None,
                None,
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large".into(),
                "Requête trop volumineuse",
                "Le corps de la requête dépasse 64 Kio.".into(),
                None,
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type".into(),
                "Type de contenu non pris en charge",
                "Le corps doit être du JSON, avec l'en-tête Content-Type: application/json.".into(),
                None,
                None,
            ),
            ApiError::Unprocessable { code, field, detail } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code.clone(),
                "Action impossible",
                detail.clone(),
                field.clone(),
                None,
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable".into(),
                "Service momentanément indisponible",
                "La base de données ne répond pas. Rien n'a été enregistré ; réessayez dans quelques secondes.".into(),
                None,
                None,
            ),
            ApiError::Other {
                status,
                code,
                title,
                field,
                detail,
            } => (
                *status,
                code.to_string(),
                *title,
                detail.clone(),
                field.clone(),
                None,
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error".into(),
                "Erreur interne",
                "Une erreur inattendue est survenue ; elle a été journalisée.".into(),
                None,
                None,
            ),
        };
        Problem {
            kind: format!("urn:ami:problem:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            code,
            field,
            current_version,
        }
    }
}

impl ApiError {
    /// The engine's refusal, with its French explanation.
    pub fn refused(r: &Rejection, detail: String) -> ApiError {
        if r.is_forbidden() {
            ApiError::Forbidden {
                code: r.code(),
                detail,
            }
        } else {
            ApiError::Unprocessable {
                code: r.code().into(),
                field: r.field().map(str::to_string),
                detail,
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::dossier_not_found(),
            StoreError::Conflict { current } => ApiError::Conflict { current },
            StoreError::Duplicate => ApiError::Conflict { current: None },
            StoreError::Rejected {
                rejection,
                explanation,
            } => ApiError::refused(&rejection, explanation),
            StoreError::Unauthenticated { code } => ApiError::unauthorized(code),
            StoreError::IdempotencyMismatch => ApiError::Unprocessable {
                code: "idempotency_key_reused".into(),
                field: Some("Idempotency-Key".into()),
                detail: "Cette clé d'idempotence a déjà servi pour une requête différente. Utilisez une nouvelle clé pour une nouvelle requête.".into(),
            },
            StoreError::ArrivalNotFound => ApiError::NotFound {
                detail: "Aucun courrier arrivé ne porte cet identifiant.".into(),
            },
            // A state conflict, like a stale version: the arrival changed
            // since it was read (handled by someone else), or is in
            // quarantine, which only a setting aside ends.
            StoreError::ArrivalHandled { state } => ApiError::Other {
                status: StatusCode::CONFLICT,
                code: "arrival_handled",
                title: "Courrier déjà traité",
                field: None,
                detail: match state {
                    crate::store::ArrivalState::Quarantaine => "Ce courrier est en quarantaine (illisible) : il ne peut qu'être écarté, avec une motivation. Rien n'a été enregistré.".into(),
                    other => format!("Ce courrier arrivé a déjà été traité (état : {other}) : rien n'a été enregistré. Relisez-le."),
                },
            },
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Contention => {
                tracing::warn!("writers blocked one another");
                ApiError::Unavailable
            }
            StoreError::Corrupt(cause) | StoreError::Other(cause) | StoreError::NotAmi(cause) => {
                ApiError::Internal(cause)
            }
        }
    }
}

/// `Retry-After` of a 503, in seconds: long enough for a restarted
/// database or a failover, short enough for a person waiting on a page.
pub const RETRY_AFTER_SECONDS: &str = "5";

/// The challenge of a 401 (RFC 6750 §3): `error="invalid_token"` when a
/// token was presented but is refused (revoked ones included); no error
/// code when none was sent.
fn www_authenticate(refusal: Option<TokenRefusal>) -> &'static str {
    match refusal {
        None => r#"Bearer realm="ami""#,
        Some(_) => r#"Bearer realm="ami", error="invalid_token""#,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Nothing was written and the cause is on the server's side:
            // a client may send the same request again after this.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if let ApiError::Unauthorized(refusal) = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(www_authenticate(refusal)),
            );
        }
        response
    }
}
