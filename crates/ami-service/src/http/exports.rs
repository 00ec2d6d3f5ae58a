//! `/exports`: the dossier list as a file, CSV or XLSX, with the list's
//! filters and need to know.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use super::dossiers::{list_filter, LIST_FILTERS};
use super::error::{ApiError, Problem};
use super::extract::QueryPairs;
use super::{AppState, Caller};
use crate::export::{self, ExportError, ExportFormat, Pages};
use crate::store::DossierFilter;

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match e {
            ExportError::Store(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Export dossiers as CSV
///
/// The dossiers of the list, as CSV: UTF-8 with a byte order mark, `;`
/// between cells, CRLF between rows, one row per dossier in reception
/// order; written as the pages are read.
#[utoipa::path(get, path = "/exports/dossiers.csv", operation_id = "exportCsv", tag = "exports",
    params(
        ("state" = Option<String>, Query, description = "As the list: state ids, one or several separated by commas"),
        ("wave" = Option<String>, Query, description = "As the list: wave numbers, e.g. `1` or `1,3`"),
        ("programme" = Option<String>, Query, description = "As the list: `acv`, `ti` or `acv,ti`"),
        ("awaiting" = Option<String>, Query, description = "As the list: `dar`, `acv`, `ti`, `porteur`, separated by commas"),
        ("overdue" = Option<String>, Query, description = "As the list: `true` keeps the dossiers an agency is late on"),
        ("region" = Option<String>, Query, description = "As the list: région codes of the official geographic code"),
        ("departement" = Option<String>, Query, description = "As the list: département codes"),
        ("sort" = Option<String>, Query, description = "As the list: `received` or `due`"),
        ("q" = Option<String>, Query, description = "As the list: searches commune, porteur, reference and INSEE code")),
    responses(
        (status = 200, description = "The dossiers the caller may read, one row each; `Content-Disposition` names the file after the day and the filters",
            content_type = "text/csv", body = String),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn csv(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let (filter, name) = prepare(&state, &caller, &query, ExportFormat::Csv)?;
    send(&state, filter, &name, ExportFormat::Csv).await
}

/// The file of `filter`'s dossiers in `format`, named `name`: what the API
/// and the pages send.
pub(crate) async fn send(
    state: &AppState,
    filter: DossierFilter,
    name: &str,
    format: ExportFormat,
) -> Result<Response, ApiError> {
    match format {
        ExportFormat::Csv => {
            let pages = Pages::new(state.store.clone(), filter);
            let chunks = export::csv_stream(state.definition.clone(), pages).await?;
            let body = Body::from_stream(chunks.inspect_err(|e| {
                // The answer has begun: all that can be done is to cut it short.
                tracing::error!(error = %e, "CSV export cut short");
            }));
            Ok(file_response(ExportFormat::Csv, name, body))
        }
        ExportFormat::Xlsx => {
            let waves = filter.waves.clone();
            let pages = Pages::new(state.store.clone(), filter);
            let file = export::xlsx_file(state.definition.clone(), waves, pages).await?;
            let size = file.metadata().map_err(ExportError::from)?.len();
            let file = tokio::fs::File::from_std(file);
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            let mut response = file_response(ExportFormat::Xlsx, name, body);
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            Ok(response)
        }
    }
}

/// Export dossiers as an Excel workbook
///
/// The dossiers of the list, as an Excel workbook: one sheet per wave (one
/// sheet when the list picks waves), a frozen header row with filters,
/// dates as dates.
#[utoipa::path(get, path = "/exports/dossiers.xlsx", operation_id = "exportXlsx", tag = "exports",
    params(
        ("state" = Option<String>, Query, description = "As the list: state ids, one or several separated by commas"),
        ("wave" = Option<String>, Query, description = "As the list: wave numbers; without it, one sheet per wave"),
        ("programme" = Option<String>, Query, description = "As the list: `acv`, `ti` or `acv,ti`"),
        ("awaiting" = Option<String>, Query, description = "As the list: `dar`, `acv`, `ti`, `porteur`, separated by commas"),
        ("overdue" = Option<String>, Query, description = "As the list: `true` keeps the dossiers an agency is late on"),
        ("region" = Option<String>, Query, description = "As the list: région codes of the official geographic code"),
        ("departement" = Option<String>, Query, description = "As the list: département codes"),
        ("sort" = Option<String>, Query, description = "As the list: `received` or `due`"),
        ("q" = Option<String>, Query, description = "As the list: searches commune, porteur, reference and INSEE code")),
    responses(
        (status = 200, description = "The dossiers the caller may read, one row each; `Content-Disposition` names the file after the day and the filters",
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn xlsx(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let (filter, name) = prepare(&state, &caller, &query, ExportFormat::Xlsx)?;
    send(&state, filter, &name, ExportFormat::Xlsx).await
}

/// The list to export, read from the query as the list reads it, and the
/// file's name.
fn prepare(
    state: &AppState,
    caller: &Caller,
    query: &QueryPairs,
    format: ExportFormat,
) -> Result<(DossierFilter, String), ApiError> {
    let now = state.now();
    let today = now
        .with_timezone(&state.definition.campaign().time_zone)
        .date_naive();
    let filter = list_filter(&state.definition, Some(&caller.actor), query, &[], today)?;
    let name = export::file_name(&state.definition, now, &filters_of(query), format);
    Ok((filter, name))
}

/// The query's filters, in [`LIST_FILTERS`]' order, for the file name.
pub(crate) fn filters_of(query: &QueryPairs) -> Vec<(String, String)> {
    LIST_FILTERS
        .iter()
        .filter(|name| **name != "sort")
        .filter_map(|name| query.get(name).map(|v| (name.to_string(), v.to_string())))
        .collect()
}

fn file_response(format: ExportFormat, name: &str, body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    // Personal data: kept by no cache on the way.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
