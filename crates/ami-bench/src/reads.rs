//! Reads on a large campaign (`--load`): the API's dossier, list and search
//! requests, then the web pages a signed-in person reads.

use ami_core::DossierId;
use anyhow::Context;

use crate::measure::{ms, Measure};

/// Latency of `GET /dossiers/{id}`, of a filtered list page and of a search.
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
    let mut list = Measure::empty();
    let mut search = Measure::empty();
    let filters = [
        "state=avis_ti",
        "awaiting=dar",
        "wave=2&programme=ti",
        "state=recu&wave=1",
    ];
    for i in 0..2000 {
        let url = format!("{base}/api/v1/dossiers/{}", ids[i % ids.len()]);
        get.time_get(client, &url, token).await?;
        if i % 4 == 0 {
            let filter = filters[(i / 4) % filters.len()];
            let url = format!("{base}/api/v1/dossiers?{filter}&limit=50");
            list.time_get(client, &url, token).await?;
        }
        // Searches that match a handful of dossiers (a commune, an INSEE
        // code, typed with other case and accents) and one that matches
        // none: without an index each would read every dossier.
        if i % 4 == 2 {
            let n = (i * 37) % loaded.len().max(1);
            let q = match (i / 4) % 3 {
                0 => format!("COMMUNÉ%20{n}"),
                1 => format!("{:05}", n % 99_999),
                _ => "quimper".to_string(),
            };
            let url = format!("{base}/api/v1/dossiers?q={q}&limit=50");
            search.time_get(client, &url, token).await?;
        }
    }
    println!(
        "GET /dossiers/{{id}}   p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
        ms(get.percentile(0.5)),
        ms(get.percentile(0.99)),
        get.latencies.len(),
        get.errors
    );
    println!(
        "GET /dossiers?filter  p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
        ms(list.percentile(0.5)),
        ms(list.percentile(0.99)),
        list.latencies.len(),
        list.errors
    );
    println!(
        "GET /dossiers?q=      p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
        ms(search.percentile(0.5)),
        ms(search.percentile(0.99)),
        search.latencies.len(),
        search.errors
    );
    page_load(client, base, token, &ids).await
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
    for (name, m) in [
        ("page À traiter     ", &mut queue),
        ("page du dossier    ", &mut dossier),
    ] {
        println!(
            "{name} p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)",
            ms(m.percentile(0.5)),
            ms(m.percentile(0.99)),
            m.latencies.len(),
            m.errors
        );
    }
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
