//! Dossiers, their events, and the fold of the one into the other.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use uuid::Uuid;

/// Identifier of a dossier, chosen by whoever deposits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DossierId(pub Uuid);

impl std::fmt::Display for DossierId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The person acting, as authenticated by the caller of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Stable identifier of the person (the four-eyes rule compares it).
    pub id: SmolStr,
    pub name: SmolStr,
    pub agency: SmolStr,
    pub role: SmolStr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Porteur {
    pub nom: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// A document of the dossier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub kind: SmolStr,
    pub filename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// What a town sends: the content of a `create` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDossier {
    pub id: DossierId,
    /// Number given by the store; the reference is built from it and the wave.
    pub number: u64,
    pub commune: String,
    pub code_insee: String,
    pub porteur: Porteur,
    pub programmes: Vec<SmolStr>,
    pub received_at: DateTime<Utc>,
    pub pieces: Vec<Piece>,
}

/// A verdict given on a dossier, with who gave it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Avis {
    pub action: SmolStr,
    pub agency: SmolStr,
    pub verdict: SmolStr,
    pub motivation: Option<String>,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

/// What a command adds besides the action and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    #[default]
    None,
    Create(Box<CreatedDossier>),
    Piece(Piece),
}

/// A dossier as created: what was sent, the wave it falls in and its reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedDossier {
    #[serde(flatten)]
    pub dossier: NewDossier,
    pub wave: u8,
    pub reference: String,
}

/// A request to take an action on a dossier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    pub action: SmolStr,
    pub verdict: Option<SmolStr>,
    pub motivation: Option<String>,
    pub comment: Option<String>,
    pub new_dossier: Option<Box<NewDossier>>,
    pub piece: Option<Piece>,
}

impl Command {
    pub fn new(action: &str) -> Command {
        Command {
            action: action.into(),
            ..Command::default()
        }
    }

    pub fn with_verdict(mut self, verdict: &str) -> Command {
        self.verdict = Some(verdict.into());
        self
    }

    pub fn with_motivation(mut self, motivation: &str) -> Command {
        self.motivation = Some(motivation.into());
        self
    }
}

/// A fact in a dossier's journal. Events are never changed once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub dossier_id: DossierId,
    /// 1 for the creation, then +1 per event.
    pub seq: u64,
    pub action: SmolStr,
    /// `None` for the creation.
    pub from: Option<SmolStr>,
    pub to: SmolStr,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub verdict: Option<SmolStr>,
    pub motivation: Option<String>,
    pub comment: Option<String>,
    pub definition_version: SmolStr,
    pub payload: Payload,
}

/// The current state of a dossier: the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dossier {
    pub id: DossierId,
    pub reference: String,
    pub commune: String,
    pub code_insee: String,
    pub porteur: Porteur,
    pub programmes: Vec<SmolStr>,
    pub wave: u8,
    pub state: SmolStr,
    /// Sequence number of the last event.
    pub version: u64,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub pieces: Vec<Piece>,
    /// Verdicts given, keyed by the action that gave them (the last one wins).
    pub avis: BTreeMap<SmolStr, Avis>,
    /// Who last took each action, for the four-eyes rule.
    pub actors: BTreeMap<SmolStr, SmolStr>,
}

impl Dossier {
    pub fn in_programme(&self, programme: &str) -> bool {
        self.programmes.iter().any(|p| p == programme)
    }

    pub fn has_piece(&self, kind: &str) -> bool {
        self.pieces.iter().any(|p| p.kind == kind)
    }
}

/// Why an event could not be folded into a dossier: the journal is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("l'événement {seq} du dossier {dossier_id} ne suit pas la version {version}")]
    OutOfSequence {
        dossier_id: DossierId,
        seq: u64,
        version: u64,
    },
    #[error("le premier événement du dossier {0} n'est pas une création")]
    NotACreation(DossierId),
    #[error("l'événement {seq} appartient au dossier {event_dossier}, pas à {dossier_id}")]
    WrongDossier {
        dossier_id: DossierId,
        event_dossier: DossierId,
        seq: u64,
    },
}

/// Folds one event into a dossier (`None` before its creation).
pub fn apply(dossier: Option<Dossier>, event: &Event) -> Result<Dossier, FoldError> {
    let Some(mut d) = dossier else {
        let Payload::Create(created) = &event.payload else {
            return Err(FoldError::NotACreation(event.dossier_id));
        };
        if event.seq != 1 {
            return Err(FoldError::OutOfSequence {
                dossier_id: event.dossier_id,
                seq: event.seq,
                version: 0,
            });
        }
        let n = &created.dossier;
        return Ok(Dossier {
            id: n.id,
            reference: created.reference.clone(),
            commune: n.commune.clone(),
            code_insee: n.code_insee.clone(),
            porteur: n.porteur.clone(),
            programmes: n.programmes.clone(),
            wave: created.wave,
            state: event.to.clone(),
            version: 1,
            received_at: n.received_at,
            updated_at: event.at,
            pieces: n.pieces.clone(),
            avis: BTreeMap::new(),
            actors: BTreeMap::from([(event.action.clone(), event.actor.id.clone())]),
        });
    };
    if event.dossier_id != d.id {
        return Err(FoldError::WrongDossier {
            dossier_id: d.id,
            event_dossier: event.dossier_id,
            seq: event.seq,
        });
    }
    if event.seq != d.version + 1 {
        return Err(FoldError::OutOfSequence {
            dossier_id: d.id,
            seq: event.seq,
            version: d.version,
        });
    }
    d.version = event.seq;
    d.state.clone_from(&event.to);
    d.updated_at = event.at;
    if let Payload::Piece(piece) = &event.payload {
        // A pièce sent again replaces the earlier copy of the same kind.
        match d.pieces.iter_mut().find(|p| p.kind == piece.kind) {
            Some(p) => *p = piece.clone(),
            None => d.pieces.push(piece.clone()),
        }
    }
    if let Some(verdict) = &event.verdict {
        d.avis.insert(
            event.action.clone(),
            Avis {
                action: event.action.clone(),
                agency: event.actor.agency.clone(),
                verdict: verdict.clone(),
                motivation: event.motivation.clone(),
                actor: event.actor.clone(),
                at: event.at,
            },
        );
    }
    match d.actors.get_mut(&event.action) {
        Some(who) => who.clone_from(&event.actor.id),
        None => {
            d.actors
                .insert(event.action.clone(), event.actor.id.clone());
        }
    }
    Ok(d)
}

/// Folds a dossier's whole journal; `None` for an empty one.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Option<Dossier>, FoldError> {
    let mut dossier = None;
    for e in events {
        dossier = Some(apply(dossier, e)?);
    }
    Ok(dossier)
}
