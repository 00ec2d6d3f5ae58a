//! The JSON shapes of the API, in and out, documented for OpenAPI.

use std::collections::BTreeMap;

use ami_core::{available_actions, awaiting, deadlines, Actor, Definition, Dossier, Event};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::StoredEvent;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PorteurBody {
    /// Name of the applicant, e.g. « Ville de Nevers ».
    pub nom: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PieceBody {
    /// `dossier_candidature` or `budget_previsionnel`.
    pub kind: String,
    pub filename: String,
    #[serde(default, deserialize_with = "super::integral::optional")]
    pub size: Option<u64>,
    /// Hex SHA-256 of the file, 64 characters.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Body of `POST /dossiers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDossierBody {
    pub commune: String,
    /// INSEE code of the commune, 5 characters (2A/2B for Corsica).
    pub code_insee: String,
    pub porteur: PorteurBody,
    /// `acv`, `ti` or both.
    pub programmes: Vec<String>,
    /// When the dossier was received; now when absent; never in the future.
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pieces: Vec<PieceBody>,
    /// The commune already has a dossier in the campaign and this is a
    /// second project, not a duplicate: without it, such a deposit is
    /// refused with `doublon`.
    #[serde(default)]
    pub doublon_confirme: bool,
}

/// Body of `POST /dossiers/{id}/transitions`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// An action id of the workflow, e.g. `instruire`.
    pub action: String,
    /// The dossier's `version` as last read; checked first.
    #[serde(deserialize_with = "super::integral::unsigned")]
    pub expected_version: u64,
    /// `favorable`, `reserve` or `defavorable`, for actions that carry one.
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub motivation: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    /// `demander_complement` only: the pièces asked of the porteur.
    #[serde(default)]
    pub pieces: Option<Vec<String>>,
    /// `demander_complement` only: the last day for the porteur, AAAA-MM-JJ.
    #[serde(default)]
    pub due_on: Option<NaiveDate>,
}

/// The form of a deposit with its files (`multipart/form-data`).
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct DepositForm {
    /// The JSON of `POST /dossiers` (a [`NewDossierBody`]).
    pub dossier: String,
    /// The file of the dossier de candidature.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub dossier_candidature: Option<Vec<u8>>,
    /// The file of the budget prévisionnel.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub budget_previsionnel: Option<Vec<u8>>,
}

/// A pièce of a dossier: declared, or received with its versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PieceView {
    pub kind: String,
    pub label: String,
    /// The name of the latest file (or the name declared).
    pub filename: String,
    /// Its content has been received and stored.
    pub received: bool,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub media_type: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    /// Where to download the latest version.
    pub url: Option<String>,
    /// Every file received for it, oldest first.
    pub versions: Vec<PieceVersionView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PieceVersionView {
    /// 1 for the first file received.
    pub version: u32,
    pub filename: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    pub received_at: DateTime<Utc>,
    pub url: String,
}

impl PieceView {
    fn new(def: &Definition, d: &Dossier, p: &ami_core::Piece) -> PieceView {
        let versions: Vec<PieceVersionView> = d
            .versions(&p.kind)
            .map(|f| PieceVersionView {
                version: f.version,
                filename: f.filename.to_string(),
                media_type: f.media_type.to_string(),
                size: f.size,
                sha256: f.sha256.to_string(),
                received_at: f.received_at,
                url: super::pieces::version_url(d, &p.kind, f.version),
            })
            .collect();
        // The latest file received is the pièce, even if a name alone was
        // declared after it.
        let latest = versions.last();
        PieceView {
            kind: p.kind.to_string(),
            label: def
                .piece(&p.kind)
                .map_or_else(|| p.kind.to_string(), |k| k.label.clone()),
            filename: latest
                .map_or_else(|| p.filename.clone(), |v| v.filename.clone().into())
                .to_string(),
            received: latest.is_some(),
            size: latest.map(|v| v.size).or(p.size),
            sha256: latest
                .map(|v| v.sha256.clone())
                .or_else(|| p.sha256.as_deref().map(str::to_string)),
            media_type: latest.map(|v| v.media_type.clone()),
            received_at: latest.map(|v| v.received_at),
            url: latest.map(|_| format!("/api/v1/dossiers/{}/pieces/{}", d.id, p.kind)),
            versions,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActorView {
    pub id: String,
    pub name: String,
    pub agency: String,
    pub role: String,
}

impl From<&Actor> for ActorView {
    fn from(a: &Actor) -> Self {
        ActorView {
            id: a.id.to_string(),
            name: a.name.to_string(),
            agency: a.agency.to_string(),
            role: a.role.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AvisView {
    pub action: String,
    pub verdict: String,
    pub verdict_label: String,
    pub motivation: Option<String>,
    pub by: ActorView,
    pub at: DateTime<Utc>,
}

/// A dossier as the API shows it to a given caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DossierView {
    pub id: Uuid,
    /// Human-readable and unique, e.g. `AMI2-V1-0007`.
    pub reference: String,
    pub commune: String,
    pub code_insee: String,
    /// The commune's département code (`58`, `2A`, `974`), from the
    /// official geographic code; null for a code it lacks.
    pub departement: Option<String>,
    /// Its name, « Nièvre ».
    pub departement_label: Option<String>,
    /// The région's code (`27`).
    pub region: Option<String>,
    /// Its name, « Bourgogne-Franche-Comté ».
    pub region_label: Option<String>,
    pub porteur: PorteurBody,
    pub programmes: Vec<String>,
    pub wave: u8,
    pub state: String,
    pub state_label: String,
    /// Sequence number of the last event; send it as `expected_version`.
    pub version: u64,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub pieces: Vec<PieceView>,
    /// Verdicts given, per agency.
    pub avis: BTreeMap<String, AvisView>,
    /// Who the dossier is waiting on: agencies, or `porteur` while a
    /// « demande de complément » is open.
    pub awaiting: Vec<String>,
    /// Per awaited agency whose action has a deadline in working days:
    /// its last day and whether it is past.
    pub deadlines: Vec<DeadlineView>,
    /// A « demande de complément » is open.
    pub complement_demande: bool,
    /// The open « demande de complément », if any.
    pub complement: Option<ComplementView>,
    /// The committee session that decided it, once one has.
    pub committee: Option<CommitteeRef>,
    /// Actions the caller may take now.
    pub actions: Vec<String>,
    /// The one of `actions` that moves the dossier to its next step
    /// (`instruire`, an avis, the decision), when it is the caller's to
    /// take; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
}

/// The committee session a decision was taken in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommitteeRef {
    pub id: Uuid,
    /// The day it met.
    pub held_on: NaiveDate,
}

/// What an awaited agency has to do, by when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadlineView {
    /// The agency awaited, e.g. `acv`.
    pub agency: String,
    /// The action it must take, e.g. `avis_acv`.
    pub action: String,
    /// When the count started: the reception, or the action it follows.
    pub since: DateTime<Utc>,
    /// Working days given (French calendar: weekends and public holidays
    /// do not count).
    pub working_days: u32,
    /// The last day, in the campaign's time zone: on time until its end.
    pub due: NaiveDate,
    /// The day is past.
    pub overdue: bool,
}

/// A « demande de complément » still open.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplementView {
    /// The pièces asked for that have not arrived yet.
    pub pieces: Vec<String>,
    /// The last day for the porteur.
    pub due_on: NaiveDate,
    pub motivation: Option<String>,
    pub requested_by: ActorView,
    pub requested_at: DateTime<Utc>,
}

impl DossierView {
    /// As `caller` sees it at `now` (which says what is late).
    pub fn new(def: &Definition, d: &Dossier, caller: &Actor, now: DateTime<Utc>) -> DossierView {
        // A closed dossier waits on nobody, the porteur included.
        let complement = d
            .complement
            .as_ref()
            .filter(|_| !def.is_terminal(&d.state))
            .map(|c| ComplementView {
                pieces: c.pieces.iter().map(|p| p.to_string()).collect(),
                due_on: c.due_on,
                motivation: c.motivation.as_deref().map(str::to_string),
                requested_by: (&c.requested_by).into(),
                requested_at: c.requested_at,
            });
        let commune = ami_core::commune(&d.code_insee);
        let departement = commune.and_then(|c| ami_core::departement(c.departement));
        let region = commune.and_then(|c| ami_core::region(c.region));
        let available = available_actions(def, d, caller);
        DossierView {
            id: d.id.0,
            reference: d.reference.to_string(),
            commune: d.commune.to_string(),
            code_insee: d.code_insee.to_string(),
            departement: departement.map(|dep| dep.code.to_string()),
            departement_label: departement.map(|dep| dep.name.to_string()),
            region: region.map(|r| r.code.to_string()),
            region_label: region.map(|r| r.name.to_string()),
            porteur: PorteurBody {
                nom: d.porteur.nom.to_string(),
                email: d.porteur.email.as_deref().map(str::to_string),
            },
            programmes: d.programmes.iter().map(|p| p.to_string()).collect(),
            wave: d.wave,
            state: d.state.to_string(),
            state_label: def.state_label(&d.state).to_string(),
            version: d.version,
            received_at: d.received_at,
            updated_at: d.updated_at,
            pieces: d.pieces.iter().map(|p| PieceView::new(def, d, p)).collect(),
            avis: d
                .avis_given()
                .map(|a| {
                    (
                        a.agency.to_string(),
                        AvisView {
                            action: a.action.to_string(),
                            verdict: a.verdict.to_string(),
                            verdict_label: def
                                .verdict(&a.verdict)
                                .map_or_else(|| a.verdict.to_string(), |v| v.label.clone()),
                            motivation: a.motivation.as_deref().map(str::to_string),
                            by: (&a.actor).into(),
                            at: a.at,
                        },
                    )
                })
                .collect(),
            awaiting: awaiting(def, d)
                .into_iter()
                .map(|a| a.to_string())
                .collect(),
            deadlines: deadlines(def, d)
                .into_iter()
                .map(|l| DeadlineView {
                    overdue: l.overdue(now),
                    agency: l.agency.to_string(),
                    action: l.action.to_string(),
                    since: l.since,
                    working_days: l.working_days,
                    due: l.due,
                })
                .collect(),
            complement_demande: complement.is_some(),
            complement,
            committee: d.committee.as_ref().map(|c| CommitteeRef {
                id: c.committee_id,
                held_on: c.held_on,
            }),
            actions: available.iter().map(|a| a.id.to_string()).collect(),
            next_step: available
                .iter()
                .find(|a| a.next_step)
                .map(|a| a.id.to_string()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DossierPage {
    pub items: Vec<DossierView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One event of a dossier's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryItem {
    pub dossier_id: Uuid,
    pub seq: u64,
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub agency: String,
    pub actor: ActorView,
    pub at: DateTime<Utc>,
    pub verdict: Option<String>,
    pub motivation: Option<String>,
    pub comment: Option<String>,
    pub definition_version: String,
    /// SHA-256 over the previous event's `digest` (hex) and the RFC 8785
    /// canonical form of `content`: a receipt anyone can recompute.
    pub digest: String,
    /// Place in the global chain of every event, in commit order.
    pub global_seq: Option<i64>,
    /// SHA-256 over the previous place's `global_digest` (hex) and `digest`.
    pub global_digest: Option<String>,
    /// The whole event as recorded, the deposit's content and the pièce
    /// added included: what `digest` covers.
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// Feed cursor just after this event.
    pub cursor: String,
}

impl From<&StoredEvent> for HistoryItem {
    fn from(s: &StoredEvent) -> Self {
        let e: &Event = &s.event;
        HistoryItem {
            dossier_id: e.dossier_id.0,
            seq: e.seq,
            action: e.action.to_string(),
            from: e.from.as_ref().map(|s| s.to_string()),
            to: e.to.to_string(),
            agency: e.actor.agency.to_string(),
            actor: (&e.actor).into(),
            at: e.at,
            verdict: e.verdict.as_ref().map(|s| s.to_string()),
            motivation: e.motivation.as_deref().map(str::to_string),
            comment: e.comment.as_deref().map(str::to_string),
            definition_version: e.definition_version.to_string(),
            digest: s.digest.clone(),
            global_seq: s.global_seq,
            global_digest: s.global_digest.clone(),
            content: s.content.clone(),
            cursor: s.position.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub dossier_id: Uuid,
    pub events: Vec<HistoryItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<HistoryItem>,
    /// Pass as `after` to continue; stays the same when nothing is new.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaveStats {
    pub wave: u8,
    pub total: i64,
    /// Number of dossiers per state.
    pub states: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    pub total: i64,
    pub waves: Vec<WaveStats>,
    /// Per agency, the number of dossiers waiting on it; `porteur`, those
    /// waiting on the town.
    pub awaiting: BTreeMap<String, i64>,
    /// Per agency, the dossiers waiting on it past their deadline today
    /// (in Paris).
    pub overdue: BTreeMap<String, i64>,
    /// Dossiers with an open « demande de complément ».
    pub complement_demande: i64,
    /// With `group_by=departement`: the counts of each département that has
    /// dossiers, in code order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departements: Option<Vec<PlaceStats>>,
    /// With `group_by=region`: the counts of each région that has
    /// dossiers, in code order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<PlaceStats>>,
}

/// The dossiers of a département or a région.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlaceStats {
    /// Its code in the official geographic code (`58`, `2A`, `974`; `27`).
    pub code: String,
    /// Its name (« Nièvre », « Bourgogne-Franche-Comté »).
    pub nom: String,
    /// A département's région (absent for a région).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub total: i64,
    /// Number of dossiers per wave (`"1"`, `"2"`, `"3"`).
    pub waves: BTreeMap<String, i64>,
    /// Number of dossiers per state.
    pub states: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}
