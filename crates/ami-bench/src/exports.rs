//! Exports of a large campaign (`--export`): the whole list as CSV, then
//! as XLSX, each from a server of its own started for it, so that its peak
//! resident memory is the export's (plus the server at rest).

use std::path::Path;
use std::time::Instant;

use anyhow::bail;

use crate::server::Server;

/// What one export came to.
pub struct Exported {
    pub format: &'static str,
    pub bytes: u64,
    /// Rows of the CSV, header included (0 for XLSX).
    pub rows: u64,
    pub first_byte_s: f64,
    pub total_s: f64,
    /// The fresh server's peak resident memory, before and after.
    pub idle_peak_mib: f64,
    pub peak_mib: f64,
}

/// Exports every dossier as CSV and as XLSX as the DAR agent (`token`),
/// reading each file to the end without keeping it.
pub async fn export_load(
    ami: &Path,
    database_url: &str,
    client: &reqwest::Client,
    token: &str,
) -> anyhow::Result<Vec<Exported>> {
    let mut out = Vec::new();
    for format in ["csv", "xlsx"] {
        let server = Server::start(ami, database_url, client).await?;
        let idle_peak_mib = server.peak_rss_mib();
        let started = Instant::now();
        let mut response = client
            .get(format!("{}/api/v1/exports/dossiers.{format}", server.base))
            .bearer_auth(token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "export {format}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let mut first_byte_s = None;
        let (mut bytes, mut rows, mut after_cr) = (0u64, 0u64, false);
        while let Some(chunk) = response.chunk().await? {
            first_byte_s.get_or_insert(started.elapsed().as_secs_f64());
            bytes += chunk.len() as u64;
            if format == "csv" {
                // Line ends, one of which may straddle two chunks.
                for b in chunk.iter() {
                    if after_cr && *b == b'\n' {
                        rows += 1;
                    }
                    after_cr = *b == b'\r';
                }
            }
        }
        let total_s = started.elapsed().as_secs_f64();
        let exported = Exported {
            format: if format == "csv" { "CSV" } else { "XLSX" },
            bytes,
            rows,
            first_byte_s: first_byte_s.unwrap_or(total_s),
            total_s,
            idle_peak_mib,
            peak_mib: server.peak_rss_mib(),
        };
        server.stop().await;
        println!(
            "export {:<4}: {:.1} MB{} in {:.1} s (first byte after {:.2} s); server peak memory (VmHWM) {:.1} MiB ({:.1} MiB at rest)",
            exported.format,
            exported.bytes as f64 / 1e6,
            if exported.rows > 0 {
                format!(", {} rows", exported.rows)
            } else {
                String::new()
            },
            exported.total_s,
            exported.first_byte_s,
            exported.peak_mib,
            exported.idle_peak_mib,
        );
        out.push(exported);
    }
    Ok(out)
}
