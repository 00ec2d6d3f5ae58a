//! A database written by the service before the typed columns (migrations
//! 1 to 5: text ids, bigint microseconds, JSON as text) keeps everything
//! through migration 6: every event, digest and place in the global chain,
//! its tokens, sessions, idempotency records and definition; the audit
//! finds nothing; and the journal goes on where it was.

mod common;

use std::borrow::Cow;
use std::sync::Arc;

use ami_core::{awaiting, Actor, Definition, Dossier, DossierId, Porteur};
use ami_store::transition::{prepare, Prepared};
use ami_store::{
    chain_digest, definition_sha256, hash_secret, list_column, micros, search_column, to_i64,
    Content, DepositOrder, DossierFilter, Executed, IdempotencyKey, Order, Principal, Store,
    TokenRecord, TransitionRequest, GENESIS_DIGEST,
};
use ami_store_postgres::PgStore;
use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

fn definition() -> Arc<Definition> {
    Arc::new(Definition::ami2())
}

fn person(id: &str, agency: &str, role: &str) -> Actor {
    let def = definition();
    Actor {
        id: id.into(),
        name: id.into(),
        agency: def.agency_id(agency).expect("agency"),
        role: def.role_id(role).expect("role"),
    }
}

fn agent() -> Actor {
    person("camille.martin@lecnam.net", "dar", "agent")
}

fn responsable() -> Actor {
    person("dominique.petit@lecnam.net", "dar", "responsable")
}

/// An instant of the first wave, with microseconds that a conversion
/// through seconds or milliseconds would lose.
fn in_wave_one(minutes: i64) -> DateTime<Utc> {
    definition().campaign().opens_at()
        + Duration::hours(1)
        + Duration::minutes(minutes)
        + Duration::microseconds(123_457)
}

fn request(
    dossier_id: DossierId,
    command: Order,
    actor: Actor,
    now: DateTime<Utc>,
    idempotency: Option<&str>,
) -> TransitionRequest {
    TransitionRequest {
        definition: definition(),
        dossier_id,
        expected_version: None,
        command,
        principal: Principal::Actor(actor),
        now,
        idempotency: idempotency.map(|key| IdempotencyKey {
            key: key.into(),
            request_sha256: format!("sha-of-{key}"),
        }),
        respond: Arc::new(|d: &Dossier, _: &Actor| format!("{}@{}", d.reference, d.version)),
        arrival: None,
    }
}

fn deposit_order(commune: &str, code_insee: &str, at: DateTime<Utc>) -> (DossierId, Order) {
    let id = DossierId(uuid::Uuid::now_v7());
    let order = Order {
        content: Content::Deposit(Box::new(DepositOrder {
            id,
            commune: commune.into(),
            code_insee: code_insee.into(),
            porteur: Porteur {
                nom: format!("Ville de {commune}").into(),
                email: Some("mairie@example.fr".into()),
            },
            programmes: vec!["acv".into(), "ti".into()],
            received_at: at,
            pieces: Vec::new(),
            doublon_confirme: false,
        })),
        ..Order::new("deposer")
    };
    (id, order)
}

/// The old schema's writes, as the service made them before migration 6.
/// Dynamic SQL: the schema they were written for is not the one the
/// crate's checked queries know.
struct OldService {
    pool: PgPool,
}

impl OldService {
    /// Appends the event and writes the projection as a transition did.
    async fn write(&self, req: &TransitionRequest, p: &Prepared) {
        let mut tx = self.pool.begin().await.expect("begin");
        let e = &p.event;
        let event_id: i64 = sqlx::query(
            "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, \
             digest) values ($1, $2, $3, $4, $5, $6, $7, $8) returning event_id",
        )
        .bind(e.dossier_id.to_string())
        .bind(to_i64(e.seq))
        .bind(e.action.as_str())
        .bind(e.actor.agency.as_str())
        .bind(e.actor.id.as_str())
        .bind(micros(e.at))
        .bind(&p.event_json)
        .bind(&p.digest)
        .fetch_one(&mut *tx)
        .await
        .expect("event")
        .get("event_id");
        sqlx::query("insert into journal_pending (event_id) values ($1)")
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .expect("pending");
        let d = &p.dossier;
        let body = serde_json::to_string(d).expect("json");
        let waits = list_column(awaiting(&req.definition, d).into_iter());
        match p.previous_version {
            None => {
                sqlx::query(
                    "insert into dossier (dossier_id, reference, wave, state, version, \
                     programmes, search, awaiting, received_at_us, updated_at_us, last_digest, \
                     body, code_insee) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(d.id.to_string())
                .bind(d.reference.as_str())
                .bind(i64::from(d.wave))
                .bind(d.state.as_str())
                .bind(to_i64(d.version))
                .bind(list_column(d.programmes.iter().map(|p| p.as_str())))
                .bind(search_column(d))
                .bind(&waits)
                .bind(micros(d.received_at))
                .bind(micros(d.updated_at))
                .bind(&p.digest)
                .bind(&body)
                .bind(d.code_insee.as_str())
                .execute(&mut *tx)
                .await
                .expect("insert dossier");
            }
            Some(previous) => {
                let done = sqlx::query(
                    "update dossier set state = $1, version = $2, updated_at_us = $3, \
                     last_digest = $4, body = $5, awaiting = $6 \
                     where dossier_id = $7 and version = $8",
                )
                .bind(d.state.as_str())
                .bind(to_i64(d.version))
                .bind(micros(d.updated_at))
                .bind(&p.digest)
                .bind(&body)
                .bind(&waits)
                .bind(d.id.to_string())
                .bind(to_i64(previous))
                .execute(&mut *tx)
                .await
                .expect("update dossier");
                assert_eq!(done.rows_affected(), 1);
            }
        }
        if let Some(key) = &req.idempotency {
            sqlx::query(
                "insert into idempotency (actor_id, idempotency_key, request_sha256, status, \
                 body, created_at_us) values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(e.actor.id.as_str())
            .bind(key.key.as_str())
            .bind(key.request_sha256.as_str())
            .bind(i64::from(p.status))
            .bind(&p.body)
            .bind(micros(req.now))
            .execute(&mut *tx)
            .await
            .expect("idempotency");
        }
        tx.commit().await.expect("commit");
    }

    /// A deposit, numbered from its wave's sequence, and its digest.
    async fn deposit(&self, commune: &str, code_insee: &str, minutes: i64) -> (Dossier, String) {
        let at = in_wave_one(minutes);
        let (id, order) = deposit_order(commune, code_insee, at);
        let req = request(id, order, agent(), at, None);
        sqlx::query("create sequence if not exists reference_wave_1")
            .execute(&self.pool)
            .await
            .expect("sequence");
        let n: i64 = sqlx::query("select nextval('reference_wave_1') as n")
            .fetch_one(&self.pool)
            .await
            .expect("number")
            .get("n");
        let p = prepare(&req, &agent(), None, Some((n as u64, Vec::new()))).expect("deposit");
        self.write(&req, &p).await;
        (p.dossier, p.digest)
    }

    /// A transition on `d` whose last digest is `last`.
    async fn transition(
        &self,
        d: &Dossier,
        last: &str,
        order: Order,
        minutes: i64,
        key: Option<&str>,
    ) -> (Dossier, String) {
        let req = request(d.id, order, responsable(), in_wave_one(minutes), key);
        let p = prepare(
            &req,
            &responsable(),
            Some((d.clone(), last.to_string())),
            None,
        )
        .expect("transition");
        self.write(&req, &p).await;
        (p.dossier, p.digest)
    }

    /// Gives the pending events their place, as the old sealer did.
    async fn seal(&self) {
        let mut tx = self.pool.begin().await.expect("begin");
        let head = sqlx::query(
            "select global_seq, global_digest from journal_head where singleton = 1 for update",
        )
        .fetch_one(&mut *tx)
        .await
        .expect("head");
        let (mut seq, mut digest): (i64, String) =
            (head.get("global_seq"), head.get("global_digest"));
        let rows = sqlx::query(
            "select p.event_id, e.digest from journal_pending p \
             join dossier_event e on e.event_id = p.event_id order by p.event_id",
        )
        .fetch_all(&mut *tx)
        .await
        .expect("pending");
        for row in rows {
            let event_id: i64 = row.get("event_id");
            seq += 1;
            digest = chain_digest(&digest, row.get::<&str, _>("digest"));
            sqlx::query(
                "insert into journal_chain (event_id, global_seq, global_digest) \
                 values ($1, $2, $3)",
            )
            .bind(event_id)
            .bind(seq)
            .bind(&digest)
            .execute(&mut *tx)
            .await
            .expect("place");
            sqlx::query("delete from journal_pending where event_id = $1")
                .bind(event_id)
                .execute(&mut *tx)
                .await
                .expect("unpend");
        }
        sqlx::query(
            "update journal_head set global_seq = $1, global_digest = $2 where singleton = 1",
        )
        .bind(seq)
        .bind(&digest)
        .execute(&mut *tx)
        .await
        .expect("head");
        tx.commit().await.expect("commit");
    }
}

fn set_aside() -> Order {
    Order::new("classer_sans_suite").with_motivation("Dossier retiré par la commune")
}

fn reopen() -> Order {
    Order::new("rouvrir").with_motivation("La commune confirme « son » dépôt")
}

/// Every event as stored: id, dossier, seq, instant (µs), body, digest.
type EventRows = Vec<(i64, String, i64, i64, String, String)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_columns_keep_every_row_and_the_journal_goes_on() {
    // Arrange: the schema of migrations 1 to 5, filled as the service
    // wrote it.
    let url = common::fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(url.expose())
        .await
        .expect("pool");
    let mut migrator = sqlx::migrate!();
    migrator.migrations = Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|m| m.version <= 5)
            .cloned()
            .collect(),
    );
    migrator.run(&pool).await.expect("migrations 1 to 5");
    let old = OldService { pool: pool.clone() };
    let def = definition();

    let (nevers, nevers_last) = old.deposit("Nevers", "58194", 0).await;
    let (vierzon, _) = old.deposit("Vierzon", "18279", 1).await;
    let (nevers, nevers_last) = old
        .transition(&nevers, &nevers_last, set_aside(), 2, Some("k1"))
        .await;
    let (nevers, nevers_last) = old
        .transition(&nevers, &nevers_last, reopen(), 3, None)
        .await;
    old.seal().await;
    // The last event of the old service, written but not sealed yet.
    let (epinal, _) = old.deposit("Épinal", "88160", 4).await;

    let token_id = uuid::Uuid::new_v4();
    let token = TokenRecord {
        id: token_id,
        person_id: "dominique.petit@lecnam.net".into(),
        name: "Dominique Petit".into(),
        agency: "dar".into(),
        role: "responsable".into(),
        created_at: in_wave_one(-60),
        revoked_at: None,
    };
    // Created later: the list orders tokens by creation, then by id.
    let revoked = TokenRecord {
        id: uuid::Uuid::new_v4(),
        created_at: in_wave_one(-45),
        revoked_at: Some(in_wave_one(-30)),
        ..token.clone()
    };
    for t in [&token, &revoked] {
        sqlx::query(
            "insert into api_token (token_id, person_id, name, agency, role, secret_sha256, \
             created_at_us, revoked_at_us) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.id.to_string())
        .bind(&t.person_id)
        .bind(&t.name)
        .bind(&t.agency)
        .bind(&t.role)
        .bind(hash_secret("s3cret-s3cret-s3cret"))
        .bind(micros(t.created_at))
        .bind(t.revoked_at.map(micros))
        .execute(&pool)
        .await
        .expect("token");
    }
    let seen = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    sqlx::query(
        "insert into web_session (session_sha256, token_id, csrf, created_at_us, \
         last_seen_at_us) values ($1, $2, $3, $4, $4)",
    )
    .bind("session-sha")
    .bind(token_id.to_string())
    .bind("csrf-token")
    .bind(micros(seen))
    .execute(&pool)
    .await
    .expect("session");
    let activated = in_wave_one(-120);
    sqlx::query(
        "insert into definition_version (version, sha256, source, activated_at_us) \
         values ($1, $2, $3, $4)",
    )
    .bind(def.version())
    .bind(definition_sha256(&def))
    .bind("# la définition\n")
    .bind(micros(activated))
    .execute(&pool)
    .await
    .expect("definition");

    let events_before: EventRows = sqlx::query(
        "select event_id, dossier_id, seq, at_us, body, digest from dossier_event \
         order by event_id",
    )
    .fetch_all(&pool)
    .await
    .expect("events")
    .iter()
    .map(|r| {
        (
            r.get("event_id"),
            r.get("dossier_id"),
            r.get("seq"),
            r.get("at_us"),
            r.get("body"),
            r.get("digest"),
        )
    })
    .collect();
    assert_eq!(events_before.len(), 5);
    let places_before = places(&pool).await;
    assert_eq!(places_before.len(), 4);
    pool.close().await;

    // Act: the store migrates the database and brings its rows up to date.
    let store = PgStore::connect(&url).await.expect("connect");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url.expose())
        .await
        .expect("pool");

    // Assert: every event and digest, to the byte and the microsecond.
    let events_after: EventRows = sqlx::query(
        "select event_id, dossier_id::text as dossier_id, seq, \
         (extract(epoch from occurred_at) * 1000000)::bigint as at_us, body, digest \
         from dossier_event order by event_id",
    )
    .fetch_all(&pool)
    .await
    .expect("events")
    .iter()
    .map(|r| {
        (
            r.get("event_id"),
            r.get("dossier_id"),
            r.get("seq"),
            r.get("at_us"),
            r.get("body"),
            r.get("digest"),
        )
    })
    .collect();
    assert_eq!(events_after, events_before);
    let instants: Vec<DateTime<Utc>> =
        sqlx::query_scalar("select occurred_at from dossier_event order by event_id")
            .fetch_all(&pool)
            .await
            .expect("instants");
    for (instant, before) in instants.iter().zip(&events_before) {
        assert_eq!(micros(*instant), before.3);
    }

    // The places of the global chain kept, the pending event placed next.
    let places_after = places(&pool).await;
    assert_eq!(places_after[..4], places_before[..]);
    assert_eq!(places_after.len(), 5);
    assert_eq!(places_after[4].1, 5);
    assert_eq!(
        places_after[4].2,
        chain_digest(&places_before[3].2, &events_before[4].5)
    );
    let head = store.global_head().await.expect("head");
    assert_eq!(
        (head.seq, head.digest.as_str()),
        (5, places_after[4].2.as_str())
    );

    // Tokens, sessions, definition, idempotency records.
    let (found, secret) = store
        .find_token(token_id)
        .await
        .expect("find")
        .expect("token");
    assert_eq!(found, token);
    assert_eq!(secret, hash_secret("s3cret-s3cret-s3cret"));
    assert_eq!(
        store.list_tokens().await.expect("tokens"),
        vec![token.clone(), revoked.clone()]
    );
    let session = store
        .find_session(
            "session-sha",
            seen + Duration::seconds(5),
            Duration::hours(1),
        )
        .await
        .expect("session")
        .expect("live");
    assert_eq!(
        (session.token, session.csrf.as_str()),
        (token, "csrf-token")
    );
    let active = store
        .active_definition()
        .await
        .expect("definition")
        .expect("active");
    assert_eq!(
        (
            active.sha256.as_str(),
            active.source.as_str(),
            active.activated_at
        ),
        (
            definition_sha256(&def).as_str(),
            "# la définition\n",
            activated
        )
    );
    match store
        .execute(request(
            nevers.id,
            set_aside(),
            responsable(),
            in_wave_one(2),
            Some("k1"),
        ))
        .await
    {
        Ok(Executed::Replayed { status, body }) => {
            assert_eq!((status, body.as_str()), (200, "AMI2-V1-0001@2"))
        }
        other => panic!("the old key replays: {other:?}"),
    }

    // Dossiers read back equal; the list in reception order; the audit clean.
    for d in [&nevers, &vierzon, &epinal] {
        assert_eq!(
            store.get_dossier(d.id).await.expect("read").as_ref(),
            Some(d)
        );
    }
    let listed = store
        .list_dossiers(&DossierFilter {
            limit: 10,
            q: Some("epinal".into()),
            ..DossierFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.items, vec![epinal.clone()]);
    let report = store.verify(&def, None).await.expect("verify");
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.dossiers, report.events), (3, 5));

    // A new transition on an old dossier chains on from its last digest.
    let (set_aside_again, _) = match store
        .execute(request(
            nevers.id,
            set_aside(),
            responsable(),
            in_wave_one(10),
            None,
        ))
        .await
    {
        Ok(Executed::Applied { dossier, body }) => (*dossier, body),
        other => panic!("a transition after the migration: {other:?}"),
    };
    assert_eq!(set_aside_again.version, 4);
    let history = store.history(nevers.id).await.expect("history");
    assert_eq!(history.len(), 4);
    let last = history.last().expect("last");
    assert_eq!(
        last.digest,
        chain_digest(
            &nevers_last,
            &serde_jcs::to_string(&last.content).expect("jcs")
        )
    );
    let mut previous = GENESIS_DIGEST.to_string();
    for e in &history {
        assert_eq!(
            e.digest,
            chain_digest(&previous, &serde_jcs::to_string(&e.content).expect("jcs"))
        );
        previous = e.digest.clone();
    }
    let report = store.verify(&def, Some(&head)).await.expect("verify again");
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.events, 6);
    pool.close().await;
    store.close().await;
}

/// The global chain's places: event, place, global digest.
async fn places(pool: &PgPool) -> Vec<(i64, i64, String)> {
    sqlx::query("select event_id, global_seq, global_digest from journal_chain order by global_seq")
        .fetch_all(pool)
        .await
        .expect("places")
        .iter()
        .map(|r| {
            (
                r.get("event_id"),
                r.get("global_seq"),
                r.get("global_digest"),
            )
        })
        .collect()
}
