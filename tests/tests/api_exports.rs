//! `GET /exports/dossiers.csv` and `GET /exports/dossiers.xlsx`: read back
//! with a CSV parser and a spreadsheet reader, cell by cell, on both
//! backends; formula injection, need to know, filters, refusals.

use std::io::{Cursor, Read};

use ami_tests::*;
use calamine::{Data, Reader};
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde_json::{json, Value};

const PARIS: chrono_tz::Tz = chrono_tz::Europe::Paris;
const BOM: &[u8] = b"\xEF\xBB\xBF";

const HEADERS: [&str; 25] = [
    "Référence",
    "Commune",
    "Code INSEE",
    "Département",
    "Région",
    "Porteur",
    "Programmes",
    "Vague",
    "État",
    "Reçu le",
    "Avis DAR",
    "Date de l'avis DAR",
    "Auteur de l'avis DAR",
    "Motivation de l'avis DAR",
    "Avis ACV",
    "Date de l'avis ACV",
    "Auteur de l'avis ACV",
    "Motivation de l'avis ACV",
    "Avis TI",
    "Date de l'avis TI",
    "Auteur de l'avis TI",
    "Motivation de l'avis TI",
    "Décision",
    "Date de la décision",
    "Comité",
];

/// A motivation a CSV writer must quote: a `;`, quotes and a line break.
const TRICKY_MOTIVATION: &str = "Quartier de la gare ; « îlot Sud » et \"friche\"\nà préciser.";

/// A cell as the test expects it, whatever the format.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Empty,
    Text(String),
    Number(f64),
    /// Local time in Paris.
    At(NaiveDateTime),
}

impl Want {
    /// As the CSV writes it: text starting like a formula neutralised.
    fn csv(&self) -> String {
        match self {
            Want::Empty => String::new(),
            Want::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{t}"),
            Want::Text(t) => t.clone(),
            Want::Number(n) => n.to_string(),
            Want::At(at) => at.format("%d/%m/%Y %H:%M").to_string(),
        }
    }

    /// Compares with what the spreadsheet reader found.
    fn matches_xlsx(&self, cell: &Data) -> bool {
        match (self, cell) {
            (Want::Empty, Data::Empty) => true,
            (Want::Text(t), Data::String(s)) => t == s,
            (Want::Number(n), Data::Float(f)) => n == f,
            (Want::Number(n), Data::Int(i)) => *n == *i as f64,
            (Want::At(at), Data::DateTime(d)) => d.as_datetime().map(to_second) == Some(*at),
            _ => false,
        }
    }
}

fn text(v: &Value) -> Want {
    match v.as_str() {
        Some(s) => Want::Text(s.to_string()),
        None => Want::Empty,
    }
}

/// An instant of the API (RFC 3339, UTC) in Paris time, to the second
/// (what the exports keep).
fn paris(v: &Value) -> Want {
    let at: DateTime<Utc> = v.as_str().expect("instant").parse().expect("RFC 3339");
    Want::At(
        at.with_timezone(&PARIS)
            .naive_local()
            .with_nanosecond(0)
            .expect("a time"),
    )
}

/// To the nearest second: an Excel date is a fraction of a day, read back
/// within a millisecond.
fn to_second(at: NaiveDateTime) -> NaiveDateTime {
    (at + chrono::Duration::milliseconds(500))
        .with_nanosecond(0)
        .expect("a time")
}

/// The row a dossier (as `GET /dossiers/{id}` shows it) must have.
fn expected_row(d: &Value) -> Vec<Want> {
    let programmes: Vec<&str> = d["programmes"]
        .as_array()
        .expect("programmes")
        .iter()
        .map(|p| match p.as_str() {
            Some("acv") => "Action Cœur de Ville",
            Some("ti") => "Territoires d'industrie",
            other => panic!("programme {other:?}"),
        })
        .collect();
    let mut row = vec![
        text(&d["reference"]),
        text(&d["commune"]),
        text(&d["code_insee"]),
        match (d["departement_label"].as_str(), d["departement"].as_str()) {
            (Some(name), Some(code)) => Want::Text(format!("{name} ({code})")),
            _ => Want::Empty,
        },
        text(&d["region_label"]),
        text(&d["porteur"]["nom"]),
        Want::Text(programmes.join(", ")),
        Want::Number(d["wave"].as_f64().expect("wave")),
        text(&d["state_label"]),
        paris(&d["received_at"]),
    ];
    for agency in ["dar", "acv", "ti"] {
        let avis = &d["avis"][agency];
        if avis.is_null() {
            row.extend([Want::Empty, Want::Empty, Want::Empty, Want::Empty]);
        } else {
            row.extend([
                text(&avis["verdict_label"]),
                paris(&avis["at"]),
                text(&avis["by"]["name"]),
                text(&avis["motivation"]),
            ]);
        }
    }
    let decided = ["laureat", "refuse", "sans_suite"].contains(&d["state"].as_str().unwrap_or(""));
    if decided {
        row.extend([text(&d["state_label"]), paris(&d["updated_at"])]);
    } else {
        row.extend([Want::Empty, Want::Empty]);
    }
    row.push(match d["committee"]["held_on"].as_str() {
        Some(day) => Want::Text(format!(
            "Comité du {} ({})",
            ami_core::french_date(day.parse().expect("a day")),
            d["committee"]["id"].as_str().expect("id")
        )),
        None => Want::Empty,
    });
    row
}

/// A file as downloaded: status, content type, disposition, bytes.
struct Download {
    status: StatusCode,
    content_type: String,
    disposition: String,
    bytes: Vec<u8>,
}

async fn download(app: &TestApp, who: Option<&Person>, path: &str) -> Download {
    let mut req = app.client.get(app.url(path));
    if let Some(who) = who {
        req = req.bearer_auth(&who.token);
    }
    let res = req.send().await.expect("request");
    let header = |name| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, disposition) = (
        header(reqwest::header::CONTENT_TYPE),
        header(reqwest::header::CONTENT_DISPOSITION),
    );
    let status = res.status();
    let bytes = res.bytes().await.expect("body").to_vec();
    assert!(!status.is_server_error(), "{path}: {status}");
    Download {
        status,
        content_type,
        disposition,
        bytes,
    }
}

/// The records of an exported CSV, after checking its framing: a BOM, `;`
/// between cells, CRLF after each record (a line break inside a quoted
/// cell stays as it was written).
fn read_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(bytes.starts_with(BOM), "no byte order mark");
    assert!(bytes.ends_with(b"\r\n"), "last record not ended by CRLF");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(&bytes[BOM.len()..]);
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    // Each record ends with CRLF; a line break inside a cell is as written.
    let body = &bytes[BOM.len()..];
    let crlf = body.windows(2).filter(|w| w == b"\r\n").count();
    assert_eq!(crlf, records.len(), "CRLF after each record, nowhere else");
    let in_cells: usize = records
        .iter()
        .flatten()
        .map(|c| c.matches('\n').count())
        .sum();
    let newlines = body.iter().filter(|b| **b == b'\n').count();
    assert_eq!(newlines, records.len() + in_cells, "a line end without CR");
    records
}

/// Sheets of an exported workbook: name and rows.
fn read_xlsx(bytes: &[u8]) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an XLSX workbook");
    let names = book.sheet_names();
    names
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).expect("sheet");
            let rows = range.rows().map(<[Data]>::to_vec).collect();
            (name, rows)
        })
        .collect()
}

/// The XML of a sheet of the workbook (`xl/worksheets/sheetN.xml`).
fn sheet_xml(bytes: &[u8], n: usize) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).expect("zip");
    let mut xml = String::new();
    zip.by_name(&format!("xl/worksheets/sheet{n}.xml"))
        .expect("sheet xml")
        .read_to_string(&mut xml)
        .expect("utf-8");
    xml
}

/// A campaign of four dossiers, read back as the DAR sees them, in
/// reception order, with the team: a wave 1 dossier for TI only
/// (instructed); a wave 1 lauréat with the three avis (ACV's motivation
/// tricky, TI's starting with `-`); a wave 2 refusal; a wave 3 received.
/// Porteurs start with `=`, `+`, `-`, `@`; the TI agent's name with `+`.
struct Campaign {
    team: Team,
    dossiers: Vec<Value>,
}

async fn campaign(app: &TestApp) -> Campaign {
    let team = Team {
        dar: app.person("Camille Martin", "dar", "agent").await,
        boss: app.person("Dominique Bernard", "dar", "responsable").await,
        acv: app.person("Sophie Laurent", "acv", "agent").await,
        ti: app.person("+Karim Haddad", "ti", "agent").await,
    };
    let mut laureat = new_dossier_of("Château-Thierry", "02168", &["acv", "ti"]);
    laureat["porteur"]["nom"] = json!("=HYPERLINK(\"http://example.com\";\"Ville\")");
    let laureat = app.deposit_body(&team.dar, &laureat).await;
    let mut ti_only = in_wave(new_dossier_of("Saint-Dié-des-Vosges", "88413", &["ti"]), 1);
    ti_only["porteur"]["nom"] = json!("+33 Mairie de Saint-Dié");
    let ti_only = app.deposit_body(&team.dar, &ti_only).await;
    let mut refused = in_wave(new_dossier_of("Nevers", "58194", &["acv"]), 2);
    refused["porteur"]["nom"] = json!("-Ville de Nevers");
    let refused = app.deposit_body(&team.dar, &refused).await;
    let mut received = in_wave(
        new_dossier_of("L'Haÿ-les-Roses", "94038", &["acv", "ti"]),
        3,
    );
    received["porteur"]["nom"] = json!("@Ville de L'Haÿ");
    let received = app.deposit_body(&team.dar, &received).await;

    let favorable = json!({"verdict": "favorable"});
    app.must_act(&team.dar, &laureat, "instruire", favorable.clone())
        .await;
    app.must_act(
        &team.acv,
        &laureat,
        "avis_acv",
        json!({"verdict": "reserve", "motivation": TRICKY_MOTIVATION}),
    )
    .await;
    app.must_act(
        &team.ti,
        &laureat,
        "avis_ti",
        json!({"verdict": "reserve", "motivation": "-10 % sur le budget : à revoir"}),
    )
    .await;
    app.must_act(&team.boss, &laureat, "declarer_laureat", json!({}))
        .await;
    app.must_act(&team.dar, &ti_only, "instruire", favorable.clone())
        .await;
    app.must_act(&team.dar, &refused, "instruire", favorable.clone())
        .await;
    app.must_act(
        &team.boss,
        &refused,
        "refuser",
        json!({"motivation": "Projet hors du périmètre."}),
    )
    .await;

    let mut dossiers = Vec::new();
    // Reception order: the TI dossier (15 September) before the lauréat
    // (6 November at 23:30, Paris time).
    for d in [&ti_only, &laureat, &refused, &received] {
        let id = d["id"].as_str().expect("id");
        let (status, read) = app.get(&team.dar, &format!("/dossiers/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        dossiers.push(read);
    }
    Campaign { team, dossiers }
}

fn today_in_paris() -> String {
    Utc::now()
        .with_timezone(&PARIS)
        .format("%Y-%m-%d")
        .to_string()
}

// ---- CSV ---------------------------------------------------------------------------

async fn the_csv_export_has_a_row_per_dossier_with_every_cell_as_french_spreadsheets_read_it(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let c = campaign(&app).await;

    // Act
    let file = download(&app, Some(&c.team.dar), "/exports/dossiers.csv").await;

    // Assert
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.content_type, "text/csv; charset=utf-8");
    assert_eq!(
        file.disposition,
        format!("attachment; filename=\"dossiers-{}.csv\"", today_in_paris())
    );
    let records = read_csv(&file.bytes);
    assert_eq!(records[0], HEADERS);
    assert_eq!(records.len(), 1 + c.dossiers.len());
    for (record, d) in records[1..].iter().zip(&c.dossiers) {
        let want: Vec<String> = expected_row(d).iter().map(Want::csv).collect();
        assert_eq!(record, &want, "row of {}", d["reference"]);
    }
    // The lauréat's row, spelt out: accents, the neutralised porteur and
    // TI agent, the motivation with `;`, quotes and a line break intact,
    // the reception at 23:30 in Paris (22:30 UTC).
    let laureat = &records[2];
    assert_eq!(laureat[1], "Château-Thierry");
    assert_eq!(laureat[5], "'=HYPERLINK(\"http://example.com\";\"Ville\")");
    assert_eq!(laureat[6], "Action Cœur de Ville, Territoires d'industrie");
    assert_eq!(laureat[7], "1");
    assert_eq!(laureat[8], "Lauréat");
    assert_eq!(laureat[9], "06/11/2020 23:30");
    assert_eq!(laureat[10], "Favorable");
    assert_eq!(laureat[12], "Camille Martin");
    assert_eq!(laureat[13], "");
    assert_eq!(laureat[14], "Réservé");
    assert_eq!(laureat[16], "Sophie Laurent");
    assert_eq!(laureat[17], TRICKY_MOTIVATION);
    assert_eq!(laureat[20], "'+Karim Haddad");
    assert_eq!(laureat[21], "'-10 % sur le budget : à revoir");
    assert_eq!(laureat[22], "Lauréat");
    assert_eq!(records[1][5], "'+33 Mairie de Saint-Dié");
    assert_eq!(records[3][5], "'-Ville de Nevers");
    assert_eq!(records[3][22], "Refusé");
    assert_eq!(records[4][5], "'@Ville de L'Haÿ");
    assert_eq!(records[4][22], "");
    assert_eq!(records[4][23], "");
    app.stop().await;
}

async fn the_csv_export_takes_the_list_filters(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let c = campaign(&app).await;

    // Act
    let wave2 = download(&app, Some(&c.team.dar), "/exports/dossiers.csv?wave=2").await;
    let decided = download(
        &app,
        Some(&c.team.dar),
        "/exports/dossiers.csv?state=laureat,refuse&programme=acv",
    )
    .await;

    // Assert
    assert_eq!(wave2.status, StatusCode::OK);
    assert_eq!(
        wave2.disposition,
        format!(
            "attachment; filename=\"dossiers-{}-vague-2.csv\"",
            today_in_paris()
        )
    );
    let records = read_csv(&wave2.bytes);
    assert_eq!(records[0], HEADERS);
    let references: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(references, [c.dossiers[2]["reference"].as_str().unwrap()]);
    assert_eq!(records[1][7], "2");
    let records = read_csv(&decided.bytes);
    let references: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        references,
        [
            c.dossiers[1]["reference"].as_str().unwrap(),
            c.dossiers[2]["reference"].as_str().unwrap()
        ]
    );
    assert!(
        decided
            .disposition
            .ends_with("-etat-laureat-refuse-programme-acv.csv\""),
        "{}",
        decided.disposition
    );
    app.stop().await;
}

async fn an_agency_exports_only_the_dossiers_of_its_programmes(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let c = campaign(&app).await;
    let ti_only = c.dossiers[0]["reference"].as_str().unwrap().to_string();

    // Act
    let csv = download(&app, Some(&c.team.acv), "/exports/dossiers.csv").await;
    let xlsx = download(&app, Some(&c.team.acv), "/exports/dossiers.xlsx").await;
    let ti = download(&app, Some(&c.team.ti), "/exports/dossiers.csv").await;

    // Assert
    let records = read_csv(&csv.bytes);
    let references: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    let acv: Vec<&str> = c.dossiers[1..]
        .iter()
        .map(|d| d["reference"].as_str().unwrap())
        .collect();
    assert_eq!(references, acv);
    assert!(!references.contains(&ti_only.as_str()));
    let in_sheets: Vec<String> = read_xlsx(&xlsx.bytes)
        .into_iter()
        .flat_map(|(_, rows)| rows.into_iter().skip(1))
        .map(|row| row[0].to_string())
        .collect();
    assert_eq!(in_sheets, acv);
    let records = read_csv(&ti.bytes);
    let references: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    // TI reads its own dossier, the lauréat (ACV and TI) and the wave 3
    // dossier (ACV and TI), not Nevers (ACV only).
    let ti_reads: Vec<&str> = [0, 1, 3]
        .iter()
        .map(|i| c.dossiers[*i]["reference"].as_str().unwrap())
        .collect();
    assert_eq!(references, ti_reads);
    app.stop().await;
}

async fn an_export_read_over_many_pages_is_the_same_file(backend: Backend) {
    // Arrange: the four dossiers, read two at a time.
    let app = TestApp::spawn(backend).await;
    let c = campaign(&app).await;
    let everything = ami_service::store::DossierFilter::default();
    let pages = || ami_service::export::Pages::sized(app.store.clone(), everything.clone(), 2);

    // Act
    let chunks = ami_service::export::csv_stream(app.definition.clone(), pages())
        .await
        .expect("export");
    let chunks: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(chunks)
        .await
        .expect("chunks");
    let mut workbook = ami_service::export::xlsx_file(app.definition.clone(), vec![], pages())
        .await
        .expect("workbook");
    let mut xlsx = Vec::new();
    workbook.read_to_end(&mut xlsx).expect("read");

    // Assert: a chunk for the head and the first page, one for the second.
    assert_eq!(chunks.len(), 2);
    let csv: Vec<u8> = chunks.concat();
    let http = download(&app, Some(&c.team.dar), "/exports/dossiers.csv").await;
    assert_eq!(csv, http.bytes);
    let http = download(&app, Some(&c.team.dar), "/exports/dossiers.xlsx").await;
    assert_eq!(read_xlsx(&xlsx), read_xlsx(&http.bytes));
    app.stop().await;
}

// ---- XLSX --------------------------------------------------------------------------

async fn the_xlsx_export_has_a_sheet_per_wave_real_dates_and_every_cell(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let c = campaign(&app).await;

    // Act
    let file = download(&app, Some(&c.team.dar), "/exports/dossiers.xlsx").await;

    // Assert
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(
        file.content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(
        file.disposition,
        format!(
            "attachment; filename=\"dossiers-{}.xlsx\"",
            today_in_paris()
        )
    );
    let sheets = read_xlsx(&file.bytes);
    let names: Vec<&str> = sheets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Vague 1", "Vague 2", "Vague 3"]);
    let by_wave: [&[Value]; 3] = [&c.dossiers[0..2], &c.dossiers[2..3], &c.dossiers[3..4]];
    for ((name, rows), dossiers) in sheets.iter().zip(by_wave) {
        let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
        assert_eq!(header, HEADERS, "header of {name}");
        assert_eq!(rows.len(), 1 + dossiers.len(), "rows of {name}");
        for (row, d) in rows[1..].iter().zip(dossiers) {
            let want = expected_row(d);
            // The reader stops a row at its last non-empty cell.
            for (i, w) in want.iter().enumerate() {
                let cell = row.get(i).unwrap_or(&Data::Empty);
                assert!(
                    w.matches_xlsx(cell),
                    "{name}, {} column {:?}: want {w:?}, found {cell:?}",
                    d["reference"],
                    HEADERS[i]
                );
            }
        }
    }
    // The lauréat: received at 23:30 in Paris, a real date; the porteur
    // kept as text (no formula in a workbook), the motivation whole.
    let laureat = &sheets[0].1[2];
    let received =
        NaiveDateTime::parse_from_str("2020-11-06 23:30:00", "%Y-%m-%d %H:%M:%S").expect("date");
    match &laureat[9] {
        Data::DateTime(d) => assert_eq!(d.as_datetime(), Some(received)),
        other => panic!("« Reçu le » is not a date: {other:?}"),
    }
    assert_eq!(
        laureat[5],
        Data::String("=HYPERLINK(\"http://example.com\";\"Ville\")".into())
    );
    assert_eq!(laureat[17], Data::String(TRICKY_MOTIVATION.into()));
    // A frozen header row and a filter over each sheet's rows.
    for (n, rows) in [(1, 3), (2, 2), (3, 2)] {
        let xml = sheet_xml(&file.bytes, n);
        assert!(
            xml.contains(
                r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#
            ),
            "sheet {n}: {xml}"
        );
        assert!(
            xml.contains(&format!(r#"<autoFilter ref="A1:Y{rows}"/>"#)),
            "sheet {n}: {xml}"
        );
        assert!(xml.contains("<cols>"), "sheet {n} has no column widths");
    }
    app.stop().await;
}

async fn the_xlsx_export_of_one_wave_is_one_sheet(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let c = campaign(&app).await;

    // Act
    let file = download(&app, Some(&c.team.dar), "/exports/dossiers.xlsx?wave=2").await;

    // Assert
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(
        file.disposition,
        format!(
            "attachment; filename=\"dossiers-{}-vague-2.xlsx\"",
            today_in_paris()
        )
    );
    let sheets = read_xlsx(&file.bytes);
    assert_eq!(sheets.len(), 1);
    assert_eq!(sheets[0].0, "Vague 2");
    let rows = &sheets[0].1;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1][0],
        Data::String(c.dossiers[2]["reference"].as_str().unwrap().into())
    );
    app.stop().await;
}

// ---- Refusals ------------------------------------------------------------------------

async fn a_bad_export_parameter_is_400_naming_it_as_for_the_list(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;
    let cases = [
        ("wave=4", "wave"),
        ("wave=un", "wave"),
        ("state=archive", "state"),
        ("programme=pvd", "programme"),
        ("awaiting=cnam", "awaiting"),
        ("state=recu&state=instruit", "state"),
        ("q=a%00b", "q"),
        ("sort=commune", "sort"),
        ("limit=10", "limit"),
    ];

    for format in ["csv", "xlsx"] {
        for (query, field) in cases {
            // Act
            let reply = app
                .fetch(&dar, &format!("/exports/dossiers.{format}?{query}"))
                .await;

            // Assert
            reply.assert_field_problem(StatusCode::BAD_REQUEST, "invalid_parameter", field);
            let list = app.fetch(&dar, &format!("/dossiers?{query}")).await;
            // The same words as the list's, but where the accepted
            // parameters are listed (the list's pages take two more).
            if !["limit", "sort"].contains(&field) {
                assert_eq!(reply.body["detail"], list.body["detail"], "{query}");
            }
        }
    }
    app.stop().await;
}

async fn an_export_without_a_token_is_401(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;

    for path in ["/exports/dossiers.csv", "/exports/dossiers.xlsx"] {
        // Act
        let reply = app.send(reqwest::Method::GET, path, None, &[], None).await;

        // Assert
        reply.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    }
    app.stop().await;
}

async fn an_empty_export_is_the_header_row_alone(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let dar = app.person("Camille Martin", "dar", "agent").await;

    // Act
    let csv = download(&app, Some(&dar), "/exports/dossiers.csv").await;
    let xlsx = download(&app, Some(&dar), "/exports/dossiers.xlsx?wave=1").await;

    // Assert
    assert_eq!(read_csv(&csv.bytes), [HEADERS]);
    let sheets = read_xlsx(&xlsx.bytes);
    assert_eq!(sheets.len(), 1);
    assert_eq!(sheets[0].1.len(), 1);
    app.stop().await;
}

on_both_backends!(
    the_csv_export_has_a_row_per_dossier_with_every_cell_as_french_spreadsheets_read_it,
    the_csv_export_takes_the_list_filters,
    an_agency_exports_only_the_dossiers_of_its_programmes,
    an_export_read_over_many_pages_is_the_same_file,
    the_xlsx_export_has_a_sheet_per_wave_real_dates_and_every_cell,
    the_xlsx_export_of_one_wave_is_one_sheet,
    a_bad_export_parameter_is_400_naming_it_as_for_the_list,
    an_export_without_a_token_is_401,
    an_empty_export_is_the_header_row_alone,
);
