//! Extractors whose failures are [`ApiError`]s in French naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{header, request::Parts};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use uuid::Uuid;

use super::error::ApiError;

/// A JSON body: 415 without a JSON content type, 413 over the limit, 400
/// in French naming the field for a syntax error, a wrong type, a missing or
/// unknown field (see [`decode`]). The body must be a JSON object.
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
        match decode::<T>(&bytes) {
            Ok(value) => Ok(ApiJson(value, bytes)),
            Err(e) => Err(ApiError::BadRequest {
                code: e.code,
                field: e.field,
                detail: e.detail,
            }),
        }
    }
}

/// Why a JSON body was refused: `malformed_json` (syntax) or `invalid_body`
/// (shape), the field at fault when there is one, and a French sentence with
/// no English in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub code: &'static str,
    pub field: Option<String>,
    pub detail: String,
}

/// Reads a JSON object into `T`, or says in French what is wrong and where.
/// Nothing may follow the object but whitespace.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    match first {
        None => {
            return Err(BodyError {
                code: "malformed_json",
                field: None,
                detail: "Le corps de la requête est vide ; un objet JSON est attendu.".into(),
            })
        }
        Some(b'{') => {}
        Some(_) => {
            // A broken body is malformed whatever its shape; a well-formed
            // array, text, number or null is the wrong shape.
            let de = &mut serde_json::Deserializer::from_slice(bytes);
            return Err(
                match IgnoredAny::deserialize(&mut *de).and_then(|_| de.end()) {
                    Err(e) => explain(&e, ".", None),
                    Ok(()) => not_an_object(),
                },
            );
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut *de).map_err(|e| {
        // chrono's parse errors do not say which format the type wants:
        // ask the type itself.
        let wanted = chrono_in_french(&message_of(e.inner()))
            .and_then(|_| expected_at::<T>(bytes, e.path()));
        explain(e.inner(), &e.path().to_string(), wanted.as_deref())
    })?;
    de.end().map_err(|e| explain(&e, ".", None))?;
    Ok(value)
}

fn not_an_object() -> BodyError {
    BodyError {
        code: "invalid_body",
        field: None,
        detail: "Le corps de la requête doit être un objet JSON.".into(),
    }
}

/// What serde_json says, without the position it appends.
fn message_of(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_string(),
        None => full,
    }
}

/// A serde_json error in French; `wanted` is what the type at `path`
/// expects, in serde's words, when known otherwise.
fn explain(err: &serde_json::Error, path: &str, wanted: Option<&str>) -> BodyError {
    let syntax = !matches!(err.classify(), serde_json::error::Category::Data);
    let message = message_of(err);
    explain_message(syntax, &message, err.line(), err.column(), path, wanted)
}

/// What the type at `path` of `T` expects, in serde's words ("a formatted
/// date string", "an RFC 3339 formatted date and time string"…): the body
/// is read again with `false` at `path`, and the type's refusal says it.
/// Only on the error path, at most once per request.
fn expected_at<T: DeserializeOwned>(
    bytes: &[u8],
    path: &serde_path_to_error::Path,
) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut body: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut slot = &mut body;
    for segment in path.iter() {
        slot = match segment {
            Segment::Seq { index } => slot.get_mut(*index)?,
            Segment::Map { key } => slot.get_mut(key.as_str())?,
            _ => return None,
        };
    }
    *slot = serde_json::Value::Bool(false);
    let err = serde_path_to_error::deserialize::<_, T>(&body).err()?;
    if err.path().to_string() != path.to_string() {
        return None;
    }
    let message = err.into_inner().to_string();
    let (_, expected) = message
        .strip_prefix("invalid type: ")?
        .rsplit_once(", expected ")?;
    Some(expected.to_string())
}

/// The French for one serde_json / serde / chrono / uuid message. `path` is
/// serde_path_to_error's: `.` for the body itself, `porteur.nom`,
/// `pieces[0].kind`, with `?` where a segment is unknown.
fn explain_message(
    syntax: bool,
    message: &str,
    line: usize,
    column: usize,
    path: &str,
    wanted: Option<&str>,
) -> BodyError {
    let at = (path != "." && !path.is_empty() && !path.contains('?')).then(|| path.to_string());
    if syntax {
        let what = syntax_in_french(message);
        let detail = match &at {
            Some(f) => format!(
                "JSON mal formé dans le champ « {f} » (ligne {line}, colonne {column}) : {what}."
            ),
            None => format!("JSON mal formé (ligne {line}, colonne {column}) : {what}."),
        };
        return BodyError {
            code: "malformed_json",
            field: at,
            detail,
        };
    }
    let invalid = |field: Option<String>, detail: String| BodyError {
        code: "invalid_body",
        field,
        detail,
    };
    // The field a message names, under the path of the object holding it.
    let child = |name: &str| match &at {
        Some(parent) => format!("{parent}.{name}"),
        None => name.to_string(),
    };
    let subject = match &at {
        Some(f) => format!("Le champ « {f} »"),
        None => "Le corps de la requête".to_string(),
    };

    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.strip_suffix('`').unwrap_or(rest);
        let field = child(name);
        let detail = format!("Le champ obligatoire « {field} » est absent.");
        return invalid(Some(field), detail);
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let name = rest.strip_suffix('`').unwrap_or(rest);
        let field = child(name);
        let detail = format!("Le champ « {field} » apparaît deux fois ; gardez-en un seul.");
        return invalid(Some(field), detail);
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, accepted) = split_named(rest);
        // serde_path_to_error's path already ends with the unknown key.
        let field = match &at {
            Some(p) if p == name || p.ends_with(&format!(".{name}")) => p.clone(),
            _ => child(name),
        };
        let accepted = match accepted {
            Some(list) if !list.is_empty() => {
                format!("champs acceptés ici : {}", list.join(", "))
            }
            _ => "aucun champ n'est accepté ici".to_string(),
        };
        let detail = format!("Champ inconnu « {field} » ; {accepted}.");
        return invalid(Some(field), detail);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, accepted) = split_named(rest);
        let accepted = match accepted {
            Some(list) if !list.is_empty() => format!("valeurs acceptées : {}", list.join(", ")),
            _ => "aucune valeur n'est acceptée".to_string(),
        };
        let detail = format!(
            "{subject} ne peut pas valoir « {} » ; {accepted}.",
            shorten(value)
        );
        return invalid(at, detail);
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (got, expected) = match rest.rsplit_once(", expected ") {
                Some((got, expected)) => (got, Some(expected)),
                None => (rest, None),
            };
            let got = unexpected_in_french(got);
            let detail = match expected {
                Some(e) => format!(
                    "{subject} doit être {} ; reçu : {got}.",
                    expected_in_french(e)
                ),
                None => format!("{subject} a une valeur invalide ; reçu : {got}."),
            };
            return invalid(at, detail);
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        let (len, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let got = match len.parse::<u64>() {
            Ok(0) => "une liste vide".to_string(),
            Ok(1) => "une liste d'un élément".to_string(),
            Ok(n) => format!("une liste de {n} éléments"),
            Err(_) => "une liste d'une autre longueur".to_string(),
        };
        let detail = format!(
            "{subject} doit être {} ; reçu : {got}.",
            expected_in_french(expected)
        );
        return invalid(at, detail);
    }
    if let Some(reason) = chrono_in_french(message) {
        let format = match wanted {
            Some(e) => expected_in_french(e),
            None => format!("{DATE} ou {DATE_TIME}"),
        };
        let detail = format!("{subject} doit être {format} ; la valeur reçue {reason}.");
        return invalid(at, detail);
    }
    if let Some(rest) = message.strip_prefix("UUID parsing failed: ") {
        let detail = format!(
            "{subject} doit être {UUID} ; la valeur reçue {}.",
            uuid_in_french(rest)
        );
        return invalid(at, detail);
    }
    // A message from elsewhere: never shown, but what was expected may be.
    let detail = match message.rsplit_once("expected ") {
        Some((_, e)) => format!(
            "{subject} a une valeur invalide ; attendu : {}.",
            expected_in_french(e)
        ),
        None => format!("{subject} a une valeur invalide."),
    };
    invalid(at, detail)
}

const DATE_TIME: &str = "une date et heure RFC 3339, p. ex. 2020-11-06T23:30:00+01:00";
const DATE: &str = "une date AAAA-MM-JJ, p. ex. 2021-01-15";
const UUID: &str = "un identifiant UUID, p. ex. 01a21feb-7c3e-4f9a-9d2b-5e8f6a1c0b3d";

/// `x`, expected `a` or `b` / `x`, expected one of `a`, `b` / `x`, there
/// are no fields: the name and the accepted ones.
fn split_named(rest: &str) -> (&str, Option<Vec<&str>>) {
    if let Some((name, expected)) = rest.rsplit_once("`, expected ") {
        let expected = expected.strip_prefix("one of ").unwrap_or(expected);
        let list = expected
            .split("`, `")
            .flat_map(|part| part.split("` or `"))
            .map(|n| n.trim_matches('`'))
            .filter(|n| !n.is_empty())
            .collect();
        return (name, Some(list));
    }
    match rest.rsplit_once("`, there are no ") {
        Some((name, _)) => (name, None),
        None => (rest.strip_suffix('`').unwrap_or(rest), None),
    }
}

/// User text quoted in a message: at most 60 characters.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}

/// serde_json's syntax and end-of-input messages.
fn syntax_in_french(message: &str) -> &'static str {
    match message {
        "EOF while parsing a value" => "le corps s'arrête là où une valeur est attendue",
        "EOF while parsing a list" => "le corps s'arrête avant la fin d'une liste (« ] » manquant)",
        "EOF while parsing an object" => "le corps s'arrête avant la fin d'un objet (« } » manquant)",
        "EOF while parsing a string" => "le corps s'arrête avant la fin d'un texte (guillemet fermant manquant)",
        "expected value" => "une valeur est attendue ici (texte entre guillemets, nombre, true, false, null, liste ou objet)",
        "expected ident" => "mot inconnu ; seuls true, false et null s'écrivent sans guillemets",
        "expected `\"`" => "un guillemet est attendu",
        "expected `,` or `]`" => "une virgule ou « ] » est attendu dans la liste",
        "expected `,` or `}`" => "une virgule ou « } » est attendu dans l'objet",
        "expected `:`" => "deux-points « : » attendus après le nom du champ",
        "trailing characters" => "caractères en trop après la fin de la valeur",
        "trailing comma" => "virgule en trop avant la fin de la liste ou de l'objet",
        "key must be a string" => "un nom de champ s'écrit entre guillemets",
        "invalid number" => "nombre mal écrit",
        "number out of range" => "nombre trop grand",
        "control character (\\u0000-\\u001F) found while parsing a string" => {
            "caractère de contrôle (retour à la ligne, tabulation…) non échappé dans un texte ; écrivez \\n, \\t…"
        }
        "invalid escape" => {
            "séquence d'échappement invalide ; après « \\ » sont permis \" \\ / b f n r t et uXXXX"
        }
        "invalid unicode code point" => "caractère Unicode invalide, ou octets qui ne sont pas de l'UTF-8",
        "lone leading surrogate in hex escape" => {
            "demi-caractère Unicode (\\uD800 à \\uDFFF) sans l'autre moitié de sa paire"
        }
        "unexpected end of hex escape" => {
            "demi-caractère Unicode (\\uD800 à \\uDBFF) non suivi de sa seconde moitié (\\uDC00 à \\uDFFF)"
        }
        "recursion limit exceeded" => "imbrication trop profonde (plus de 128 niveaux)",
        "invalid value: expected key to be a number in quotes"
        | "float key must be finite (got NaN or +/-inf)" => "nom de champ invalide",
        _ => "syntaxe invalide",
    }
}

/// What serde says it got (`serde::de::Unexpected` and serde_json's `null`).
fn unexpected_in_french(got: &str) -> String {
    let quoted = |prefix: &str| {
        got.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('`'))
            .and_then(|r| r.strip_suffix('`'))
            .map(shorten)
    };
    if let Some(v) = quoted("integer ") {
        return format!("l'entier {v}");
    }
    if let Some(v) = quoted("floating point ") {
        return format!("le nombre {v}");
    }
    if let Some(v) = quoted("boolean ") {
        return format!("le booléen {v}");
    }
    if let Some(v) = quoted("character ") {
        return format!("le caractère « {v} »");
    }
    if let Some(v) = got.strip_prefix("string ") {
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        return format!("le texte « {} »", shorten(v));
    }
    match got {
        "null" | "unit value" => "null",
        "sequence" => "une liste",
        "map" => "un objet",
        "byte array" => "des octets",
        "Option value" => "une valeur facultative",
        "enum" | "unit variant" | "newtype variant" | "tuple variant" | "struct variant" => {
            "une valeur énumérée"
        }
        _ => "une valeur d'un autre type",
    }
    .to_string()
}

/// What a `Visitor::expecting` says, for serde's, chrono's and uuid's types.
fn expected_in_french(expected: &str) -> String {
    let exact = match expected {
        "u64" | "u128" | "usize" => Some("un entier positif"),
        "u8" => Some("un entier positif (au plus 255)"),
        "u16" => Some("un entier positif (au plus 65535)"),
        "u32" => Some("un entier positif (au plus 4294967295)"),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => Some("un entier"),
        "f32" | "f64" => Some("un nombre"),
        "a boolean" => Some("un booléen (true ou false)"),
        "a string" | "a borrowed string" | "string" => Some("un texte"),
        "a character" | "a char" => Some("un seul caractère"),
        "a sequence" | "sequence" => Some("une liste"),
        "a map" | "map" => Some("un objet"),
        "option" => Some("une valeur ou null"),
        "unit" => Some("null"),
        "bytes" | "a byte array" | "byte array" => Some("des octets"),
        "an RFC 3339 formatted date and time string" => Some(DATE_TIME),
        "a formatted date and time string" => Some("une date et heure, p. ex. 2020-11-06T23:30:00"),
        "a formatted date string" => Some(DATE),
        "a formatted time string" => Some("une heure, p. ex. 23:30:00"),
        "a formatted UUID string" | "a UUID string" | "UUID" => Some(UUID),
        "variant identifier" | "field identifier" => Some("l'une des valeurs prévues"),
        _ => None,
    };
    if let Some(e) = exact {
        return e.to_string();
    }
    if expected.starts_with("struct ") {
        return "un objet".into();
    }
    if expected.starts_with("tuple struct ") {
        return "une liste".into();
    }
    if expected.starts_with("enum ") {
        return "l'une des valeurs prévues".into();
    }
    if expected.starts_with("a unix timestamp") {
        return "un horodatage Unix (nombre entier)".into();
    }
    for prefix in [
        "a tuple of size ",
        "an array of length ",
        "an array of size ",
    ] {
        if let Some(n) = expected
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            return match n {
                1 => "une liste d'un élément".into(),
                n => format!("une liste de {n} éléments"),
            };
        }
    }
    if expected.starts_with('`') {
        let list: Vec<&str> = expected
            .strip_prefix("one of ")
            .unwrap_or(expected)
            .split("`, `")
            .flat_map(|p| p.split("` or `"))
            .map(|n| n.trim_matches('`'))
            .collect();
        return format!("l'une des valeurs {}", list.join(", "));
    }
    if let Some(list) = expected.strip_prefix("one of ") {
        return expected_in_french(list);
    }
    "une valeur d'un autre type".into()
}

/// chrono's `ParseError`, said of the value received.
fn chrono_in_french(message: &str) -> Option<&'static str> {
    Some(match message {
        "premature end of input" => "est incomplète",
        "input contains invalid characters" => "contient un caractère inattendu",
        "input is out of range" => {
            "a un élément hors limites (mois, jour, heure, minute ou décalage impossible)"
        }
        "trailing input" => "a des caractères en trop à la fin",
        "no possible date and time matching input" => "ne correspond à aucune date existante",
        "input is not enough for unique date and time" => "est incomplète",
        "bad or unsupported format string" => "n'a pas pu être lue",
        _ => return None,
    })
}

/// uuid's parse errors, said of the value received.
fn uuid_in_french(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid character: found `") {
        if let Some((c, at)) = rest.split_once("` at ") {
            return format!("contient le caractère « {} » en position {at}", shorten(c));
        }
        return "contient un caractère invalide".into();
    }
    if message.starts_with("invalid length") {
        return "n'a pas la bonne longueur (32 chiffres hexadécimaux, en cinq groupes séparés par des tirets)".into();
    }
    if message.starts_with("invalid group count") {
        return "n'a pas cinq groupes séparés par des tirets".into();
    }
    if let Some(rest) = message.strip_prefix("invalid group length in group ") {
        if let Some(group) = rest.split(':').next().and_then(|g| g.parse::<u32>().ok()) {
            return format!("a un groupe de la mauvaise longueur (groupe {})", group + 1);
        }
    }
    "n'est pas un UUID".into()
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
                let accepted = if allowed.is_empty() {
                    "cette adresse n'en prend aucun".to_string()
                } else {
                    format!("paramètres acceptés : {}", allowed.join(", "))
                };
                return Err(ApiError::bad_field(
                    name,
                    format!("Paramètre inconnu « {} » ; {accepted}.", shorten(name)),
                ));
            }
            if self.0[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad_field(
                    name,
                    format!(
                        "Paramètre « {} » répété ; donnez-le une seule fois (plusieurs valeurs se séparent par des virgules).",
                        shorten(name)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A filter that takes one value or several separated by commas
    /// (`state=laureat,refuse`), each one of `known`; absent, an empty list.
    pub fn list(&self, name: &str, known: &[&str]) -> Result<Vec<String>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(Vec::new());
        };
        let mut values = Vec::new();
        for value in raw.split(',') {
            if !known.contains(&value) {
                let shown = if value.is_empty() { "(vide)" } else { value };
                return Err(ApiError::bad_field(
                    name,
                    format!(
                        "Valeur inconnue « {shown} » pour « {name} » ; valeurs possibles : {} (plusieurs séparées par des virgules).",
                        known.join(", ")
                    ),
                ));
            }
            if !values.iter().any(|v| v == value) {
                values.push(value.to_string());
            }
        }
        Ok(values)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::views::{NewDossierBody, PieceBody, TransitionBody};

    /// Words of serde's, chrono's and uuid's English that must never reach
    /// a `detail` (outside the « » that quote a field name or a value).
    const ENGLISH_WORDS: &[&str] = &[
        "expected",
        "while",
        "invalid",
        "value",
        "input",
        "parsing",
        "EOF",
        "found",
        "missing",
        "unknown",
        "duplicate",
        "field",
        "string",
        "integer",
        "floating",
        "point",
        "boolean",
        "sequence",
        "map",
        "struct",
        "formatted",
        "trailing",
        "premature",
        "failed",
        "variant",
        "length",
        "range",
        "escape",
        "surrogate",
        "limit",
        "exceeded",
        "key",
        "must",
        "or",
        "of",
        "at",
        "line",
        "column",
        "an",
        "the",
        "is",
        "no",
    ];

    /// The words of a detail outside « … », split on anything that is not
    /// a letter, a digit or `_` (so `expected_version` is one word).
    fn words_outside_quotes(detail: &str) -> Vec<String> {
        let mut outside = String::new();
        let mut depth = 0usize;
        for c in detail.chars() {
            match c {
                '«' => depth += 1,
                '»' => depth = depth.saturating_sub(1),
                c if depth == 0 => outside.push(c),
                _ => {}
            }
        }
        outside
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn assert_french(e: &BodyError, context: &str) {
        for word in words_outside_quotes(&e.detail) {
            assert!(
                !ENGLISH_WORDS.contains(&word.as_str()),
                "English {word:?} left in {:?} (from {context:?})",
                e.detail
            );
        }
        for phrase in ["invalid type", "at line", "Champ « [", "« . »"] {
            assert!(!e.detail.contains(phrase), "{phrase:?} in {:?}", e.detail);
        }
        assert!(e.detail.ends_with('.'), "{:?}", e.detail);
    }

    /// (syntax, English message, path, code, field, words of the French)
    type Case = (
        bool,
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static [&'static str],
    );

    #[test]
    fn every_message_is_french_and_names_its_field() {
        // (syntax, English message, serde_path_to_error path, code, field,
        //  words the French must contain)
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (true, "EOF while parsing a value", ".", "malformed_json", None, &["JSON mal formé", "ligne 1, colonne 9", "une valeur est attendue"]),
            (true, "EOF while parsing a value", "commune", "malformed_json", Some("commune"), &["« commune »"]),
            (true, "EOF while parsing a list", "programmes", "malformed_json", Some("programmes"), &["« ] » manquant"]),
            (true, "EOF while parsing an object", "?", "malformed_json", None, &["« } » manquant"]),
            (true, "EOF while parsing a string", "porteur.nom", "malformed_json", Some("porteur.nom"), &["guillemet fermant"]),
            (true, "expected value", "commune", "malformed_json", Some("commune"), &["une valeur est attendue"]),
            (true, "expected ident", "verdict", "malformed_json", Some("verdict"), &["true, false et null"]),
            (true, "expected `,` or `]`", "programmes", "malformed_json", Some("programmes"), &["virgule ou « ] »"]),
            (true, "expected `,` or `}`", "pieces[0].?", "malformed_json", None, &["virgule ou « } »"]),
            (true, "expected `:`", ".", "malformed_json", None, &["deux-points"]),
            (true, "trailing characters", ".", "malformed_json", None, &["en trop"]),
            (true, "trailing comma", "?", "malformed_json", None, &["virgule en trop"]),
            (true, "key must be a string", "?", "malformed_json", None, &["entre guillemets"]),
            (true, "invalid number", "expected_version", "malformed_json", Some("expected_version"), &["nombre mal écrit"]),
            (true, "number out of range", "expected_version", "malformed_json", Some("expected_version"), &["nombre trop grand"]),
            (true, "control character (\\u0000-\\u001F) found while parsing a string", "commune", "malformed_json", Some("commune"), &["caractère de contrôle"]),
            (true, "invalid escape", "commune", "malformed_json", Some("commune"), &["échappement invalide"]),
            (true, "invalid unicode code point", "commune", "malformed_json", Some("commune"), &["Unicode invalide"]),
            (true, "lone leading surrogate in hex escape", "commune", "malformed_json", Some("commune"), &["demi-caractère"]),
            (true, "unexpected end of hex escape", "commune", "malformed_json", Some("commune"), &["seconde moitié"]),
            (true, "recursion limit exceeded", ".", "malformed_json", None, &["imbrication trop profonde"]),
            (true, "something serde_json says one day", ".", "malformed_json", None, &["syntaxe invalide"]),
            (false, "invalid type: floating point `1.5`, expected u64", "expected_version", "invalid_body", Some("expected_version"), &["« expected_version » doit être un entier positif", "le nombre 1.5"]),
            (false, "invalid type: string \"1\", expected u64", "expected_version", "invalid_body", Some("expected_version"), &["un entier positif", "le texte « 1 »"]),
            (false, "invalid type: boolean `true`, expected u64", "expected_version", "invalid_body", Some("expected_version"), &["le booléen true"]),
            (false, "invalid type: null, expected u64", "expected_version", "invalid_body", Some("expected_version"), &["reçu : null"]),
            (false, "invalid type: sequence, expected u64", "expected_version", "invalid_body", Some("expected_version"), &["reçu : une liste"]),
            (false, "invalid type: map, expected u64", "expected_version", "invalid_body", Some("expected_version"), &["reçu : un objet"]),
            (false, "invalid value: integer `-1`, expected u64", "expected_version", "invalid_body", Some("expected_version"), &["un entier positif", "l'entier -1"]),
            (false, "invalid value: integer `300`, expected u8", "note", "invalid_body", Some("note"), &["un entier positif", "255"]),
            (false, "invalid value: integer `99999999999`, expected u32", "n", "invalid_body", Some("n"), &["un entier positif"]),
            (false, "invalid type: floating point `1.5`, expected i32", "n", "invalid_body", Some("n"), &["doit être un entier ;"]),
            (false, "invalid type: string \"1\", expected f64", "n", "invalid_body", Some("n"), &["doit être un nombre"]),
            (false, "invalid type: integer `3`, expected a string", "action", "invalid_body", Some("action"), &["« action » doit être un texte", "l'entier 3"]),
            (false, "invalid type: integer `1`, expected a boolean", "b", "invalid_body", Some("b"), &["un booléen"]),
            (false, "invalid type: string \"acv\", expected a sequence", "programmes", "invalid_body", Some("programmes"), &["doit être une liste", "le texte « acv »"]),
            (false, "invalid type: string \"x\", expected a map", "m", "invalid_body", Some("m"), &["doit être un objet"]),
            (false, "invalid type: string \"x\", expected struct PorteurBody", "porteur", "invalid_body", Some("porteur"), &["« porteur » doit être un objet"]),
            (false, "invalid type: integer `1`, expected an RFC 3339 formatted date and time string", "received_at", "invalid_body", Some("received_at"), &["une date et heure RFC 3339, p. ex. 2020-11-06T23:30:00+01:00"]),
            (false, "invalid type: integer `1`, expected a formatted UUID string", "id", "invalid_body", Some("id"), &["un identifiant UUID"]),
            (false, "invalid type: string \"x\", expected something new", "x", "invalid_body", Some("x"), &["une valeur d'un autre type"]),
            (false, "invalid type: character `c`, expected option", "x", "invalid_body", Some("x"), &["le caractère « c »", "une valeur ou null"]),
            (false, "invalid length 1, expected struct PorteurBody with 2 elements", "porteur", "invalid_body", Some("porteur"), &["doit être un objet", "une liste d'un élément"]),
            (false, "invalid length 3, expected a tuple of size 2", "t", "invalid_body", Some("t"), &["une liste de 2 éléments", "une liste de 3 éléments"]),
            (false, "unknown variant `urgent`, expected `favorable` or `reserve`", "verdict", "invalid_body", Some("verdict"), &["ne peut pas valoir « urgent »", "favorable, reserve"]),
            (false, "unknown variant `x`, expected one of `a`, `b`, `c`", "v", "invalid_body", Some("v"), &["a, b, c"]),
            (false, "unknown variant `x`, there are no variants", "v", "invalid_body", Some("v"), &["aucune valeur"]),
            (false, "unknown field `urgent`, expected one of `action`, `expected_version`, `verdict`", "urgent", "invalid_body", Some("urgent"), &["Champ inconnu « urgent »", "action, expected_version, verdict"]),
            (false, "unknown field `siret`, expected `nom` or `email`", "porteur.siret", "invalid_body", Some("porteur.siret"), &["« porteur.siret »", "nom, email"]),
            (false, "unknown field `zz`, expected one of `kind`, `filename`", "pieces[0].zz", "invalid_body", Some("pieces[0].zz"), &["« pieces[0].zz »"]),
            (false, "unknown field `zz`, there are no fields", ".", "invalid_body", Some("zz"), &["aucun champ"]),
            (false, "missing field `commune`", ".", "invalid_body", Some("commune"), &["Le champ obligatoire « commune » est absent"]),
            (false, "missing field `nom`", "porteur", "invalid_body", Some("porteur.nom"), &["« porteur.nom »"]),
            (false, "missing field `filename`", "pieces[1]", "invalid_body", Some("pieces[1].filename"), &["« pieces[1].filename »"]),
            (false, "duplicate field `commune`", ".", "invalid_body", Some("commune"), &["apparaît deux fois"]),
            (false, "duplicate field `nom`", "porteur", "invalid_body", Some("porteur.nom"), &["« porteur.nom » apparaît deux fois"]),
            (false, "premature end of input", "received_at", "invalid_body", Some("received_at"), &["« received_at » doit être une date et heure RFC 3339, p. ex. 2020-11-06T23:30:00+01:00", "incomplète"]),
            (false, "input contains invalid characters", "received_at", "invalid_body", Some("received_at"), &["RFC 3339", "caractère inattendu"]),
            (false, "input is out of range", "received_at", "invalid_body", Some("received_at"), &["RFC 3339", "hors limites"]),
            (false, "trailing input", "received_at", "invalid_body", Some("received_at"), &["RFC 3339", "en trop"]),
            (false, "no possible date and time matching input", "received_at", "invalid_body", Some("received_at"), &["RFC 3339", "aucune date"]),
            (false, "input is not enough for unique date and time", "received_at", "invalid_body", Some("received_at"), &["RFC 3339"]),
            (false, "UUID parsing failed: invalid length: found 3", "id", "invalid_body", Some("id"), &["un identifiant UUID", "longueur"]),
            (false, "UUID parsing failed: invalid character: found `g` at 35", "id", "invalid_body", Some("id"), &["« g » en position 35"]),
            (false, "UUID parsing failed: invalid group count: expected 5, found 2", "id", "invalid_body", Some("id"), &["cinq groupes"]),
            (false, "UUID parsing failed: invalid group length in group 4: expected 12, found 13", "id", "invalid_body", Some("id"), &["groupe 5"]),
            (false, "UUID parsing failed: non-UTF8 input", "id", "invalid_body", Some("id"), &["n'est pas un UUID"]),
            (false, "a message nobody translated", "commune", "invalid_body", Some("commune"), &["« commune » a une valeur invalide."]),
            (false, "a message nobody translated, expected a string", "commune", "invalid_body", Some("commune"), &["valeur invalide ; attendu : un texte"]),
        ];
        for (syntax, english, path, code, field, french) in cases {
            let wanted = english
                .contains("input")
                .then_some("an RFC 3339 formatted date and time string");
            let e = explain_message(*syntax, english, 1, 9, path, wanted);
            assert_eq!(e.code, *code, "code for {english:?}");
            assert_eq!(
                e.field.as_deref(),
                *field,
                "field for {english:?} at {path}"
            );
            for words in *french {
                assert!(
                    e.detail.contains(words),
                    "{words:?} not in {:?} (from {english:?})",
                    e.detail
                );
            }
            assert_french(&e, english);
        }
    }

    fn deposit(extra: &str) -> String {
        let base = r#""commune": "Nevers", "code_insee": "58194", "porteur": {"nom": "Ville de Nevers"}, "programmes": ["acv"]"#;
        if extra.is_empty() {
            format!("{{{base}}}")
        } else {
            format!("{{{base}, {extra}}}")
        }
    }

    fn refusal<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> BodyError {
        let e = decode::<T>(body.as_bytes()).expect_err(body);
        assert_french(&e, body);
        e
    }

    #[test]
    fn real_bodies_get_french_naming_the_field() {
        let ok = decode::<NewDossierBody>(deposit("").as_bytes()).expect("valid deposit");
        assert_eq!(ok.commune, "Nevers");

        // (body, code, field, words of the French)
        #[rustfmt::skip]
        let deposits: Vec<(String, &str, Option<&str>, &[&str])> = vec![
            (deposit(r#""received_at": "2020-11-06""#), "invalid_body", Some("received_at"), &["RFC 3339", "incomplète"]),
            (deposit(r#""received_at": "2020-11-06T23:30""#), "invalid_body", Some("received_at"), &["RFC 3339", "incomplète"]),
            (deposit(r#""received_at": "hier""#), "invalid_body", Some("received_at"), &["caractère inattendu"]),
            (deposit(r#""received_at": "2020-13-06T23:30:00Z""#), "invalid_body", Some("received_at"), &["hors limites"]),
            (deposit(r#""received_at": "2020-11-06T23:30:00Zz""#), "invalid_body", Some("received_at"), &["en trop"]),
            (deposit(r#""received_at": 1604701800"#), "invalid_body", Some("received_at"), &["RFC 3339", "l'entier 1604701800"]),
            (deposit(r#""porteur": {"nom": "V"}"#), "invalid_body", Some("porteur"), &["apparaît deux fois"]),
            (deposit(r#""priorite": "haute""#), "invalid_body", Some("priorite"), &["Champ inconnu « priorite »", "commune, code_insee"]),
            (deposit(r#""pieces": [{"kind": "k", "filename": "f", "size": "12"}]"#), "invalid_body", Some("pieces[0].size"), &["un entier positif"]),
            (deposit(r#""pieces": [{"kind": "k"}]"#), "invalid_body", Some("pieces[0].filename"), &["obligatoire"]),
            (r#"{"commune": "Nevers", "porteur": {"nom": "V", "siret": "1"}}"#.into(), "invalid_body", Some("porteur.siret"), &["nom, email"]),
            (r#"{"commune": "Nevers", "porteur": {"email": "a@b.fr"}}"#.into(), "invalid_body", Some("porteur.nom"), &["obligatoire"]),
            (r#"{"porteur": {"nom": "V"}}"#.into(), "invalid_body", Some("commune"), &["Le champ obligatoire « commune » est absent."]),
            (r#"{"commune": null}"#.into(), "invalid_body", Some("commune"), &["doit être un texte ; reçu : null"]),
            (r#"{"commune": "Nevers", "programmes": "acv"}"#.into(), "invalid_body", Some("programmes"), &["doit être une liste"]),
            (r#"{"commune": "Nevers", "porteur": "Ville"}"#.into(), "invalid_body", Some("porteur"), &["doit être un objet"]),
            (deposit("") + " x", "malformed_json", None, &["en trop"]),
            (deposit("") + "}", "malformed_json", None, &["en trop"]),
            ("".into(), "malformed_json", None, &["vide"]),
            ("  \n ".into(), "malformed_json", None, &["vide"]),
            ("{".into(), "malformed_json", None, &["« } » manquant"]),
            (r#"{"commune": "#.into(), "malformed_json", Some("commune"), &["une valeur est attendue"]),
            (r#"{"commune": "Nev"#.into(), "malformed_json", Some("commune"), &["guillemet fermant"]),
            (r#"{"commune": }"#.into(), "malformed_json", Some("commune"), &["une valeur est attendue"]),
            (r#"{"commune" "Nevers"}"#.into(), "malformed_json", None, &["deux-points"]),
            (r#"{commune: "Nevers"}"#.into(), "malformed_json", None, &["entre guillemets"]),
            (r#"{"commune": "Nevers",}"#.into(), "malformed_json", None, &["virgule en trop"]),
            (r#"{"commune": "Nevers" "code_insee": "1"}"#.into(), "malformed_json", None, &["virgule ou « } »"]),
            (r#"{"programmes": ["acv" "ti"]}"#.into(), "malformed_json", Some("programmes"), &["virgule ou « ] »"]),
            ("{\"commune\": \"Nev\u{1}ers\"}".into(), "malformed_json", Some("commune"), &["caractère de contrôle"]),
            (r#"{"commune": "Nev\qers"}"#.into(), "malformed_json", Some("commune"), &["échappement"]),
            (r#"{"commune": "\uD800\u0041"}"#.into(), "malformed_json", Some("commune"), &["demi-caractère"]),
            (r#"{"commune": "\uD800"}"#.into(), "malformed_json", Some("commune"), &["seconde moitié"]),
            (r#"{"commune": tru}"#.into(), "malformed_json", Some("commune"), &["true, false et null"]),
            (format!("{{\"programmes\": {}", "[".repeat(300)), "invalid_body", Some("programmes[0]"), &["doit être un texte ; reçu : une liste."]),
            (format!("{}{}", "[".repeat(300), "]".repeat(300)), "invalid_body", None, &["objet JSON"]),
            ("[\"Nevers\", \"58194\"]".into(), "invalid_body", None, &["Le corps de la requête doit être un objet JSON."]),
            ("[]".into(), "invalid_body", None, &["objet JSON"]),
            ("\"Nevers\"".into(), "invalid_body", None, &["objet JSON"]),
            ("42".into(), "invalid_body", None, &["objet JSON"]),
            (" null ".into(), "invalid_body", None, &["objet JSON"]),
            ("[1, 2".into(), "malformed_json", None, &["« ] » manquant"]),
            ("not json".into(), "malformed_json", None, &["true, false et null"]),
        ];
        for (body, code, field, french) in &deposits {
            let e = refusal::<NewDossierBody>(body);
            assert_eq!(e.code, *code, "code for {body:?}: {e:?}");
            assert_eq!(e.field.as_deref(), *field, "field for {body:?}: {e:?}");
            for words in *french {
                assert!(
                    e.detail.contains(words),
                    "{words:?} not in {:?} (from {body:?})",
                    e.detail
                );
            }
        }

        #[rustfmt::skip]
        let transitions: &[(&str, &str, Option<&str>, &str)] = &[
            (r#"{"action": "instruire", "expected_version": "1"}"#, "invalid_body", Some("expected_version"), "Le champ « expected_version » doit être un entier positif ; reçu : le texte « 1 »."),
            (r#"{"action": "instruire", "expected_version": -1}"#, "invalid_body", Some("expected_version"), "Le champ « expected_version » doit être un entier positif ; reçu : l'entier -1."),
            (r#"{"action": "instruire", "expected_version": 1.5}"#, "invalid_body", Some("expected_version"), "Le champ « expected_version » doit être un entier positif ; reçu : le nombre 1.5."),
            (r#"{"action": 3, "expected_version": 1}"#, "invalid_body", Some("action"), "Le champ « action » doit être un texte ; reçu : l'entier 3."),
            (r#"{"action": "instruire"}"#, "invalid_body", Some("expected_version"), "Le champ obligatoire « expected_version » est absent."),
            (r#"{"action": "instruire", "expected_version": 1, "urgent": true}"#, "invalid_body", Some("urgent"), "Champ inconnu « urgent » ; champs acceptés ici : action, expected_version, verdict, motivation, comment"),
            (r#"{"action": "instruire", "expected_version": 1e999}"#, "malformed_json", Some("expected_version"), "JSON mal formé dans le champ « expected_version » (ligne 1, colonne 49) : nombre trop grand."),
            (r#"{"action": "instruire", "expected_version": 01}"#, "malformed_json", Some("expected_version"), "JSON mal formé dans le champ « expected_version » (ligne 1, colonne 46) : nombre mal écrit."),
        ];
        for (body, code, field, detail) in transitions {
            let e = refusal::<TransitionBody>(body);
            assert_eq!((e.code, e.field.as_deref()), (*code, *field), "{body}");
            // A prefix: the list of accepted fields grows with the API.
            assert!(e.detail.starts_with(detail), "{:?} for {body}", e.detail);
        }

        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(300), "]".repeat(300));
        let e = refusal::<serde_json::Value>(&deep);
        assert_eq!(e.code, "malformed_json");
        assert!(e.detail.contains("imbrication trop profonde"), "{e:?}");

        let e = refusal::<PieceBody>(r#"{"kind": "b", "filename": "b.xlsx", "size": 1e30}"#);
        assert_eq!(e.field.as_deref(), Some("size"));
        assert!(e.detail.contains("un entier positif"), "{e:?}");
        let e = refusal::<PieceBody>(r#"{"kind": "b", "filename": ["b.xlsx"]}"#);
        assert_eq!(e.field.as_deref(), Some("filename"));
    }

    #[test]
    fn a_date_is_explained_in_the_format_of_its_own_type() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Dates {
            due_on: Option<chrono::NaiveDate>,
            #[serde(default)]
            at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
        }
        let date = "une date AAAA-MM-JJ, p. ex. 2021-01-15";
        let date_time = "une date et heure RFC 3339, p. ex. 2020-11-06T23:30:00+01:00";
        #[rustfmt::skip]
        let cases = [
            (r#"{"due_on": "2021-01"}"#, "due_on", date, "est incomplète"),
            (r#"{"due_on": "15/01/2021"}"#, "due_on", date, "contient un caractère inattendu"),
            (r#"{"due_on": "2021-02-30"}"#, "due_on", date, "hors limites"),
            (r#"{"due_on": "2021-01-15T10:00:00Z"}"#, "due_on", date, "en trop"),
            (r#"{"due_on": 20210115}"#, "due_on", date, "l'entier 20210115"),
            (r#"{"due_on": null, "at": [null, "2020-11-06"]}"#, "at[1]", date_time, "est incomplète"),
            (r#"{"due_on": null, "at": ["2020-11-06T25:00:00Z"]}"#, "at[0]", date_time, "hors limites"),
        ];
        for (body, field, format, reason) in cases {
            let e = refusal::<Dates>(body);
            assert_eq!(e.code, "invalid_body", "{body}");
            assert_eq!(e.field.as_deref(), Some(field), "{body}");
            assert!(e.detail.contains(format), "{format:?} not in {e:?}");
            assert!(e.detail.contains(reason), "{reason:?} not in {e:?}");
        }
        // When the type cannot be asked, both formats are given.
        let e = explain_message(false, "premature end of input", 1, 1, "x", None);
        assert!(
            e.detail.contains(date) && e.detail.contains(date_time),
            "{e:?}"
        );
    }

    #[test]
    fn a_uuid_field_is_explained() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct WithId {
            id: Uuid,
        }
        for (body, words) in [
            (r#"{"id": "abc"}"#, "longueur"),
            (r#"{"id": "01a21feb-7c3e-4f9a-9d2b-5e8f6a1c0b3g"}"#, "« g »"),
            (r#"{"id": 7}"#, "l'entier 7"),
        ] {
            let e = refusal::<WithId>(body);
            assert_eq!(e.code, "invalid_body");
            assert_eq!(e.field.as_deref(), Some("id"), "{body}");
            assert!(e.detail.contains("un identifiant UUID"), "{e:?}");
            assert!(e.detail.contains(words), "{words:?} not in {e:?}");
        }
    }

    #[test]
    fn long_user_text_is_shortened() {
        let long = "x".repeat(500);
        let e = refusal::<TransitionBody>(&format!(
            r#"{{"action": "instruire", "expected_version": "{long}"}}"#
        ));
        assert!(e.detail.chars().count() < 200, "{e:?}");
        assert!(e.detail.contains('…'));
    }
}
