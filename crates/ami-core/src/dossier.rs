//! Dossiers, their events, and the fold of the one into the other.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// A document of the dossier: declared (a name only), or received, when
/// the service stored its content and recorded what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub kind: SmolStr,
    pub filename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// The file's type as read from its content; only a received pièce has
    /// one (a declaration may name a size or a digest, never a type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
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
    pub kind: SmolStr,
    /// 1 for the first content of this kind, then +1.
    pub version: u32,
    pub filename: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub received_at: DateTime<Utc>,
    /// The event that recorded it.
    pub seq: u64,
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
    /// A « demande de complément »: the pièces asked of the porteur.
    Complement(PiecesRequested),
}

/// The pièces a DAR agent asks the porteur for, and by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiecesRequested {
    pub pieces: Vec<SmolStr>,
    /// The last day the porteur has (in the campaign's time zone).
    pub due_on: NaiveDate,
}

/// A « demande de complément » still open: what is awaited from the porteur.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplementRequest {
    /// The pièces asked for that have not arrived yet.
    pub pieces: Vec<SmolStr>,
    pub due_on: NaiveDate,
    pub motivation: Option<String>,
    pub requested_by: Actor,
    pub requested_at: DateTime<Utc>,
}

/// A dossier as created: what was sent, the wave it falls in and its reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedDossier {
    #[serde(flatten)]
    pub dossier: NewDossier,
    pub wave: u8,
    pub reference: String,
    /// References of the commune's other dossiers, when the DAR confirmed
    /// that this one is not a duplicate (a town may send a second project).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doublon_de: Vec<String>,
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
    /// The pièces a « demande de complément » asks for.
    pub pieces_requested: Option<PiecesRequested>,
    /// A deposit: the DAR confirms it is not a duplicate of the commune's
    /// other dossiers.
    pub doublon_confirme: bool,
    /// A deposit: references of the campaign's dossiers with the same INSEE
    /// code, as the store knows them.
    pub same_commune: Vec<String>,
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
    /// The latest of each kind, declared or received.
    pub pieces: Vec<Piece>,
    /// Every content received, oldest first, all kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PieceFile>,
    /// Verdicts given, keyed by the action that gave them (the last one wins).
    pub avis: ActionMap<Avis>,
    /// Who (the actor's id) last took each action, for the four-eyes rule.
    pub actors: ActionMap<SmolStr>,
    /// The state before the last change of state: where a reopening leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<SmolStr>,
    /// The « demande de complément » still open, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<ComplementRequest>,
}

/// A small map keyed by action id, in key order, for what a dossier keeps
/// per action (its avis, who took it). A dossier has a handful of actions: a
/// sorted vector holds them in a fraction of the memory of a `BTreeMap`
/// (every node of which has room for eleven entries) and is as quick to
/// search. It reads like a map (`get`, `contains_key`, `iter`, `keys`,
/// `values`, `map["action"]`) and is (de)serialized as one.
#[derive(PartialEq, Eq)]
pub struct ActionMap<V> {
    entries: Vec<(SmolStr, V)>,
}

/// Room for one more entry: a dossier is copied (or loaded) to take its next
/// action, which most often adds an entry, and growing an exactly sized
/// vector would reallocate it every time.
fn with_room<V>(entries: impl ExactSizeIterator<Item = (SmolStr, V)>) -> Vec<(SmolStr, V)> {
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

impl<V> Default for ActionMap<V> {
    fn default() -> Self {
        ActionMap {
            entries: Vec::new(),
        }
    }
}

impl<V> ActionMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.position(key).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets the value of `key`; returns the one it replaces.
    pub fn insert(&mut self, key: SmolStr, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The entries in key order.
    pub fn iter(&self) -> ActionMapIter<'_, V> {
        ActionMapIter(self.entries.iter())
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &SmolStr> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<V> std::ops::Index<&str> for ActionMap<V> {
    type Output = V;

    /// Panics when `key` is absent, like `BTreeMap`.
    fn index(&self, key: &str) -> &V {
        self.get(key)
            .unwrap_or_else(|| panic!("no entry for action `{key}`"))
    }
}

impl<V> std::ops::Index<&SmolStr> for ActionMap<V> {
    type Output = V;

    /// Panics when `key` is absent, like `BTreeMap`.
    fn index(&self, key: &SmolStr) -> &V {
        &self[key.as_str()]
    }
}

impl<V> IntoIterator for ActionMap<V> {
    type Item = (SmolStr, V);
    type IntoIter = std::vec::IntoIter<(SmolStr, V)>;

    /// The entries in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a ActionMap<V> {
    type Item = (&'a SmolStr, &'a V);
    type IntoIter = ActionMapIter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The entries of an [`ActionMap`], in key order.
#[derive(Debug, Clone)]
pub struct ActionMapIter<'a, V>(std::slice::Iter<'a, (SmolStr, V)>);

impl<'a, V> Iterator for ActionMapIter<'a, V> {
    type Item = (&'a SmolStr, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for ActionMapIter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl<V> ExactSizeIterator for ActionMapIter<'_, V> {}

impl<V> FromIterator<(SmolStr, V)> for ActionMap<V> {
    fn from_iter<I: IntoIterator<Item = (SmolStr, V)>>(iter: I) -> Self {
        let mut map = ActionMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
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
        let map = BTreeMap::<SmolStr, V>::deserialize(deserializer)?;
        Ok(ActionMap {
            entries: with_room(map.into_iter()),
        })
    }
}

impl Dossier {
    pub fn in_programme(&self, programme: &str) -> bool {
        self.programmes.iter().any(|p| p == programme)
    }

    pub fn has_piece(&self, kind: &str) -> bool {
        self.pieces.iter().any(|p| p.kind == kind)
    }

    /// The content of a pièce of this kind has been received.
    pub fn has_content(&self, kind: &str) -> bool {
        self.files.iter().any(|f| f.kind == kind)
    }

    /// The received versions of a pièce, oldest first.
    pub fn versions<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a PieceFile> + 'a {
        self.files.iter().filter(move |f| f.kind == kind)
    }

    /// Records a pièce; a received one adds a version.
    fn add_piece(&mut self, piece: &Piece, seq: u64, at: DateTime<Utc>) {
        let version = u32::try_from(self.versions(&piece.kind).count()).unwrap_or(u32::MAX - 1) + 1;
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
    match dossier {
        None => create(event),
        Some(mut d) => {
            apply_in_place(&mut d, event)?;
            Ok(d)
        }
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
    let mut actors = ActionMap::new();
    actors.insert(event.action.clone(), event.actor.id.clone());
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
        files: Vec::new(),
        avis: ActionMap::new(),
        actors,
        previous_state: None,
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
    if event.to != d.state {
        d.previous_state = Some(std::mem::replace(&mut d.state, event.to.clone()));
    }
    d.updated_at = event.at;
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
            d.complement = Some(ComplementRequest {
                pieces: asked.pieces.clone(),
                due_on: asked.due_on,
                motivation: event.motivation.clone(),
                requested_by: event.actor.clone(),
                requested_at: event.at,
            });
        }
        Payload::None | Payload::Create(_) => {}
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
        d.avis.insert(event.action.clone(), avis);
    }
    match d.actors.get_mut(&event.action) {
        Some(who) => who.clone_from(&event.actor.id),
        None => {
            d.actors
                .insert(event.action.clone(), event.actor.id.clone());
        }
    }
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
