//! The storage stories: what the service relies on from any [`Store`],
//! told at the trait's level, which every backend runs on a fresh
//! database of its own:
//!
//! ```ignore
//! // crates/ami-store-sqlite/tests/stories.rs
//! async fn fresh_store() -> Box<dyn ami_store::Store> { … }
//! ami_store::stories!(fresh_store);
//! ```

use std::sync::Arc;

use ami_core::{Actor, Definition, Dossier, DossierId, Porteur};
use chrono::{DateTime, Duration, Utc};

use crate::{
    Content, DefinitionCheck, DepositOrder, DossierFilter, Executed, FeedCursor, IdempotencyKey,
    ListCursor, Order, Page, PresentedToken, Principal, Store, StoreError, TokenRecord,
    TokenRefusal, TransitionRequest,
};

/// Runs every story against a fresh store made by `$fresh` (an `async fn()
/// -> Box<dyn Store>`), one test each.
#[macro_export]
macro_rules! stories {
    ($fresh:path) => {
        $crate::stories!(@each $fresh,
            a_deposit_reads_back_with_its_chain,
            deposits_of_a_wave_are_numbered_without_gap,
            a_transition_chains_on_and_moves_the_projection,
            a_stale_version_is_refused_and_writes_nothing,
            a_refused_transition_writes_nothing,
            an_idempotency_key_replays_its_first_answer,
            concurrent_transitions_on_many_dossiers_all_land,
            concurrent_transitions_on_one_dossier_without_version_all_land,
            a_token_is_checked_on_the_transition,
            tokens_are_listed_and_revoked,
            sessions_expire_and_end,
            the_first_definition_is_recorded_and_a_changed_one_told,
            the_feed_gives_every_event_once_in_order,
            lists_filter_page_and_count,
            need_to_know_hides_other_programmes,
            stats_count_by_wave_state_and_awaiting,
            the_journal_seals_verifies_and_rebuilds,
            a_definition_migration_appends_to_every_open_dossier,
            late_dossiers_are_listed_and_counted_on_the_day_asked,
            an_arrival_recorded_twice_is_one,
            concurrent_imports_of_one_message_create_one_arrival,
            arrivals_are_listed_by_state_with_a_cursor,
            a_deposit_handles_its_arrival_once,
            an_arrival_is_set_aside_once,
            a_deposit_writes_its_accuse_de_reception,
            a_decision_writes_one_letter,
            concurrent_claims_never_share_a_letter,
            a_lapsed_claim_cannot_record_the_outcome,
            a_digest_enqueued_twice_is_one,
            referenced_files_include_arrival_files,
        );
    };
    (@each $fresh:path, $($story:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let store = $fresh().await;
                $crate::stories::$story(&*store).await;
                store.close().await;
            }
        )*
    };
}

fn definition() -> Arc<Definition> {
    Arc::new(Definition::ami2())
}

fn person(def: &Definition, id: &str, agency: &str, role: &str) -> Actor {
    Actor {
        id: id.into(),
        name: id.into(),
        agency: def.agency_id(agency).expect("agency"),
        role: def.role_id(role).expect("role"),
    }
}

fn agent() -> Actor {
    person(&definition(), "camille.martin@lecnam.net", "dar", "agent")
}

fn responsable() -> Actor {
    person(
        &definition(),
        "dominique.petit@lecnam.net",
        "dar",
        "responsable",
    )
}

/// An instant inside the default definition's first wave.
fn in_wave_one() -> DateTime<Utc> {
    definition().campaign().opens_at() + Duration::hours(1)
}

/// The day of [`in_wave_one`] in the campaign's time zone.
fn reception_day() -> chrono::NaiveDate {
    in_wave_one()
        .with_timezone(&definition().campaign().time_zone)
        .date_naive()
}

fn request(
    dossier_id: DossierId,
    command: Order,
    actor: Actor,
    expected_version: Option<u64>,
    idempotency: Option<&str>,
) -> TransitionRequest {
    TransitionRequest {
        definition: definition(),
        dossier_id,
        expected_version,
        command,
        principal: Principal::Actor(actor),
        now: in_wave_one(),
        idempotency: idempotency.map(|key| IdempotencyKey {
            key: key.into(),
            request_sha256: format!("sha-of-{key}"),
        }),
        respond: Arc::new(|d: &Dossier, _: &Actor| format!("{}@{}", d.reference, d.version)),
        arrival: None,
    }
}

fn deposit_order(commune: &str, code_insee: &str, programmes: &[&str]) -> (DossierId, Order) {
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
            programmes: programmes.iter().map(|p| (*p).into()).collect(),
            received_at: in_wave_one(),
            pieces: Vec::new(),
            doublon_confirme: false,
        })),
        ..Order::new("deposer")
    };
    (id, order)
}

async fn deposit(
    store: &dyn Store,
    commune: &str,
    code_insee: &str,
    programmes: &[&str],
) -> Dossier {
    let (id, order) = deposit_order(commune, code_insee, programmes);
    match store.execute(request(id, order, agent(), None, None)).await {
        Ok(Executed::Applied { dossier, .. }) => *dossier,
        other => panic!("deposit of {commune}: {other:?}"),
    }
}

fn set_aside(version: u64) -> (Order, Option<u64>) {
    let mut order = Order::new("classer_sans_suite");
    order.motivation = Some("Dossier retiré par la commune".into());
    (order, Some(version))
}

/// A deposit is read back as written, numbered in its wave, with one event
/// whose digest chains from the genesis digest.
pub async fn a_deposit_reads_back_with_its_chain(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    assert_eq!(d.version, 1);
    let read = store.get_dossier(d.id).await.expect("read").expect("found");
    assert_eq!(read, d);
    let history = store.history(d.id).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].digest,
        crate::chain_digest(
            crate::GENESIS_DIGEST,
            &serde_jcs::to_string(&history[0].content).expect("jcs")
        )
    );
    assert_eq!(store.count_dossiers().await.expect("count"), 1);
    assert_eq!(
        store
            .get_dossier(DossierId(uuid::Uuid::now_v7()))
            .await
            .expect("read"),
        None,
        "an unknown id reads as nothing"
    );
}

/// Reference numbers of a wave follow one another from 1; a refused
/// deposit (a second one of the same commune) takes none.
pub async fn deposits_of_a_wave_are_numbered_without_gap(store: &dyn Store) {
    let first = deposit(store, "Nevers", "58194", &["acv"]).await;
    let (id, again) = deposit_order("Nevers", "58194", &["acv"]);
    match store.execute(request(id, again, agent(), None, None)).await {
        Err(StoreError::Rejected { .. }) => {}
        other => panic!("a second deposit of a commune is refused: {other:?}"),
    }
    let second = deposit(store, "Vierzon", "18279", &["ti"]).await;
    let third = deposit(store, "Auxerre", "89024", &["acv", "ti"]).await;
    let numbers: Vec<String> = [first, second, third]
        .iter()
        .map(|d| d.reference.rsplit('-').next().expect("number").to_string())
        .collect();
    assert_eq!(numbers, ["0001", "0002", "0003"]);
    assert_eq!(store.count_dossiers().await.expect("count"), 3);
}

/// A transition appends the next event, chained on the last digest, and
/// the projection moves with it.
pub async fn a_transition_chains_on_and_moves_the_projection(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    let (order, version) = set_aside(d.version);
    let after = match store
        .execute(request(d.id, order, responsable(), version, None))
        .await
    {
        Ok(Executed::Applied { dossier, body }) => {
            assert_eq!(body, format!("{}@2", d.reference), "the answer as rendered");
            *dossier
        }
        other => panic!("classer sans suite: {other:?}"),
    };
    assert_eq!((after.version, after.state.as_str()), (2, "sans_suite"));
    assert_eq!(store.get_dossier(d.id).await.expect("read"), Some(after));
    let history = store.history(d.id).await.expect("history");
    assert_eq!(history.len(), 2);
    let canonical = serde_jcs::to_string(&history[1].content).expect("jcs");
    assert_eq!(
        history[1].digest,
        crate::chain_digest(&history[0].digest, &canonical)
    );
    assert_eq!(history[1].event.seq, 2);
}

/// A transition that names a version the dossier left is 409 with the
/// current version, and nothing of it is written.
pub async fn a_stale_version_is_refused_and_writes_nothing(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    let (order, _) = set_aside(d.version);
    match store
        .execute(request(d.id, order, responsable(), Some(7), None))
        .await
    {
        Err(StoreError::Conflict { current }) => assert_eq!(current, Some(1)),
        other => panic!("a stale version: {other:?}"),
    }
    assert_eq!(store.history(d.id).await.expect("history").len(), 1);
    assert_eq!(store.get_dossier(d.id).await.expect("read"), Some(d));
}

/// The engine's refusal comes back as it is, and nothing is written; an
/// unknown dossier is `NotFound`.
pub async fn a_refused_transition_writes_nothing(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    // The agent may not set a dossier aside: the responsable does.
    let (order, version) = set_aside(d.version);
    match store
        .execute(request(d.id, order, agent(), version, None))
        .await
    {
        Err(StoreError::Rejected { explanation, .. }) => assert!(!explanation.is_empty()),
        other => panic!("an agent setting aside: {other:?}"),
    }
    assert_eq!(store.history(d.id).await.expect("history").len(), 1);
    let (order, _) = set_aside(1);
    match store
        .execute(request(
            DossierId(uuid::Uuid::now_v7()),
            order,
            responsable(),
            None,
            None,
        ))
        .await
    {
        Err(StoreError::NotFound) => {}
        other => panic!("an unknown dossier: {other:?}"),
    }
}

/// The same key with the same request gives the first answer again and
/// writes nothing more; with another request it is refused.
pub async fn an_idempotency_key_replays_its_first_answer(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    let first = {
        let (order, version) = set_aside(d.version);
        store
            .execute(request(d.id, order, responsable(), version, Some("k1")))
            .await
            .expect("first")
    };
    let Executed::Applied { body, .. } = first else {
        panic!("the first run applies: {first:?}")
    };
    let (order, version) = set_aside(d.version);
    match store
        .execute(request(d.id, order, responsable(), version, Some("k1")))
        .await
    {
        Ok(Executed::Replayed {
            status,
            body: again,
        }) => {
            assert_eq!((status, again), (200, body));
        }
        other => panic!("a replay: {other:?}"),
    }
    assert_eq!(store.history(d.id).await.expect("history").len(), 2);
    let (order, version) = set_aside(d.version);
    let mut other = request(d.id, order, responsable(), version, Some("k1"));
    other.idempotency = Some(IdempotencyKey {
        key: "k1".into(),
        request_sha256: "another request".into(),
    });
    assert!(matches!(
        store.execute(other).await,
        Err(StoreError::IdempotencyMismatch)
    ));
}

/// Transitions sent together on many dossiers all commit (group commit)
/// and each dossier's chain stays whole.
pub async fn concurrent_transitions_on_many_dossiers_all_land(store: &dyn Store) {
    let mut dossiers = Vec::new();
    for (i, code) in (0..12).map(|i| (i, format!("{:05}", 10_000 + i))) {
        dossiers.push(deposit(store, &format!("Commune {i}"), &code, &["acv"]).await);
    }
    let runs = dossiers.iter().map(|d| {
        let (order, version) = set_aside(d.version);
        store.execute(request(d.id, order, responsable(), version, None))
    });
    for outcome in futures_util::future::join_all(runs).await {
        assert!(
            matches!(outcome, Ok(Executed::Applied { .. })),
            "{outcome:?}"
        );
    }
    for d in &dossiers {
        let read = store.get_dossier(d.id).await.expect("read").expect("found");
        assert_eq!((read.version, read.state.as_str()), (2, "sans_suite"));
        assert_eq!(store.history(d.id).await.expect("history").len(), 2);
    }
}

/// A received file for the default definition's budget.
fn budget_file(n: u64) -> Order {
    let def = definition();
    Order {
        content: Content::Piece(ami_core::Piece {
            kind: def.piece_kind("budget_previsionnel").expect("budget"),
            filename: format!("budget-v{n}.xlsx").into(),
            size: Some(1000 + n),
            sha256: Some(format!("{n:064x}").into()),
            media_type: Some(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
            ),
        }),
        ..Order::new("ajouter_piece")
    }
}

/// Requests without a version on one dossier, sent together, are each
/// taken in turn on the dossier as it then is: none is lost to another's
/// write, and the versions have no gap.
pub async fn concurrent_transitions_on_one_dossier_without_version_all_land(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    let runs = (1..=10).map(|n| store.execute(request(d.id, budget_file(n), agent(), None, None)));
    for outcome in futures_util::future::join_all(runs).await {
        assert!(
            matches!(outcome, Ok(Executed::Applied { .. })),
            "{outcome:?}"
        );
    }
    let history = store.history(d.id).await.expect("history");
    let seqs: Vec<u64> = history.iter().map(|e| e.event.seq).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    let read = store.get_dossier(d.id).await.expect("read").expect("found");
    assert_eq!((read.version, read.files.len()), (11, 10));
}

/// A token presented with a transition is checked in it: unknown, wrong
/// secret and revoked tokens admit nobody, a good one acts as its person.
pub async fn a_token_is_checked_on_the_transition(store: &dyn Store) {
    let d = deposit(store, "Nevers", "58194", &["acv"]).await;
    let id = uuid::Uuid::now_v7();
    let secret = "s3cr3t-s3cr3t-s3cr3t";
    let record = TokenRecord {
        id,
        person_id: "dominique.petit@lecnam.net".into(),
        name: "Dominique Petit".into(),
        agency: "dar".into(),
        role: "responsable".into(),
        created_at: in_wave_one(),
        revoked_at: None,
    };
    store
        .insert_token(&record, &crate::hash_secret(secret))
        .await
        .expect("token");
    let with = |token: &str| {
        let (order, version) = set_aside(d.version);
        let mut req = request(d.id, order, responsable(), version, None);
        req.principal = Principal::Token(PresentedToken::parse(token).expect("token syntax"));
        req
    };
    let wrong = format!("ami_{id}_not-the-right-secret");
    assert!(matches!(
        store.execute(with(&wrong)).await,
        Err(StoreError::Unauthenticated {
            code: TokenRefusal::WrongSecret
        })
    ));
    let unknown = format!("ami_{}_{secret}", uuid::Uuid::now_v7());
    assert!(matches!(
        store.execute(with(&unknown)).await,
        Err(StoreError::Unauthenticated {
            code: TokenRefusal::Unknown
        })
    ));
    match store.execute(with(&format!("ami_{id}_{secret}"))).await {
        Ok(Executed::Applied { dossier, .. }) => assert_eq!(dossier.version, 2),
        other => panic!("a good token: {other:?}"),
    }
    let history = store.history(d.id).await.expect("history");
    assert_eq!(
        history[1].event.actor.id.as_str(),
        "dominique.petit@lecnam.net"
    );
    assert!(store.revoke_token(id, in_wave_one()).await.expect("revoke"));
    let mut reopen = request(d.id, Order::new("rouvrir"), responsable(), Some(2), None);
    reopen.command.motivation = Some("Reprise".into());
    reopen.principal = Principal::Token(
        PresentedToken::parse(&format!("ami_{id}_{secret}")).expect("token syntax"),
    );
    assert!(matches!(
        store.execute(reopen).await,
        Err(StoreError::Unauthenticated {
            code: TokenRefusal::Revoked
        })
    ));
}

fn token(person: &str, at: DateTime<Utc>) -> TokenRecord {
    TokenRecord {
        id: uuid::Uuid::now_v7(),
        person_id: person.into(),
        name: person.into(),
        agency: "dar".into(),
        role: "agent".into(),
        created_at: at,
        revoked_at: None,
    }
}

/// Tokens read back as written, listed in creation order; revoking marks
/// one once (its first instant is kept) and an unknown one is told.
pub async fn tokens_are_listed_and_revoked(store: &dyn Store) {
    let t0 = in_wave_one();
    let a = token("a@lecnam.net", t0);
    let b = token("b@lecnam.net", t0 + Duration::seconds(1));
    store.insert_token(&a, "aa").await.expect("a");
    store.insert_token(&b, "bb").await.expect("b");
    assert_eq!(
        store.find_token(a.id).await.expect("find"),
        Some((a.clone(), "aa".to_string()))
    );
    assert_eq!(
        store.list_tokens().await.expect("list"),
        vec![a.clone(), b.clone()]
    );
    let at = t0 + Duration::hours(2);
    assert!(store.revoke_token(a.id, at).await.expect("revoke"));
    assert!(store
        .revoke_token(a.id, at + Duration::hours(1))
        .await
        .expect("again"));
    let (revoked, _) = store.find_token(a.id).await.expect("find").expect("there");
    assert_eq!(revoked.revoked_at, Some(at), "the first revocation is kept");
    assert!(!store
        .revoke_token(uuid::Uuid::now_v7(), at)
        .await
        .expect("unknown"));
    assert!(store
        .find_token(uuid::Uuid::now_v7())
        .await
        .expect("find")
        .is_none());
}

/// A session lives while used within its idle time and its token stands;
/// it ends when idle too long, when its token is revoked, or on request.
pub async fn sessions_expire_and_end(store: &dyn Store) {
    let t0 = in_wave_one();
    let t = token("a@lecnam.net", t0);
    store.insert_token(&t, "aa").await.expect("token");
    let idle = Duration::hours(8);
    store
        .create_session("s1", t.id, "csrf1", t0)
        .await
        .expect("s1");
    let found = store
        .find_session("s1", t0 + Duration::hours(7), idle)
        .await
        .expect("find")
        .expect("alive");
    assert_eq!((found.token, found.csrf.as_str()), (t.clone(), "csrf1"));
    // Used at 7 h: alive until 15 h.
    assert!(store
        .find_session("s1", t0 + Duration::hours(14), idle)
        .await
        .expect("find")
        .is_some());
    assert!(store
        .find_session("s1", t0 + Duration::hours(23), idle)
        .await
        .expect("find")
        .is_none());
    assert!(
        store
            .find_session("s1", t0, idle)
            .await
            .expect("find")
            .is_none(),
        "removed"
    );
    store
        .create_session("s2", t.id, "csrf2", t0)
        .await
        .expect("s2");
    store.end_session("s2").await.expect("end");
    assert!(store
        .find_session("s2", t0, idle)
        .await
        .expect("find")
        .is_none());
    store
        .create_session("s3", t.id, "csrf3", t0)
        .await
        .expect("s3");
    store.revoke_token(t.id, t0).await.expect("revoke");
    assert!(store
        .find_session("s3", t0, idle)
        .await
        .expect("find")
        .is_none());
}

/// The first definition a database sees is recorded; the same one again
/// passes; another one is told, with the active one.
pub async fn the_first_definition_is_recorded_and_a_changed_one_told(store: &dyn Store) {
    let def = definition();
    assert!(store.active_definition().await.expect("active").is_none());
    assert!(matches!(
        store.check_definition(&def, "source").await.expect("check"),
        DefinitionCheck::FirstUse
    ));
    let active = store
        .active_definition()
        .await
        .expect("active")
        .expect("recorded");
    assert_eq!(active.sha256, crate::definition_sha256(&def));
    assert_eq!(active.source, "source");
    assert!(matches!(
        store.check_definition(&def, "source").await.expect("check"),
        DefinitionCheck::Same
    ));
    let other = other_definition();
    match store
        .check_definition(&other, "other")
        .await
        .expect("check")
    {
        DefinitionCheck::Changed { active } => {
            assert_eq!(active.sha256, crate::definition_sha256(&def))
        }
        found => panic!("a changed definition: {found:?}"),
    }
}

/// The default definition with one label changed.
fn other_definition() -> Definition {
    let toml = include_str!("../../ami-core/src/ami2.toml").replacen(
        "label = \"Déposer le dossier\"",
        "label = \"Déposer\"",
        1,
    );
    Definition::from_toml(&toml).expect("definition")
}

/// Every event appears once in the feed, after the cursor it was asked
/// from, each dossier's in order; `feed_end` is past all of them.
pub async fn the_feed_gives_every_event_once_in_order(store: &dyn Store) {
    let start = store.feed_end().await.expect("end");
    let a = deposit(store, "Nevers", "58194", &["acv"]).await;
    let b = deposit(store, "Vierzon", "18279", &["ti"]).await;
    let (order, version) = set_aside(a.version);
    store
        .execute(request(a.id, order, responsable(), version, None))
        .await
        .expect("set aside");
    // A feed may hold back committed events while an older transaction
    // of the database is still running (PostgreSQL's rule, which other
    // tests' transactions on the same server trigger): it is followed as
    // a consumer would, until it has given the three or a deadline passed.
    let mut seen = Vec::new();
    let mut cursor = Some(start);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.len() < 3 && std::time::Instant::now() < deadline {
        let page = store
            .events_after(cursor.as_ref(), 2, None)
            .await
            .expect("page");
        if page.items.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        seen.extend(page.items.iter().map(|e| (e.event.dossier_id, e.event.seq)));
        cursor = page.next.as_deref().and_then(FeedCursor::decode);
    }
    assert_eq!(seen, vec![(a.id, 1), (b.id, 1), (a.id, 2)]);
    let after_all = store
        .events_after(cursor.as_ref(), 10, None)
        .await
        .expect("after");
    assert!(after_all.items.is_empty(), "each event once");
    // The feed's end, read now, is past the three: following from there
    // gives none of them again.
    let end = store.feed_end().await.expect("end");
    let after_end = store
        .events_after(Some(&end), 10, None)
        .await
        .expect("after");
    assert!(after_end
        .items
        .iter()
        .all(|e| ![a.id, b.id].contains(&e.event.dossier_id)));
    if after_end.items.is_empty() {
        assert_eq!(after_end.next, Some(end.encode()), "the cursor stays");
    }
    let only_ti = store
        .events_after(None, 10, Some(&["ti"]))
        .await
        .expect("ti");
    let ids: Vec<DossierId> = only_ti.items.iter().map(|e| e.event.dossier_id).collect();
    assert_eq!(ids, vec![b.id], "need to know in the feed");
}

fn filter() -> DossierFilter {
    DossierFilter {
        limit: 50,
        ..DossierFilter::default()
    }
}

fn ids(page: &Page<Dossier>) -> Vec<DossierId> {
    page.items.iter().map(|d| d.id).collect()
}

/// Every filter the lists offer, alone and together, with the cursor and
/// the capped count.
pub async fn lists_filter_page_and_count(store: &dyn Store) {
    let def = definition();
    let nevers = deposit(store, "Nevers", "58194", &["acv"]).await;
    let vierzon = deposit(store, "Vierzon", "18279", &["ti"]).await;
    let epinal = deposit(store, "Épinal", "88160", &["acv", "ti"]).await;
    let (order, version) = set_aside(vierzon.version);
    store
        .execute(request(vierzon.id, order, responsable(), version, None))
        .await
        .expect("set aside");
    let all = store.list_dossiers(&filter()).await.expect("all");
    assert_eq!(
        ids(&all),
        vec![nevers.id, vierzon.id, epinal.id],
        "reception order"
    );
    assert!(all.next.is_none());

    let mut by_state = filter();
    by_state.states = vec!["sans_suite".into()];
    assert_eq!(
        ids(&store.list_dossiers(&by_state).await.expect("state")),
        vec![vierzon.id]
    );
    let mut by_programme = filter();
    by_programme.programmes = vec!["ti".into()];
    assert_eq!(
        ids(&store.list_dossiers(&by_programme).await.expect("programme")),
        vec![vierzon.id, epinal.id]
    );
    let mut by_wave = filter();
    by_wave.waves = vec![1];
    assert_eq!(
        store
            .list_dossiers(&by_wave)
            .await
            .expect("wave")
            .items
            .len(),
        3
    );
    by_wave.waves = vec![2];
    assert!(store
        .list_dossiers(&by_wave)
        .await
        .expect("wave")
        .items
        .is_empty());
    let mut awaiting_dar = filter();
    awaiting_dar.awaiting_columns = crate::awaiting_columns(&def, &["dar".to_string()]);
    assert_eq!(
        ids(&store.list_dossiers(&awaiting_dar).await.expect("awaiting")),
        vec![nevers.id, epinal.id],
        "received dossiers wait on the DAR; one set aside waits on nobody"
    );
    let mut search = filter();
    search.q = Some("EPINAL".into());
    assert_eq!(
        ids(&store.list_dossiers(&search).await.expect("q")),
        vec![epinal.id]
    );
    search.q = Some("%".into());
    assert!(store
        .list_dossiers(&search)
        .await
        .expect("q")
        .items
        .is_empty());
    let mut together = filter();
    together.programmes = vec!["acv".into()];
    together.awaiting_columns = awaiting_dar.awaiting_columns.clone();
    together.q = Some("nev".into());
    assert_eq!(
        ids(&store.list_dossiers(&together).await.expect("all filters")),
        vec![nevers.id]
    );

    let mut first_page = filter();
    first_page.limit = 2;
    let page = store.list_dossiers(&first_page).await.expect("page 1");
    assert_eq!(ids(&page), vec![nevers.id, vierzon.id]);
    let mut second_page = filter();
    second_page.after = page.next.as_deref().and_then(ListCursor::decode);
    assert!(second_page.after.is_some(), "a cursor to the next page");
    let page = store.list_dossiers(&second_page).await.expect("page 2");
    assert_eq!((ids(&page), page.next), (vec![epinal.id], None));

    assert_eq!(
        store.count_matching(&filter(), 1000).await.expect("count"),
        3
    );
    assert_eq!(
        store.count_matching(&filter(), 1).await.expect("capped"),
        2,
        "cap + 1"
    );
    assert_eq!(
        store
            .count_matching(&by_programme, 1000)
            .await
            .expect("count"),
        2
    );
}

/// A reader limited to some programmes sees only their dossiers.
pub async fn need_to_know_hides_other_programmes(store: &dyn Store) {
    let nevers = deposit(store, "Nevers", "58194", &["acv"]).await;
    let vierzon = deposit(store, "Vierzon", "18279", &["ti"]).await;
    let mut acv_only = filter();
    acv_only.readable = Some(vec!["acv".into()]);
    assert_eq!(
        ids(&store.list_dossiers(&acv_only).await.expect("acv")),
        vec![nevers.id]
    );
    assert_eq!(
        store.count_matching(&acv_only, 1000).await.expect("count"),
        1
    );
    let mut nothing = filter();
    nothing.readable = Some(Vec::new());
    assert!(store
        .list_dossiers(&nothing)
        .await
        .expect("none")
        .items
        .is_empty());
    let stats = store
        .stats(Some(&["ti"]), reception_day())
        .await
        .expect("stats");
    let total: i64 = stats.by_state.iter().map(|s| s.count).sum();
    assert_eq!(total, 1);
    let _ = vierzon;
}

/// Counts per wave and state, and per agency the dossiers waiting on it.
pub async fn stats_count_by_wave_state_and_awaiting(store: &dyn Store) {
    let empty = store.stats(None, reception_day()).await.expect("stats");
    assert!(empty.by_state.is_empty());
    let a = deposit(store, "Nevers", "58194", &["acv"]).await;
    deposit(store, "Vierzon", "18279", &["ti"]).await;
    deposit(store, "Épinal", "88160", &["acv", "ti"]).await;
    let (order, version) = set_aside(a.version);
    store
        .execute(request(a.id, order, responsable(), version, None))
        .await
        .expect("set aside");
    let stats = store.stats(None, reception_day()).await.expect("stats");
    let counts: Vec<(u8, &str, i64)> = stats
        .by_state
        .iter()
        .map(|s| (s.wave, s.state.as_str(), s.count))
        .collect();
    assert_eq!(counts, vec![(1, "recu", 2), (1, "sans_suite", 1)]);
    assert_eq!(stats.awaiting, vec![("dar".to_string(), 2)]);
}

/// Sealing gives every event its place in the global chain; the audit of
/// an untouched journal is clean; a rebuild gives the same projections.
pub async fn the_journal_seals_verifies_and_rebuilds(store: &dyn Store) {
    let def = definition();
    let a = deposit(store, "Nevers", "58194", &["acv"]).await;
    deposit(store, "Vierzon", "18279", &["ti"]).await;
    let (order, version) = set_aside(a.version);
    store
        .execute(request(a.id, order, responsable(), version, None))
        .await
        .expect("set aside");
    store.seal_pending().await.expect("seal");
    let head = store.global_head().await.expect("head");
    assert_eq!(head.seq, 3);
    let report = store.verify(&def, Some(&head)).await.expect("verify");
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.dossiers, report.events, report.pending), (2, 3, 0));
    let before = store.list_dossiers(&filter()).await.expect("list").items;
    let counts = store.stats(None, reception_day()).await.expect("stats");
    let rebuilt = store
        .rebuild_projections(&def, false)
        .await
        .expect("rebuild");
    assert_eq!((rebuilt.rebuilt, rebuilt.applied), (2, true));
    assert_eq!(
        store.list_dossiers(&filter()).await.expect("list").items,
        before
    );
    assert_eq!(
        store.stats(None, reception_day()).await.expect("stats"),
        counts,
        "the counts follow the rebuild"
    );
    assert_eq!(store.count_dossiers().await.expect("count"), 2);
    let history = store.history(a.id).await.expect("history");
    assert!(history
        .iter()
        .all(|e| e.global_seq.is_some() && e.global_digest.is_some()));
    assert!(store
        .verify(&def, Some(&head))
        .await
        .expect("verify")
        .is_clean());
}

/// A definition migration appends its event to every planned dossier,
/// chained on, and makes the new definition active.
pub async fn a_definition_migration_appends_to_every_open_dossier(store: &dyn Store) {
    let old = definition();
    store.check_definition(&old, "old").await.expect("first");
    let a = deposit(store, "Nevers", "58194", &["acv"]).await;
    let new = other_definition();
    let plans = store.plan_migration(&old, &new).await.expect("plan");
    assert_eq!(plans.len(), 1);
    let moved = store
        .migrate_definition(&old, &new, "new", &plans, &responsable(), in_wave_one())
        .await
        .expect("migrate");
    assert_eq!(moved, 1);
    let history = store.history(a.id).await.expect("history");
    assert_eq!(history.len(), 2);
    let canonical = serde_jcs::to_string(&history[1].content).expect("jcs");
    assert_eq!(
        history[1].digest,
        crate::chain_digest(&history[0].digest, &canonical)
    );
    let active = store
        .active_definition()
        .await
        .expect("active")
        .expect("one");
    assert_eq!(active.sha256, crate::definition_sha256(&new));
    store.seal_pending().await.expect("seal");
    assert!(store.verify(&new, None).await.expect("verify").is_clean());
}

/// A dossier is late from the day after its earliest deadline awaited
/// (the DAR's instruction: 10 working days from reception): listed with
/// `overdue_on` and counted per agency that day, not the day before, and
/// no longer once it waits on nobody.
pub async fn late_dossiers_are_listed_and_counted_on_the_day_asked(store: &dyn Store) {
    let due = ami_core::add_working_days(reception_day(), 10, ami_core::Calendar::France);
    let a = deposit(store, "Nevers", "58194", &["acv"]).await;
    let b = deposit(store, "Vierzon", "18279", &["ti"]).await;
    let late_on = |day: chrono::NaiveDate| {
        let mut f = filter();
        f.overdue_on = Some(day);
        f
    };
    let on_due_day = store.list_dossiers(&late_on(due)).await.expect("list");
    assert!(
        on_due_day.items.is_empty(),
        "on time until the end of its last day"
    );
    let stats = store.stats(None, due).await.expect("stats");
    assert!(stats.overdue.is_empty(), "{:?}", stats.overdue);

    let day_after = due.succ_opt().expect("a day after");
    let late = store
        .list_dossiers(&late_on(day_after))
        .await
        .expect("list");
    assert_eq!(ids(&late), vec![a.id, b.id]);
    assert_eq!(
        store
            .count_matching(&late_on(day_after), 1000)
            .await
            .expect("count"),
        2
    );
    let stats = store.stats(None, day_after).await.expect("stats");
    assert_eq!(stats.overdue, vec![("dar".to_string(), 2)]);
    let stats = store.stats(Some(&["ti"]), day_after).await.expect("stats");
    assert_eq!(stats.overdue, vec![("dar".to_string(), 1)]);

    // Set aside through the group commit: it waits on nobody now.
    let (order, version) = set_aside(a.version);
    store
        .execute(request(a.id, order, responsable(), version, None))
        .await
        .expect("set aside");
    let late = store
        .list_dossiers(&late_on(day_after))
        .await
        .expect("list");
    assert_eq!(ids(&late), vec![b.id]);
    let stats = store.stats(None, day_after).await.expect("stats");
    assert_eq!(stats.overdue, vec![("dar".to_string(), 1)]);
}

// ---- Mail in and mail out (issue 13) ----

/// A message as the importer hands it over, told apart by `key`.
fn message(key: &str, minutes: i64, state: crate::ArrivalState) -> crate::NewArrival {
    crate::NewArrival {
        dedup_key: format!("<{key}@mairie.example>"),
        message_id: Some(format!("<{key}@mairie.example>")),
        sender: "mairie@nevers.example".into(),
        sender_name: Some("Mairie de Nevers".into()),
        subject: format!("Candidature AMI ({key})"),
        received_at: in_wave_one() + Duration::minutes(minutes),
        wave: Some(1),
        state,
        quarantine_reason: (state == crate::ArrivalState::Quarantaine)
            .then(|| "pièce jointe illisible".into()),
        text: "Veuillez trouver ci-joint notre candidature.".into(),
        raw_sha256: format!("{:064x}", 0xa000 + minutes),
        raw_size: 12_345,
        attachments: vec![crate::Attachment {
            filename: "candidature.pdf".into(),
            media_type: "application/pdf".into(),
            size: 10_000,
            sha256: format!("{:064x}", 0xb000 + minutes),
        }],
        imported_at: in_wave_one() + Duration::minutes(minutes + 1),
        source: "imap".into(),
    }
}

async fn arrive(store: &dyn Store, key: &str, minutes: i64) -> uuid::Uuid {
    let recorded = store
        .record_arrival(&message(key, minutes, crate::ArrivalState::Nouveau))
        .await
        .expect("record arrival");
    assert!(recorded.created, "{key} is new");
    recorded.id
}

/// A deposit with both pièces the instruction needs, and the porteur's
/// address when given.
fn complete_deposit_order(
    commune: &str,
    code_insee: &str,
    email: Option<&str>,
) -> (DossierId, Order) {
    let def = definition();
    let (id, mut order) = deposit_order(commune, code_insee, &["acv"]);
    if let Content::Deposit(new) = &mut order.content {
        new.porteur.email = email.map(Into::into);
        new.pieces = ["dossier_candidature", "budget_previsionnel"]
            .into_iter()
            .enumerate()
            .map(|(n, kind)| ami_core::Piece {
                kind: def.piece_kind(kind).expect("piece kind"),
                filename: format!("{kind}.pdf").into(),
                size: Some(1000),
                sha256: Some(format!("{:064x}", 0xc000 + n).into()),
                media_type: Some("application/pdf".into()),
            })
            .collect();
    }
    (id, order)
}

async fn applied(store: &dyn Store, req: TransitionRequest) -> Dossier {
    let action = req.command.action.clone();
    match store.execute(req).await {
        Ok(Executed::Applied { dossier, .. }) => *dossier,
        other => panic!("{action}: {other:?}"),
    }
}

/// A dossier of the ACV programme with its avis given: one step from the
/// decision.
async fn ready_for_decision(store: &dyn Store, commune: &str, code: &str) -> Dossier {
    let def = definition();
    let (id, order) = complete_deposit_order(commune, code, Some("maire@commune.example"));
    let d = applied(store, request(id, order, agent(), None, None)).await;
    let d = applied(
        store,
        request(
            d.id,
            Order::new("instruire").with_verdict("favorable"),
            agent(),
            Some(d.version),
            None,
        ),
    )
    .await;
    applied(
        store,
        request(
            d.id,
            Order::new("avis_acv").with_verdict("favorable"),
            person(&def, "claude.acv@anct.example", "acv", "agent"),
            Some(d.version),
            None,
        ),
    )
    .await
}

fn kinds(letters: &[crate::OutgoingRecord]) -> Vec<(crate::OutgoingKind, Option<u64>)> {
    letters.iter().map(|l| (l.kind, l.event_seq)).collect()
}

/// The same message imported twice (after a crash, say) is one arrival:
/// the second import gives the first one's id and writes nothing.
pub async fn an_arrival_recorded_twice_is_one(store: &dyn Store) {
    let new = message("a1", 0, crate::ArrivalState::Nouveau);
    let first = store.record_arrival(&new).await.expect("first import");
    let second = store.record_arrival(&new).await.expect("second import");
    assert!(first.created);
    assert_eq!((second.id, second.created), (first.id, false));
    let read = store.arrival(first.id).await.expect("read").expect("found");
    assert_eq!(read.state, crate::ArrivalState::Nouveau);
    assert_eq!(
        (
            read.dedup_key.as_str(),
            read.attachments.len(),
            read.raw_size
        ),
        (new.dedup_key.as_str(), 1, 12_345)
    );
    assert_eq!(read.received_at, new.received_at);
    assert_eq!(read.handling, None);
    assert_eq!(
        store
            .arrivals(&crate::ArrivalFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    assert_eq!(
        store.arrival(uuid::Uuid::now_v7()).await.expect("read"),
        None
    );
}

/// Many imports of one message at once (several instances polling the
/// mailbox) create one arrival, and all give its id.
pub async fn concurrent_imports_of_one_message_create_one_arrival(store: &dyn Store) {
    let new = message("a2", 0, crate::ArrivalState::Nouveau);
    let imports = (0..12).map(|_| store.record_arrival(&new));
    let outcomes: Vec<crate::RecordedArrival> = futures_util::future::join_all(imports)
        .await
        .into_iter()
        .map(|o| o.expect("import"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| o.created).count(), 1);
    assert!(outcomes.iter().all(|o| o.id == outcomes[0].id));
}

/// Arrivals are listed in reception order, all or of one state, a page at
/// a time.
pub async fn arrivals_are_listed_by_state_with_a_cursor(store: &dyn Store) {
    let mut new = Vec::new();
    for n in 0..5 {
        new.push(arrive(store, &format!("l{n}"), 10 - n).await);
    }
    let held = store
        .record_arrival(&message("q", 3, crate::ArrivalState::Quarantaine))
        .await
        .expect("quarantined")
        .id;
    // Reception order: l4 (6 min), l3 (7), l2 (8), l1 (9), l0 (10); q at 3.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .arrivals(&crate::ArrivalFilter {
                state: Some(crate::ArrivalState::Nouveau),
                cursor,
                limit: 2,
            })
            .await
            .expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|a| a.id));
        match page.next {
            Some(next) => cursor = Some(crate::ArrivalCursor::decode(&next).expect("cursor")),
            None => break,
        }
    }
    let expected: Vec<uuid::Uuid> = new.iter().rev().copied().collect();
    assert_eq!(seen, expected);
    let all = store
        .arrivals(&crate::ArrivalFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("all");
    assert_eq!(all.items.first().map(|a| a.id), Some(held));
    assert_eq!((all.items.len(), all.next), (6, None));
    let quarantined = store
        .arrivals(&crate::ArrivalFilter {
            state: Some(crate::ArrivalState::Quarantaine),
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("quarantined");
    assert_eq!(
        quarantined.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![held]
    );
    assert_eq!(
        quarantined.items[0].quarantine_reason.as_deref(),
        Some("pièce jointe illisible")
    );
}

/// A deposit that names an arrival marks it `traite` with the dossier and
/// the event, in the deposit's transaction; a second deposit naming it is
/// refused whole (no dossier); an attachment names its arrival the same
/// way; an unknown arrival refuses the transition.
pub async fn a_deposit_handles_its_arrival_once(store: &dyn Store) {
    let arrival = arrive(store, "d1", 0).await;
    let (id, order) = deposit_order("Nevers", "58194", &["acv"]);
    let mut req = request(id, order, agent(), None, None);
    req.arrival = Some(arrival);
    let d = applied(store, req).await;
    let handled = store.arrival(arrival).await.expect("read").expect("found");
    assert_eq!(handled.state, crate::ArrivalState::Traite);
    assert_eq!(handled.handling, Some(crate::Handling::Depot));
    assert_eq!(
        (handled.dossier_id, handled.event_seq),
        (Some(d.id), Some(1))
    );
    assert_eq!(handled.handled_by.as_deref(), Some(agent().id.as_str()));
    assert_eq!(handled.handled_at, Some(in_wave_one()));

    let (again, order) = deposit_order("Vierzon", "18279", &["ti"]);
    let mut req = request(again, order, agent(), None, None);
    req.arrival = Some(arrival);
    match store.execute(req).await {
        Err(StoreError::ArrivalHandled { state }) => {
            assert_eq!(state, crate::ArrivalState::Traite)
        }
        other => panic!("a second deposit of one arrival: {other:?}"),
    }
    assert_eq!(store.get_dossier(again).await.expect("read"), None);
    assert_eq!(store.count_dossiers().await.expect("count"), 1);
    assert!(store
        .dossier_messages(again)
        .await
        .expect("letters")
        .is_empty());

    let (unknown, order) = deposit_order("Auxerre", "89024", &["acv"]);
    let mut req = request(unknown, order, agent(), None, None);
    req.arrival = Some(uuid::Uuid::now_v7());
    assert!(matches!(
        store.execute(req).await,
        Err(StoreError::ArrivalNotFound)
    ));
    assert_eq!(store.get_dossier(unknown).await.expect("read"), None);

    // A pièce received by mail, attached to the dossier.
    let piece = arrive(store, "d2", 5).await;
    let mut req = request(d.id, budget_file(2), agent(), Some(d.version), None);
    req.arrival = Some(piece);
    let after = applied(store, req).await;
    let attached = store.arrival(piece).await.expect("read").expect("found");
    assert_eq!(attached.handling, Some(crate::Handling::Rattachement));
    assert_eq!(
        (attached.dossier_id, attached.event_seq),
        (Some(d.id), Some(after.version))
    );
    let mut req = request(d.id, budget_file(3), agent(), None, None);
    req.arrival = Some(piece);
    assert!(matches!(
        store.execute(req).await,
        Err(StoreError::ArrivalHandled { .. })
    ));
    assert_eq!(
        store.history(d.id).await.expect("history").len(),
        2,
        "the refused attachment wrote no event"
    );

    // Deposits of one arrival at once (two people, two instances): one
    // dossier, the others refused.
    let contested = arrive(store, "d3", 10).await;
    let runs = (0..4).map(|n| {
        let (id, order) = deposit_order(
            &format!("Commune {n}"),
            &format!("{:05}", 20_000 + n),
            &["acv"],
        );
        let mut req = request(id, order, agent(), None, None);
        req.arrival = Some(contested);
        store.execute(req)
    });
    let outcomes = futures_util::future::join_all(runs).await;
    let created: Vec<DossierId> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(Executed::Applied { dossier, .. }) => Some(dossier.id),
            Err(StoreError::ArrivalHandled { .. }) => None,
            other => panic!("a deposit of a contested arrival: {other:?}"),
        })
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    assert_eq!(store.count_dossiers().await.expect("count"), 2);
    let won = store
        .arrival(contested)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(won.dossier_id, Some(created[0]));
}

/// An arrival is set aside once, with its motivation; a quarantined one
/// may be; a handled one may not, nor may a set-aside one be deposited.
pub async fn an_arrival_is_set_aside_once(store: &dyn Store) {
    let arrival = arrive(store, "s1", 0).await;
    let at = in_wave_one() + Duration::hours(2);
    let aside = store
        .set_arrival_aside(arrival, &agent(), "Publicité", at)
        .await
        .expect("set aside");
    assert_eq!(aside.state, crate::ArrivalState::Ecarte);
    assert_eq!(aside.handling, Some(crate::Handling::Ecarte));
    assert_eq!(
        (aside.motivation.as_deref(), aside.handled_at),
        (Some("Publicité"), Some(at))
    );
    assert_eq!(
        aside.handled_by_name.as_deref(),
        Some(agent().name.as_str())
    );
    match store
        .set_arrival_aside(arrival, &responsable(), "Encore", at)
        .await
    {
        Err(StoreError::ArrivalHandled { state }) => {
            assert_eq!(state, crate::ArrivalState::Ecarte)
        }
        other => panic!("set aside twice: {other:?}"),
    }
    let read = store.arrival(arrival).await.expect("read").expect("found");
    assert_eq!(
        read.motivation.as_deref(),
        Some("Publicité"),
        "kept as first"
    );
    let (id, order) = deposit_order("Nevers", "58194", &["acv"]);
    let mut req = request(id, order, agent(), None, None);
    req.arrival = Some(arrival);
    assert!(matches!(
        store.execute(req).await,
        Err(StoreError::ArrivalHandled { .. })
    ));
    assert_eq!(store.count_dossiers().await.expect("count"), 0);

    let held = store
        .record_arrival(&message("s2", 1, crate::ArrivalState::Quarantaine))
        .await
        .expect("quarantined")
        .id;
    let (id, order) = deposit_order("Nevers", "58194", &["acv"]);
    let mut req = request(id, order, agent(), None, None);
    req.arrival = Some(held);
    match store.execute(req).await {
        Err(StoreError::ArrivalHandled { state }) => {
            assert_eq!(state, crate::ArrivalState::Quarantaine)
        }
        other => panic!("a deposit of a quarantined message: {other:?}"),
    }
    let held = store
        .set_arrival_aside(held, &agent(), "Virus", at)
        .await
        .expect("a quarantined message set aside");
    assert_eq!(held.state, crate::ArrivalState::Ecarte);
    assert!(matches!(
        store
            .set_arrival_aside(uuid::Uuid::now_v7(), &agent(), "?", at)
            .await,
        Err(StoreError::ArrivalNotFound)
    ));
}

/// A deposit writes its accusé de réception with its event: to the
/// porteur's address, or kept without one; a refused deposit writes none.
pub async fn a_deposit_writes_its_accuse_de_reception(store: &dyn Store) {
    let (id, order) = complete_deposit_order("Nevers", "58194", Some("maire@nevers.example"));
    let d = applied(store, request(id, order, agent(), None, None)).await;
    let letters = store.dossier_messages(d.id).await.expect("letters");
    assert_eq!(
        kinds(&letters),
        vec![(crate::OutgoingKind::AccuseReception, Some(1))]
    );
    let letter = &letters[0];
    assert_eq!(letter.status, crate::OutgoingStatus::EnAttente);
    assert_eq!(letter.recipient.as_deref(), Some("maire@nevers.example"));
    assert_eq!((letter.attempts, letter.claim_token), (0, None));
    assert_eq!(letter.created_at, in_wave_one());

    let silent = deposit(store, "Vierzon", "18279", &["ti"]).await;
    let letters = store.dossier_messages(silent.id).await.expect("letters");
    assert_eq!(
        kinds(&letters),
        vec![(crate::OutgoingKind::AccuseReception, Some(1))]
    );
    assert_eq!(letters[0].status, crate::OutgoingStatus::SansDestinataire);
    assert_eq!(letters[0].recipient, None);

    // A second deposit of the commune is refused: no dossier, no letter.
    let (again, order) = complete_deposit_order("Nevers", "58194", Some("maire@nevers.example"));
    assert!(matches!(
        store
            .execute(request(again, order, agent(), None, None))
            .await,
        Err(StoreError::Rejected { .. })
    ));
    assert!(store
        .dossier_messages(again)
        .await
        .expect("letters")
        .is_empty());
    // Letters wait until claimed: nothing else is due.
    let due = store
        .claim_outgoing(in_wave_one(), Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert_eq!(
        due.iter().map(|l| l.dossier_id).collect::<Vec<_>>(),
        vec![Some(d.id)]
    );
}

/// The decision (lauréat, through the group commit; refusé, through a
/// committee session) writes one `decision` letter with its event; a
/// refused decision, or a committee's dry run, writes none.
pub async fn a_decision_writes_one_letter(store: &dyn Store) {
    let d = ready_for_decision(store, "Nevers", "58194").await;
    // The agent may not declare: refused, nothing written.
    assert!(matches!(
        store
            .execute(request(
                d.id,
                Order::new("declarer_laureat"),
                agent(),
                Some(d.version),
                None
            ))
            .await,
        Err(StoreError::Rejected { .. })
    ));
    assert_eq!(
        kinds(&store.dossier_messages(d.id).await.expect("letters")),
        vec![(crate::OutgoingKind::AccuseReception, Some(1))]
    );
    // Two responsables declare at once: one decision lands, and one
    // letter with it; the other's write, refused, writes none.
    let declare = || {
        store.execute(request(
            d.id,
            Order::new("declarer_laureat"),
            responsable(),
            Some(d.version),
            None,
        ))
    };
    let (a, b) = futures_util::future::join(declare(), declare()).await;
    let laureat = match (a, b) {
        (Ok(Executed::Applied { dossier, .. }), Err(StoreError::Conflict { .. }))
        | (Err(StoreError::Conflict { .. }), Ok(Executed::Applied { dossier, .. })) => *dossier,
        other => panic!("two declarations at once: {other:?}"),
    };
    assert_eq!(laureat.state.as_str(), "laureat");
    let letters = store.dossier_messages(d.id).await.expect("letters");
    assert_eq!(
        kinds(&letters),
        vec![
            (crate::OutgoingKind::AccuseReception, Some(1)),
            (crate::OutgoingKind::Decision, Some(laureat.version)),
        ]
    );
    assert_eq!(
        letters[1].recipient.as_deref(),
        Some("maire@commune.example")
    );

    // A committee refuses another: its decision's letter comes with it.
    let other = ready_for_decision(store, "Vierzon", "18279").await;
    let refusal = || {
        let mut order = Order::new("refuser");
        order.motivation = Some("Projet hors du périmètre".into());
        vec![request(
            other.id,
            order,
            responsable(),
            Some(other.version),
            None,
        )]
    };
    let session = crate::CommitteeSession {
        id: uuid::Uuid::now_v7(),
        wave: 1,
        held_on: reception_day(),
        minutes: "Séance".into(),
        members: Vec::new(),
        decisions: Vec::new(),
        recorded_by: responsable().id.to_string(),
        recorded_by_name: responsable().name.to_string(),
        recorded_at: in_wave_one(),
    };
    let dry = store
        .hold_committee(&session, refusal(), true)
        .await
        .expect("dry run");
    assert!(dry.all_passed() && !dry.recorded);
    assert_eq!(
        store
            .dossier_messages(other.id)
            .await
            .expect("letters")
            .len(),
        1,
        "a dry run writes no letter"
    );
    let held = store
        .hold_committee(&session, refusal(), false)
        .await
        .expect("committee");
    assert!(held.recorded, "{:?}", held.decisions);
    assert_eq!(
        kinds(&store.dossier_messages(other.id).await.expect("letters")),
        vec![
            (crate::OutgoingKind::AccuseReception, Some(1)),
            (crate::OutgoingKind::Decision, Some(other.version + 1)),
        ]
    );
}

/// Senders claiming at the same time never get the same letter, and
/// every letter due is claimed once.
pub async fn concurrent_claims_never_share_a_letter(store: &dyn Store) {
    let mut expected = std::collections::HashSet::new();
    for n in 0..30 {
        let day = reception_day() + Duration::days(n);
        assert!(store
            .enqueue_digest("dar", day, Some("dar@anct.example"), in_wave_one())
            .await
            .expect("digest"));
    }
    for letter in store
        .claim_outgoing(in_wave_one(), Duration::seconds(0), 100)
        .await
        .expect("look")
    {
        expected.insert(letter.id);
    }
    assert_eq!(expected.len(), 30, "a lease of nothing holds nothing");
    let now = in_wave_one() + Duration::seconds(1);
    let claims = (0..8).map(|_| store.claim_outgoing(now, Duration::minutes(5), 3));
    let mut claimed: Vec<uuid::Uuid> = Vec::new();
    let mut rounds = 0;
    let mut pending = futures_util::future::join_all(claims).await;
    loop {
        let mut got = 0;
        for outcome in pending {
            for letter in outcome.expect("claim") {
                assert_eq!(letter.attempts, 2);
                assert_eq!(letter.claimed_until, Some(now + Duration::minutes(5)));
                claimed.push(letter.id);
                got += 1;
            }
        }
        rounds += 1;
        if got == 0 || rounds > 20 {
            break;
        }
        pending = futures_util::future::join_all(
            (0..8).map(|_| store.claim_outgoing(now, Duration::minutes(5), 3)),
        )
        .await;
    }
    let unique: std::collections::HashSet<uuid::Uuid> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a letter claimed twice");
    assert_eq!(unique, expected, "every letter claimed once");
}

/// A sender whose lease ran out and whose letter another claimed cannot
/// record its outcome; the one holding the claim does. A failure is
/// retried from its day, or given up.
pub async fn a_lapsed_claim_cannot_record_the_outcome(store: &dyn Store) {
    let day = reception_day();
    store
        .enqueue_digest("acv", day, Some("acv@anct.example"), in_wave_one())
        .await
        .expect("digest");
    let t0 = in_wave_one();
    let lease = Duration::minutes(5);
    let first = store.claim_outgoing(t0, lease, 10).await.expect("claim");
    assert_eq!(first.len(), 1);
    let letter = first[0].clone();
    let first_claim = letter.claim_token.expect("a claim token");
    assert!(store
        .claim_outgoing(t0 + Duration::minutes(1), lease, 10)
        .await
        .expect("claim")
        .is_empty());
    let second = store
        .claim_outgoing(t0 + Duration::minutes(6), lease, 10)
        .await
        .expect("claim after the lease");
    assert_eq!(
        second.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![letter.id]
    );
    let second_claim = second[0].claim_token.expect("a claim token");
    assert_ne!(first_claim, second_claim);
    assert!(!store
        .mark_sent(letter.id, first_claim, t0 + Duration::minutes(7))
        .await
        .expect("mark"));
    assert!(!store
        .mark_failed(letter.id, first_claim, "timeout", None)
        .await
        .expect("mark"));
    // The second sender fails, to retry later.
    let retry_at = t0 + Duration::hours(1);
    assert!(store
        .mark_failed(letter.id, second_claim, "451 try later", Some(retry_at))
        .await
        .expect("mark"));
    assert!(store
        .claim_outgoing(t0 + Duration::minutes(30), lease, 10)
        .await
        .expect("claim")
        .is_empty());
    let third = store
        .claim_outgoing(retry_at, lease, 10)
        .await
        .expect("claim");
    assert_eq!(third.len(), 1);
    assert_eq!(
        (third[0].attempts, third[0].last_error.as_deref()),
        (3, Some("451 try later"))
    );
    let third_claim = third[0].claim_token.expect("a claim token");
    let sent_at = retry_at + Duration::seconds(2);
    assert!(store
        .mark_sent(letter.id, third_claim, sent_at)
        .await
        .expect("sent"));
    assert!(!store
        .mark_sent(letter.id, third_claim, sent_at)
        .await
        .expect("sent once"));
    assert!(store
        .claim_outgoing(retry_at + Duration::days(1), lease, 10)
        .await
        .expect("claim")
        .is_empty());

    // Given up after the sender's last attempt.
    store
        .enqueue_digest("ti", day, Some("ti@anct.example"), t0)
        .await
        .expect("digest");
    let ti = store.claim_outgoing(t0, lease, 10).await.expect("claim");
    assert_eq!(ti.len(), 1);
    assert!(store
        .mark_failed(
            ti[0].id,
            ti[0].claim_token.expect("token"),
            "550 unknown",
            None
        )
        .await
        .expect("give up"));
    assert!(store
        .claim_outgoing(t0 + Duration::days(2), lease, 10)
        .await
        .expect("claim")
        .is_empty());
}

/// Several instances enqueueing an agency's digest of a day enqueue one;
/// without an address it is kept, never due.
pub async fn a_digest_enqueued_twice_is_one(store: &dyn Store) {
    let day = reception_day();
    let tries =
        (0..6).map(|_| store.enqueue_digest("dar", day, Some("dar@anct.example"), in_wave_one()));
    let enqueued: Vec<bool> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(|o| o.expect("enqueue"))
        .collect();
    assert_eq!(enqueued.iter().filter(|e| **e).count(), 1);
    assert!(store
        .enqueue_digest(
            "dar",
            day + Duration::days(1),
            Some("dar@anct.example"),
            in_wave_one()
        )
        .await
        .expect("next day"));
    assert!(store
        .enqueue_digest("ti", day, None, in_wave_one())
        .await
        .expect("no address"));
    let due = store
        .claim_outgoing(in_wave_one(), Duration::minutes(5), 10)
        .await
        .expect("claim");
    assert!(due.iter().all(|l| l.kind == crate::OutgoingKind::Digest));
    let mut got: Vec<(Option<String>, Option<chrono::NaiveDate>)> = due
        .iter()
        .map(|l| (l.digest_agency.clone(), l.digest_date))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (Some("dar".into()), Some(day)),
            (Some("dar".into()), Some(day + Duration::days(1))),
        ]
    );
}

/// The files an arrival keeps (its raw message, its attachments) are
/// referenced: the files' garbage collection keeps them.
pub async fn referenced_files_include_arrival_files(store: &dyn Store) {
    let new = message("f1", 0, crate::ArrivalState::Nouveau);
    store.record_arrival(&new).await.expect("import");
    let (id, order) = complete_deposit_order("Nevers", "58194", None);
    applied(store, request(id, order, agent(), None, None)).await;
    let files = store.referenced_files().await.expect("files");
    assert!(files.contains(&new.raw_sha256), "{files:?}");
    assert!(files.contains(&new.attachments[0].sha256), "{files:?}");
    assert!(
        files.contains(&format!("{:064x}", 0xc000)),
        "pièces still: {files:?}"
    );
    assert_eq!(files.len(), 4);
}
