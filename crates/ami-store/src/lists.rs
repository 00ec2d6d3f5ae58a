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

/// A column a list's walk fixes to one value per branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Awaiting,
    State,
    Wave,
    Departement,
}

/// The index that walks a list in reception order, its leading columns
/// fixed by each branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Reception order itself.
    Received,
    /// `(awaiting, received…)`.
    Awaiting,
    /// `(awaiting, wave, received…)`.
    AwaitingWave,
    /// `(state, received…)`.
    State,
    /// `(state, wave, received…)`.
    StateWave,
    /// `(wave, received…)`.
    Wave,
    /// `(departement, received…)`.
    Departement,
}

/// One ordered range of the walked index: a value for each of its leading
/// columns.
pub type Branch = Vec<(Column, String)>;

/// The index that walks `filter`'s list, and its branches (one per
/// combination of the values asked of its leading columns): what waits on
/// an agency first (the most selective, and its index carries the other
/// filters' columns), then the département, then the state; with the wave beside either when the
/// list asks for waves too (waves come in reception order: walking the
/// third wave's dossiers in an index of all would read the first two's
/// first). The few dossiers a search found are read by id, whatever else.
pub fn walk(filter: &DossierFilter, searched: &Searched) -> (Walk, Vec<Branch>) {
    let waves: Vec<String> = filter.waves.iter().map(|w| w.to_string()).collect();
    let one = |column: Column, values: &[String]| -> Vec<Branch> {
        values.iter().map(|v| vec![(column, v.clone())]).collect()
    };
    let with_waves = |column: Column, values: &[String]| -> Vec<Branch> {
        values
            .iter()
            .flat_map(|v| {
                waves
                    .iter()
                    .map(move |w| vec![(column, v.clone()), (Column::Wave, w.clone())])
            })
            .collect()
    };
    if let Searched::Few(_) = searched {
        (Walk::Received, Vec::new())
    } else if !filter.awaiting_columns.is_empty() && !waves.is_empty() {
        (
            Walk::AwaitingWave,
            with_waves(Column::Awaiting, &filter.awaiting_columns),
        )
    } else if !filter.awaiting_columns.is_empty() {
        (
            Walk::Awaiting,
            one(Column::Awaiting, &filter.awaiting_columns),
        )
    } else if let Some(departements) = filter.departements.as_deref().filter(|d| !d.is_empty()) {
        // A département holds about 1 % of the dossiers: narrower than a
        // state or a wave.
        (Walk::Departement, one(Column::Departement, departements))
    } else if !filter.states.is_empty() && !waves.is_empty() {
        (Walk::StateWave, with_waves(Column::State, &filter.states))
    } else if !filter.states.is_empty() {
        (Walk::State, one(Column::State, &filter.states))
    } else if !waves.is_empty() {
        (Walk::Wave, one(Column::Wave, &waves))
    } else {
        (Walk::Received, Vec::new())
    }
}

/// The value a branch fixes for `column`, if it fixes one.
pub fn fixed(branch: Option<&Branch>, column: Column) -> Option<&String> {
    branch?.iter().find(|(c, _)| *c == column).map(|(_, v)| v)
}

/// The same filter without its cursor (a count).
pub fn unpaged(filter: &DossierFilter) -> DossierFilter {
    DossierFilter {
        after: None,
        ..filter.clone()
    }
}

/// Every combination of the list's filters (state, wave, programme,
/// awaiting, need to know, cursor, département, overdue, search found few
/// or many), with one and
/// with two values each, named: what a backend's test of its query plans
/// goes through.
pub fn every_filter_combination(
    def: &ami_core::Definition,
) -> Vec<(String, DossierFilter, Searched)> {
    let mut all = Vec::new();
    for mask in 0u32..(1 << 9) {
        for two in [false, true] {
            let pick = |bit: u32| mask & (1 << bit) != 0;
            let values = |one: &str, other: &str| {
                if two {
                    vec![one.to_string(), other.to_string()]
                } else {
                    vec![one.to_string()]
                }
            };
            let mut filter = DossierFilter {
                limit: 50,
                ..DossierFilter::default()
            };
            let mut named = Vec::new();
            if pick(0) {
                filter.states = values("recu", "instruit");
                named.push("state");
            }
            if pick(1) {
                filter.waves = if two { vec![1, 2] } else { vec![2] };
                named.push("wave");
            }
            if pick(2) {
                filter.programmes = values("acv", "ti");
                named.push("programme");
            }
            if pick(3) {
                filter.awaiting_columns = crate::awaiting_columns(def, &values("acv", "ti"));
                named.push("awaiting");
            }
            if pick(4) {
                filter.readable = Some(values("acv", "ti"));
                named.push("readable");
            }
            if pick(5) {
                filter.after = Some(crate::ListCursor {
                    received_at_us: 1,
                    dossier_id: ami_core::DossierId(uuid::Uuid::nil()),
                    due: None,
                });
                named.push("cursor");
            }
            if pick(7) {
                filter.departements = Some(values("58", "2A"));
                named.push("departement");
            }
            if pick(8) {
                filter.overdue_on = chrono::NaiveDate::from_ymd_opt(2020, 12, 1);
                named.push("overdue");
            }
            let name = format!("{} ({} value(s))", named.join("+"), if two { 2 } else { 1 });
            if pick(6) {
                filter.q = Some("nevers".into());
                let few = Searched::Few(vec![uuid::Uuid::nil().to_string()]);
                all.push((format!("{name}+q (few)"), filter.clone(), few));
                let many = Searched::Many("%nevers%".into());
                all.push((format!("{name}+q (many)"), filter, many));
            } else {
                all.push((name, filter, Searched::NotAsked));
            }
        }
    }
    all
}
