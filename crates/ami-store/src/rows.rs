//! Values the store reads and writes besides core types, and the opaque
//! cursors it hands out.

use crate::StoreError;
use ami_core::{DossierId, Event};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

/// A request's Idempotency-Key, scoped to the person sending it, with a
/// hash of the request so that a different request with the same key is told.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_sha256: String,
}

/// Filters of the dossier list; every field is optional but `limit`. A
/// dossier matches a list filter when it matches any of its values; empty
/// lists filter nothing.
#[derive(Debug, Clone, Default)]
pub struct DossierFilter {
    pub states: Vec<String>,
    pub waves: Vec<u8>,
    pub programmes: Vec<String>,
    /// Dossiers waiting on some agencies (or `porteur`): the values of the
    /// `awaiting` column that name one of them, from
    /// [`crate::awaiting_columns`]. Exact values, so that an index serves
    /// them.
    pub awaiting_columns: Vec<String>,
    /// Only dossiers late on this day: their earliest deadline
    /// ([`crate::due_on`]) is before it.
    pub overdue_on: Option<chrono::NaiveDate>,
    /// Only dossiers of communes in these départements (codes of the
    /// official geographic code, `58`, `2A`, `974`: the `departement`
    /// column, read off the code INSEE). `Some(empty)`: none.
    pub departements: Option<Vec<String>>,
    pub q: Option<String>,
    /// In reception order (the default) or by due date.
    pub order: ListOrder,
    pub after: Option<ListCursor>,
    pub limit: u32,
    /// Need to know: only dossiers of these programmes (`None`: all).
    pub readable: Option<Vec<String>>,
}

/// The order of a dossier list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Reception instant, then id: a dossier never moves in it.
    #[default]
    Received,
    /// Earliest last day first ([`crate::due_on`]), dossiers with no
    /// deadline last; then reception order. A dossier moves in it as it
    /// goes from one agency to the next.
    Due,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Position in the dossier list: reception instant, then id; in a list by
/// due date, the last day first (`None`: no deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub received_at_us: i64,
    pub dossier_id: DossierId,
    pub due: Option<Option<chrono::NaiveDate>>,
}

impl ListCursor {
    pub fn encode(&self) -> String {
        let position = format!("{}/{}", self.received_at_us, self.dossier_id);
        URL_SAFE_NO_PAD.encode(match self.due {
            None => position,
            Some(Some(day)) => format!("{day}/{position}"),
            Some(None) => format!("-/{position}"),
        })
    }

    pub fn decode(s: &str) -> Option<ListCursor> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let parts: Vec<&str> = text.split('/').collect();
        let (due, at, id) = match parts[..] {
            [at, id] => (None, at, id),
            ["-", at, id] => (Some(None), at, id),
            [day, at, id] => (Some(Some(day.parse().ok()?)), at, id),
            _ => return None,
        };
        Some(ListCursor {
            received_at_us: at.parse().ok()?,
            dossier_id: DossierId(id.parse().ok()?),
            due,
        })
    }

    /// Whether it is a position in a list in `order`.
    pub fn fits(&self, order: ListOrder) -> bool {
        self.due.is_some() == (order == ListOrder::Due)
    }
}

/// Position in the global event feed. On SQLite only `event_id` counts; on
/// PostgreSQL the writing transaction's id comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCursor {
    pub xact_id: u64,
    pub event_id: i64,
}

impl FeedCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.xact_id, self.event_id)
    }

    pub fn decode(s: &str) -> Option<FeedCursor> {
        let (x, e) = s.split_once('.')?;
        Some(FeedCursor {
            xact_id: x.parse().ok()?,
            event_id: e.parse().ok().filter(|n| *n >= 0)?,
        })
    }
}

/// An event as the journal keeps it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Feed cursor just after this event.
    pub position: String,
    pub event: Event,
    /// The event exactly as recorded (what `digest` covers).
    pub content: serde_json::Value,
    pub digest: String,
    pub global_seq: Option<i64>,
    pub global_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub wave: u8,
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub by_state: Vec<StateCount>,
    /// (agency, number of dossiers awaiting it)
    pub awaiting: Vec<(String, i64)>,
    /// (agency, number of dossiers awaiting it past their deadline, on the
    /// day asked)
    pub overdue: Vec<(String, i64)>,
    /// Per département, wave and state: filled by
    /// [`crate::Store::stats_of_departements`] only.
    pub by_departement: Vec<DepartementCount>,
}

/// The dossiers of a département in a wave and a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartementCount {
    /// Its code in the official geographic code (58, 2A, 974).
    pub departement: String,
    pub wave: u8,
    pub state: String,
    pub count: i64,
}

impl Stats {
    /// The stats of dossiers counted one group at a time: `(departement,
    /// wave, state, awaiting, count)` rows, and the late ones per
    /// `awaiting` value.
    pub fn of_groups(
        groups: Vec<(String, u8, String, String, i64)>,
        late: Vec<(String, i64)>,
    ) -> Stats {
        use std::collections::BTreeMap;
        let mut by_state: BTreeMap<(u8, String), i64> = BTreeMap::new();
        let mut awaiting: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_departement: BTreeMap<(String, u8, String), i64> = BTreeMap::new();
        for (departement, wave, state, waits_on, n) in groups {
            *by_state.entry((wave, state.clone())).or_default() += n;
            *awaiting.entry(waits_on).or_default() += n;
            *by_departement
                .entry((departement, wave, state))
                .or_default() += n;
        }
        Stats {
            by_state: by_state
                .into_iter()
                .map(|((wave, state), count)| StateCount { wave, state, count })
                .collect(),
            awaiting: crate::per_agency(awaiting),
            overdue: crate::per_agency(late),
            by_departement: by_departement
                .into_iter()
                .map(|((departement, wave, state), count)| DepartementCount {
                    departement,
                    wave,
                    state,
                    count,
                })
                .collect(),
        }
    }
}

/// A person's API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: uuid::Uuid,
    pub person_id: String,
    pub name: String,
    pub agency: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// The person, when the definition has their agency and role.
    pub fn actor(&self, def: &ami_core::Definition) -> Option<ami_core::Actor> {
        Some(ami_core::Actor {
            id: self.person_id.as_str().into(),
            name: self.name.as_str().into(),
            agency: def.agency_id(&self.agency)?,
            role: def.role_id(&self.role)?,
        })
    }
}

/// A number read from `column` (`table.column`), in the type the store
/// uses: a value out of that type's range is a corrupt row, never 0.
pub fn read_number<T: TryFrom<i64>>(column: &str, n: i64) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} : {n} hors limites")))
}

/// An instant read from `column` (`table.column`, microseconds since
/// 1970): one out of range is a corrupt row, never 1970.
pub fn read_instant(column: &str, us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} : instant {us} hors limites")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_out_of_range_is_a_corrupt_row_naming_its_column() {
        assert_eq!(read_number::<u8>("dossier.wave", 2).ok(), Some(2));
        assert_eq!(read_number::<u64>("dossier.version", 0).ok(), Some(0));
        for (column, n) in [("dossier.wave", 256), ("dossier.wave", -1)] {
            match read_number::<u8>(column, n) {
                Err(StoreError::Corrupt(what)) => {
                    assert_eq!(what, format!("{column} : {n} hors limites"))
                }
                other => panic!("{column} = {n}: {other:?}"),
            }
        }
        assert!(matches!(
            read_number::<u64>("dossier.version", -3),
            Err(StoreError::Corrupt(what)) if what.starts_with("dossier.version")
        ));
        let now = Utc::now();
        let us = now.timestamp_micros();
        assert_eq!(
            read_instant("api_token.created_at_us", us).ok(),
            DateTime::from_timestamp_micros(us)
        );
        assert!(matches!(
            read_instant("api_token.created_at_us", i64::MAX),
            Err(StoreError::Corrupt(what)) if what.contains("api_token.created_at_us")
        ));
    }
}
