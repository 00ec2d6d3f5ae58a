//! Reading dossiers and events: one dossier, the filtered list and its
//! count, the counts per state and agency, a dossier's history and the
//! global feed.

use ami_core::{Dossier, DossierId, PieceFile};
use ami_store::lists::{fixed, unpaged, walk, Branch, Column, Searched, SEARCH_BY_ID};
use ami_store::{
    is_identifier, micros, per_agency, read_number, DossierFilter, FeedCursor, ListCursor,
    ListOrder, Page, StateCount, Stats, StoreError, StoredEvent,
};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::PgStore;

impl PgStore {
    pub(crate) async fn dossier(&self, id: DossierId) -> Result<Option<Dossier>, StoreError> {
        let body = sqlx::query_scalar!(
            r#"select body as "body: Json<Dossier>" from dossier where dossier_id = $1"#,
            id.0
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(body.map(|b| b.0))
    }

    /// A page of dossiers in reception order, after `filter.after`.
    pub(crate) async fn list(&self, filter: &DossierFilter) -> Result<Page<Dossier>, StoreError> {
        // Reception instant and id never change, so a cursor on them stays
        // correct while dossiers move between states.
        let limit = filter.limit.clamp(1, 500);
        let searched = self.searched(filter).await?;
        let rows = if searched == Searched::Nothing {
            Vec::new()
        } else {
            let mut query = QueryBuilder::<Postgres>::new("");
            push_page(&mut query, filter, &searched, i64::from(limit) + 1)?;
            query.build().fetch_all(&self.pool).await?
        };
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows.iter().take(limit as usize) {
            items.push(row.try_get::<Json<Dossier>, _>("body")?.0);
            last = Some(ListCursor {
                received_at_us: micros(row.try_get("received_at")?),
                dossier_id: DossierId(row.try_get("dossier_id")?),
                due: (filter.order == ListOrder::Due)
                    .then(|| row.try_get::<Option<chrono::NaiveDate>, _>("due_on"))
                    .transpose()?,
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
    pub(crate) async fn count(&self, filter: &DossierFilter, cap: u32) -> Result<i64, StoreError> {
        let searched = self.searched(filter).await?;
        if searched == Searched::Nothing {
            return Ok(0);
        }
        // Dynamic: the conditions depend on which filters the request has.
        let mut query = QueryBuilder::<Postgres>::new("select count(*) as n from (");
        push_page(&mut query, &unpaged(filter), &searched, i64::from(cap) + 1)?;
        query.push(") matching");
        Ok(query.build().fetch_one(&self.pool).await?.try_get("n")?)
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
            "select dossier_id from dossier_search where search like $1 limit $2",
            pattern,
            SEARCH_BY_ID
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Searched::found(
            pattern,
            ids.iter().map(|id| id.to_string()).collect(),
        ))
    }

    /// Number of dossiers, from the kept counts.
    pub(crate) async fn count_all(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar!(r#"select coalesce(sum(n), 0)::bigint as "n!" from dossier_count"#)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub(crate) async fn every_dossier(&self) -> Result<Vec<Dossier>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"select body as "body: Json<Dossier>" from dossier order by reference"#
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|body| body.0)
        .collect())
    }

    /// Every received file of every dossier, read a dossier at a time.
    pub(crate) async fn files(&self) -> Result<Vec<(String, PieceFile)>, StoreError> {
        let mut rows = sqlx::query_scalar!(
            r#"select body as "body: Json<Dossier>" from dossier order by reference"#
        )
        .fetch(&self.pool);
        let mut found = Vec::new();
        while let Some(Json(d)) = rows.try_next().await? {
            found.extend(d.files.into_iter().map(|f| (d.reference.to_string(), f)));
        }
        Ok(found)
    }

    pub(crate) async fn events_of(&self, id: DossierId) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query!(
            r#"select e.event_id, e.body, e.digest, c.global_seq as "global_seq?",
                 c.global_digest as "global_digest?"
               from dossier_event e left join journal_chain c on c.event_id = e.event_id
               where e.dossier_id = $1 order by e.seq"#,
            id.0
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            stored_event(
                FeedCursor {
                    xact_id: 0,
                    event_id: r.event_id,
                },
                &r.body,
                r.digest,
                r.global_seq,
                r.global_digest,
            )
        })
        .collect()
    }

    /// The global feed. Sequence values are not handed out in commit order
    /// with several writers: the feed orders by the writing transaction's
    /// id and shows only events of transactions older than every one still
    /// running, so that a consumer following its cursor never skips an
    /// event that commits late.
    pub(crate) async fn feed(
        &self,
        cursor: Option<&FeedCursor>,
        limit: u32,
        readable: Option<&[&str]>,
    ) -> Result<Page<StoredEvent>, StoreError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let (xact, after) = cursor.map_or((0, 0), |c| (c.xact_id, c.event_id));
        let xact = xact.to_string();
        let rows = match readable {
            None => {
                sqlx::query_as!(
                    FeedRow,
                    r#"select e.event_id, e.xact_id::text as "xact!", e.body, e.digest,
                         c.global_seq as "global_seq?", c.global_digest as "global_digest?"
                       from dossier_event e
                       left join journal_chain c on c.event_id = e.event_id
                       where e.xact_id < pg_snapshot_xmin(pg_current_snapshot())
                       and (e.xact_id, e.event_id) > ($1::text::xid8, $2)
                       order by e.xact_id, e.event_id limit $3"#,
                    xact,
                    after,
                    limit
                )
                .fetch_all(&self.pool)
                .await?
            }
            // Need to know: events of the dossiers of these programmes only.
            Some(programmes) => {
                sqlx::query_as!(
                    FeedRow,
                    r#"select e.event_id, e.xact_id::text as "xact!", e.body, e.digest,
                         c.global_seq as "global_seq?", c.global_digest as "global_digest?"
                       from dossier_event e
                       left join journal_chain c on c.event_id = e.event_id
                       join dossier d on d.dossier_id = e.dossier_id
                       where e.xact_id < pg_snapshot_xmin(pg_current_snapshot())
                       and (e.xact_id, e.event_id) > ($1::text::xid8, $2)
                       and d.programmes like any($4::text[])
                       order by e.xact_id, e.event_id limit $3"#,
                    xact,
                    after,
                    limit,
                    &programme_patterns(programmes)
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        let items = rows
            .into_iter()
            .map(|r| {
                stored_event(
                    FeedCursor {
                        xact_id: read_xact(&r.xact)?,
                        event_id: r.event_id,
                    },
                    &r.body,
                    r.digest,
                    r.global_seq,
                    r.global_digest,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The cursor always moves to the last event seen; with no new event
        // it stays where it was, so the consumer polls again with it.
        let next = items
            .last()
            .map(|e| e.position.clone())
            .or_else(|| cursor.map(|c| c.encode()));
        Ok(Page { items, next })
    }

    /// Every transaction below the snapshot's xmin has ended: the last of
    /// their events is a place no later event can come before.
    pub(crate) async fn end_of_feed(&self) -> Result<FeedCursor, StoreError> {
        let row = sqlx::query!(
            r#"select e.xact_id::text as "xact!", e.event_id from dossier_event e
               where e.xact_id < pg_snapshot_xmin(pg_current_snapshot())
               order by e.xact_id desc, e.event_id desc limit 1"#
        )
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(FeedCursor {
                xact_id: read_xact(&row.xact)?,
                event_id: row.event_id,
            }),
            None => Ok(FeedCursor::default()),
        }
    }

    /// Counts per wave and state, and per agency the dossiers awaiting it;
    /// over the dossiers of the `readable` programmes only when given. From
    /// the counts the writes keep (see `0007_dossier_counts.sql`).
    pub(crate) async fn counts(
        &self,
        readable: Option<&[&str]>,
        today: chrono::NaiveDate,
    ) -> Result<Stats, StoreError> {
        let patterns = readable.map(programme_patterns);
        let by_state = sqlx::query!(
            r#"select wave, state, sum(n)::bigint as "n!" from dossier_count
               where $1::text[] is null or programmes like any($1)
               group by wave, state having sum(n) > 0 order by wave, state"#,
            patterns.as_deref()
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok(StateCount {
                wave: read_number("dossier_count.wave", r.wave)?,
                state: r.state,
                count: r.n,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let awaiting = per_agency(
            sqlx::query!(
                r#"select awaiting, sum(n)::bigint as "n!" from dossier_count
                   where $1::text[] is null or programmes like any($1)
                   group by awaiting having sum(n) > 0"#,
                patterns.as_deref()
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| (r.awaiting, r.n)),
        );
        // Late depends on the day: counted, not kept, over the late
        // dossiers only (the partial index on `due_on`).
        let overdue = per_agency(
            sqlx::query!(
                r#"select awaiting, count(*) as "n!" from dossier
                   where due_on is not null and due_on < $2
                     and ($1::text[] is null or programmes like any($1))
                   group by awaiting"#,
                patterns.as_deref(),
                today
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| (r.awaiting, r.n)),
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
        let patterns = readable.map(programme_patterns);
        let groups = sqlx::query!(
            r#"select departement as "departement!", wave, state, awaiting, count(*) as "n!"
               from dossier
               where ($1::text[] is null or programmes like any($1))
                 and ($2::text[] is null or departement = any($2))
               group by departement, wave, state, awaiting"#,
            patterns.as_deref(),
            departements
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok((
                r.departement,
                read_number("dossier.wave", r.wave)?,
                r.state,
                r.awaiting,
                r.n,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let late = sqlx::query!(
            r#"select awaiting, count(*) as "n!" from dossier
               where due_on is not null and due_on < $3
                 and ($1::text[] is null or programmes like any($1))
                 and ($2::text[] is null or departement = any($2))
               group by awaiting"#,
            patterns.as_deref(),
            departements,
            today
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| (r.awaiting, r.n))
        .collect();
        Ok(Stats::of_groups(groups, late))
    }
}

/// A row of the feed.
struct FeedRow {
    event_id: i64,
    xact: String,
    body: String,
    digest: String,
    global_seq: Option<i64>,
    global_digest: Option<String>,
}

fn read_xact(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt("dossier_event.xact_id".into()))
}

/// An event as read, `position` the feed's cursor just after it.
fn stored_event(
    position: FeedCursor,
    body: &str,
    digest: String,
    global_seq: Option<i64>,
    global_digest: Option<String>,
) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: position.encode(),
        event: serde_json::from_str(body)?,
        content: serde_json::from_str(body)?,
        digest,
        global_seq,
        global_digest,
    })
}

/// `like` patterns that find one of `programmes` in a `,a,b,` column. The
/// ids come from the validated definition; anything but an identifier is
/// left out (it then matches nothing).
fn programme_patterns(programmes: &[&str]) -> Vec<String> {
    programmes
        .iter()
        .filter(|p| is_identifier(p))
        .map(|p| format!("%,{p},%"))
        .collect()
}

/// The query of a page: `select body, received_at, dossier_id` of the
/// dossiers matching `filter`, in reception order, at most `limit`, one
/// ordered range of the walked index per value, merged
/// ([`ami_store::lists`]).
///
/// Dynamic: the filter's conditions and their number of values depend on
/// the request.
fn push_page(
    query: &mut QueryBuilder<'_, Postgres>,
    filter: &DossierFilter,
    searched: &Searched,
    limit: i64,
) -> Result<(), StoreError> {
    if filter.order == ListOrder::Due {
        // By due date: what the filter selects, sorted (lists by due date
        // are queues, of an agency or of the late).
        query.push("select d.body, d.received_at, d.dossier_id, d.due_on from dossier d where ");
        conditions(query, filter, searched, None)?;
        query
            .push(" order by d.due_on nulls last, d.received_at, d.dossier_id limit ")
            .push_bind(limit);
        return Ok(());
    }
    // PostgreSQL picks the index that the branch's equalities name.
    let (_, branches) = walk(filter, searched);
    let branches: Vec<Option<&Branch>> = if branches.is_empty() {
        vec![None]
    } else {
        branches.iter().map(Some).collect()
    };
    query.push("select body, received_at, dossier_id, null::date as due_on from (");
    for (i, branch) in branches.iter().enumerate() {
        if i > 0 {
            query.push(" union all ");
        }
        query.push("(select d.body, d.received_at, d.dossier_id from dossier d where ");
        conditions(query, filter, searched, *branch)?;
        query
            .push(" order by d.received_at, d.dossier_id limit ")
            .push_bind(limit)
            .push(")");
    }
    query
        .push(") page order by received_at, dossier_id limit ")
        .push_bind(limit);
    Ok(())
}

/// The conditions of a dossier query (`d` is the dossier table), each
/// value bound; a branch of [`push_page`] replaces the values of the
/// columns it fixes by its own.
fn conditions(
    query: &mut QueryBuilder<'_, Postgres>,
    filter: &DossierFilter,
    searched: &Searched,
    branch: Option<&Branch>,
) -> Result<(), StoreError> {
    query.push("true");
    // One value or several: `state = … or …`; lists kept as `,a,b,`
    // columns match any of the values.
    let any_of = |query: &mut QueryBuilder<'_, Postgres>,
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
                query.push(format!("{column} like "));
                query.push_bind(format!("%,{v},%"));
            } else {
                query.push(format!("{column} = "));
                query.push_bind(v.clone());
            }
        }
        query.push(")");
    };
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
            .push_bind(today);
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
            query.push(" and false");
        }
        any_of(query, "d.programmes", readable, true, None);
    }
    let waves: Vec<i64> = match fixed(branch, Column::Wave) {
        Some(wave) => vec![wave.parse().unwrap_or(-1)],
        None => filter.waves.iter().map(|w| i64::from(*w)).collect(),
    };
    if !waves.is_empty() {
        query.push(" and d.wave in (");
        let mut separated = query.separated(", ");
        for w in waves {
            separated.push_bind(w);
        }
        query.push(")");
    }
    match searched {
        Searched::NotAsked => {}
        Searched::Nothing => {
            query.push(" and false");
        }
        Searched::Few(ids) => {
            let ids = ids
                .iter()
                .map(|id| id.parse::<uuid::Uuid>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt(format!("dossier_search.dossier_id : {e}")))?;
            query
                .push(" and d.dossier_id = any(")
                .push_bind(ids)
                .push(")");
        }
        // The search table's trigram index serves the LIKE.
        Searched::Many(pattern) => {
            query.push(
                " and d.dossier_id in (select dossier_id from dossier_search where search like ",
            );
            query.push_bind(pattern.clone());
            query.push(")");
        }
    }
    if let Some(after) = filter.after.as_ref() {
        let position = |query: &mut QueryBuilder<'_, Postgres>| {
            query.push("(d.received_at, d.dossier_id) > (");
            query.push_bind(cursor_instant(after.received_at_us));
            query.push(", ");
            query.push_bind(after.dossier_id.0);
            query.push(")");
        };
        match after.due {
            None => {
                query.push(" and ");
                position(query);
            }
            // By due date, dossiers with no deadline last.
            Some(Some(day)) => {
                query.push(" and (d.due_on > ");
                query.push_bind(day);
                query.push(" or d.due_on is null or (d.due_on = ");
                query.push_bind(day);
                query.push(" and ");
                position(query);
                query.push("))");
            }
            Some(None) => {
                query.push(" and d.due_on is null and ");
                position(query);
            }
        }
    }
    Ok(())
}

/// The instant of a list cursor (microseconds, as clients hold it). A
/// forged one beyond what PostgreSQL or chrono can hold is moved to their
/// limit, where it orders as it did as a number, rather than fail the
/// query.
fn cursor_instant(us: i64) -> DateTime<Utc> {
    // 4714-11-24 BC, PostgreSQL's first instant.
    let first = NaiveDate::from_ymd_opt(-4713, 11, 24)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    DateTime::from_timestamp_micros(us)
        .map(|t| t.max(first))
        .unwrap_or(if us < 0 {
            first
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

#[cfg(test)]
mod plans {
    //! Every list the API and the pages can ask for is served by an index:
    //! a plan that reads the whole `dossier` or `dossier_event` table fails
    //! here. Sequential scans are priced out (`enable_seqscan = off`), so
    //! that a small table's plan is the plan of a large one where an index
    //! can serve; where none can, PostgreSQL scans all the same, and this
    //! names the list.

    use ami_store::lists::every_filter_combination;
    use ami_store::DatabaseUrl;
    use sqlx::Connection;

    use super::*;

    /// The plan's lines that read a whole table of dossiers or events.
    async fn full_scans(
        conn: &mut sqlx::PgConnection,
        query: &mut QueryBuilder<'_, Postgres>,
    ) -> Vec<String> {
        query
            .build()
            .fetch_all(&mut *conn)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .filter(|line| {
                line.contains("Seq Scan on dossier ") || line.contains("Seq Scan on dossier_event ")
            })
            .collect()
    }

    #[tokio::test]
    async fn no_list_reads_every_dossier() {
        let server = std::env::var("AMI_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("ami_t_plans_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("server");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        let url = DatabaseUrl::parse(&format!("{base}/{name}")).expect("url");
        let store = PgStore::connect(&url).await.expect("store");
        let mut conn = store.pool.acquire().await.expect("connection");
        sqlx::query("set enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .expect("set");
        let mut failures = Vec::new();
        for (name, filter, searched) in every_filter_combination(&ami_core::Definition::ami2()) {
            let mut page = QueryBuilder::<Postgres>::new("explain ");
            push_page(&mut page, &filter, &searched, 51).expect("page");
            let mut count = QueryBuilder::<Postgres>::new("explain select count(*) from (");
            push_page(&mut count, &unpaged(&filter), &searched, 1001).expect("count");
            count.push(") matching");
            for (what, query) in [("page", &mut page), ("count", &mut count)] {
                let scans = full_scans(&mut conn, query).await;
                if !scans.is_empty() {
                    failures.push(format!("{what} of {name}: {scans:?}"));
                }
            }
        }
        drop(conn);
        store.pool.close().await;
        let _ = sqlx::query(&format!("drop database if exists {name}"))
            .execute(&mut admin)
            .await;
        assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
    }
}
