//! What changes from one workflow definition to the next, in French: the
//! states, actions, rules, verdicts, pièces, programmes, agencies, roles,
//! waves and deadlines added, removed or changed. `ami workflow diff`
//! prints it; a campaign that changes its rules reads it before migrating.

use crate::definition::{ActionDef, DeadlineStart, Definition, Guard};
use crate::french::french_date;

/// Whether something appeared, disappeared or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// In the new definition only.
    Added,
    /// In the old definition only.
    Removed,
    /// In both, with something different.
    Changed,
}

/// One difference between two definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// What it is about, e.g. `state:recu`, `action:instruire`, `wave:2`,
    /// `campaign`.
    pub subject: String,
    /// The change in French, in the definitions' own words.
    pub text: String,
}

/// The differences from `old` to `new`, campaign first, then agencies,
/// roles, states, pièces, verdicts, programmes and actions; empty when the
/// two say the same thing.
pub fn diff(old: &Definition, new: &Definition) -> Vec<Change> {
    let mut out = Changes(Vec::new());
    campaign(&mut out, old, new);
    let agencies = |d: &Definition| -> Vec<(String, String)> {
        d.agencies()
            .iter()
            .map(|a| (a.id.to_string(), a.label.clone()))
            .collect()
    };
    labelled(
        &mut out,
        "agency",
        "Direction",
        &agencies(old),
        &agencies(new),
    );
    let roles = |d: &Definition| -> Vec<(String, String)> {
        d.roles()
            .iter()
            .map(|r| (r.id.to_string(), r.label.clone()))
            .collect()
    };
    labelled(&mut out, "role", "Rôle", &roles(old), &roles(new));
    let order = |d: &Definition| {
        d.roles()
            .iter()
            .map(|r| r.label.as_str())
            .collect::<Vec<_>>()
            .join(" < ")
    };
    if old
        .roles()
        .iter()
        .map(|r| &r.id)
        .ne(new.roles().iter().map(|r| &r.id))
    {
        out.changed(
            "roles",
            format!("Ordre des rôles : {} → {}.", order(old), order(new)),
        );
    }
    states(&mut out, old, new);
    pieces(&mut out, old, new);
    verdicts(&mut out, old, new);
    programmes(&mut out, old, new);
    actions(&mut out, old, new);
    // Where the dossiers of a state that is gone go: a state renamed but
    // not relabelled says nothing else.
    for (former, to) in new.state_map() {
        if old.state(former).is_some() && new.state(former).is_none() {
            out.changed(
                &format!("state:{former}"),
                format!(
                    "Les dossiers à l'état « {} » ({former}) passent à « {} » ({to}).",
                    old.state_label(former),
                    new.state_label(to)
                ),
            );
        }
    }
    out.0
}

struct Changes(Vec<Change>);

impl Changes {
    fn push(&mut self, kind: ChangeKind, subject: String, text: String) {
        self.0.push(Change {
            kind,
            subject,
            text,
        });
    }

    fn changed(&mut self, subject: &str, text: String) {
        self.push(ChangeKind::Changed, subject.to_string(), text);
    }

    /// « Pièce « Budget » (budget) supprimée. » (`gone`: the noun's ending).
    fn removed(&mut self, kind: &str, noun: &str, gone: &str, id: &str, label: &str) {
        self.push(
            ChangeKind::Removed,
            format!("{kind}:{id}"),
            format!("{noun} « {label} » ({id}) {gone}."),
        );
    }

    /// « État instruit : libellé « A » → « B ». », when they differ.
    fn relabelled(&mut self, kind: &str, noun: &str, id: &str, old: &str, new: &str) {
        if old != new {
            self.changed(
                &format!("{kind}:{id}"),
                format!("{noun} {id} : libellé « {old} » → « {new} »."),
            );
        }
    }
}

/// Items of `old` and `new` paired by id: removed, added, in both.
fn pair<'a, T, K: PartialEq>(
    old: &'a [T],
    new: &'a [T],
    id: impl Fn(&T) -> K,
) -> (Vec<&'a T>, Vec<&'a T>, Vec<(&'a T, &'a T)>) {
    let removed = old
        .iter()
        .filter(|o| !new.iter().any(|n| id(n) == id(o)))
        .collect();
    let added = new
        .iter()
        .filter(|n| !old.iter().any(|o| id(o) == id(n)))
        .collect();
    let both = old
        .iter()
        .filter_map(|o| new.iter().find(|n| id(n) == id(o)).map(|n| (o, n)))
        .collect();
    (removed, added, both)
}

/// Items that are an id and a label (agencies, roles).
fn labelled(
    out: &mut Changes,
    kind: &str,
    noun: &str,
    old: &[(String, String)],
    new: &[(String, String)],
) {
    let (removed, added, both) = pair(old, new, |(id, _)| id.clone());
    for (id, label) in removed {
        out.push(
            ChangeKind::Removed,
            format!("{kind}:{id}"),
            format!("{noun} « {label} » ({id}) supprimé(e)."),
        );
    }
    for (id, label) in added {
        out.push(
            ChangeKind::Added,
            format!("{kind}:{id}"),
            format!("{noun} « {label} » ({id}) ajouté(e)."),
        );
    }
    for ((id, a), (_, b)) in both {
        if a != b {
            out.changed(
                &format!("{kind}:{id}"),
                format!("{noun} {id} : libellé « {a} » → « {b} »."),
            );
        }
    }
}

fn campaign(out: &mut Changes, old: &Definition, new: &Definition) {
    if old.version() != new.version() {
        out.changed(
            "campaign",
            format!(
                "Version de la définition : {} → {}.",
                old.version(),
                new.version()
            ),
        );
    }
    let (a, b) = (&old.campaign(), &new.campaign());
    if a.name != b.name {
        out.changed(
            "campaign",
            format!("Campagne : « {} » → « {} ».", a.name, b.name),
        );
    }
    if a.reference_prefix != b.reference_prefix {
        out.changed(
            "campaign",
            format!(
                "Préfixe des références : {} → {} (les dossiers déjà déposés gardent la leur).",
                a.reference_prefix, b.reference_prefix
            ),
        );
    }
    if a.time_zone != b.time_zone {
        out.changed(
            "campaign",
            format!("Fuseau horaire : {} → {}.", a.time_zone, b.time_zone),
        );
    }
    if a.calendar != b.calendar {
        out.changed(
            "campaign",
            format!(
                "Calendrier des jours fériés : {} → {}.",
                a.calendar.label(),
                b.calendar.label()
            ),
        );
    }
    if a.opens_on != b.opens_on {
        out.changed(
            "campaign",
            format!(
                "Ouverture de la campagne : le {} → le {}.",
                french_date(a.opens_on),
                french_date(b.opens_on)
            ),
        );
    }
    let (removed, added, both) = pair(&a.waves, &b.waves, |w| w.number);
    for w in removed {
        out.push(
            ChangeKind::Removed,
            format!("wave:{}", w.number),
            format!(
                "Vague {} supprimée (elle fermait le {}).",
                w.number,
                french_date(w.closes_on)
            ),
        );
    }
    for w in added {
        out.push(
            ChangeKind::Added,
            format!("wave:{}", w.number),
            format!(
                "Vague {} ajoutée, close le {}.",
                w.number,
                french_date(w.closes_on)
            ),
        );
    }
    for (x, y) in both {
        if x.closes_on != y.closes_on {
            out.changed(
                &format!("wave:{}", x.number),
                format!(
                    "Vague {} : date limite du {} → {}.",
                    x.number,
                    french_date(x.closes_on),
                    french_date(y.closes_on)
                ),
            );
        }
    }
}

fn states(out: &mut Changes, old: &Definition, new: &Definition) {
    let (removed, added, both) = pair(old.states(), new.states(), |s| s.id.clone());
    for s in removed {
        out.removed("state", "État", "supprimé", &s.id, &s.label);
    }
    for s in added {
        out.push(
            ChangeKind::Added,
            format!("state:{}", s.id),
            format!(
                "État « {} » ({}) ajouté{}.",
                s.label,
                s.id,
                if s.terminal { ", final" } else { "" }
            ),
        );
    }
    for (a, b) in both {
        let subject = format!("state:{}", a.id);
        out.relabelled("state", "État", &a.id, &a.label, &b.label);
        if a.terminal != b.terminal {
            out.changed(
                &subject,
                format!(
                    "État « {} » : {}.",
                    b.label,
                    if b.terminal {
                        "devient final"
                    } else {
                        "n'est plus final"
                    }
                ),
            );
        }
    }
}

fn pieces(out: &mut Changes, old: &Definition, new: &Definition) {
    let (removed, added, both) = pair(old.pieces(), new.pieces(), |p| p.id.clone());
    for p in removed {
        out.removed("piece", "Pièce", "supprimée", &p.id, &p.label);
    }
    for p in added {
        out.push(
            ChangeKind::Added,
            format!("piece:{}", p.id),
            format!(
                "Pièce « {} » ({}) ajoutée, {}.",
                p.label,
                p.id,
                if p.required {
                    "obligatoire"
                } else {
                    "facultative"
                }
            ),
        );
    }
    for (a, b) in both {
        let subject = format!("piece:{}", a.id);
        out.relabelled("piece", "Pièce", &a.id, &a.label, &b.label);
        if a.required != b.required {
            out.changed(
                &subject,
                format!(
                    "Pièce « {} » : {}.",
                    b.label,
                    if b.required {
                        "devient obligatoire"
                    } else {
                        "devient facultative"
                    }
                ),
            );
        }
        if a.accept != b.accept {
            let types = |p: &crate::definition::PieceDef| {
                p.accepted_types()
                    .map(|t| t.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.changed(
                &subject,
                format!(
                    "Pièce « {} » : formats {} → {}.",
                    b.label,
                    types(a),
                    types(b)
                ),
            );
        }
    }
}

fn verdicts(out: &mut Changes, old: &Definition, new: &Definition) {
    let (removed, added, both) = pair(old.verdicts(), new.verdicts(), |v| v.id.clone());
    for v in removed {
        out.removed("verdict", "Verdict", "supprimé", &v.id, &v.label);
    }
    for v in added {
        out.push(
            ChangeKind::Added,
            format!("verdict:{}", v.id),
            format!("Verdict « {} » ({}) ajouté.", v.label, v.id),
        );
    }
    for (a, b) in both {
        let subject = format!("verdict:{}", a.id);
        out.relabelled("verdict", "Verdict", &a.id, &a.label, &b.label);
        if a.requires_motivation != b.requires_motivation {
            out.changed(
                &subject,
                format!(
                    "Verdict « {} » : la motivation {}.",
                    b.label,
                    if b.requires_motivation {
                        "devient obligatoire"
                    } else {
                        "n'est plus obligatoire"
                    }
                ),
            );
        }
        if a.blocking != b.blocking {
            out.changed(
                &subject,
                format!(
                    "Verdict « {} » : {}.",
                    b.label,
                    if b.blocking {
                        "devient bloquant"
                    } else {
                        "n'est plus bloquant"
                    }
                ),
            );
        }
    }
}

fn programmes(out: &mut Changes, old: &Definition, new: &Definition) {
    let (removed, added, both) = pair(old.programmes(), new.programmes(), |p| p.id.clone());
    for p in removed {
        out.removed("programme", "Programme", "supprimé", &p.id, &p.label);
    }
    for p in added {
        out.push(
            ChangeKind::Added,
            format!("programme:{}", p.id),
            format!(
                "Programme « {} » ({}) ajouté : ses dossiers attendent « {} ».",
                p.label,
                p.id,
                action_label(new, &p.avis_action)
            ),
        );
    }
    for (a, b) in both {
        let subject = format!("programme:{}", a.id);
        out.relabelled("programme", "Programme", &a.id, &a.label, &b.label);
        if a.avis_action != b.avis_action {
            out.changed(
                &subject,
                format!(
                    "Programme « {} » : l'avis attendu passe de « {} » à « {} ».",
                    b.label,
                    action_label(old, &a.avis_action),
                    action_label(new, &b.avis_action)
                ),
            );
        }
    }
}

fn action_label(def: &Definition, id: &str) -> String {
    def.action(id)
        .map_or_else(|| id.to_string(), |a| a.label.clone())
}

/// The states an action starts from, by their labels.
fn from_states(def: &Definition, a: &ActionDef) -> String {
    if a.from.is_empty() {
        return "—".into();
    }
    a.from
        .iter()
        .map(|s| {
            if s == "*" {
                "tout état".to_string()
            } else {
                def.state_label(s).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// « Cnam – DAR, rôle Agent »
fn agency_and_role(def: &Definition, a: &ActionDef) -> String {
    let agency = def
        .agencies()
        .iter()
        .find(|x| x.id == a.agency)
        .map_or(a.agency.as_str(), |x| x.label.as_str());
    let role = def
        .roles()
        .iter()
        .find(|x| x.id == a.role)
        .map_or(a.role.as_str(), |x| x.label.as_str());
    format!("{agency}, rôle {role}")
}

/// « 15 jours ouvrés après « Instruire le dossier » », « sans délai ».
fn deadline(def: &Definition, a: &ActionDef) -> String {
    let Some(d) = &a.deadline else {
        return "sans délai".into();
    };
    let days = match d.working_days {
        1 => "1 jour ouvré".to_string(),
        n => format!("{n} jours ouvrés"),
    };
    match &d.from {
        DeadlineStart::Reception => format!("{days} après la réception du dossier"),
        DeadlineStart::Action(from) => format!("{days} après « {} »", action_label(def, from)),
    }
}

fn guards(a: &ActionDef) -> String {
    let words: Vec<&str> = a
        .guards
        .iter()
        .map(|g| match g {
            Guard::PiecesComplete => "toutes les pièces obligatoires reçues",
            Guard::AllAvis => "tous les avis rendus",
            Guard::NoBlockingVerdict => "aucun avis bloquant",
        })
        .collect();
    if words.is_empty() {
        "aucune".into()
    } else {
        words.join(", ")
    }
}

fn actions(out: &mut Changes, old: &Definition, new: &Definition) {
    let (removed, added, both) = pair(old.actions(), new.actions(), |a| a.id.clone());
    for a in removed {
        out.removed("action", "Action", "supprimée", &a.id, &a.label);
    }
    for a in added {
        out.push(
            ChangeKind::Added,
            format!("action:{}", a.id),
            format!(
                "Action « {} » ({}) ajoutée : {}, depuis {}{}.",
                a.label,
                a.id,
                agency_and_role(new, a),
                from_states(new, a),
                a.to.as_deref()
                    .map(|t| format!(" vers {}", new.state_label(t)))
                    .unwrap_or_default()
            ),
        );
    }
    for (a, b) in both {
        let subject = format!("action:{}", a.id);
        let mut said =
            |what: String| out.changed(&subject, format!("Action « {} » : {what}.", b.label));
        if a.label != b.label {
            said(format!("libellé « {} » → « {} »", a.label, b.label));
        }
        if a.effect != b.effect {
            said(format!("effet {:?} → {:?}", a.effect, b.effect));
        }
        if a.from != b.from {
            said(format!(
                "depuis {} → {}",
                from_states(old, a),
                from_states(new, b)
            ));
        }
        if a.to != b.to {
            let to = |d: &Definition, x: &ActionDef| {
                x.to.as_deref().map_or_else(
                    || "état inchangé".to_string(),
                    |t| d.state_label(t).to_string(),
                )
            };
            said(format!("vers {} → {}", to(old, a), to(new, b)));
        }
        if a.agency != b.agency || a.role != b.role {
            said(format!(
                "revient à {} → {}",
                agency_and_role(old, a),
                agency_and_role(new, b)
            ));
        }
        if a.verdict != b.verdict {
            said(if b.verdict {
                "porte désormais un avis".into()
            } else {
                "ne porte plus d'avis".into()
            });
        }
        if a.motivation != b.motivation {
            said(if b.motivation {
                "motivation désormais obligatoire".into()
            } else {
                "motivation plus obligatoire".into()
            });
        }
        if a.programme != b.programme {
            let p = |d: &Definition, x: &ActionDef| {
                x.programme.as_deref().map_or_else(
                    || "tous les dossiers".to_string(),
                    |p| {
                        format!(
                            "le programme {}",
                            d.programme(p).map_or(p, |x| x.label.as_str())
                        )
                    },
                )
            };
            said(format!("concerne {} → {}", p(old, a), p(new, b)));
        }
        if a.avis_before != b.avis_before {
            said(format!(
                "avis préalables [{}] → [{}]",
                a.avis_before.join(", "),
                b.avis_before.join(", ")
            ));
        }
        if a.guards != b.guards {
            said(format!("conditions : {} → {}", guards(a), guards(b)));
        }
        if a.distinct_from != b.distinct_from {
            let four = |d: &Definition, x: &ActionDef| {
                x.distinct_from.as_deref().map_or_else(
                    || "sans règle des quatre yeux".to_string(),
                    |p| format!("par une autre personne que pour « {} »", action_label(d, p)),
                )
            };
            said(format!("{} → {}", four(old, a), four(new, b)));
        }
        if a.deadline != b.deadline {
            said(format!(
                "délai : {} → {}",
                deadline(old, a),
                deadline(new, b)
            ));
        }
        if a.next_step != b.next_step {
            said(if b.next_step {
                "devient une étape attendue (les files « À traiter » la montrent)".into()
            } else {
                "n'est plus une étape attendue".into()
            });
        }
    }
}
