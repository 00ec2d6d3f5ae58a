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
    Content, DepositOrder, Executed, IdempotencyKey, Order, Principal, Store, StoreError,
    TransitionRequest,
};

/// Runs every story against a fresh store made by `$fresh` (an `async fn()
/// -> Box<dyn Store>`), one test each.
#[macro_export]
macro_rules! stories {
    ($fresh:path) => {
        $crate::stories!(@each $fresh,
            a_deposit_reads_back_with_its_chain,
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
    let _ = (responsable(), set_aside(1), StoreError::NotFound);
}
