//! Fixtures shared by the integration tests of `ami-core`: actors, dossiers
//! and a few helpers to run a dossier through the default workflow.
#![allow(dead_code)]

use std::sync::OnceLock;

use ami_core::{
    apply, decide, ActionId, Actor, Command, Definition, Dossier, DossierId, Event, NewDossier,
    Piece, Porteur, Rejection, Target,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The default definition, loaded once: the fixtures take their
/// identifiers from it.
pub fn ami2() -> &'static Definition {
    static AMI2: OnceLock<Definition> = OnceLock::new();
    AMI2.get_or_init(Definition::ami2)
}

/// The identifier of an action of the default definition.
pub fn action(id: &str) -> ActionId {
    ami2()
        .action_id(id)
        .unwrap_or_else(|| panic!("no action `{id}` in ami2"))
}

/// A command of the default definition that carries nothing.
pub fn cmd(id: &str) -> Command {
    Command::transition(action(id))
}

/// A command of the default definition with a verdict.
pub fn verdict(id: &str, verdict: &str) -> Command {
    let v = ami2()
        .verdict_id(verdict)
        .unwrap_or_else(|| panic!("no verdict `{verdict}` in ami2"));
    Command::verdict(action(id), v)
}

pub const CANDIDATURE: &str = "dossier_candidature";
pub const BUDGET: &str = "budget_previsionnel";
pub const BOTH_PIECES: &[&str] = &[CANDIDATURE, BUDGET];

/// An instant written with its offset, e.g. `2020-11-06T23:59:59+01:00`.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text}: {e}"))
        .with_timezone(&Utc)
}

/// The clock of the tests: after the campaign, so that every reception date
/// inside it is in the past.
pub fn now() -> DateTime<Utc> {
    at("2021-09-01T10:00:00+02:00")
}

/// A reception date inside wave 1.
pub fn in_wave_1() -> DateTime<Utc> {
    at("2020-10-01T10:00:00+02:00")
}

/// A person of an agency and role of `def`.
pub fn actor_of(def: &Definition, id: &str, agency: &str, role: &str) -> Actor {
    Actor {
        id: id.into(),
        name: format!("Personne {id}").into(),
        agency: def
            .agency_id(agency)
            .unwrap_or_else(|| panic!("no agency `{agency}`")),
        role: def
            .role_id(role)
            .unwrap_or_else(|| panic!("no role `{role}`")),
    }
}

/// A person of an agency and role of the default definition.
pub fn actor(id: &str, agency: &str, role: &str) -> Actor {
    actor_of(ami2(), id, agency, role)
}

/// The DAR agent who deposits and instructs in the fixtures.
pub fn dar_agent() -> Actor {
    actor("dar-agent-1", "dar", "agent")
}

pub fn dar_responsable() -> Actor {
    actor("dar-resp-1", "dar", "responsable")
}

pub fn acv_agent() -> Actor {
    actor("acv-agent-1", "acv", "agent")
}

pub fn ti_agent() -> Actor {
    actor("ti-agent-1", "ti", "agent")
}

/// A received pièce of the default definition (or, for the tests of an
/// unknown one, of [`stranger`]).
pub fn piece(kind: &str) -> Piece {
    Piece {
        kind: ami2()
            .piece_kind(kind)
            .or_else(|| stranger().piece_kind(kind))
            .unwrap_or_else(|| panic!("no pièce `{kind}`")),
        filename: format!("{kind}.pdf").into(),
        size: Some(12_345),
        sha256: Some("ab".repeat(32).into()),
        media_type: Some("application/pdf".into()),
    }
}

/// The dossier a town sends. In the fixtures a dossier's id is its number
/// (see [`number_of`]).
pub fn new_dossier(number: u64, programmes: &[&str], pieces: &[&str]) -> NewDossier {
    NewDossier {
        id: DossierId(Uuid::from_u128(number as u128)),
        commune: "Saint-Flour".into(),
        code_insee: "15187".into(),
        porteur: Porteur {
            nom: "Mairie de Saint-Flour".into(),
            email: Some("mairie@example.org".into()),
        },
        programmes: programmes
            .iter()
            .map(|p| ami2().programme_id(p).unwrap_or_else(|| wrong_programme(p)))
            .collect(),
        received_at: in_wave_1(),
        pieces: pieces.iter().map(|k| piece(k)).collect(),
    }
}

/// A programme id that no definition has, for the deposits that must be
/// refused for it: only a journal can name one.
pub fn wrong_programme(id: &str) -> ami_core::ProgrammeId {
    serde_json::from_value(serde_json::Value::from(id)).expect("a programme id")
}

/// The number of a fixture's dossier: its id (see [`new_dossier`]).
pub fn number_of(command: &Command) -> u64 {
    match command {
        Command::Deposit(d) => d.dossier.id.0.as_u128() as u64,
        _ => 0,
    }
}

pub fn deposer(new: NewDossier) -> Command {
    Command::deposit(action("deposer"), new)
}

pub fn ajouter_piece(kind: &str) -> Command {
    Command::attach_piece(action("ajouter_piece"), piece(kind))
}

/// What a command is decided on: the dossier, or a new one numbered as the
/// fixtures number them.
pub fn target<'a>(dossier: Option<&'a Dossier>, command: &Command) -> Target<'a> {
    match dossier {
        Some(d) => Target::Dossier(d),
        None => Target::New {
            number: number_of(command),
            same_commune: &[],
        },
    }
}

/// A command the engine must accept: returns the event and the new dossier.
pub fn accept(
    def: &Definition,
    dossier: Option<Dossier>,
    command: &Command,
    who: &Actor,
) -> (Dossier, Event) {
    let event = decide(def, target(dossier.as_ref(), command), command, who, now())
        .unwrap_or_else(|r| panic!("`{}` refused: {r} ({})", command.action(), r.code()));
    let next = apply(dossier, &event).expect("an accepted event folds");
    (next, event)
}

/// A command the engine must refuse: returns the reason.
pub fn refuse(
    def: &Definition,
    dossier: Option<&Dossier>,
    command: &Command,
    who: &Actor,
) -> Rejection {
    match decide(def, target(dossier, command), command, who, now()) {
        Ok(e) => panic!("`{}` accepted, to `{}`", command.action(), e.to),
        Err(r) => r,
    }
}

/// A dossier deposited with the given programmes and pieces, in `recu`.
pub fn deposited(def: &Definition, programmes: &[&str], pieces: &[&str]) -> (Dossier, Vec<Event>) {
    let (d, e) = accept(
        def,
        None,
        &deposer(new_dossier(7, programmes, pieces)),
        &dar_agent(),
    );
    (d, vec![e])
}

/// A complete dossier instructed by [`dar_agent`] with `verdict`.
pub fn instructed_with(
    def: &Definition,
    programmes: &[&str],
    verdict: &str,
) -> (Dossier, Vec<Event>) {
    let (d, mut events) = deposited(def, programmes, BOTH_PIECES);
    let command = self::verdict("instruire", verdict).with_motivation("Projet examiné par la DAR");
    let (d, e) = accept(def, Some(d), &command, &dar_agent());
    events.push(e);
    (d, events)
}

pub fn instructed(def: &Definition, programmes: &[&str]) -> (Dossier, Vec<Event>) {
    instructed_with(def, programmes, "favorable")
}

/// Runs one more accepted command on a dossier and its journal.
pub fn then(
    def: &Definition,
    (d, mut events): (Dossier, Vec<Event>),
    command: &Command,
    who: &Actor,
) -> (Dossier, Vec<Event>) {
    let (d, e) = accept(def, Some(d), command, who);
    events.push(e);
    (d, events)
}

pub fn avis(action: &str, verdict: &str) -> Command {
    self::verdict(action, verdict).with_motivation("Avis motivé")
}

/// A favorably instructed dossier with every avis its programmes need given
/// favorably: in `avis_acv` (ACV only) or `avis_ti` (TI, or both).
pub fn all_avis_given(def: &Definition, programmes: &[&str]) -> (Dossier, Vec<Event>) {
    let mut run = instructed(def, programmes);
    if programmes.contains(&"acv") {
        run = then(def, run, &avis("avis_acv", "favorable"), &acv_agent());
    }
    if programmes.contains(&"ti") {
        run = then(def, run, &avis("avis_ti", "favorable"), &ti_agent());
    }
    run
}

pub fn ids<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

/// What [`stranger`] adds to the default definition: a pièce, a verdict, a
/// programme and an action that `ami2` lacks.
const STRANGER_WORDS: &str = r#"
[[roles]]
id = "stagiaire"
label = "Stagiaire"

[[pieces]]
id = "photo"
label = "Photo du site"
required = false

[[pieces]]
id = "photo_du_maire"
label = "Photo du maire"
required = false

[[verdicts]]
id = "excellent"
label = "Excellent"

[[programmes]]
id = "petites_villes"
label = "Petites villes de demain"
avis_action = "avis_acv"

[[actions]]
id = "valider"
label = "Valider le dossier"
from = ["instruit"]
to = "laureat"
agency = "dar"
role = "responsable"
"#;

/// Another valid definition: the default one plus a role `stagiaire`,
/// pièces `photo` and `photo_du_maire`, a verdict
/// `excellent`, a programme `petites_villes` and an action `valider`. Its
/// identifiers are the way a test names a word the default definition does
/// not have (the engine must refuse them as unknown).
pub fn stranger() -> &'static Definition {
    static STRANGER: OnceLock<Definition> = OnceLock::new();
    STRANGER.get_or_init(|| {
        let text = format!("{}{STRANGER_WORDS}", ami_core::DEFAULT_DEFINITION_TOML);
        let def = Definition::from_toml(&text).expect("the stranger definition is valid");
        for (word, in_ami2) in [
            ("photo", ami2().piece_kind("photo").is_some()),
            ("excellent", ami2().verdict_id("excellent").is_some()),
            (
                "petites_villes",
                ami2().programme_id("petites_villes").is_some(),
            ),
            ("valider", ami2().action_id("valider").is_some()),
        ] {
            assert!(
                !in_ami2,
                "ami2 has `{word}`: the stranger's word is not foreign"
            );
        }
        def
    })
}

pub fn join<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<S> = items.into_iter().collect();
    items.iter().map(S::as_ref).collect::<Vec<_>>().join(" ")
}

/// Fails with every broken row (its label, then what broke), one a line.
pub fn report<'a>(results: impl IntoIterator<Item = (&'a str, Result<Vec<String>, String>)>) {
    let (mut n, mut broken) = (0, Vec::new());
    for (label, wrong) in results {
        n += 1;
        let wrong = wrong.unwrap_or_else(|e| vec![e]);
        if !wrong.is_empty() {
            broken.push(format!("{label}: {}", wrong.join("; ")));
        }
    }
    let (count, all) = (broken.len(), broken.join("\n"));
    assert!(broken.is_empty(), "{count} of {n} rows broken:\n{all}");
}

/// Each edge of the campaign, written in Paris local time with its offset
/// (+02:00 in summer, +01:00 in winter), and where it must fall.
pub const WAVE_EDGES: &[(&str, ami_core::Placement)] = &[
    ("2020-07-19T23:59:59+02:00", ami_core::Placement::NotOpen),
    ("2020-07-20T00:00:00+02:00", ami_core::Placement::Wave(1)),
    ("2020-11-06T23:59:59+01:00", ami_core::Placement::Wave(1)),
    ("2020-11-07T00:00:00+01:00", ami_core::Placement::Wave(2)),
    ("2021-02-12T23:59:59+01:00", ami_core::Placement::Wave(2)),
    ("2021-02-13T00:00:00+01:00", ami_core::Placement::Wave(3)),
    ("2021-06-25T23:59:59+02:00", ami_core::Placement::Wave(3)),
    ("2021-06-26T00:00:00+02:00", ami_core::Placement::Closed),
];
