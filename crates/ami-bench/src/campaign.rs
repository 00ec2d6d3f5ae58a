//! Dossiers taken through the whole path: the bare measure's sample events,
//! and the large campaign `--load` writes through the store.

use std::sync::Arc;

use ami_core::{Actor, Definition, DossierId, Piece, Porteur};
use ami_service::store::{
    Content, Database, DepositOrder, Executed, Order, Principal, TransitionRequest,
};
use anyhow::Context;
use chrono::Utc;

fn actor(def: &Definition, name: &str, agency: &str, role: &str) -> anyhow::Result<Actor> {
    Ok(Actor {
        id: format!(
            "{}@bench.example",
            ami_core::text::search_key(name).replace(' ', ".")
        )
        .into(),
        name: name.into(),
        agency: def.agency_id(agency).context("agence du banc d'essai")?,
        role: def.role_id(role).context("rôle du banc d'essai")?,
    })
}

/// Commands and actors taking one dossier from deposit to lauréat, with a
/// budget sent again before instruction.
pub fn full_path(def: &Definition, id: DossierId, n: usize) -> anyhow::Result<Vec<(Order, Actor)>> {
    fn word<T>(found: Option<T>) -> anyhow::Result<T> {
        found.context("mot du banc d'essai absent de la définition")
    }
    let programmes: Vec<smol_str::SmolStr> = match n % 3 {
        0 => vec!["acv".into()],
        1 => vec!["acv".into(), "ti".into()],
        _ => vec!["ti".into()],
    };
    let (candidature, budget) = (
        word(def.piece_kind("dossier_candidature"))?,
        word(def.piece_kind("budget_previsionnel"))?,
    );
    let new = DepositOrder {
        id,
        commune: format!("Commune {n}").into(),
        code_insee: format!("{:05}", n % 99_999).into(),
        porteur: Porteur {
            nom: format!("Ville {n}").into(),
            email: None,
        },
        programmes: programmes.clone(),
        // Spread over the whole campaign (340 days), so over its three waves.
        received_at: chrono::DateTime::parse_from_rfc3339("2020-07-20T08:00:00+02:00")
            .map(|t| {
                t.with_timezone(&Utc) + chrono::Duration::seconds((n as i64 * 293) % 29_376_000)
            })
            .unwrap_or_default(),
        pieces: vec![
            Piece {
                kind: candidature,
                filename: "candidature.pdf".into(),
                size: Some(400_000),
                sha256: Some("ab".repeat(32).into()),
                media_type: Some("application/pdf".into()),
            },
            Piece {
                kind: budget.clone(),
                filename: "budget.xlsx".into(),
                size: Some(50_000),
                sha256: Some("ab".repeat(32).into()),
                media_type: Some(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
                ),
            },
        ],
        // Communes repeat past 99,999 dossiers: each is a second project.
        doublon_confirme: true,
    };
    let deposer = Order {
        content: Content::Deposit(Box::new(new)),
        ..Order::new("deposer")
    };
    let budget_v2 = Order {
        content: Content::Piece(Piece {
            kind: budget,
            filename: "budget-v2.xlsx".into(),
            size: Some(52_000),
            sha256: Some("ab".repeat(32).into()),
            media_type: Some(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
            ),
        }),
        ..Order::new("ajouter_piece")
    };
    let mut steps = vec![
        (deposer, actor(def, "Banc Agent", "dar", "agent")?),
        (budget_v2, actor(def, "Banc Agent", "dar", "agent")?),
        (
            Order::new("instruire").with_verdict("favorable"),
            actor(def, "Banc Agent", "dar", "agent")?,
        ),
    ];
    if programmes.iter().any(|p| p == "acv") {
        steps.push((
            Order::new("avis_acv").with_verdict("favorable"),
            actor(def, "Banc Acv", "acv", "agent")?,
        ));
    }
    if programmes.iter().any(|p| p == "ti") {
        steps.push((
            Order::new("avis_ti").with_verdict("favorable"),
            actor(def, "Banc Ti", "ti", "agent")?,
        ));
    }
    steps.push((
        Order::new("declarer_laureat"),
        actor(def, "Banc Responsable", "dar", "responsable")?,
    ));
    Ok(steps)
}

/// Loads `count` dossiers through the store (the same code path as the
/// service, without HTTP), stopping each at a state of the workflow.
pub async fn load_campaign(
    store: &Database,
    def: &Definition,
    count: usize,
) -> anyhow::Result<Vec<DossierId>> {
    let respond: ami_service::store::Respond =
        std::sync::Arc::new(|_: &ami_core::Dossier, _: &Actor| String::new());
    let def = Arc::new(def.clone());
    // Enough for group commit to gather writes (a few per commit).
    let workers = 32;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (store, def, respond) = (store.clone(), def.clone(), respond.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            let mut ids = Vec::new();
            while n < count {
                let id = DossierId(uuid::Uuid::now_v7());
                // One in ten stops on the way, in every state of the path.
                let steps = full_path(&def, id, n)?;
                let keep = if n % 10 == 9 { 1 + n % 4 } else { steps.len() };
                let mut version = None;
                for (command, actor) in steps.into_iter().take(keep) {
                    let req = TransitionRequest {
                        definition: def.clone(),
                        dossier_id: id,
                        expected_version: version,
                        command,
                        principal: Principal::Actor(actor),
                        now: Utc::now(),
                        idempotency: None,
                        respond: respond.clone(),
                        arrival: None,
                    };
                    match store.execute(req).await? {
                        Executed::Applied { dossier, .. } => version = Some(dossier.version),
                        Executed::Replayed { .. } => {}
                    }
                }
                ids.push(id);
                n += workers;
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(count);
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}
