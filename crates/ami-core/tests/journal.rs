//! The journal: what an event records, the fold that refuses an event
//! that does not follow, and a dossier that reads back from JSON as it was.

mod common;

use ami_core::{apply, apply_in_place, decide, fold, Dossier, DossierId, Event, FoldError};
use ami_core::{Payload, Target};
use common::*;
use uuid::Uuid;

#[test]
fn an_event_carries_everything_the_journal_needs() {
    let def = ami2();
    let (d, _) = deposited(def, &["acv"], BOTH_PIECES);
    let command = verdict("instruire", "reserve")
        .with_motivation("Budget à préciser")
        .with_comment("Vu en comité");
    let clock = at("2021-01-15T14:30:00+01:00");
    let event = decide(def, Target::Dossier(&d), &command, &dar_agent(), clock).expect("accepted");
    let expected = Event {
        dossier_id: DossierId(Uuid::from_u128(7)),
        seq: 2,
        action: action("instruire"),
        from: def.state_id("recu"),
        to: def.state_id("instruit").expect("instruit"),
        actor: dar_agent(),
        at: clock,
        verdict: def.verdict_id("reserve"),
        motivation: Some("Budget à préciser".into()),
        comment: Some("Vu en comité".into()),
        definition_version: "ami2-2020.2".into(),
        payload: Payload::None,
    };
    assert_eq!(event, expected);
    // a_creation_event_carries_the_definition_version_and_the_dossier
    let new = new_dossier(7, &["acv", "ti"], BOTH_PIECES);
    let command = deposer(new.clone());
    let e = decide(def, target(None, &command), &command, &dar_agent(), now()).expect("accepted");
    let Payload::Create(created) = &e.payload else {
        panic!("a creation carries the dossier");
    };
    let got = (
        e.dossier_id,
        e.seq,
        e.action.as_str(),
        &e.actor,
        e.at,
        &e.verdict,
    );
    assert_eq!(got, (new.id, 1, "deposer", &dar_agent(), now(), &None));
    let got = (
        e.definition_version.as_str(),
        &created.dossier,
        created.number,
    );
    assert_eq!(got, ("ami2-2020.2", &new, 7));
}

#[test]
fn apply_and_fold_refuse_an_event_that_does_not_follow() {
    let def = ami2();
    let out_of_sequence = |(dossier_id, seq, version)| {
        let error = FoldError::OutOfSequence {
            dossier_id,
            seq,
            version,
        };
        Err::<Dossier, _>(error)
    };
    let no_events: [&Event; 0] = [];
    assert_eq!(
        fold(no_events),
        Ok(None),
        "folding_an_empty_journal_gives_no_dossier"
    );
    // apply_rejects_an_event_that_skips_a_sequence_number
    let (_, events) = all_avis_given(def, &["acv"]);
    let created = apply(None, &events[0]).expect("a creation folds");
    let skips = apply(Some(created.clone()), &events[2]);
    assert_eq!(skips, out_of_sequence((created.id, 3, 1)));
    let folded = fold([&events[0], &events[2]]).map(|_| ());
    assert_eq!(folded, skips.map(|_| ()));
    // apply_rejects_an_event_applied_twice
    let (d, events) = instructed(def, &["acv"]);
    assert_eq!(
        apply(Some(d.clone()), &events[1]),
        out_of_sequence((d.id, 2, 2))
    );
    // apply_rejects_a_first_event_that_is_not_a_creation
    let not_a_creation = Err(FoldError::NotACreation(events[1].dossier_id));
    assert_eq!(apply(None, &events[1]), not_a_creation);
    // apply_rejects_a_creation_whose_sequence_number_is_not_one
    let mut creation = events[0].clone();
    creation.seq = 2;
    let not_one = out_of_sequence((creation.dossier_id, 2, 0));
    assert_eq!(apply(None, &creation), not_one);
    // apply_rejects_an_event_of_another_dossier
    let (recu, _) = deposited(def, &["acv"], BOTH_PIECES);
    let mut stray = events[1].clone();
    stray.dossier_id = DossierId(Uuid::from_u128(99));
    let (dossier_id, event_dossier, seq) = (recu.id, stray.dossier_id, 2);
    let other = FoldError::WrongDossier {
        dossier_id,
        event_dossier,
        seq,
    };
    assert_eq!(apply(Some(recu), &stray), Err(other));
    // apply_in_place_gives_the_same_dossier_as_apply
    let (both, journal) = instructed(def, &["acv", "ti"]);
    let mut in_place = apply(None, &journal[0]).expect("a creation folds");
    apply_in_place(&mut in_place, &journal[1]).expect("folds");
    assert_eq!(in_place, both);
    // apply_in_place_leaves_the_dossier_unchanged_when_the_event_does_not_follow
    let mut unchanged = d.clone();
    let error = apply_in_place(&mut unchanged, &events[1]).map_err(|e| e.to_string());
    let message = format!("l'événement 2 du dossier {} ne suit pas la version 2", d.id);
    assert_eq!((error, unchanged), (Err(message), d));
}

#[test]
fn a_dossier_read_back_from_json_or_copied_is_the_same() {
    let def = ami2();
    let (dossier, _) = all_avis_given(def, &["acv", "ti"]);
    let json = serde_json::to_value(&dossier).expect("serializes");
    let avis = json["avis"].as_object().expect("an object");
    assert_eq!(join(avis.keys()), "avis_acv avis_ti instruire");
    let (agency, instructor) = (&avis["avis_ti"]["agency"], &json["actors"]["instruire"]);
    assert_eq!(
        (agency.as_str(), instructor.as_str()),
        (Some("ti"), Some("dar-agent-1"))
    );
    let back: Dossier = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, dossier);
    // a_copied_dossier_takes_its_next_action_like_the_original
    let declare = |d: Dossier| {
        let command = cmd("declarer_laureat");
        let event = decide(
            def,
            Target::Dossier(&d),
            &command,
            &dar_responsable(),
            now(),
        )
        .expect("accepted");
        apply(Some(d), &event).expect("folds")
    };
    let (original, copy) = (declare(dossier.clone()), declare(dossier));
    assert_eq!(copy, original);
    let actors = join(copy.actions_taken().map(|(a, _)| a));
    assert_eq!(
        actors,
        "avis_acv avis_ti declarer_laureat deposer instruire"
    );
}
