//! The communes of the COG: a dossier's code INSEE must be a commune's, and
//! its commune name that commune's name, accents, case and hyphens aside.

use ami_core::communes::{
    check_commune, commune, communes, departement, departements, region, regions, successor,
    CommuneProblem, Zone,
};

/// The communes actuelles of @etalab/decoupage-administratif 6.0.0 (COG
/// 2026): 34,875 in metropolitan France and the DROM, 94 in the
/// collectivités d'outre-mer. A new extraction changes this number.
const COMMUNES_IN_THE_DATA: usize = 34_969;

#[test]
fn a_code_and_its_name_are_accepted_as_typed() {
    for (code, typed, official) in [
        ("58194", "Nevers", "Nevers"),
        ("58194", "NEVERS", "Nevers"),
        ("75056", "Paris", "Paris"),
        ("42218", "Saint-Étienne", "Saint-Étienne"),
        ("42218", "saint etienne", "Saint-Étienne"),
        ("42218", "SAINT-ÉTIENNE", "Saint-Étienne"),
        ("42218", "Saint-E\u{301}tienne", "Saint-Étienne"),
        ("76351", "Le Havre", "Le Havre"),
        ("95313", "L’Isle-Adam", "L'Isle-Adam"),
    ] {
        // Act
        let found = check_commune(code, typed);

        // Assert
        assert_eq!(found.map(|c| c.name), Ok(official), "{code} {typed}");
    }
}

#[test]
fn a_code_no_commune_has_is_refused_as_unknown() {
    for code in [
        "99999", "00000", "2C001", "75101", "", "5819", "58194 ", "2a004",
    ] {
        // Act
        let problem = check_commune(code, "Nevers").unwrap_err();

        // Assert
        assert_eq!(problem.code(), "commune_inconnue", "{code:?}");
        assert_eq!(problem.field(), "code_insee");
        assert!(
            matches!(
                problem,
                CommuneProblem::Unknown {
                    successor: None,
                    ..
                }
            ),
            "{code:?}"
        );
    }
    assert_eq!(
        check_commune("99999", "Nevers").unwrap_err().to_string(),
        "Le code INSEE 99999 ne correspond à aucune commune du code officiel géographique (COG 2026)."
    );
}

#[test]
fn a_former_code_is_unknown_but_names_the_commune_that_took_it_over() {
    // Arrange: Saint-Bois (01340) merged into Arboys en Bugey (01015);
    // Ajaccio was 20004 before Corsica had two départements.
    let problem = check_commune("01340", "Saint-Bois").unwrap_err();

    // Assert
    assert_eq!(problem.code(), "commune_inconnue");
    assert_eq!(
        problem.to_string(),
        "Le code INSEE 01340 ne correspond à aucune commune du code officiel géographique \
         (COG 2026) : c'est un ancien code, remplacé par 01015 (commune « Arboys en Bugey »)."
    );
    assert_eq!(successor("20004").map(|c| c.name), Some("Ajaccio"));
    assert_eq!(successor("2A004"), None);
}

#[test]
fn a_name_that_is_not_the_codes_is_refused_with_the_expected_name() {
    // Act
    let problem = check_commune("58194", "Never").unwrap_err();

    // Assert
    assert_eq!(problem.code(), "commune_incoherente");
    assert_eq!(problem.field(), "commune");
    assert!(
        matches!(problem, CommuneProblem::Mismatch { expected, .. } if expected.name == "Nevers")
    );
    assert_eq!(
        problem.to_string(),
        "Le code INSEE 58194 est celui de la commune « Nevers », pas de « Never »."
    );
}

#[test]
fn saint_is_not_abbreviated_nor_a_homonym_accepted() {
    // Arrange: Saint-Denis of La Réunion is not the one of Seine-Saint-Denis.
    let abbreviated = check_commune("42218", "St-Étienne").unwrap_err();
    let homonym = check_commune("93066", "Saint-Denis de la Réunion").unwrap_err();

    // Assert
    assert!(abbreviated.to_string().contains("« Saint-Étienne »"));
    assert_eq!(homonym.code(), "commune_incoherente");
    assert_eq!(
        check_commune("93066", "Saint-Denis").map(|c| c.departement),
        Ok("93")
    );
    assert_eq!(
        check_commune("97411", "Saint-Denis").map(|c| c.departement),
        Ok("974")
    );
}

#[test]
fn corsican_communes_are_in_2a_and_2b_of_the_region_corse() {
    // Act
    let ajaccio = check_commune("2A004", "Ajaccio").unwrap();
    let bastia = check_commune("2B033", "Bastia").unwrap();

    // Assert
    assert_eq!((ajaccio.departement, ajaccio.region), ("2A", "94"));
    assert_eq!((bastia.departement, bastia.region), ("2B", "94"));
    assert_eq!(departement("2A").unwrap().name, "Corse-du-Sud");
    assert_eq!(departement("2B").unwrap().name, "Haute-Corse");
    assert_eq!(region("94").unwrap().name, "Corse");
    assert_eq!(region("94").unwrap().zone, Zone::Metropole);
}

#[test]
fn overseas_communes_have_their_departement_and_region() {
    for (code, name, dep, dep_name, reg) in [
        ("97105", "Basse-Terre", "971", "Guadeloupe", "01"),
        ("97209", "Fort-de-France", "972", "Martinique", "02"),
        ("97302", "Cayenne", "973", "Guyane", "03"),
        ("97411", "Saint-Denis", "974", "La Réunion", "04"),
        ("97611", "Mamoudzou", "976", "Mayotte", "06"),
    ] {
        // Act
        let found = check_commune(code, name).unwrap();

        // Assert
        assert_eq!((found.departement, found.region), (dep, reg), "{code}");
        assert_eq!(departement(dep).unwrap().name, dep_name);
        assert_eq!(departement(dep).unwrap().region, reg);
        assert_eq!(region(reg).unwrap().zone, Zone::Drom);
    }
}

#[test]
fn communes_of_the_collectivites_d_outre_mer_are_their_own_departement_and_region() {
    // Act
    let saint_martin = check_commune("97801", "Saint-Martin").unwrap();

    // Assert
    assert_eq!(
        (saint_martin.departement, saint_martin.region),
        ("978", "978")
    );
    assert_eq!(region("978").unwrap().zone, Zone::Com);
}

#[test]
fn a_commune_names_its_departement_and_region() {
    // Act
    let saint_etienne = commune("42218").unwrap();

    // Assert
    assert_eq!(
        departement(saint_etienne.departement).unwrap().name,
        "Loire"
    );
    assert_eq!(
        region(saint_etienne.region).unwrap().name,
        "Auvergne-Rhône-Alpes"
    );
    assert_eq!(departement("58").unwrap().name, "Nièvre");
    assert_eq!(region("27").unwrap().name, "Bourgogne-Franche-Comté");
    assert_eq!(departement("99"), None);
    assert_eq!(region("99"), None);
}

#[test]
fn every_communes_departement_and_region_exist_and_agree() {
    for c in communes() {
        let dep = departement(c.departement)
            .unwrap_or_else(|| panic!("{}: département {}", c.code, c.departement));
        assert_eq!(dep.region, c.region, "{}", c.code);
        assert!(
            region(c.region).is_some(),
            "{}: région {}",
            c.code,
            c.region
        );
        // The département is the code's first two characters, three overseas.
        let prefix = if c.code.starts_with("97") || c.code.starts_with("98") {
            3
        } else {
            2
        };
        assert_eq!(&c.code[..prefix], c.departement, "{}", c.code);
        assert!(!c.name.is_empty() && c.name.trim() == c.name, "{}", c.code);
    }
    for d in departements() {
        assert!(region(d.region).is_some(), "{}", d.code);
    }
    assert_eq!((departements().len(), regions().len()), (109, 26));
}

#[test]
fn every_commune_is_found_by_its_code_and_accepted_by_its_name() {
    for c in communes() {
        assert_eq!(check_commune(c.code, c.name), Ok(c));
    }
}

#[test]
fn the_data_holds_every_commune_actuelle_of_the_package() {
    // Assert
    assert_eq!(communes().len(), COMMUNES_IN_THE_DATA);
    assert!(communes().len() > 34_000);
    let overseas = communes()
        .iter()
        .filter(|c| region(c.region).unwrap().zone == Zone::Com)
        .count();
    assert_eq!(overseas, 94);
    assert_eq!(ami_core::communes::cog_year(), "2026");
    assert_eq!(ami_core::communes::source_version(), "6.0.0");
}

#[test]
fn the_crate_root_reexports_the_check() {
    let found: &ami_core::Commune = ami_core::check_commune("58194", "Nevers").unwrap();
    assert_eq!(
        ami_core::departement(found.departement).map(|d| d.name),
        Some("Nièvre")
    );
}
