//! Deadlines on dossiers run through the engine at fixed instants: the DAR
//! instructs within 10 working days of reception, each avis comes within 15
//! of the instruction, a deadline is overdue from the day after its last
//! day in Paris, and none runs while the dossier waits on its porteur or is
//! closed.

mod common;

use ami_core::{
    apply, awaiting, deadlines, decide, Actor, AgencyDeadline, Calendar, Command, Definition,
    Dossier, DEFAULT_DEFINITION_TOML,
};
use chrono::{DateTime, NaiveDate, Utc};
use common::*;

fn day(text: &str) -> NaiveDate {
    text.parse()
        .unwrap_or_else(|e| panic!("bad date {text}: {e}"))
}

/// A dossier of `programmes` with both pièces, received (and deposited) at
/// `received_at`.
fn received(def: &Definition, programmes: &[&str], received_at: &str) -> Dossier {
    let mut new = new_dossier(7, programmes, BOTH_PIECES);
    new.received_at = at(received_at);
    take(def, None, &deposer(new), &dar_agent(), received_at)
}

/// `command` taken by `who` at `instant`, which the engine must accept.
fn take(
    def: &Definition,
    dossier: Option<Dossier>,
    command: &Command,
    who: &Actor,
    instant: &str,
) -> Dossier {
    let target = target(dossier.as_ref(), command);
    let event = decide(def, target, command, who, at(instant))
        .unwrap_or_else(|r| panic!("`{}` refused: {r}", command.action()));
    apply(dossier, &event).expect("an accepted event folds")
}

/// Each deadline as `agency action since due`.
fn said(list: &[AgencyDeadline]) -> Vec<String> {
    list.iter()
        .map(|d| {
            let since = d.since.to_rfc3339();
            format!("{} {} {since} {}", d.agency, d.action, d.due)
        })
        .collect()
}

fn only(def: &Definition, dossier: &Dossier) -> AgencyDeadline {
    let mut list = deadlines(def, dossier);
    assert_eq!(list.len(), 1, "{:?}", said(&list));
    list.remove(0)
}

fn instant(text: &str) -> DateTime<Utc> {
    at(text)
}

#[test]
fn a_dossier_received_is_due_for_instruction_10_working_days_after_its_reception_day() {
    // Arrange: Thursday 5 November 2020; 11 November is a holiday.
    let def = Definition::ami2();

    // Act
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");

    // Assert
    assert_eq!(
        said(&deadlines(&def, &dossier)),
        ["dar instruire 2020-11-05T09:00:00+00:00 2020-11-20"]
    );
    let d = only(&def, &dossier);
    assert_eq!((d.working_days, d.calendar), (10, Calendar::France));
}

#[test]
fn the_reception_day_is_the_one_in_paris_not_in_utc() {
    // Arrange: 00:30 in Paris on 5 November is still 4 November in UTC.
    let def = Definition::ami2();

    // Act
    let dossier = received(&def, &["acv"], "2020-11-05T00:30:00+01:00");

    // Assert
    assert_eq!(
        dossier.received_at.to_rfc3339(),
        "2020-11-04T23:30:00+00:00"
    );
    assert_eq!(only(&def, &dossier).due, day("2020-11-20"));
}

#[test]
fn a_deadline_is_overdue_from_the_first_instant_of_the_next_day_in_paris() {
    // Arrange: due on Friday 20 November 2020.
    let def = Definition::ami2();
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");
    let deadline = only(&def, &dossier);

    // Act
    let overdue = [
        "2020-11-05T10:00:00+01:00",
        "2020-11-20T00:00:00+01:00",
        "2020-11-20T23:59:59+01:00",
        // 23:00 UTC on the 20th is already the 21st in Paris.
        "2020-11-20T23:00:00+00:00",
        "2020-11-21T00:00:00+01:00",
        "2021-03-01T08:00:00+01:00",
    ]
    .map(|t| deadline.overdue(instant(t)));

    // Assert
    assert_eq!(overdue, [false, false, false, true, true, true]);
}

#[test]
fn in_summer_the_next_day_starts_at_22_00_utc() {
    // Arrange: received Thursday 1 October 2020; due Thursday 15 October.
    let def = Definition::ami2();
    let dossier = received(&def, &["ti"], "2020-10-01T10:00:00+02:00");
    let deadline = only(&def, &dossier);

    // Act
    let overdue = ["2020-10-15T21:59:59+00:00", "2020-10-15T22:00:00+00:00"]
        .map(|t| deadline.overdue(instant(t)));

    // Assert
    assert_eq!(deadline.due, day("2020-10-15"));
    assert_eq!(overdue, [false, true]);
}

#[test]
fn an_instructed_dossier_awaits_its_avis_within_15_working_days_of_the_instruction() {
    // Arrange: received in November, instructed on Thursday 17 December
    // 2020; Christmas and New Year's Day fall on Fridays.
    let def = Definition::ami2();
    let dossier = received(&def, &["ti"], "2020-11-05T10:00:00+01:00");

    // Act
    let instruire = verdict("instruire", "favorable");
    let dossier = take(
        &def,
        Some(dossier),
        &instruire,
        &dar_agent(),
        "2020-12-17T16:00:00+01:00",
    );

    // Assert
    assert_eq!(
        said(&deadlines(&def, &dossier)),
        ["ti avis_ti 2020-12-17T15:00:00+00:00 2021-01-11"]
    );
}

#[test]
fn a_dossier_of_both_programmes_awaits_acv_then_ti_each_counted_from_the_instruction() {
    // Arrange
    let def = Definition::ami2();
    let dossier = received(&def, &["acv", "ti"], "2020-11-05T10:00:00+01:00");
    let instruire = verdict("instruire", "favorable");
    let dossier = take(
        &def,
        Some(dossier),
        &instruire,
        &dar_agent(),
        "2020-12-17T16:00:00+01:00",
    );
    let waiting_on_acv = said(&deadlines(&def, &dossier));

    // Act: ACV answers late, in February.
    let avis_acv = avis("avis_acv", "favorable");
    let dossier = take(
        &def,
        Some(dossier),
        &avis_acv,
        &acv_agent(),
        "2021-02-01T09:00:00+01:00",
    );

    // Assert: TI's deadline ran from the instruction all along.
    assert_eq!(
        waiting_on_acv,
        ["acv avis_acv 2020-12-17T15:00:00+00:00 2021-01-11"]
    );
    assert_eq!(awaiting(&def, &dossier), ["ti"]);
    let ti = only(&def, &dossier);
    assert_eq!(ti.due, day("2021-01-11"));
    assert!(ti.overdue(instant("2021-02-01T09:00:00+01:00")));
}

#[test]
fn no_deadline_once_every_avis_is_given_or_the_dossier_is_closed() {
    // Arrange
    let def = Definition::ami2();
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");
    let instruire = verdict("instruire", "favorable");
    let instructed = take(
        &def,
        Some(dossier),
        &instruire,
        &dar_agent(),
        "2020-11-06T10:00:00+01:00",
    );

    // Act
    let avis_acv = avis("avis_acv", "favorable");
    let avis_given = take(
        &def,
        Some(instructed.clone()),
        &avis_acv,
        &acv_agent(),
        "2020-11-09T10:00:00+01:00",
    );
    let laureat = take(
        &def,
        Some(avis_given.clone()),
        &cmd("declarer_laureat"),
        &dar_responsable(),
        "2020-11-10T10:00:00+01:00",
    );
    let refuser = cmd("refuser").with_motivation("Hors critères");
    let refused = take(
        &def,
        Some(instructed),
        &refuser,
        &dar_responsable(),
        "2020-11-09T10:00:00+01:00",
    );

    // Assert: the DAR is awaited for the lauréat, but that step has no deadline.
    assert_eq!(awaiting(&def, &avis_given), ["dar"]);
    for d in [&avis_given, &laureat, &refused] {
        assert_eq!(
            said(&deadlines(&def, d)),
            Vec::<String>::new(),
            "{}",
            d.state
        );
    }
}

#[test]
fn no_agency_deadline_while_a_complement_is_open_and_the_same_one_after() {
    // Arrange
    let def = Definition::ami2();
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");
    let before = deadlines(&def, &dossier);
    let budget = def.piece_kind(BUDGET).expect("a pièce");
    let demander = Command::request_pieces(
        action("demander_complement"),
        vec![budget],
        day("2020-11-30"),
    )
    .with_motivation("Budget illisible");

    // Act
    let asked = take(
        &def,
        Some(dossier),
        &demander,
        &dar_agent(),
        "2020-11-06T10:00:00+01:00",
    );
    let answered = take(
        &def,
        Some(asked.clone()),
        &ajouter_piece(BUDGET),
        &dar_agent(),
        "2020-11-12T10:00:00+01:00",
    );

    // Assert
    assert_eq!(awaiting(&def, &asked), ["porteur"]);
    assert!(deadlines(&def, &asked).is_empty());
    assert_eq!(deadlines(&def, &answered), before);
}

#[test]
fn a_dossier_reopened_runs_against_its_deadline_as_it_was() {
    // Arrange
    let def = Definition::ami2();
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");
    let before = deadlines(&def, &dossier);
    let classer = cmd("classer_sans_suite").with_motivation("Retrait de la commune");
    let closed = take(
        &def,
        Some(dossier),
        &classer,
        &dar_responsable(),
        "2020-11-09T10:00:00+01:00",
    );

    // Act
    let rouvrir = cmd("rouvrir").with_motivation("La commune confirme");
    let reopened = take(
        &def,
        Some(closed.clone()),
        &rouvrir,
        &dar_responsable(),
        "2020-12-01T10:00:00+01:00",
    );

    // Assert
    assert!(deadlines(&def, &closed).is_empty());
    assert_eq!(deadlines(&def, &reopened), before);
    assert!(before[0].overdue(instant("2020-12-01T10:00:00+01:00")));
}

#[test]
fn an_agency_is_given_a_deadline_only_when_awaiting_lists_it() {
    // Every dossier of the everyday paths: each deadline's agency is awaited.
    let def = Definition::ami2();
    for programmes in [&["acv"][..], &["ti"], &["acv", "ti"]] {
        let (d, _) = all_avis_given(&def, programmes);
        let (i, _) = instructed(&def, programmes);
        let (r, _) = deposited(&def, programmes, BOTH_PIECES);
        for dossier in [d, i, r] {
            let waits = awaiting(&def, &dossier);
            for deadline in deadlines(&def, &dossier) {
                assert!(waits.contains(&deadline.agency.as_str()), "{programmes:?}");
            }
        }
    }
}

#[test]
fn in_alsace_moselle_good_friday_moves_the_deadline_a_day() {
    // Arrange: instructed on Wednesday 31 March 2021; Good Friday is 2 April.
    let text =
        DEFAULT_DEFINITION_TOML.replace("calendar = \"france\"", "calendar = \"alsace_moselle\"");
    let alsace = Definition::from_toml(&text).expect("valid");
    let france = Definition::ami2();
    let instruct = |def: &Definition| {
        let dossier = received(def, &["acv"], "2021-03-29T10:00:00+02:00");
        let instruire = verdict("instruire", "favorable");
        take(
            def,
            Some(dossier),
            &instruire,
            &dar_agent(),
            "2021-03-31T10:00:00+02:00",
        )
    };

    // Act
    let dues = [&france, &alsace].map(|def| only(def, &instruct(def)).due);

    // Assert
    assert_eq!(dues, [day("2021-04-22"), day("2021-04-23")]);
}

#[test]
fn a_deadline_from_an_action_the_dossier_has_not_seen_gives_none() {
    // Arrange: declarer_laureat due 5 working days after the TI avis, on an
    // ACV-only dossier (which never gets one).
    let text = DEFAULT_DEFINITION_TOML.replace(
        "distinct_from = \"instruire\"\n",
        "distinct_from = \"instruire\"\ndeadline = { working_days = 5, from = \"avis_ti\" }\n",
    );
    let def = Definition::from_toml(&text).expect("valid");
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");
    let instruire = verdict("instruire", "favorable");
    let dossier = take(
        &def,
        Some(dossier),
        &instruire,
        &dar_agent(),
        "2020-11-06T10:00:00+01:00",
    );
    let avis_acv = avis("avis_acv", "favorable");

    // Act
    let dossier = take(
        &def,
        Some(dossier),
        &avis_acv,
        &acv_agent(),
        "2020-11-09T10:00:00+01:00",
    );

    // Assert
    assert_eq!(awaiting(&def, &dossier), ["dar"]);
    assert!(deadlines(&def, &dossier).is_empty());
}

#[test]
fn a_deadline_serializes_with_its_last_day_and_time_zone() {
    let def = Definition::ami2();
    let dossier = received(&def, &["acv"], "2020-11-05T10:00:00+01:00");
    let json = serde_json::to_value(only(&def, &dossier)).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "agency": "dar", "action": "instruire", "since": "2020-11-05T09:00:00Z",
            "working_days": 10, "due": "2020-11-20", "time_zone": "Europe/Paris",
            "calendar": "france",
        })
    );
}
