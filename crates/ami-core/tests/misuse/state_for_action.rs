// A state is not an action.
use ami_core::{Command, Definition};

fn main() {
    let def = Definition::ami2();
    let recu = def.state_id("recu").unwrap();
    let _command = Command::transition(recu);
}
