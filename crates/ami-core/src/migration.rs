//! Changing the definition while dossiers are in flight.
//!
//! A campaign's rules change during it: a deadline moves, an avis is added
//! for the last wave, a state is renamed. [`plan`] says, for every open
//! dossier, what the new definition means for it (it carries on as it is,
//! it moves to another state as the new definition's `[migration]
//! state_map` says, or nothing says where it goes and the change would
//! strand it), and which avis it now needs that it did not before.
//! [`migration_event`] records the change in the dossier's journal, so that
//! its history and digest chain show it; the fold of a journal does not
//! depend on the definition, so an old journal folds into the same dossier
//! under any version.

use chrono::{DateTime, Utc};
use smol_str::SmolStr;

use crate::definition::Definition;
use crate::dossier::{Actor, DefinitionChange, Dossier, Event, Payload};
use crate::ids::{ActionId, ProgrammeId, StateId};

pub use crate::definition::MIGRATION_ACTION;

/// What a change of definition means for one open dossier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Its state exists in the new definition: it stays there.
    CarriesOn,
    /// Its state is gone; `[migration] state_map` sends it here.
    Moves {
        /// The state of the new definition it goes to.
        to: StateId,
    },
    /// Its state is gone and nothing says where it goes.
    Stranded,
}

/// One open dossier under the new definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierPlan {
    /// The dossier, as it stands before the change.
    pub dossier: Dossier,
    /// Where it goes.
    pub fate: Fate,
    /// Its programmes the new definition no longer has: it would be
    /// stranded too.
    pub programmes_gone: Vec<ProgrammeId>,
    /// The avis its programmes now require (under the new definition) that
    /// it lacks and that the definition before did not require of it.
    pub avis_now_required: Vec<ActionId>,
    /// A dossier the new definition lets reopen (one « classé sans suite »)
    /// would go back to a state it no longer has, and nothing says where.
    pub reopening_lost: bool,
}

impl DossierPlan {
    /// The change would leave the dossier where no rule of the new
    /// definition applies: the migration must be refused.
    pub fn is_stranded(&self) -> bool {
        self.fate == Fate::Stranded || !self.programmes_gone.is_empty() || self.reopening_lost
    }

    /// The state it is in after the change.
    pub fn new_state(&self) -> Option<&StateId> {
        match &self.fate {
            Fate::CarriesOn => Some(&self.dossier.state),
            Fate::Moves { to } => Some(to),
            Fate::Stranded => None,
        }
    }

    /// What the change means for the dossier, in French and in the
    /// definitions' words.
    pub fn explain(&self, old: &Definition, new: &Definition) -> String {
        let d = &self.dossier;
        let old_state = old.state_label(&d.state);
        let mut text = match &self.fate {
            Fate::CarriesOn => format!("reste à l'état « {} »", new.state_label(&d.state)),
            Fate::Moves { to } => format!(
                "passe de l'état « {old_state} », qui n'existe plus, à « {} »",
                new.state_label(to)
            ),
            Fate::Stranded => format!(
                "bloqué : l'état « {old_state} » n'existe plus et [migration] state_map ne dit pas où il va"
            ),
        };
        if self.reopening_lost {
            let left = d.previous_state.as_deref().unwrap_or_default();
            text += &format!(
                " ; bloqué : une réouverture le ramènerait à l'état « {} », qui n'existe plus, et [migration] state_map ne dit pas où",
                old.state_label(left)
            );
        }
        if !self.programmes_gone.is_empty() {
            let gone: Vec<String> = self
                .programmes_gone
                .iter()
                .map(|p| old.programme(p).map_or(p.to_string(), |p| p.label.clone()))
                .collect();
            text += &format!(" ; bloqué : programme(s) supprimé(s) {}", gone.join(", "));
        }
        for a in &self.avis_now_required {
            let label = new.action(a).map_or(a.to_string(), |a| a.label.clone());
            text += &format!(" ; doit désormais recevoir l'avis « {label} »");
        }
        format!("{} ({}) : {text}", d.reference, d.commune)
    }
}

/// Where a state of the definition before is in the new one: itself, the
/// state `[migration] state_map` sends it to, or nowhere.
fn renamed(new: &Definition, state: &StateId) -> Option<StateId> {
    match new.state(state) {
        Some(s) => Some(s.id.clone()),
        None => new.state_map().get(state.as_str()).cloned(),
    }
}

/// What replacing `old` by `new` means for each of `dossiers`, in the order
/// given: every dossier still open, and every closed one the change touches
/// (its final state renamed, or the state a reopening would lead back to);
/// a closed dossier the change does not touch keeps its history and is
/// left out.
pub fn plan<'a>(
    old: &Definition,
    new: &Definition,
    dossiers: impl IntoIterator<Item = &'a Dossier>,
) -> Vec<DossierPlan> {
    dossiers
        .into_iter()
        .filter_map(|d| {
            let fate = match renamed(new, &d.state) {
                Some(to) if to == d.state => Fate::CarriesOn,
                Some(to) => Fate::Moves { to },
                None => Fate::Stranded,
            };
            // Where a reopening would lead: only a state a reopening of the
            // new definition can leave from cares.
            let previous_moves = d
                .previous_state
                .as_ref()
                .is_some_and(|p| renamed(new, p).as_ref() != Some(p));
            let reopens = match &fate {
                Fate::Stranded => false,
                Fate::CarriesOn => reopenable(new, &d.state),
                Fate::Moves { to } => reopenable(new, to),
            };
            let reopening_lost = reopens
                && d.previous_state
                    .as_ref()
                    .is_some_and(|p| renamed(new, p).is_none());
            if old.is_terminal(&d.state) && fate == Fate::CarriesOn && !(reopens && previous_moves)
            {
                return None;
            }
            let programmes_gone = d
                .programmes
                .iter()
                .filter(|p| new.programme(p).is_none())
                .cloned()
                .collect();
            let required = |def: &Definition| -> Vec<ActionId> {
                def.programmes()
                    .iter()
                    .filter(|p| d.in_programme(&p.id) && d.avis(&p.avis_action).is_none())
                    .map(|p| p.avis_action.clone())
                    .collect()
            };
            let before = required(old);
            let avis_now_required = required(new)
                .into_iter()
                .filter(|a| !before.contains(a))
                .collect();
            Some(DossierPlan {
                dossier: d.clone(),
                fate,
                programmes_gone,
                avis_now_required,
                reopening_lost,
            })
        })
        .collect()
}

/// A reopening of `new` starts from this state.
fn reopenable(new: &Definition, state: &StateId) -> bool {
    new.actions()
        .iter()
        .any(|a| a.effect == crate::Effect::Reopen && a.is_possible_from(state))
}

/// The event that records the change of definition in a dossier's journal,
/// taken by `actor` at `now`; `None` for a stranded dossier.
pub fn migration_event(
    old: &Definition,
    new: &Definition,
    plan: &DossierPlan,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Option<Event> {
    if plan.is_stranded() {
        return None;
    }
    let d = &plan.dossier;
    let to = plan.new_state()?.clone();
    // A reopening leads back to the state left: renamed too, or forgotten
    // when the new definition has no such state.
    let previous_state = d.previous_state.as_ref().and_then(|p| renamed(new, p));
    Some(Event {
        dossier_id: d.id,
        seq: d.version + 1,
        action: ActionId::engine(MIGRATION_ACTION),
        from: Some(d.state.clone()),
        to,
        actor: actor.clone(),
        at: now,
        verdict: None,
        motivation: Some(SmolStr::from(format!(
            "Définition {} remplacée par {} : {}",
            old.version(),
            new.version(),
            plan.explain(old, new)
        ))),
        comment: None,
        definition_version: SmolStr::new(new.version()),
        payload: Payload::Migration(DefinitionChange {
            from_version: SmolStr::new(old.version()),
            to_version: SmolStr::new(new.version()),
            previous_state,
        }),
    })
}
