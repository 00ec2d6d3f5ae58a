//! What the pages and the API read: a dossier, the list and its count, a
//! dossier's history, the global feed and the counts.

use ami_core::{Dossier, DossierId, PieceFile};
use ami_store::lists::{fixed, unpaged, walk, Branch, Column, Searched, Walk, SEARCH_BY_ID};
use ami_store::{
    is_identifier, per_agency, read_number, DossierFilter, FeedCursor, ListCursor, ListOrder, Page,
    StateCount, Stats, StoreError, StoredEvent,
};
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Sqlite};

use crate::SqliteStore;

impl SqliteStore {
    pub(crate) async fn read_dossier(&self, id: DossierId) -> Result<Option<Dossier>, StoreError> {
        let id = id.to_string();
        let body = sqlx::query_scalar!("select body from dossier where dossier_id = $1", id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(match body {
            Some(body) => Some(serde_json::from_str(&body)?),
            None => None,
        })
    }

    /// A page of dossiers in reception order, after `filter.after`.
    pub(crate) async fn dossier_page(
        &self,
        filter: &DossierFilter,
    ) -> Result<Page<Dossier>, StoreError> {
        let limit = filter.limit.clamp(1, 500);
        let found = match self.searched(filter).await? {
            Searched::Nothing => Vec::new(),
            searched => {
                let mut query = QueryBuilder::<Sqlite>::new("");
                push_page(&mut query, filter, &searched, i64::from(limit) + 1);
                query.build_query_as().fetch_all(&self.reader).await?
            }
        };
        let rows: Vec<(String, i64, String, Option<String>)> = found;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for (body, received_at_us, dossier_id, due_on) in rows.iter().take(limit as usize) {
            items.push(serde_json::from_str::<Dossier>(body)?);
            let due = match due_on {
                Some(day) => Some(
                    day.parse()
                        .map_err(|_| StoreError::Corrupt(format!("dossier.due_on {day}")))?,
                ),
                None => None,
            };
            last = Some(ListCursor {
                received_at_us: *received_at_us,
                dossier_id: dossier_id
                    .parse()
                    .map(DossierId)
                    .map_err(|e: uuid::Error| StoreError::Corrupt(e.to_string()))?,
                due: (filter.order == ListOrder::Due).then_some(due),
            });
        }
        let next = if rows.len() > limit as usize {
            last
        } else {
            None
        };
        Ok(Page {
            items,
            next: next.map(|c| c.encode()),
        })
    }

    /// How many dossiers match `filter`, whatever its cursor and limit,
    /// counted up to `cap + 1`: a page says « plus de 1 000 » rather than
    /// read 100,000 rows to be exact.
    pub(crate) async fn count_filtered(
        &self,
        filter: &DossierFilter,
        cap: u32,
    ) -> Result<i64, StoreError> {
        let searched = self.searched(filter).await?;
        if let Searched::Nothing = searched {
            return Ok(0);
        }
        // Dynamic: the filter's conditions depend on the request.
        let mut query = QueryBuilder::<Sqlite>::new("select count(*) as n from (");
        push_page(&mut query, &unpaged(filter), &searched, i64::from(cap) + 1);
        query.push(") matching");
        Ok(query
            .build_query_scalar::<i64>()
            .fetch_one(&self.reader)
            .await?)
    }

    /// What the list's search finds in the search index (see
    /// [`ami_store::lists`]).
    async fn searched(&self, filter: &DossierFilter) -> Result<Searched, StoreError> {
        let pattern = match Searched::pattern(filter) {
            None => return Ok(Searched::NotAsked),
            Some(None) => return Ok(Searched::Nothing),
            Some(Some(pattern)) => pattern,
        };
        let ids = sqlx::query_scalar!(
            r#"select dossier_id as "dossier_id!: String" from dossier_search
               where search like $1 limit $2"#,
            pattern,
            SEARCH_BY_ID
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(Searched::found(pattern, ids))
    }

    /// Every received file of every dossier, with the dossier's reference,
    /// the dossiers streamed rather than all held at once.
    pub(crate) async fn streamed_piece_files(
        &self,
    ) -> Result<Vec<(String, PieceFile)>, StoreError> {
        let mut bodies =
            sqlx::query_scalar!("select body from dossier order by reference").fetch(&self.reader);
        let mut found = Vec::new();
        while let Some(body) = bodies.try_next().await? {
            let d: Dossier = serde_json::from_str(&body)?;
            found.extend(d.files.into_iter().map(|f| (d.reference.to_string(), f)));
        }
        Ok(found)
    }

    /// Every event of a dossier, in order, with its digest.
    pub(crate) async fn dossier_history(
        &self,
        id: DossierId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let id = id.to_string();
        sqlx::query_as!(
            EventRow,
            r#"select e.event_id as "event_id!: i64", e.body, e.digest,
                 c.global_seq as "global_seq?: i64", c.global_digest as "global_digest?: String"
               from dossier_event e left join journal_chain c on c.event_id = e.event_id
               where e.dossier_id = $1 order by e.seq"#,
            id
        )
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(EventRow::stored)
        .collect()
    }

    /// The global feed: events after `cursor`, in commit order (event ids
    /// grow in commit order: there is one writer).
    pub(crate) async fn feed_page(
        &self,
        cursor: Option<&FeedCursor>,
        limit: u32,
        readable: Option<&[&str]>,
    ) -> Result<Page<StoredEvent>, StoreError> {
        let limit = limit.clamp(1, 1000);
        let after = cursor.map_or(0, |c| c.event_id);
        // Dynamic: the need-to-know condition lists the caller's
        // programmes, and joins the dossiers only then.
        let mut query = QueryBuilder::<Sqlite>::new(
            "select e.event_id, e.body, e.digest, c.global_seq, c.global_digest \
             from dossier_event e left join journal_chain c on c.event_id = e.event_id",
        );
        if readable.is_some() {
            query.push(" join dossier d on d.dossier_id = e.dossier_id");
        }
        query.push(" where e.event_id > ").push_bind(after);
        if let Some(programmes) = readable {
            query.push(" and ");
            push_in_programmes(&mut query, "d.programmes", programmes);
        }
        query
            .push(" order by e.event_id limit ")
            .push_bind(i64::from(limit));
        let items: Vec<StoredEvent> = query
            .build_query_as::<(i64, String, String, Option<i64>, Option<String>)>()
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|(event_id, body, digest, global_seq, global_digest)| {
                EventRow {
                    event_id,
                    body,
                    digest,
                    global_seq,
                    global_digest,
                }
                .stored()
            })
            .collect::<Result<_, _>>()?;
        // The cursor always moves to the last event seen; with no new event
        // it stays where it was, so the consumer polls again with it.
        let next = items
            .last()
            .map(|e| e.position.clone())
            .or_else(|| cursor.map(|c| c.encode()));
        Ok(Page { items, next })
    }

    /// Counts per wave and state, and per agency the dossiers awaiting it,
    /// from the counters the writes keep (see `0006_dossier_counts.sql`).
    pub(crate) async fn counts(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
    ) -> Result<Stats, StoreError> {
        // Dynamic: need to know, counts over the dossiers of the caller's
        // programmes only.
        let mut query = QueryBuilder::<Sqlite>::new(
            "select cast(wave as bigint) as wave, state, sum(n) as n from dossier_count",
        );
        push_only(&mut query, readable);
        query.push(" group by wave, state having sum(n) > 0 order by wave, state");
        let by_state = query
            .build_query_as::<(i64, String, i64)>()
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|(wave, state, count)| {
                Ok(StateCount {
                    wave: read_number("dossier_count.wave", wave)?,
                    state,
                    count,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Dynamic: as above.
        let mut query =
            QueryBuilder::<Sqlite>::new("select awaiting, sum(n) as n from dossier_count");
        push_only(&mut query, readable);
        query.push(" group by awaiting having sum(n) > 0");
        let awaiting = per_agency(
            query
                .build_query_as::<(String, i64)>()
                .fetch_all(&self.reader)
                .await?,
        );
        // Late depends on the day: counted, not kept, over the late
        // dossiers only (the partial index on `due_on`). Dynamic: need to
        // know, as above.
        let mut query = QueryBuilder::<Sqlite>::new(
            "select awaiting, count(*) as n from dossier indexed by dossier_by_due \
             where due_on is not null and due_on < ",
        );
        query.push_bind(today.to_string());
        if let Some(programmes) = readable {
            query.push(" and ");
            push_in_programmes(&mut query, "programmes", programmes);
        }
        query.push(" group by awaiting");
        let overdue = per_agency(
            query
                .build_query_as::<(String, i64)>()
                .fetch_all(&self.reader)
                .await?,
        );
        Ok(Stats {
            by_state,
            awaiting,
            overdue,
            by_departement: Vec::new(),
        })
    }

    /// Counts of the dossiers of `departements` (all when `None`), per
    /// département too: counted from the dossiers, not kept.
    pub(crate) async fn departement_counts(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
        departements: Option<&[String]>,
    ) -> Result<Stats, StoreError> {
        // Dynamic: need to know and the départements asked.
        let only = |query: &mut QueryBuilder<'_, Sqlite>| {
            if let Some(programmes) = readable {
                query.push(" and ");
                push_in_programmes(query, "programmes", programmes);
            }
            match departements {
                Some([]) => {
                    query.push(" and 1 = 0");
                }
                Some(codes) => {
                    query.push(" and departement in (");
                    let mut separated = query.separated(", ");
                    for code in codes {
                        separated.push_bind(code.clone());
                    }
                    query.push(")");
                }
                None => {}
            }
        };
        let mut query = QueryBuilder::<Sqlite>::new(
            "select departement, cast(wave as bigint), state, awaiting, count(*) from dossier ",
        );
        if departements.is_some() {
            query.push("indexed by dossier_by_departement ");
        }
        query.push("where 1 = 1");
        only(&mut query);
        query.push(" group by departement, wave, state, awaiting");
        let groups = query
            .build_query_as::<(String, i64, String, String, i64)>()
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|(departement, wave, state, awaiting, n)| {
                Ok((
                    departement,
                    read_number("dossier.wave", wave)?,
                    state,
                    awaiting,
                    n,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "select awaiting, count(*) from dossier where due_on is not null and due_on < ",
        );
        query.push_bind(today.to_string());
        only(&mut query);
        query.push(" group by awaiting");
        let late = query
            .build_query_as::<(String, i64)>()
            .fetch_all(&self.reader)
            .await?;
        Ok(Stats::of_groups(groups, late))
    }
}

/// The query of a page: `select body, received_at_us, dossier_id` of the
/// dossiers matching `filter`, in reception order, at most `limit`, one
/// ordered range of the walked index per value, merged
/// ([`ami_store::lists`]).
///
/// Dynamic: the filter's conditions and their number of values depend on
/// the request.
fn push_page(
    query: &mut QueryBuilder<'_, Sqlite>,
    filter: &DossierFilter,
    searched: &Searched,
    limit: i64,
) {
    if filter.order == ListOrder::Due {
        // By due date: what the filter selects, sorted (lists by due date
        // are queues, of an agency or of the late).
        query.push("select d.body, d.received_at_us, d.dossier_id, d.due_on from dossier d where ");
        push_conditions(query, filter, searched, None);
        query
            .push(" order by d.due_on is null, d.due_on, d.received_at_us, d.dossier_id limit ")
            .push_bind(limit);
        return;
    }
    let (walk, branches) = walk(filter, searched);
    // SQLite's planner, with its statistics, prefers walking the reception
    // index and reading rows until it has a page, which for a queue of a
    // few percent of the dossiers reads thousands: the index is named.
    let index = match walk {
        Walk::Received => None,
        Walk::Awaiting => Some("dossier_by_awaiting"),
        Walk::AwaitingWave => Some("dossier_by_awaiting_wave"),
        Walk::State => Some("dossier_by_state"),
        Walk::StateWave => Some("dossier_by_state_wave"),
        Walk::Wave => Some("dossier_by_wave"),
        Walk::Departement => Some("dossier_by_departement"),
    };
    let branches: Vec<Option<&Branch>> = if branches.is_empty() {
        vec![None]
    } else {
        branches.iter().map(Some).collect()
    };
    query.push("select body, received_at_us, dossier_id, null as due_on from (");
    for (i, branch) in branches.iter().enumerate() {
        if i > 0 {
            query.push(" union all ");
        }
        query.push("select * from (select d.body, d.received_at_us, d.dossier_id from dossier d");
        if let Some(index) = index {
            query.push(format!(" indexed by {index}"));
        }
        query.push(" where ");
        push_conditions(query, filter, searched, *branch);
        query
            .push(" order by d.received_at_us, d.dossier_id limit ")
            .push_bind(limit)
            .push(")");
    }
    query
        .push(") order by received_at_us, dossier_id limit ")
        .push_bind(limit);
}

/// An event row as the history and the feed read it.
struct EventRow {
    event_id: i64,
    body: String,
    digest: String,
    global_seq: Option<i64>,
    global_digest: Option<String>,
}

impl EventRow {
    fn stored(self) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            position: FeedCursor {
                xact_id: 0,
                event_id: self.event_id,
            }
            .encode(),
            event: serde_json::from_str(&self.body)?,
            content: serde_json::from_str(&self.body)?,
            digest: self.digest,
            global_seq: self.global_seq,
            global_digest: self.global_digest,
        })
    }
}

/// The conditions of a dossier query (`d` is the dossier table), with
/// their values bound; a branch of [`push_page`] replaces the values of the
/// columns it fixes by its own.
fn push_conditions(
    query: &mut QueryBuilder<'_, Sqlite>,
    filter: &DossierFilter,
    searched: &Searched,
    branch: Option<&Branch>,
) {
    query.push("1 = 1");
    // One value or several: `state = ? or …`; lists kept as `,a,b,`
    // columns match any of the values.
    let any_of = |query: &mut QueryBuilder<'_, Sqlite>,
                  column: &str,
                  values: &[String],
                  listed: bool,
                  walked: Option<Column>| {
        let values: &[String] = match walked.and_then(|c| fixed(branch, c)) {
            Some(value) => std::slice::from_ref(value),
            None => values,
        };
        if values.is_empty() {
            return;
        }
        query.push(" and (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                query.push(" or ");
            }
            if listed {
                query
                    .push(format!("{column} like "))
                    .push_bind(format!("%,{v},%"));
            } else {
                query.push(format!("{column} = ")).push_bind(v.clone());
            }
        }
        query.push(")");
    };
    let waves: Vec<String> = filter.waves.iter().map(|w| w.to_string()).collect();
    any_of(
        query,
        "d.awaiting",
        &filter.awaiting_columns,
        false,
        Some(Column::Awaiting),
    );
    any_of(query, "d.state", &filter.states, false, Some(Column::State));
    if let Some(today) = filter.overdue_on {
        query
            .push(" and d.due_on is not null and d.due_on < ")
            .push_bind(today.to_string());
    }
    if let Some(departements) = &filter.departements {
        if departements.is_empty() {
            query.push(" and 1 = 0");
        }
        any_of(
            query,
            "d.departement",
            departements,
            false,
            Some(Column::Departement),
        );
    }
    any_of(query, "d.programmes", &filter.programmes, true, None);
    if let Some(readable) = &filter.readable {
        if readable.is_empty() {
            query.push(" and 1 = 0");
        }
        any_of(query, "d.programmes", readable, true, None);
    }
    // Waves are numbers: bound as such, so that the wave index serves them.
    let wave_values: &[String] = match fixed(branch, Column::Wave) {
        Some(value) => std::slice::from_ref(value),
        None => &waves,
    };
    if !wave_values.is_empty() {
        query.push(" and d.wave in (");
        let mut separated = query.separated(", ");
        for w in wave_values {
            separated.push_bind(w.parse::<i64>().unwrap_or(-1));
        }
        query.push(")");
    }
    match searched {
        Searched::NotAsked => {}
        Searched::Nothing => {
            query.push(" and 1 = 0");
        }
        Searched::Few(ids) => {
            query.push(" and d.dossier_id in (");
            let mut separated = query.separated(", ");
            for id in ids {
                separated.push_bind(id.clone());
            }
            query.push(")");
        }
        // The search table's trigram index (FTS5) serves the LIKE.
        Searched::Many(pattern) => {
            query
                .push(" and d.dossier_id in (select dossier_id from dossier_search where search like ")
                .push_bind(pattern.clone())
                .push(")");
        }
    }
    if let Some(after) = filter.after.as_ref() {
        let position = |query: &mut QueryBuilder<'_, Sqlite>| {
            query
                .push("(d.received_at_us, d.dossier_id) > (")
                .push_bind(after.received_at_us)
                .push(", ")
                .push_bind(after.dossier_id.to_string())
                .push(")");
        };
        match after.due {
            None => {
                query.push(" and ");
                position(query);
            }
            // By due date, dossiers with no deadline last.
            Some(Some(day)) => {
                query
                    .push(" and (d.due_on > ")
                    .push_bind(day.to_string())
                    .push(" or d.due_on is null or (d.due_on = ")
                    .push_bind(day.to_string())
                    .push(" and ");
                position(query);
                query.push("))");
            }
            Some(None) => {
                query.push(" and d.due_on is null and ");
                position(query);
            }
        }
    }
}

/// ` where` the need-to-know condition on `programmes`, when there is one.
fn push_only(query: &mut QueryBuilder<'_, Sqlite>, readable: Option<&[&str]>) {
    if let Some(programmes) = readable {
        query.push(" where ");
        push_in_programmes(query, "programmes", programmes);
    }
}

/// The condition « in one of these programmes » on a list column. The ids
/// come from the validated definition; anything but an identifier is left
/// out, as it always was.
fn push_in_programmes(query: &mut QueryBuilder<'_, Sqlite>, column: &str, programmes: &[&str]) {
    query.push("(");
    for p in programmes.iter().filter(|p| is_identifier(p)) {
        query
            .push(format!("{column} like "))
            .push_bind(format!("%,{p},%"))
            .push(" or ");
    }
    query.push("1 = 0)");
}

#[cfg(test)]
mod plans {
    //! Every list the API and the pages can ask for is served by an index:
    //! a plan that reads the whole `dossier` or `dossier_event` table fails
    //! here, whatever the number of rows (the plans of a million dossiers
    //! are those of an empty table with the same indexes, the list's index
    //! being named).

    use ami_store::lists::every_filter_combination;
    use ami_store::DatabaseUrl;
    use sqlx::Row;

    use super::*;

    /// The plan's steps that read a whole table of dossiers or events.
    async fn full_scans(store: &SqliteStore, query: &mut QueryBuilder<'_, Sqlite>) -> Vec<String> {
        query
            .build()
            .fetch_all(&store.reader)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .filter(|detail| {
                let table = detail.strip_prefix("SCAN ").unwrap_or("");
                ["d", "e", "dossier", "dossier_event"].contains(&table)
            })
            .collect()
    }

    #[tokio::test]
    async fn no_list_reads_every_dossier() {
        let path = std::env::temp_dir().join(format!("ami-plans-{}.db", uuid::Uuid::now_v7()));
        let url = DatabaseUrl::parse(&format!("sqlite:{}", path.display())).expect("url");
        let store = SqliteStore::connect(&url).await.expect("store");
        let mut failures = Vec::new();
        for (name, filter, searched) in every_filter_combination(&ami_core::Definition::ami2()) {
            let mut page = QueryBuilder::<Sqlite>::new("explain query plan ");
            push_page(&mut page, &filter, &searched, 51);
            let mut count =
                QueryBuilder::<Sqlite>::new("explain query plan select count(*) from (");
            push_page(&mut count, &unpaged(&filter), &searched, 1001);
            count.push(")");
            for (what, query) in [("page", &mut page), ("count", &mut count)] {
                let scans = full_scans(&store, query).await;
                if !scans.is_empty() {
                    failures.push(format!("{what} of {name}: {scans:?}"));
                }
            }
        }
        let mut feed = QueryBuilder::<Sqlite>::new(
            "explain query plan select e.event_id from dossier_event e \
             join dossier d on d.dossier_id = e.dossier_id where e.event_id > 0 and ",
        );
        push_in_programmes(&mut feed, "d.programmes", &["acv"]);
        feed.push(" order by e.event_id limit 100");
        let scans = full_scans(&store, &mut feed).await;
        if !scans.is_empty() {
            failures.push(format!("feed with need to know: {scans:?}"));
        }
        store.writer.close().await;
        store.reader.close().await;
        let _ = std::fs::remove_file(&path);
        assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
    }
}
