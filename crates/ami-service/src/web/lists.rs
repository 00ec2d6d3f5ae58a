//! « À traiter » (the dossiers awaiting the person's agency) and « Tous les
//! dossiers » (DAR): filters, search, counts, pages by cursor.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::{error_page, format, render, state_badge, Layout, SignedIn};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::{DossierFilter, ListCursor, ListOrder};

/// Rows per page.
const PAGE: u32 = 50;
/// Counts stop here: « plus de 1 000 dossiers ».
const COUNT_CAP: u32 = 1000;

/// A dossier as a line of a list.
pub struct Row {
    pub id: String,
    pub reference: String,
    pub commune: String,
    pub programmes: String,
    pub wave: u8,
    pub state_label: String,
    pub state_badge: &'static str,
    pub received: String,
    pub waiting: String,
    pub awaiting: String,
    /// The earliest last day of the deadlines awaited, if any.
    pub due: String,
    pub overdue: bool,
}

/// An option of a filter.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "liste.html")]
struct ListPage {
    layout: Layout,
    title: &'static str,
    intro: String,
    caption: &'static str,
    action: &'static str,
    count: String,
    states: Vec<Choice>,
    waves: Vec<Choice>,
    programmes: Vec<Choice>,
    q: String,
    /// « En retard seulement » is ticked.
    late_only: bool,
    orders: Vec<Choice>,
    /// The query of the exports (the list's filters).
    export_query: String,
    /// `a-traiter` or `dossiers`: the export of this list.
    export_name: &'static str,
    error: Option<String>,
    rows: Vec<Row>,
    /// The query of the next page (filters kept), if any.
    next: Option<String>,
    /// The feed position the page's live updates start from.
    live_from: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    etat: String,
    #[serde(default)]
    vague: String,
    #[serde(default)]
    programme: String,
    #[serde(default)]
    q: String,
    /// `1`: only the dossiers late on their deadline.
    #[serde(default)]
    retard: String,
    /// `echeance` or `reception`; by default, a queue by due date and the
    /// whole list by reception.
    #[serde(default)]
    tri: String,
    #[serde(default)]
    apres: String,
}

pub async fn queue(
    State(state): State<AppState>,
    signed: SignedIn,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    list(
        &state,
        &signed,
        query.map(|q| q.0).unwrap_or_default(),
        true,
    )
    .await
}

pub async fn all(
    State(state): State<AppState>,
    signed: SignedIn,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if !signed.reads_all(&state) {
        return error_page(
            Some(signed.layout(&state, "")),
            ApiError::NotFound {
                detail: String::new(),
            },
        );
    }
    list(
        &state,
        &signed,
        query.map(|q| q.0).unwrap_or_default(),
        false,
    )
    .await
}

/// The dossiers a list page's query asks for, as `signed` may read them,
/// and the first thing wrong in the query (the list then shows the rest).
fn page_filter(
    state: &AppState,
    signed: &SignedIn,
    query: &ListQuery,
    queue: bool,
) -> (DossierFilter, Option<String>) {
    let def = &state.definition;
    let mut filter = DossierFilter {
        limit: PAGE,
        readable: signed.readable(state),
        ..DossierFilter::default()
    };
    if queue {
        filter.awaiting_columns =
            crate::store::awaiting_columns(def, &[signed.actor.agency.to_string()]);
        if filter.awaiting_columns.is_empty() {
            // An agency that takes no next step: nothing ever waits on it.
            filter.awaiting_columns = vec![String::new()];
        }
    }
    let mut error = None;
    let mut refuse = |message: &str| {
        error.get_or_insert_with(|| message.to_string());
    };
    if !query.etat.is_empty() {
        if def.states().iter().any(|s| s.id == query.etat) {
            filter.states = vec![query.etat.clone()];
        } else {
            refuse("Cet état n'existe pas : choisissez-en un dans la liste.");
        }
    }
    if !query.vague.is_empty() {
        match query.vague.parse::<u8>() {
            Ok(w) if def.campaign().waves.iter().any(|v| v.number == w) => filter.waves = vec![w],
            _ => refuse("Cette vague n'existe pas : choisissez-en une dans la liste."),
        }
    }
    if !query.programme.is_empty() {
        if def.programmes().iter().any(|p| p.id == query.programme) {
            filter.programmes = vec![query.programme.clone()];
        } else {
            refuse("Ce programme n'existe pas : choisissez-en un dans la liste.");
        }
    }
    match query.retard.as_str() {
        "" => {}
        "1" => {
            filter.overdue_on = Some(
                state
                    .now()
                    .with_timezone(&def.campaign().time_zone)
                    .date_naive(),
            )
        }
        _ => refuse("Cochez « En retard seulement » ou laissez la case vide."),
    }
    filter.order = match query.tri.as_str() {
        "" if queue => ListOrder::Due,
        "" => ListOrder::Received,
        "echeance" => ListOrder::Due,
        "reception" => ListOrder::Received,
        _ => {
            refuse("Cet ordre n'existe pas : choisissez-en un dans la liste.");
            ListOrder::Received
        }
    };
    let q = query.q.trim();
    if q.chars().count() > 200 || q.chars().any(char::is_control) {
        refuse("La recherche compte au plus 200 caractères.");
    } else if !q.is_empty() {
        filter.q = Some(q.to_string());
    }
    if !query.apres.is_empty() {
        match ListCursor::decode(&query.apres).filter(|c| c.fits(filter.order)) {
            Some(c) => filter.after = Some(c),
            None => refuse("Ce lien de page n'est plus valable : la liste reprend au début."),
        }
    }
    (filter, error)
}

/// A list's filters (not its page) that are set, as (parameter, value).
fn filter_pairs(query: &ListQuery) -> Vec<(&'static str, &str)> {
    [
        ("etat", &query.etat),
        ("vague", &query.vague),
        ("programme", &query.programme),
        ("retard", &query.retard),
        ("tri", &query.tri),
        ("q", &query.q),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k, v.as_str()))
    .collect()
}

/// The query string of a list's filters, as the page's links carry them.
fn filters_query(query: &ListQuery) -> form_urlencoded::Serializer<'static, String> {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    pairs.extend_pairs(filter_pairs(query));
    pairs
}

async fn list(state: &AppState, signed: &SignedIn, query: ListQuery, queue: bool) -> Response {
    let def = &state.definition;
    let readable = signed.readable(state);
    let (filter, error) = page_filter(state, signed, &query, queue);
    // Read first: an event committed while the page is built is sent live.
    let live_from = match state.store.feed_end().await {
        Ok(c) => c.encode(),
        Err(e) => return error_page(Some(signed.layout(state, "")), ApiError::from(e)),
    };
    let (page, total) = match tokio::try_join!(
        state.store.list_dossiers(&filter),
        state.store.count_matching(&filter, COUNT_CAP)
    ) {
        Ok(found) => found,
        Err(e) => return error_page(Some(signed.layout(state, "")), ApiError::from(e)),
    };
    let tz = def.campaign().time_zone;
    let now = state.now();
    // Late as the list's `retard` filter says it: the earliest last day
    // awaited is before today, in the campaign's time zone.
    let today = now.with_timezone(&tz).date_naive();
    let rows = page
        .items
        .iter()
        .map(|d| (d, crate::store::due_on(def, d)))
        .map(|(d, due)| Row {
            id: d.id.to_string(),
            reference: d.reference.to_string(),
            commune: d.commune.to_string(),
            programmes: super::programme_labels(def, d),
            wave: d.wave,
            state_label: def.state_label(&d.state).to_string(),
            state_badge: state_badge(def, &d.state),
            received: ami_core::french_instant(d.received_at, tz),
            waiting: format::waiting_since(d.updated_at, now),
            due: due.map(ami_core::french_date).unwrap_or_default(),
            overdue: due.is_some_and(|due| due < today),
            awaiting: ami_core::awaiting(def, d)
                .iter()
                .map(|a| {
                    if *a == ami_core::PORTEUR {
                        "le porteur".to_string()
                    } else {
                        a.to_uppercase()
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let own: Option<Vec<&str>> = readable
        .as_ref()
        .map(|r| r.iter().map(String::as_str).collect());
    let choice = |value: String, label: String, selected: bool| Choice {
        value,
        label,
        selected,
    };
    let states = def
        .states()
        .iter()
        .filter(|s| !queue || !def.is_terminal(&s.id))
        .map(|s| choice(s.id.to_string(), s.label.clone(), s.id == query.etat))
        .collect();
    let waves = def
        .campaign()
        .waves
        .iter()
        .map(|w| {
            choice(
                w.number.to_string(),
                format!("Vague {}", w.number),
                w.number.to_string() == query.vague,
            )
        })
        .collect();
    let programmes = def
        .programmes()
        .iter()
        .filter(|p| own.as_ref().is_none_or(|own| own.contains(&p.id.as_str())))
        .map(|p| choice(p.id.to_string(), p.label.clone(), p.id == query.programme))
        .collect();
    let next = page.next.map(|cursor| {
        let mut pairs = filters_query(&query);
        pairs.append_pair("apres", &cursor);
        pairs.finish()
    });
    let export_query = filters_query(&query).finish();
    let orders = [
        ("echeance", "Échéance la plus proche"),
        ("reception", "Date de réception"),
    ]
    .into_iter()
    .map(|(value, label)| {
        let selected = matches!(
            (value, filter.order),
            ("echeance", ListOrder::Due) | ("reception", ListOrder::Received)
        );
        choice(value.to_string(), label.to_string(), selected)
    })
    .collect();
    let filtered = !filter.states.is_empty()
        || !filter.waves.is_empty()
        || !filter.programmes.is_empty()
        || filter.overdue_on.is_some()
        || filter.q.is_some();
    let count = if total > i64::from(COUNT_CAP) {
        format!("plus de {}", format::dossiers(i64::from(COUNT_CAP)))
    } else {
        format::dossiers(total)
    };
    let (title, intro, caption, action, current) = if queue {
        (
            "À traiter",
            format!(
                "Les dossiers qui attendent {}, le plus proche de son échéance d'abord.",
                super::agency_label(def, &signed.actor.agency)
            ),
            "Dossiers en attente de votre direction",
            "/a-traiter",
            "a-traiter",
        )
    } else {
        (
            "Tous les dossiers",
            "Les dossiers de la campagne, dans l'ordre de leur réception.".to_string(),
            "Dossiers de la campagne",
            "/dossiers",
            "dossiers",
        )
    };
    render(&ListPage {
        layout: signed.layout(state, current),
        title,
        intro,
        caption,
        action,
        count: if filtered {
            format!("{count} pour cette recherche")
        } else {
            count
        },
        states,
        waves,
        programmes,
        q: query.q.clone(),
        late_only: query.retard == "1",
        orders,
        export_query,
        export_name: if queue { "a-traiter" } else { "dossiers" },
        error,
        rows,
        next,
        live_from,
    })
}

/// `/exports/{liste}.{csv,xlsx}`: the list a page shows (its filters, all
/// its pages), as a file.
async fn export(
    state: &AppState,
    signed: &SignedIn,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    queue: bool,
    format: crate::export::ExportFormat,
) -> Response {
    if !queue && !signed.reads_all(state) {
        return error_page(
            Some(signed.layout(state, "")),
            ApiError::NotFound {
                detail: String::new(),
            },
        );
    }
    let query = query.map(|q| q.0).unwrap_or_default();
    let (filter, error) = page_filter(state, signed, &query, queue);
    if let Some(error) = error {
        return error_page(
            Some(signed.layout(state, "")),
            ApiError::BadRequest {
                code: "invalid_parameter",
                field: None,
                detail: error,
            },
        );
    }
    let mut named: Vec<(String, String)> = filter_pairs(&query)
        .into_iter()
        .filter(|(k, _)| *k != "tri")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if queue {
        named.insert(
            0,
            ("a-traiter".to_string(), signed.actor.agency.to_string()),
        );
    }
    let name = crate::export::file_name(&state.definition, state.now(), &named, format);
    match crate::http::exports::send(state, filter, &name, format).await {
        Ok(response) => response,
        Err(e) => error_page(Some(signed.layout(state, "")), e),
    }
}

macro_rules! export_route {
    ($name:ident, $queue:expr, $format:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            signed: SignedIn,
            query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
        ) -> Response {
            export(&state, &signed, query, $queue, $format).await
        }
    };
}

export_route!(queue_csv, true, crate::export::ExportFormat::Csv);
export_route!(queue_xlsx, true, crate::export::ExportFormat::Xlsx);
export_route!(all_csv, false, crate::export::ExportFormat::Csv);
export_route!(all_xlsx, false, crate::export::ExportFormat::Xlsx);
