//! A database written before the global chain and per-wave numbering keeps
//! its references and its journal: the upgrade chains its events and the
//! next deposit of a wave it used goes on after its last number.

use std::borrow::Cow;

use ami_core::{apply, decide, Actor, Definition, DossierId, Porteur, Target};
use ami_service::store::{
    chain_digest, Content, DepositOrder, Order, Principal, TransitionRequest, GENESIS_DIGEST,
};
use ami_tests::*;
use chrono::{DateTime, Utc};
use sqlx::any::AnyPoolOptions;

fn actor() -> Actor {
    let def = Definition::ami2();
    Actor {
        id: "camille.martin@lecnam.net".into(),
        name: "Camille Martin".into(),
        agency: def.agency_id("dar").expect("dar"),
        role: def.role_id("agent").expect("agent"),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("instant")
        .with_timezone(&Utc)
}

fn deposit(commune: &str, code_insee: &str, received_at: &str) -> Order {
    Order {
        content: Content::Deposit(Box::new(DepositOrder {
            id: DossierId(uuid::Uuid::now_v7()),
            commune: commune.into(),
            code_insee: code_insee.into(),
            porteur: Porteur {
                nom: format!("Ville de {commune}").into(),
                email: None,
            },
            programmes: vec!["acv".into()],
            received_at: at(received_at),
            pieces: Vec::new(),
            doublon_confirme: false,
        })),
        ..Order::new("deposer")
    }
}

async fn a_database_numbered_across_waves_keeps_its_references_and_goes_on(backend: Backend) {
    // Arrange: the schema as it was (migration 1 only), with dossier 13 of
    // the old numbering received in wave 2, written as the old service did.
    let db = TestDb::new(backend).await;
    sqlx::any::install_default_drivers();
    let url = match backend {
        Backend::Sqlite => format!("{}?mode=rwc", db.url),
        Backend::Postgres => db.url.clone(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("pool");
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("../crates/ami-store-sqlite/migrations"),
        Backend::Postgres => sqlx::migrate!("../crates/ami-store-postgres/migrations"),
    };
    migrator.migrations = Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|m| m.version == 1)
            .cloned()
            .collect(),
    );
    migrator.run(&pool).await.expect("migration 1");
    let def = std::sync::Arc::new(Definition::ami2());
    let old = deposit("Vierzon", "18279", "2020-12-15T10:00:00+01:00")
        .to_command(&def)
        .expect("a deposit");
    let thirteenth = Target::New {
        number: 13,
        same_commune: &[],
    };
    let event = decide(&def, thirteenth, &old, &actor(), Utc::now()).expect("decide");
    let dossier = apply(None, &event).expect("apply");
    assert_eq!(dossier.reference, "AMI2-V2-0013");
    let body = serde_json::to_string(&event).expect("json");
    let digest = chain_digest(GENESIS_DIGEST, &body);
    sqlx::query(
        "insert into dossier_event (dossier_id, seq, action, agency, actor_id, at_us, body, digest) \
         values ($1, 1, 'deposer', 'dar', $2, 0, $3, $4)",
    )
    .bind(dossier.id.to_string())
    .bind(actor().id.to_string())
    .bind(&body)
    .bind(&digest)
    .execute(&pool)
    .await
    .expect("old event");
    sqlx::query(
        "insert into dossier (dossier_id, reference, wave, state, version, programmes, search, \
         awaiting, received_at_us, updated_at_us, last_digest, body) \
         values ($1, $2, 2, 'recu', 1, ',acv,', 'vierzon', ',dar,', $3, $4, $5, $6)",
    )
    .bind(dossier.id.to_string())
    .bind(dossier.reference.as_str())
    .bind(dossier.received_at.timestamp_micros())
    .bind(dossier.updated_at.timestamp_micros())
    .bind(&digest)
    .bind(serde_json::to_string(&dossier).expect("json"))
    .execute(&pool)
    .await
    .expect("old projection");
    let set_counter = match backend {
        Backend::Sqlite => "update dossier_number set last = 13",
        Backend::Postgres => "select setval('dossier_number', 13)",
    };
    sqlx::query(set_counter)
        .execute(&pool)
        .await
        .expect("old counter");
    pool.close().await;

    // Act: the service starts on it (migration 2 and the upgrade), then two
    // deposits, in wave 2 and in wave 1.
    let store = ami_service::store::connect(&db.url.parse().expect("database url"))
        .await
        .expect("upgrade");
    let respond: ami_service::store::Respond =
        std::sync::Arc::new(|_: &ami_core::Dossier, _: &Actor| String::new());
    let mut references = Vec::new();
    for (commune, insee, received) in [
        ("Bourges", "18033", "2020-12-16T10:00:00+01:00"),
        ("Nevers", "58194", "2020-10-01T10:00:00+02:00"),
    ] {
        let command = deposit(commune, insee, received);
        let id = command.deposited().expect("new").id;
        let req = TransitionRequest {
            definition: def.clone(),
            dossier_id: id,
            expected_version: None,
            command,
            principal: Principal::Actor(actor()),
            now: Utc::now(),
            idempotency: None,
            respond: respond.clone(),
            arrival: None,
        };
        store.execute(req).await.expect("deposit");
        references.push(
            store
                .get_dossier(id)
                .await
                .expect("read")
                .expect("dossier")
                .reference,
        );
    }
    let old_one = store
        .get_dossier(dossier.id)
        .await
        .expect("read")
        .expect("dossier");
    let report = store.verify(&def, None).await.expect("verify");

    // Assert: the old reference stays; wave 2 goes on after 13, wave 1
    // (unused before) starts at 1; the old event has its place in the chain.
    assert_eq!(old_one.reference, "AMI2-V2-0013");
    assert_eq!(references, ["AMI2-V2-0014", "AMI2-V1-0001"]);
    assert_eq!(report.findings, []);
    assert_eq!(report.head.map(|h| h.seq), Some(3));
    store.close().await;
}

on_both_backends!(a_database_numbered_across_waves_keeps_its_references_and_goes_on);
