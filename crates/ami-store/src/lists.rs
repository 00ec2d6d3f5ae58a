//! How a dossier list is read, whatever the database: which index walks
//! it, and what its search found first.
//!
//! A page is read in reception order. A filter on several values of an
//! indexed column (what waits on an agency is four values of `awaiting`)
//! is one ordered range of that column's index per value, merged: a page
//! reads a page's worth of each, not every dossier that matches. A search
//! reads the search index first: the few dossiers it names are then read
//! by id; one that matches very many (a few letters) is left to the walk,
//! which meets a page of them at once.

use crate::{search_pattern, DossierFilter};

/// Up to this many dossiers found by a search are read by id; more, and
/// the list walks its index instead.
pub const SEARCH_BY_ID: i64 = 500;

/// What the search index found for a list's `q`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searched {
    /// The list has no search.
    NotAsked,
    /// Nothing matches: the list is empty.
    Nothing,
    /// These dossiers' ids (fewer than [`SEARCH_BY_ID`]).
    Few(Vec<String>),
    /// Very many: the pattern, checked row by row.
    Many(String),
}

impl Searched {
    /// The search's `like` pattern, `None` for a list without a search,
    /// and `Some(None)` for a search with nothing searchable in it (only
    /// `%`, say), which finds nothing.
    pub fn pattern(filter: &DossierFilter) -> Option<Option<String>> {
        filter.q.as_deref().map(search_pattern)
    }

    /// What the search index gave for `pattern`, read up to
    /// [`SEARCH_BY_ID`] ids.
    pub fn found(pattern: String, ids: Vec<String>) -> Searched {
        if ids.is_empty() {
            Searched::Nothing
        } else if ids.len() as i64 >= SEARCH_BY_ID {
            Searched::Many(pattern)
        } else {
            Searched::Few(ids)
        }
    }
}

/// The column whose index walks a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Reception order itself.
    Received,
    Awaiting,
    State,
    Wave,
}

/// The index that walks `filter`'s list, and the values asked of its
/// column (each its own ordered range): what waits on an agency first
/// (the most selective, and its index carries the other filters'
/// columns), then the state, then the wave. The few dossiers a search
/// found are read by id, whatever else.
pub fn walk(filter: &DossierFilter, searched: &Searched) -> (Walk, Vec<String>) {
    if let Searched::Few(_) = searched {
        (Walk::Received, Vec::new())
    } else if !filter.awaiting_columns.is_empty() {
        (Walk::Awaiting, filter.awaiting_columns.clone())
    } else if !filter.states.is_empty() {
        (Walk::State, filter.states.clone())
    } else if !filter.waves.is_empty() {
        (
            Walk::Wave,
            filter.waves.iter().map(|w| w.to_string()).collect(),
        )
    } else {
        (Walk::Received, Vec::new())
    }
}

/// The same filter without its cursor (a count).
pub fn unpaged(filter: &DossierFilter) -> DossierFilter {
    DossierFilter {
        after: None,
        ..filter.clone()
    }
}
