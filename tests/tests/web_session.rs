//! Signing in to the web pages: a token gives a session kept in the
//! database, in a cookie that scripts cannot read; every form carries the
//! session's CSRF token; signing out or revoking the token ends it; pages
//! carry their security headers and show dossiers' text escaped.

use ami_tests::web::{csrf_of, Browser};
use ami_tests::*;
use reqwest::header::{LOCATION, SET_COOKIE};

async fn session_count(app: &TestApp) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url)
        .await
        .expect("connect");
    let n = sqlx::query("select count(*) as n from web_session")
        .fetch_one(&mut conn)
        .await
        .expect("count")
        .try_get("n")
        .expect("n");
    let _ = conn.close().await;
    n
}

async fn a_wrong_token_is_told_in_french_and_opens_no_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut browser = Browser::new(&app);

    let (status, _, page) = browser.sign_in("ami_pas_un_vrai_jeton").await;
    let (to_queue, headers, _) = browser.get("/a-traiter").await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page.contains("Ce jeton n&#39;est pas reconnu ou a été révoqué."),
        "{page}"
    );
    assert!(page.contains("<html lang=\"fr\""));
    assert!(page.contains("<title>Se connecter — AMI Au cœur des territoires</title>"));
    assert_eq!(browser.cookie("ami_session"), None);
    assert_eq!(session_count(&app).await, 0);
    assert_eq!(to_queue, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/connexion");
    app.stop().await;
}

async fn a_token_opens_a_session_in_a_strict_cookie_with_a_new_id_each_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    app.deposit(&team.dar, &["acv"]).await;
    let mut browser = Browser::new(&app);
    // A session id planted beforehand is not taken over.
    browser
        .cookies
        .push(("ami_session".into(), "plante".into()));

    let (status, headers, _) = browser.sign_in(&team.acv.token).await;
    let first = browser.cookie("ami_session");
    let (_, _, queue) = browser.get("/a-traiter").await;
    browser.sign_in(&team.acv.token).await;
    let second = browser.cookie("ami_session");

    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/a-traiter");
    let set = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .find(|c| c.starts_with("ami_session="))
        .expect("session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    assert!(first
        .as_deref()
        .is_some_and(|id| id != "plante" && id.len() >= 43));
    assert_ne!(first, second);
    assert!(queue.contains("Sophie Laurent"), "{queue}");
    assert!(
        queue.contains("AMI2-V1-0001") || queue.contains("Aucun dossier"),
        "{queue}"
    );
    app.stop().await;
}

async fn signing_out_needs_the_forms_token_and_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&team.dar.token).await;
    let (_, _, page) = browser.get("/a-traiter").await;
    let csrf = csrf_of(&page);
    let mut other = Browser::new(&app);
    other.sign_in(&team.boss.token).await;
    let (_, _, other_page) = other.get("/a-traiter").await;

    let (without, _, _) = browser.post("/deconnexion", &[]).await;
    let (foreign, _, _) = browser
        .post("/deconnexion", &[("csrf", &csrf_of(&other_page))])
        .await;
    let still = browser.get("/a-traiter").await.0;
    let (out, headers, _) = browser.post("/deconnexion", &[("csrf", &csrf)]).await;
    let after = browser.get("/a-traiter").await.0;

    assert_eq!(without, StatusCode::FORBIDDEN);
    assert_eq!(foreign, StatusCode::FORBIDDEN);
    assert_eq!(still, StatusCode::OK);
    assert_eq!(out, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/connexion");
    assert_eq!(after, StatusCode::SEE_OTHER);
    assert_eq!(
        session_count(&app).await,
        1,
        "the other person's session stays"
    );
    app.stop().await;
}

async fn a_sign_in_without_the_forms_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut browser = Browser::new(&app);

    let (status, _, page) = browser
        .post(
            "/connexion",
            &[("csrf", "invente"), ("jeton", &team.dar.token)],
        )
        .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Le formulaire a expiré"), "{page}");
    assert_eq!(session_count(&app).await, 0);
    app.stop().await;
}

async fn revoking_the_token_ends_its_sessions_on_the_next_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&team.ti.token).await;
    let before = browser.get("/a-traiter").await.0;

    app.store
        .revoke_token(team.ti.token_id, chrono::Utc::now())
        .await
        .expect("revoke");
    let (after, headers, _) = browser.get("/a-traiter").await;

    assert_eq!(before, StatusCode::OK);
    assert_eq!(after, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/connexion");
    assert_eq!(session_count(&app).await, 0);
    app.stop().await;
}

async fn pages_carry_security_headers_and_show_hostile_names_as_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team().await;
    let hostile = format!(
        "<script>alert(\"x\")</script> L'Haÿ & {}",
        // Nearly as long as a porteur's name may be (300 characters).
        "très long ".repeat(25)
    );
    let d = app
        .deposit_body(&team.dar, &new_dossier(&hostile, &["acv"]))
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&team.dar.token).await;

    let (status, headers, page) = browser
        .get(&format!("/dossiers/{}", d["id"].as_str().expect("id")))
        .await;

    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(!page.contains("<script>alert"), "escaped");
    assert!(
        page.contains(
            "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; L&#39;Haÿ &#38; très long"
        ),
        "{}",
        &page[..page.len().min(3000)]
    );
    app.stop().await;
}

on_both_backends!(
    a_wrong_token_is_told_in_french_and_opens_no_session,
    a_token_opens_a_session_in_a_strict_cookie_with_a_new_id_each_time,
    signing_out_needs_the_forms_token_and_ends_the_session,
    a_sign_in_without_the_forms_token_is_refused,
    revoking_the_token_ends_its_sessions_on_the_next_page,
    pages_carry_security_headers_and_show_hostile_names_as_text,
);
