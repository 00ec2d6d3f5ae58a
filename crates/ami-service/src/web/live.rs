//! Live pages: `GET /evenements` streams the journal's event feed as
//! server-sent events, need to know applied, from the position the page
//! was built at (or `Last-Event-ID` when the browser reconnects). The
//! pages' script uses them to refresh what changed; without it, nothing
//! is lost: a stale form is refused with what changed.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};

use super::{action_label, agency_label, SignedIn, IDLE};
use crate::http::{AppState, Closing};
use crate::store::{FeedCursor, StoredEvent};

/// How often the feed is read when nothing was new.
const POLL: Duration = Duration::from_millis(500);
/// How often the session is checked again: a revoked token or a session
/// ended elsewhere closes the stream within this time.
const SESSION_CHECK: Duration = Duration::from_secs(30);

#[derive(serde::Deserialize, Default)]
pub struct LiveQuery {
    #[serde(default)]
    depuis: String,
}

/// What a page needs to know of an event.
#[derive(serde::Serialize)]
struct Change {
    dossier: String,
    version: u64,
    state: String,
    state_label: String,
    action_label: String,
    person: String,
    agency_label: String,
    at: String,
    /// The signed-in person did it (their own page already shows it).
    own: bool,
}

struct Follow {
    state: AppState,
    signed: SignedIn,
    readable: Option<Vec<String>>,
    cursor: FeedCursor,
    pending: std::collections::VecDeque<StoredEvent>,
    checked_at: Instant,
    over: bool,
    /// The service is shutting down (absent when served without
    /// [`crate::http::serve`]).
    closing: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Follow {
    /// Waits `pause`, or less if the service begins to shut down.
    async fn wait(&mut self, pause: Duration) {
        match &mut self.closing {
            Some(closing) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = closing.changed() => {}
                }
            }
            None => tokio::time::sleep(pause).await,
        }
    }

    fn closing(&self) -> bool {
        self.closing.as_ref().is_some_and(|c| *c.borrow())
    }
}

/// `GET /evenements`
pub async fn events(
    State(state): State<AppState>,
    closing: Option<axum::Extension<Closing>>,
    signed: SignedIn,
    headers: HeaderMap,
    query: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.ok().map(|q| q.0.depuis))
        .and_then(|c| FeedCursor::decode(&c));
    let cursor = match resume {
        Some(c) => c,
        None => match state.store.feed_end().await {
            Ok(c) => c,
            Err(e) => return super::error_page(None, crate::http::error::ApiError::from(e)),
        },
    };
    let readable = signed.readable(&state);
    let follow = Follow {
        state,
        signed,
        readable,
        cursor,
        pending: Default::default(),
        checked_at: Instant::now(),
        over: false,
        closing: closing.map(|c| c.0 .0),
    };
    Sse::new(changes(follow))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes(follow: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follow, |mut f| async move {
        loop {
            if f.over || f.closing() {
                return None;
            }
            if let Some(e) = f.pending.pop_front() {
                let event = render(&f, &e);
                return Some((Ok(event), f));
            }
            if f.checked_at.elapsed() >= SESSION_CHECK {
                f.checked_at = Instant::now();
                let live = f
                    .state
                    .store
                    .find_session(&f.signed.session_sha256, chrono::Utc::now(), IDLE)
                    .await;
                if !matches!(live, Ok(Some(_))) {
                    f.over = true;
                    return Some((Ok(Event::default().event("fin").data("session")), f));
                }
            }
            let readable: Option<Vec<&str>> = f
                .readable
                .as_ref()
                .map(|r| r.iter().map(String::as_str).collect());
            match f
                .state
                .store
                .events_after(Some(&f.cursor), 100, readable.as_deref())
                .await
            {
                Ok(page) if !page.items.is_empty() => {
                    if let Some(next) = page.next.as_deref().and_then(FeedCursor::decode) {
                        f.cursor = next;
                    }
                    f.pending.extend(page.items);
                }
                Ok(_) => f.wait(POLL).await,
                // The database is away: the page keeps what it shows and
                // the stream tries again.
                Err(_) => f.wait(POLL * 4).await,
            }
        }
    })
}

fn render(f: &Follow, s: &StoredEvent) -> Event {
    let def = &f.state.definition;
    let e = &s.event;
    let change = Change {
        dossier: e.dossier_id.to_string(),
        version: e.seq,
        state: e.to.to_string(),
        state_label: def.state_label(&e.to).to_string(),
        action_label: action_label(def, &e.action),
        person: e.actor.name.to_string(),
        agency_label: agency_label(def, &e.actor.agency),
        at: ami_core::french_instant(e.at, def.campaign().time_zone),
        own: e.actor.id == f.signed.actor.id,
    };
    Event::default()
        .id(s.position.clone())
        .event("dossier")
        .json_data(&change)
        .unwrap_or_else(|_| Event::default().comment("unserialisable"))
}
