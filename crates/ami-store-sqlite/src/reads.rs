//! What the pages and the API read: a dossier, the list and its count, a
//! dossier's history, the global feed and the counts.

use ami_core::{Dossier, DossierId, PieceFile};
use ami_store::{
    is_identifier, read_number, search_pattern, DossierFilter, FeedCursor, ListCursor, Page,
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
        // Dynamic: the filter's conditions and their number of values
        // depend on the request.
        let mut query =
            QueryBuilder::<Sqlite>::new("select d.body, d.received_at_us, d.dossier_id from ");
        query.push(dossiers_for(filter)).push(" where ");
        push_conditions(&mut query, filter, true);
        // Reception instant and id never change, so a cursor on them stays
        // correct while dossiers move between states.
        query
            .push(" order by d.received_at_us, d.dossier_id limit ")
            .push_bind(i64::from(limit) + 1);
        let rows: Vec<(String, i64, String)> =
            query.build_query_as().fetch_all(&self.reader).await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for (body, received_at_us, dossier_id) in rows.iter().take(limit as usize) {
            items.push(serde_json::from_str::<Dossier>(body)?);
            last = Some(ListCursor {
                received_at_us: *received_at_us,
                dossier_id: dossier_id
                    .parse()
                    .map(DossierId)
                    .map_err(|e: uuid::Error| StoreError::Corrupt(e.to_string()))?,
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
        // Dynamic: the filter's conditions depend on the request.
        let mut query = QueryBuilder::<Sqlite>::new("select count(*) as n from (select 1 from ");
        query.push(dossiers_for(filter)).push(" where ");
        push_conditions(&mut query, filter, false);
        query
            .push(" limit ")
            .push_bind(i64::from(cap) + 1)
            .push(") matching");
        Ok(query
            .build_query_scalar::<i64>()
            .fetch_one(&self.reader)
            .await?)
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

    /// Counts per wave and state, and per agency the dossiers awaiting it.
    pub(crate) async fn counts(&self, readable: Option<&[&str]>) -> Result<Stats, StoreError> {
        // Dynamic: need to know, counts over the dossiers of the caller's
        // programmes only.
        let mut query = QueryBuilder::<Sqlite>::new(
            "select cast(wave as bigint) as wave, state, count(*) as n from dossier",
        );
        push_only(&mut query, readable);
        query.push(" group by wave, state order by wave, state");
        let by_state = query
            .build_query_as::<(i64, String, i64)>()
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|(wave, state, count)| {
                Ok(StateCount {
                    wave: read_number("dossier.wave", wave)?,
                    state,
                    count,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Dynamic: as above.
        let mut query = QueryBuilder::<Sqlite>::new("select awaiting, count(*) as n from dossier");
        push_only(&mut query, readable);
        query.push(" group by awaiting");
        let mut awaiting: Vec<(String, i64)> = Vec::new();
        for (agencies, n) in query
            .build_query_as::<(String, i64)>()
            .fetch_all(&self.reader)
            .await?
        {
            for agency in agencies.split(',').filter(|a| !a.is_empty()) {
                match awaiting.iter_mut().find(|(a, _)| a == agency) {
                    Some((_, total)) => *total += n,
                    None => awaiting.push((agency.to_string(), n)),
                }
            }
        }
        Ok(Stats { by_state, awaiting })
    }
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

/// The dossier table of a query. SQLite's planner, with its statistics,
/// prefers walking the reception or wave index and reading rows until it
/// has a page, which for a queue of a few percent of 100,000 dossiers reads
/// thousands of them; the index of what waits on whom answers in a few
/// milliseconds, so a queue names it.
fn dossiers_for(filter: &DossierFilter) -> &'static str {
    if filter.awaiting_columns.is_empty() {
        "dossier d"
    } else {
        "dossier d indexed by dossier_by_awaiting"
    }
}

/// The conditions of a dossier query (`d` is the dossier table), with
/// their values bound.
fn push_conditions(query: &mut QueryBuilder<'_, Sqlite>, filter: &DossierFilter, with_after: bool) {
    query.push("1 = 1");
    // One value or several: `state = ? or …`; lists kept as `,a,b,`
    // columns match any of the values.
    let any_of =
        |query: &mut QueryBuilder<'_, Sqlite>, column: &str, values: &[String], listed: bool| {
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
    any_of(query, "d.awaiting", &filter.awaiting_columns, false);
    any_of(query, "d.state", &filter.states, false);
    any_of(query, "d.programmes", &filter.programmes, true);
    if let Some(readable) = &filter.readable {
        if readable.is_empty() {
            query.push(" and 1 = 0");
        }
        any_of(query, "d.programmes", readable, true);
    }
    if !filter.waves.is_empty() {
        query.push(" and d.wave in (");
        let mut waves = query.separated(", ");
        for w in &filter.waves {
            waves.push_bind(i64::from(*w));
        }
        query.push(")");
    }
    match filter.q.as_deref().map(search_pattern) {
        None => {}
        // A search with nothing searchable in it (only `%`, say) finds
        // nothing.
        Some(None) => {
            query.push(" and 1 = 0");
        }
        // The search table's trigram index (FTS5) serves the LIKE.
        Some(Some(pattern)) => {
            query
                .push(" and d.dossier_id in (select dossier_id from dossier_search where search like ")
                .push_bind(pattern)
                .push(")");
        }
    }
    if let Some(after) = filter.after.as_ref().filter(|_| with_after) {
        query
            .push(" and (d.received_at_us, d.dossier_id) > (")
            .push_bind(after.received_at_us)
            .push(", ")
            .push_bind(after.dossier_id.to_string())
            .push(")");
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
