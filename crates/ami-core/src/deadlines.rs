//! The deadlines a dossier runs against: for each agency it waits on, the
//! last day to take the awaited action, in working days of the campaign's
//! calendar. Pure: the caller supplies "now" to [`AgencyDeadline::overdue`].

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::{checked_add_working_days, Calendar};
use crate::definition::{DeadlineStart, Definition};
use crate::dossier::Dossier;
use crate::engine::{awaiting, waits_on};
use crate::ids::{ActionId, AgencyId};

/// The last day an agency has to take the action a dossier waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgencyDeadline {
    /// The agency the dossier waits on.
    pub agency: AgencyId,
    /// The action it must take (`instruire`, `avis_acv`).
    pub action: ActionId,
    /// When the count started: the dossier's reception, or the last time
    /// the action the deadline counts from was taken.
    pub since: DateTime<Utc>,
    /// How many working days the definition gives.
    pub working_days: u32,
    /// The last day, in the campaign's time zone: on time until its end.
    pub due: NaiveDate,
    /// The campaign's time zone, in which `due` is a day.
    pub time_zone: Tz,
    /// The calendar whose working days were counted.
    pub calendar: Calendar,
}

impl AgencyDeadline {
    /// The day `due` is over: today, in the campaign's time zone, is after
    /// it (on `due` itself the agency is still on time).
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        now.with_timezone(&self.time_zone).date_naive() > self.due
    }
}

/// The deadlines of `dossier`, one per agency it waits on ([`awaiting`])
/// whose awaited `next_step` action carries a deadline, in the order
/// `awaiting` lists them. None while the dossier is final or waits on its
/// porteur (a « demande de complément » is open: the agencies' deadlines
/// run on as they were, and show again once it closes).
///
/// The count starts on the day (in the campaign's time zone) of the
/// dossier's reception, or of the last time the action the deadline names
/// was taken; a dossier that lacks that action (a definition changed under
/// it) has no deadline for it. When an agency waits on several actions
/// with deadlines, the earliest is given.
///
/// ```
/// use ami_core::{apply, deadlines, decide, Actor, Command, Definition, DossierId, NewDossier, Porteur, Target};
/// use chrono::{NaiveDate, TimeZone, Utc};
///
/// let def = Definition::ami2();
/// let dar = Actor {
///     id: "camille".into(), name: "Camille".into(),
///     agency: def.agency_id("dar").unwrap(), role: def.role_id("agent").unwrap(),
/// };
/// // Thursday 5 November 2020, 10:00 in Paris; 11 November is a holiday.
/// let received_at = Utc.with_ymd_and_hms(2020, 11, 5, 9, 0, 0).unwrap();
/// let deposit = Command::deposit(def.action_id("deposer").unwrap(), NewDossier {
///     id: DossierId(uuid::Uuid::from_u128(1)),
///     commune: "Nevers".into(), code_insee: "58194".into(),
///     porteur: Porteur { nom: "Ville de Nevers".into(), email: None },
///     programmes: vec![def.programme_id("acv").unwrap()], received_at, pieces: vec![],
/// });
/// let event = decide(&def, Target::New { number: 1, same_commune: &[] }, &deposit, &dar, received_at)?;
/// let dossier = apply(None, &event).unwrap();
///
/// let due = &deadlines(&def, &dossier)[0];
/// assert_eq!((due.agency.as_str(), due.action.as_str()), ("dar", "instruire"));
/// assert_eq!(due.due, NaiveDate::from_ymd_opt(2020, 11, 20).unwrap());
/// assert!(!due.overdue(Utc.with_ymd_and_hms(2020, 11, 20, 22, 59, 59).unwrap()));
/// assert!(due.overdue(Utc.with_ymd_and_hms(2020, 11, 20, 23, 0, 0).unwrap()));
/// # Ok::<(), ami_core::Rejection>(())
/// ```
pub fn deadlines(def: &Definition, dossier: &Dossier) -> Vec<AgencyDeadline> {
    let campaign = def.campaign();
    let (tz, calendar) = (campaign.time_zone, campaign.calendar);
    let mut out: Vec<AgencyDeadline> = Vec::new();
    if dossier.complement.is_some() {
        // `awaiting` names the porteur alone, whatever the agencies are called.
        return out;
    }
    for agency in awaiting(def, dossier) {
        let due = def
            .actions()
            .iter()
            .filter(|a| a.next_step && a.agency == agency)
            .filter_map(|a| a.deadline.as_ref().map(|d| (a, d)))
            .filter(|(a, _)| waits_on(def, dossier, a))
            .filter_map(|(a, d)| {
                let since = match &d.from {
                    DeadlineStart::Reception => dossier.received_at,
                    DeadlineStart::Action(from) => dossier.avis_of(from)?.at,
                };
                let start = since.with_timezone(&tz).date_naive();
                Some(AgencyDeadline {
                    agency: a.agency.clone(),
                    action: a.id.clone(),
                    since,
                    working_days: d.working_days,
                    due: checked_add_working_days(start, d.working_days, calendar)?,
                    time_zone: tz,
                    calendar,
                })
            })
            // The first of the earliest, in definition order.
            .reduce(|first, next| if next.due < first.due { next } else { first });
        out.extend(due);
    }
    out
}
