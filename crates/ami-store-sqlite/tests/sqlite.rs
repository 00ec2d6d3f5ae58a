//! What only SQLite's store does, or does in SQL of its own that the
//! build cannot check (the statements built at run time): the list's
//! filters, the feed and counts under need to know, the sealer's chunks,
//! and opening an existing database.

use std::sync::Arc;

use ami_core::{Actor, Definition, Dossier, DossierId, Porteur};
use ami_store::{
    awaiting_columns, hash_secret, Content, DatabaseUrl, DepositOrder, DossierFilter, Executed,
    IdempotencyKey, ListCursor, Order, Principal, Store, StoreError, TokenRecord,
    TransitionRequest,
};
use ami_store_sqlite::SqliteStore;
use chrono::{DateTime, Duration, Utc};

fn database_url() -> DatabaseUrl {
    let dir = tempfile::Builder::new()
        .prefix("ami-store-sqlite-")
        .tempdir()
        .expect("temporary directory")
        .keep();
    DatabaseUrl::parse(&format!("sqlite:{}", dir.join("ami.db").display())).expect("a sqlite URL")
}

fn agent(def: &Definition) -> Actor {
    Actor {
        id: "camille.martin@lecnam.net".into(),
        name: "Camille Martin".into(),
        agency: def.agency_id("dar").expect("dar"),
        role: def.role_id("agent").expect("agent"),
    }
}

fn responsable(def: &Definition) -> Actor {
    Actor {
        id: "dominique.petit@lecnam.net".into(),
        name: "Dominique Petit".into(),
        agency: def.agency_id("dar").expect("dar"),
        role: def.role_id("responsable").expect("responsable"),
    }
}

fn request(
    def: &Arc<Definition>,
    dossier_id: DossierId,
    command: Order,
    expected_version: Option<u64>,
    key: Option<&str>,
) -> TransitionRequest {
    TransitionRequest {
        definition: def.clone(),
        dossier_id,
        expected_version,
        command,
        principal: Principal::Actor(agent(def)),
        now: def.campaign().opens_at() + Duration::hours(2),
        idempotency: key.map(|key| IdempotencyKey {
            key: key.into(),
            request_sha256: format!("sha-of-{key}"),
        }),
        respond: Arc::new(|d: &Dossier, _: &Actor| format!("{}@{}", d.reference, d.version)),
        arrival: None,
    }
}

async fn deposit(
    store: &SqliteStore,
    def: &Arc<Definition>,
    commune: &str,
    programmes: &[&str],
) -> Dossier {
    match try_deposit(store, def, commune, programmes).await {
        Ok(Executed::Applied { dossier, .. }) => *dossier,
        other => panic!("deposit of {commune}: {other:?}"),
    }
}

async fn try_deposit(
    store: &SqliteStore,
    def: &Arc<Definition>,
    commune: &str,
    programmes: &[&str],
) -> Result<Executed, StoreError> {
    let id = DossierId(uuid::Uuid::now_v7());
    let order = Order {
        content: Content::Deposit(Box::new(DepositOrder {
            id,
            commune: commune.into(),
            code_insee: format!("insee-{commune}").into(),
            porteur: Porteur {
                nom: format!("Ville de {commune}").into(),
                email: None,
            },
            programmes: programmes.iter().map(|p| (*p).into()).collect(),
            received_at: def.campaign().opens_at() + Duration::hours(1),
            pieces: Vec::new(),
            doublon_confirme: false,
        })),
        ..Order::new("deposer")
    };
    store.execute(request(def, id, order, None, None)).await
}

/// Set aside, by a responsable.
fn set_aside(
    def: &Arc<Definition>,
    id: DossierId,
    version: Option<u64>,
    key: Option<&str>,
) -> TransitionRequest {
    TransitionRequest {
        principal: Principal::Actor(responsable(def)),
        ..request(
            def,
            id,
            Order::new("classer_sans_suite").with_motivation("Dossier retiré par la commune"),
            version,
            key,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_lists_feed_counts_and_proofs_read_back() {
    let def = Arc::new(Definition::ami2());
    let url = database_url();
    let store = SqliteStore::connect(&url).await.expect("connect");
    let nevers = deposit(&store, &def, "Nevers", &["acv"]).await;
    let vierzon = deposit(&store, &def, "Vierzon", &["ti"]).await;
    let bourges = deposit(&store, &def, "Bourges", &["acv", "ti"]).await;
    assert_eq!(nevers.reference.as_str(), "AMI2-V1-0001");
    assert_eq!(bourges.reference.as_str(), "AMI2-V1-0003");

    // A transition through the group commit, then its replay, then a
    // stale version.
    let asked = set_aside(&def, nevers.id, Some(1), Some("k1"));
    let Executed::Applied { dossier, body } = store.execute(asked).await.expect("asked") else {
        panic!("not applied")
    };
    assert_eq!((dossier.version, body.as_str()), (2, "AMI2-V1-0001@2"));
    let again = set_aside(&def, nevers.id, Some(1), Some("k1"));
    match store.execute(again).await.expect("replayed") {
        Executed::Replayed { status, body } => {
            assert_eq!((status, body.as_str()), (200, "AMI2-V1-0001@2"))
        }
        other => panic!("{other:?}"),
    }
    let other_request = TransitionRequest {
        idempotency: Some(IdempotencyKey {
            key: "k1".into(),
            request_sha256: "another".into(),
        }),
        ..set_aside(&def, nevers.id, Some(1), None)
    };
    assert!(matches!(
        store.execute(other_request).await,
        Err(StoreError::IdempotencyMismatch)
    ));
    assert!(matches!(
        store
            .execute(set_aside(&def, nevers.id, Some(1), None))
            .await,
        Err(StoreError::Conflict { current: Some(2) })
    ));
    assert!(matches!(
        store
            .execute(set_aside(&def, DossierId(uuid::Uuid::now_v7()), None, None))
            .await,
        Err(StoreError::NotFound)
    ));

    // The list's filters, its cursor and its count.
    let all = |f: DossierFilter| DossierFilter { limit: 50, ..f };
    let refs = |page: &[Dossier]| {
        page.iter()
            .map(|d| d.reference.to_string())
            .collect::<Vec<_>>()
    };
    let page = store
        .list_dossiers(&all(DossierFilter::default()))
        .await
        .expect("list");
    assert_eq!(
        refs(&page.items),
        ["AMI2-V1-0001", "AMI2-V1-0002", "AMI2-V1-0003"]
    );
    let dar = awaiting_columns(&def, &["dar".to_string()]);
    let waiting = all(DossierFilter {
        awaiting_columns: dar,
        ..DossierFilter::default()
    });
    assert_eq!(
        refs(&store.list_dossiers(&waiting).await.expect("queue").items),
        ["AMI2-V1-0002", "AMI2-V1-0003"]
    );
    assert_eq!(
        store.count_matching(&waiting, 1000).await.expect("count"),
        2
    );
    let ti = all(DossierFilter {
        programmes: vec!["ti".into()],
        waves: vec![1, 2],
        states: vec!["recu".into()],
        ..DossierFilter::default()
    });
    assert_eq!(
        refs(&store.list_dossiers(&ti).await.expect("ti").items),
        ["AMI2-V1-0002", "AMI2-V1-0003"]
    );
    let found = all(DossierFilter {
        q: Some("BOURGES".into()),
        readable: Some(vec!["acv".into()]),
        ..DossierFilter::default()
    });
    assert_eq!(
        refs(&store.list_dossiers(&found).await.expect("q").items),
        ["AMI2-V1-0003"]
    );
    for nothing in [
        DossierFilter {
            q: Some("%".into()),
            ..DossierFilter::default()
        },
        DossierFilter {
            readable: Some(Vec::new()),
            ..DossierFilter::default()
        },
    ] {
        assert_eq!(store.count_matching(&nothing, 1000).await.expect("none"), 0);
    }
    let first = store
        .list_dossiers(&DossierFilter {
            limit: 1,
            ..DossierFilter::default()
        })
        .await
        .expect("first page");
    assert_eq!(refs(&first.items), ["AMI2-V1-0001"]);
    let after = ListCursor::decode(first.next.as_deref().expect("a next page"));
    let second = store
        .list_dossiers(&DossierFilter {
            limit: 5,
            after,
            ..DossierFilter::default()
        })
        .await
        .expect("second page");
    assert_eq!(refs(&second.items), ["AMI2-V1-0002", "AMI2-V1-0003"]);
    assert!(second.next.is_none());
    assert_eq!(
        store
            .count_matching(&all(DossierFilter::default()), 1)
            .await
            .expect("capped"),
        2
    );

    // The feed and the counts, whole and under need to know.
    let feed = store.events_after(None, 100, None).await.expect("feed");
    assert_eq!(feed.items.len(), 4);
    let acv = store
        .events_after(None, 100, Some(&["acv", "not an id"]))
        .await
        .expect("acv feed");
    assert_eq!(acv.items.len(), 3, "Nevers twice and Bourges");
    let end = store.feed_end().await.expect("end");
    assert_eq!(feed.next, Some(end.encode()));
    let stats = store
        .stats(
            None,
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("a day"),
        )
        .await
        .expect("stats");
    assert_eq!(stats.by_state.iter().map(|s| s.count).sum::<i64>(), 3);
    let ti_stats = store
        .stats(
            Some(&["ti"]),
            chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("a day"),
        )
        .await
        .expect("ti stats");
    assert_eq!(ti_stats.by_state.iter().map(|s| s.count).sum::<i64>(), 2);

    // The proofs: sealed, clean, rebuilt as they are.
    store.seal_pending().await.expect("sealed");
    let head = store.global_head().await.expect("head");
    assert_eq!(head.seq, 4);
    let report = store.verify(&def, Some(&head)).await.expect("audit");
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.dossiers, report.events, report.pending), (3, 4, 0));
    let rebuilt = store
        .rebuild_projections(&def, false)
        .await
        .expect("rebuild");
    assert!(rebuilt.applied && rebuilt.shortened.is_empty());
    assert_eq!(rebuilt.rebuilt, 3);
    assert_eq!(
        store.get_dossier(nevers.id).await.expect("read"),
        Some(dossier.as_ref().clone())
    );
    assert!(store
        .verify(&def, None)
        .await
        .expect("audit again")
        .is_clean());
    store.close().await;

    // The same file, opened as an existing database.
    let again = SqliteStore::connect_existing(&url).await.expect("existing");
    assert_eq!(again.count_dossiers().await.expect("count"), 3);
    assert_eq!(again.history(vierzon.id).await.expect("history").len(), 1);
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_sessions_live_and_end() {
    let store = SqliteStore::connect(&database_url())
        .await
        .expect("connect");
    let now = Utc::now();
    let token = TokenRecord {
        id: uuid::Uuid::new_v4(),
        person_id: "camille.martin@lecnam.net".into(),
        name: "Camille Martin".into(),
        agency: "dar".into(),
        role: "agent".into(),
        created_at: DateTime::from_timestamp_micros(now.timestamp_micros()).expect("now"),
        revoked_at: None,
    };
    store
        .insert_token(&token, &hash_secret("s3cret"))
        .await
        .expect("token");
    assert_eq!(
        store.find_token(token.id).await.expect("find"),
        Some((token.clone(), hash_secret("s3cret")))
    );
    store
        .create_session("session", token.id, "csrf", now)
        .await
        .expect("session");
    let idle = Duration::minutes(30);
    let live = store
        .find_session("session", now + Duration::minutes(5), idle)
        .await
        .expect("live");
    assert_eq!(live.map(|s| s.csrf), Some("csrf".to_string()));
    assert!(store
        .find_session("session", now + Duration::hours(1), idle)
        .await
        .expect("idle")
        .is_none());
    assert!(store.revoke_token(token.id, now).await.expect("revoke"));
    assert!(!store
        .revoke_token(uuid::Uuid::new_v4(), now)
        .await
        .expect("no such token"));
    assert!(store.list_tokens().await.expect("list")[0]
        .revoked_at
        .is_some());
    store.close().await;
}

#[tokio::test]
async fn an_existing_database_is_required_where_asked() {
    let missing = database_url();
    match SqliteStore::connect_existing(&missing).await {
        Err(StoreError::NotAmi(message)) => {
            assert!(
                message.starts_with("base de données introuvable ou inaccessible"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A file that is a database, but not one of ami's.
    let empty = database_url();
    let path = empty.expose().trim_start_matches("sqlite:").to_string();
    std::fs::File::create(&path).expect("an empty file");
    match SqliteStore::connect_existing(&empty).await {
        Err(StoreError::NotAmi(message)) => assert_eq!(
            message,
            "cette base ne contient pas de journal ami (aucune table dossier_event)"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_of_one_group_are_numbered_without_gaps() {
    let def = Arc::new(Definition::ami2());
    let store = SqliteStore::connect(&database_url())
        .await
        .expect("connect");
    deposit(&store, &def, "Nevers", &["acv"]).await;
    // Deposits sent together share groups; the second of a commune is
    // refused inside its group and takes no number.
    let communes: Vec<String> = (0..20).map(|i| format!("Commune {}", i % 15)).collect();
    let outcomes = futures_util::future::join_all(
        communes
            .iter()
            .map(|commune| try_deposit(&store, &def, commune, &["ti"])),
    )
    .await;
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::Rejected { .. })))
        .count();
    assert_eq!(refused, 5, "{outcomes:?}");
    let mut numbers: Vec<String> = store
        .all_dossiers()
        .await
        .expect("all")
        .into_iter()
        .map(|d| d.reference.to_string())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=16).map(|n| format!("AMI2-V1-{n:04}")).collect();
    assert_eq!(numbers, expected);
    store.seal_pending().await.expect("sealed");
    assert!(store.verify(&def, None).await.expect("audit").is_clean());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_acts_and_a_moved_dossier_is_decided_again() {
    let def = Arc::new(Definition::ami2());
    let store = SqliteStore::connect(&database_url())
        .await
        .expect("connect");
    let nevers = deposit(&store, &def, "Nevers", &["acv"]).await;
    let token = TokenRecord {
        id: uuid::Uuid::new_v4(),
        person_id: "dominique.petit@lecnam.net".into(),
        name: "Dominique Petit".into(),
        agency: "dar".into(),
        role: "responsable".into(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    let secret = "s3cret-s3cret-s3cret";
    store
        .insert_token(&token, &hash_secret(secret))
        .await
        .expect("token");
    let presented = |secret: &str| {
        ami_store::PresentedToken::parse(&format!("ami_{}_{secret}", token.id.simple()))
            .expect("a token")
    };
    let wrong = TransitionRequest {
        principal: Principal::Token(presented("not-the-secret-at-all")),
        ..set_aside(&def, nevers.id, None, None)
    };
    assert!(matches!(
        store.execute(wrong).await,
        Err(StoreError::Unauthenticated { .. })
    ));
    // Sent together with no version expected: each is taken on the dossier
    // as it is when its turn comes, never refused for a version.
    let outcomes = futures_util::future::join_all((0..4).map(|_| {
        store.execute(TransitionRequest {
            principal: Principal::Token(presented(secret)),
            ..set_aside(&def, nevers.id, None, None)
        })
    }))
    .await;
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Ok(Executed::Applied { .. }) | Err(StoreError::Rejected { .. })
        )),
        "{outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Ok(Executed::Applied { .. }))));
    store.seal_pending().await.expect("sealed");
    assert!(store.verify(&def, None).await.expect("audit").is_clean());
    store.close().await;
}
