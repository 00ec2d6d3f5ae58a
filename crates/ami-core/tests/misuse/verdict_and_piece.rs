// A command carries what its kind of action needs, nothing else: an avis
// carries no pièce.
use ami_core::{Command, Definition};

fn main() {
    let def = Definition::ami2();
    let _command = Command::Verdict {
        action: def.action_id("avis_acv").unwrap(),
        verdict: def.verdict_id("favorable").unwrap(),
        motivation: None,
        comment: None,
        piece: None,
    };
}
