//! Every rule of the default workflow ("Au cœur des territoires", AMI 2) as
//! one row of a table: given a dossier, a person and a command, the event the
//! engine records (its target state and what it changes) or the exact
//! [`Rejection`] it answers; what a person is offered or held back from and
//! whom a dossier awaits. Smaller tables give every rejection's code, field
//! and message, and the edits of the definition's TOML that keep it from
//! loading; a few stories cover the default definition, the journal's events,
//! folding and the per-action maps.
//!
//! Rows use plain `&str` identifiers and the helpers of the first section,
//! which alone touch the engine's API. A table runs all its rows, then
//! reports every broken one by its label: the name of the test it replaced,
//! then `/` and a case when that test had several. Tables are laid out by
//! hand (`#[rustfmt::skip]`), a row to a line or two.

mod common;

use ami_core::Piece;
use ami_core::{
    apply, available_actions, awaiting, decide, fold, held_back_actions, ActionDef, ActionId,
    Actor, AgencyId, Command, Definition, Dossier, Effect, Event, Payload, PieceKind, Placement,
    ProgrammeId, Rejection, Rejection::*, RoleId, StateId, VerdictId,
};
use chrono::{DateTime, Utc};
use common::*;
use smol_str::SmolStr;

// ---------------------------------------------------------------------------
// The engine's API, in one place
// ---------------------------------------------------------------------------

/// A person: (agency, role, id).
type Who = (&'static str, &'static str, &'static str);

const DAR_AGENT: Who = ("dar", "agent", "dar-agent-1");
const DAR_RESP: Who = ("dar", "responsable", "dar-resp-1");
const ACV_AGENT: Who = ("acv", "agent", "acv-agent-1");
const TI_AGENT: Who = ("ti", "agent", "ti-agent-1");
/// The DAR agent who instructs in the givens, since promoted.
const PROMOTED: Who = ("dar", "responsable", "dar-agent-1");
const BOTH: &[&str] = BOTH_PIECES;

fn person((agency, role, id): Who) -> Actor {
    let def = if ami2().role_id(role).is_some() {
        ami2()
    } else {
        stranger()
    };
    actor_of(def, id, agency, role)
}

/// A word as the type the engine wants: an identifier of the default
/// definition, or of [`stranger`] for one it lacks; a text.
trait Word {
    fn word(text: &str) -> Self;
}

macro_rules! word {
    ($($id:ty => $find:ident),*) => {$(
        impl Word for $id {
            fn word(text: &str) -> Self {
                ami2().$find(text).or_else(|| stranger().$find(text))
                    .unwrap_or_else(|| panic!("no definition has `{text}`"))
            }
        }
    )*};
}
word!(ActionId => action_id, AgencyId => agency_id, RoleId => role_id, StateId => state_id,
    VerdictId => verdict_id, PieceKind => piece_kind, ProgrammeId => programme_id);

impl Word for SmolStr {
    fn word(text: &str) -> Self {
        text.into()
    }
}

impl Word for String {
    fn word(text: &str) -> Self {
        text.into()
    }
}

fn s<T: Word>(text: &str) -> T {
    T::word(text)
}

fn cmd(action: &str) -> Command {
    Command::transition(s(action))
}

/// The same action, carrying a verdict.
fn with_verdict(command: Command, verdict: &str) -> Command {
    let (action, motivation, comment) = match command {
        Command::Transition {
            action,
            motivation,
            comment,
            ..
        } => (action, motivation, comment),
        Command::Deposit(d) => (d.action, None, d.comment),
        other => panic!("no verdict on {other:?}"),
    };
    Command::Verdict {
        action,
        verdict: s(verdict),
        motivation,
        comment,
    }
}

fn verdict(action: &str, verdict: &str) -> Command {
    with_verdict(cmd(action), verdict)
}

/// `action` with a motivation, and with a verdict unless `verdict` is empty.
fn motivated(action: &str, verdict: &str, motivation: &str) -> Command {
    let command = cmd(action).with_motivation(motivation);
    match verdict {
        "" => command,
        _ => with_verdict(command, verdict),
    }
}

/// The same action carrying the fixture pièce `kind` (named `filename`
/// unless empty) and nothing else: a command has one kind.
fn with_piece(command: Command, kind: &str, filename: &str) -> Command {
    let mut p = Piece {
        kind: s(kind),
        ..piece(BUDGET)
    };
    p.filename = match filename {
        "" => format!("{kind}.pdf").into(),
        name => name.into(),
    };
    Command::attach_piece(command.action().clone(), p)
}

fn piece_cmd(kind: &str, filename: &str) -> Command {
    with_piece(cmd("ajouter_piece"), kind, filename)
}

/// `deposer` of dossier n° `number` in `programmes` (space-separated),
/// received at `received` (in wave 1 when empty).
fn deposit(number: u64, programmes: &str, pieces: &[&str], received: &str) -> Command {
    let programmes: Vec<&str> = programmes.split_whitespace().collect();
    let mut new = new_dossier(number, &programmes, pieces);
    if !received.is_empty() {
        new.received_at = at(received);
    }
    deposer(new)
}

fn run(def: &Definition, d: Option<&Dossier>, c: &Command, who: Who, t: Time) -> Outcome {
    decide(def, target(d, c), c, &person(who), t)
}

type Time = DateTime<Utc>;
type Outcome = Result<Event, Rejection>;

/// Dossier n° 7, deposited by the DAR agent in `.0` (space-separated) with
/// the pièces `.1`, then taken through the steps `.2`, space-separated, each
/// `action[:verdict or pièce][@person id]`: favorable and motivated unless
/// said, by the agent of the action's agency (the DAR responsable for the
/// DAR's decisions).
#[derive(Clone, Copy)]
struct Given(&'static str, &'static [&'static str], &'static str);

fn after(programmes: &'static str, steps: &'static str) -> Given {
    Given(programmes, BOTH, steps)
}

/// A dossier in both programmes brought to `state` the usual way.
fn happy(state: &str) -> Given {
    let steps = match state {
        "recu" => "",
        "instruit" => "instruire",
        "avis_acv" => "instruire avis_acv",
        "avis_ti" => "instruire avis_acv avis_ti",
        "laureat" => "instruire avis_acv avis_ti declarer_laureat",
        "refuse" => "instruire avis_acv avis_ti refuser",
        "sans_suite" => "instruire avis_acv avis_ti classer_sans_suite",
        other => panic!("no way to {other}"),
    };
    after("acv ti", steps)
}

fn step(text: &str) -> (Who, Command) {
    let (rest, id) = text.split_once('@').unwrap_or((text, ""));
    let (action, arg) = rest.split_once(':').unwrap_or((rest, ""));
    let people = [DAR_AGENT, DAR_RESP, ACV_AGENT, TI_AGENT];
    let who = match (id, action) {
        ("", "instruire" | "ajouter_piece") => DAR_AGENT,
        ("", "avis_acv") => ACV_AGENT,
        ("", "avis_ti") => TI_AGENT,
        ("", _) => DAR_RESP,
        (id, _) => *people.iter().find(|w| w.2 == id).expect("a known person"),
    };
    let command = match (action, arg) {
        ("ajouter_piece", kind) => piece_cmd(kind, ""),
        ("instruire" | "avis_acv" | "avis_ti", "") => motivated(action, "favorable", "Motif"),
        (_, verdict) => motivated(action, verdict, "Motif"),
    };
    (who, command)
}

/// The dossier of `given` (none without) and its journal, through the engine.
fn build(def: &Definition, given: Option<Given>) -> Result<(Option<Dossier>, Vec<Event>), String> {
    let (mut dossier, mut journal) = (None, Vec::new());
    let Some(Given(programmes, pieces, steps)) = given else {
        return Ok((dossier, journal));
    };
    let first = (DAR_AGENT, deposit(7, programmes, pieces, ""));
    for (who, command) in std::iter::once(first).chain(steps.split_whitespace().map(step)) {
        let event = run(def, dossier.as_ref(), &command, who, now());
        let event = event.map_err(|r| format!("the given was refused: {r:?}"))?;
        dossier = Some(apply(dossier, &event).map_err(|e| e.to_string())?);
        journal.push(event);
    }
    Ok((dossier, journal))
}

/// What `who` sees of a dossier: `offers`, `holds_back` (`action:code`), `awaits`.
fn view(def: &Definition, d: &Dossier, who: Who, key: &str) -> String {
    let who = person(who);
    match key {
        "offers" => join(available_actions(def, d, &who).iter().map(|a| &a.id)),
        "holds_back" => {
            let held = held_back_actions(def, d, &who);
            join(held.iter().map(|(a, r)| format!("{}:{}", a.id, r.code())))
        }
        "awaits" => join(awaiting(def, d)),
        _ => panic!("unknown fact `{key}`"),
    }
}

/// What a row says of an accepted command, read from the event `e` and the
/// dossier `d` after it (`-` for nothing), else what `who` sees of `d`.
fn fact(def: &Definition, d: &Dossier, e: &Event, who: Who, key: &str) -> String {
    let opt = |o: Option<&str>| o.unwrap_or("-").to_string();
    let (key, arg) = key.split_once('.').unwrap_or((key, ""));
    let avis = d.avis(arg.trim_end_matches(".actor"));
    let files = d
        .pieces
        .iter()
        .filter(|p| p.kind == arg)
        .map(|p| &p.filename);
    match key {
        "seq" => e.seq.to_string(),
        "from" => opt(e.from.as_ref().map(|s| s.as_str())),
        "to" => e.to.to_string(),
        "motivation" => opt(e.motivation.as_deref()),
        // `piece K`: the payload is the whole fixture pièce K.
        "payload" => match &e.payload {
            Payload::Piece(p) if *p == piece(&p.kind) => format!("piece {}", p.kind),
            Payload::Create(c) => format!("created {} in wave {}", c.reference, c.wave),
            other => format!("{other:?}"),
        },
        "state" => d.state.to_string(),
        "version" => d.version.to_string(),
        "wave" => d.wave.to_string(),
        "reference" => d.reference.to_string(),
        "id" => d.id.0.as_u128().to_string(),
        "commune" => d.commune.to_string(),
        "programmes" => join(&d.programmes),
        "pieces" => join(d.pieces.iter().map(|p| &p.kind)),
        "piece" => join(files),
        "received_at" => d.received_at.to_rfc3339(),
        "updated_at" => d.updated_at.to_rfc3339(),
        "avis" if arg.is_empty() => join(d.avis_given().map(|a| &a.action)),
        // `avis.A.actor`: the whole actor of the avis A.
        "avis" if arg.ends_with(".actor") => avis.map_or("-".into(), |a| {
            let p = &a.actor;
            format!("{}/{}/{} {}", p.agency, p.role, p.id, p.name)
        }),
        // `avis.A`: its verdict, agency, actor and motivation.
        "avis" => avis.map_or("-".into(), |a| {
            let why = opt(a.motivation.as_deref());
            format!("{} {} {}: {why}", a.verdict, a.agency, a.actor.id)
        }),
        "actors" if arg.is_empty() => join(d.actions_taken().map(|(a, _)| a)),
        "actors" => opt(d.taken_by(arg)),
        _ => view(def, d, who, key),
    }
}

/// What a row says of a rejection besides its value.
fn refusal_fact(r: &Rejection, key: &str) -> String {
    match key {
        "code" => r.code().into(),
        "field" => r.field().unwrap_or("-").into(),
        "forbidden" => r.is_forbidden().to_string(),
        "message" => r.to_string(),
        _ => panic!("unknown fact `{key}`"),
    }
}

/// One command for each action a dossier in the terminal `state` must
/// refuse: all but creations and the reopenings of `state`.
fn commands_refused_in(def: &Definition, state: &str) -> Vec<(String, Command)> {
    let reopens = |a: &ActionDef| a.effect == Effect::Reopen && a.is_possible_from(state);
    let probe = |a: &ActionDef| match (a.verdict, a.effect) {
        (true, _) => motivated(&a.id, "favorable", "Motif"),
        (false, Effect::AttachPiece) => with_piece(motivated(&a.id, "", "Motif"), BUDGET, ""),
        (false, _) => motivated(&a.id, "", "Motif"),
    };
    let actions = def.actions().iter().filter(|a| a.effect != Effect::Create);
    let refused = actions.filter(|a| !reopens(a));
    refused.map(|a| (a.id.to_string(), probe(a))).collect()
}

// ---------------------------------------------------------------------------
// Rows, and how a table runs them
// ---------------------------------------------------------------------------

struct Case {
    label: String,
    given: Option<Given>,
    by: Who,
    command: Option<Command>,
    clock: Option<&'static str>,
    want: Want,
}

/// Facts are `key=value; …`, read by [`fact`] or [`view`].
#[derive(Debug)]
enum Want {
    Accepted(String),
    Refused(Rejection),
    /// No command: what the person sees of the dossier given.
    Sees(String),
}

fn rule(label: &str) -> Case {
    let (label, want) = (label.into(), Want::Accepted(String::new()));
    let (given, by, command, clock) = (None, DAR_AGENT, None, None);
    Case {
        label,
        given,
        by,
        command,
        clock,
        want,
    }
}

impl Case {
    fn on(mut self, given: Given, by: Who, command: Command) -> Case {
        self.given = Some(given);
        self.does(by, command)
    }
    fn does(mut self, by: Who, command: Command) -> Case {
        (self.by, self.command) = (by, Some(command));
        self
    }
    fn at_clock(mut self, instant: &'static str) -> Case {
        self.clock = Some(instant);
        self
    }
    fn accepted(mut self, facts: &str) -> Case {
        self.want = Want::Accepted(facts.into());
        self
    }
    fn refused(mut self, rejection: Rejection) -> Case {
        self.want = Want::Refused(rejection);
        self
    }
    fn sees(mut self, given: Given, by: Who, facts: &str) -> Case {
        (self.given, self.by, self.want) = (Some(given), by, Want::Sees(facts.into()));
        self
    }
    /// More facts.
    fn and(mut self, more: &str) -> Case {
        if let Want::Accepted(facts) | Want::Sees(facts) = &mut self.want {
            *facts = format!("{facts};{more}");
        }
        self
    }

    /// What breaks in the row, if anything.
    fn verify(&self, def: &Definition) -> Result<Vec<String>, String> {
        let (dossier, journal) = build(def, self.given)?;
        let clock = self.clock.map_or_else(now, at);
        let (d, by) = (dossier.as_ref(), self.by);
        let got = self.command.as_ref().map(|c| run(def, d, c, by, clock));
        Ok(match (got, &self.want) {
            (None, Want::Sees(facts)) => {
                let d = dossier.as_ref().ok_or("no dossier given")?;
                differ(facts, |k| view(def, d, self.by, k))
            }
            (Some(Ok(e)), Want::Accepted(facts)) => {
                let d = apply(dossier, &e).map_err(|e| e.to_string())?;
                let mut wrong = differ(facts, |k| fact(def, &d, &e, self.by, k));
                if fold(journal.iter().chain([&e])) != Ok(Some(d)) {
                    wrong.push("the journal folds into another dossier".into());
                }
                wrong
            }
            (Some(Err(r)), Want::Refused(want)) if r == *want => vec![],
            (got, want) => {
                let got = got.map(|r| r.map(|e| e.to));
                vec![format!("expected {want:?}, got {got:?}")]
            }
        })
    }
}

/// The `key=value; …` facts that `read` contradicts.
fn differ(facts: &str, read: impl Fn(&str) -> String) -> Vec<String> {
    let facts = facts.split(';').map(str::trim).filter(|f| !f.is_empty());
    let facts = facts.map(|f| f.split_once('=').expect("a fact is `key=value`"));
    let wrong = facts.map(|(key, want)| (key, want, read(key)));
    let wrong = wrong.filter(|(_, want, got)| want != got);
    wrong
        .map(|(key, want, got)| format!("{key}: expected `{want}`, got `{got}`"))
        .collect()
}

// ---------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------

const OPENS: &str = "2020-07-20T00:00:00+02:00";
const CLOSES: &str = "2021-06-26T00:00:00+02:00";

#[test]
fn every_rule_of_the_default_workflow() {
    let def = Definition::ami2();
    report(
        rules(&def)
            .iter()
            .map(|row| (row.label.as_str(), row.verify(&def))),
    );
}

#[rustfmt::skip]
fn rules(def: &Definition) -> Vec<Case> {
    let (acv, acv_ti) = (after("acv", ""), after("acv ti", ""));
    let (one, none) = (Given("acv", &[CANDIDATURE], ""), Given("acv ti", &[], ""));
    let (instruit, instruit_ti) = (after("acv", "instruire"), after("ti", "instruire"));
    let all_avis = happy("avis_ti");
    let new = || deposit(7, "acv", BOTH, "");
    let favorable = || verdict("instruire", "favorable");
    let declare = || cmd("declarer_laureat");
    let avis = |action, verdict| motivated(action, verdict, "Avis motivé");
    let (avis_acv, avis_ti) = (|| avis("avis_acv", "favorable"), || avis("avis_ti", "favorable"));
    let refuser = |why| motivated("refuser", "", why);
    let classer = |why| motivated("classer_sans_suite", "", why);
    let (early, late) = ("2020-07-01T12:00:00+02:00", "2021-07-14T12:00:00+02:00");
    let (today, tomorrow) = ("2020-10-01T10:00:00+02:00", "2020-10-02T10:00:00+02:00");
    let no_motivation = |verdict| MotivationMissing { reason: format!("un verdict « {verdict} »") };
    let blocking = |by| BlockingVerdict { by: s(by), verdict: s("defavorable") };
    let four_eyes = || FourEyes { action: s("declarer_laureat"), previous: s("instruire") };
    let offered = "offers=ajouter_piece demander_complement";
    let mut rows = vec![
        // deposer
        rule("a_dar_agent_deposits_a_dossier_which_starts_in_recu").does(DAR_AGENT, new())
            .accepted("seq=1; from=-; to=recu; state=recu; version=1; wave=1; id=7")
            .and("commune=Saint-Flour; programmes=acv")
            .and("pieces=dossier_candidature budget_previsionnel")
            .and("received_at=2020-10-01T08:00:00+00:00; updated_at=2021-09-01T08:00:00+00:00"),
        rule("a_dar_responsable_may_deposit_because_a_higher_role_may_do_what_a_lower_one_does")
            .does(DAR_RESP, deposit(7, "ti", BOTH, "")).accepted("to=recu"),
        rule("an_acv_agent_cannot_deposit_a_dossier").does(ACV_AGENT, new())
            .refused(WrongAgency { action: s("deposer"), required: s("dar"), actual: s("acv") }),
        rule("an_actor_with_an_unknown_role_is_below_every_role")
            .does(("dar", "stagiaire", "x"), new()).refused(RoleTooLow {
                action: s("deposer"), required: s("agent"), actual: s("stagiaire") }),
        rule("a_dossier_received_before_the_campaign_opens_is_refused_as_not_open")
            .does(DAR_AGENT, deposit(7, "acv", BOTH, early))
            .refused(NotOpen { received_at: at(early), opens_at: at(OPENS) }),
        rule("a_dossier_received_after_the_last_wave_is_refused_as_closed")
            .does(DAR_AGENT, deposit(7, "acv", BOTH, late))
            .refused(Closed { received_at: at(late), closed_at: at(CLOSES) }),
        rule("a_dossier_received_after_now_is_refused_as_received_in_the_future")
            .does(DAR_AGENT, deposit(7, "acv", BOTH, tomorrow)).at_clock(today)
            .refused(ReceivedInFuture { received_at: at(tomorrow) }),
        rule("a_dossier_received_exactly_now_is_accepted")
            .does(DAR_AGENT, deposit(7, "acv", BOTH, today)).at_clock(today).accepted("seq=1"),
        rule("a_dossier_without_any_programme_is_refused")
            .does(DAR_AGENT, deposit(7, "", BOTH, "")).refused(NoProgramme),
        rule("a_dossier_in_an_unknown_programme_is_refused")
            .does(DAR_AGENT, deposit(7, "acv petites_villes", BOTH, ""))
            .refused(UnknownProgramme { programme: s("petites_villes") }),
        rule("a_dossier_with_an_unknown_piece_is_refused")
            .does(DAR_AGENT, deposit(7, "acv", &[CANDIDATURE, "photo_du_maire"], ""))
            .refused(UnknownPiece { piece: s("photo_du_maire") }),
        rule("the_reference_is_built_from_the_prefix_the_wave_and_the_number_on_four_digits")
            .does(DAR_AGENT, new())
            .accepted("reference=AMI2-V1-0007; payload=created AMI2-V1-0007 in wave 1"),
        rule("the_reference_carries_the_wave_of_the_reception_date")
            .does(DAR_AGENT, deposit(1234, "ti", BOTH, "2021-03-15T09:00:00+01:00"))
            .accepted("reference=AMI2-V3-1234; wave=3"),
        rule("a_programme_given_twice_is_kept_once_in_its_first_place")
            .does(DAR_AGENT, deposit(7, "ti acv ti", BOTH, "")).accepted("programmes=ti acv"),
        rule("deposer_without_the_content_of_the_dossier_is_malformed")
            .does(DAR_AGENT, cmd("deposer")).refused(MalformedCommand {
                action: s("deposer"), expected: s("le contenu du dossier déposé") }),
        rule("deposer_with_a_verdict_is_refused_as_verdict_not_expected")
            .does(DAR_AGENT, with_verdict(new(), "favorable"))
            .refused(VerdictNotExpected { action: s("deposer") }),
        rule("deposer_on_an_existing_dossier_is_refused_as_already_exists")
            .on(acv, DAR_AGENT, new()).refused(AlreadyExists { action: s("deposer") }),
        rule("an_action_other_than_deposer_on_no_dossier_is_refused_as_no_dossier")
            .does(DAR_AGENT, favorable()).refused(NoDossier { action: s("instruire") }),
        // instruire and ajouter_piece
        rule("instruire_refuses_a_dossier_without_pieces_and_lists_both_missing")
            .on(Given("acv", &[], ""), DAR_AGENT, favorable())
            .refused(PiecesMissing { missing: vec![s(CANDIDATURE), s(BUDGET)] }),
        rule("instruire_refuses_a_dossier_missing_one_piece_and_lists_only_that_one")
            .on(one, DAR_AGENT, favorable()).refused(PiecesMissing { missing: vec![s(BUDGET)] }),
        rule("instruire_without_a_verdict_is_refused").on(acv, DAR_AGENT, cmd("instruire"))
            .refused(VerdictMissing { action: s("instruire") }),
        rule("instruire_with_an_unknown_verdict_is_refused")
            .on(acv, DAR_AGENT, verdict("instruire", "excellent"))
            .refused(UnknownVerdict { verdict: s("excellent") }),
        rule("a_reserve_or_defavorable_verdict_without_motivation_is_refused/reserve")
            .on(acv, DAR_AGENT, verdict("instruire", "reserve")).refused(no_motivation("Réservé")),
        rule("a_reserve_or_defavorable_verdict_without_motivation_is_refused/defavorable")
            .on(acv, DAR_AGENT, verdict("instruire", "defavorable"))
            .refused(no_motivation("Défavorable")),
        rule("a_blank_motivation_counts_as_no_motivation")
            .on(acv, DAR_AGENT, motivated("instruire", "defavorable", "  \n\t "))
            .refused(no_motivation("Défavorable")),
        rule("a_favorable_verdict_needs_no_motivation").on(acv, DAR_AGENT, favorable())
            .accepted("state=instruit; motivation=-; avis.instruire=favorable dar dar-agent-1: -"),
        rule("a_reserve_verdict_with_a_motivation_is_accepted")
            .on(acv, DAR_AGENT, motivated("instruire", "reserve", "Plan de financement fragile"))
            .accepted("avis.instruire=reserve dar dar-agent-1: Plan de financement fragile"),
        rule("an_acv_agent_cannot_instruct_a_dossier").on(acv, ACV_AGENT, favorable())
            .refused(WrongAgency { action: s("instruire"), required: s("dar"), actual: s("acv") }),
        rule("instruire_twice_is_refused_as_invalid_state").on(instruit, DAR_AGENT, favorable())
            .refused(InvalidState { action: s("instruire"), state: s("instruit") }),
        rule("ajouter_piece_in_recu_keeps_the_state_appends_the_piece_and_enters_the_history")
            .on(one, DAR_AGENT, piece_cmd(BUDGET, ""))
            .accepted("state=recu; version=2; seq=2; from=recu; to=recu")
            .and("payload=piece budget_previsionnel")
            .and("pieces=dossier_candidature budget_previsionnel"),
        rule("instruire_works_once_the_missing_piece_is_added")
            .on(Given("acv", &[CANDIDATURE], "ajouter_piece:budget_previsionnel"), DAR_AGENT,
                favorable())
            .accepted("state=instruit; seq=3"),
        rule("a_piece_sent_again_replaces_the_earlier_copy")
            .on(acv, DAR_AGENT, piece_cmd(BUDGET, "budget_v2.pdf"))
            .accepted("piece.budget_previsionnel=budget_v2.pdf")
            .and("pieces=dossier_candidature budget_previsionnel"),
        rule("ajouter_piece_of_an_unknown_kind_is_refused")
            .on(one, DAR_AGENT, piece_cmd("photo", "")).refused(UnknownPiece { piece: s("photo") }),
        rule("ajouter_piece_without_a_piece_is_malformed").on(one, DAR_AGENT, cmd("ajouter_piece"))
            .refused(MalformedCommand { action: s("ajouter_piece"), expected: s("une pièce") }),
        rule("a_piece_on_an_action_that_does_not_take_one_is_malformed")
            .on(acv, DAR_AGENT, with_piece(favorable(), BUDGET, ""))
            .refused(MalformedCommand { action: s("instruire"), expected: s("aucune pièce") }),
        rule("a_corrected_budget_after_instruction_is_a_new_version_in_the_same_state")
            .on(instruit, DAR_AGENT, piece_cmd(BUDGET, "budget-corrige.xlsx"))
            .accepted("from=instruit; to=instruit; version=3; state=instruit; awaits=acv")
            .and("piece.budget_previsionnel=budget-corrige.xlsx"),
        // avis_acv and avis_ti
        rule("avis_acv_is_given_by_an_acv_agent_on_an_instructed_acv_dossier")
            .on(instruit, ACV_AGENT, avis_acv())
            .accepted("state=avis_acv; from=instruit")
            .and("avis.avis_acv=favorable acv acv-agent-1: Avis motivé")
            .and("avis.avis_acv.actor=acv/agent/acv-agent-1 Personne acv-agent-1"),
        rule("avis_acv_on_a_dossier_outside_the_acv_programme_is_refused")
            .on(instruit_ti, ACV_AGENT, avis_acv())
            .refused(ProgrammeNotConcerned { action: s("avis_acv"), programme: s("acv") }),
        rule("avis_acv_before_instruction_is_refused_as_invalid_state")
            .on(acv, ACV_AGENT, avis_acv())
            .refused(InvalidState { action: s("avis_acv"), state: s("recu") }),
        rule("avis_acv_cannot_be_given_twice")
            .on(after("acv", "instruire avis_acv"), ACV_AGENT, avis("avis_acv", "reserve"))
            .refused(InvalidState { action: s("avis_acv"), state: s("avis_acv") }),
        rule("avis_ti_is_given_from_instruit_on_a_ti_only_dossier")
            .on(instruit_ti, TI_AGENT, avis("avis_ti", "reserve"))
            .accepted("state=avis_ti; from=instruit")
            .and("avis.avis_ti=reserve ti ti-agent-1: Avis motivé"),
        rule("avis_ti_from_instruit_on_an_acv_and_ti_dossier_waits_for_the_acv_avis")
            .on(happy("instruit"), TI_AGENT, avis_ti())
            .refused(AvisMissing { action: s("avis_ti"), missing: s("avis_acv") }),
        rule("avis_ti_after_the_acv_avis_on_an_acv_and_ti_dossier_works")
            .on(happy("avis_acv"), TI_AGENT, avis_ti())
            .accepted("from=avis_acv; state=avis_ti; avis=avis_acv avis_ti instruire"),
        rule("avis_ti_on_an_acv_only_dossier_is_refused")
            .on(after("acv", "instruire avis_acv"), TI_AGENT, avis_ti())
            .refused(ProgrammeNotConcerned { action: s("avis_ti"), programme: s("ti") }),
        rule("an_acv_agent_cannot_give_the_ti_avis").on(instruit_ti, ACV_AGENT, avis_ti())
            .refused(WrongAgency { action: s("avis_ti"), required: s("ti"), actual: s("acv") }),
        // declarer_laureat: role, avis, blocking verdicts, four eyes
        rule("a_dar_agent_cannot_declare_a_laureat")
            .on(all_avis, ("dar", "agent", "dar-agent-2"), declare()).refused(RoleTooLow {
                action: s("declarer_laureat"), required: s("responsable"), actual: s("agent") }),
        rule("a_responsable_of_another_agency_cannot_declare_a_laureat")
            .on(all_avis, ("ti", "responsable", "ti-resp-1"), declare()).refused(WrongAgency {
                action: s("declarer_laureat"), required: s("dar"), actual: s("ti") }),
        rule("declarer_laureat_is_refused_while_the_ti_avis_is_missing")
            .on(happy("avis_acv"), DAR_RESP, declare())
            .refused(AvisMissing { action: s("declarer_laureat"), missing: s("avis_ti") }),
        rule("declarer_laureat_from_instruit_is_refused_as_invalid_state")
            .on(instruit, DAR_RESP, declare())
            .refused(InvalidState { action: s("declarer_laureat"), state: s("instruit") }),
        rule("a_defavorable_verdict_of_the_dar_blocks_the_declaration")
            .on(after("acv", "instruire:defavorable avis_acv"), DAR_RESP, declare())
            .refused(blocking("instruire")),
        rule("a_defavorable_verdict_of_the_acv_blocks_the_declaration")
            .on(after("acv ti", "instruire avis_acv:defavorable avis_ti"), DAR_RESP, declare())
            .refused(blocking("avis_acv")),
        rule("a_defavorable_verdict_of_the_ti_blocks_the_declaration")
            .on(after("ti", "instruire avis_ti:defavorable"), DAR_RESP, declare())
            .refused(blocking("avis_ti")),
        rule("reserve_verdicts_do_not_block_the_declaration")
            .on(after("acv ti", "instruire:reserve avis_acv:reserve avis_ti:reserve"), DAR_RESP,
                declare())
            .accepted("state=laureat"),
        rule("the_person_who_instructed_cannot_declare_the_dossier_laureat")
            .on(all_avis, PROMOTED, declare()).refused(four_eyes()),
        rule("a_responsable_who_instructed_cannot_declare_the_same_dossier")
            .on(after("ti", "instruire@dar-resp-1 avis_ti"), DAR_RESP, declare())
            .refused(four_eyes()),
        rule("another_dar_responsable_declares_an_acv_and_ti_dossier_laureat_from_avis_ti")
            .on(all_avis, DAR_RESP, declare()).accepted("from=avis_ti; state=laureat; version=5"),
        rule("an_acv_only_dossier_is_declared_laureat_from_avis_acv")
            .on(after("acv", "instruire avis_acv"), DAR_RESP, declare())
            .accepted("from=avis_acv; state=laureat"),
        rule("a_ti_only_dossier_is_declared_laureat_from_avis_ti")
            .on(after("ti", "instruire avis_ti"), DAR_RESP, declare())
            .accepted("from=avis_ti; state=laureat"),
        // Every accepted row checks that its journal folds into the dossier built step by step.
        rule("folding_the_journal_gives_the_dossier_built_step_by_step")
            .on(Given("acv ti", &[CANDIDATURE],
                "ajouter_piece:budget_previsionnel instruire avis_acv:reserve avis_ti"),
                DAR_RESP, declare())
            .accepted("version=6; avis=avis_acv avis_ti instruire")
            .and("actors.instruire=dar-agent-1; actors.declarer_laureat=dar-resp-1"),
        // refuser, classer_sans_suite, terminal states, unknown actions
        rule("refuser_needs_a_motivation").on(happy("instruit"), DAR_RESP, cmd("refuser"))
            .refused(MotivationMissing { reason: s("l'action « Refuser le dossier »") }),
        rule("refuser_from_recu_is_refused_as_invalid_state")
            .on(acv_ti, DAR_RESP, refuser("Trop tôt"))
            .refused(InvalidState { action: s("refuser"), state: s("recu") }),
        rule("a_dar_agent_cannot_refuse_a_dossier")
            .on(happy("instruit"), DAR_AGENT, refuser("Hors critères"))
            .refused(RoleTooLow {
                action: s("refuser"), required: s("responsable"), actual: s("agent") }),
        rule("a_verdict_on_refuser_is_refused_as_verdict_not_expected")
            .on(happy("instruit"), DAR_RESP, motivated("refuser", "defavorable", "Hors critères"))
            .refused(VerdictNotExpected { action: s("refuser") }),
        rule("classer_sans_suite_needs_a_motivation")
            .on(acv_ti, DAR_RESP, cmd("classer_sans_suite"))
            .refused(MotivationMissing { reason: s("l'action « Classer sans suite »") }),
        rule("an_acv_agent_cannot_class_a_dossier_sans_suite")
            .on(happy("instruit"), ACV_AGENT, classer("Retrait")).refused(WrongAgency {
                action: s("classer_sans_suite"), required: s("dar"), actual: s("acv") }),
        rule("deposer_on_a_terminal_dossier_is_refused_as_already_exists")
            .on(happy("laureat"), DAR_AGENT, new()).refused(AlreadyExists { action: s("deposer") }),
        rule("an_unknown_action_is_refused_with_or_without_a_dossier/on_a_dossier")
            .on(happy("instruit"), DAR_RESP, cmd("valider"))
            .refused(UnknownAction { action: s("valider") }),
        rule("an_unknown_action_is_refused_with_or_without_a_dossier/on_none")
            .does(DAR_RESP, cmd("valider")).refused(UnknownAction { action: s("valider") }),
        // What a person is offered or held back from, whom a dossier awaits
        rule("a_dar_agent_on_a_complete_dossier_in_recu_may_add_a_piece_ask_for_one_or_instruct")
            .sees(acv_ti, DAR_AGENT, &format!("{offered} instruire")),
        rule("instruire_is_not_offered_while_a_piece_is_missing").sees(one, DAR_AGENT, offered),
        rule("an_acv_agent_has_nothing_to_do_on_a_dossier_in_recu")
            .sees(acv_ti, ACV_AGENT, "offers="),
        rule("on_an_instructed_acv_and_ti_dossier_only_the_acv_may_act_among_the_avis_agencies/acv")
            .sees(happy("instruit"), ACV_AGENT, "offers=avis_acv"),
        rule("on_an_instructed_acv_and_ti_dossier_only_the_acv_may_act_among_the_avis_agencies/ti")
            .sees(happy("instruit"), TI_AGENT, "offers="),
        rule("a_dar_responsable_in_avis_ti_may_add_or_ask_for_a_piece_declare_refuse_or_class_the_\
              dossier")
            .sees(all_avis, DAR_RESP,
                &format!("{offered} declarer_laureat refuser classer_sans_suite")),
        rule("declarer_laureat_is_not_offered_to_the_person_who_instructed")
            .sees(all_avis, PROMOTED, &format!("{offered} refuser classer_sans_suite")),
        rule("declarer_laureat_is_not_offered_after_a_defavorable_verdict")
            .sees(after("ti", "instruire avis_ti:defavorable"), DAR_RESP,
                &format!("{offered} refuser classer_sans_suite")),
        rule("a_dossier_in_recu_awaits_the_dar").sees(acv_ti, DAR_AGENT, "awaits=dar"),
        rule("an_instructed_acv_and_ti_dossier_awaits_the_acv")
            .sees(happy("instruit"), DAR_AGENT, "awaits=acv"),
        rule("an_instructed_ti_only_dossier_awaits_the_ti")
            .sees(instruit_ti, DAR_AGENT, "awaits=ti"),
        rule("an_acv_and_ti_dossier_with_the_acv_avis_awaits_the_ti")
            .sees(happy("avis_acv"), DAR_AGENT, "awaits=ti"),
        rule("an_acv_only_dossier_with_its_avis_awaits_the_dar")
            .sees(after("acv", "instruire avis_acv"), DAR_AGENT, "awaits=dar"),
        rule("a_dossier_with_every_avis_awaits_the_dar").sees(all_avis, DAR_AGENT, "awaits=dar"),
        rule("held_back_actions_name_the_rule_that_keeps_a_persons_button_away/pieces")
            .sees(none, DAR_AGENT, "holds_back=instruire:pieces_missing"),
        rule("held_back_actions_name_the_rule_that_keeps_a_persons_button_away/four_eyes")
            .sees(all_avis, PROMOTED, "holds_back=declarer_laureat:four_eyes"),
        rule("held_back_actions_name_the_rule_that_keeps_a_persons_button_away/another_responsable")
            .sees(all_avis, DAR_RESP, "holds_back="),
        rule("held_back_actions_name_the_rule_that_keeps_a_persons_button_away/avis")
            .sees(happy("instruit"), TI_AGENT, "holds_back=avis_ti:avis_missing"),
        rule("held_back_actions_name_the_rule_that_keeps_a_persons_button_away/not_concerned")
            .sees(instruit, TI_AGENT, "holds_back="),
    ];
    let label = "a_reference_number_beyond_four_digits_is_written_in_full";
    for (n, written) in [(0, "0000"), (10_000, "10000"), (u64::MAX, "18446744073709551615")] {
        rows.push(rule(&format!("{label}/{n}")).does(DAR_AGENT, deposit(n, "acv", BOTH, ""))
            .accepted(&format!("reference=AMI2-V1-{written}")));
    }
    let label = "deposer_places_each_wave_edge_like_the_campaign_does";
    for (n, &(at_edge, placement)) in (1..).zip(WAVE_EDGES) {
        let (row, received_at) = (rule(&format!("{label}/{at_edge}")), at(at_edge));
        let row = row.does(DAR_AGENT, deposit(n, "acv", BOTH, at_edge));
        rows.push(match placement {
            Placement::Wave(w) => row.accepted(&format!("wave={w}; reference=AMI2-V{w}-{n:04}")),
            Placement::NotOpen => row.refused(NotOpen { received_at, opens_at: at(OPENS) }),
            Placement::Closed => row.refused(Closed { received_at, closed_at: at(CLOSES) }),
        });
    }
    for who in [TI_AGENT, DAR_AGENT, DAR_RESP] {
        rows.push(rule(&format!("only_an_acv_actor_gives_the_acv_avis/{}", who.2))
            .on(instruit, who, avis_acv())
            .refused(WrongAgency { action: s("avis_acv"), required: s("acv"), actual: s(who.0) }));
    }
    for state in ["recu", "instruit", "avis_acv", "avis_ti"] {
        let label = "a_dar_responsable_refuses_a_dossier_from_instruit_avis_acv_or_avis_ti";
        let refused = format!("from={state}; state=refuse; motivation=Projet hors périmètre");
        if state != "recu" {
            rows.push(rule(&format!("{label}/{state}"))
                .on(happy(state), DAR_RESP, refuser("Projet hors périmètre")).accepted(&refused));
        }
        let label = "a_dar_responsable_classes_a_dossier_sans_suite_from_every_non_terminal_state";
        rows.push(rule(&format!("{label}/{state}"))
            .on(happy(state), DAR_RESP, classer("La commune se retire"))
            .accepted(&format!("from={state}; state=sans_suite")));
    }
    let someone_else = ("dar", "responsable", "someone-else");
    let everyone = [DAR_AGENT, DAR_RESP, ACV_AGENT, TI_AGENT, someone_else];
    for (state, reopens) in [("laureat", ""), ("refuse", ""), ("sans_suite", "rouvrir")] {
        let label = "nothing_is_offered_on_a_terminal_dossier_but_reopening_one_classed_sans_suite";
        rows.push(rule(&format!("{label}/{state}"))
            .sees(happy(state), DAR_RESP, &format!("offers={reopens}")));
        rows.push(rule(&format!("{label}/{state}/agent")).sees(happy(state), DAR_AGENT, "offers="));
        rows.push(rule(&format!("a_terminal_dossier_awaits_nobody/{state}"))
            .sees(happy(state), DAR_AGENT, "awaits="));
        let label = format!("a_terminal_dossier_refuses_every_action_with_terminal/{state}");
        let commands = commands_refused_in(def, state);
        assert!(commands.len() >= 6, "{label}: {} actions only", commands.len());
        for ((action, command), who) in commands.iter().flat_map(|c| everyone.map(|who| (c, who))) {
            rows.push(rule(&format!("{label}/{action}/{}", who.2))
                .on(happy(state), who, command.clone()).refused(Terminal { state: s(state) }));
        }
    }
    rows
}

// ---------------------------------------------------------------------------
// Rejection codes, fields and messages
// ---------------------------------------------------------------------------

/// One value of every variant, with its code, the field at fault (`-` unless
/// said), whether it is about who acts (only for agency and role) and, where
/// said, the whole message.
#[rustfmt::skip]
fn every_rejection() -> Vec<(Rejection, &'static str)> {
    let (a, t) = (|| s("instruire"), || at("2020-07-20T00:00:00+02:00"));
    vec![
        (UnknownAction { action: s("instruire") }, "code=unknown_action; field=action; message=action \
          inconnue « instruire » : les actions possibles sont décrites par le workflow"),
        (WrongAgency { action: a(), required: s("dar"), actual: s("acv") }, "code=wrong_agency; \
          forbidden=true; message=l'action « instruire » revient à l'agence « dar », \
          pas à « acv »"),
        (RoleTooLow { action: a(), required: s("responsable"), actual: s("agent") },
          "code=role_too_low; forbidden=true"),
        (Terminal { state: s("laureat") }, "code=terminal_state; message=le dossier est à l'état \
          final « laureat » : il n'accepte plus aucune action"),
        (InvalidState { action: a(), state: s("recu") }, "code=invalid_state"),
        (NoDossier { action: a() }, "code=no_dossier"),
        (AlreadyExists { action: a() }, "code=already_exists"),
        (ProgrammeNotConcerned { action: a(), programme: s("acv") },
          "code=programme_not_concerned"),
        (AvisMissing { action: a(), missing: s("avis_acv") }, "code=avis_missing"),
        (PiecesMissing { missing: vec![s(CANDIDATURE), s(BUDGET)] }, "code=pieces_missing; \
          field=pieces; message=pièces manquantes : dossier_candidature, budget_previsionnel"),
        (UnknownPiece { piece: s("photo") }, "code=unknown_piece; field=pieces"),
        (VerdictMissing { action: a() }, "code=verdict_missing; field=verdict"),
        (VerdictNotExpected { action: a() }, "code=verdict_not_expected; field=verdict"),
        (UnknownVerdict { verdict: s("bof") }, "code=unknown_verdict; field=verdict"),
        (MotivationMissing { reason: s("un verdict « Réservé »") }, "code=motivation_missing; \
          field=motivation; message=une motivation est obligatoire pour un verdict « Réservé »"),
        (BlockingVerdict { by: a(), verdict: s("defavorable") }, "code=blocking_verdict"),
        (FourEyes { action: s("declarer_laureat"), previous: a() }, "code=four_eyes; \
          message=quatre yeux : la personne qui a pris l'action « instruire » ne peut pas \
          prendre l'action « declarer_laureat »"),
        (NoProgramme, "code=no_programme; field=programmes; \
          message=le dossier doit relever d'au moins un programme"),
        (UnknownProgramme { programme: s("x") }, "code=unknown_programme; field=programmes"),
        (NotOpen { received_at: t(), opens_at: t() }, "code=not_open; field=received_at"),
        (Closed { received_at: t(), closed_at: t() }, "code=closed; field=received_at"),
        (ReceivedInFuture { received_at: t() }, "code=received_in_future; field=received_at"),
        (MalformedCommand { action: a(), expected: s("une pièce") }, "code=malformed_command"),
        (Doublon { existing: vec![s("AMI2-V1-0001")] }, "code=doublon; field=code_insee"),
        (DueInPast { due_on: "2020-11-20".parse().expect("a date") },
          "code=due_in_past; field=due_on"),
        (NothingToReopen, "code=nothing_to_reopen"),
    ]
}

#[test]
fn every_rejection_has_a_distinct_code_its_field_and_a_french_message() {
    let all = every_rejection();
    // Fails to compile when a variant is added and not listed above.
    for (r, _) in &all {
        match r {
            UnknownAction { .. }
            | WrongAgency { .. }
            | RoleTooLow { .. }
            | Terminal { .. }
            | InvalidState { .. }
            | NoDossier { .. }
            | AlreadyExists { .. }
            | ProgrammeNotConcerned { .. }
            | AvisMissing { .. }
            | PiecesMissing { .. }
            | UnknownPiece { .. }
            | VerdictMissing { .. }
            | VerdictNotExpected { .. }
            | UnknownVerdict { .. }
            | MotivationMissing { .. }
            | BlockingVerdict { .. }
            | FourEyes { .. }
            | NoProgramme
            | UnknownProgramme { .. }
            | NotOpen { .. }
            | Closed { .. }
            | ReceivedInFuture { .. }
            | MalformedCommand { .. }
            | Doublon { .. }
            | DueInPast { .. }
            | NothingToReopen => {}
        }
    }
    let codes: std::collections::BTreeSet<&str> = all.iter().map(|(r, _)| r.code()).collect();
    let snake = |c: &&str| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    assert!(
        codes.len() == all.len() && codes.iter().all(snake),
        "{codes:?}"
    );
    let results = all.iter().map(|(r, facts)| {
        let unsaid = |key: &str| !facts.contains(&format!("{key}="));
        let field = if unsaid("field") { "field=-;" } else { "" };
        let forbidden = if unsaid("forbidden") {
            "forbidden=false;"
        } else {
            ""
        };
        let facts = format!("{field}{forbidden}{facts}");
        assert!(!r.to_string().trim().is_empty(), "{}", r.code());
        (
            r.code(),
            Ok::<_, String>(differ(&facts, |key| refusal_fact(r, key))),
        )
    });
    report(results);
}

// ---------------------------------------------------------------------------
// Stories: the journal's events, folding, the per-action maps
// ---------------------------------------------------------------------------
