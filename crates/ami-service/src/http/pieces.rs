//! Pièces as files: upload (the raw body, or `multipart/form-data`),
//! download (whole, by range, or 304), and the checks in between: size,
//! the real type read from the first bytes, the name made safe.

use ami_core::text::{is_hidden_char, nfc};
use ami_core::{authorize, decide, Command, DossierId, Effect, FileType, Piece, PieceDef, Target};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use uuid::Uuid;

use super::dossiers::{check_text, readable_dossier, run, Submission};
use super::error::{ApiError, Problem};
use super::extract::{DossierPath, QueryPairs};
use super::{AppState, Caller, Credentials};
use crate::files::FilesError;
use crate::store::{Content, Order};

/// Default of `--max-piece-size`: 20 MiB.
pub const DEFAULT_MAX_PIECE_SIZE: u64 = 20 * 1024 * 1024;

/// The file field of a form, when it is not named after the pièce's kind.
const FILE_FIELD: &str = "fichier";

pub(crate) fn piece_def<'a>(state: &'a AppState, kind: &str) -> Result<&'a PieceDef, ApiError> {
    state.definition.piece(kind).ok_or_else(|| {
        let known: Vec<&str> = state
            .definition
            .pieces()
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        ApiError::invalid_field(
            "kind",
            format!("Pièce inconnue « {kind} » ; pièces : {}.", known.join(", ")),
        )
    })
}

/// `20 Mio (20 971 520 octets)`: the limit as a person reads it.
fn size_in_french(bytes: u64) -> String {
    let grouped = bytes
        .to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\u{202F}");
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} Mio ({grouped} octets)", bytes >> 20)
    } else {
        format!("{grouped} octets")
    }
}

pub(crate) fn files_error(e: FilesError, field: &str) -> ApiError {
    match e {
        FilesError::TooLarge { limit } => ApiError::Other {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "file_too_large",
            title: "Fichier trop volumineux",
            field: Some(field.into()),
            detail: format!(
                "Le fichier dépasse la taille maximale d'une pièce : {}.",
                size_in_french(limit)
            ),
        },
        FilesError::Empty => ApiError::Unprocessable {
            code: "empty_file".into(),
            field: Some(field.into()),
            detail: "Le fichier est vide : envoyez son contenu.".into(),
        },
        FilesError::Body(cause) => ApiError::BadRequest {
            code: "unreadable_body",
            field: Some(field.into()),
            detail: format!(
                "Le fichier n'a pas pu être lu jusqu'au bout ({cause}) ; rien n'a été enregistré."
            ),
        },
        FilesError::Missing(_) | FilesError::Storage(_) | FilesError::Config { .. } => {
            tracing::warn!(error = %e, "file storage");
            files_unavailable()
        }
    }
}

fn files_unavailable() -> ApiError {
    ApiError::Other {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "file_storage_unavailable",
        title: "Service momentanément indisponible",
        field: None,
        detail: "Le stockage des fichiers ne répond pas. Rien n'a été enregistré ; réessayez dans quelques secondes.".into(),
    }
}

/// The extension of a file name, in lower case, if it has one.
fn extension(filename: &str) -> Option<String> {
    let (stem, ext) = filename.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_lowercase())
}

/// The start of every OLE2 compound file: Word 97-2003, Excel 97-2003…
const OLE2: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// What a file is, read from its first bytes; the name only tells a Word
/// 97-2003 file from an Excel one (both are OLE2 containers whose kind is
/// written deep inside). `Err` describes what was found, in French.
fn recognize(head: &[u8], filename: &str) -> Result<&'static FileType, String> {
    let by_id = |id| ami_core::file_type(id).ok_or_else(|| id.to_string());
    if head.starts_with(&OLE2) {
        return match extension(filename).as_deref() {
            Some("xls") => by_id("xls"),
            Some("doc") => by_id("doc"),
            _ => Err("un fichier Office 97-2003 dont l'extension n'est ni .doc ni .xls".into()),
        };
    }
    let found = infer::get(head);
    let id = match found.map(|t| t.mime_type()) {
        Some("application/pdf") => "pdf",
        Some("application/vnd.oasis.opendocument.text") => "odt",
        Some("application/vnd.oasis.opendocument.spreadsheet") => "ods",
        Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document") => "docx",
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet") => "xlsx",
        Some("image/jpeg") => "jpeg",
        Some("image/png") => "png",
        Some(other) => {
            let ext = found.map(|t| t.extension()).unwrap_or_default();
            return Err(format!("un fichier {ext} ({other})"));
        }
        None if std::str::from_utf8(head).is_ok() => {
            return Err("du texte (une page, un script ou un texte brut)".into())
        }
        None => return Err("un contenu de type inconnu".into()),
    };
    by_id(id)
}

/// The accepted types of a pièce, as a person reads them.
fn accepted(piece: &PieceDef) -> String {
    piece
        .accepted_types()
        .map(|t| t.label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checks on what the first bytes say: a type the pièce accepts, and a
/// name whose extension does not say otherwise.
pub(crate) fn check_type(
    piece: &PieceDef,
    head: &[u8],
    filename: &str,
    field: &str,
) -> Result<&'static FileType, ApiError> {
    let refused = |detail: String| ApiError::Other {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: "file_type_refused",
        title: "Type de fichier refusé",
        field: Some(field.into()),
        detail,
    };
    let file_type = recognize(head, filename).map_err(|found| {
        refused(format!(
            "Le fichier « {filename} » est {found}. Pour « {} », types acceptés : {}.",
            piece.label,
            accepted(piece)
        ))
    })?;
    if !piece.accepted_types().any(|t| t.id == file_type.id) {
        return Err(refused(format!(
            "Le fichier « {filename} » est un fichier {}. Pour « {} », types acceptés : {}.",
            file_type.label,
            piece.label,
            accepted(piece)
        )));
    }
    if let Some(ext) = extension(filename) {
        if !file_type.extensions.contains(&ext.as_str()) {
            return Err(ApiError::Unprocessable {
                code: "file_type_mismatch".into(),
                field: Some(field.into()),
                detail: format!(
                    "Le fichier « {filename} » se termine par .{ext} mais son contenu est un fichier {} : renommez-le ou envoyez le bon fichier.",
                    file_type.label
                ),
            });
        }
    }
    Ok(file_type)
}

/// The name kept for a file: its last path component (`../../x.pdf` is
/// `x.pdf`), control and invisible characters replaced, in Unicode form C,
/// 200 characters at most, never hidden; `<kind>.<ext>` when nothing is
/// left.
pub fn safe_filename(raw: Option<&str>, kind: &str, file_type: &FileType) -> String {
    let last = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| if is_hidden_char(c) { '_' } else { c })
        .take(200)
        .collect();
    let trimmed = cleaned.trim();
    // No hidden file: `.budget.pdf` is `budget.pdf`, and `.pdf` alone keeps
    // its extension after the pièce's kind.
    let visible = trimmed.trim_start_matches('.').trim();
    let name = if visible.is_empty() {
        format!("{kind}.{}", file_type.extensions[0])
    } else if trimmed.starts_with('.') && !visible.contains('.') {
        format!("{kind}.{visible}")
    } else {
        visible.to_string()
    };
    nfc(&name)
}

/// Streams a file to storage and checks it; the pièce as the journal will
/// record it. A refused file is removed at once.
pub async fn receive_piece<S, E>(
    state: &AppState,
    piece: &PieceDef,
    filename: Option<&str>,
    body: S,
    field: &str,
) -> Result<Piece, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let received = state
        .files
        .receive(body, state.max_piece_size)
        .await
        .map_err(|e| files_error(e, field))?;
    // The name as sent, for messages; what is kept is made safe below.
    let shown = filename.unwrap_or("");
    let file_type = match check_type(piece, &received.head, shown, field) {
        Ok(t) => t,
        Err(e) => {
            state.files.discard(received).await;
            return Err(e);
        }
    };
    state
        .files
        .keep(&received)
        .await
        .map_err(|e| files_error(e, field))?;
    Ok(Piece {
        kind: piece.id.clone(),
        filename: safe_filename(filename, &piece.id, file_type).into(),
        size: Some(received.size),
        sha256: Some(received.sha256.into()),
        media_type: Some(file_type.media_type.to_string().into()),
    })
}

/// The file name of a `Content-Disposition` value (RFC 6266, `filename*`
/// in RFC 8187 encoding preferred), read by a MIME parser.
fn disposition_filename(value: &HeaderValue) -> Option<String> {
    let mut raw = b"Content-Disposition: ".to_vec();
    raw.extend_from_slice(value.as_bytes());
    raw.extend_from_slice(b"\r\n\r\n");
    let message = mail_parser::MessageParser::new().parse_headers(&raw)?;
    let disposition = mail_parser::MimeHeaders::content_disposition(&message)?;
    disposition
        .attribute("filename")
        .map(str::to_string)
        .filter(|f| !f.is_empty())
}

pub fn is_multipart(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    multer::parse_boundary(value).ok()
}

/// `If-Match: "4"` (or `4`), or `?expected_version=4`; both must agree.
fn expected_version(headers: &HeaderMap, query: &QueryPairs) -> Result<Option<u64>, ApiError> {
    let from_header = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(|s| s.trim().trim_matches('"'))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_field(
                        "If-Match",
                        "L'en-tête If-Match donne la version attendue du dossier, par exemple \"4\".",
                    )
                })?,
        ),
    };
    let from_query = match query.get("expected_version") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_field(
                "expected_version",
                "expected_version est un entier positif : la version lue du dossier.",
            )
        })?),
    };
    match (from_header, from_query) {
        // Each is well formed; that they disagree is the request's meaning.
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid_field(
            "expected_version",
            "If-Match et expected_version donnent deux versions différentes.",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The action that records a pièce in this workflow.
pub(crate) fn attach_action(state: &AppState) -> Result<&ami_core::ActionDef, ApiError> {
    state
        .definition
        .actions()
        .iter()
        .find(|a| a.effect == Effect::AttachPiece)
        .ok_or_else(|| {
            ApiError::invalid_field("kind", "Ce workflow n'accepte pas de pièce ajoutée.")
        })
}

/// Send a pièce's file
///
/// Send a pièce's file (DAR): a new version of it.
///
/// The body is the file; its type is read from its content and must be one
/// the pièce accepts (415). Send the dossier's version as `expected_version`
/// or `If-Match` (409 when stale).
#[utoipa::path(put, path = "/dossiers/{id}/pieces/{kind}", operation_id = "putPiece", tag = "pieces",
    params(("id" = Uuid, Path, description = "Dossier id"),
        ("kind" = String, Path, description = "`dossier_candidature` or `budget_previsionnel`"),
        ("expected_version" = Option<u64>, Query, description = "The dossier's version as read; or `If-Match`"),
        ("comment" = Option<String>, Query, description = "A note for the journal"),
        ("If-Match" = Option<String>, Header, description = "The dossier's version as read, e.g. `\"4\"`"),
        ("Content-Disposition" = Option<String>, Header, description = "`attachment; filename*=UTF-8''budget%20v2.ods`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays give the first answer")),
    request_body(content = Vec<u8>, description = "The file itself (any `Content-Type`; the type is read from the content), or `multipart/form-data` with one file part and optional `expected_version` and `comment` parts",
        content_type = "application/octet-stream"),
    responses((status = 200, body = super::views::DossierView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, description = "Over `--max-piece-size`", body = Problem),
        (status = 415, description = "A type the pièce does not accept", body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_piece(
    State(state): State<AppState>,
    credentials: Credentials,
    DossierPath(id): DossierPath,
    Path(path): Path<(String, String)>,
    query: QueryPairs,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let kind = path.1;
    let piece = piece_def(&state, &kind)?;
    let mut expected = expected_version(&headers, &query)?;
    let mut comment = query.get("comment").map(str::to_string);
    check_text("comment", comment.as_deref())?;
    let action = attach_action(&state)?;

    // Whatever would refuse the pièce is told before its file is read.
    let actor = credentials
        .0
        .admit(
            &state.definition,
            state.store.find_token(credentials.0.id).await?,
        )
        .map_err(ApiError::unauthorized)?;
    let caller = Caller { actor };
    let dossier = readable_dossier(&state, &caller, DossierId(id)).await?;
    let def = &state.definition;
    authorize(def, &action.id, &caller.actor).map_err(|r| ApiError::refused(&r, r.explain(def)))?;
    if expected.is_some_and(|v| v != dossier.version) {
        return Err(ApiError::Conflict {
            current: Some(dossier.version),
        });
    }
    let probe = Command::attach_piece(
        action.id.clone(),
        Piece {
            kind: piece.id.clone(),
            filename: String::new().into(),
            size: Some(1),
            sha256: Some("0".repeat(64).into()),
            media_type: Some(String::new().into()),
        },
    );
    decide(
        def,
        Target::Dossier(&dossier),
        &probe,
        &caller.actor,
        state.now(),
    )
    .map_err(|r| ApiError::refused(&r, r.explain(def)))?;

    let received = match is_multipart(&headers) {
        None => {
            let filename = headers
                .get(header::CONTENT_DISPOSITION)
                .and_then(disposition_filename);
            let stream = body.into_data_stream();
            receive_piece(&state, piece, filename.as_deref(), stream, "file").await?
        }
        Some(boundary) => {
            let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
            let mut received = None;
            while let Some(field) = form.next_field().await.map_err(form_error)? {
                let name = field.name().unwrap_or("").to_string();
                if field.file_name().is_some() || name == FILE_FIELD || name == kind {
                    if received.is_some() {
                        return Err(ApiError::invalid_field(
                            &name,
                            "Un seul fichier par envoi : la pièce en reçoit une nouvelle version.",
                        ));
                    }
                    let filename = field.file_name().map(str::to_string);
                    let piece =
                        receive_piece(&state, piece, filename.as_deref(), field, &name).await?;
                    received = Some(piece);
                    continue;
                }
                let text = field.text().await.map_err(form_error)?;
                match name.as_str() {
                    "expected_version" => {
                        let v = text.trim().parse::<u64>().map_err(|_| {
                            ApiError::bad_field(
                                "expected_version",
                                "expected_version est un entier positif : la version lue du dossier.",
                            )
                        })?;
                        expected = Some(v);
                    }
                    "comment" => {
                        check_text("comment", Some(&text))?;
                        comment = Some(text).filter(|t| !t.trim().is_empty());
                    }
                    other => {
                        return Err(ApiError::bad_field(
                            other,
                            format!("Champ « {other} » inconnu : le formulaire porte un fichier, expected_version et comment."),
                        ))
                    }
                }
            }
            received.ok_or_else(|| {
                ApiError::invalid_field(
                    FILE_FIELD,
                    "Le formulaire ne porte pas de fichier (champ « fichier »).",
                )
            })?
        }
    };

    let fingerprint = serde_json::json!({
        "kind": kind, "filename": received.filename, "sha256": received.sha256,
        "expected_version": expected, "comment": comment,
    })
    .to_string();
    let command = Order {
        action: action.id.as_str().into(),
        comment: comment.as_deref().map(|c| nfc(c).into()),
        content: Content::Piece(received),
        ..Order::default()
    };
    let submission = Submission {
        dossier_id: DossierId(id),
        expected_version: expected,
        command,
        request_line: format!("PUT /dossiers/{id}/pieces/{kind}"),
        body: fingerprint.as_bytes(),
        status: StatusCode::OK,
        arrival: None,
    };
    run(
        &state,
        crate::store::Principal::Token(credentials.0),
        &headers,
        submission,
    )
    .await
}

pub fn form_error(e: multer::Error) -> ApiError {
    ApiError::BadRequest {
        code: "unreadable_form",
        field: None,
        detail: format!("Le formulaire multipart/form-data est illisible : {e}."),
    }
}

/// Download a pièce
///
/// The latest version of a pièce's file.
///
/// With its media type, its name in `Content-Disposition` and its SHA-256 as
/// `ETag`; `Range` and `If-None-Match` are honoured.
#[utoipa::path(get, path = "/dossiers/{id}/pieces/{kind}", operation_id = "getPiece", tag = "pieces",
    params(("id" = Uuid, Path, description = "Dossier id"),
        ("kind" = String, Path, description = "`dossier_candidature` or `budget_previsionnel`"),
        ("Range" = Option<String>, Header, description = "`bytes=0-1023`: one range, answered with 206"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag (SHA-256) already held: 304")),
    responses((status = 200, description = "The file, with its media type, name and `ETag` (its SHA-256)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked"), (status = 304, description = "Not modified"),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, description = "No such dossier for the caller, or no file received", body = Problem),
        (status = 416, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_piece(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
    Path(path): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    download(&state, &caller, id, &path.1, None, &headers).await
}

/// Download a version of a pièce
///
/// One version of a pièce's file (1 is the first received).
#[utoipa::path(get, path = "/dossiers/{id}/pieces/{kind}/versions/{version}", operation_id = "getPieceVersion", tag = "pieces",
    params(("id" = Uuid, Path, description = "Dossier id"),
        ("kind" = String, Path, description = "`dossier_candidature` or `budget_previsionnel`"),
        ("version" = u32, Path, description = "1 for the first file received"),
        ("Range" = Option<String>, Header, description = "`bytes=0-1023`: one range, answered with 206"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag (SHA-256) already held: 304")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked"), (status = 304, description = "Not modified"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 416, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_piece_version(
    State(state): State<AppState>,
    caller: Caller,
    DossierPath(id): DossierPath,
    Path(path): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, kind, version) = path;
    let version = version
        .parse::<u32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            ApiError::bad_field(
                "version",
                "Le numéro de version est un entier à partir de 1.",
            )
        })?;
    download(&state, &caller, id, &kind, Some(version), &headers).await
}

/// RFC 8187 `attr-char`s stay as they are; everything else is encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="…"; filename*=UTF-8''…`: an ASCII name for old
/// clients, the exact one for the others (RFC 6266).
pub fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, ATTR_CHAR);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

pub(crate) async fn download(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    kind: &str,
    version: Option<u32>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let dossier = readable_dossier(state, caller, DossierId(id)).await?;
    let piece = state
        .definition
        .piece(kind)
        .ok_or_else(|| ApiError::NotFound {
            detail: format!("Pièce inconnue « {kind} »."),
        })?;
    let mut versions = dossier.versions(kind);
    let file = match version {
        None => versions.last(),
        Some(n) => versions.find(|f| f.version == n),
    }
    .ok_or_else(|| ApiError::NotFound {
        detail: match version {
            None => format!("Aucun fichier reçu pour « {} ».", piece.label),
            Some(n) => format!("« {} » n'a pas de version {n}.", piece.label),
        },
    })?;

    let etag = format!("\"{}\"", file.sha256);
    let mut response_headers = HeaderMap::new();
    fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    set(&mut response_headers, header::ETAG, &etag);
    set(
        &mut response_headers,
        header::CACHE_CONTROL,
        "private, no-cache",
    );
    set(
        &mut response_headers,
        header::X_CONTENT_TYPE_OPTIONS,
        "nosniff",
    );
    set(
        &mut response_headers,
        header::CONTENT_SECURITY_POLICY,
        "sandbox",
    );
    set(&mut response_headers, header::ACCEPT_RANGES, "bytes");
    let matches_etag = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    if matches_etag {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }

    // One range is served as such; several, or a malformed header, get
    // the whole file (RFC 9110 §14.2 lets a server ignore Range).
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(value) => match http_range_header::parse_range_header(value) {
            Err(_) => None,
            Ok(parsed) => match parsed.validate(file.size) {
                Ok(ranges) if ranges.len() == 1 => {
                    let r = &ranges[0];
                    Some(*r.start()..*r.end() + 1)
                }
                Ok(_) => None,
                Err(_) => {
                    set(
                        &mut response_headers,
                        header::CONTENT_RANGE,
                        &format!("bytes */{}", file.size),
                    );
                    let mut response = ApiError::Other {
                        status: StatusCode::RANGE_NOT_SATISFIABLE,
                        code: "range_not_satisfiable",
                        title: "Plage non satisfaisable",
                        field: Some("Range".into()),
                        detail: format!(
                            "La plage demandée sort du fichier, qui compte {} octets.",
                            file.size
                        ),
                    }
                    .into_response();
                    response.headers_mut().extend(response_headers);
                    return Ok(response);
                }
            },
        },
    };

    let found = state
        .files
        .get(&file.sha256, range.clone())
        .await
        .map_err(|e| {
            if let FilesError::Missing(_) = e {
                tracing::error!(sha256 = %file.sha256, dossier = %dossier.reference, "a pièce's content is missing from the file storage");
            }
            files_error(e, "file")
        })?;
    set(
        &mut response_headers,
        header::CONTENT_TYPE,
        &file.media_type,
    );
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&file.filename),
    );
    let status = match &range {
        Some(r) => {
            set(
                &mut response_headers,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{}", r.start, r.end - 1, file.size),
            );
            set(
                &mut response_headers,
                header::CONTENT_LENGTH,
                &(r.end - r.start).to_string(),
            );
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            set(
                &mut response_headers,
                header::CONTENT_LENGTH,
                &file.size.to_string(),
            );
            StatusCode::OK
        }
    };
    let body = Body::from_stream(found.into_stream().map_err(std::io::Error::other));
    Ok((status, response_headers, body).into_response())
}

/// The URL of a version of a pièce's file.
pub fn version_url(dossier: &ami_core::Dossier, kind: &str, version: u32) -> String {
    format!(
        "/api/v1/dossiers/{}/pieces/{kind}/versions/{version}",
        dossier.id
    )
}

#[cfg(test)]
mod tests {
    use super::safe_filename;

    #[test]
    fn a_file_name_keeps_its_last_component_visible_and_its_extension() {
        let pdf = ami_core::file_type("pdf").expect("pdf");
        let name = |raw: &str| safe_filename(Some(raw), "budget_previsionnel", pdf);
        assert_eq!(name("../../etc/budget.pdf"), "budget.pdf");
        assert_eq!(name("C:\\Users\\x\\budget v2.pdf"), "budget v2.pdf");
        assert_eq!(name(".pdf"), "budget_previsionnel.pdf");
        assert_eq!(name("x/\\.pdf"), "budget_previsionnel.pdf");
        assert_eq!(name(".budget.pdf"), "budget.pdf");
        assert_eq!(name(".."), "budget_previsionnel.pdf");
        assert_eq!(name("bud\u{7}get\u{202E}.pdf"), "bud_get_.pdf");
        assert_eq!(
            safe_filename(None, "dossier_candidature", pdf),
            "dossier_candidature.pdf"
        );
    }
}
