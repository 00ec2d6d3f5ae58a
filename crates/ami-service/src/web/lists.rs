//! « À traiter » (the dossiers awaiting the person's agency) and « Tous les
//! dossiers » (DAR): filters, search, counts, pages by cursor.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::{error_page, format, render, state_badge, Layout, SignedIn};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::{DossierFilter, ListCursor};

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

async fn list(state: &AppState, signed: &SignedIn, query: ListQuery, queue: bool) -> Response {
    let def = &state.definition;
    let readable = signed.readable(state);
    let mut filter = DossierFilter {
        limit: PAGE,
        readable: readable.clone(),
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
    let q = query.q.trim();
    if q.chars().count() > 200 || q.chars().any(char::is_control) {
        refuse("La recherche compte au plus 200 caractères.");
    } else if !q.is_empty() {
        filter.q = Some(q.to_string());
    }
    if !query.apres.is_empty() {
        match ListCursor::decode(&query.apres) {
            Some(c) => filter.after = Some(c),
            None => refuse("Ce lien de page n'est plus valable : la liste reprend au début."),
        }
    }
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
    let rows = page
        .items
        .iter()
        .map(|d| Row {
            id: d.id.to_string(),
            reference: d.reference.to_string(),
            commune: d.commune.to_string(),
            programmes: super::programme_labels(def, d),
            wave: d.wave,
            state_label: def.state_label(&d.state).to_string(),
            state_badge: state_badge(def, &d.state),
            received: ami_core::french_instant(d.received_at, tz),
            waiting: format::waiting_since(d.updated_at, now),
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
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("etat", &query.etat),
            ("vague", &query.vague),
            ("programme", &query.programme),
            ("q", &query.q),
        ] {
            if !v.is_empty() {
                pairs.append_pair(k, v);
            }
        }
        pairs.append_pair("apres", &cursor);
        pairs.finish()
    });
    let filtered = !filter.states.is_empty()
        || !filter.waves.is_empty()
        || !filter.programmes.is_empty()
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
                "Les dossiers qui attendent {}, les plus anciens d'abord.",
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
        error,
        rows,
        next,
        live_from,
    })
}
