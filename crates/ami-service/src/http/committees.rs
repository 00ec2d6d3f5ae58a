//! `/waves/{n}/committees`: a wave's selection committee, its session and
//! its decisions taken all at once, or tried first (`dry_run`).

use std::collections::HashSet;
use std::sync::Arc;

use ami_core::text::nfc;
use ami_core::{authorize, CommitteeDecision, Dossier, DossierId};
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::dossiers::{check_line, check_text};
use super::error::{ApiError, Problem};
use super::extract::ApiJson;
use super::{AppState, Caller};
use crate::store::{
    CommitteeDecisionRecord, CommitteeMember, CommitteeSession, Content, Order, Principal,
    StoreError, TransitionRequest,
};

/// At most this many decisions in one session: a wave's dossiers, with
/// room to spare.
const MAX_DECISIONS: usize = 1_000;

/// Body of `POST /waves/{n}/committees`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitteeBody {
    /// The day the committee met, AAAA-MM-JJ; not after today.
    pub date: NaiveDate,
    /// The minutes (procès-verbal), free text.
    pub minutes: String,
    /// Who sat, and for which agency.
    pub members: Vec<MemberBody>,
    /// One decision per dossier, in the order the answer gives them back.
    pub decisions: Vec<DecisionBody>,
    /// Only say, for each decision, whether it is possible now.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    pub name: String,
    /// An agency of the workflow, e.g. `acv`.
    pub agency: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub dossier_id: Uuid,
    /// The dossier's `version` as last read.
    #[serde(deserialize_with = "super::integral::unsigned")]
    pub expected_version: u64,
    /// `declarer_laureat` or `refuser`.
    pub action: String,
    /// Why; required to refuse.
    #[serde(default)]
    pub motivation: Option<String>,
}

/// What became of one decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionResult {
    pub dossier_id: Uuid,
    /// The dossier's reference, when it exists.
    pub reference: Option<String>,
    /// Possible (dry run), taken (applied), or refused.
    pub ok: bool,
    /// Why not: the engine's code (`avis_manquant`, `quatre_yeux`…),
    /// `wrong_wave`, `version_conflict` or `dossier_not_found`.
    pub code: Option<String>,
    /// Why not, in French.
    pub detail: Option<String>,
}

/// The answer to a session tried (200) or recorded (201).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommitteeAnswer {
    /// The session's id, once recorded.
    pub id: Option<Uuid>,
    pub wave: u8,
    pub dry_run: bool,
    pub results: Vec<DecisionResult>,
}

/// A 422: a field of the session is wrong (a plain problem naming it), or
/// a decision is refused (`results` then gives every decision's answer).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommitteeProblem {
    #[serde(flatten)]
    pub problem: Problem,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<DecisionResult>>,
}

/// The sessions of a wave.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Committees {
    pub wave: u8,
    pub items: Vec<CommitteeView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommitteeView {
    pub id: Uuid,
    pub date: NaiveDate,
    pub minutes: String,
    pub members: Vec<MemberView>,
    pub decisions: Vec<DecisionView>,
    pub recorded_by: String,
    pub recorded_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub name: String,
    pub agency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub dossier_id: Uuid,
    pub reference: String,
    pub action: String,
    pub motivation: Option<String>,
    /// The version the decision gave the dossier.
    pub version: u64,
}

/// A wave number from the path: 400 when it is not a number, 404 when the
/// campaign has no such wave.
pub struct WavePath(pub u8);

impl FromRequestParts<AppState> for WavePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_field("n", "Numéro de vague illisible."))?;
        let raw = params
            .iter()
            .find(|(name, _)| *name == "n")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let n: u8 = raw.parse().map_err(|_| {
            ApiError::bad_field(
                "n",
                format!("« {raw} » n'est pas un numéro de vague (1, 2, 3…)."),
            )
        })?;
        if !state
            .definition
            .campaign()
            .waves
            .iter()
            .any(|w| w.number == n)
        {
            return Err(ApiError::NotFound {
                detail: format!("La campagne n'a pas de vague {n}."),
            });
        }
        Ok(WavePath(n))
    }
}

/// Record a committee session
///
/// Record a wave's committee session: its decisions are taken all at once
/// or none is. With `"dry_run": true`, only says whether each is possible.
#[utoipa::path(post, path = "/waves/{n}/committees", operation_id = "recordCommittee", tag = "committees",
    params(("n" = u8, Path, description = "Wave number")),
    request_body = CommitteeBody,
    responses(
        (status = 200, description = "Dry run: each decision's answer; nothing written", body = CommitteeAnswer),
        (status = 201, description = "Recorded: every decision taken", body = CommitteeAnswer),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, description = "The caller may not take these decisions", body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "A field is wrong, or a decision is refused: `results` says which and why; nothing written", body = CommitteeProblem),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    WavePath(wave): WavePath,
    ApiJson(body, _): ApiJson<CommitteeBody>,
) -> Result<Response, ApiError> {
    let def = &state.definition;
    let actor = caller.actor;
    check_session(&state, &body)?;
    // Who may record a session: whoever may take every decision it holds
    // (for the AMI, a DAR responsable).
    let mut actions: Vec<&str> = body.decisions.iter().map(|d| d.action.as_str()).collect();
    actions.sort_unstable();
    actions.dedup();
    for action in actions {
        authorize(def, action, &actor).map_err(|r| ApiError::refused(&r, r.explain(def)))?;
    }

    let id = Uuid::new_v4();
    let now = state.now();
    let decided = CommitteeDecision {
        committee_id: id,
        held_on: body.date,
    };
    // What the store need not be asked: a dossier that is not there, or
    // not of this wave. Read outside the session's transaction: a
    // dossier's wave never changes.
    let mut results: Vec<Option<DecisionResult>> = Vec::with_capacity(body.decisions.len());
    let mut dossiers: Vec<Option<Dossier>> = Vec::with_capacity(body.decisions.len());
    for decision in &body.decisions {
        // Need to know: a dossier the recorder may not read is not there.
        let dossier = state
            .store
            .get_dossier(DossierId(decision.dossier_id))
            .await?
            .filter(|d| def.may_read(&actor.agency, &d.programmes));
        let refusal = match &dossier {
            None => Some(refused(
                decision.dossier_id,
                None,
                "dossier_not_found",
                "Aucun dossier ne porte cet identifiant.".into(),
            )),
            Some(d) if d.wave != wave => Some(refused(
                decision.dossier_id,
                Some(d.reference.to_string()),
                "wrong_wave",
                format!(
                    "Le dossier {} est de la vague {} : le comité de la vague {wave} ne peut pas en décider.",
                    d.reference, d.wave
                ),
            )),
            Some(_) => None,
        };
        results.push(refusal);
        dossiers.push(dossier);
    }
    let mut requests = Vec::new();
    let mut asked = Vec::new();
    for (i, decision) in body.decisions.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        requests.push(TransitionRequest {
            definition: def.clone(),
            dossier_id: DossierId(decision.dossier_id),
            expected_version: Some(decision.expected_version),
            command: Order {
                action: decision.action.as_str().into(),
                verdict: None,
                motivation: decision.motivation.as_deref().map(nfc).map(Into::into),
                comment: None,
                content: Content::Committee(decided.clone()),
            },
            principal: Principal::Actor(actor.clone()),
            now,
            idempotency: None,
            respond: Arc::new(|_, _| String::new()),
            arrival: None,
        });
        asked.push(i);
    }
    let mut session = CommitteeSession {
        id,
        wave,
        held_on: body.date,
        minutes: nfc(&body.minutes).to_string(),
        members: body
            .members
            .iter()
            .map(|m| CommitteeMember {
                name: nfc(m.name.trim()).to_string(),
                agency: m.agency.clone(),
            })
            .collect(),
        decisions: Vec::new(),
        recorded_by: actor.id.to_string(),
        recorded_by_name: actor.name.to_string(),
        recorded_at: now,
    };
    let dry_run = body.dry_run || results.iter().any(Option::is_some);
    // The session's decisions as they will be once taken: each dossier's
    // next version.
    session.decisions = asked
        .iter()
        .filter_map(|&i| {
            let d = dossiers[i].as_ref()?;
            let decision = &body.decisions[i];
            Some(CommitteeDecisionRecord {
                dossier_id: d.id,
                reference: d.reference.to_string(),
                programmes: d.programmes.iter().map(ToString::to_string).collect(),
                action: decision.action.clone(),
                motivation: decision.motivation.as_deref().map(|m| nfc(m).to_string()),
                version: decision.expected_version + 1,
            })
        })
        .collect();
    let outcome = state
        .store
        .hold_committee(&session, requests, dry_run)
        .await?;
    if !dry_run {
        state.letters.notify_one();
    }
    for (&i, executed) in asked.iter().zip(outcome.decisions.iter()) {
        let decision = &body.decisions[i];
        let reference = dossiers[i].as_ref().map(|d| d.reference.to_string());
        results[i] = Some(match executed {
            Ok(_) => DecisionResult {
                dossier_id: decision.dossier_id,
                reference,
                ok: true,
                code: None,
                detail: None,
            },
            Err(e) => refusal_of(decision, reference, e)?,
        });
    }
    let results: Vec<DecisionResult> = results.into_iter().flatten().collect();
    if results.iter().any(|r| !r.ok) {
        let refused = results.iter().filter(|r| !r.ok).count();
        let problem = CommitteeProblem {
            problem: Problem {
                kind: "urn:ami:problem:committee_refused".into(),
                title: "Décisions impossibles".into(),
                status: 422,
                detail: format!(
                    "{refused} décision(s) sur {} ne peuvent pas être prises : `results` dit lesquelles et pourquoi. Rien n'a été enregistré.",
                    results.len()
                ),
                code: "committee_refused".into(),
                field: Some("decisions".into()),
                current_version: None,
            },
            results: Some(results),
        };
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_vec(&problem).unwrap_or_default(),
        )
            .into_response());
    }
    let answer = CommitteeAnswer {
        id: outcome.recorded.then_some(id),
        wave,
        dry_run: body.dry_run,
        results,
    };
    let status = if outcome.recorded {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

/// List a wave's committee sessions
///
/// The sessions of a wave, with their decisions (only those on dossiers
/// the caller may read).
#[utoipa::path(get, path = "/waves/{n}/committees", operation_id = "listCommittees", tag = "committees",
    params(("n" = u8, Path, description = "Wave number")),
    responses((status = 200, body = Committees), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    WavePath(wave): WavePath,
) -> Result<Json<Committees>, ApiError> {
    let def = &state.definition;
    let agency = caller.actor.agency.as_str();
    let items = state
        .store
        .committees(wave)
        .await?
        .into_iter()
        .map(|s| CommitteeView {
            id: s.id,
            date: s.held_on,
            minutes: s.minutes,
            members: s
                .members
                .into_iter()
                .map(|m| MemberView {
                    name: m.name,
                    agency: m.agency,
                })
                .collect(),
            decisions: s
                .decisions
                .into_iter()
                .filter(|d| def.may_read(agency, &d.programmes))
                .map(|d| DecisionView {
                    dossier_id: d.dossier_id.0,
                    reference: d.reference,
                    action: d.action,
                    motivation: d.motivation,
                    version: d.version,
                })
                .collect(),
            recorded_by: s.recorded_by_name,
            recorded_at: s.recorded_at,
        })
        .collect();
    Ok(Json(Committees { wave, items }))
}

/// The session's own fields, checked before any dossier is read.
fn check_session(state: &AppState, body: &CommitteeBody) -> Result<(), ApiError> {
    let def = &state.definition;
    let today = state
        .now()
        .with_timezone(&def.campaign().time_zone)
        .date_naive();
    if body.date > today {
        return Err(ApiError::invalid_field(
            "date",
            format!(
                "Le comité ne peut pas s'être réuni le {} : cette date n'est pas encore passée.",
                ami_core::french_date(body.date)
            ),
        ));
    }
    if body.minutes.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "minutes",
            "Le procès-verbal (« minutes ») est obligatoire.",
        ));
    }
    check_text("minutes", Some(&body.minutes))?;
    if body.members.is_empty() {
        return Err(ApiError::invalid_field(
            "members",
            "Un comité compte au moins un membre.",
        ));
    }
    for (i, m) in body.members.iter().enumerate() {
        check_line(&format!("members[{i}].name"), &m.name, true)?;
        if def.agency(&m.agency).is_none() {
            return Err(ApiError::invalid_field(
                &format!("members[{i}].agency"),
                format!(
                    "« {} » n'est pas une direction du circuit ({}).",
                    m.agency,
                    def.agencies()
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if body.decisions.is_empty() {
        return Err(ApiError::invalid_field(
            "decisions",
            "Un comité prend au moins une décision.",
        ));
    }
    if body.decisions.len() > MAX_DECISIONS {
        return Err(ApiError::invalid_field(
            "decisions",
            format!("Un comité prend au plus {MAX_DECISIONS} décisions à la fois."),
        ));
    }
    let committee_actions: Vec<&str> = def.committee_actions().map(|a| a.id.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, d) in body.decisions.iter().enumerate() {
        if !committee_actions.contains(&d.action.as_str()) {
            return Err(ApiError::invalid_field(
                &format!("decisions[{i}].action"),
                format!(
                    "« {} » n'est pas une décision de comité ({}).",
                    d.action,
                    committee_actions.join(", ")
                ),
            ));
        }
        check_text(
            &format!("decisions[{i}].motivation"),
            d.motivation.as_deref(),
        )?;
        if !seen.insert(d.dossier_id) {
            return Err(ApiError::invalid_field(
                &format!("decisions[{i}].dossier_id"),
                format!(
                    "Le dossier {} figure deux fois : une seule décision par dossier.",
                    d.dossier_id
                ),
            ));
        }
    }
    Ok(())
}

fn refused(
    dossier_id: Uuid,
    reference: Option<String>,
    code: &str,
    detail: String,
) -> DecisionResult {
    DecisionResult {
        dossier_id,
        reference,
        ok: false,
        code: Some(code.into()),
        detail: Some(detail),
    }
}

/// A decision's refusal as its result; an error that is not about this
/// decision (the database away) fails the whole request.
fn refusal_of(
    decision: &DecisionBody,
    reference: Option<String>,
    e: &StoreError,
) -> Result<DecisionResult, ApiError> {
    let id = decision.dossier_id;
    Ok(match e {
        StoreError::Rejected {
            rejection,
            explanation,
        } => refused(id, reference, rejection.code(), explanation.clone()),
        StoreError::Conflict { current } => refused(
            id,
            reference,
            "version_conflict",
            match current {
                Some(v) => format!(
                    "Ce dossier a été modifié depuis votre lecture : il est en version {v}, pas {}.",
                    decision.expected_version
                ),
                None => "Ce dossier a été modifié depuis votre lecture.".into(),
            },
        ),
        StoreError::NotFound => refused(
            id,
            reference,
            "dossier_not_found",
            "Aucun dossier ne porte cet identifiant.".into(),
        ),
        other => return Err(other.for_each_caller().into()),
    })
}
