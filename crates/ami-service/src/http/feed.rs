//! The event feed, statistics, the workflow and the health check.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::error::{ApiError, Problem};
use super::extract::QueryPairs;
use super::views::*;
use super::{AppState, Caller};
use crate::store::FeedCursor;

/// Every event of every dossier, in an order a consumer can follow with its
/// cursor without ever missing one.
#[utoipa::path(get, path = "/events", tag = "feed",
    params(("after" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = EventPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Json<EventPage>, ApiError> {
    query.check(&["after", "limit"])?;
    let after = match query.get("after") {
        Some(c) => Some(FeedCursor::decode(c).ok_or_else(|| {
            ApiError::bad_field(
                "after",
                "Curseur invalide : reprenez le next_cursor d'une page précédente.",
            )
        })?),
        None => None,
    };
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_field("limit", "La limite est un entier de 1 à 1000."))?,
        None => 100,
    };
    let readable = state.definition.readable_programmes(&caller.actor.agency);
    let page = state
        .store
        .events_after(after.as_ref(), limit, readable.as_deref())
        .await?;
    Ok(Json(EventPage {
        items: page.items.iter().map(HistoryItem::from).collect(),
        next_cursor: page.next,
    }))
}

/// Counts per wave and state, and per agency the dossiers awaiting it.
#[utoipa::path(get, path = "/stats", tag = "feed",
    responses((status = 200, body = StatsView), (status = 401, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StatsView>, ApiError> {
    let readable = state.definition.readable_programmes(&caller.actor.agency);
    let today = state
        .now()
        .with_timezone(&state.definition.campaign().time_zone)
        .date_naive();
    let stats = state.store.stats(readable.as_deref(), today).await?;
    let mut waves: Vec<WaveStats> = state
        .definition
        .campaign()
        .waves
        .iter()
        .map(|w| WaveStats {
            wave: w.number,
            total: 0,
            states: BTreeMap::new(),
        })
        .collect();
    for c in &stats.by_state {
        if let Some(w) = waves.iter_mut().find(|w| w.wave == c.wave) {
            w.total += c.count;
            w.states.insert(c.state.clone(), c.count);
        }
    }
    let mut awaiting: BTreeMap<String, i64> = state
        .definition
        .agencies()
        .iter()
        .map(|a| (a.id.to_string(), 0))
        .collect();
    awaiting.insert(ami_core::PORTEUR.to_string(), 0);
    for (agency, n) in stats.awaiting {
        awaiting.insert(agency, n);
    }
    let mut overdue: BTreeMap<String, i64> = state
        .definition
        .agencies()
        .iter()
        .map(|a| (a.id.to_string(), 0))
        .collect();
    for (agency, n) in stats.overdue {
        overdue.insert(agency, n);
    }
    Ok(Json(StatsView {
        total: waves.iter().map(|w| w.total).sum(),
        waves,
        // A dossier waits on the porteur exactly while a demande de
        // complément is open.
        complement_demande: awaiting.get(ami_core::PORTEUR).copied().unwrap_or(0),
        awaiting,
        overdue,
    }))
}

/// The active workflow definition.
#[utoipa::path(get, path = "/workflow", tag = "workflow",
    responses((status = 200, description = "The definition as JSON", body = Object),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn workflow(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<ami_core::Definition> {
    Json(state.definition.as_ref().clone())
}

/// The active workflow as a Mermaid state diagram.
#[utoipa::path(get, path = "/workflow.mmd", tag = "workflow",
    responses((status = 200, description = "Mermaid text", body = String, content_type = "text/vnd.mermaid"),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn workflow_mermaid(State(state): State<AppState>, _caller: Caller) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/vnd.mermaid; charset=utf-8")],
        ami_core::to_mermaid(&state.definition),
    )
}

/// 200 when the database answers, 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}
