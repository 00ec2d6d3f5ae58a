//! A workflow definition drawn as a Mermaid state diagram.

use std::fmt::Write;

use crate::definition::{Definition, Effect};

/// Renders `def` as a Mermaid `stateDiagram-v2`: one node per state with its
/// French label, one arrow per (from, action), `[*]` for creation and ends.
pub fn to_mermaid(def: &Definition) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    for s in &def.states {
        let _ = writeln!(out, "    {} : {}", s.id, s.label.replace(':', "#58;"));
    }
    for a in &def.actions {
        let who = format!("{} ({} {})", a.id, a.agency, a.role);
        match a.effect {
            Effect::Create => {
                let _ = writeln!(out, "    [*] --> {} : {}", a.to, who);
            }
            _ => {
                for from in &a.from {
                    let _ = writeln!(out, "    {} --> {} : {}", from, a.to, who);
                }
            }
        }
    }
    for s in def.states.iter().filter(|s| s.terminal) {
        let _ = writeln!(out, "    {} --> [*]", s.id);
    }
    out
}
