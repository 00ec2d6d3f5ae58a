// A definition is only obtained through validation: its fields are private,
// so a validated one cannot be altered either.
use ami_core::Definition;

fn main() {
    let mut def = Definition::ami2();
    def.version = "ami2-2021.1".into();
}
