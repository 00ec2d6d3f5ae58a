//! Pièces as files, over HTTP, on both databases and both file storages (a
//! local folder, and a real S3-compatible server): upload, versions,
//! download byte for byte, ranges, 304, races, replays, every refusal, and
//! need to know.

use ami_tests::{
    new_dossier, sample_pdf, sample_xlsx, Backend, Person, Reply, StatusCode, Storage, TestApp,
    TestDb, TestFiles,
};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const CANDIDATURE: &str = "dossier_candidature";
const BUDGET: &str = "budget_previsionnel";

async fn app(backend: Backend, storage: Storage) -> TestApp {
    TestApp::spawn_with(
        TestDb::new(backend).await,
        TestFiles::new(storage),
        std::sync::Arc::new(ami_core::Definition::ami2()),
    )
    .await
}

fn sha256(bytes: &[u8]) -> String {
    ami_tests::sha256_hex(bytes)
}

/// GET with a token and extra headers: status, headers and raw bytes.
async fn download(
    app: &TestApp,
    who: &Person,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = app.client.get(app.url(path)).bearer_auth(&who.token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A dossier deposited with JSON only: both pièces named, no content.
async fn declared_only(app: &TestApp, dar: &Person, programmes: &[&str]) -> Value {
    let (status, body) = app
        .post(dar, "/dossiers", &new_dossier("Vierzon", programmes))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn piece<'a>(dossier: &'a Value, kind: &str) -> &'a Value {
    dossier["pieces"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["kind"] == kind))
        .unwrap_or_else(|| panic!("no pièce {kind} in {dossier}"))
}

fn id(dossier: &Value) -> String {
    dossier["id"].as_str().expect("id").to_string()
}

/// Bytes of a file of `len` that the budget accepts (a PDF padded after
/// its end, which readers ignore).
fn pdf_of_len(len: usize) -> Vec<u8> {
    let mut pdf = sample_pdf();
    pdf.resize(len.max(pdf.len()), b'\n');
    pdf
}

// ---------------------------------------------------------------------------

async fn a_deposit_with_its_files_is_complete_and_each_file_reads_back_byte_for_byte(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;

    // Act
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let (status, headers, bytes) = download(
        &app,
        &team.acv,
        &format!("/dossiers/{}/pieces/{BUDGET}", id(&dossier)),
        &[],
    )
    .await;
    let (instructed, body) = app
        .act(
            &team.dar,
            &dossier,
            "instruire",
            json!({"verdict": "favorable"}),
        )
        .await;

    // Assert
    let budget = piece(&dossier, BUDGET);
    assert_eq!(budget["received"], true);
    assert_eq!(budget["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, sample_xlsx());
    assert_eq!(budget["sha256"], sha256(&bytes));
    assert_eq!(budget["size"], bytes.len());
    assert_eq!(
        header(&headers, "content-type"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256(&bytes)));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "content-security-policy"), "sandbox");
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"budget.xlsx\"; filename*=UTF-8''budget.xlsx"
    );
    assert_eq!(instructed, StatusCode::OK, "{body}");
    app.stop().await;
}

async fn a_declared_piece_is_not_received_and_instruire_waits_for_its_file(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = declared_only(&app, &team.dar, &["acv"]).await;

    // Act
    let (refused, refusal) = app
        .act(
            &team.dar,
            &dossier,
            "instruire",
            json!({"verdict": "favorable"}),
        )
        .await;
    for (kind, name, content) in [
        (CANDIDATURE, "candidature.pdf", sample_pdf()),
        (BUDGET, "budget.xlsx", sample_xlsx()),
    ] {
        app.upload(&team.dar, &id(&dossier), kind, name, content, &[])
            .await
            .assert_ok(StatusCode::OK);
    }
    let (instructed, body) = app
        .act(
            &team.dar,
            &dossier,
            "instruire",
            json!({"verdict": "favorable"}),
        )
        .await;

    // Assert
    assert_eq!(piece(&dossier, BUDGET)["received"], false);
    assert_eq!(piece(&dossier, BUDGET)["url"], Value::Null);
    assert_eq!(refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refusal["code"], "pieces_missing");
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.contains("fichier non reçu") && d.contains("Budget prévisionnel")),
        "{refusal}"
    );
    assert_eq!(instructed, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "instruit");
    app.stop().await;
}

async fn a_budget_sent_again_is_version_2_and_version_1_stays_downloadable(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv", "ti"]).await;
    let corrected = pdf_of_len(4096);

    // Act
    let reply = app
        .upload(
            &team.dar,
            &id(&dossier),
            BUDGET,
            "budget corrigé.pdf",
            corrected.clone(),
            &[("if-match", "\"1\"")],
        )
        .await;
    let base = format!("/dossiers/{}/pieces/{BUDGET}", id(&dossier));
    let (_, _, latest) = download(&app, &team.ti, &base, &[]).await;
    let (_, _, first) = download(&app, &team.ti, &format!("{base}/versions/1"), &[]).await;
    let (_, _, second) = download(&app, &team.ti, &format!("{base}/versions/2"), &[]).await;
    let (missing, _, _) = download(&app, &team.ti, &format!("{base}/versions/3"), &[]).await;

    // Assert
    let body = reply.assert_ok(StatusCode::OK);
    assert_eq!(body["version"], 2);
    let budget = piece(body, BUDGET);
    assert_eq!(budget["filename"], "budget corrigé.pdf");
    assert_eq!(budget["media_type"], "application/pdf");
    let versions: Vec<(u64, String)> = budget["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap_or_default(),
                v["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [(1, sha256(&sample_xlsx())), (2, sha256(&corrected))]
    );
    assert_eq!(latest, corrected);
    assert_eq!(second, corrected);
    assert_eq!(first, sample_xlsx());
    assert_eq!(missing, StatusCode::NOT_FOUND);
    // The event of the new version holds what the chain covers.
    let (_, history) = app
        .get(&team.dar, &format!("/dossiers/{}/history", id(&dossier)))
        .await;
    let event = &history["events"][1]["content"];
    assert_eq!(event["payload"]["type"], "piece");
    assert_eq!(event["payload"]["sha256"], sha256(&corrected));
    assert_eq!(event["payload"]["size"], corrected.len());
    assert_eq!(event["payload"]["media_type"], "application/pdf");
    app.stop().await;
}

async fn a_range_gives_206_and_the_etag_gives_304(backend: Backend, storage: Storage) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let path = format!("/dossiers/{}/pieces/{CANDIDATURE}", id(&dossier));
    let pdf = sample_pdf();
    let etag = format!("\"{}\"", sha256(&pdf));

    // Act
    let (partial, partial_headers, head) =
        download(&app, &team.dar, &path, &[("range", "bytes=0-7")]).await;
    let (tail, _, last) = download(&app, &team.dar, &path, &[("range", "bytes=-6")]).await;
    let (outside, outside_headers, _) =
        download(&app, &team.dar, &path, &[("range", "bytes=999999-")]).await;
    let (unchanged, unchanged_headers, nothing) =
        download(&app, &team.dar, &path, &[("if-none-match", &etag)]).await;
    let (changed, _, _) = download(&app, &team.dar, &path, &[("if-none-match", "\"autre\"")]).await;

    // Assert
    assert_eq!(partial, StatusCode::PARTIAL_CONTENT);
    assert_eq!(head, b"%PDF-1.4");
    assert_eq!(
        header(&partial_headers, "content-range"),
        format!("bytes 0-7/{}", pdf.len())
    );
    assert_eq!(tail, StatusCode::PARTIAL_CONTENT);
    assert_eq!(last, &pdf[pdf.len() - 6..]);
    assert_eq!(outside, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(&outside_headers, "content-range"),
        format!("bytes */{}", pdf.len())
    );
    assert_eq!(unchanged, StatusCode::NOT_MODIFIED);
    assert!(nothing.is_empty());
    assert_eq!(header(&unchanged_headers, "etag"), etag);
    assert_eq!(changed, StatusCode::OK);
    app.stop().await;
}

async fn two_uploads_on_one_version_one_wins_and_the_other_gets_409(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let events_before = app.event_count().await;
    let id = id(&dossier);

    // Act
    let (a, b) = tokio::join!(
        app.upload(
            &team.dar,
            &id,
            BUDGET,
            "a.pdf",
            pdf_of_len(3000),
            &[("if-match", "\"1\"")]
        ),
        app.upload(
            &team.dar,
            &id,
            BUDGET,
            "b.pdf",
            pdf_of_len(5000),
            &[("if-match", "\"1\"")]
        ),
    );

    // Assert
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    assert_eq!(app.event_count().await, events_before + 1);
    app.stop().await;
}

async fn an_upload_replayed_with_its_key_gives_the_first_answer_and_one_event(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let key = [("idempotency-key", "budget-v2-vierzon")];

    // Act
    let first = app
        .upload(
            &team.dar,
            &id(&dossier),
            BUDGET,
            "v2.pdf",
            pdf_of_len(2000),
            &key,
        )
        .await;
    let again = app
        .upload(
            &team.dar,
            &id(&dossier),
            BUDGET,
            "v2.pdf",
            pdf_of_len(2000),
            &key,
        )
        .await;
    let other = app
        .upload(
            &team.dar,
            &id(&dossier),
            BUDGET,
            "v2.pdf",
            pdf_of_len(2500),
            &key,
        )
        .await;

    // Assert
    first.assert_ok(StatusCode::OK);
    again.assert_ok(StatusCode::OK);
    assert_eq!(first.text, again.text);
    other.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "Idempotency-Key",
    );
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

async fn a_file_too_large_or_of_a_refused_type_is_refused_in_french_and_writes_nothing(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;
    let id = id(&dossier);
    let events = app.event_count().await;
    let elf = [b"\x7fELF\x02\x01\x01\x00".as_slice(), &[0u8; 120]].concat();
    let png = [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".as_slice(),
        &[0u8; 64],
    ]
    .concat();

    // Act
    let too_large = app
        .upload(
            &team.dar,
            &id,
            BUDGET,
            "gros.pdf",
            pdf_of_len(20 * 1024 * 1024 + 1),
            &[],
        )
        .await;
    let executable = app
        .upload(&team.dar, &id, CANDIDATURE, "candidature.pdf", elf, &[])
        .await;
    let page = app
        .upload(
            &team.dar,
            &id,
            CANDIDATURE,
            "page.html",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(),
            &[],
        )
        .await;
    let empty = app
        .upload(&team.dar, &id, CANDIDATURE, "vide.pdf", Vec::new(), &[])
        .await;
    let lying = app
        .upload(&team.dar, &id, BUDGET, "budget.xlsx", sample_pdf(), &[])
        .await;
    let image_as_budget = app
        .upload(&team.dar, &id, BUDGET, "budget.png", png.clone(), &[])
        .await;
    let image_as_candidature = app
        .upload(&team.dar, &id, CANDIDATURE, "scan.png", png, &[])
        .await;

    // Assert
    let detail = |r: &Reply| r.body["detail"].as_str().unwrap_or_default().to_string();
    too_large.assert_field_problem(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", "file");
    assert!(detail(&too_large).contains("20 Mio"), "{}", too_large.text);
    executable.assert_field_problem(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "file_type_refused",
        "file",
    );
    assert!(detail(&executable).contains("elf"), "{}", executable.text);
    assert!(detail(&executable).contains("PDF"), "{}", executable.text);
    page.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_refused");
    empty.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "empty_file", "file");
    lying.assert_field_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "file_type_mismatch",
        "file",
    );
    assert!(detail(&lying).contains(".xlsx"), "{}", lying.text);
    image_as_budget.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_refused");
    assert!(
        detail(&image_as_budget).contains("tableur OpenDocument (ods)"),
        "{}",
        image_as_budget.text
    );
    // The candidature takes every type the service knows, images included.
    image_as_candidature.assert_ok(StatusCode::OK);
    assert_eq!(app.event_count().await, events + 1);
    app.stop().await;
}

async fn a_piece_is_refused_from_another_agency_on_a_closed_dossier_and_unseen_outside_ones_programme(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let acv_only = app.deposit(&team.dar, &["acv"]).await;
    let closed = app.deposit(&team.dar, &["acv"]).await;
    let (status, _) = app
        .act(
            &team.boss,
            &closed,
            "classer_sans_suite",
            json!({"motivation": "Candidature retirée par la commune."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = app.event_count().await;

    // Act
    let by_acv = app
        .upload(
            &team.acv,
            &id(&acv_only),
            BUDGET,
            "b.pdf",
            sample_pdf(),
            &[],
        )
        .await;
    let by_ti = app
        .upload(&team.ti, &id(&acv_only), BUDGET, "b.pdf", sample_pdf(), &[])
        .await;
    let on_closed = app
        .upload(&team.dar, &id(&closed), BUDGET, "b.pdf", sample_pdf(), &[])
        .await;
    let unknown_kind = app
        .upload(
            &team.dar,
            &id(&acv_only),
            "photo",
            "p.pdf",
            sample_pdf(),
            &[],
        )
        .await;

    // Assert
    by_acv.assert_problem(StatusCode::FORBIDDEN, "wrong_agency");
    by_ti.assert_problem(StatusCode::NOT_FOUND, "not_found");
    on_closed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "terminal_state");
    unknown_kind.assert_field_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "kind");
    assert_eq!(app.event_count().await, events);
    app.stop().await;
}

async fn a_name_with_a_path_or_control_characters_is_stored_safely_and_served_sanitised(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = app.deposit(&team.dar, &["acv"]).await;

    // Act
    let reply = app
        .upload(
            &team.dar,
            &id(&dossier),
            BUDGET,
            "../../etc/bud\u{7}get\r\n\"été\".pdf",
            sample_pdf(),
            &[],
        )
        .await;
    let (_, headers, _) = download(
        &app,
        &team.dar,
        &format!("/dossiers/{}/pieces/{BUDGET}", id(&dossier)),
        &[],
    )
    .await;

    // Assert
    let body = reply.assert_ok(StatusCode::OK);
    assert_eq!(piece(body, BUDGET)["filename"], "bud_get__\"été\".pdf");
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"bud_get____t__.pdf\"; filename*=UTF-8''bud_get__%22%C3%A9t%C3%A9%22.pdf"
    );
    app.stop().await;
}

async fn multipart_uploads_and_deposits_work_like_the_raw_ones(backend: Backend, storage: Storage) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let dossier = declared_only(&app, &team.dar, &["acv"]).await;
    let form = reqwest::multipart::Form::new()
        .text("expected_version", "1")
        .text("comment", "Budget reçu par courrier")
        .part(
            "fichier",
            reqwest::multipart::Part::bytes(sample_xlsx()).file_name("budget signé.xlsx"),
        );

    // Act
    let res = app
        .client
        .put(app.url(&format!("/dossiers/{}/pieces/{BUDGET}", id(&dossier))))
        .bearer_auth(&team.dar.token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    let (missing_part, problem) = app
        .deposit_form_parts(&team.dar, None, &[(CANDIDATURE, "c.pdf", sample_pdf())])
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let budget = piece(&body, BUDGET);
    assert_eq!(budget["received"], true);
    assert_eq!(budget["filename"], "budget signé.xlsx");
    assert_eq!(piece(&body, CANDIDATURE)["received"], false);
    assert_eq!(missing_part, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "dossier");
    app.stop().await;
}

async fn an_agent_reads_only_the_dossiers_of_the_programme_it_gives_avis_on(
    backend: Backend,
    storage: Storage,
) {
    // Arrange
    let app = app(backend, storage).await;
    let team = app.team().await;
    let ti_only = app.deposit(&team.dar, &["ti"]).await;
    let acv_only = app.deposit(&team.dar, &["acv"]).await;
    let both = app.deposit(&team.dar, &["acv", "ti"]).await;
    let hidden = id(&ti_only);

    // Act
    let (get, _) = app.get(&team.acv, &format!("/dossiers/{hidden}")).await;
    let (history, _) = app
        .get(&team.acv, &format!("/dossiers/{hidden}/history"))
        .await;
    let (file, _, _) = download(
        &app,
        &team.acv,
        &format!("/dossiers/{hidden}/pieces/{BUDGET}"),
        &[],
    )
    .await;
    let (act, _) = app
        .post(
            &team.acv,
            &format!("/dossiers/{hidden}/transitions"),
            &json!({"action": "avis_acv", "expected_version": 1, "verdict": "favorable"}),
        )
        .await;
    let (_, acv_list) = app.get(&team.acv, "/dossiers?limit=50").await;
    let (_, search) = app.get(&team.acv, "/dossiers?q=nevers").await;
    let (_, acv_stats) = app.get(&team.acv, "/stats").await;
    let (_, dar_stats) = app.get(&team.dar, "/stats").await;
    let (_, ti_list) = app.get(&team.ti, "/dossiers").await;
    let (acv_feed, _) = app.follow_feed(&team.acv, None, 100, 2).await;
    let (ti_feed, _) = app.follow_feed(&team.ti, None, 100, 2).await;

    // Assert
    assert_eq!(get, StatusCode::NOT_FOUND);
    assert_eq!(history, StatusCode::NOT_FOUND);
    assert_eq!(file, StatusCode::NOT_FOUND);
    assert_eq!(act, StatusCode::NOT_FOUND);
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(ids(&acv_list), [id(&acv_only), id(&both)]);
    assert_eq!(ids(&search), [id(&acv_only), id(&both)]);
    assert_eq!(ids(&ti_list), [id(&ti_only), id(&both)]);
    assert_eq!(acv_stats["total"], 2);
    assert_eq!(dar_stats["total"], 3);
    let fed = |feed: &[Value]| -> Vec<String> {
        feed.iter()
            .map(|e| e["dossier_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(fed(&acv_feed), [id(&acv_only), id(&both)]);
    assert_eq!(fed(&ti_feed), [id(&ti_only), id(&both)]);
    app.stop().await;
}

ami_tests::on_every_store!(
    a_deposit_with_its_files_is_complete_and_each_file_reads_back_byte_for_byte,
    a_declared_piece_is_not_received_and_instruire_waits_for_its_file,
    a_budget_sent_again_is_version_2_and_version_1_stays_downloadable,
    a_range_gives_206_and_the_etag_gives_304,
    two_uploads_on_one_version_one_wins_and_the_other_gets_409,
    an_upload_replayed_with_its_key_gives_the_first_answer_and_one_event,
    a_file_too_large_or_of_a_refused_type_is_refused_in_french_and_writes_nothing,
    a_piece_is_refused_from_another_agency_on_a_closed_dossier_and_unseen_outside_ones_programme,
    a_name_with_a_path_or_control_characters_is_stored_safely_and_served_sanitised,
    multipart_uploads_and_deposits_work_like_the_raw_ones,
    an_agent_reads_only_the_dossiers_of_the_programme_it_gives_avis_on,
);
