// A definition cannot be deserialized around its validation.
use ami_core::Definition;

fn main() {
    let _def: Definition = toml::from_str("version = \"x\"").unwrap();
}
