//! `ami-core`: the pure engine of the AMI "Au cœur des territoires" review
//! workflow. A workflow is data ([`Definition`], loaded from TOML and checked);
//! a dossier is the fold of its events ([`apply`], [`fold`]); [`decide`] says
//! whether an actor may take an action now and returns the event, or a
//! [`Rejection`] with a precise reason; [`deadlines()`] gives, for each agency
//! a dossier waits on, the last day to act, counted in working days of the
//! French calendar ([`calendar`]). No I/O, no clock: callers pass `now`.
//!
//! # Example
//!
//! A town's dossier deposited with its two files, instructed by the DAR;
//! what each person may do next; the journal folded back into the dossier.
//!
//! ```
//! use ami_core::{apply, available_actions, decide, fold, Actor, Command, Definition};
//! use ami_core::{DossierId, NewDossier, Piece, Porteur, Target};
//! use chrono::{TimeZone, Utc};
//!
//! // Every identifier comes from the definition: a word it lacks is `None`.
//! let def = Definition::ami2();
//! assert!(def.action_id("valider").is_none());
//! let person = |id: &str, agency: &str, role: &str| Actor {
//!     id: id.into(), name: id.into(),
//!     agency: def.agency_id(agency).unwrap(), role: def.role_id(role).unwrap(),
//! };
//! let (dar, acv) = (person("camille", "dar", "agent"), person("sophie", "acv", "agent"));
//! let now = Utc.with_ymd_and_hms(2020, 10, 1, 8, 0, 0).unwrap();
//! let file = |kind: &str| Piece {
//!     kind: def.piece_kind(kind).unwrap(), filename: format!("{kind}.pdf").into(), size: Some(1_000),
//!     sha256: Some("ab".repeat(32).into()), media_type: Some("application/pdf".into()),
//! };
//! let deposit = Command::deposit(def.action_id("deposer").unwrap(), NewDossier {
//!     id: DossierId(uuid::Uuid::from_u128(1)),
//!     commune: "Nevers".into(), code_insee: "58194".into(),
//!     porteur: Porteur { nom: "Ville de Nevers".into(), email: None },
//!     programmes: vec![def.programme_id("acv").unwrap()], received_at: now,
//!     pieces: vec![file("dossier_candidature"), file("budget_previsionnel")],
//! });
//!
//! // The caller keeps the campaign's dossiers: it numbers the new one.
//! let new = Target::New { number: 1, same_commune: &[] };
//! let created = decide(&def, new, &deposit, &dar, now)?;
//! let dossier = apply(None, &created).unwrap();
//! assert_eq!((dossier.reference.as_str(), dossier.state.as_str()), ("AMI2-V1-0001", "recu"));
//!
//! // ACV may not instruct, and is told why in French.
//! let instruire = Command::verdict(
//!     def.action_id("instruire").unwrap(),
//!     def.verdict_id("favorable").unwrap(),
//! );
//! let refusal = decide(&def, Target::Dossier(&dossier), &instruire, &acv, now).unwrap_err();
//! assert_eq!(refusal.code(), "wrong_agency");
//! assert!(refusal.explain(&def).contains("Cnam – Direction de l'action régionale"));
//!
//! let instructed = decide(&def, Target::Dossier(&dossier), &instruire, &dar, now)?;
//! let dossier = apply(Some(dossier), &instructed).unwrap();
//! let next: Vec<&str> = available_actions(&def, &dossier, &acv).iter().map(|a| a.id.as_str()).collect();
//! assert_eq!(next, ["avis_acv"]);
//!
//! assert_eq!(fold([&created, &instructed]).unwrap(), Some(dossier));
//! # Ok::<(), ami_core::Rejection>(())
//! ```
//!
//! `cargo run -p ami-core --example campaign` runs a small campaign the same
//! way.

#![warn(missing_docs)]

pub mod calendar;
pub mod communes;
pub mod deadlines;
pub mod definition;
pub mod diff;
pub mod dossier;
pub mod engine;
pub mod french;
pub mod ids;
pub mod mermaid;
pub mod migration;
pub mod text;

pub use calendar::{
    add_working_days, easter_sunday, is_working_day, public_holidays, Calendar, PublicHoliday,
};
pub use communes::{
    check_commune, commune, departement, region, Commune, CommuneProblem, Departement, Region, Zone,
};
pub use deadlines::{deadlines, AgencyDeadline};
pub use definition::{
    file_type, ActionDef, AgencyDef, Campaign, Deadline, DeadlineStart, Definition,
    DefinitionError, Effect, FileType, Guard, PieceDef, Placement, Programme, RoleDef, StateDef,
    VerdictDef, Wave, DEFAULT_DEFINITION_TOML, FILE_TYPES,
};
pub use dossier::{
    apply, apply_in_place, fold, Actor, Avis, Command, CommitteeDecision, ComplementRequest,
    CreatedDossier, DefinitionChange, Deposit, Dossier, DossierId, Event, FoldError, NewDossier,
    Payload, Piece, PieceFile, PiecesRequested, Porteur,
};
pub use engine::{
    authorize, available_actions, awaiting, decide, held_back_actions, may_take, Rejection, Target,
    PORTEUR,
};
pub use french::{french_date, french_instant, french_instant_seconds};
pub use ids::{ActionId, AgencyId, PieceKind, ProgrammeId, RoleId, StateId, VerdictId};
pub use mermaid::to_mermaid;
