use ami_tests::*;

async fn a_dossier_goes_from_deposit_to_laureat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let boss = app.person("Dominique Bernard", "dar", "responsable").await;
    let acv = app.person("Sophie Laurent", "acv", "agent").await;
    let ti = app.person("Karim Haddad", "ti", "agent").await;
    let d = app.deposit(&dar, &["acv", "ti"]).await;
    let (s, b) = app
        .act(
            &dar,
            &d,
            "instruire",
            serde_json::json!({"verdict": "favorable"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .act(
            &acv,
            &d,
            "avis_acv",
            serde_json::json!({"verdict": "favorable"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .act(
            &ti,
            &d,
            "avis_ti",
            serde_json::json!({"verdict": "favorable"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .act(&boss, &d, "declarer_laureat", serde_json::json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "laureat");
    assert_eq!(b["version"], 5);
    assert_eq!(app.journal_len().await, 5);
    app.stop().await;
}

on_both_backends!(a_dossier_goes_from_deposit_to_laureat);
