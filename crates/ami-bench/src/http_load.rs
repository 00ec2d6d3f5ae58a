//! The service measure: concurrent HTTP clients taking fresh dossiers
//! through the whole path on a real `ami serve`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::measure::{ClientTask, Measure};

/// The steps after the deposit: action, index of the token that takes it
/// (see `main::PEOPLE`), verdict.
const PATH: [(&str, usize, Option<&str>); 4] = [
    ("instruire", 0, Some("favorable")),
    ("avis_acv", 2, Some("favorable")),
    ("avis_ti", 3, Some("favorable")),
    ("declarer_laureat", 1, None),
];

pub async fn http_load(
    client: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    clients: usize,
    seconds: u64,
) -> Measure {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks: Vec<ClientTask> = Vec::new();
    // Instruction needs both files: every deposit sends the same two small
    // ones (stored once, as content-addressed files are).
    let files = Arc::new((
        ami_service::demo_files::candidature_pdf("Banc", "00000"),
        ami_service::demo_files::budget_xlsx("Banc").unwrap_or_default(),
    ));
    for c in 0..clients {
        let (client, base, tokens, stop, files) = (
            client.clone(),
            base.to_string(),
            tokens.clone(),
            stop.clone(),
            files.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut deposits = Vec::new();
            let mut errors = 0;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let communes = ami_core::communes::communes();
                let commune = &communes[(c * 7919 + n) % communes.len()];
                let body = json!({
                    "commune": commune.name, "code_insee": commune.code,
                    "porteur": {"nom": "Ville de démonstration"}, "programmes": ["acv", "ti"],
                    "received_at": "2020-11-06T23:30:00+01:00",
                    "doublon_confirme": true
                });
                let form = reqwest::multipart::Form::new()
                    .text("dossier", body.to_string())
                    .part(
                        "dossier_candidature",
                        reqwest::multipart::Part::bytes(files.0.clone()).file_name("c.pdf"),
                    )
                    .part(
                        "budget_previsionnel",
                        reqwest::multipart::Part::bytes(files.1.clone()).file_name("b.xlsx"),
                    );
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/api/v1/dossiers"))
                    .bearer_auth(&tokens[0])
                    .multipart(form)
                    .send()
                    .await;
                let Some(dossier) = ok_json(res).await else {
                    errors += 1;
                    continue;
                };
                latencies.push(t.elapsed());
                deposits.push(t.elapsed());
                let id = dossier["id"].as_str().unwrap_or_default().to_string();
                for (version, (action, who, verdict)) in (1..).zip(PATH) {
                    let mut body = json!({"action": action, "expected_version": version});
                    if let Some(v) = verdict {
                        body["verdict"] = json!(v);
                    }
                    let t = Instant::now();
                    let res = client
                        .post(format!("{base}/api/v1/dossiers/{id}/transitions"))
                        .bearer_auth(&tokens[who])
                        .json(&body)
                        .send()
                        .await;
                    if !ok_drained(res).await {
                        errors += 1;
                        break;
                    }
                    latencies.push(t.elapsed());
                }
            }
            (latencies, deposits, errors)
        }));
    }
    Measure::after(seconds, &stop, started, tasks).await
}

/// Whether the request succeeded; the body is read but not parsed, so that
/// the client spends as little of the shared CPU as it can.
async fn ok_drained(res: reqwest::Result<reqwest::Response>) -> bool {
    match res {
        Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn ok_json(res: reqwest::Result<reqwest::Response>) -> Option<Value> {
    let res = res.ok()?;
    if !res.status().is_success() {
        return None;
    }
    res.json().await.ok()
}
