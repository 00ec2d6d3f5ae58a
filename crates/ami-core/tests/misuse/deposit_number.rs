// The dossier's number is given to `decide` (`Target::New`), not carried by
// what the town sent.
use ami_core::{DossierId, NewDossier, Porteur};

fn main() {
    let _new = NewDossier {
        id: DossierId(uuid::Uuid::nil()),
        number: 7,
        commune: "Nevers".into(),
        code_insee: "58194".into(),
        porteur: Porteur { nom: "Ville de Nevers".into(), email: None },
        programmes: Vec::new(),
        received_at: chrono::Utc::now(),
        pieces: Vec::new(),
    };
}
