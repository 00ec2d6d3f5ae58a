//! Reads on a large campaign (`--load`): the API's dossier, list and search
//! requests, then the web pages a signed-in person reads.

use ami_core::DossierId;
use anyhow::Context;

use crate::measure::{ms, Measure};

/// Every list filter the API offers, alone and combined, a search of a
/// commune, of an INSEE code and of nothing, the second page of a list,
/// and the counts: each measured on its own (`--load` sizes the table).
const READS: &[(&str, &str)] = &[
    ("state", "/api/v1/dossiers?state=avis_ti&limit=50"),
    ("states", "/api/v1/dossiers?state=laureat,refuse&limit=50"),
    ("wave", "/api/v1/dossiers?wave=2&limit=50"),
    ("programme", "/api/v1/dossiers?programme=ti&limit=50"),
    ("awaiting=dar", "/api/v1/dossiers?awaiting=dar&limit=50"),
    ("awaiting=acv", "/api/v1/dossiers?awaiting=acv&limit=50"),
    ("awaiting=ti", "/api/v1/dossiers?awaiting=ti&limit=50"),
    (
        "awaiting=porteur",
        "/api/v1/dossiers?awaiting=porteur&limit=50",
    ),
    ("state+wave", "/api/v1/dossiers?state=recu&wave=1&limit=50"),
    (
        "wave+programme",
        "/api/v1/dossiers?wave=2&programme=ti&limit=50",
    ),
    (
        "awaiting+programme",
        "/api/v1/dossiers?awaiting=acv&programme=acv&limit=50",
    ),
    (
        "awaiting+wave",
        "/api/v1/dossiers?awaiting=ti&wave=3&limit=50",
    ),
    (
        "q=commune",
        "/api/v1/dossiers?q=COMMUN%C3%89%20{n}&limit=50",
    ),
    ("q=insee", "/api/v1/dossiers?q={insee}&limit=50"),
    ("q=nothing", "/api/v1/dossiers?q=quimper&limit=50"),
    (
        "q+awaiting",
        "/api/v1/dossiers?q=commune%20{n}&awaiting=dar&limit=50",
    ),
    (
        "everything",
        "/api/v1/dossiers?state=instruit,avis_acv&wave=1,2&programme=acv&awaiting=acv&limit=50",
    ),
    ("stats", "/api/v1/stats"),
    ("overdue", "/api/v1/dossiers?overdue=true&limit=50"),
    ("departement", "/api/v1/dossiers?departement=58&limit=50"),
    (
        "due+awaiting",
        "/api/v1/dossiers?awaiting=dar&sort=due&limit=50",
    ),
    ("stats+departement", "/api/v1/stats?departement=58"),
    ("stats by region", "/api/v1/stats?group_by=region"),
];

/// Requests of each kind measured.
const EACH: usize = 200;

/// Latency of `GET /dossiers/{id}`, then of each read of [`READS`], then of
/// the web pages.
pub async fn read_load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    loaded: &[DossierId],
) -> anyhow::Result<()> {
    // Dossiers picked across the whole load, not the first ones only.
    let step = (loaded.len() / 2000).max(1);
    let ids: Vec<String> = loaded.iter().step_by(step).map(|d| d.to_string()).collect();
    let mut get = Measure::empty();
    for i in 0..2000 {
        let url = format!("{base}/api/v1/dossiers/{}", ids[i % ids.len()]);
        get.time_get(client, &url, token).await?;
    }
    report("GET /dossiers/{id}", &mut get);
    for (name, path) in READS {
        let mut m = Measure::empty();
        for i in 0..EACH {
            // A different commune or INSEE code each time: the same one
            // would be served from the database's cache alone.
            let n = (i * 7919) % loaded.len().max(1);
            let path = path
                .replace("{n}", &n.to_string())
                .replace("{insee}", &format!("{:05}", n % 99_999));
            m.time_get(client, &format!("{base}{path}"), token).await?;
        }
        report(&format!("GET {name}"), &mut m);
    }
    // The second page of a long list: the cursor's condition.
    let first: serde_json::Value = client
        .get(format!("{base}/api/v1/dossiers?state=laureat&limit=50"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    if let Some(cursor) = first["next_cursor"].as_str() {
        let mut m = Measure::empty();
        let url = format!("{base}/api/v1/dossiers?state=laureat&limit=50&cursor={cursor}");
        for _ in 0..EACH {
            m.time_get(client, &url, token).await?;
        }
        report("GET state, page 2", &mut m);
    }
    page_load(client, base, token, &ids).await
}

fn report(name: &str, m: &mut Measure) {
    println!(
        "{name:<28} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests, {} errors)",
        ms(m.percentile(0.5)),
        ms(m.percentile(0.99)),
        m.latencies.len(),
        m.errors
    );
}

/// The same person's web pages: « À traiter » (its first page, filtered,
/// searched) and the dossier page, each rendered whole.
async fn page_load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    let cookie = format!("cookie:{}", sign_in(client, base, token).await?);
    let mut queue = Measure::empty();
    let mut dossier = Measure::empty();
    let queues = [
        "/a-traiter",
        "/a-traiter?vague=2",
        "/a-traiter?etat=recu&programme=ti",
        "/a-traiter?q=commune%204242",
    ];
    for i in 0..2000 {
        let url = format!("{base}/dossiers/{}", ids[(i * 7) % ids.len()]);
        dossier.time_get(client, &url, &cookie).await?;
        if i % 2 == 0 {
            let url = format!("{base}{}", queues[(i / 2) % queues.len()]);
            queue.time_get(client, &url, &cookie).await?;
        }
    }
    report("page À traiter", &mut queue);
    report("page du dossier", &mut dossier);
    let mut board = Measure::empty();
    for _ in 0..EACH {
        board
            .time_get(client, &format!("{base}/tableau-de-bord"), &cookie)
            .await?;
    }
    report("page Tableau de bord", &mut board);
    Ok(())
}

/// Signs in on « Se connecter » as a browser does; the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let form = client.get(format!("{base}/connexion")).send().await?;
    let csrf_cookie = set_cookie(&form, "ami_connexion")
        .context("pas de jeton de formulaire sur « Se connecter »")?;
    let csrf = csrf_cookie.trim_start_matches("ami_connexion=").to_string();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let signed = no_redirect
        .post(format!("{base}/connexion"))
        .header(reqwest::header::COOKIE, &csrf_cookie)
        .form(&[("csrf", csrf.as_str()), ("jeton", token)])
        .send()
        .await?;
    set_cookie(&signed, "ami_session").context("la connexion n'a pas ouvert de session")
}

/// `name=value` of the cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
        .map(str::to_string)
}
