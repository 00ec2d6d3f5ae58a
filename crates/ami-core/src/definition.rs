//! Workflow definitions: the TOML document, its validation, and the checked
//! [`Definition`] the engine runs on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use crate::calendar::Calendar;
use crate::french::french_date;
use crate::ids::{ActionId, AgencyId, PieceKind, ProgrammeId, RoleId, StateId, VerdictId};

/// The definition of the second AMI "Au cœur des territoires", embedded so that
/// every part of the project runs on the same one unless told otherwise.
pub const DEFAULT_DEFINITION_TOML: &str = include_str!("ami2.toml");

/// The action a migration event records: the engine's, never a
/// definition's (a definition may not name an action so).
pub const MIGRATION_ACTION: &str = "migration";

/// Why a workflow definition was refused on load. Each message names the item
/// (or the TOML line) at fault so that its author can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not TOML, or not a definition's shape (the parser's
    /// message names the line).
    #[error("définition illisible : {0}")]
    Syntax(String),
    /// A rule of definitions is broken.
    #[error("{item} : {problem}")]
    Invalid {
        /// The item at fault (« action `instruire` »).
        item: String,
        /// What is wrong with it, in French.
        problem: String,
    },
}

fn invalid(item: impl Into<String>, problem: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        item: item.into(),
        problem: problem.into(),
    }
}

/// What an action does to a dossier besides moving it between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Moves the dossier from one state to another.
    #[default]
    Transition,
    /// Creates the dossier (it has no `from` state).
    Create,
    /// Records a pièce received after the dossier; the state does not change.
    AttachPiece,
    /// Asks the porteur for pièces (« demande de complément »): the dossier
    /// waits on the town until they arrive; the state does not change.
    RequestPieces,
    /// Takes a dossier out of a final state, back to the state it left.
    Reopen,
}

impl Effect {
    /// The action leaves the dossier in the state it is in.
    pub fn keeps_state(self) -> bool {
        matches!(self, Effect::AttachPiece | Effect::RequestPieces)
    }
}

/// A condition an action checks on the dossier before it may be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// Every pièce of the definition has been received.
    PiecesComplete,
    /// Every avis the dossier's programmes require has been given.
    AllAvis,
    /// No verdict given so far on the dossier is blocking.
    NoBlockingVerdict,
}

/// A wave of the campaign: dossiers received before its end are selected
/// together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    /// 1, 2, 3…, as the references say (`AMI2-V2-0001`).
    pub number: u8,
    /// Last day of the wave, in the campaign's time zone.
    pub closes_on: NaiveDate,
    /// First instant after the wave (the end of `closes_on`), computed on load.
    closes_at: DateTime<Utc>,
}

impl Wave {
    /// The first instant after the wave: the end of `closes_on` in the
    /// campaign's time zone.
    pub fn closes_at(&self) -> DateTime<Utc> {
        self.closes_at
    }
}

/// The call for applications: its name, its calendar and its waves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    /// As people name it (« Deuxième AMI « Au cœur des territoires » »).
    pub name: String,
    /// Prefix of dossier references, e.g. `AMI2` in `AMI2-V1-0007`.
    pub reference_prefix: String,
    /// The time zone in which its days begin and end.
    pub time_zone: Tz,
    /// The public holidays its deadlines skip. Left out of the JSON form
    /// when it is the default, France: a definition that names no calendar
    /// keeps the JSON form, and so the digest, it had before calendars.
    #[serde(skip_serializing_if = "is_default")]
    pub calendar: Calendar,
    /// The first day a dossier may be received.
    pub opens_on: NaiveDate,
    /// In order; each starts the day after the previous one closes.
    pub waves: Vec<Wave>,
    /// Start of `opens_on` in the time zone, computed on load.
    opens_at: DateTime<Utc>,
}

impl Campaign {
    /// The first instant a dossier may be received: the start of `opens_on`.
    pub fn opens_at(&self) -> DateTime<Utc> {
        self.opens_at
    }

    /// The instant after which no dossier may be received (end of the last wave).
    pub fn closes_at(&self) -> DateTime<Utc> {
        self.waves.last().map_or(self.opens_at, |w| w.closes_at)
    }

    /// Where an instant falls in the campaign.
    pub fn placement(&self, at: DateTime<Utc>) -> Placement {
        if at < self.opens_at {
            return Placement::NotOpen;
        }
        self.waves
            .iter()
            .find(|w| at < w.closes_at)
            .map_or(Placement::Closed, |w| Placement::Wave(w.number))
    }
}

/// Where an instant falls in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Before the campaign opens.
    NotOpen,
    /// In this wave.
    Wave(u8),
    /// After the last wave.
    Closed,
}

/// An agency whose people take some of the actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyDef {
    /// Its identifier (`dar`).
    pub id: AgencyId,
    /// As people name it (« Cnam – Direction de l'action régionale »).
    pub label: String,
}

/// A role within the agencies; roles are ranked, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Its identifier (`agent`).
    pub id: RoleId,
    /// As people name it (« Agent »).
    pub label: String,
}

/// A kind of pièce a dossier holds (« dossier de candidature »…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PieceDef {
    /// Its identifier (`budget_previsionnel`).
    pub id: PieceKind,
    /// As people name it (« Budget prévisionnel »).
    pub label: String,
    /// Its content must have been received before `pieces_complete` holds.
    #[serde(default = "yes")]
    pub required: bool,
    /// The file types accepted for it ([`FILE_TYPES`] ids); empty: all of them.
    #[serde(default)]
    pub accept: Vec<SmolStr>,
}

fn yes() -> bool {
    true
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl PieceDef {
    /// The file types this pièce accepts, in the order of [`FILE_TYPES`].
    pub fn accepted_types(&self) -> impl Iterator<Item = &'static FileType> + '_ {
        FILE_TYPES
            .iter()
            .filter(|t| self.accept.is_empty() || self.accept.iter().any(|a| a == t.id))
    }
}

/// A type of file a pièce may be: what the service recognizes from a file's
/// first bytes, and what a definition may name in a pièce's `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    /// What a definition names in a pièce's `accept` (`pdf`, `ods`…).
    pub id: &'static str,
    /// As people name it (« PDF », « tableur OpenDocument (ods) »).
    pub label: &'static str,
    /// The media type the service records for it.
    pub media_type: &'static str,
    /// File name extensions that say this type (lower case, without dot).
    pub extensions: &'static [&'static str],
}

/// Every file type a pièce may have: documents, spreadsheets and images.
pub const FILE_TYPES: &[FileType] = &[
    FileType {
        id: "pdf",
        label: "PDF",
        media_type: "application/pdf",
        extensions: &["pdf"],
    },
    FileType {
        id: "odt",
        label: "texte OpenDocument (odt)",
        media_type: "application/vnd.oasis.opendocument.text",
        extensions: &["odt"],
    },
    FileType {
        id: "ods",
        label: "tableur OpenDocument (ods)",
        media_type: "application/vnd.oasis.opendocument.spreadsheet",
        extensions: &["ods"],
    },
    FileType {
        id: "docx",
        label: "Word (docx)",
        media_type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        extensions: &["docx"],
    },
    FileType {
        id: "xlsx",
        label: "Excel (xlsx)",
        media_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        extensions: &["xlsx"],
    },
    FileType {
        id: "doc",
        label: "Word 97-2003 (doc)",
        media_type: "application/msword",
        extensions: &["doc"],
    },
    FileType {
        id: "xls",
        label: "Excel 97-2003 (xls)",
        media_type: "application/vnd.ms-excel",
        extensions: &["xls"],
    },
    FileType {
        id: "jpeg",
        label: "image JPEG",
        media_type: "image/jpeg",
        extensions: &["jpg", "jpeg"],
    },
    FileType {
        id: "png",
        label: "image PNG",
        media_type: "image/png",
        extensions: &["png"],
    },
];

/// The file type of an id of [`FILE_TYPES`].
pub fn file_type(id: &str) -> Option<&'static FileType> {
    FILE_TYPES.iter().find(|t| t.id == id)
}

/// A state a dossier may be in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    /// Its identifier (`instruit`).
    pub id: StateId,
    /// As people name it (« Instruit par la DAR »).
    pub label: String,
    /// A final state: the dossier accepts no more action (but a reopening).
    #[serde(default)]
    pub terminal: bool,
}

/// A verdict an avis or an instruction may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictDef {
    /// Its identifier (`reserve`).
    pub id: VerdictId,
    /// As people name it (« Favorable avec réserves »).
    pub label: String,
    /// A motivation must accompany this verdict.
    #[serde(default)]
    pub requires_motivation: bool,
    /// A dossier with this verdict cannot be declared lauréat.
    #[serde(default)]
    pub blocking: bool,
}

/// A programme a dossier may fall under; each has its own avis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Programme {
    /// Its identifier (`acv`).
    pub id: ProgrammeId,
    /// As people name it (« Action Cœur de Ville »).
    pub label: String,
    /// The action that gives this programme's avis.
    pub avis_action: ActionId,
}

/// An action people take on dossiers: who may take it, from where, to
/// where, and under which rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    /// Its identifier (`instruire`).
    pub id: ActionId,
    /// As people name it (« Instruire le dossier »).
    pub label: String,
    /// What it does besides moving the dossier.
    #[serde(default)]
    pub effect: Effect,
    /// States the action may be taken from; `"*"` stands for every
    /// non-terminal state and is expanded on load.
    #[serde(default)]
    pub from: Vec<StateId>,
    /// The state the action leads to; absent for actions that keep the
    /// state ([`Effect::keeps_state`]) or reopen a dossier (it goes back to
    /// the state it left).
    #[serde(default)]
    pub to: Option<StateId>,
    /// The agency whose people take it.
    pub agency: AgencyId,
    /// Minimum role.
    pub role: RoleId,
    /// The action carries a verdict.
    #[serde(default)]
    pub verdict: bool,
    /// The action requires a motivation whatever the verdict.
    #[serde(default)]
    pub motivation: bool,
    /// Only for dossiers in this programme.
    #[serde(default)]
    pub programme: Option<ProgrammeId>,
    /// For dossiers in these programmes, their avis must already be given.
    #[serde(default)]
    pub avis_before: Vec<ProgrammeId>,
    /// Conditions on the dossier checked before it may be taken.
    #[serde(default)]
    pub guards: Vec<Guard>,
    /// The actor must not be the person who last took this other action.
    #[serde(default)]
    pub distinct_from: Option<ActionId>,
    /// The action moves the dossier forward: the agency that may take it is
    /// the one the dossier is waiting on.
    #[serde(default)]
    pub next_step: bool,
    /// By when the agency must take it, once the dossier waits on it
    /// (only on a `next_step` action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Deadline>,
}

/// What `from = "reception"` names in a [`Deadline`]: the instant the
/// dossier was received, not an action.
pub const RECEPTION: &str = "reception";

/// The most working days a deadline may give (about seventeen months).
pub const MAX_DEADLINE_WORKING_DAYS: u32 = 365;

/// A deadline on an action: a number of working days (in the campaign's
/// [`Calendar`]) counted from an instant the dossier keeps. Written
/// `deadline = { working_days = 15, from = "instruire" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    /// How many working days after the day of `from` (that day does not
    /// count): the last day is the one
    /// [`add_working_days`](crate::calendar::add_working_days) gives. From 1
    /// to [`MAX_DEADLINE_WORKING_DAYS`].
    pub working_days: u32,
    /// The instant the count starts from.
    pub from: DeadlineStart,
}

/// The instant a [`Deadline`] counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineStart {
    /// The dossier's reception (`received_at`), written `"reception"`.
    Reception,
    /// The last time this action, which carries a verdict, was taken on the
    /// dossier (its [`Avis::at`](crate::Avis::at)), written as its id.
    Action(ActionId),
}

impl Serialize for DeadlineStart {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DeadlineStart::Reception => serializer.serialize_str(RECEPTION),
            DeadlineStart::Action(id) => id.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for DeadlineStart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = ActionId::deserialize(deserializer)?;
        Ok(if id == RECEPTION {
            DeadlineStart::Reception
        } else {
            DeadlineStart::Action(id)
        })
    }
}

impl ActionDef {
    /// The action may be taken from this state.
    pub fn is_possible_from(&self, state: &str) -> bool {
        self.from.iter().any(|s| s == state)
    }

    /// [`Self::is_possible_from`], by identifier.
    pub(crate) fn starts_from(&self, state: &StateId) -> bool {
        self.from.iter().any(|s| s == state)
    }

    /// The state a dossier in `state` would be in after this action, when
    /// the definition alone says it (not for [`Effect::Reopen`]).
    pub fn target<'a>(&'a self, state: &'a str) -> Option<&'a str> {
        if self.effect.keeps_state() {
            Some(state)
        } else {
            self.to.as_deref()
        }
    }
}

/// A validated workflow definition: the only way to get one is
/// [`Definition::from_toml`] (or [`Definition::ami2`]), which checks it
/// whole, so that the engine never runs on a definition with an unknown
/// state, an unreachable one or a wave that ends before it starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    version: SmolStr,
    campaign: Campaign,
    agencies: Vec<AgencyDef>,
    roles: Vec<RoleDef>,
    states: Vec<StateDef>,
    pieces: Vec<PieceDef>,
    verdicts: Vec<VerdictDef>,
    programmes: Vec<Programme>,
    actions: Vec<ActionDef>,
    /// From `[migration]`: where the dossiers of a state the definition no
    /// longer has go when it replaces the one before.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    state_map: BTreeMap<SmolStr, StateId>,
}

/// `[migration]`: how dossiers move from the definition before.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationDocument {
    /// Former state → state of this definition.
    #[serde(default)]
    state_map: BTreeMap<SmolStr, StateId>,
}

/// The TOML document as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: SmolStr,
    campaign: CampaignDocument,
    agencies: Vec<AgencyDef>,
    roles: Vec<RoleDef>,
    states: Vec<StateDef>,
    pieces: Vec<PieceDef>,
    verdicts: Vec<VerdictDef>,
    programmes: Vec<Programme>,
    actions: Vec<ActionDef>,
    #[serde(default)]
    migration: Option<MigrationDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignDocument {
    name: String,
    reference_prefix: String,
    time_zone: Tz,
    #[serde(default)]
    calendar: Calendar,
    opens_on: NaiveDate,
    waves: Vec<WaveDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaveDocument {
    number: u8,
    closes_on: NaiveDate,
}

impl Definition {
    /// The embedded definition of the second AMI.
    pub fn ami2() -> Definition {
        // The embedded document is checked by the crate's tests; failing here
        // would be a build defect, not a runtime condition.
        Definition::from_toml(DEFAULT_DEFINITION_TOML).expect("embedded ami2.toml is valid")
    }

    /// Parses and validates a TOML workflow definition.
    pub fn from_toml(text: &str) -> Result<Definition, DefinitionError> {
        let doc: Document =
            toml::from_str(text).map_err(|e| DefinitionError::Syntax(e.to_string()))?;
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let mut def = Definition {
            version: doc.version,
            campaign: Campaign {
                name: doc.campaign.name,
                reference_prefix: doc.campaign.reference_prefix,
                time_zone: doc.campaign.time_zone,
                calendar: doc.campaign.calendar,
                opens_on: doc.campaign.opens_on,
                waves: doc
                    .campaign
                    .waves
                    .into_iter()
                    .map(|w| Wave {
                        number: w.number,
                        closes_on: w.closes_on,
                        closes_at: epoch,
                    })
                    .collect(),
                opens_at: epoch,
            },
            agencies: doc.agencies,
            roles: doc.roles,
            states: doc.states,
            pieces: doc.pieces,
            verdicts: doc.verdicts,
            programmes: doc.programmes,
            actions: doc.actions,
            state_map: doc.migration.map(|m| m.state_map).unwrap_or_default(),
        };
        def.resolve_and_validate()?;
        Ok(def)
    }

    /// The definition's version (`ami2-2020.2`), recorded in every event
    /// decided under it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The version as events record it: a copy that shares the text.
    pub(crate) fn shared_version(&self) -> SmolStr {
        self.version.clone()
    }

    /// The campaign: its name, calendar and waves.
    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    /// The agencies, in the definition's order.
    pub fn agencies(&self) -> &[AgencyDef] {
        &self.agencies
    }

    /// The roles, lowest first.
    pub fn roles(&self) -> &[RoleDef] {
        &self.roles
    }

    /// The states, in the definition's order.
    pub fn states(&self) -> &[StateDef] {
        &self.states
    }

    /// The kinds of pièce a dossier holds.
    pub fn pieces(&self) -> &[PieceDef] {
        &self.pieces
    }

    /// The verdicts actions may carry.
    pub fn verdicts(&self) -> &[VerdictDef] {
        &self.verdicts
    }

    /// The programmes a dossier may fall under.
    pub fn programmes(&self) -> &[Programme] {
        &self.programmes
    }

    /// The actions, in the definition's order (the order pages list them in).
    pub fn actions(&self) -> &[ActionDef] {
        &self.actions
    }

    /// Where the dossiers of a former state go (`[migration] state_map`):
    /// former state → state of this definition.
    pub fn state_map(&self) -> &BTreeMap<SmolStr, StateId> {
        &self.state_map
    }

    /// The action with this identifier.
    pub fn action(&self, id: &str) -> Option<&ActionDef> {
        self.actions.iter().find(|a| a.id == id)
    }

    /// The state with this identifier.
    pub fn state(&self, id: &str) -> Option<&StateDef> {
        self.states.iter().find(|s| s.id == id)
    }

    /// The verdict with this identifier.
    pub fn verdict(&self, id: &str) -> Option<&VerdictDef> {
        self.verdicts.iter().find(|v| v.id == id)
    }

    /// The programme with this identifier.
    pub fn programme(&self, id: &str) -> Option<&Programme> {
        self.programmes.iter().find(|p| p.id == id)
    }

    /// The agency with this identifier.
    pub fn agency(&self, id: &str) -> Option<&AgencyDef> {
        self.agencies.iter().find(|a| a.id == id)
    }

    /// The role with this identifier.
    pub fn role(&self, id: &str) -> Option<&RoleDef> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// The action of this identifier: [`Self::action`] comparing
    /// identifiers (pointers) rather than texts.
    pub(crate) fn action_of(&self, id: &ActionId) -> Option<&ActionDef> {
        self.actions.iter().find(|a| a.id == *id)
    }

    /// The verdict of this identifier ([`Self::verdict`], by identifier).
    pub(crate) fn verdict_of(&self, id: &VerdictId) -> Option<&VerdictDef> {
        self.verdicts.iter().find(|v| v.id == *id)
    }

    /// The programme of this identifier ([`Self::programme`], by identifier).
    pub(crate) fn programme_of(&self, id: &ProgrammeId) -> Option<&Programme> {
        self.programmes.iter().find(|p| p.id == *id)
    }

    /// [`Self::role_rank`], by identifier.
    pub(crate) fn rank_of(&self, id: &RoleId) -> Option<usize> {
        self.roles.iter().position(|r| r.id == *id)
    }

    /// [`Self::is_terminal`], by identifier.
    pub(crate) fn is_final(&self, state: &StateId) -> bool {
        self.states
            .iter()
            .find(|s| s.id == *state)
            .is_some_and(|s| s.terminal)
    }

    /// [`Self::has_piece`], by identifier.
    pub(crate) fn knows_piece(&self, id: &PieceKind) -> bool {
        self.pieces.iter().any(|p| p.id == *id)
    }

    /// The action `id` names, if the definition has it.
    pub fn action_id(&self, id: &str) -> Option<ActionId> {
        self.action(id).map(|a| a.id.clone())
    }

    /// The state `id` names, if the definition has it.
    pub fn state_id(&self, id: &str) -> Option<StateId> {
        self.state(id).map(|s| s.id.clone())
    }

    /// The verdict `id` names, if the definition has it.
    pub fn verdict_id(&self, id: &str) -> Option<VerdictId> {
        self.verdict(id).map(|v| v.id.clone())
    }

    /// The programme `id` names, if the definition has it.
    pub fn programme_id(&self, id: &str) -> Option<ProgrammeId> {
        self.programme(id).map(|p| p.id.clone())
    }

    /// The agency `id` names, if the definition has it.
    pub fn agency_id(&self, id: &str) -> Option<AgencyId> {
        self.agency(id).map(|a| a.id.clone())
    }

    /// The role `id` names, if the definition has it.
    pub fn role_id(&self, id: &str) -> Option<RoleId> {
        self.role(id).map(|r| r.id.clone())
    }

    /// The kind of pièce `id` names, if the definition has it.
    pub fn piece_kind(&self, id: &str) -> Option<PieceKind> {
        self.piece(id).map(|p| p.id.clone())
    }

    /// The definition has this agency.
    pub fn has_agency(&self, id: &str) -> bool {
        self.agencies.iter().any(|a| a.id == id)
    }

    /// The definition has this kind of pièce.
    pub fn has_piece(&self, id: &str) -> bool {
        self.pieces.iter().any(|p| p.id == id)
    }

    /// The kind of pièce with this identifier.
    pub fn piece(&self, id: &str) -> Option<&PieceDef> {
        self.pieces.iter().find(|p| p.id == id)
    }

    /// The programmes whose dossiers an agency may read, `None` for all.
    /// Need to know: an agency that gives the avis of some programmes reads
    /// only the dossiers of those programmes; the others (the instructing
    /// agency) read every dossier.
    pub fn readable_programmes(&self, agency: &str) -> Option<Vec<&str>> {
        let own: Vec<&str> = self
            .programmes
            .iter()
            .filter(|p| {
                self.action(&p.avis_action)
                    .is_some_and(|a| a.agency == agency)
            })
            .map(|p| p.id.as_str())
            .collect();
        (!own.is_empty()).then_some(own)
    }

    /// An agency may read a dossier of these programmes ([`Self::readable_programmes`]).
    pub fn may_read<P: AsRef<str>>(&self, agency: &str, programmes: &[P]) -> bool {
        match self.readable_programmes(agency) {
            None => true,
            Some(own) => programmes.iter().any(|p| own.contains(&p.as_ref())),
        }
    }

    /// Rank of a role (0 is the lowest), `None` when unknown.
    pub fn role_rank(&self, id: &str) -> Option<usize> {
        self.roles.iter().position(|r| r.id == id)
    }

    /// The state is final (an unknown state is not).
    pub fn is_terminal(&self, state: &str) -> bool {
        self.state(state).is_some_and(|s| s.terminal)
    }

    /// The actions a selection committee takes: those that end the review
    /// (they lead to a final state) and that a dossier just received
    /// cannot take (so not a withdrawal, which ends a dossier at any
    /// step). For the AMI: `declarer_laureat` and `refuser`.
    pub fn committee_actions(&self) -> impl Iterator<Item = &ActionDef> {
        let received: Vec<&StateId> = self
            .actions
            .iter()
            .filter(|a| a.effect == Effect::Create)
            .filter_map(|a| a.to.as_ref())
            .collect();
        self.actions.iter().filter(move |a| {
            a.effect != Effect::Create
                && a.to.as_ref().is_some_and(|to| self.is_final(to))
                && !received.iter().any(|r| a.starts_from(r))
        })
    }

    /// The state's label, or its identifier when the definition lacks it
    /// (an old event's state after a migration).
    pub fn state_label<'a>(&'a self, state: &'a str) -> &'a str {
        self.state(state).map_or(state, |s| s.label.as_str())
    }

    /// The actions that create a dossier.
    pub fn creation_actions(&self) -> impl Iterator<Item = &ActionDef> {
        self.actions.iter().filter(|a| a.effect == Effect::Create)
    }

    fn resolve_and_validate(&mut self) -> Result<(), DefinitionError> {
        self.resolve_campaign()?;
        unique("agencies", self.agencies.iter().map(|a| a.id.as_str()))?;
        unique("roles", self.roles.iter().map(|a| a.id.as_str()))?;
        unique("states", self.states.iter().map(|a| a.id.as_str()))?;
        unique("pieces", self.pieces.iter().map(|a| a.id.as_str()))?;
        unique("verdicts", self.verdicts.iter().map(|a| a.id.as_str()))?;
        unique("programmes", self.programmes.iter().map(|a| a.id.as_str()))?;
        unique("actions", self.actions.iter().map(|a| a.id.as_str()))?;
        for piece in &self.pieces {
            if let Some(unknown) = piece.accept.iter().find(|a| file_type(a).is_none()) {
                return Err(invalid(
                    format!("pièce `{}`", piece.id),
                    format!(
                        "type de fichier inconnu `{unknown}` (types : {})",
                        FILE_TYPES
                            .iter()
                            .map(|t| t.id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for (what, empty) in [
            ("agencies", self.agencies.is_empty()),
            ("roles", self.roles.is_empty()),
            ("states", self.states.is_empty()),
            ("actions", self.actions.is_empty()),
        ] {
            if empty {
                return Err(invalid(what, "la liste est vide"));
            }
        }

        let non_terminal: Vec<StateId> = self
            .states
            .iter()
            .filter(|s| !s.terminal)
            .map(|s| s.id.clone())
            .collect();
        for action in &mut self.actions {
            if action.from.iter().any(|s| s == "*") {
                action.from = non_terminal.clone();
            }
        }

        for programme in &self.programmes {
            let item = format!("programme `{}`", programme.id);
            match self.action(&programme.avis_action) {
                None => {
                    return Err(invalid(
                        item,
                        format!("action d'avis inconnue `{}`", programme.avis_action),
                    ))
                }
                Some(a) if !a.verdict => {
                    return Err(invalid(
                        item,
                        format!("l'action `{}` ne porte pas de verdict", a.id),
                    ))
                }
                Some(_) => {}
            }
        }

        for action in &self.actions {
            self.validate_action(action)?;
        }
        if self.creation_actions().next().is_none() {
            return Err(invalid("actions", "aucune action ne crée de dossier"));
        }
        if self.action(MIGRATION_ACTION).is_some() {
            return Err(invalid(
                format!("action `{}`", MIGRATION_ACTION),
                "identifiant réservé aux changements de définition",
            ));
        }
        for (former, to) in &self.state_map {
            if self.state(to).is_none() {
                return Err(invalid(
                    format!("migration.state_map, état `{former}`"),
                    format!("état inconnu `{to}`"),
                ));
            }
            if self.state(former).is_some() {
                return Err(invalid(
                    format!("migration.state_map, état `{former}`"),
                    "cet état existe encore : ses dossiers y restent",
                ));
            }
        }
        self.validate_graph()
    }

    fn resolve_campaign(&mut self) -> Result<(), DefinitionError> {
        let c = &mut self.campaign;
        let tz = c.time_zone;
        c.opens_at = start_of_day(tz, c.opens_on)
            .ok_or_else(|| invalid("campaign.opens_on", "date introuvable"))?;
        if c.waves.is_empty() {
            return Err(invalid("campaign.waves", "aucune vague"));
        }
        // The first wave may close on the opening day; each next one closes
        // after the previous one (waves are consecutive: a wave starts the
        // day after the previous one closes).
        let mut previous_close: Option<NaiveDate> = None;
        let mut seen = BTreeSet::new();
        for wave in &mut c.waves {
            let item = format!("campaign.waves, vague {}", wave.number);
            if !seen.insert(wave.number) {
                return Err(invalid(item, "numéro de vague en double"));
            }
            let overlap = match previous_close {
                None => (wave.closes_on < c.opens_on).then(|| {
                    format!(
                        "la vague se termine le {}, avant l'ouverture de la campagne le {}",
                        french_date(wave.closes_on),
                        french_date(c.opens_on)
                    )
                }),
                Some(last) => (wave.closes_on <= last).then(|| {
                    format!(
                        "la vague se termine le {} et chevauche la précédente, qui se termine le {}",
                        french_date(wave.closes_on),
                        french_date(last)
                    )
                }),
            };
            if let Some(problem) = overlap {
                return Err(invalid(item, problem));
            }
            let next_day = wave
                .closes_on
                .checked_add_days(Days::new(1))
                .ok_or_else(|| invalid(item.clone(), "date hors limites"))?;
            wave.closes_at =
                start_of_day(tz, next_day).ok_or_else(|| invalid(item, "date introuvable"))?;
            previous_close = Some(wave.closes_on);
        }
        Ok(())
    }

    fn validate_action(&self, action: &ActionDef) -> Result<(), DefinitionError> {
        let item = format!("action `{}`", action.id);
        let state_known = |s: &StateId| self.state(s).is_some();
        if !self.has_agency(&action.agency) {
            return Err(invalid(
                item,
                format!("agence inconnue `{}`", action.agency),
            ));
        }
        if self.role_rank(&action.role).is_none() {
            return Err(invalid(item, format!("rôle inconnu `{}`", action.role)));
        }
        if let Some(to) = action.to.as_ref().filter(|s| !state_known(s)) {
            return Err(invalid(item, format!("état inconnu `{to}` (to)")));
        }
        if let Some(s) = action.from.iter().find(|s| !state_known(s)) {
            return Err(invalid(item, format!("état inconnu `{s}` (from)")));
        }
        match (action.effect, &action.to) {
            (Effect::Create, _) if !action.from.is_empty() => {
                return Err(invalid(
                    item,
                    "une action de création n'a pas d'état de départ",
                ))
            }
            (Effect::Create | Effect::Transition, None) => {
                return Err(invalid(item, "aucun état d'arrivée (to)"))
            }
            (Effect::Create, _) => {}
            (_, _) if action.from.is_empty() => {
                return Err(invalid(item, "aucun état de départ (from)"))
            }
            (Effect::AttachPiece | Effect::RequestPieces, Some(to))
                if action.from.iter().any(|s| s != to) =>
            {
                return Err(invalid(
                    item,
                    "cette action ne change pas l'état : from et to doivent être égaux (ou to absent)",
                ))
            }
            (Effect::Reopen, Some(_)) => {
                return Err(invalid(
                    item,
                    "une réouverture ramène le dossier à l'état qu'il a quitté : pas de to",
                ))
            }
            (Effect::Reopen, None) => {
                if let Some(s) = action.from.iter().find(|s| !self.is_terminal(s)) {
                    return Err(invalid(
                        item,
                        format!("une réouverture part d'un état final, pas de `{s}`"),
                    ));
                }
            }
            _ => {}
        }
        if let Some(p) = &action.programme {
            if self.programme(p).is_none() {
                return Err(invalid(item, format!("programme inconnu `{p}`")));
            }
        }
        if let Some(p) = action
            .avis_before
            .iter()
            .find(|p| self.programme(p).is_none())
        {
            return Err(invalid(
                item,
                format!("programme inconnu `{p}` (avis_before)"),
            ));
        }
        if let Some(other) = &action.distinct_from {
            if self.action(other).is_none() {
                return Err(invalid(
                    item,
                    format!("action inconnue `{other}` (distinct_from)"),
                ));
            }
        }
        if action.verdict && self.verdicts.is_empty() {
            return Err(invalid(
                item,
                "porte un verdict mais aucun verdict n'est défini",
            ));
        }
        if let Some(deadline) = &action.deadline {
            self.validate_deadline(action, deadline)
                .map_err(|problem| invalid(item, problem))?;
        }
        Ok(())
    }

    /// What is wrong with an action's deadline, in French.
    fn validate_deadline(&self, action: &ActionDef, deadline: &Deadline) -> Result<(), String> {
        if !action.next_step {
            return Err(
                "un délai (deadline) ne vaut que pour une étape attendue : ajoutez next_step = true"
                    .into(),
            );
        }
        let n = deadline.working_days;
        if n == 0 || n > MAX_DEADLINE_WORKING_DAYS {
            return Err(format!(
                "délai de {n} jour(s) ouvré(s) : il doit être compris entre 1 et {MAX_DEADLINE_WORKING_DAYS} (deadline.working_days)"
            ));
        }
        let DeadlineStart::Action(from) = &deadline.from else {
            return Ok(());
        };
        match self.action_of(from) {
            None => Err(format!(
                "action inconnue `{from}` (deadline.from : `{RECEPTION}` ou une action qui porte un verdict)"
            )),
            Some(a) if a.id == action.id => Err(format!(
                "le délai ne peut partir de l'action elle-même (deadline.from = `{from}`)"
            )),
            Some(a) if !a.verdict => Err(format!(
                "le dossier ne garde pas l'instant de l'action `{from}`, qui ne porte pas de verdict (deadline.from : `{RECEPTION}` ou une action qui porte un verdict)"
            )),
            Some(_) => Ok(()),
        }
    }

    fn validate_graph(&self) -> Result<(), DefinitionError> {
        // Every state is reachable from a creation.
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = self
            .creation_actions()
            .filter_map(|a| a.to.as_deref())
            .collect();
        while let Some(state) = queue.pop_front() {
            if !reached.insert(state) {
                continue;
            }
            for a in self.actions.iter().filter(|a| a.is_possible_from(state)) {
                // A reopening only leads back where the dossier has been.
                if let Some(to) = a.target(state) {
                    queue.push_back(to);
                }
            }
        }
        if let Some(s) = self
            .states
            .iter()
            .find(|s| !reached.contains(s.id.as_str()))
        {
            return Err(invalid(
                format!("état `{}`", s.id),
                "aucun chemin n'y mène depuis le dépôt",
            ));
        }
        // Ways out of each state; a reopening is not one of a final state's.
        let mut exits: BTreeMap<&str, usize> = BTreeMap::new();
        for a in self.actions.iter().filter(|a| a.effect != Effect::Reopen) {
            for from in &a.from {
                if a.target(from) != Some(from.as_str()) {
                    *exits.entry(from.as_str()).or_default() += 1;
                }
            }
        }
        for s in &self.states {
            let n = exits.get(s.id.as_str()).copied().unwrap_or(0);
            if s.terminal && n > 0 {
                return Err(invalid(
                    format!("état `{}`", s.id),
                    "état final dont une action permet de sortir",
                ));
            }
            if !s.terminal && n == 0 {
                return Err(invalid(
                    format!("état `{}`", s.id),
                    "état non final sans aucune issue",
                ));
            }
        }
        for a in self.actions.iter().filter(|a| a.effect != Effect::Reopen) {
            if let Some(from) = a.from.iter().find(|f| self.is_terminal(f)) {
                return Err(invalid(
                    format!("action `{}`", a.id),
                    format!("part de l'état final `{from}`"),
                ));
            }
        }
        Ok(())
    }
}

fn unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), DefinitionError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                format!("{what} `{id}`"),
                "identifiant invalide (lettres ASCII, chiffres et _ seulement)",
            ));
        }
        if !seen.insert(id) {
            return Err(invalid(format!("{what} `{id}`"), "identifiant en double"));
        }
    }
    Ok(())
}

/// The first instant of a calendar day in a time zone. A day starting inside
/// a daylight-saving gap starts at the first instant that exists.
fn start_of_day(tz: Tz, day: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    let local = tz.from_local_datetime(&midnight);
    local
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}
