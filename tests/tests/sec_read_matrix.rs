//! Need to know, as a matrix generated from the definition: every caller
//! (each agency × each role) × every set of programmes a dossier may have
//! × every read (the dossier, its history, its receipt, its files, the list, the search,
//! the stats, the feed and the export). A caller whose agency gives the avis of some
//! programmes sees only the dossiers of those programmes; for them the
//! others do not exist (404, absent from lists and counts), and the answer
//! does not depend on whether the dossier exists.

use ami_core::Definition;
use ami_tests::*;
use serde_json::Value;

/// Every non-empty set of the definition's programmes.
fn programme_sets(def: &Definition) -> Vec<Vec<String>> {
    let ids: Vec<String> = def.programmes().iter().map(|p| p.id.to_string()).collect();
    (1..1u32 << ids.len())
        .map(|mask| {
            ids.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, id)| id.clone())
                .collect()
        })
        .collect()
}

async fn every_read_follows_need_to_know(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let def = app.definition.clone();
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let kind = def.pieces()[0].id.to_string();

    // One dossier per set of programmes, each with its files.
    let mut dossiers: Vec<(Vec<String>, Value)> = Vec::new();
    for (i, programmes) in programme_sets(&def).into_iter().enumerate() {
        let refs: Vec<&str> = programmes.iter().map(String::as_str).collect();
        let body = new_dossier(&format!("Commune {i}"), &refs);
        let d = app.deposit_body(&dar, &body).await;
        dossiers.push((programmes, d));
    }
    let absent = uuid::Uuid::now_v7();

    let mut checked = 0;
    for agency in def.agencies() {
        for role in def.roles() {
            let who = app
                .person(
                    &format!("Lecteur {} {}", agency.id, role.id),
                    &agency.id,
                    &role.id,
                )
                .await;
            let case = format!("{}/{}", agency.id, role.id);
            let (_, list) = app.get(&who, "/dossiers?limit=500").await;
            let listed: Vec<&str> = list["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|d| d["id"].as_str())
                .collect();
            let (_, stats) = app.get(&who, "/stats").await;
            let visible_count = dossiers
                .iter()
                .filter(|(p, _)| def.may_read(&agency.id, p))
                .count();
            assert_eq!(stats["total"], visible_count, "{case}: stats {stats}");
            let (feed, _) = app.follow_feed(&who, None, 1000, visible_count).await;
            let export = app
                .send(
                    reqwest::Method::GET,
                    "/exports/dossiers.csv",
                    Some(&who),
                    &[],
                    None,
                )
                .await;
            assert_eq!(export.status, StatusCode::OK, "{case}: export");

            for (programmes, d) in &dossiers {
                let id = d["id"].as_str().expect("id");
                let reference = d["reference"].as_str().expect("reference");
                let visible = def.may_read(&agency.id, programmes);
                let what = format!("{case} on a dossier of {programmes:?}");
                let status = |s: StatusCode| {
                    if visible {
                        assert!(s.is_success(), "{what}: {s}");
                    } else {
                        assert_eq!(s, StatusCode::NOT_FOUND, "{what}");
                    }
                };
                status(app.get(&who, &format!("/dossiers/{id}")).await.0);
                status(app.get(&who, &format!("/dossiers/{id}/history")).await.0);
                for path in [
                    format!("/dossiers/{id}/receipt"),
                    format!("/dossiers/{id}/pieces/{kind}"),
                    format!("/dossiers/{id}/pieces/{kind}/versions/1"),
                ] {
                    let reply = app
                        .send(reqwest::Method::GET, &path, Some(&who), &[], None)
                        .await;
                    status(reply.status);
                    if !visible {
                        // The same answer as for a dossier that does not exist.
                        let none = app
                            .send(
                                reqwest::Method::GET,
                                &path.replace(id, &absent.to_string()),
                                Some(&who),
                                &[],
                                None,
                            )
                            .await;
                        assert_eq!(reply.text, none.text, "{what}: {path}");
                    }
                }
                assert_eq!(listed.contains(&id), visible, "{what}: list");
                let (_, found) = app.get(&who, &format!("/dossiers?q={reference}")).await;
                assert_eq!(
                    found["items"].as_array().map(Vec::len),
                    Some(usize::from(visible)),
                    "{what}: search"
                );
                assert_eq!(
                    feed.iter().any(|e| e["dossier_id"] == id),
                    visible,
                    "{what}: feed"
                );
                assert_eq!(
                    export.text.contains(&format!("\r\n{reference};")),
                    visible,
                    "{what}: export"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        def.agencies().len() * def.roles().len() * dossiers.len(),
        "every cell of the matrix"
    );
    app.stop().await;
}

on_both_backends!(every_read_follows_need_to_know);
