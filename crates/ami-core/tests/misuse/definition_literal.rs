// A definition is only obtained through validation: its fields are private.
use ami_core::Definition;

fn main() {
    let def = Definition::ami2();
    let _copy = Definition { version: def.version().into(), ..def };
}
