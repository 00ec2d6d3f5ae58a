//! The DSFR's assets, embedded in the binary and served under a versioned
//! URL: the bytes recorded in the vendoring MANIFEST, cached for a year,
//! revalidated by their SHA-256.

use ami_tests::{Backend, StatusCode, TestApp};
use sha2::{Digest, Sha256};

const MANIFEST: &str = include_str!("../../crates/ami-service/assets/dsfr/MANIFEST");

fn version() -> String {
    ami_service::http::assets::dsfr_version().to_string()
}

#[tokio::test]
async fn every_vendored_file_is_served_with_the_digest_of_its_manifest() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    assert!(MANIFEST.starts_with(&format!("# @gouvfr/dsfr {},", version())));
    let mut served = 0;
    for line in MANIFEST.lines().skip(1) {
        let (sha, path) = line.split_once("  ./").expect("sha  ./path");
        if path == "LICENSE.md" {
            continue;
        }
        let url = format!("http://{}/static/dsfr/{}/{path}", app.addr, version());
        let res = client.get(&url).send().await.expect("get");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("bytes");
        assert_eq!(hex(&Sha256::digest(&bytes)), sha, "{path}");
        assert_eq!(headers["etag"], format!("\"{sha}\""), "{path}");
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        served += 1;
    }
    assert!(served >= 20, "{served} files");
    app.stop().await;
}

#[tokio::test]
async fn the_css_has_its_type_a_known_etag_gives_304_and_other_versions_404() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}/static/dsfr", app.addr);
    let css = client
        .get(format!("{base}/{}/dsfr.min.css", version()))
        .send()
        .await
        .expect("css");
    let etag = css.headers()["etag"].clone();

    let again = client
        .get(format!("{base}/{}/dsfr.min.css", version()))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("again");
    let old = client
        .get(format!("{base}/1.0.0/dsfr.min.css"))
        .send()
        .await
        .expect("old");
    let missing = client
        .get(format!("{base}/{}/../../Cargo.toml", version()))
        .send()
        .await
        .expect("missing");

    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.headers()["x-content-type-options"], "nosniff");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
