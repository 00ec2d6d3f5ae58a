//! What the service relies on, run once through every kind of query of the
//! PostgreSQL store: deposits and their refusals, grouped transitions and
//! replays, the list and its filters, counts, the feed, tokens, sessions,
//! definitions, the audit and the rebuild.

mod common;

use std::sync::Arc;

use ami_core::{Actor, Definition, Dossier, DossierId, Porteur};
use ami_store::{
    awaiting_columns, chain_digest, Content, DefinitionCheck, DepositOrder, DossierFilter,
    Executed, IdempotencyKey, ListCursor, Order, PresentedToken, Principal, Store, StoreError,
    TokenRecord, TransitionRequest, GENESIS_DIGEST,
};
use ami_store_postgres::PgStore;
use chrono::{DateTime, Duration, Utc};

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

fn in_wave_one() -> DateTime<Utc> {
    definition().campaign().opens_at() + Duration::hours(1)
}

fn request(
    dossier_id: DossierId,
    command: Order,
    principal: Principal,
    expected_version: Option<u64>,
    idempotency: Option<&str>,
) -> TransitionRequest {
    TransitionRequest {
        definition: definition(),
        dossier_id,
        expected_version,
        command,
        principal,
        now: in_wave_one(),
        idempotency: idempotency.map(|key| IdempotencyKey {
            key: key.into(),
            request_sha256: format!("sha-of-{key}"),
        }),
        respond: Arc::new(|d: &Dossier, _: &Actor| format!("{}@{}", d.reference, d.version)),
        arrival: None,
    }
}

fn agent() -> Principal {
    Principal::Actor(person("camille.martin@lecnam.net", "dar", "agent"))
}

fn responsable() -> Principal {
    Principal::Actor(person("dominique.petit@lecnam.net", "dar", "responsable"))
}

fn deposit_order(commune: &str, code_insee: &str, programme: &str) -> (DossierId, Order) {
    let id = DossierId(uuid::Uuid::now_v7());
    let order = Order {
        content: Content::Deposit(Box::new(DepositOrder {
            id,
            commune: commune.into(),
            code_insee: code_insee.into(),
            porteur: Porteur {
                nom: format!("Ville de {commune}").into(),
                email: None,
            },
            programmes: vec![programme.into()],
            received_at: in_wave_one(),
            pieces: Vec::new(),
            doublon_confirme: false,
        })),
        ..Order::new("deposer")
    };
    (id, order)
}

async fn deposit(store: &PgStore, commune: &str, code_insee: &str, programme: &str) -> Dossier {
    let (id, order) = deposit_order(commune, code_insee, programme);
    match store.execute(request(id, order, agent(), None, None)).await {
        Ok(Executed::Applied { dossier, .. }) => *dossier,
        other => panic!("deposit of {commune}: {other:?}"),
    }
}

fn set_aside() -> Order {
    Order::new("classer_sans_suite").with_motivation("Dossier retiré par la commune")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_answers_as_the_service_expects() {
    let url = common::fresh_database().await;
    let store = PgStore::connect(&url).await.expect("connect");
    let def = definition();

    // Deposits: numbered in their wave; a second one of a commune refused.
    let nevers = deposit(&store, "Nevers", "58194", "acv").await;
    let vierzon = deposit(&store, "Vierzon", "18279", "ti").await;
    assert_eq!(nevers.reference, "AMI2-V1-0001");
    assert_eq!(vierzon.reference, "AMI2-V1-0002");
    // Received at the same instant, they are listed by id: v7 ids made in
    // one process are ordered.
    assert!(nevers.id < vierzon.id);
    let (id, order) = deposit_order("Nevers", "58194", "acv");
    match store.execute(request(id, order, agent(), None, None)).await {
        Err(StoreError::Rejected { .. }) => {}
        other => panic!("a second deposit of Nevers: {other:?}"),
    }

    // A grouped transition, its replay, a stale version, and one with no
    // version expected.
    let first = store
        .execute(request(
            nevers.id,
            set_aside(),
            responsable(),
            Some(1),
            Some("k1"),
        ))
        .await
        .expect("set aside");
    let Executed::Applied { dossier, body } = first else {
        panic!("applied: {first:?}")
    };
    assert_eq!(dossier.version, 2);
    match store
        .execute(request(
            nevers.id,
            set_aside(),
            responsable(),
            Some(1),
            Some("k1"),
        ))
        .await
    {
        Ok(Executed::Replayed {
            status,
            body: again,
        }) => {
            assert_eq!((status, again), (200, body));
        }
        other => panic!("replay: {other:?}"),
    }
    match store
        .execute(request(
            nevers.id,
            set_aside(),
            responsable(),
            Some(1),
            None,
        ))
        .await
    {
        Err(StoreError::Conflict { current: Some(2) }) => {}
        other => panic!("stale version: {other:?}"),
    }
    let mut reopen = Order::new("rouvrir");
    reopen.motivation = Some("La commune confirme".into());
    let reopened = match store
        .execute(request(nevers.id, reopen, responsable(), None, None))
        .await
    {
        Ok(Executed::Applied { dossier, .. }) => *dossier,
        other => panic!("reopen: {other:?}"),
    };
    assert_eq!(reopened.version, 3);
    assert_eq!(
        store.get_dossier(nevers.id).await.expect("read"),
        Some(reopened.clone())
    );
    match store
        .execute(request(
            DossierId(uuid::Uuid::now_v7()),
            set_aside(),
            responsable(),
            None,
            None,
        ))
        .await
    {
        Err(StoreError::NotFound) => {}
        other => panic!("no such dossier: {other:?}"),
    }

    // The list, its filters, its cursor and its count.
    let all = DossierFilter {
        limit: 50,
        ..DossierFilter::default()
    };
    let page = store.list_dossiers(&all).await.expect("list");
    assert_eq!(page.items, vec![reopened.clone(), vierzon.clone()]);
    assert!(page.next.is_none());
    let one = DossierFilter {
        limit: 1,
        ..all.clone()
    };
    let page = store.list_dossiers(&one).await.expect("page 1");
    assert_eq!(page.items, vec![reopened.clone()]);
    let after = ListCursor::decode(page.next.as_deref().expect("more")).expect("cursor");
    let page = store
        .list_dossiers(&DossierFilter {
            after: Some(after),
            ..one.clone()
        })
        .await
        .expect("page 2");
    assert_eq!(page.items, vec![vierzon.clone()]);
    for (filter, expected) in [
        (
            DossierFilter {
                q: Some("NEVERS".into()),
                ..all.clone()
            },
            vec![reopened.id],
        ),
        (
            DossierFilter {
                q: Some("%".into()),
                ..all.clone()
            },
            vec![],
        ),
        (
            DossierFilter {
                programmes: vec!["ti".into()],
                ..all.clone()
            },
            vec![vierzon.id],
        ),
        (
            DossierFilter {
                readable: Some(vec![]),
                ..all.clone()
            },
            vec![],
        ),
        (
            DossierFilter {
                states: vec![vierzon.state.to_string()],
                waves: vec![1, 2],
                ..all.clone()
            },
            vec![reopened.id, vierzon.id],
        ),
        (
            DossierFilter {
                awaiting_columns: awaiting_columns(&def, &["dar".to_string()]),
                ..all.clone()
            },
            vec![reopened.id, vierzon.id],
        ),
    ] {
        let ids: Vec<DossierId> = store
            .list_dossiers(&filter)
            .await
            .expect("filtered")
            .items
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, expected, "{filter:?}");
        assert_eq!(
            store.count_matching(&filter, 1000).await.expect("count"),
            expected.len() as i64
        );
    }
    assert_eq!(store.count_matching(&all, 0).await.expect("capped"), 1);
    assert_eq!(store.count_dossiers().await.expect("count"), 2);
    assert_eq!(store.all_dossiers().await.expect("all").len(), 2);

    // Counts, over all or the readable programmes.
    let stats = store
        .stats(
            None,
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("a day"),
        )
        .await
        .expect("stats");
    assert_eq!(stats.by_state.iter().map(|s| s.count).sum::<i64>(), 2);
    assert_eq!(stats.awaiting, vec![("dar".to_string(), 2)]);
    let only_ti = store
        .stats(
            Some(&["ti"]),
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("a day"),
        )
        .await
        .expect("stats ti");
    assert_eq!(only_ti.by_state.iter().map(|s| s.count).sum::<i64>(), 1);

    // History and feed.
    let history = store.history(nevers.id).await.expect("history");
    assert_eq!(history.len(), 3);
    let mut previous = GENESIS_DIGEST.to_string();
    for e in &history {
        let canonical = serde_jcs::to_string(&e.content).expect("jcs");
        assert_eq!(e.digest, chain_digest(&previous, &canonical));
        previous = e.digest.clone();
    }
    // The service seals in the background; nothing here did yet.
    assert_eq!(store.seal_pending().await.expect("seal"), 4);
    let feed = store.events_after(None, 100, None).await.expect("feed");
    assert_eq!(feed.items.len(), 4);
    assert!(feed.items.iter().all(|e| e.global_seq.is_some()));
    let end = store.feed_end().await.expect("end");
    assert_eq!(feed.next, Some(end.encode()));
    let rest = store
        .events_after(Some(&end), 100, None)
        .await
        .expect("rest");
    assert!(rest.items.is_empty());
    assert_eq!(rest.next, Some(end.encode()));
    let ti = store
        .events_after(None, 100, Some(&["ti"]))
        .await
        .expect("feed ti");
    assert_eq!(ti.items.len(), 1);
    assert_eq!(ti.items[0].event.dossier_id, vierzon.id);

    // Tokens and sessions, and a transition by token.
    let token = PresentedToken::parse(&format!(
        "ami_{}_{}",
        uuid::Uuid::new_v4().simple(),
        "s3cret-s3cret-s3cret"
    ))
    .expect("token");
    // The journal keeps instants to the microsecond.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let record = TokenRecord {
        id: token.id,
        person_id: "dominique.petit@lecnam.net".into(),
        name: "Dominique Petit".into(),
        agency: "dar".into(),
        role: "responsable".into(),
        created_at: now,
        revoked_at: None,
    };
    store
        .insert_token(&record, &ami_store::hash_secret("s3cret-s3cret-s3cret"))
        .await
        .expect("insert token");
    let (found, _) = store
        .find_token(token.id)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found, record);
    assert_eq!(
        store.list_tokens().await.expect("tokens"),
        vec![record.clone()]
    );
    store
        .create_session("session-sha", token.id, "csrf", now)
        .await
        .expect("session");
    let session = store
        .find_session(
            "session-sha",
            now + Duration::minutes(5),
            Duration::hours(1),
        )
        .await
        .expect("find session")
        .expect("live");
    assert_eq!(
        (session.token, session.csrf.as_str()),
        (record.clone(), "csrf")
    );
    assert!(store
        .find_session("session-sha", now + Duration::hours(3), Duration::hours(1))
        .await
        .expect("idle")
        .is_none());
    match store
        .execute(request(
            vierzon.id,
            set_aside(),
            Principal::Token(token),
            Some(1),
            None,
        ))
        .await
    {
        Ok(Executed::Applied { dossier, .. }) => assert_eq!(dossier.version, 2),
        other => panic!("by token: {other:?}"),
    }
    assert!(store.revoke_token(record.id, now).await.expect("revoke"));
    assert!(!store
        .revoke_token(uuid::Uuid::new_v4(), now)
        .await
        .expect("no such token"));

    // Definitions.
    assert!(matches!(
        store.check_definition(&def, "source").await.expect("first"),
        DefinitionCheck::FirstUse
    ));
    assert!(matches!(
        store.check_definition(&def, "source").await.expect("same"),
        DefinitionCheck::Same
    ));
    assert_eq!(
        store
            .active_definition()
            .await
            .expect("active")
            .expect("one")
            .source,
        "source"
    );

    // The audit, the rebuild, the audit again.
    let report = store.verify(&def, None).await.expect("verify");
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.dossiers, report.events), (2, 5));
    let head = store.global_head().await.expect("head");
    assert_eq!(report.head, Some(head.clone()));
    let rebuilt = store
        .rebuild_projections(&def, false)
        .await
        .expect("rebuild");
    assert!(rebuilt.applied && rebuilt.shortened.is_empty());
    assert_eq!(rebuilt.rebuilt, 2);
    let report = store.verify(&def, Some(&head)).await.expect("verify again");
    assert!(report.is_clean(), "{:?}", report.findings);
    store.close().await;
}
