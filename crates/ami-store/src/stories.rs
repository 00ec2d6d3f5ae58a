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
