//! A workflow definition drawn as a Mermaid state diagram.

use std::fmt::Write;

use crate::definition::{Definition, Effect};

/// Renders `def` as a Mermaid `stateDiagram-v2`: one node per state with its
/// French label, one arrow per (from, action), `[*]` for creation and ends.
pub fn to_mermaid(def: &Definition) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    for s in def.states() {
        let _ = writeln!(out, "    {} : {}", s.id, s.label.replace(':', "#58;"));
    }
    for a in def.actions() {
        let who = format!("{} ({} {})", a.id, a.agency, a.role);
        match a.effect {
            Effect::Create => {
                if let Some(to) = &a.to {
                    let _ = writeln!(out, "    [*] --> {} : {}", to, who);
                }
            }
            // Back to each state the dossier can have left for `from`.
            Effect::Reopen => {
                for from in &a.from {
                    for back in def.actions().iter().filter(|b| b.to.as_ref() == Some(from)) {
                        for left in back.from.iter().filter(|s| *s != from) {
                            let _ = writeln!(out, "    {} --> {} : {}", from, left, who);
                        }
                    }
                }
            }
            _ => {
                for from in &a.from {
                    let to = a.target(from).unwrap_or(from);
                    let _ = writeln!(out, "    {} --> {} : {}", from, to, who);
                }
            }
        }
    }
    for s in def.states().iter().filter(|s| s.terminal) {
        let _ = writeln!(out, "    {} --> [*]", s.id);
    }
    out
}
