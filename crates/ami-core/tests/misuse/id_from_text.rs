// An identifier comes from a definition, not from any text.
use ami_core::ActionId;

fn main() {
    let _valider = ActionId::from("valider");
}
