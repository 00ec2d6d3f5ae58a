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
    Porteur,
};
use chrono::{DateTime, TimeZone, Utc};

fn person(id: &str, name: &str, agency: &str, role: &str) -> Actor {
    Actor {
        id: id.into(),
        name: name.into(),
        agency: agency.into(),
        role: role.into(),
    }
}

/// A pièce whose file the caller has stored (its size and SHA-256 known).
fn file(kind: &str, name: &str) -> Piece {
    Piece {
        kind: kind.into(),
        filename: name.into(),
        size: Some(48_213),
        sha256: Some("5e".repeat(32)),
        media_type: Some("application/pdf".into()),
    }
}

/// Runs `command` for `who`, or says why not, in the definition's words.
fn act(
    def: &Definition,
    journal: &mut Vec<Event>,
    dossier: Option<Dossier>,
    command: &Command,
    who: &Actor,
    now: DateTime<Utc>,
) -> Option<Dossier> {
    match decide(def, dossier.as_ref(), command, who, now) {
        Ok(event) => {
            let next = apply(dossier, &event).expect("an event decide gave applies");
            println!(
                "  {} — {} ({}) : {}",
                next.reference,
                def.action(&command.action)
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
        "camille.martin@lecnam.net",
        "Camille Martin",
        "dar",
        "agent",
    );
    let chef = person(
        "dominique.bernard@lecnam.net",
        "Dominique Bernard",
        "dar",
        "responsable",
    );
    let acv = person(
        "sophie.laurent@anct.gouv.fr",
        "Sophie Laurent",
        "acv",
        "agent",
    );
    let ti = person("karim.haddad@anct.gouv.fr", "Karim Haddad", "ti", "agent");
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
        let deposit = Command {
            new_dossier: Some(Box::new(NewDossier {
                id: DossierId(uuid::Uuid::from_u128(n as u128 + 1)),
                number: n as u64 + 1,
                commune: commune.into(),
                code_insee: insee.into(),
                porteur: Porteur {
                    nom: format!("Ville de {commune}"),
                    email: None,
                },
                programmes: programmes.into_iter().map(Into::into).collect(),
                received_at: received,
                pieces: vec![
                    file("dossier_candidature", "candidature.pdf"),
                    file("budget_previsionnel", "budget.pdf"),
                ],
            })),
            ..Command::new("deposer")
        };
        if let Some(d) = act(&def, &mut journal, None, &deposit, &dar, received) {
            dossiers.push(d);
        }
    }

    let later = received + chrono::Duration::days(20);
    for d in dossiers.iter_mut() {
        let mut current = Some(d.clone());
        let steps = [
            (Command::new("instruire").with_verdict("favorable"), &dar),
            (Command::new("avis_acv").with_verdict("favorable"), &acv),
            (
                Command::new("avis_ti")
                    .with_verdict("reserve")
                    .with_motivation("Partenariats industriels à préciser."),
                &ti,
            ),
            // An agent may not declare: the engine says why.
            (Command::new("declarer_laureat"), &dar),
            (Command::new("declarer_laureat"), &chef),
        ];
        for (command, who) in steps {
            let here = current.as_ref().expect("deposited");
            // An avis is asked only of the programmes the dossier is in.
            let programme = def
                .action(&command.action)
                .and_then(|a| a.programme.clone());
            if programme.is_some_and(|p| !here.in_programme(&p)) {
                continue;
            }
            current = act(&def, &mut journal, current, &command, who, later);
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
