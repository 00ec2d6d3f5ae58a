//! The decision: may this actor take this action on this dossier now, and if
//! so, which event records it. Pure: the caller supplies the clock.

use chrono::{DateTime, NaiveDate, Utc};
use smol_str::SmolStr;

use crate::definition::{ActionDef, Definition, Effect, Guard, Placement};
use crate::dossier::{Actor, Command, CreatedDossier, Dossier, Event, Payload};
use crate::french::{french_date, french_instant, french_instant_seconds};

/// What `awaiting` names when a dossier waits on the town that applied (a
/// « demande de complément » is open), rather than on an agency.
pub const PORTEUR: &str = "porteur";

/// Why a command was refused. Each reason has a stable machine code
/// ([`Rejection::code`]) and a French message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("action inconnue « {action} » : les actions possibles sont décrites par le workflow")]
    UnknownAction { action: SmolStr },
    #[error("l'action « {action} » revient à l'agence « {required} », pas à « {actual} »")]
    WrongAgency {
        action: SmolStr,
        required: SmolStr,
        actual: SmolStr,
    },
    #[error("l'action « {action} » demande le rôle « {required} » au moins ; votre rôle est « {actual} »")]
    RoleTooLow {
        action: SmolStr,
        required: SmolStr,
        actual: SmolStr,
    },
    #[error("le dossier est à l'état final « {state} » : il n'accepte plus aucune action")]
    Terminal { state: SmolStr },
    #[error("l'action « {action} » n'est pas possible depuis l'état « {state} »")]
    InvalidState { action: SmolStr, state: SmolStr },
    #[error("le dossier n'existe pas encore : seule une action de dépôt peut le créer")]
    NoDossier { action: SmolStr },
    #[error("le dossier existe déjà : l'action « {action} » ne peut que créer un dossier")]
    AlreadyExists { action: SmolStr },
    #[error("le dossier ne relève pas du programme « {programme} » : l'action « {action} » ne le concerne pas")]
    ProgrammeNotConcerned { action: SmolStr, programme: SmolStr },
    #[error("l'avis « {missing} » doit être rendu avant l'action « {action} »")]
    AvisMissing { action: SmolStr, missing: SmolStr },
    #[error("pièces manquantes : {}", .missing.join(", "))]
    PiecesMissing { missing: Vec<SmolStr> },
    #[error("pièce inconnue « {piece} »")]
    UnknownPiece { piece: SmolStr },
    #[error("l'action « {action} » doit porter un verdict")]
    VerdictMissing { action: SmolStr },
    #[error("l'action « {action} » ne porte pas de verdict")]
    VerdictNotExpected { action: SmolStr },
    #[error("verdict inconnu « {verdict} »")]
    UnknownVerdict { verdict: SmolStr },
    #[error("une motivation est obligatoire pour {reason}")]
    MotivationMissing { reason: String },
    #[error("le verdict « {verdict} » de l'action « {by} » est bloquant")]
    BlockingVerdict { by: SmolStr, verdict: SmolStr },
    #[error("quatre yeux : la personne qui a pris l'action « {previous} » ne peut pas prendre l'action « {action} »")]
    FourEyes { action: SmolStr, previous: SmolStr },
    #[error("le dossier doit relever d'au moins un programme")]
    NoProgramme,
    #[error("programme inconnu « {programme} »")]
    UnknownProgramme { programme: SmolStr },
    #[error("la campagne n'ouvre que le {opens_at} : un dossier reçu le {received_at} ne peut être déposé")]
    NotOpen {
        received_at: DateTime<Utc>,
        opens_at: DateTime<Utc>,
    },
    #[error("la campagne est close depuis le {closed_at} : un dossier reçu le {received_at} ne peut être déposé")]
    Closed {
        received_at: DateTime<Utc>,
        closed_at: DateTime<Utc>,
    },
    #[error("la date de réception {received_at} est dans le futur")]
    ReceivedInFuture { received_at: DateTime<Utc> },
    #[error("l'action « {action} » attend {expected}")]
    MalformedCommand { action: SmolStr, expected: String },
    #[error("doublon : la commune a déjà un dossier dans la campagne ({})", .existing.join(", "))]
    Doublon { existing: Vec<String> },
    #[error("la date limite {due_on} est déjà passée")]
    DueInPast { due_on: NaiveDate },
    #[error("le dossier n'a pas d'état antérieur où revenir")]
    NothingToReopen,
}

impl Rejection {
    /// A stable code for machines; it never changes once published.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownAction { .. } => "unknown_action",
            Rejection::WrongAgency { .. } => "wrong_agency",
            Rejection::RoleTooLow { .. } => "role_too_low",
            Rejection::Terminal { .. } => "terminal_state",
            Rejection::InvalidState { .. } => "invalid_state",
            Rejection::NoDossier { .. } => "no_dossier",
            Rejection::AlreadyExists { .. } => "already_exists",
            Rejection::ProgrammeNotConcerned { .. } => "programme_not_concerned",
            Rejection::AvisMissing { .. } => "avis_missing",
            Rejection::PiecesMissing { .. } => "pieces_missing",
            Rejection::UnknownPiece { .. } => "unknown_piece",
            Rejection::VerdictMissing { .. } => "verdict_missing",
            Rejection::VerdictNotExpected { .. } => "verdict_not_expected",
            Rejection::UnknownVerdict { .. } => "unknown_verdict",
            Rejection::MotivationMissing { .. } => "motivation_missing",
            Rejection::BlockingVerdict { .. } => "blocking_verdict",
            Rejection::FourEyes { .. } => "four_eyes",
            Rejection::NoProgramme => "no_programme",
            Rejection::UnknownProgramme { .. } => "unknown_programme",
            Rejection::NotOpen { .. } => "not_open",
            Rejection::Closed { .. } => "closed",
            Rejection::ReceivedInFuture { .. } => "received_in_future",
            Rejection::MalformedCommand { .. } => "malformed_command",
            Rejection::Doublon { .. } => "doublon",
            Rejection::DueInPast { .. } => "due_in_past",
            Rejection::NothingToReopen => "nothing_to_reopen",
        }
    }

    /// The refusal is about who acts, not about the dossier: HTTP says 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Rejection::WrongAgency { .. } | Rejection::RoleTooLow { .. }
        )
    }

    /// The field of the command at fault, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Rejection::UnknownAction { .. } => Some("action"),
            Rejection::VerdictMissing { .. }
            | Rejection::VerdictNotExpected { .. }
            | Rejection::UnknownVerdict { .. } => Some("verdict"),
            Rejection::MotivationMissing { .. } => Some("motivation"),
            Rejection::NoProgramme | Rejection::UnknownProgramme { .. } => Some("programmes"),
            Rejection::UnknownPiece { .. } | Rejection::PiecesMissing { .. } => Some("pieces"),
            Rejection::NotOpen { .. }
            | Rejection::Closed { .. }
            | Rejection::ReceivedInFuture { .. } => Some("received_at"),
            Rejection::Doublon { .. } => Some("code_insee"),
            Rejection::DueInPast { .. } => Some("due_on"),
            _ => None,
        }
    }

    /// The reason in French, for the person who acted: the definition's
    /// labels rather than identifiers, instants in the campaign's time zone
    /// and French form, and what to do next where there is something to do.
    pub fn explain(&self, def: &Definition) -> String {
        let action = |id: &str| def.action(id).map_or(id.to_string(), |a| a.label.clone());
        let state = |id: &str| def.state_label(id).to_string();
        let agency = |id: &str| {
            def.agencies
                .iter()
                .find(|a| a.id == id)
                .map_or(id.to_string(), |a| a.label.clone())
        };
        let role = |id: &str| {
            def.roles
                .iter()
                .find(|r| r.id == id)
                .map_or(id.to_string(), |r| r.label.to_lowercase())
        };
        let piece = |id: &str| {
            def.pieces
                .iter()
                .find(|p| p.id == id)
                .map_or(id.to_string(), |p| p.label.clone())
        };
        let programme = |id: &str| {
            def.programme(id)
                .map_or(id.to_string(), |p| p.label.clone())
        };
        let verdict = |id: &str| def.verdict(id).map_or(id.to_string(), |v| v.label.clone());
        let tz = def.campaign.time_zone;
        let instant = |at: &DateTime<Utc>| french_instant(*at, tz);
        let listed = |ids: Vec<String>| ids.join(", ");
        match self {
            Rejection::UnknownAction { action: a } => format!(
                "Action inconnue « {a} » ; actions du workflow : {}.",
                listed(def.actions.iter().map(|a| a.id.to_string()).collect())
            ),
            Rejection::WrongAgency {
                action: a,
                required,
                actual,
            } => format!(
                "L'action « {} » revient à « {} », pas à « {} ».",
                action(a),
                agency(required),
                agency(actual)
            ),
            Rejection::RoleTooLow {
                action: a,
                required,
                actual,
            } => format!(
                "L'action « {} » demande le rôle « {} » au moins ; votre rôle est « {} ».",
                action(a),
                role(required),
                role(actual)
            ),
            Rejection::Terminal { state: st } => format!(
                "Le dossier est à l'état final « {} » : il n'accepte plus aucune action.",
                state(st)
            ),
            Rejection::InvalidState { action: a, state: st } => format!(
                "L'action « {} » n'est pas possible depuis l'état « {} ».",
                action(a),
                state(st)
            ),
            Rejection::NoDossier { .. } => {
                "Le dossier n'existe pas encore : seul un dépôt peut le créer.".into()
            }
            Rejection::AlreadyExists { action: a } => format!(
                "Le dossier existe déjà : l'action « {} » ne peut que créer un dossier.",
                action(a)
            ),
            Rejection::ProgrammeNotConcerned {
                action: a,
                programme: p,
            } => format!(
                "Le dossier ne relève pas du programme « {} » : l'action « {} » ne le concerne pas.",
                programme(p),
                action(a)
            ),
            Rejection::AvisMissing { action: a, missing } => format!(
                "L'avis « {} » doit être rendu avant l'action « {} ».",
                action(missing),
                action(a)
            ),
            Rejection::PiecesMissing { missing } => format!(
                "Pièces manquantes (fichier non reçu) : {}. Ajoutez leurs fichiers, ou demandez-les au porteur.",
                listed(missing.iter().map(|p| piece(p)).collect())
            ),
            Rejection::UnknownPiece { piece: p } => format!(
                "Pièce inconnue « {p} » ; pièces : {}.",
                listed(def.pieces.iter().map(|p| format!("{} ({})", p.id, p.label)).collect())
            ),
            Rejection::VerdictMissing { action: a } => format!(
                "L'action « {} » doit porter un verdict : {}.",
                action(a),
                listed(def.verdicts.iter().map(|v| format!("{} ({})", v.id, v.label)).collect())
            ),
            Rejection::VerdictNotExpected { action: a } => {
                format!("L'action « {} » ne porte pas de verdict.", action(a))
            }
            Rejection::UnknownVerdict { verdict: v } => format!(
                "Verdict inconnu « {v} » ; verdicts : {}.",
                listed(def.verdicts.iter().map(|v| v.id.to_string()).collect())
            ),
            Rejection::MotivationMissing { reason } => {
                format!("Une motivation est obligatoire pour {reason}.")
            }
            Rejection::BlockingVerdict { by, verdict: v } => {
                // The actions this verdict stops, in the definition's words.
                let stopped: Vec<String> = def
                    .actions
                    .iter()
                    .filter(|a| a.guards.contains(&Guard::NoBlockingVerdict))
                    .map(|a| format!("« {} »", a.label))
                    .collect();
                format!(
                    "Le verdict « {} » donné par l'action « {} » empêche {}.",
                    verdict(v),
                    action(by),
                    if stopped.is_empty() {
                        "cette action".to_string()
                    } else {
                        format!("l'action {}", stopped.join(" ou "))
                    }
                )
            }
            Rejection::FourEyes {
                action: a,
                previous,
            } => format!(
                "Quatre yeux : la personne qui a pris l'action « {} » ne peut pas prendre l'action « {} » ; une autre personne doit s'en charger.",
                action(previous),
                action(a)
            ),
            Rejection::NoProgramme => format!(
                "Le dossier doit relever d'au moins un programme : {}.",
                listed(def.programmes.iter().map(|p| format!("{} ({})", p.id, p.label)).collect())
            ),
            Rejection::UnknownProgramme { programme: p } => format!(
                "Programme inconnu « {p} » ; programmes : {}.",
                listed(def.programmes.iter().map(|p| p.id.to_string()).collect())
            ),
            Rejection::NotOpen {
                received_at,
                opens_at,
            } => format!(
                "La campagne n'ouvre que le {} : un dossier reçu le {} ne peut être déposé. Vérifiez la date de réception (« received_at »).",
                instant(opens_at),
                french_instant_seconds(*received_at, tz)
            ),
            Rejection::Closed {
                received_at,
                closed_at,
            } => format!(
                "La campagne est close depuis le {} : un dossier reçu le {} ne peut plus être déposé. Si le dossier est arrivé pendant la campagne, indiquez sa date de réception dans « received_at ».",
                instant(closed_at),
                french_instant_seconds(*received_at, tz)
            ),
            Rejection::ReceivedInFuture { received_at } => format!(
                "La date de réception ({}) est dans le futur.",
                french_instant_seconds(*received_at, tz)
            ),
            Rejection::MalformedCommand {
                action: a,
                expected,
            } => format!("L'action « {} » attend {expected}.", action(a)),
            Rejection::Doublon { existing } => format!(
                "Doublon : la commune a déjà un dossier dans la campagne ({}). S'il s'agit bien d'un second projet, renvoyez le dépôt avec « doublon_confirme » à true.",
                existing.join(", ")
            ),
            Rejection::DueInPast { due_on } => format!(
                "La date limite du {} est déjà passée : choisissez une date à venir.",
                french_date(*due_on)
            ),
            Rejection::NothingToReopen => {
                "Le dossier n'a pas d'état antérieur connu où revenir.".into()
            }
        }
    }
}

/// Decides whether `actor` may run `command` on `dossier` (`None` before it
/// exists) at `now`, and returns the event that records it.
pub fn decide(
    def: &Definition,
    dossier: Option<&Dossier>,
    command: &Command,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Event, Rejection> {
    let action = def
        .action(&command.action)
        .ok_or_else(|| Rejection::UnknownAction {
            action: command.action.clone(),
        })?;
    match dossier {
        None => decide_creation(def, action, command, actor, now),
        Some(d) => {
            check_allowed(def, d, action, actor)?;
            check_content(def, d, action, command)?;
            let payload = match action.effect {
                Effect::AttachPiece => {
                    let piece = command
                        .piece
                        .clone()
                        .ok_or_else(|| malformed(action, "une pièce"))?;
                    if !def.has_piece(&piece.kind) {
                        return Err(Rejection::UnknownPiece { piece: piece.kind });
                    }
                    Payload::Piece(piece)
                }
                Effect::RequestPieces => {
                    let asked = command
                        .pieces_requested
                        .clone()
                        .filter(|r| !r.pieces.is_empty())
                        .ok_or_else(|| malformed(action, "la liste des pièces demandées"))?;
                    if let Some(p) = asked.pieces.iter().find(|p| !def.has_piece(p)) {
                        return Err(Rejection::UnknownPiece { piece: p.clone() });
                    }
                    let today = now.with_timezone(&def.campaign.time_zone).date_naive();
                    if asked.due_on < today {
                        return Err(Rejection::DueInPast {
                            due_on: asked.due_on,
                        });
                    }
                    let mut pieces = asked.pieces;
                    dedup_in_order(&mut pieces);
                    Payload::Complement(crate::dossier::PiecesRequested {
                        pieces,
                        due_on: asked.due_on,
                    })
                }
                _ => Payload::None,
            };
            let to = match action.effect {
                Effect::Reopen => d.previous_state.clone().ok_or(Rejection::NothingToReopen)?,
                _ => action
                    .target(&d.state)
                    .map(SmolStr::from)
                    .unwrap_or_else(|| d.state.clone()),
            };
            Ok(Event {
                dossier_id: d.id,
                seq: d.version + 1,
                action: action.id.clone(),
                from: Some(d.state.clone()),
                to,
                actor: actor.clone(),
                at: now,
                verdict: command.verdict.clone(),
                motivation: command.motivation.clone(),
                comment: command.comment.clone(),
                definition_version: def.version.clone(),
                payload,
            })
        }
    }
}

/// Keeps the first copy of each item, in order (`Vec::dedup` would only drop
/// adjacent copies).
fn dedup_in_order<T: PartialEq>(items: &mut Vec<T>) {
    let mut seen = 0;
    while seen < items.len() {
        if items[..seen].contains(&items[seen]) {
            items.remove(seen);
        } else {
            seen += 1;
        }
    }
}

fn malformed(action: &ActionDef, expected: &str) -> Rejection {
    Rejection::MalformedCommand {
        action: action.id.clone(),
        expected: expected.into(),
    }
}

fn decide_creation(
    def: &Definition,
    action: &ActionDef,
    command: &Command,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Event, Rejection> {
    if action.effect != Effect::Create {
        return Err(Rejection::NoDossier {
            action: action.id.clone(),
        });
    }
    check_actor(def, action, actor)?;
    let new = command
        .new_dossier
        .as_deref()
        .ok_or_else(|| malformed(action, "le contenu du dossier déposé"))?;
    if command.verdict.is_some() {
        return Err(Rejection::VerdictNotExpected {
            action: action.id.clone(),
        });
    }
    if new.programmes.is_empty() {
        return Err(Rejection::NoProgramme);
    }
    if let Some(p) = new.programmes.iter().find(|p| def.programme(p).is_none()) {
        return Err(Rejection::UnknownProgramme {
            programme: p.clone(),
        });
    }
    if let Some(p) = new.pieces.iter().find(|p| !def.has_piece(&p.kind)) {
        return Err(Rejection::UnknownPiece {
            piece: p.kind.clone(),
        });
    }
    if new.received_at > now {
        return Err(Rejection::ReceivedInFuture {
            received_at: new.received_at,
        });
    }
    let campaign = &def.campaign;
    let wave = match campaign.placement(new.received_at) {
        Placement::NotOpen => {
            return Err(Rejection::NotOpen {
                received_at: new.received_at,
                opens_at: campaign.opens_at,
            })
        }
        Placement::Closed => {
            return Err(Rejection::Closed {
                received_at: new.received_at,
                closed_at: campaign.closes_at(),
            })
        }
        Placement::Wave(n) => n,
    };
    if !command.same_commune.is_empty() && !command.doublon_confirme {
        return Err(Rejection::Doublon {
            existing: command.same_commune.clone(),
        });
    }
    let mut dossier = new.clone();
    // A programme listed twice is kept once, where it first appears.
    dedup_in_order(&mut dossier.programmes);
    let reference = reference(&campaign.reference_prefix, wave, new.number);
    let to = action
        .to
        .clone()
        .ok_or_else(|| malformed(action, "un état d'arrivée"))?;
    Ok(Event {
        dossier_id: new.id,
        seq: 1,
        action: action.id.clone(),
        from: None,
        to,
        actor: actor.clone(),
        at: now,
        verdict: None,
        motivation: command.motivation.clone(),
        comment: command.comment.clone(),
        definition_version: def.version.clone(),
        payload: Payload::Create(Box::new(CreatedDossier {
            dossier,
            wave,
            reference,
            doublon_de: command.same_commune.clone(),
        })),
    })
}

/// The reference of a dossier, e.g. `AMI2-V1-0007`: the campaign's prefix,
/// the wave, and the number on at least four digits. Built by hand: this is
/// on the path of every deposit, and `format!` costs more than the rest.
fn reference(prefix: &str, wave: u8, number: u64) -> String {
    let mut out = String::with_capacity(prefix.len() + 2 + 3 + 1 + 20);
    out.push_str(prefix);
    out.push_str("-V");
    push_digits(&mut out, u64::from(wave), 1);
    out.push('-');
    push_digits(&mut out, number, 4);
    out
}

/// Appends `n` in decimal, left-padded with zeros to `width` digits.
fn push_digits(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = start.min(digits.len() - width.min(digits.len()));
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Whether `actor` may take `action` at all, whatever the dossier: the
/// action exists, and it belongs to the actor's agency and role. A service
/// checks it before anything about the dossier, so that a person of another
/// agency learns nothing about it (not even that their copy is stale).
pub fn authorize(def: &Definition, action: &str, actor: &Actor) -> Result<(), Rejection> {
    let action = def.action(action).ok_or_else(|| Rejection::UnknownAction {
        action: action.into(),
    })?;
    check_actor(def, action, actor)
}

fn check_actor(def: &Definition, action: &ActionDef, actor: &Actor) -> Result<(), Rejection> {
    if actor.agency != action.agency {
        return Err(Rejection::WrongAgency {
            action: action.id.clone(),
            required: action.agency.clone(),
            actual: actor.agency.clone(),
        });
    }
    let required = def.role_rank(&action.role);
    if def.role_rank(&actor.role) < required {
        return Err(Rejection::RoleTooLow {
            action: action.id.clone(),
            required: action.role.clone(),
            actual: actor.role.clone(),
        });
    }
    Ok(())
}

/// Everything that does not depend on what the command carries: who acts,
/// from which state, and the dossier's guards.
fn check_allowed(
    def: &Definition,
    d: &Dossier,
    action: &ActionDef,
    actor: &Actor,
) -> Result<(), Rejection> {
    if action.effect == Effect::Create {
        return Err(Rejection::AlreadyExists {
            action: action.id.clone(),
        });
    }
    // A final state accepts only the reopenings that start from it.
    let reopens = action.effect == Effect::Reopen && action.is_possible_from(&d.state);
    if def.is_terminal(&d.state) && !reopens {
        return Err(Rejection::Terminal {
            state: d.state.clone(),
        });
    }
    check_actor(def, action, actor)?;
    check_dossier(def, d, action)?;
    if let Some(previous) = &action.distinct_from {
        if d.actors.get(previous) == Some(&actor.id) {
            return Err(Rejection::FourEyes {
                action: action.id.clone(),
                previous: previous.clone(),
            });
        }
    }
    Ok(())
}

/// The rules about the dossier alone: state, programme, avis order, guards.
fn check_dossier(def: &Definition, d: &Dossier, action: &ActionDef) -> Result<(), Rejection> {
    check_position(def, d, action)?;
    for guard in &action.guards {
        match guard {
            Guard::PiecesComplete => {
                let missing: Vec<SmolStr> = def
                    .pieces
                    .iter()
                    .filter(|p| p.required && !d.has_content(&p.id))
                    .map(|p| p.id.clone())
                    .collect();
                if !missing.is_empty() {
                    return Err(Rejection::PiecesMissing { missing });
                }
            }
            Guard::AllAvis => {
                if let Err(missing) = all_avis_given(def, d) {
                    return Err(Rejection::AvisMissing {
                        action: action.id.clone(),
                        missing,
                    });
                }
            }
            Guard::NoBlockingVerdict => {
                if let Some(a) = d
                    .avis
                    .values()
                    .find(|a| def.verdict(&a.verdict).is_some_and(|v| v.blocking))
                {
                    return Err(Rejection::BlockingVerdict {
                        by: a.action.clone(),
                        verdict: a.verdict.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Every avis the dossier's programmes require is in; else the first missing.
fn all_avis_given(def: &Definition, d: &Dossier) -> Result<(), SmolStr> {
    match def
        .programmes
        .iter()
        .find(|p| d.in_programme(&p.id) && !d.avis.contains_key(&p.avis_action))
    {
        Some(p) => Err(p.avis_action.clone()),
        None => Ok(()),
    }
}

/// State, programme and the order of avis: where the dossier is in the flow.
fn check_position(def: &Definition, d: &Dossier, action: &ActionDef) -> Result<(), Rejection> {
    if !action.is_possible_from(&d.state) {
        return Err(Rejection::InvalidState {
            action: action.id.clone(),
            state: d.state.clone(),
        });
    }
    if let Some(p) = &action.programme {
        if !d.in_programme(p) {
            return Err(Rejection::ProgrammeNotConcerned {
                action: action.id.clone(),
                programme: p.clone(),
            });
        }
    }
    for p in action.avis_before.iter().filter(|p| d.in_programme(p)) {
        if let Some(programme) = def.programme(p) {
            if !d.avis.contains_key(&programme.avis_action) {
                return Err(Rejection::AvisMissing {
                    action: action.id.clone(),
                    missing: programme.avis_action.clone(),
                });
            }
        }
    }
    Ok(())
}

/// What the command must carry: a verdict, a motivation.
fn check_content(
    def: &Definition,
    _d: &Dossier,
    action: &ActionDef,
    command: &Command,
) -> Result<(), Rejection> {
    let motivated = command
        .motivation
        .as_deref()
        .is_some_and(|m| !m.trim().is_empty());
    match (&command.verdict, action.verdict) {
        (None, true) => {
            return Err(Rejection::VerdictMissing {
                action: action.id.clone(),
            })
        }
        (Some(_), false) => {
            return Err(Rejection::VerdictNotExpected {
                action: action.id.clone(),
            })
        }
        (Some(v), true) => {
            let verdict = def
                .verdict(v)
                .ok_or_else(|| Rejection::UnknownVerdict { verdict: v.clone() })?;
            if verdict.requires_motivation && !motivated {
                return Err(Rejection::MotivationMissing {
                    reason: format!("un verdict « {} »", verdict.label),
                });
            }
        }
        (None, false) => {}
    }
    if action.motivation && !motivated {
        return Err(Rejection::MotivationMissing {
            reason: format!("l'action « {} »", action.label),
        });
    }
    if action.effect != Effect::AttachPiece && command.piece.is_some() {
        return Err(malformed(action, "aucune pièce"));
    }
    if action.effect != Effect::RequestPieces && command.pieces_requested.is_some() {
        return Err(malformed(action, "aucune liste de pièces demandées"));
    }
    Ok(())
}

/// The actions `actor` may take on `dossier` now, in definition order, so that
/// a client never has to guess. What the command must carry (verdict,
/// motivation) is not checked: the client supplies it.
pub fn available_actions<'d>(
    def: &'d Definition,
    dossier: &Dossier,
    actor: &Actor,
) -> Vec<&'d ActionDef> {
    def.actions
        .iter()
        .filter(|a| check_allowed(def, dossier, a, actor).is_ok())
        .collect()
}

/// The actions of `actor`'s agency and role that the dossier's state and
/// programmes call for but a rule holds back now (a missing pièce, an avis
/// still awaited, four eyes), each with the engine's refusal: what a page
/// shows beside the buttons of [`available_actions`] so that nobody wonders
/// why one is missing.
pub fn held_back_actions<'d>(
    def: &'d Definition,
    dossier: &Dossier,
    actor: &Actor,
) -> Vec<(&'d ActionDef, Rejection)> {
    if def.is_terminal(&dossier.state) {
        return Vec::new();
    }
    def.actions
        .iter()
        .filter(|a| a.effect != Effect::Create && a.is_possible_from(&dossier.state))
        .filter(|a| a.programme.as_ref().is_none_or(|p| dossier.in_programme(p)))
        .filter(|a| check_actor(def, a, actor).is_ok())
        .filter_map(|a| check_allowed(def, dossier, a, actor).err().map(|r| (a, r)))
        .collect()
}

/// Who the dossier is waiting on: [`PORTEUR`] while a « demande de
/// complément » is open, else the agencies of the `next_step` actions that
/// its state, programmes and avis order allow.
pub fn awaiting<'d>(def: &'d Definition, dossier: &Dossier) -> Vec<&'d str> {
    let mut agencies: Vec<&str> = Vec::new();
    if def.is_terminal(&dossier.state) {
        return agencies;
    }
    if dossier.complement.is_some() {
        agencies.push(PORTEUR);
        return agencies;
    }
    for a in def.actions.iter().filter(|a| a.next_step) {
        let waits = check_position(def, dossier, a).is_ok()
            && (!a.guards.contains(&Guard::AllAvis) || all_avis_given(def, dossier).is_ok());
        if waits && !agencies.contains(&a.agency.as_str()) {
            agencies.push(a.agency.as_str());
        }
    }
    agencies
}
