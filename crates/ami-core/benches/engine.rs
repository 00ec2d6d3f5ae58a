//! Benchmarks of the engine.
//!
//! * `decide_apply`: one `decide` (and, when accepted, one `apply`) per
//!   iteration over a realistic mix of commands on 1,000 dossiers in every
//!   state of the default workflow: mostly accepted transitions of the full
//!   path, some refusals. Target: ≥ 2 million per second on one thread.
//! * `fold_1m_events/{by_dossier,interleaved}`: rebuilding a projection
//!   (`HashMap<DossierId, Dossier>`) from a journal of 1,000,000 events
//!   (200,000 dossiers × 5 events), read dossier by dossier as the service's
//!   rebuild does, or scattered as the campaign wrote it. Target: < 0.5 s.
//!
//! Run with `cargo bench -p ami-core --bench engine`; figures and machine in
//! `docs/PERFORMANCE.md`.

use std::collections::HashMap;
use std::hint::black_box;

use std::sync::OnceLock;

use ami_core::{
    apply, apply_in_place, decide, Actor, Command, Definition, Dossier, DossierId, Event,
    NewDossier, Piece, Porteur, Rejection, Target,
};
use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use uuid::Uuid;

/// The default definition, where the benchmark's words come from.
fn ami2() -> &'static Definition {
    static AMI2: OnceLock<Definition> = OnceLock::new();
    AMI2.get_or_init(Definition::ami2)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn actor(id: &str, agency: &str, role: &str) -> Actor {
    Actor {
        id: id.into(),
        name: format!("Personne {id}").into(),
        agency: ami2().agency_id(agency).expect("agency"),
        role: ami2().role_id(role).expect("role"),
    }
}

fn command(action: &str) -> Command {
    Command::transition(ami2().action_id(action).expect("action"))
}

fn piece(kind: &str) -> Piece {
    Piece {
        kind: ami2().piece_kind(kind).expect("pièce"),
        filename: format!("{kind}.pdf").into(),
        size: Some(250_000),
        sha256: Some("0f".repeat(32).into()),
        media_type: Some("application/pdf".into()),
    }
}

/// Dossier `i`: ACV only, TI only or both, received in one of the waves.
fn new_dossier(i: u64) -> NewDossier {
    let programmes: &[&str] = match i % 10 {
        0..=3 => &["acv"],
        4..=6 => &["ti"],
        _ => &["acv", "ti"],
    };
    let received = at("2020-07-20T09:00:00+02:00") + Duration::minutes(97 * i as i64 % 400_000);
    NewDossier {
        id: DossierId(Uuid::from_u128(i as u128 + 1)),
        commune: format!("Commune {i}").into(),
        code_insee: format!("{:05}", 1000 + i % 90_000).into(),
        porteur: Porteur {
            nom: format!("Mairie de la commune {i}").into(),
            email: Some(format!("mairie{i}@example.org").into()),
        },
        programmes: programmes
            .iter()
            .map(|p| ami2().programme_id(p).expect("programme"))
            .collect(),
        received_at: received,
        pieces: if i.is_multiple_of(5) {
            vec![piece("dossier_candidature")]
        } else {
            vec![piece("dossier_candidature"), piece("budget_previsionnel")]
        },
    }
}

struct Cast {
    instructor: Actor,
    responsable: Actor,
    acv: Actor,
    ti: Actor,
}

fn cast(i: u64) -> Cast {
    Cast {
        instructor: actor(&format!("dar-agent-{}", i % 7), "dar", "agent"),
        responsable: actor(&format!("dar-resp-{}", i % 3), "dar", "responsable"),
        acv: actor(&format!("acv-agent-{}", i % 4), "acv", "agent"),
        ti: actor(&format!("ti-agent-{}", i % 4), "ti", "agent"),
    }
}

fn with_verdict(action: &str, verdict: &str, motivation: Option<&str>) -> Command {
    let command = Command::verdict(
        ami2().action_id(action).expect("action"),
        ami2().verdict_id(verdict).expect("verdict"),
    );
    match motivation {
        Some(m) => command.with_motivation(m),
        None => command,
    }
}

fn deposit(new: NewDossier) -> Command {
    Command::deposit(ami2().action_id("deposer").expect("deposer"), new)
}

fn attach(kind: &str) -> Command {
    Command::attach_piece(
        ami2().action_id("ajouter_piece").expect("ajouter_piece"),
        piece(kind),
    )
}

/// What a decision is taken on: the dossier, or dossier `i`'s number.
fn target(dossier: Option<&Dossier>, i: u64) -> Target<'_> {
    match dossier {
        Some(d) => Target::Dossier(d),
        None => Target::New {
            number: i + 1,
            same_commune: &[],
        },
    }
}

/// The commands of dossier `i` in the order a service would receive them:
/// the full path to lauréat (or a refusal), with the mistakes people make on
/// the way (about one command in six is refused).
fn script(i: u64) -> Vec<(Command, Actor)> {
    let c = cast(i);
    let new = new_dossier(i);
    let acv = new.programmes.iter().any(|p| p == "acv");
    let ti = new.programmes.iter().any(|p| p == "ti");
    let complete = new.pieces.len() == 2;
    let mut steps = vec![(deposit(new), c.instructor.clone())];
    let instruire = if i.is_multiple_of(9) {
        with_verdict(
            "instruire",
            "reserve",
            Some("Plan de financement à préciser"),
        )
    } else {
        with_verdict("instruire", "favorable", None)
    };
    if !complete {
        // Refused (pièce missing), then the pièce arrives.
        steps.push((instruire.clone(), c.instructor.clone()));
        steps.push((attach("budget_previsionnel"), c.instructor.clone()));
    }
    if i % 4 == 1 {
        // Refused: not the DAR's avis to give.
        steps.push((with_verdict("instruire", "favorable", None), c.acv.clone()));
    }
    steps.push((instruire, c.instructor.clone()));
    if acv {
        steps.push((with_verdict("avis_acv", "favorable", None), c.acv.clone()));
    }
    if ti {
        if i % 6 == 2 {
            // Refused: a reserve without motivation.
            steps.push((with_verdict("avis_ti", "reserve", None), c.ti.clone()));
        }
        steps.push((with_verdict("avis_ti", "favorable", None), c.ti.clone()));
    }
    if i % 8 == 3 {
        // Refused: four-eyes, the instructor promoted.
        let mut same = c.instructor.clone();
        same.role = ami2().role_id("responsable").expect("role");
        steps.push((command("declarer_laureat"), same));
    }
    if i % 10 == 9 {
        steps.push((
            command("refuser").with_motivation("Projet hors du périmètre du programme"),
            c.responsable.clone(),
        ));
    } else {
        steps.push((command("declarer_laureat"), c.responsable.clone()));
    }
    if i % 12 == 5 {
        // Refused: the dossier is final.
        steps.push((
            command("classer_sans_suite").with_motivation("Doublon"),
            c.instructor.clone(),
        ));
    }
    steps
}

/// One decision to take: the dossier as it stands before it, the command, the
/// actor and the clock.
struct Op {
    /// The dossier's index, whose number a deposit takes.
    index: u64,
    dossier: Option<Dossier>,
    command: Command,
    actor: Actor,
    now: DateTime<Utc>,
}

/// Runs the scripts of `n` dossiers, interleaved as a service would see them,
/// and keeps each decision with the dossier it was taken on.
fn realistic_ops(def: &Definition, n: u64) -> (Vec<Op>, usize) {
    let mut scripts: Vec<std::vec::IntoIter<(Command, Actor)>> =
        (0..n).map(|i| script(i).into_iter()).collect();
    let mut dossiers: Vec<Option<Dossier>> = vec![None; n as usize];
    let mut ops = Vec::new();
    let mut refused = 0;
    let mut now = at("2021-07-01T09:00:00+02:00");
    loop {
        let mut progressed = false;
        for (i, script) in scripts.iter_mut().enumerate() {
            let Some((command, actor)) = script.next() else {
                continue;
            };
            progressed = true;
            now += Duration::seconds(1);
            let before = dossiers[i].clone();
            match decide(
                def,
                target(before.as_ref(), i as u64),
                &command,
                &actor,
                now,
            ) {
                Ok(event) => dossiers[i] = Some(apply(before.clone(), &event).expect("folds")),
                Err(_) => refused += 1,
            }
            ops.push(Op {
                index: i as u64,
                dossier: before,
                command,
                actor,
                now,
            });
        }
        if !progressed {
            break;
        }
    }
    (ops, refused)
}

fn decide_apply(c: &mut Criterion) {
    let def = Definition::ami2();
    // Built on first use only, so that filtering on the other benchmark
    // skips it.
    let mut ops: Option<Vec<Op>> = None;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("decide_apply", |b| {
        let ops = ops.get_or_insert_with(|| {
            let (ops, refused) = realistic_ops(&def, 1_000);
            eprintln!(
                "decide_apply: {} commands on 1,000 dossiers, {} refused ({:.0} %)",
                ops.len(),
                refused,
                100.0 * refused as f64 / ops.len() as f64
            );
            ops
        });
        let ops = &*ops;
        b.iter_batched(
            || {
                // Untimed: pick the next decision and hand over its dossier,
                // as a service does after loading it.
                let i = next;
                next = (next + 1) % ops.len();
                (i, ops[i].dossier.clone())
            },
            |(i, dossier)| -> (Option<Dossier>, Option<Rejection>) {
                // The dossier comes back either way, so that its drop is not
                // timed.
                let op = &ops[i];
                let on = target(dossier.as_ref(), op.index);
                match decide(&def, on, &op.command, &op.actor, op.now) {
                    Ok(event) => (Some(apply(dossier, &event).expect("folds")), None),
                    Err(rejection) => (dossier, Some(rejection)),
                }
            },
            // Copies made 1,024 at a time are still warm in cache when
            // used, like a dossier a service has just loaded.
            BatchSize::NumIterations(1024),
        )
    });
    group.finish();
}

/// The journals of `dossiers` dossiers, 5 events each, all accepted by the
/// engine: deposits, pièces, instructions, avis, declarations.
fn journals(def: &Definition, dossiers: u64) -> Vec<Vec<Event>> {
    let responsable = actor("dar-resp-1", "dar", "responsable");
    let mut per_dossier: Vec<Vec<Event>> = Vec::with_capacity(dossiers as usize);
    let mut now = at("2021-07-01T09:00:00+02:00");
    for i in 0..dossiers {
        let c = cast(i);
        let mut new = new_dossier(i);
        let acv = new.programmes.iter().any(|p| p == "acv");
        let ti = new.programmes.iter().any(|p| p == "ti");
        new.pieces = vec![piece("dossier_candidature")];
        if acv && ti {
            new.pieces.push(piece("budget_previsionnel"));
        }
        let mut steps = vec![
            (deposit(new), c.instructor.clone()),
            (
                with_verdict("instruire", "favorable", None),
                c.instructor.clone(),
            ),
        ];
        if acv && ti {
            steps.push((with_verdict("avis_acv", "favorable", None), c.acv.clone()));
            steps.push((
                with_verdict("avis_ti", "reserve", Some("Emplois à préciser")),
                c.ti,
            ));
        } else {
            // Five events each: the missing pièce comes before instruction.
            steps.insert(1, (attach("budget_previsionnel"), c.instructor.clone()));
            if acv {
                steps.push((with_verdict("avis_acv", "favorable", None), c.acv));
            } else {
                steps.push((with_verdict("avis_ti", "favorable", None), c.ti));
            }
        }
        steps.push((command("declarer_laureat"), responsable.clone()));
        let mut d: Option<Dossier> = None;
        let mut events = Vec::with_capacity(5);
        for (command, who) in &steps {
            now += Duration::seconds(1);
            let event = decide(def, target(d.as_ref(), i), command, who, now).expect("accepted");
            d = Some(apply(d, &event).expect("folds"));
            events.push(event);
        }
        assert_eq!(events.len(), 5);
        per_dossier.push(events);
    }
    per_dossier
}

/// What a projection rebuild does: every event folded into its dossier.
fn project(events: &[Event], dossiers: usize) -> HashMap<DossierId, Dossier> {
    let mut projection: HashMap<DossierId, Dossier> = HashMap::with_capacity(dossiers);
    for event in events {
        match projection.get_mut(&event.dossier_id) {
            Some(d) => apply_in_place(d, event).expect("a sound journal"),
            None => {
                let d = apply(None, event).expect("a sound journal");
                projection.insert(event.dossier_id, d);
            }
        }
    }
    projection
}

/// The same journal in two orders: `(by_dossier, interleaved)`.
fn orders<'a>(
    cache: &'a mut Option<(Vec<Event>, Vec<Event>)>,
    def: &Definition,
    dossiers: u64,
) -> &'a (Vec<Event>, Vec<Event>) {
    cache.get_or_insert_with(|| {
        let per_dossier = journals(def, dossiers);
        // As a rebuild reads the store: each dossier's events together.
        let by_dossier: Vec<Event> = per_dossier.iter().flatten().cloned().collect();
        // As the campaign wrote them, at its most scattered: every dossier
        // deposited, then every dossier's second event, and so on.
        let interleaved: Vec<Event> = (0..5)
            .flat_map(|round| per_dossier.iter().map(move |events| events[round].clone()))
            .collect();
        for events in [&by_dossier, &interleaved] {
            assert_eq!(events.len(), 5 * dossiers as usize);
            let check = project(events, dossiers as usize);
            assert_eq!(check.len(), dossiers as usize);
            assert!(check
                .values()
                .all(|d| d.state == "laureat" && d.version == 5));
        }
        (by_dossier, interleaved)
    })
}

/// Untimed, before each fold: with glibc, the memory of the projection the
/// previous run dropped waits in the allocator's fast bins until a larger
/// allocation makes it consolidate them, which takes about 0.3 s for
/// 200,000 dossiers. That is the debt of the previous drop (itself untimed),
/// not a cost of the fold: settle it here, so that each fold starts, like a
/// fresh process, on a heap with no such debt.
fn settle_allocator() {
    let nudge = Vec::<u8>::with_capacity(4096);
    black_box(&nudge);
}

fn fold_1m(c: &mut Criterion) {
    const DOSSIERS: u64 = 200_000;
    let def = Definition::ami2();
    // Built on first use only, so that filtering on another benchmark skips it.
    let mut cache: Option<(Vec<Event>, Vec<Event>)> = None;

    let mut group = c.benchmark_group("engine/fold_1m_events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(5 * DOSSIERS));
    group.bench_function("by_dossier", |b| {
        let events = &orders(&mut cache, &def, DOSSIERS).0;
        b.iter_batched(
            settle_allocator,
            |()| project(black_box(events), DOSSIERS as usize),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("interleaved", |b| {
        let events = &orders(&mut cache, &def, DOSSIERS).1;
        b.iter_batched(
            settle_allocator,
            |()| project(black_box(events), DOSSIERS as usize),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decide_apply, fold_1m);
criterion_main!(benches);
