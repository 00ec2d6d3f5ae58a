//! The decision: may this actor take this action on this dossier now, and if
//! so, which event records it. Pure: the caller supplies the clock.

use chrono::{DateTime, Utc};
use smol_str::SmolStr;

use crate::definition::{ActionDef, Definition, Effect, Guard, Placement};
use crate::dossier::{Actor, Command, CreatedDossier, Dossier, Event, Payload};

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
    #[error("l'action « {action} » doit porter un verdict (favorable, reserve ou defavorable)")]
    VerdictMissing { action: SmolStr },
    #[error("l'action « {action} » ne porte pas de verdict")]
    VerdictNotExpected { action: SmolStr },
    #[error("verdict inconnu « {verdict} »")]
    UnknownVerdict { verdict: SmolStr },
    #[error("une motivation est obligatoire pour {reason}")]
    MotivationMissing { reason: String },
    #[error(
        "le verdict « {verdict} » de l'action « {by} » empêche de déclarer le dossier lauréat"
    )]
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
            _ => None,
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
                _ => Payload::None,
            };
            Ok(Event {
                dossier_id: d.id,
                seq: d.version + 1,
                action: action.id.clone(),
                from: Some(d.state.clone()),
                to: action.to.clone(),
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
    let mut dossier = new.clone();
    // A programme listed twice is kept once, where it first appears
    // (`Vec::dedup` would only drop adjacent copies).
    let mut seen = 0;
    while seen < dossier.programmes.len() {
        if dossier.programmes[..seen].contains(&dossier.programmes[seen]) {
            dossier.programmes.remove(seen);
        } else {
            seen += 1;
        }
    }
    let reference = reference(&campaign.reference_prefix, wave, new.number);
    Ok(Event {
        dossier_id: new.id,
        seq: 1,
        action: action.id.clone(),
        from: None,
        to: action.to.clone(),
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
    if def.is_terminal(&d.state) {
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
                    .filter(|p| !d.has_piece(&p.id))
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

/// The agencies the dossier is waiting on: those of the `next_step` actions
/// that its state, programmes and avis order allow.
pub fn awaiting<'d>(def: &'d Definition, dossier: &Dossier) -> Vec<&'d SmolStr> {
    let mut agencies: Vec<&SmolStr> = Vec::new();
    if def.is_terminal(&dossier.state) {
        return agencies;
    }
    for a in def.actions.iter().filter(|a| a.next_step) {
        let waits = check_position(def, dossier, a).is_ok()
            && (!a.guards.contains(&Guard::AllAvis) || all_avis_given(def, dossier).is_ok());
        if waits && !agencies.contains(&&a.agency) {
            agencies.push(&a.agency);
        }
    }
    agencies
}
