//! The agencies' deadlines in working days through the API, with the
//! service's clock stopped at chosen instants: the same answers whatever
//! day the tests run.

use ami_tests::{new_dossier_in_wave, on_both_backends, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A wave-1 dossier received on Friday 30 October 2020 at 10:00 in Paris,
/// in the ACV programme.
fn received_before_toussaint() -> Value {
    let mut body = new_dossier_in_wave("Nevers", &["acv"], 1);
    body["received_at"] = json!("2020-10-30T10:00:00+01:00");
    body
}

fn deadline_of<'a>(dossier: &'a Value, agency: &str) -> &'a Value {
    dossier["deadlines"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["agency"] == agency))
        .unwrap_or_else(|| panic!("no deadline for {agency}: {dossier}"))
}

async fn the_dar_has_ten_working_days_from_reception_holidays_aside(backend: Backend) {
    // Arrange: on the last day, at 23:30 in Paris. Ten working days after
    // Friday 30 October 2020: 2, 3, 4, 5, 6, 9, 10, 12, 13, 16 November
    // (1 November is a Sunday, 11 November a holiday): due Monday the 16th.
    let app = TestApp::spawn_at(backend, "2020-11-16T22:30:00Z").await;
    let team = app.team().await;
    let d = app
        .deposit_body(&team.dar, &received_before_toussaint())
        .await;

    // Act
    let id = d["id"].as_str().expect("id");
    let (status, now) = app.get(&team.dar, &format!("/dossiers/{id}")).await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    assert_eq!(now["deadlines"].as_array().map(Vec::len), Some(1), "{now}");
    let dar = deadline_of(&now, "dar");
    assert_eq!(dar["action"], "instruire");
    assert_eq!(dar["working_days"], 10);
    assert_eq!(dar["due"], "2020-11-16");
    assert_eq!(
        dar["overdue"], false,
        "on time until the end of the day in Paris"
    );
    assert_eq!(dar["since"], "2020-10-30T09:00:00Z");
    app.stop().await;

    // Arrange: half an hour later, midnight in Paris.
    let app = TestApp::spawn_at(backend, "2020-11-16T23:00:00Z").await;
    let team = app.team().await;
    let d = app
        .deposit_body(&team.dar, &received_before_toussaint())
        .await;

    // Act
    let id = d["id"].as_str().expect("id");
    let (_, late) = app.get(&team.dar, &format!("/dossiers/{id}")).await;

    // Assert
    assert_eq!(deadline_of(&late, "dar")["overdue"], true, "{late}");
    app.stop().await;
}

async fn the_avis_count_from_the_instruction_and_end_when_given(backend: Backend) {
    // Arrange: instructed on Thursday 17 December 2020 (the fixed clock's
    // day); fifteen working days later, Christmas and New Year's Day aside:
    // 18, 21, 22, 23, 24, 28, 29, 30, 31 December, 4, 5, 6, 7, 8, 11
    // January: due Monday 11 January 2021.
    let app = TestApp::spawn_at(backend, "2020-12-17T15:00:00Z").await;
    let team = app.team().await;
    let d = app
        .deposit_body(&team.dar, &received_before_toussaint())
        .await;

    // Act
    let instructed = app
        .must_act(&team.dar, &d, "instruire", json!({"verdict": "favorable"}))
        .await;

    // Assert: the answer of the transition already says it; the DAR's
    // deadline, past (due 16 November), is gone with the instruction.
    let acv = deadline_of(&instructed, "acv");
    assert_eq!(acv["action"], "avis_acv");
    assert_eq!(acv["due"], "2021-01-11");
    assert_eq!(acv["overdue"], false);
    assert_eq!(instructed["deadlines"].as_array().map(Vec::len), Some(1));

    // Act: the list shows the same.
    let (_, page) = app.get(&team.acv, "/dossiers").await;
    assert_eq!(deadline_of(&page["items"][0], "acv")["due"], "2021-01-11");

    // Act: the avis given.
    let given = app
        .must_act(
            &team.acv,
            &instructed,
            "avis_acv",
            json!({"verdict": "favorable"}),
        )
        .await;

    // Assert: the DAR's decision carries no deadline in the definition.
    assert_eq!(given["deadlines"], json!([]), "{given}");
    app.stop().await;
}

async fn a_deposit_without_its_instant_is_received_at_the_clock_s(backend: Backend) {
    // Arrange: the clock on a day of wave 1; a deposit sent without
    // `received_at` is received at the clock's instant.
    let app = TestApp::spawn_at(backend, "2020-10-05T08:00:00Z").await;
    let team = app.team().await;
    let mut body = new_dossier_in_wave("Clamecy", &["acv"], 1);
    body.as_object_mut().expect("object").remove("received_at");

    // Act
    let d = app.deposit_body(&team.dar, &body).await;

    // Assert: 5 October 2020 + 10 working days = 19 October.
    assert_eq!(d["received_at"], "2020-10-05T08:00:00Z");
    assert_eq!(deadline_of(&d, "dar")["due"], "2020-10-19");
    assert_eq!(deadline_of(&d, "dar")["overdue"], false);
    app.stop().await;
}

async fn late_dossiers_are_listed_and_counted_per_agency(backend: Backend) {
    // Arrange: on 20 November 2020, one dossier received on 30 October
    // (due 16 November: late), one received on 6 November (due 23
    // November, 11 November aside: on time), one instructed (waiting on TI
    // until December).
    let app = TestApp::spawn_at(backend, "2020-11-20T12:00:00Z").await;
    let team = app.team().await;
    let late = app
        .deposit_body(&team.dar, &received_before_toussaint())
        .await;
    let mut body = new_dossier_in_wave("Decize", &["acv"], 1);
    body["received_at"] = json!("2020-11-06T10:00:00+01:00");
    let on_time = app.deposit_body(&team.dar, &body).await;
    let mut body = new_dossier_in_wave("Clamecy", &["ti"], 1);
    body["received_at"] = json!("2020-10-30T11:00:00+01:00");
    let instructed = app.deposit_body(&team.dar, &body).await;
    app.must_act(
        &team.dar,
        &instructed,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;

    // Act
    let (status, page) = app.get(&team.dar, "/dossiers?overdue=true").await;
    let (_, stats) = app.get(&team.dar, "/stats").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&Value> = page["items"].as_array().expect("items").iter().collect();
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(listed[0]["id"], late["id"]);
    assert_eq!(deadline_of(&on_time, "dar")["due"], "2020-11-23");
    assert_eq!(
        stats["overdue"],
        json!({"dar": 1, "acv": 0, "ti": 0}),
        "{stats}"
    );
    assert_eq!(stats["awaiting"]["dar"], 2);
    let (status, bad) = app.get(&team.dar, "/dossiers?overdue=oui").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["field"], "overdue");
    app.stop().await;
}

/// `sort=due` lists the earliest deadline first and the dossiers with none
/// last, page after page; the queue page shows each last day and « En
/// retard ».
async fn lists_sort_by_due_date_page_after_page(backend: Backend) {
    // Arrange: on 20 November 2020: received 6 November (due 23 November),
    // received 30 October (due 16 November: late), one instructed on the
    // 20th (its avis due in December), one closed (no deadline).
    let app = TestApp::spawn_at(backend, "2020-11-20T12:00:00Z").await;
    let team = app.team().await;
    let mut body = new_dossier_in_wave("Decize", &["acv"], 1);
    body["received_at"] = json!("2020-11-06T10:00:00+01:00");
    let on_time = app.deposit_body(&team.dar, &body).await;
    let late = app
        .deposit_body(&team.dar, &received_before_toussaint())
        .await;
    let instructed = app
        .deposit_body(&team.dar, &new_dossier_in_wave("Clamecy", &["acv"], 1))
        .await;
    app.must_act(
        &team.dar,
        &instructed,
        "instruire",
        json!({"verdict": "favorable"}),
    )
    .await;
    let closed = app
        .deposit_body(&team.dar, &new_dossier_in_wave("Cosne", &["acv"], 1))
        .await;
    app.must_act(
        &team.boss,
        &closed,
        "classer_sans_suite",
        json!({"motivation": "Retrait"}),
    )
    .await;

    // Act: one dossier a page.
    let mut seen = Vec::new();
    let mut path = "/dossiers?sort=due&limit=1".to_string();
    loop {
        let (status, page) = app.get(&team.dar, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|d| d["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/dossiers?sort=due&limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 4, "more pages than dossiers");
    }

    // Assert
    assert_eq!(
        seen,
        [
            &late["id"],
            &on_time["id"],
            &instructed["id"],
            &closed["id"]
        ]
        .map(|v| v.clone())
    );
    let (_, by_reception) = app.get(&team.dar, "/dossiers?limit=1").await;
    let received_cursor = by_reception["next_cursor"].as_str().expect("cursor");
    let (status, problem) = app
        .get(
            &team.dar,
            &format!("/dossiers?sort=due&cursor={received_cursor}"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a cursor of another order: {problem}"
    );
    assert_eq!(problem["code"], "invalid_cursor");
    assert_eq!(problem["field"], "cursor");
    let (status, problem) = app.get(&team.dar, "/dossiers?sort=echeance").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["field"], "sort");

    // The DAR's queue page: by due date, with each last day and the late
    // one marked.
    let mut browser = ami_tests::web::Browser::signed_in(&app, &team.dar.token).await;
    let (_, _, queue) = browser.get("/a-traiter").await;
    let late_at = queue
        .find("16 novembre 2020")
        .expect("the late dossier's last day");
    let on_time_at = queue
        .find("23 novembre 2020")
        .expect("the other's last day");
    assert!(late_at < on_time_at, "earliest first");
    assert_eq!(queue.matches(">En retard<").count(), 1, "one late dossier");
    let (_, _, only_late) = browser.get("/a-traiter?retard=1").await;
    assert!(only_late.contains("16 novembre 2020") && !only_late.contains("23 novembre 2020"));
    // The page's export: the same list, as a file.
    let (status, headers, csv) = browser.get("/exports/a-traiter.csv?retard=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let reference = |d: &Value| d["reference"].as_str().expect("reference").to_string();
    assert!(csv.contains(&reference(&late)), "{csv}");
    assert!(!csv.contains(&reference(&on_time)), "{csv}");
    app.stop().await;
}

on_both_backends!(
    lists_sort_by_due_date_page_after_page,
    late_dossiers_are_listed_and_counted_per_agency,
    the_dar_has_ten_working_days_from_reception_holidays_aside,
    the_avis_count_from_the_instruction_and_end_when_given,
    a_deposit_without_its_instant_is_received_at_the_clock_s,
);
