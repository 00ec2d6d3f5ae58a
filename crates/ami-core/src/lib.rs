//! `ami-core`: the pure engine of the AMI "Au cœur des territoires" review
//! workflow. A workflow is data ([`Definition`], loaded from TOML and checked);
//! a dossier is the fold of its events ([`apply`], [`fold`]); [`decide`] says
//! whether an actor may take an action now and returns the event, or a
//! [`Rejection`] with a precise reason. No I/O, no clock: callers pass `now`.

pub mod definition;
pub mod diff;
pub mod dossier;
pub mod engine;
pub mod french;
pub mod mermaid;
pub mod text;

pub use definition::{
    file_type, ActionDef, Campaign, Definition, DefinitionError, Effect, FileType, Guard, PieceDef,
    Placement, StateDef, DEFAULT_DEFINITION_TOML, FILE_TYPES,
};
pub use dossier::{
    apply, apply_in_place, fold, ActionMap, ActionMapIter, Actor, Avis, Command, ComplementRequest,
    CreatedDossier, Dossier, DossierId, Event, FoldError, NewDossier, Payload, Piece, PieceFile,
    PiecesRequested, Porteur,
};
pub use engine::{
    authorize, available_actions, awaiting, decide, held_back_actions, Rejection, PORTEUR,
};
pub use french::{french_date, french_instant, french_instant_seconds};
pub use mermaid::to_mermaid;
