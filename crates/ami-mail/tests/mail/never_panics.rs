//! No input makes `parse` panic: random bytes, and the corpus's messages
//! cut, spliced and with bytes changed.

use ami_mail::{guess, parse};
use proptest::prelude::*;

use crate::corpus;

const CORPUS: &[&str] = &[
    "01-candidature-nevers.eml",
    "02-transfert-chateauroux.eml",
    "03-sans-message-id.eml",
    "04-date-seule.eml",
    "05-limite-de-vague.eml",
    "06-mime-casse.eml",
];

fn check(raw: &[u8]) {
    if let Ok(arrival) = parse(raw) {
        assert!(!arrival.from.address.is_empty());
        for a in &arrival.attachments {
            assert_eq!(a.size, a.data.len() as u64);
            assert!(!a.filename.is_empty());
            assert!(!a.filename.contains(['/', '\\']));
        }
        let guesses = guess(&arrival);
        assert!(guesses.budget.is_none_or(|i| i < arrival.attachments.len()));
        assert!(guesses
            .dossier
            .is_none_or(|i| i < arrival.attachments.len()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_make_parse_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&raw);
    }

    #[test]
    fn random_text_with_headers_never_makes_parse_panic(
        headers in "([A-Za-z-]{1,12}: [ -~]{0,40}\r?\n){0,8}",
        body in "[ -~\r\n]{0,400}",
    ) {
        check(format!("{headers}\r\n{body}").as_bytes());
    }

    #[test]
    fn mutated_corpus_messages_never_make_parse_panic(
        which in 0..CORPUS.len(),
        cut in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        splice in any::<prop::sample::Index>(),
    ) {
        let mut raw = corpus(CORPUS[which]);
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        // A message cut short, and the cut-off end moved before its start.
        let cut = cut.index(raw.len() + 1);
        check(&raw[..cut]);
        let splice = splice.index(raw.len() + 1);
        let mut spliced = raw[splice..].to_vec();
        spliced.extend_from_slice(&raw[..splice]);
        check(&spliced);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_subject_and_address_give_guesses_without_panicking(
        subject in "\\PC{0,200}",
        address in "\\PC{0,60}",
    ) {
        let _ = ami_mail::guess::guess_commune(&subject, &address);
        let _ = ami_mail::guess::guess_reference(&subject);
    }
}
