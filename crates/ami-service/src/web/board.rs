//! « Tableau de bord » (per wave, the dossiers per state; per agency, what
//! waits on it) and « Le circuit » (the active workflow), each drawn as SVG
//! on the server with its numbers also in a table.

use std::collections::BTreeMap;
use std::fmt::Write;

use ami_core::{Definition, Guard};
use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{agency_label, error_page, format, render, Layout, SignedIn};
use crate::http::error::ApiError;
use crate::http::AppState;

/// Colours of the states, in definition order (DSFR's illustrative colours,
/// each with a contrast of at least 3:1 on white).
const PALETTE: &[&str] = &[
    "#6a6af4", "#0063cb", "#009081", "#a558a0", "#18753c", "#ce0500", "#666666", "#b34000",
    "#000091", "#7d4e5b",
];

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Text for an SVG: escaped by hand because the SVG is built here, not in
/// a template (labels come from the definition, which the operator writes).
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub struct WaveLine {
    pub label: String,
    pub counts: Vec<i64>,
    pub total: i64,
}

pub struct Legend {
    pub label: String,
    pub colour: &'static str,
}

#[derive(Template)]
#[template(path = "tableau_de_bord.html")]
struct DashboardPage {
    layout: Layout,
    scope: String,
    total: String,
    chart: String,
    legend: Vec<Legend>,
    state_labels: Vec<String>,
    waves: Vec<WaveLine>,
    backlog_chart: String,
    backlog: Vec<(String, i64)>,
}

/// `GET /tableau-de-bord`
pub async fn dashboard(State(state): State<AppState>, signed: SignedIn) -> Response {
    let def = &state.definition;
    let readable = def.readable_programmes(&signed.actor.agency);
    let today = state
        .now()
        .with_timezone(&state.definition.campaign().time_zone)
        .date_naive();
    let stats = match state.store.stats(readable.as_deref(), today).await {
        Ok(s) => s,
        Err(e) => return error_page(Some(signed.layout(&state, "")), ApiError::from(e)),
    };
    let mut per_wave: BTreeMap<u8, Vec<i64>> = def
        .campaign()
        .waves
        .iter()
        .map(|w| (w.number, vec![0; def.states().len()]))
        .collect();
    for c in &stats.by_state {
        if let (Some(counts), Some(i)) = (
            per_wave.get_mut(&c.wave),
            def.states().iter().position(|s| s.id == c.state),
        ) {
            counts[i] += c.count;
        }
    }
    let waves: Vec<WaveLine> = per_wave
        .into_iter()
        .map(|(number, counts)| WaveLine {
            label: format!("Vague {number}"),
            total: counts.iter().sum(),
            counts,
        })
        .collect();
    let mut backlog: Vec<(String, i64)> = def
        .agencies()
        .iter()
        .map(|a| {
            let n = stats
                .awaiting
                .iter()
                .find(|(id, _)| *id == a.id)
                .map_or(0, |(_, n)| *n);
            (a.label.clone(), n)
        })
        .collect();
    let porteur = stats
        .awaiting
        .iter()
        .find(|(id, _)| id == ami_core::PORTEUR)
        .map_or(0, |(_, n)| *n);
    backlog.push(("Porteurs (complément demandé)".into(), porteur));
    let total: i64 = waves.iter().map(|w| w.total).sum();
    let scope = match &readable {
        None => "Tous les dossiers de la campagne.".to_string(),
        Some(own) => format!(
            "Les dossiers des programmes suivis par votre direction : {}.",
            own.iter()
                .map(|p| def.programme(p).map_or(*p, |x| x.label.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    render(&DashboardPage {
        layout: signed.layout(&state, "tableau-de-bord"),
        scope,
        total: format::dossiers(total),
        chart: waves_chart(def, &waves),
        legend: def
            .states()
            .iter()
            .enumerate()
            .map(|(i, s)| Legend {
                label: s.label.clone(),
                colour: colour(i),
            })
            .collect(),
        state_labels: def.states().iter().map(|s| s.label.clone()).collect(),
        waves,
        backlog_chart: backlog_chart(&backlog),
        backlog,
    })
}

/// One horizontal bar per wave, split by state.
fn waves_chart(def: &Definition, waves: &[WaveLine]) -> String {
    let (left, width, bar, gap) = (90.0, 520.0, 28.0, 14.0);
    let max = waves.iter().map(|w| w.total).max().unwrap_or(0).max(1) as f64;
    let height = gap + waves.len() as f64 * (bar + gap);
    let mut svg = format!(
        "<svg class=\"ami-graphique\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-labelledby=\"titre-graphique-vagues\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"titre-graphique-vagues\">Dossiers par vague et par état (le tableau qui suit donne les nombres)</title>",
        left + width + 60.0
    );
    for (row, w) in waves.iter().enumerate() {
        let y = gap + row as f64 * (bar + gap);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"14\" fill=\"#161616\">{}</text>",
            y + bar * 0.68,
            xml(&w.label)
        );
        let mut x = left;
        for (i, n) in w.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let len = *n as f64 / max * width;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{len:.1}\" height=\"{bar}\" fill=\"{}\"><title>{} : {}</title></rect>",
                colour(i),
                xml(def.states()[i].label.as_str()),
                n
            );
            x += len;
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"14\" fill=\"#161616\">{}</text>",
            x + 6.0,
            y + bar * 0.68,
            w.total
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One bar per agency: the dossiers waiting on it.
fn backlog_chart(backlog: &[(String, i64)]) -> String {
    let (left, width, bar, gap) = (250.0, 340.0, 24.0, 12.0);
    let max = backlog.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let height = gap + backlog.len() as f64 * (bar + gap);
    let mut svg = format!(
        "<svg class=\"ami-graphique\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-labelledby=\"titre-graphique-attente\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"titre-graphique-attente\">Dossiers en attente, par direction (le tableau qui suit donne les nombres)</title>",
        left + width + 50.0
    );
    for (row, (label, n)) in backlog.iter().enumerate() {
        let y = gap + row as f64 * (bar + gap);
        // « Cnam – Direction de l'action régionale »: the direction's name.
        let name = label.split_once(" – ").map_or(label.as_str(), |(_, n)| n);
        let short = shorten(name, 36);
        let len = *n as f64 / max * width;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"13\" fill=\"#161616\">{}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{len:.1}\" height=\"{bar}\" fill=\"#000091\"></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"14\" fill=\"#161616\">{n}</text>",
            y + bar * 0.7,
            xml(&short),
            left + len + 6.0,
            y + bar * 0.7,
        );
    }
    svg.push_str("</svg>");
    svg
}

pub struct Step {
    pub label: String,
    pub from: String,
    pub to: String,
    pub agency: String,
    pub role: String,
    pub conditions: String,
}

#[derive(Template)]
#[template(path = "circuit.html")]
struct CircuitPage {
    layout: Layout,
    name: String,
    version: String,
    diagram: String,
    steps: Vec<Step>,
}

/// `GET /circuit`
pub async fn circuit(State(state): State<AppState>, signed: SignedIn) -> Response {
    let def = &state.definition;
    let state_label = |id: &str| def.state_label(id).to_string();
    let steps = def
        .actions()
        .iter()
        .map(|a| {
            let mut conditions = Vec::new();
            if let Some(p) = &a.programme {
                conditions.push(format!(
                    "dossiers du programme {}",
                    def.programme(p).map_or(p.as_str(), |x| x.label.as_str())
                ));
            }
            for p in &a.avis_before {
                if let Some(prog) = def.programme(p) {
                    conditions.push(format!(
                        "après « {} » si le dossier en relève",
                        def.action(&prog.avis_action)
                            .map_or(prog.avis_action.as_str(), |x| x.label.as_str())
                    ));
                }
            }
            for g in &a.guards {
                conditions.push(
                    match g {
                        Guard::PiecesComplete => "toutes les pièces obligatoires reçues",
                        Guard::AllAvis => "tous les avis rendus",
                        Guard::NoBlockingVerdict => "aucun avis bloquant",
                    }
                    .to_string(),
                );
            }
            if let Some(previous) = &a.distinct_from {
                conditions.push(format!(
                    "par une autre personne que celle qui a fait « {} »",
                    def.action(previous)
                        .map_or(previous.as_str(), |x| x.label.as_str())
                ));
            }
            if a.verdict {
                conditions.push("avec un avis".into());
            }
            if a.motivation {
                conditions.push("motivation obligatoire".into());
            }
            Step {
                label: a.label.clone(),
                from: if a.effect == ami_core::Effect::Create {
                    "—".into()
                } else if a.from.iter().any(|f| f == "*") {
                    "tout état".into()
                } else {
                    a.from
                        .iter()
                        .map(|f| state_label(f))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                to: a
                    .to
                    .as_deref()
                    .map_or_else(|| "état inchangé".to_string(), state_label),
                agency: agency_label(def, &a.agency),
                role: def
                    .roles()
                    .iter()
                    .find(|r| r.id == a.role)
                    .map_or_else(|| a.role.to_string(), |r| r.label.clone()),
                conditions: if conditions.is_empty() {
                    "—".into()
                } else {
                    conditions.join(" ; ")
                },
            }
        })
        .collect();
    render(&CircuitPage {
        layout: signed.layout(&state, "circuit"),
        name: def.campaign().name.clone(),
        version: def.version().to_string(),
        diagram: diagram(def),
        steps,
    })
}

/// The states in layers (each state one layer below the states it is
/// reached from), the actions between them as arrows. Actions from every
/// state and those that keep the state are in the table only.
fn diagram(def: &Definition) -> String {
    let n = def.states().len();
    let index = |id: &str| def.states().iter().position(|s| s.id == id);
    // An action possible from every open state would draw an arrow from
    // each: it is said once under the drawing instead.
    let open = def
        .states()
        .iter()
        .filter(|s| !def.is_terminal(&s.id))
        .count();
    let everywhere = |a: &&ami_core::ActionDef| {
        a.from.iter().any(|f| f == "*")
            || (open > 2 && a.from.iter().filter(|f| !def.is_terminal(f)).count() == open)
    };
    let edges: Vec<(usize, usize, &str)> = def
        .actions()
        .iter()
        .filter(|a| !everywhere(a))
        .filter_map(|a| {
            let to = index(a.to.as_deref()?)?;
            Some(
                a.from
                    .iter()
                    .filter_map(move |f| index(f).map(|from| (from, to, a.label.as_str()))),
            )
        })
        .flatten()
        .collect();
    // Longest path from the creation states, bounded so that a cycle (a
    // reopening) cannot push a state down forever.
    let mut layer = vec![0usize; n];
    for _ in 0..n {
        for (from, to, _) in &edges {
            if layer[*to] < layer[*from] + 1 && layer[*from] + 1 < n {
                layer[*to] = layer[*from] + 1;
            }
        }
    }
    let layers = layer.iter().max().map_or(1, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (i, l) in layer.iter().enumerate() {
        rows[*l].push(i);
    }
    let (box_w, box_h, step_x, step_y, pad) = (200.0, 44.0, 230.0, 130.0, 20.0);
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let width = pad * 2.0 + widest * step_x;
    let height = pad * 2.0 + layers as f64 * step_y;
    let mut at = vec![(0.0, 0.0); n];
    for (l, row) in rows.iter().enumerate() {
        let offset = (width - row.len() as f64 * step_x) / 2.0;
        for (k, s) in row.iter().enumerate() {
            at[*s] = (
                offset + k as f64 * step_x + (step_x - box_w) / 2.0,
                pad + l as f64 * step_y,
            );
        }
    }
    let mut svg = format!(
        "<svg class=\"ami-graphique ami-circuit\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"titre-circuit\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"titre-circuit\">Schéma du circuit : les états du dossier et les actions qui les relient (le tableau qui suit les détaille)</title>\
         <defs><marker id=\"fleche\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#3a3a3a\"></path></marker></defs>"
    );
    for (from, to, label) in &edges {
        let (fx, fy) = at[*from];
        let (tx, ty) = at[*to];
        let (x1, y1) = (fx + box_w / 2.0, fy + box_h);
        let (x2, y2) = (tx + box_w / 2.0, ty);
        let (path, lx, ly) = if ty > fy {
            let my = (y1 + y2) / 2.0;
            (
                format!("M {x1:.1} {y1:.1} C {x1:.1} {my:.1}, {x2:.1} {my:.1}, {x2:.1} {y2:.1}"),
                (x1 + x2) / 2.0,
                my,
            )
        } else {
            // Back up a layer or more: around the right side.
            let side = fx.max(tx) + box_w + 30.0;
            (
                format!(
                    "M {:.1} {:.1} C {side:.1} {:.1}, {side:.1} {:.1}, {:.1} {:.1}",
                    fx + box_w,
                    fy + box_h / 2.0,
                    fy + box_h / 2.0,
                    ty + box_h / 2.0,
                    tx + box_w,
                    ty + box_h / 2.0
                ),
                side,
                (fy + ty) / 2.0 + box_h / 2.0,
            )
        };
        let _ = write!(
            svg,
            "<path d=\"{path}\" fill=\"none\" stroke=\"#3a3a3a\" stroke-width=\"1.5\" marker-end=\"url(#fleche)\"></path>\
             <text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#161616\" stroke=\"#ffffff\" stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
            xml(&shorten(label, 34))
        );
    }
    for (i, s) in def.states().iter().enumerate() {
        let (x, y) = at[i];
        let terminal = def.is_terminal(&s.id);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"{}\" fill=\"{}\" stroke=\"#000091\" stroke-width=\"1.5\"></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
            if terminal { 22 } else { 4 },
            if terminal { "#000091" } else { "#f5f5fe" },
            x + box_w / 2.0,
            y + box_h / 2.0 + 4.5,
            if terminal { "#ffffff" } else { "#161616" },
            xml(&shorten(&s.label, 30))
        );
    }
    let notes: Vec<String> = def
        .actions()
        .iter()
        .filter(|a| everywhere(a))
        .filter_map(|a| {
            Some(format!(
                "{} → {}",
                a.label,
                def.state_label(a.to.as_deref()?)
            ))
        })
        .collect();
    svg.push_str("</svg>");
    if !notes.is_empty() {
        let _ = write!(
            svg,
            "<p class=\"fr-text--sm\">Depuis tout état en cours : {}.</p>",
            xml(&notes.join(" ; "))
        );
    }
    svg
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{}…", cut.trim_end())
    }
}
