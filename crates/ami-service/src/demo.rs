//! `ami demo`: a realistic campaign in an empty database, so that a newcomer
//! sees every state of the workflow in one command.

use ami_core::{Actor, CommitteeDecision, Definition, DossierId, Piece, PieceKind, Porteur};
use anyhow::{bail, Context};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use std::sync::Arc;

use crate::auth::create_token;
use crate::demo_files::{budget_xlsx, candidature_pdf};
use crate::files::Files;
use crate::store::{
    CommitteeDecisionRecord, CommitteeMember, CommitteeSession, Content, DepositOrder, Order,
    Store, TransitionRequest,
};

/// (commune, INSEE code, programmes)
const TOWNS: &[(&str, &str, &[&str])] = &[
    ("Nevers", "58194", &["acv", "ti"]),
    ("Auxerre", "89024", &["acv"]),
    ("Bourges", "18033", &["acv"]),
    ("Châteauroux", "36044", &["acv", "ti"]),
    ("Vierzon", "18279", &["acv", "ti"]),
    ("Montluçon", "03185", &["acv", "ti"]),
    ("Moulins", "03190", &["acv"]),
    ("Le Creusot", "71153", &["ti"]),
    ("Chalon-sur-Saône", "71076", &["acv", "ti"]),
    ("Épinal", "88160", &["acv"]),
    ("Saint-Dié-des-Vosges", "88413", &["acv", "ti"]),
    ("Lunéville", "54329", &["acv"]),
    ("Bar-le-Duc", "55029", &["acv"]),
    ("Charleville-Mézières", "08105", &["acv", "ti"]),
    ("Sedan", "08409", &["acv", "ti"]),
    ("Saint-Quentin", "02691", &["acv", "ti"]),
    ("Soissons", "02722", &["acv"]),
    ("Dieppe", "76217", &["acv", "ti"]),
    ("Fécamp", "76259", &["acv"]),
    ("Évreux", "27229", &["acv"]),
    ("Alençon", "61001", &["acv"]),
    ("Flers", "61169", &["ti"]),
    ("Lisieux", "14366", &["acv"]),
    ("Saint-Lô", "50502", &["acv"]),
    ("Morlaix", "29151", &["acv"]),
    ("Lorient", "56121", &["acv", "ti"]),
    ("Saint-Brieuc", "22278", &["acv"]),
    ("Laval", "53130", &["acv", "ti"]),
    ("Cholet", "49099", &["acv", "ti"]),
    ("Niort", "79191", &["acv"]),
    ("Angoulême", "16015", &["acv", "ti"]),
    ("Périgueux", "24322", &["acv"]),
    ("Agen", "47001", &["acv"]),
    ("Albi", "81004", &["acv"]),
    ("Rodez", "12202", &["acv", "ti"]),
    ("Tarbes", "65440", &["acv", "ti"]),
];

/// How far each demo dossier goes.
#[derive(Clone, Copy)]
enum Stop {
    Recu,
    RecuIncomplet,
    Instruit,
    AvisAcv,
    AvisTi,
    Laureat,
    Refuse,
    SansSuite,
}

const STOPS: [Stop; 8] = [
    Stop::Laureat,
    Stop::Recu,
    Stop::Instruit,
    Stop::AvisAcv,
    Stop::AvisTi,
    Stop::Refuse,
    Stop::RecuIncomplet,
    Stop::SansSuite,
];

/// Stores a demo file and returns the pièce that records it.
async fn stored(
    files: &Files,
    kind: &PieceKind,
    filename: String,
    content: Vec<u8>,
    media_type: &str,
) -> anyhow::Result<Piece> {
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(content))]);
    let received = files.receive(body, u64::MAX).await?;
    files.keep(&received).await?;
    Ok(Piece {
        kind: kind.clone(),
        filename: filename.into(),
        size: Some(received.size),
        sha256: Some(received.sha256.into()),
        media_type: Some(media_type.into()),
    })
}

pub async fn fill(store: &dyn Store, files: &Files, def: &Arc<Definition>) -> anyhow::Result<()> {
    if store.count_dossiers().await? > 0 {
        bail!("la base contient déjà des dossiers : « ami demo » ne remplit qu'une base vide");
    }
    let people = [
        (
            "Camille Martin",
            "camille.martin@lecnam.net",
            "dar",
            "agent",
        ),
        (
            "Dominique Bernard",
            "dominique.bernard@lecnam.net",
            "dar",
            "responsable",
        ),
        (
            "Sophie Laurent",
            "sophie.laurent@anct.gouv.fr",
            "acv",
            "agent",
        ),
        ("Karim Haddad", "karim.haddad@anct.gouv.fr", "ti", "agent"),
    ];
    let mut tokens = Vec::new();
    let mut actors = Vec::new();
    for (name, email, agency, role) in people {
        let (record, text) = create_token(store, name, email, agency, role).await?;
        actors.push(
            record
                .actor(def)
                .context("la définition n'a pas les agences et rôles de la démonstration")?,
        );
        tokens.push((name, agency, role, text));
    }
    let [dar_agent, dar_resp, acv, ti] = [&actors[0], &actors[1], &actors[2], &actors[3]];
    let kind = |id: &str| def.piece_kind(id).context("pièce de démonstration");
    let (candidature, budget) = (kind("dossier_candidature")?, kind("budget_previsionnel")?);

    // Spread receptions over the three waves.
    let paris = def.campaign().time_zone;
    let starts = [
        paris.with_ymd_and_hms(2020, 9, 1, 10, 0, 0),
        paris.with_ymd_and_hms(2020, 12, 1, 10, 0, 0),
        paris.with_ymd_and_hms(2021, 3, 15, 10, 0, 0),
    ];
    let mut counts = [0usize; 8];
    // Wave 1's decisions are taken by its committee, at one sitting, once
    // every dossier is ready; the other waves' one by one.
    let mut committee: Vec<TransitionRequest> = Vec::new();
    let mut decided = Vec::new();
    let committee_met = paris
        .with_ymd_and_hms(2020, 12, 15, 16, 0, 0)
        .single()
        .context("date du comité")?
        .with_timezone(&Utc);
    for (i, (commune, insee, programmes)) in TOWNS.iter().enumerate() {
        let start = starts[i % 3].single().context("date de démonstration")?;
        let received_at: DateTime<Utc> =
            (start + Duration::days((i / 3) as i64 * 4)).with_timezone(&Utc);
        let stop = STOPS[i % STOPS.len()];
        counts[i % STOPS.len()] += 1;
        let id = DossierId(uuid::Uuid::now_v7());
        let label = domain_label(commune);
        let mut pieces = vec![
            stored(
                files,
                &candidature,
                format!("candidature-{label}.pdf"),
                candidature_pdf(commune, insee),
                "application/pdf",
            )
            .await?,
        ];
        if matches!(stop, Stop::RecuIncomplet) {
            // Named in the e-mail, not attached: waits for its file.
            pieces.push(Piece {
                kind: budget.clone(),
                filename: format!("budget-{label}.xlsx").into(),
                size: None,
                sha256: None,
                media_type: None,
            });
        } else {
            pieces.push(
                stored(
                    files,
                    &budget,
                    format!("budget-{label}.xlsx"),
                    budget_xlsx(commune)?,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                )
                .await?,
            );
        }
        let deposer = Order {
            content: Content::Deposit(Box::new(DepositOrder {
                id,
                commune: commune.to_string().into(),
                code_insee: insee.to_string().into(),
                porteur: Porteur {
                    nom: format!("Ville de {commune}").into(),
                    email: Some(format!("cnam@{}.fr", domain_label(commune)).into()),
                },
                programmes: programmes.iter().map(|p| (*p).into()).collect(),
                received_at,
                pieces,
                doublon_confirme: false,
            })),
            ..Order::new("deposer")
        };
        // Each step a few days after the one before, as the campaign went:
        // what still waits on an agency is long past its deadline.
        let mut version = step(store, def, id, None, deposer, dar_agent, received_at).await?;
        let in_acv = programmes.contains(&"acv");
        let in_ti = programmes.contains(&"ti");
        let mut steps: Vec<(Order, &Actor)> = Vec::new();
        match stop {
            Stop::Recu | Stop::RecuIncomplet => {}
            Stop::SansSuite => steps.push((
                Order::new("classer_sans_suite")
                    .with_motivation("La commune a retiré sa candidature par courrier."),
                dar_resp,
            )),
            _ => {
                steps.push((Order::new("instruire").with_verdict("favorable"), dar_agent));
                let full = matches!(stop, Stop::AvisTi | Stop::Laureat | Stop::Refuse);
                if in_acv && !matches!(stop, Stop::Instruit) {
                    steps.push((Order::new("avis_acv").with_verdict("favorable"), acv));
                }
                if in_ti && full {
                    let verdict = if matches!(stop, Stop::Refuse) {
                        Order::new("avis_ti")
                            .with_verdict("defavorable")
                            .with_motivation(
                            "Le bassin d'emploi ne présente pas de besoin industriel identifié.",
                        )
                    } else {
                        Order::new("avis_ti").with_verdict("favorable")
                    };
                    steps.push((verdict, ti));
                }
                match stop {
                    Stop::Laureat => steps.push((Order::new("declarer_laureat"), dar_resp)),
                    Stop::Refuse => steps.push((
                        Order::new("refuser")
                            .with_motivation("Avis défavorable de Territoires d'industrie."),
                        dar_resp,
                    )),
                    _ => {}
                }
            }
        }
        let by_committee = i % 3 == 0 && matches!(stop, Stop::Laureat | Stop::Refuse);
        let last = if by_committee { steps.pop() } else { None };
        for (k, (command, actor)) in steps.into_iter().enumerate() {
            let at = received_at + Duration::days(3 * (k as i64 + 1));
            version = step(store, def, id, Some(version), command, actor, at).await?;
        }
        if let Some((command, actor)) = last {
            decided.push(CommitteeDecisionRecord {
                dossier_id: id,
                reference: String::new(),
                programmes: programmes.iter().map(|p| p.to_string()).collect(),
                action: command.action.to_string(),
                motivation: command.motivation.as_deref().map(str::to_string),
                version: version + 1,
            });
            committee.push(request(
                def,
                id,
                Some(version),
                command,
                actor,
                committee_met,
            ));
        }
    }
    if !committee.is_empty() {
        hold_wave_one_committee(store, def, committee, decided, dar_resp).await?;
    }
    println!(
        "{} dossiers de démonstration créés sur les trois vagues.",
        TOWNS.len()
    );
    println!("Jetons (à passer dans « Authorization: Bearer … ») :");
    for (name, agency, role, text) in &tokens {
        println!("  {agency:<3} {role:<11} {name:<18} {text}");
    }
    Ok(())
}

/// Wave 1's selection committee, met on 15 December 2020, declaring its
/// lauréats and refusing the others at one sitting.
async fn hold_wave_one_committee(
    store: &dyn Store,
    def: &Arc<Definition>,
    mut decisions: Vec<TransitionRequest>,
    mut records: Vec<CommitteeDecisionRecord>,
    recorder: &Actor,
) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7();
    let held_on = NaiveDate::from_ymd_opt(2020, 12, 15).context("date du comité")?;
    for (decision, record) in decisions.iter_mut().zip(records.iter_mut()) {
        decision.command.content = Content::Committee(CommitteeDecision {
            committee_id: id,
            held_on,
        });
        if let Some(d) = store.get_dossier(record.dossier_id).await? {
            record.reference = d.reference.to_string();
        }
    }
    let session = CommitteeSession {
        id,
        wave: 1,
        held_on,
        minutes: "Comité de sélection de la vague 1. Présents : la DAR (Cnam), \
            la direction Action Cœur de Ville et la direction Territoires d'industrie (ANCT). \
            Les dossiers aux avis favorables sont retenus ; un avis défavorable écarte le dossier."
            .into(),
        members: [
            ("Élise Fontaine", "dar"),
            ("Inès Roussel", "acv"),
            ("Thomas Girard", "ti"),
        ]
        .iter()
        .filter(|(_, agency)| def.agency(agency).is_some())
        .map(|(name, agency)| CommitteeMember {
            name: (*name).into(),
            agency: (*agency).into(),
        })
        .collect(),
        decisions: records,
        recorded_by: recorder.id.to_string(),
        recorded_by_name: recorder.name.to_string(),
        recorded_at: decisions.first().map_or_else(Utc::now, |d| d.now),
    };
    let outcome = store.hold_committee(&session, decisions, false).await?;
    if let Some(Err(e)) = outcome.decisions.into_iter().find(Result::is_err) {
        bail!("démonstration : comité de la vague 1 : {e}");
    }
    Ok(())
}

fn request(
    def: &Arc<Definition>,
    id: DossierId,
    expected_version: Option<u64>,
    command: Order,
    actor: &Actor,
    at: DateTime<Utc>,
) -> TransitionRequest {
    let respond: crate::store::Respond = Arc::new(|_: &ami_core::Dossier, _: &Actor| String::new());
    TransitionRequest {
        definition: def.clone(),
        dossier_id: id,
        expected_version,
        command,
        principal: crate::store::Principal::Actor(actor.clone()),
        now: at,
        idempotency: None,
        respond,
        arrival: None,
    }
}

async fn step(
    store: &dyn Store,
    def: &Arc<Definition>,
    id: DossierId,
    expected_version: Option<u64>,
    command: Order,
    actor: &Actor,
    at: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let action = command.action.clone();
    let req = request(def, id, expected_version, command, actor, at);
    match store
        .execute(req)
        .await
        .with_context(|| format!("démonstration : {action}"))?
    {
        crate::store::Executed::Applied { dossier, .. } => Ok(dossier.version),
        crate::store::Executed::Replayed { .. } => bail!("réponse rejouée inattendue"),
    }
}

/// A commune's name as a label of a domain name: « Saint-Dié-des-Vosges »
/// gives `saint-die-des-vosges`.
fn domain_label(commune: &str) -> String {
    ami_core::text::search_key(commune).replace(' ', "-")
}
