//! A command as a client sent it, before the engine's types.

use ami_core::{
    Command, CommitteeDecision, Definition, Deposit, DossierId, NewDossier, Piece, PiecesRequested,
    Porteur, Rejection,
};
use chrono::{DateTime, Utc};
use smol_str::SmolStr;

/// What a client asked for: the action and the verdict still as text, so
/// that they are checked against the definition when the store decides
/// (after who may act and the version), in the order the engine refuses
/// things; the rest already checked by the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct Order {
    /// The action's identifier as sent.
    pub action: SmolStr,
    /// The verdict's identifier as sent.
    pub verdict: Option<SmolStr>,
    pub motivation: Option<SmolStr>,
    pub comment: Option<SmolStr>,
    pub content: Content,
}

/// A deposit as sent: the programmes still as text.
#[derive(Debug, Clone)]
pub struct DepositOrder {
    pub id: DossierId,
    pub commune: SmolStr,
    pub code_insee: SmolStr,
    pub porteur: Porteur,
    pub programmes: Vec<SmolStr>,
    pub received_at: DateTime<Utc>,
    pub pieces: Vec<Piece>,
    /// The DAR's word that it is no duplicate of the commune's others.
    pub doublon_confirme: bool,
}

/// What an order carries besides its action, verdict and texts.
#[derive(Debug, Clone, Default)]
pub enum Content {
    #[default]
    Nothing,
    /// A deposit.
    Deposit(Box<DepositOrder>),
    /// A pièce received after the deposit.
    Piece(Piece),
    /// A « demande de complément ».
    Request(PiecesRequested),
    /// A decision of a wave's committee: which session took it.
    Committee(CommitteeDecision),
}

impl Order {
    /// An order of `action` with nothing else.
    pub fn new(action: &str) -> Order {
        Order {
            action: action.into(),
            ..Order::default()
        }
    }

    /// The same order with a verdict.
    pub fn with_verdict(mut self, verdict: &str) -> Order {
        self.verdict = Some(verdict.into());
        self
    }

    /// The same order with a motivation.
    pub fn with_motivation(mut self, motivation: &str) -> Order {
        self.motivation = Some(motivation.into());
        self
    }

    /// The dossier a deposit carries.
    pub fn deposited(&self) -> Option<&DepositOrder> {
        match &self.content {
            Content::Deposit(deposit) => Some(deposit),
            _ => None,
        }
    }

    /// The engine's command; a word the definition lacks, or content the
    /// action cannot carry, is refused as the engine refuses it.
    pub fn to_command(&self, def: &Definition) -> Result<Command, Rejection> {
        let action_def = def
            .action(&self.action)
            .ok_or_else(|| Rejection::UnknownAction {
                action: self.action.clone(),
            })?;
        let action = action_def.id.clone();
        let not_expected = || Rejection::VerdictNotExpected {
            action: action.clone(),
        };
        let verdict = match &self.verdict {
            None => None,
            Some(v) => Some(def.verdict_id(v).ok_or_else(|| {
                if action_def.verdict {
                    Rejection::UnknownVerdict { verdict: v.clone() }
                } else {
                    not_expected()
                }
            })?),
        };
        let (motivation, comment) = (self.motivation.clone(), self.comment.clone());
        let malformed = |expected: &str| Rejection::MalformedCommand {
            action: action.clone(),
            expected: expected.into(),
        };
        Ok(match (&self.content, verdict) {
            (Content::Nothing, None) => Command::Transition {
                action,
                motivation,
                comment,
                committee: None,
            },
            (Content::Committee(decision), None) => Command::Transition {
                action,
                motivation,
                comment,
                committee: Some(decision.clone()),
            },
            (Content::Committee(_), Some(_)) => return Err(not_expected()),
            (Content::Nothing, Some(verdict)) => Command::Verdict {
                action,
                verdict,
                motivation,
                comment,
            },
            (_, Some(_)) if !action_def.verdict => return Err(not_expected()),
            (Content::Deposit(_), Some(_)) => return Err(not_expected()),
            (Content::Piece(_), Some(_)) => return Err(malformed("aucune pièce")),
            (Content::Request(_), Some(_)) => {
                return Err(malformed("aucune liste de pièces demandées"))
            }
            (Content::Deposit(d), None) => {
                let programmes = d
                    .programmes
                    .iter()
                    .map(|p| {
                        def.programme_id(p)
                            .ok_or_else(|| Rejection::UnknownProgramme {
                                programme: p.clone(),
                            })
                    })
                    .collect::<Result<_, _>>()?;
                Command::Deposit(Box::new(Deposit {
                    action,
                    dossier: NewDossier {
                        id: d.id,
                        commune: d.commune.clone(),
                        code_insee: d.code_insee.clone(),
                        porteur: d.porteur.clone(),
                        programmes,
                        received_at: d.received_at,
                        pieces: d.pieces.clone(),
                    },
                    doublon_confirme: d.doublon_confirme,
                    comment,
                }))
            }
            (Content::Piece(piece), None) => Command::AttachPiece {
                action,
                piece: piece.clone(),
                comment,
            },
            (Content::Request(request), None) => Command::RequestPieces {
                action,
                request: request.clone(),
                motivation,
                comment,
            },
        })
    }
}
