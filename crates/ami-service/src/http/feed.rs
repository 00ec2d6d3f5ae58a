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

/// Follow every event
///
/// Every event of every dossier, in an order a consumer can follow with its
/// cursor without ever missing one.
#[utoipa::path(get, path = "/events", operation_id = "listEvents", tag = "feed",
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
            .filter(|n| (1..=super::contract::MAX_FEED_LIMIT).contains(n))
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

/// Count dossiers
///
/// Counts per wave and state, and per agency the dossiers awaiting it and
/// those late; of some départements or régions only, and grouped by
/// département or région, when asked.
#[utoipa::path(get, path = "/stats", operation_id = "getStats", tag = "feed",
    params(("region" = Option<String>, Query, description = "Région codes of the official geographic code, e.g. `27` or `27,44`: counts only their dossiers"),
        ("departement" = Option<String>, Query, description = "Département codes, e.g. `58` or `2A,2B`: counts only their dossiers"),
        ("group_by" = Option<String>, Query, description = "`departement` or `region`: adds the counts of each")),
    responses((status = 200, body = StatsView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Json<StatsView>, ApiError> {
    let departements = super::dossiers::departements_of(&query)?;
    let group_by = match query.get("group_by") {
        None => None,
        Some(g @ ("departement" | "region")) => Some(g),
        Some(other) => {
            return Err(ApiError::bad_field(
                "group_by",
                format!(
                    "Regroupement inconnu « {other} » ; valeurs possibles : departement, region."
                ),
            ))
        }
    };
    let readable = state.definition.readable_programmes(&caller.actor.agency);
    let today = state
        .now()
        .with_timezone(&state.definition.campaign().time_zone)
        .date_naive();
    // The kept counts answer the whole campaign at once; a part of it, or
    // its counts per place, are counted from the dossiers.
    let stats = if departements.is_none() && group_by.is_none() {
        state.store.stats(readable.as_deref(), today).await?
    } else {
        state
            .store
            .stats_of_departements(readable.as_deref(), today, departements.as_deref())
            .await?
    };
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
    let places = |region_of: bool| -> Vec<PlaceStats> {
        let mut places: BTreeMap<String, PlaceStats> = BTreeMap::new();
        for c in &stats.by_departement {
            let departement = ami_core::departement(&c.departement);
            let (code, nom, region) = match (region_of, departement) {
                (true, Some(d)) => (
                    d.region.to_string(),
                    ami_core::region(d.region)
                        .map_or("", |r| r.name)
                        .to_string(),
                    None,
                ),
                (false, Some(d)) => (
                    d.code.to_string(),
                    d.name.to_string(),
                    Some(d.region.to_string()),
                ),
                // A code the official geographic code does not know (a
                // dossier deposited before codes were checked) is counted
                // under itself.
                (_, None) => (c.departement.clone(), String::new(), None),
            };
            let place = places.entry(code.clone()).or_insert_with(|| PlaceStats {
                code,
                nom,
                region,
                total: 0,
                waves: BTreeMap::new(),
                states: BTreeMap::new(),
            });
            place.total += c.count;
            *place.waves.entry(c.wave.to_string()).or_default() += c.count;
            *place.states.entry(c.state.clone()).or_default() += c.count;
        }
        places.into_values().collect()
    };
    Ok(Json(StatsView {
        total: waves.iter().map(|w| w.total).sum(),
        waves,
        // A dossier waits on the porteur exactly while a demande de
        // complément is open.
        complement_demande: awaiting.get(ami_core::PORTEUR).copied().unwrap_or(0),
        awaiting,
        overdue,
        departements: (group_by == Some("departement")).then(|| places(false)),
        regions: (group_by == Some("region")).then(|| places(true)),
    }))
}

/// Read the workflow definition
///
/// The active workflow definition.
///
/// The definition the service runs, with its states, actions and their rules,
/// verdicts, pièces, programmes and the campaign's waves: the same values the
/// document's enums list.
#[utoipa::path(get, path = "/workflow", operation_id = "getWorkflow", tag = "workflow",
    responses((status = 200, description = "The definition as JSON", body = Object),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn workflow(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<ami_core::Definition> {
    Json(state.definition.as_ref().clone())
}

/// Draw the workflow
///
/// The active workflow as a Mermaid state diagram.
///
/// A Mermaid `stateDiagram-v2` of the active definition, to paste in a
/// Markdown document.
#[utoipa::path(get, path = "/workflow.mmd", operation_id = "getWorkflowDiagram", tag = "workflow",
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
