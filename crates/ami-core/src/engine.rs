//! The decision: may this actor take this action on this dossier now, and if
//! so, which event records it. Pure: the caller supplies the clock.

use chrono::{DateTime, NaiveDate, Utc};
use smol_str::SmolStr;

use crate::definition::{ActionDef, Definition, Effect, Guard, PieceDef, Placement};
use crate::dossier::{Actor, Command, CreatedDossier, Deposit, Dossier, Event, Payload};
use crate::french::{french_date, french_instant, french_instant_seconds};
use crate::ids::{ActionId, AgencyId, PieceKind, ProgrammeId, RoleId, StateId, VerdictId};

/// What `awaiting` names when a dossier waits on the town that applied (a
/// « demande de complément » is open), rather than on an agency.
pub const PORTEUR: &str = "porteur";

/// Why a command was refused. Each reason has a stable machine code
/// ([`Rejection::code`]) and a French message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The definition has no such action.
    #[error("action inconnue « {action} » : les actions possibles sont décrites par le workflow")]
    UnknownAction {
        /// The action as sent.
        action: SmolStr,
    },
    /// The action belongs to another agency.
    #[error("l'action « {action} » revient à l'agence « {required} », pas à « {actual} »")]
    WrongAgency {
        /// The action asked for.
        action: ActionId,
        /// The agency the action belongs to.
        required: AgencyId,
        /// The actor's agency.
        actual: AgencyId,
    },
    /// The action needs a higher role.
    #[error("l'action « {action} » demande le rôle « {required} » au moins ; votre rôle est « {actual} »")]
    RoleTooLow {
        /// The action asked for.
        action: ActionId,
        /// The lowest role that may take it.
        required: RoleId,
        /// The actor's role.
        actual: RoleId,
    },
    /// The dossier is in a final state.
    #[error("le dossier est à l'état final « {state} » : il n'accepte plus aucune action")]
    Terminal {
        /// The dossier's state.
        state: StateId,
    },
    /// The action is not possible from the dossier's state.
    #[error("l'action « {action} » n'est pas possible depuis l'état « {state} »")]
    InvalidState {
        /// The action asked for.
        action: ActionId,
        /// The dossier's state.
        state: StateId,
    },
    /// Only a deposit can be decided on a dossier that does not exist.
    #[error("le dossier n'existe pas encore : seule une action de dépôt peut le créer")]
    NoDossier {
        /// The action asked for.
        action: ActionId,
    },
    /// A deposit was sent for a dossier that exists.
    #[error("le dossier existe déjà : l'action « {action} » ne peut que créer un dossier")]
    AlreadyExists {
        /// The action asked for.
        action: ActionId,
    },
    /// The action is for another programme's dossiers.
    #[error("le dossier ne relève pas du programme « {programme} » : l'action « {action} » ne le concerne pas")]
    ProgrammeNotConcerned {
        /// The action asked for.
        action: ActionId,
        /// The programme the action is for.
        programme: ProgrammeId,
    },
    /// An avis must come first.
    #[error("l'avis « {missing} » doit être rendu avant l'action « {action} »")]
    AvisMissing {
        /// The action asked for.
        action: ActionId,
        /// The action whose avis is awaited.
        missing: ActionId,
    },
    /// Required pièces have not been received.
    #[error("pièces manquantes : {}", .missing.join(", "))]
    PiecesMissing {
        /// The pièces whose file has not been received.
        missing: Vec<PieceKind>,
    },
    /// The definition has no such pièce.
    #[error("pièce inconnue « {piece} »")]
    UnknownPiece {
        /// The pièce as named.
        piece: SmolStr,
    },
    /// The action carries a verdict and the command gives none.
    #[error("l'action « {action} » doit porter un verdict")]
    VerdictMissing {
        /// The action asked for.
        action: ActionId,
    },
    /// The command gives a verdict to an action that carries none.
    #[error("l'action « {action} » ne porte pas de verdict")]
    VerdictNotExpected {
        /// The action asked for.
        action: ActionId,
    },
    /// The definition has no such verdict.
    #[error("verdict inconnu « {verdict} »")]
    UnknownVerdict {
        /// The verdict as sent.
        verdict: SmolStr,
    },
    /// A motivation is required, and missing.
    #[error("une motivation est obligatoire pour {reason}")]
    MotivationMissing {
        /// What requires it, in French (« un verdict « Défavorable » »).
        reason: String,
    },
    /// A blocking verdict stops the action.
    #[error("le verdict « {verdict} » de l'action « {by} » est bloquant")]
    BlockingVerdict {
        /// The action that gave the verdict.
        by: ActionId,
        /// The blocking verdict.
        verdict: VerdictId,
    },
    /// The same person may not take both actions.
    #[error("quatre yeux : la personne qui a pris l'action « {previous} » ne peut pas prendre l'action « {action} »")]
    FourEyes {
        /// The action asked for.
        action: ActionId,
        /// The action the same person took before.
        previous: ActionId,
    },
    /// A deposit names no programme.
    #[error("le dossier doit relever d'au moins un programme")]
    NoProgramme,
    /// The definition has no such programme.
    #[error("programme inconnu « {programme} »")]
    UnknownProgramme {
        /// The programme as named.
        programme: SmolStr,
    },
    /// Received before the campaign opened.
    #[error("la campagne n'ouvre que le {opens_at} : un dossier reçu le {received_at} ne peut être déposé")]
    NotOpen {
        /// When the dossier was received.
        received_at: DateTime<Utc>,
        /// When the campaign opens.
        opens_at: DateTime<Utc>,
    },
    /// Received after the last wave closed.
    #[error("la campagne est close depuis le {closed_at} : un dossier reçu le {received_at} ne peut être déposé")]
    Closed {
        /// When the dossier was received.
        received_at: DateTime<Utc>,
        /// When the campaign closed.
        closed_at: DateTime<Utc>,
    },
    /// Received in the future.
    #[error("la date de réception {received_at} est dans le futur")]
    ReceivedInFuture {
        /// When the dossier was received.
        received_at: DateTime<Utc>,
    },
    /// The command is not of the action's kind (a pièce sent to a
    /// transition, a deposit to an existing dossier's action…).
    #[error("l'action « {action} » attend {expected}")]
    MalformedCommand {
        /// The action asked for.
        action: ActionId,
        /// What the action expects, in French.
        expected: String,
    },
    /// The commune already has a dossier and the DAR did not confirm.
    #[error("doublon : la commune a déjà un dossier dans la campagne ({})", .existing.join(", "))]
    Doublon {
        /// References of the commune's dossiers.
        existing: Vec<String>,
    },
    /// A « demande de complément » due before today.
    #[error("la date limite {due_on} est déjà passée")]
    DueInPast {
        /// The date asked.
        due_on: NaiveDate,
    },
    /// A reopening of a dossier whose earlier state is unknown.
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
            def.agencies()
                .iter()
                .find(|a| a.id == id)
                .map_or(id.to_string(), |a| a.label.clone())
        };
        let role = |id: &str| {
            def.roles()
                .iter()
                .find(|r| r.id == id)
                .map_or(id.to_string(), |r| r.label.to_lowercase())
        };
        let piece = |id: &str| {
            def.pieces()
                .iter()
                .find(|p| p.id == id)
                .map_or(id.to_string(), |p| p.label.clone())
        };
        let programme = |id: &str| {
            def.programme(id)
                .map_or(id.to_string(), |p| p.label.clone())
        };
        let verdict = |id: &str| def.verdict(id).map_or(id.to_string(), |v| v.label.clone());
        let tz = def.campaign().time_zone;
        let instant = |at: &DateTime<Utc>| french_instant(*at, tz);
        let listed = |ids: Vec<String>| ids.join(", ");
        match self {
            Rejection::UnknownAction { action: a } => format!(
                "Action inconnue « {a} » ; actions du workflow : {}.",
                listed(def.actions().iter().map(|a| a.id.to_string()).collect())
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
                listed(def.pieces().iter().map(|p| format!("{} ({})", p.id, p.label)).collect())
            ),
            Rejection::VerdictMissing { action: a } => format!(
                "L'action « {} » doit porter un verdict : {}.",
                action(a),
                listed(def.verdicts().iter().map(|v| format!("{} ({})", v.id, v.label)).collect())
            ),
            Rejection::VerdictNotExpected { action: a } => {
                format!("L'action « {} » ne porte pas de verdict.", action(a))
            }
            Rejection::UnknownVerdict { verdict: v } => format!(
                "Verdict inconnu « {v} » ; verdicts : {}.",
                listed(def.verdicts().iter().map(|v| v.id.to_string()).collect())
            ),
            Rejection::MotivationMissing { reason } => {
                format!("Une motivation est obligatoire pour {reason}.")
            }
            Rejection::BlockingVerdict { by, verdict: v } => {
                // The actions this verdict stops, in the definition's words.
                let stopped: Vec<String> = def
                    .actions()
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
                listed(def.programmes().iter().map(|p| format!("{} ({})", p.id, p.label)).collect())
            ),
            Rejection::UnknownProgramme { programme: p } => format!(
                "Programme inconnu « {p} » ; programmes : {}.",
                listed(def.programmes().iter().map(|p| p.id.to_string()).collect())
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

/// What a command is decided on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A dossier that does not exist yet: only a deposit may create it. The
    /// caller keeps the campaign's dossiers, so it says what the engine
    /// cannot know: the dossier's number in its wave (its reference is built
    /// from it) and the references of the campaign's dossiers of the same
    /// commune (a deposit among them is a duplicate unless confirmed).
    New {
        /// The dossier's number in its wave, from 1.
        number: u64,
        /// References of the dossiers that have the deposit's INSEE code.
        same_commune: &'a [String],
    },
    /// An existing dossier, as folded from its journal.
    Dossier(&'a Dossier),
}

impl<'a> From<&'a Dossier> for Target<'a> {
    fn from(dossier: &'a Dossier) -> Self {
        Target::Dossier(dossier)
    }
}

/// Decides whether `actor` may run `command` on `target` at `now`, and
/// returns the event that records it.
pub fn decide(
    def: &Definition,
    target: Target<'_>,
    command: &Command,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Event, Rejection> {
    let id = command.action();
    let action = def.action_of(id).ok_or_else(|| Rejection::UnknownAction {
        action: SmolStr::new(id.as_str()),
    })?;
    let d = match target {
        Target::New {
            number,
            same_commune,
        } => {
            return decide_creation(def, action, command, actor, now, number, same_commune);
        }
        Target::Dossier(d) => d,
    };
    check_allowed(def, d, action, actor)?;
    check_content(def, action, command)?;
    let payload = match (action.effect, command) {
        (Effect::AttachPiece, Command::AttachPiece { piece, .. }) => {
            if !def.knows_piece(&piece.kind) {
                return Err(Rejection::UnknownPiece {
                    piece: SmolStr::new(piece.kind.as_str()),
                });
            }
            Payload::Piece(piece.clone())
        }
        (Effect::AttachPiece, _) => return Err(malformed(action, "une pièce")),
        (Effect::RequestPieces, Command::RequestPieces { request, .. }) => {
            if request.pieces.is_empty() {
                return Err(malformed(action, "la liste des pièces demandées"));
            }
            if let Some(p) = request.pieces.iter().find(|p| !def.knows_piece(p)) {
                return Err(Rejection::UnknownPiece {
                    piece: SmolStr::new(p.as_str()),
                });
            }
            let today = now.with_timezone(&def.campaign().time_zone).date_naive();
            if request.due_on < today {
                return Err(Rejection::DueInPast {
                    due_on: request.due_on,
                });
            }
            let mut pieces = request.pieces.clone();
            dedup_in_order(&mut pieces);
            Payload::Complement(crate::dossier::PiecesRequested {
                pieces,
                due_on: request.due_on,
            })
        }
        (Effect::RequestPieces, _) => {
            return Err(malformed(action, "la liste des pièces demandées"))
        }
        (
            _,
            Command::Transition {
                committee: Some(decision),
                ..
            },
        ) => Payload::Committee(decision.clone()),
        _ => Payload::None,
    };
    let to = match action.effect {
        Effect::Reopen => d.previous_state.clone().ok_or(Rejection::NothingToReopen)?,
        _ if action.effect.keeps_state() => d.state.clone(),
        _ => action.to.clone().unwrap_or_else(|| d.state.clone()),
    };
    Ok(Event {
        dossier_id: d.id,
        seq: d.version + 1,
        action: action.id.clone(),
        from: Some(d.state.clone()),
        to,
        actor: actor.clone(),
        at: now,
        verdict: command.verdict_given().cloned(),
        motivation: command.motivation().cloned(),
        comment: command.comment().cloned(),
        definition_version: def.shared_version(),
        payload,
    })
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
    number: u64,
    same_commune: &[String],
) -> Result<Event, Rejection> {
    if action.effect != Effect::Create {
        return Err(Rejection::NoDossier {
            action: action.id.clone(),
        });
    }
    check_actor(def, action, actor)?;
    let Command::Deposit(deposit) = command else {
        return Err(match command {
            Command::Verdict { .. } => Rejection::VerdictNotExpected {
                action: action.id.clone(),
            },
            _ => malformed(action, "le contenu du dossier déposé"),
        });
    };
    let Deposit {
        dossier: new,
        doublon_confirme,
        comment,
        ..
    } = deposit.as_ref();
    if new.programmes.is_empty() {
        return Err(Rejection::NoProgramme);
    }
    if let Some(p) = new
        .programmes
        .iter()
        .find(|p| def.programme_of(p).is_none())
    {
        return Err(Rejection::UnknownProgramme {
            programme: SmolStr::new(p.as_str()),
        });
    }
    if let Some(p) = new.pieces.iter().find(|p| !def.knows_piece(&p.kind)) {
        return Err(Rejection::UnknownPiece {
            piece: SmolStr::new(p.kind.as_str()),
        });
    }
    if new.received_at > now {
        return Err(Rejection::ReceivedInFuture {
            received_at: new.received_at,
        });
    }
    let campaign = def.campaign();
    let wave = match campaign.placement(new.received_at) {
        Placement::NotOpen => {
            return Err(Rejection::NotOpen {
                received_at: new.received_at,
                opens_at: campaign.opens_at(),
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
    if !same_commune.is_empty() && !doublon_confirme {
        return Err(Rejection::Doublon {
            existing: same_commune.to_vec(),
        });
    }
    let mut dossier = new.clone();
    // A programme listed twice is kept once, where it first appears.
    dedup_in_order(&mut dossier.programmes);
    let reference = reference(&campaign.reference_prefix, wave, number);
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
        motivation: None,
        comment: comment.clone(),
        definition_version: def.shared_version(),
        payload: Payload::Create(Box::new(CreatedDossier {
            dossier,
            number,
            wave,
            reference,
            doublon_de: same_commune.to_vec(),
        })),
    })
}

/// The reference of a dossier, e.g. `AMI2-V1-0007`: the campaign's prefix,
/// the wave, and the number on at least four digits. Built by hand, in a
/// buffer on the stack (a short reference needs no allocation): this is on
/// the path of every deposit, and `format!` costs more than the rest.
fn reference(prefix: &str, wave: u8, number: u64) -> SmolStr {
    let mut out = Buffer::default();
    out.push(prefix.as_bytes());
    out.push(b"-V");
    out.push_digits(u64::from(wave), 1);
    out.push(b"-");
    out.push_digits(number, 4);
    match std::str::from_utf8(out.bytes()) {
        Ok(text) if !out.overflowed => SmolStr::new(text),
        // A prefix longer than the buffer: rare enough to format.
        _ => SmolStr::from(format!("{prefix}-V{wave}-{number:04}")),
    }
}

/// Room on the stack for a reference: a prefix of up to 32 bytes, a wave
/// and a number of up to 20 digits.
struct Buffer {
    bytes: [u8; 64],
    len: usize,
    overflowed: bool,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            bytes: [0; 64],
            len: 0,
            overflowed: false,
        }
    }
}

impl Buffer {
    fn push(&mut self, bytes: &[u8]) {
        match self.bytes.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflowed = true,
        }
    }

    /// Appends `n` in decimal, left-padded with zeros to `width` digits.
    fn push_digits(&mut self, mut n: u64, width: usize) {
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
        self.push(&digits[start..]);
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
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

/// Whether `actor` may take `action` on `dossier` now, whatever the command
/// carries: who acts, from which state, the dossier's guards and four eyes,
/// in the order [`decide`] checks them. A service that receives a command
/// as text checks this before it reads the command's content, so that a
/// person learns first what stops them whatever they send.
pub fn may_take(
    def: &Definition,
    dossier: &Dossier,
    action: &str,
    actor: &Actor,
) -> Result<(), Rejection> {
    let action = def.action(action).ok_or_else(|| Rejection::UnknownAction {
        action: action.into(),
    })?;
    check_allowed(def, dossier, action, actor)
}

fn check_actor(def: &Definition, action: &ActionDef, actor: &Actor) -> Result<(), Rejection> {
    if actor.agency != action.agency {
        return Err(Rejection::WrongAgency {
            action: action.id.clone(),
            required: action.agency.clone(),
            actual: actor.agency.clone(),
        });
    }
    let required = def.rank_of(&action.role);
    if def.rank_of(&actor.role) < required {
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
    let reopens = action.effect == Effect::Reopen && action.starts_from(&d.state);
    if def.is_final(&d.state) && !reopens {
        return Err(Rejection::Terminal {
            state: d.state.clone(),
        });
    }
    check_actor(def, action, actor)?;
    check_dossier(def, d, action)?;
    if let Some(previous) = &action.distinct_from {
        if d.taken_by_id(previous) == Some(actor.id.as_str()) {
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
                // Checked before a list is built: most often nothing lacks.
                let lacks = |p: &&PieceDef| p.required && !d.has_content_of(&p.id);
                if def.pieces().iter().any(|p| lacks(&p)) {
                    let missing = def.pieces().iter().filter(lacks);
                    return Err(Rejection::PiecesMissing {
                        missing: missing.map(|p| p.id.clone()).collect(),
                    });
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
                    .avis_given()
                    .find(|a| def.verdict_of(&a.verdict).is_some_and(|v| v.blocking))
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
fn all_avis_given(def: &Definition, d: &Dossier) -> Result<(), ActionId> {
    match def
        .programmes()
        .iter()
        .find(|p| d.in_programme_id(&p.id) && d.avis_of(&p.avis_action).is_none())
    {
        Some(p) => Err(p.avis_action.clone()),
        None => Ok(()),
    }
}

/// State, programme and the order of avis: where the dossier is in the flow.
fn check_position(def: &Definition, d: &Dossier, action: &ActionDef) -> Result<(), Rejection> {
    if !action.starts_from(&d.state) {
        return Err(Rejection::InvalidState {
            action: action.id.clone(),
            state: d.state.clone(),
        });
    }
    if let Some(p) = &action.programme {
        if !d.in_programme_id(p) {
            return Err(Rejection::ProgrammeNotConcerned {
                action: action.id.clone(),
                programme: p.clone(),
            });
        }
    }
    for p in action.avis_before.iter().filter(|p| d.in_programme_id(p)) {
        if let Some(programme) = def.programme_of(p) {
            if d.avis_of(&programme.avis_action).is_none() {
                return Err(Rejection::AvisMissing {
                    action: action.id.clone(),
                    missing: programme.avis_action.clone(),
                });
            }
        }
    }
    Ok(())
}

/// What the command must carry: a verdict, a motivation, nothing that
/// belongs to another kind of action.
fn check_content(def: &Definition, action: &ActionDef, command: &Command) -> Result<(), Rejection> {
    // A command of another kind of action first: what it carries is beside
    // the point.
    match command {
        Command::AttachPiece { .. } if action.effect != Effect::AttachPiece => {
            return Err(malformed(action, "aucune pièce"))
        }
        Command::RequestPieces { .. } if action.effect != Effect::RequestPieces => {
            return Err(malformed(action, "aucune liste de pièces demandées"))
        }
        Command::Deposit(_) => return Err(malformed(action, "aucun contenu de dossier")),
        _ => {}
    }
    let motivated = command.motivation().is_some_and(|m| !m.trim().is_empty());
    match (command.verdict_given(), action.verdict) {
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
            let verdict = def.verdict_of(v).ok_or_else(|| Rejection::UnknownVerdict {
                verdict: SmolStr::new(v.as_str()),
            })?;
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
    def.actions()
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
    if def.is_final(&dossier.state) {
        return Vec::new();
    }
    def.actions()
        .iter()
        .filter(|a| a.effect != Effect::Create && a.starts_from(&dossier.state))
        .filter(|a| {
            a.programme
                .as_ref()
                .is_none_or(|p| dossier.in_programme_id(p))
        })
        .filter(|a| check_actor(def, a, actor).is_ok())
        .filter_map(|a| check_allowed(def, dossier, a, actor).err().map(|r| (a, r)))
        .collect()
}

/// Who the dossier is waiting on: [`PORTEUR`] while a « demande de
/// complément » is open, else the agencies of the `next_step` actions that
/// its state, programmes and avis order allow.
pub fn awaiting<'d>(def: &'d Definition, dossier: &Dossier) -> Vec<&'d str> {
    let mut agencies: Vec<&str> = Vec::new();
    if def.is_final(&dossier.state) {
        return agencies;
    }
    if dossier.complement.is_some() {
        agencies.push(PORTEUR);
        return agencies;
    }
    for a in def.actions().iter().filter(|a| a.next_step) {
        if waits_on(def, dossier, a) && !agencies.contains(&a.agency.as_str()) {
            agencies.push(a.agency.as_str());
        }
    }
    agencies
}

/// The dossier, neither final nor waiting on its porteur, waits on this
/// `next_step` action: its state, programmes and avis order allow it, and
/// so do the avis it needs. What [`awaiting`] lists the agencies of.
pub(crate) fn waits_on(def: &Definition, dossier: &Dossier, action: &ActionDef) -> bool {
    check_position(def, dossier, action).is_ok()
        && (!action.guards.contains(&Guard::AllAvis) || all_avis_given(def, dossier).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_the_prefix_the_wave_and_the_number_on_four_digits_at_least() {
        assert_eq!(reference("AMI2", 1, 7), "AMI2-V1-0007");
        assert_eq!(reference("AMI2", 3, 1234), "AMI2-V3-1234");
        assert_eq!(reference("AMI2", 12, 123_456), "AMI2-V12-123456");
        assert_eq!(
            reference("X", 255, u64::MAX),
            format!("X-V255-{}", u64::MAX)
        );
        let accented = "CŒUR-DE-VILLE";
        assert_eq!(reference(accented, 2, 42), format!("{accented}-V2-0042"));
        // Longer than the buffer on the stack.
        let long = "PRÉFIXE-D-UNE-CAMPAGNE-AU-NOM-TRÈS-LONG-ET-MÊME-PLUS-LONG-QUE-CELA";
        assert_eq!(reference(long, 2, 42), format!("{long}-V2-0042"));
    }
}
