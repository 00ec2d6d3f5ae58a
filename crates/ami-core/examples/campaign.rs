//! A small campaign in memory: three towns apply, the DAR instructs, ACV and
//! TI give their avis, the DAR decides; each step goes through `decide`
//! (may this person do this now?) and `apply` (the dossier after the event),
//! and the journal folds back into the same dossiers.
//!
//! ```sh
//! cargo run -p ami-core --example campaign
//! ```

use ami_core::{
    apply, decide, fold, Actor, Command, Definition, Dossier, DossierId, Event, NewDossier, Piece,
    Porteur, Target,
};
use chrono::{DateTime, TimeZone, Utc};

/// A person of an agency and role the definition has.
fn person(def: &Definition, id: &str, name: &str, agency: &str, role: &str) -> Actor {
    Actor {
        id: id.into(),
        name: name.into(),
        agency: def.agency_id(agency).expect("an agency of the definition"),
        role: def.role_id(role).expect("a role of the definition"),
    }
}

/// A command of the definition: an action, and its verdict if it gives one.
fn command(def: &Definition, action: &str, verdict: Option<&str>) -> Command {
    let action = def.action_id(action).expect("an action of the definition");
    match verdict {
        Some(v) => Command::verdict(action, def.verdict_id(v).expect("a verdict")),
        None => Command::transition(action),
    }
}

/// A pièce whose file the caller has stored (its size and SHA-256 known).
fn file(def: &Definition, kind: &str, name: &str) -> Piece {
    Piece {
        kind: def.piece_kind(kind).expect("a pièce of the definition"),
        filename: name.into(),
        size: Some(48_213),
        sha256: Some("5e".repeat(32).into()),
        media_type: Some("application/pdf".into()),
    }
}

/// Runs `command` for `who` on `dossier` (or on a new dossier numbered
/// `number`), or says why not, in the definition's words.
fn act(
    def: &Definition,
    journal: &mut Vec<Event>,
    (dossier, number): (Option<Dossier>, u64),
    command: &Command,
    who: &Actor,
    now: DateTime<Utc>,
) -> Option<Dossier> {
    let target = match &dossier {
        Some(d) => Target::Dossier(d),
        None => Target::New {
            number,
            same_commune: &[],
        },
    };
    match decide(def, target, command, who, now) {
        Ok(event) => {
            let next = apply(dossier, &event).expect("an event decide gave applies");
            println!(
                "  {} — {} ({}) : {}",
                next.reference,
                def.action(command.action())
                    .map_or("?", |a| a.label.as_str()),
                who.name,
                def.state_label(&next.state)
            );
            journal.push(event);
            Some(next)
        }
        Err(refusal) => {
            println!("  refusé à {} : {}", who.name, refusal.explain(def));
            dossier
        }
    }
}

fn main() {
    let def = Definition::ami2();
    let dar = person(
        &def,
        "camille.martin@lecnam.net",
        "Camille Martin",
        "dar",
        "agent",
    );
    let chef = person(
        &def,
        "dominique.bernard@lecnam.net",
        "Dominique Bernard",
        "dar",
        "responsable",
    );
    let acv = person(
        &def,
        "sophie.laurent@anct.gouv.fr",
        "Sophie Laurent",
        "acv",
        "agent",
    );
    let ti = person(
        &def,
        "karim.haddad@anct.gouv.fr",
        "Karim Haddad",
        "ti",
        "agent",
    );
    let received = Utc.with_ymd_and_hms(2020, 10, 1, 8, 0, 0).unwrap();
    let mut journal = Vec::new();
    let mut dossiers = Vec::new();

    println!("{} — définition {}", def.campaign().name, def.version());
    for (n, (commune, insee, programmes)) in [
        ("Nevers", "58194", vec!["acv"]),
        ("Vierzon", "18279", vec!["acv", "ti"]),
        ("Le Creusot", "71153", vec!["ti"]),
    ]
    .into_iter()
    .enumerate()
    {
        let new = NewDossier {
            id: DossierId(uuid::Uuid::from_u128(n as u128 + 1)),
            commune: commune.into(),
            code_insee: insee.into(),
            porteur: Porteur {
                nom: format!("Ville de {commune}").into(),
                email: None,
            },
            programmes: programmes
                .into_iter()
                .map(|p| def.programme_id(p).expect("a programme"))
                .collect(),
            received_at: received,
            pieces: vec![
                file(&def, "dossier_candidature", "candidature.pdf"),
                file(&def, "budget_previsionnel", "budget.pdf"),
            ],
        };
        let deposit = Command::deposit(def.action_id("deposer").expect("deposer"), new);
        let number = n as u64 + 1;
        if let Some(d) = act(&def, &mut journal, (None, number), &deposit, &dar, received) {
            dossiers.push(d);
        }
    }

    let later = received + chrono::Duration::days(20);
    for d in dossiers.iter_mut() {
        let mut current = Some(d.clone());
        let steps = [
            (command(&def, "instruire", Some("favorable")), &dar),
            (command(&def, "avis_acv", Some("favorable")), &acv),
            (
                command(&def, "avis_ti", Some("reserve"))
                    .with_motivation("Partenariats industriels à préciser."),
                &ti,
            ),
            // An agent may not declare: the engine says why.
            (command(&def, "declarer_laureat", None), &dar),
            (command(&def, "declarer_laureat", None), &chef),
        ];
        for (command, who) in steps {
            let here = current.as_ref().expect("deposited");
            // An avis is asked only of the programmes the dossier is in.
            let programme = def
                .action(command.action())
                .and_then(|a| a.programme.clone());
            if programme.is_some_and(|p| !here.in_programme(&p)) {
                continue;
            }
            current = act(&def, &mut journal, (current, 0), &command, who, later);
        }
        *d = current.expect("still there");
    }

    // The journal is the truth: folding it gives the same dossiers.
    for d in &dossiers {
        let own: Vec<&Event> = journal.iter().filter(|e| e.dossier_id == d.id).collect();
        let folded = fold(own).expect("a journal folds").expect("not empty");
        assert_eq!(&folded, d);
    }
    println!(
        "{} événements ; lauréats : {}",
        journal.len(),
        dossiers
            .iter()
            .filter(|d| d.state == "laureat")
            .map(|d| d.commune.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
