//! Dossiers, their events, and the fold of the one into the other.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;
use uuid::Uuid;

use crate::ids::{ActionId, AgencyId, PieceKind, ProgrammeId, RoleId, StateId, VerdictId};

/// Identifier of a dossier, chosen by whoever deposits it (a UUID).
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
    /// As the person is named in histories and pages.
    pub name: SmolStr,
    /// The agency the person acts for.
    pub agency: AgencyId,
    /// The person's role in that agency.
    pub role: RoleId,
}

/// Who carries the application: the town (or its groupement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Porteur {
    /// « Ville de Nevers ».
    pub nom: SmolStr,
    /// Where the town's letters go.
    #[serde(default)]
    pub email: Option<SmolStr>,
}

/// A document of the dossier: declared (a name only), or received, when
/// the service stored its content and recorded what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Which pièce of the definition it is.
    pub kind: PieceKind,
    /// The file's name as sent.
    pub filename: SmolStr,
    /// Its size in bytes, when known.
    #[serde(default)]
    pub size: Option<u64>,
    /// The SHA-256 of its content (64 lower-case hex digits), when known.
    #[serde(default)]
    pub sha256: Option<SmolStr>,
    /// The file's type as read from its content; only a received pièce has
    /// one (a declaration may name a size or a digest, never a type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<SmolStr>,
}

impl Piece {
    /// The content was received and stored: what `pieces_complete` asks.
    pub fn received(&self) -> bool {
        self.media_type.is_some() && self.sha256.is_some() && self.size.is_some()
    }

    fn as_file(&self, version: u32, seq: u64, at: DateTime<Utc>) -> Option<PieceFile> {
        Some(PieceFile {
            kind: self.kind.clone(),
            version,
            filename: self.filename.clone(),
            media_type: self.media_type.clone()?,
            size: self.size?,
            sha256: self.sha256.clone()?,
            received_at: at,
            seq,
        })
    }
}

/// One received version of a pièce: a corrected budget is version 2, and
/// version 1 stays readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceFile {
    /// Which pièce of the definition it is.
    pub kind: PieceKind,
    /// 1 for the first content of this kind, then +1.
    pub version: u32,
    /// The file's name as sent.
    pub filename: SmolStr,
    /// Its type, as read from its content.
    pub media_type: SmolStr,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content.
    pub sha256: SmolStr,
    /// When it was recorded.
    pub received_at: DateTime<Utc>,
    /// The event that recorded it.
    pub seq: u64,
}

/// What a town sends: the content of a deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDossier {
    /// Chosen by whoever deposits it.
    pub id: DossierId,
    /// The town's name (« Nevers »).
    pub commune: SmolStr,
    /// Its INSEE code (five characters, `58194`).
    pub code_insee: SmolStr,
    /// Who carries the application.
    pub porteur: Porteur,
    /// The programmes it applies to; at least one.
    pub programmes: Vec<ProgrammeId>,
    /// When the AMI received it: this instant decides its wave.
    pub received_at: DateTime<Utc>,
    /// The pièces sent with it, declared or received.
    pub pieces: Vec<Piece>,
}

/// A verdict given on a dossier, with who gave it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Avis {
    /// The action that gave it (`avis_acv`).
    pub action: ActionId,
    /// The agency of the person who gave it.
    pub agency: AgencyId,
    /// The verdict.
    pub verdict: VerdictId,
    /// Why, in the person's words.
    pub motivation: Option<SmolStr>,
    /// Who gave it.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an event adds besides the action and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// Nothing: a plain transition.
    #[default]
    None,
    /// The dossier a deposit created.
    Create(Box<CreatedDossier>),
    /// A pièce received after the deposit.
    Piece(Piece),
    /// A « demande de complément »: the pièces asked of the porteur.
    Complement(PiecesRequested),
    /// The campaign's definition changed under the dossier
    /// ([`crate::migration`]).
    Migration(DefinitionChange),
    /// A decision taken by a wave's selection committee: which session.
    Committee(CommitteeDecision),
}

/// The committee session a decision was taken in: the decision's event
/// names it, so that the journal says who decided, not only who recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeDecision {
    /// The session's identifier, as the store keeps it.
    pub committee_id: Uuid,
    /// The day the committee met (its decisions' date).
    pub held_on: NaiveDate,
}

/// A change of definition, as recorded in each open dossier's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionChange {
    /// The version the dossier ran under until then.
    pub from_version: SmolStr,
    /// The version it runs under from then on.
    pub to_version: SmolStr,
    /// Where a reopening would lead, in the new definition's states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<StateId>,
}

/// The pièces a DAR agent asks the porteur for, and by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiecesRequested {
    /// The kinds asked for, each once.
    pub pieces: Vec<PieceKind>,
    /// The last day the porteur has (in the campaign's time zone).
    pub due_on: NaiveDate,
}

/// A « demande de complément » still open: what is awaited from the porteur.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplementRequest {
    /// The pièces asked for that have not arrived yet.
    pub pieces: Vec<PieceKind>,
    /// The last day the porteur has.
    pub due_on: NaiveDate,
    /// Why they were asked for.
    pub motivation: Option<SmolStr>,
    /// Who asked.
    pub requested_by: Actor,
    /// When.
    pub requested_at: DateTime<Utc>,
}

/// A dossier as created: what was sent, the wave it falls in and its reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedDossier {
    /// What the town sent (programmes listed once each).
    #[serde(flatten)]
    pub dossier: NewDossier,
    /// Its number in its wave, given by whoever keeps the campaign's
    /// dossiers (passed to [`decide`](crate::decide) in [`Target::New`](crate::Target::New)).
    pub number: u64,
    /// The wave its reception falls in.
    pub wave: u8,
    /// Its reference (`AMI2-V1-0007`).
    pub reference: SmolStr,
    /// References of the commune's other dossiers, when the DAR confirmed
    /// that this one is not a duplicate (a town may send a second project).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doublon_de: Vec<String>,
}

/// A request to take an action on a dossier: one variant per kind of
/// action, each carrying exactly what that kind needs. Whether the action
/// named is of that kind is the definition's to say (it is data): a verdict
/// sent to an action that gives none is refused by [`decide`](crate::decide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Creates the dossier (an action whose effect is `create`).
    Deposit(Box<Deposit>),
    /// Moves the dossier to another state, closes or reopens it.
    Transition {
        /// The action to take.
        action: ActionId,
        /// Why; required by some actions.
        motivation: Option<SmolStr>,
        /// A remark for the history.
        comment: Option<SmolStr>,
        /// The committee session that took this decision, if one did.
        committee: Option<CommitteeDecision>,
    },
    /// An action that carries a verdict: an instruction, an avis.
    Verdict {
        /// The action to take.
        action: ActionId,
        /// The verdict given.
        verdict: VerdictId,
        /// Why; required by some verdicts and actions.
        motivation: Option<SmolStr>,
        /// A remark for the history.
        comment: Option<SmolStr>,
    },
    /// Records a pièce received after the deposit (a new version of it).
    AttachPiece {
        /// The action to take (effect `attach_piece`).
        action: ActionId,
        /// The pièce received.
        piece: Piece,
        /// A remark for the history.
        comment: Option<SmolStr>,
    },
    /// Asks the porteur for pièces, by a date (« demande de complément »).
    RequestPieces {
        /// The action to take (effect `request_pieces`).
        action: ActionId,
        /// What is asked, by when.
        request: PiecesRequested,
        /// Why.
        motivation: Option<SmolStr>,
        /// A remark for the history.
        comment: Option<SmolStr>,
    },
}

/// What a deposit carries: the town's dossier, and the DAR's word that a
/// second dossier of the same commune is not a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    /// The creating action (`deposer`).
    pub action: ActionId,
    /// The dossier as the town sent it.
    pub dossier: NewDossier,
    /// The DAR confirms it is not a duplicate of the commune's other
    /// dossiers.
    pub doublon_confirme: bool,
    /// A remark for the history.
    pub comment: Option<SmolStr>,
}

impl Command {
    /// A deposit of `dossier` by the creating action `action`.
    pub fn deposit(action: ActionId, dossier: NewDossier) -> Command {
        Command::Deposit(Box::new(Deposit {
            action,
            dossier,
            doublon_confirme: false,
            comment: None,
        }))
    }

    /// An action that moves the dossier, with nothing else.
    pub fn transition(action: ActionId) -> Command {
        Command::Transition {
            action,
            motivation: None,
            comment: None,
            committee: None,
        }
    }

    /// An action that carries `verdict`.
    pub fn verdict(action: ActionId, verdict: VerdictId) -> Command {
        Command::Verdict {
            action,
            verdict,
            motivation: None,
            comment: None,
        }
    }

    /// A pièce received after the deposit.
    pub fn attach_piece(action: ActionId, piece: Piece) -> Command {
        Command::AttachPiece {
            action,
            piece,
            comment: None,
        }
    }

    /// A « demande de complément » of `pieces` by `due_on`.
    pub fn request_pieces(action: ActionId, pieces: Vec<PieceKind>, due_on: NaiveDate) -> Command {
        Command::RequestPieces {
            action,
            request: PiecesRequested { pieces, due_on },
            motivation: None,
            comment: None,
        }
    }

    /// The same command with a motivation (a deposit has none: it is left
    /// as it is).
    pub fn with_motivation(mut self, text: impl Into<SmolStr>) -> Command {
        match &mut self {
            Command::Transition { motivation, .. }
            | Command::Verdict { motivation, .. }
            | Command::RequestPieces { motivation, .. } => *motivation = Some(text.into()),
            Command::Deposit(_) | Command::AttachPiece { .. } => {}
        }
        self
    }

    /// The same command with a comment for the history.
    pub fn with_comment(mut self, text: impl Into<SmolStr>) -> Command {
        let text = Some(text.into());
        match &mut self {
            Command::Deposit(d) => d.comment = text,
            Command::Transition { comment, .. }
            | Command::Verdict { comment, .. }
            | Command::AttachPiece { comment, .. }
            | Command::RequestPieces { comment, .. } => *comment = text,
        }
        self
    }

    /// The action it asks for.
    pub fn action(&self) -> &ActionId {
        match self {
            Command::Deposit(d) => &d.action,
            Command::Transition { action, .. }
            | Command::Verdict { action, .. }
            | Command::AttachPiece { action, .. }
            | Command::RequestPieces { action, .. } => action,
        }
    }

    /// The verdict it carries, if any.
    pub fn verdict_given(&self) -> Option<&VerdictId> {
        match self {
            Command::Verdict { verdict, .. } => Some(verdict),
            _ => None,
        }
    }

    /// Its motivation, if any.
    pub fn motivation(&self) -> Option<&SmolStr> {
        match self {
            Command::Transition { motivation, .. }
            | Command::Verdict { motivation, .. }
            | Command::RequestPieces { motivation, .. } => motivation.as_ref(),
            Command::Deposit(_) | Command::AttachPiece { .. } => None,
        }
    }

    /// Its comment, if any.
    pub fn comment(&self) -> Option<&SmolStr> {
        match self {
            Command::Deposit(d) => d.comment.as_ref(),
            Command::Transition { comment, .. }
            | Command::Verdict { comment, .. }
            | Command::AttachPiece { comment, .. }
            | Command::RequestPieces { comment, .. } => comment.as_ref(),
        }
    }
}

/// A fact in a dossier's journal. Events are never changed once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The dossier it belongs to.
    pub dossier_id: DossierId,
    /// 1 for the creation, then +1 per event.
    pub seq: u64,
    /// The action taken.
    pub action: ActionId,
    /// `None` for the creation.
    pub from: Option<StateId>,
    /// The state after it (the same as `from` for an action that keeps it).
    pub to: StateId,
    /// Who took it.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
    /// The verdict given, for an action that carries one.
    pub verdict: Option<VerdictId>,
    /// Why, in the person's words.
    pub motivation: Option<SmolStr>,
    /// A remark for the history.
    pub comment: Option<SmolStr>,
    /// The version of the definition it was decided under.
    pub definition_version: SmolStr,
    /// What it adds besides the action and its verdict.
    pub payload: Payload,
}

/// The current state of a dossier: the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dossier {
    /// Its identifier.
    pub id: DossierId,
    /// Its reference (`AMI2-V1-0007`).
    pub reference: SmolStr,
    /// The town's name.
    pub commune: SmolStr,
    /// The town's INSEE code.
    pub code_insee: SmolStr,
    /// Who carries the application.
    pub porteur: Porteur,
    /// The programmes it applies to.
    pub programmes: Vec<ProgrammeId>,
    /// The wave its reception falls in.
    pub wave: u8,
    /// Where it is in the workflow.
    pub state: StateId,
    /// Sequence number of the last event.
    pub version: u64,
    /// When the AMI received it.
    pub received_at: DateTime<Utc>,
    /// When its last event happened.
    pub updated_at: DateTime<Utc>,
    /// The latest of each kind, declared or received.
    pub pieces: Vec<Piece>,
    /// Every content received, oldest first, all kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PieceFile>,
    /// Verdicts given, keyed by the action that gave them (the last one wins).
    avis: ActionMap<Avis>,
    /// Who (the actor's id) last took each action, for the four-eyes rule.
    actors: ActionMap<SmolStr>,
    /// The state before the last change of state: where a reopening leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<StateId>,
    /// The committee session that decided it, once one has. Boxed, as the
    /// request below: most dossiers have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committee: Option<Box<CommitteeDecision>>,
    /// The « demande de complément » still open, if any. Boxed: few
    /// dossiers have one, and a dossier is copied and moved whole, so a
    /// pointer costs each of them less than the request's room (128 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<Box<ComplementRequest>>,
}

/// A small map keyed by action id, in key order, for what a dossier keeps
/// per action (its avis, who took it). A dossier has a handful of actions: a
/// sorted vector holds them in a fraction of the memory of a `BTreeMap`
/// (every node of which has room for eleven entries) and is as quick to
/// search. (De)serialized as a map.
#[derive(PartialEq, Eq)]
struct ActionMap<V> {
    entries: Vec<(ActionId, V)>,
}

/// Room for one more entry: a dossier is copied (or loaded) to take its next
/// action, which most often adds an entry, and growing an exactly sized
/// vector would reallocate it every time.
fn with_room<V>(entries: impl ExactSizeIterator<Item = (ActionId, V)>) -> Vec<(ActionId, V)> {
    let mut out = Vec::with_capacity(entries.len() + 1);
    out.extend(entries);
    out
}

impl<V: Clone> Clone for ActionMap<V> {
    fn clone(&self) -> Self {
        ActionMap {
            entries: with_room(self.entries.iter().cloned()),
        }
    }
}

impl<V> ActionMap<V> {
    fn new() -> Self {
        ActionMap {
            entries: Vec::new(),
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value of `key`, comparing identifiers: a dossier's handful of
    /// entries are quicker to scan than to search by text.
    fn get_id(&self, key: &ActionId) -> Option<&V> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets the value of `key`, reusing the room of the one it replaces.
    /// One pass over the handful of entries finds the key or its place.
    fn set(&mut self, key: &ActionId, value: V) {
        let mut at = self.entries.len();
        for (i, entry) in self.entries.iter_mut().enumerate() {
            match entry.0.cmp(key) {
                Ordering::Less => {}
                Ordering::Equal => {
                    entry.1 = value;
                    return;
                }
                Ordering::Greater => {
                    at = i;
                    break;
                }
            }
        }
        self.entries.insert(at, (key.clone(), value));
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = (&ActionId, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<V: fmt::Debug> fmt::Debug for ActionMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for ActionMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for ActionMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<ActionId, V>::deserialize(deserializer)?;
        Ok(ActionMap {
            entries: with_room(map.into_iter()),
        })
    }
}

impl Dossier {
    /// The avis given by `action`, if it was taken (the last one wins).
    pub fn avis(&self, action: &str) -> Option<&Avis> {
        self.avis.get(action)
    }

    /// Every avis given so far, in the order of their actions' identifiers.
    pub fn avis_given(&self) -> impl DoubleEndedIterator<Item = &Avis> + ExactSizeIterator {
        self.avis.iter().map(|(_, a)| a)
    }

    /// Who (the person's id) last took `action` on this dossier: what the
    /// four-eyes rule compares.
    pub fn taken_by(&self, action: &str) -> Option<&str> {
        self.actors.get(action).map(SmolStr::as_str)
    }

    /// Every action taken, with who last took it, in identifier order.
    pub fn actions_taken(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&ActionId, &str)> + ExactSizeIterator {
        self.actors.iter().map(|(a, who)| (a, who.as_str()))
    }

    /// The dossier falls under this programme.
    pub fn in_programme(&self, programme: &str) -> bool {
        self.programmes.iter().any(|p| p == programme)
    }

    /// A pièce of this kind was declared or received.
    pub fn has_piece(&self, kind: &str) -> bool {
        self.pieces.iter().any(|p| p.kind == kind)
    }

    /// The content of a pièce of this kind has been received.
    pub fn has_content(&self, kind: &str) -> bool {
        self.files.iter().any(|f| f.kind == kind)
    }

    /// [`Self::avis`], by identifier.
    pub(crate) fn avis_of(&self, action: &ActionId) -> Option<&Avis> {
        self.avis.get_id(action)
    }

    /// [`Self::taken_by`], by identifier.
    pub(crate) fn taken_by_id(&self, action: &ActionId) -> Option<&str> {
        self.actors.get_id(action).map(SmolStr::as_str)
    }

    /// [`Self::in_programme`], by identifier.
    pub(crate) fn in_programme_id(&self, programme: &ProgrammeId) -> bool {
        self.programmes.iter().any(|p| p == programme)
    }

    /// [`Self::has_content`], by identifier.
    pub(crate) fn has_content_of(&self, kind: &PieceKind) -> bool {
        self.files.iter().any(|f| f.kind == *kind)
    }

    /// The received versions of a pièce, oldest first.
    pub fn versions<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a PieceFile> + 'a {
        self.files.iter().filter(move |f| f.kind == kind)
    }

    /// Records a pièce; a received one adds a version.
    fn add_piece(&mut self, piece: &Piece, seq: u64, at: DateTime<Utc>) {
        let versions = self.files.iter().filter(|f| f.kind == piece.kind).count();
        let version = u32::try_from(versions).unwrap_or(u32::MAX - 1) + 1;
        if let Some(file) = piece.as_file(version, seq, at) {
            self.files.push(file);
        }
        // The latest of a kind replaces the earlier one.
        match self.pieces.iter_mut().find(|p| p.kind == piece.kind) {
            Some(p) => p.clone_from(piece),
            None => self.pieces.push(piece.clone()),
        }
    }
}

/// Why an event could not be folded into a dossier: the journal is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// An event's number does not follow the dossier's version.
    #[error("l'événement {seq} du dossier {dossier_id} ne suit pas la version {version}")]
    OutOfSequence {
        /// The dossier.
        dossier_id: DossierId,
        /// The event's number.
        seq: u64,
        /// The dossier's version before it.
        version: u64,
    },
    /// A journal that does not start with a creation.
    #[error("le premier événement du dossier {0} n'est pas une création")]
    NotACreation(DossierId),
    /// An event of another dossier.
    #[error("l'événement {seq} appartient au dossier {event_dossier}, pas à {dossier_id}")]
    WrongDossier {
        /// The dossier folded.
        dossier_id: DossierId,
        /// The dossier the event belongs to.
        event_dossier: DossierId,
        /// The event's number.
        seq: u64,
    },
}

/// Folds one event into a dossier (`None` before its creation).
#[inline]
pub fn apply(dossier: Option<Dossier>, event: &Event) -> Result<Dossier, FoldError> {
    match dossier {
        None => create(event),
        Some(mut d) => {
            apply_in_place(&mut d, event)?;
            Ok(d)
        }
    }
}

/// The capacity pushing `n` entries into an empty vector would give (at
/// least 4, or none for none), allocated at once.
fn room(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.max(4)
    }
}

/// The dossier an event creates.
fn create(event: &Event) -> Result<Dossier, FoldError> {
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
    // Room for what follows a deposit, as growing from the first entry would
    // give: a projection folds the next events into this dossier where it
    // lies.
    let mut entries = Vec::with_capacity(room(1));
    entries.push((event.action.clone(), event.actor.id.clone()));
    let actors = ActionMap { entries };
    let received = n.pieces.iter().filter(|p| p.received()).count();
    let mut d = Dossier {
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
        pieces: Vec::with_capacity(n.pieces.len()),
        files: Vec::with_capacity(room(received)),
        avis: ActionMap::new(),
        actors,
        previous_state: None,
        committee: None,
        complement: None,
    };
    for piece in &n.pieces {
        d.add_piece(piece, 1, event.at);
    }
    Ok(d)
}

/// Folds one event into an existing dossier where it stands, without moving
/// it: what a projection kept in a map wants. On error the dossier is left
/// unchanged.
pub fn apply_in_place(d: &mut Dossier, event: &Event) -> Result<(), FoldError> {
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
    d.updated_at = event.at;
    if let Payload::Migration(change) = &event.payload {
        // Not an action anyone took: the state and where a reopening leads
        // are renamed, nothing else moves.
        d.state.clone_from(&event.to);
        d.previous_state.clone_from(&change.previous_state);
        return Ok(());
    }
    if event.to != d.state {
        d.previous_state = Some(std::mem::replace(&mut d.state, event.to.clone()));
    }
    match &event.payload {
        Payload::Piece(piece) => {
            d.add_piece(piece, event.seq, event.at);
            // The request is closed once every pièce it asked for is in.
            if let Some(request) = &mut d.complement {
                request.pieces.retain(|k| *k != piece.kind);
                if request.pieces.is_empty() {
                    d.complement = None;
                }
            }
        }
        Payload::Complement(asked) => {
            d.complement = Some(Box::new(ComplementRequest {
                pieces: asked.pieces.clone(),
                due_on: asked.due_on,
                motivation: event.motivation.clone(),
                requested_by: event.actor.clone(),
                requested_at: event.at,
            }));
        }
        Payload::Committee(decision) => d.committee = Some(Box::new(decision.clone())),
        Payload::None | Payload::Create(_) | Payload::Migration(_) => {}
    }
    if let Some(verdict) = &event.verdict {
        let avis = Avis {
            action: event.action.clone(),
            agency: event.actor.agency.clone(),
            verdict: verdict.clone(),
            motivation: event.motivation.clone(),
            actor: event.actor.clone(),
            at: event.at,
        };
        d.avis.set(&event.action, avis);
    }
    d.actors.set(&event.action, event.actor.id.clone());
    Ok(())
}

/// Folds a dossier's whole journal; `None` for an empty one.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Option<Dossier>, FoldError> {
    let mut dossier = None;
    for e in events {
        match &mut dossier {
            Some(d) => apply_in_place(d, e)?,
            None => dossier = Some(create(e)?),
        }
    }
    Ok(dossier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Definition;

    #[test]
    fn an_action_map_keeps_its_entries_in_key_order_and_the_last_value_per_key() {
        let def = Definition::ami2();
        let id = |a: &str| def.action_id(a).expect("an action");
        let mut map: ActionMap<u32> = ActionMap::new();
        map.set(&id("instruire"), 1);
        map.set(&id("avis_ti"), 2);
        map.set(&id("avis_acv"), 3);
        map.set(&id("instruire"), 4);
        let entries: Vec<(&str, u32)> = map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(entries, [("avis_acv", 3), ("avis_ti", 2), ("instruire", 4)]);
        assert_eq!((map.get("instruire"), map.get("deposer")), (Some(&4), None));
        let debug = r#"{"avis_acv": 3, "avis_ti": 2, "instruire": 4}"#;
        assert_eq!(format!("{map:?}"), debug);
        let json = serde_json::to_string(&map).expect("serializes");
        assert_eq!(json, r#"{"avis_acv":3,"avis_ti":2,"instruire":4}"#);
        let back: ActionMap<u32> = serde_json::from_str(&json).expect("deserializes");
        assert!(back == map);
        assert!(map.clone() == map);
    }
}
