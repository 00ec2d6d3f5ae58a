// How a dossier stores its avis is the engine's business.
use ami_core::ActionMap;

fn main() {
    let _map: ActionMap<u8> = ActionMap::new();
}
