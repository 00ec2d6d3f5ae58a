//! Exports of the dossier list, one row per dossier in the list's order:
//! CSV as French spreadsheet software opens it, written page by page as the
//! store gives them, and XLSX, built row by row in constant memory. The API
//! (`GET /api/v1/exports/dossiers.{csv,xlsx}`) and `ami export` both go
//! through here.

use std::io::{Seek, Write};
use std::sync::Arc;

use ami_core::{Avis, Definition, Dossier};
use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures_util::Stream;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

use crate::store::{Database, DossierFilter, ListCursor, StoreError};

/// Dossiers read from the store at a time.
pub const PAGE: u32 = 500;

/// What an export can fail on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("écriture du CSV : {0}")]
    Csv(#[from] csv::Error),
    #[error("écriture du classeur : {0}")]
    Xlsx(#[from] XlsxError),
    #[error("fichier temporaire : {0}")]
    Io(#[from] std::io::Error),
}

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        }
    }
}

// ---- The columns ----------------------------------------------------------------

/// One cell's value, before a format writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    /// Text; in CSV, neutralised against formula injection ([`neutralise`]).
    Text(String),
    Number(f64),
    /// An instant, written in the campaign's time zone.
    At(DateTime<Utc>),
}

impl Cell {
    fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn maybe_text(s: Option<impl Into<String>>) -> Cell {
        s.map_or(Cell::Empty, Cell::text)
    }
}

/// A column: its header, its width in the spreadsheet (in characters) and
/// how its value is read from a dossier.
pub struct Column {
    pub header: String,
    pub width: f64,
    value: Value,
}

enum Value {
    Dossier(fn(&Definition, &Dossier) -> Cell),
    /// A column of one agency's avis: the latest the agency gave.
    Avis(ami_core::AgencyId, fn(&Definition, &Avis) -> Cell),
}

impl Column {
    pub fn value(&self, def: &Definition, d: &Dossier) -> Cell {
        match &self.value {
            Value::Dossier(get) => get(def, d),
            Value::Avis(agency, get) => latest_avis(def, d, agency.as_str())
                .map(|a| get(def, a))
                .unwrap_or(Cell::Empty),
        }
    }
}

type DossierColumn = (&'static str, f64, fn(&Definition, &Dossier) -> Cell);
type AvisColumn = (&'static str, f64, fn(&Definition, &Avis) -> Cell);

/// The columns before the avis: header, width, value. A new column is one
/// line here.
const DOSSIER_COLUMNS: &[DossierColumn] = &[
    ("Référence", 16.0, |_, d| Cell::text(d.reference.as_str())),
    ("Commune", 28.0, |_, d| Cell::text(d.commune.as_str())),
    ("Code INSEE", 11.0, |_, d| Cell::text(d.code_insee.as_str())),
    // From the official geographic code; empty for a code it lacks.
    ("Département", 24.0, |_, d| {
        Cell::maybe_text(
            ami_core::commune(&d.code_insee)
                .and_then(|c| ami_core::departement(c.departement))
                .map(|dep| format!("{} ({})", dep.name, dep.code)),
        )
    }),
    ("Région", 28.0, |_, d| {
        Cell::maybe_text(
            ami_core::commune(&d.code_insee)
                .and_then(|c| ami_core::region(c.region))
                .map(|r| r.name),
        )
    }),
    ("Porteur", 32.0, |_, d| Cell::text(d.porteur.nom.as_str())),
    ("Programmes", 40.0, |def, d| {
        Cell::Text(
            d.programmes
                .iter()
                .map(|p| def.programme(p).map_or(p.as_str(), |p| p.label.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }),
    ("Vague", 8.0, |_, d| Cell::Number(f64::from(d.wave))),
    ("État", 30.0, |def, d| {
        Cell::text(def.state_label(d.state.as_str()))
    }),
    ("Reçu le", 17.0, |_, d| Cell::At(d.received_at)),
];

/// The columns of each agency's avis, `{}` standing for the agency
/// ([`agency_name`]), repeated for every agency that gives a verdict, in
/// the definition's order.
const AVIS_COLUMNS: &[AvisColumn] = &[
    ("Avis {}", 14.0, |def, a| {
        Cell::text(
            def.verdict(a.verdict.as_str())
                .map_or(a.verdict.as_str(), |v| v.label.as_str()),
        )
    }),
    ("Date de l'avis {}", 17.0, |_, a| Cell::At(a.at)),
    ("Auteur de l'avis {}", 24.0, |_, a| {
        Cell::text(a.actor.name.as_str())
    }),
    ("Motivation de l'avis {}", 50.0, |_, a| {
        Cell::maybe_text(a.motivation.as_deref())
    }),
];

/// The columns after the avis.
const DECISION_COLUMNS: &[DossierColumn] = &[
    ("Décision", 18.0, |def, d| {
        if def.is_terminal(d.state.as_str()) {
            Cell::text(def.state_label(d.state.as_str()))
        } else {
            Cell::Empty
        }
    }),
    // A dossier in a final state takes no more action: its last event is
    // the decision.
    ("Date de la décision", 17.0, |def, d| {
        if def.is_terminal(d.state.as_str()) {
            Cell::At(d.updated_at)
        } else {
            Cell::Empty
        }
    }),
    ("Comité", 30.0, |_, d| {
        Cell::maybe_text(d.committee.as_ref().map(|c| {
            format!(
                "Comité du {} ({})",
                ami_core::french_date(c.held_on),
                c.committee_id
            )
        }))
    }),
];

/// How an agency is named in a header: its identifier in capitals (« ACV »,
/// « TI », « DAR », as people call them; the definition's labels are whole
/// directorate names, too long for a header).
fn agency_name(agency: &str) -> String {
    agency.to_uppercase()
}

/// The export's columns under `def`, in order.
pub fn columns(def: &Definition) -> Vec<Column> {
    let plain = |(header, width, get): &DossierColumn| Column {
        header: header.to_string(),
        width: *width,
        value: Value::Dossier(*get),
    };
    let mut out: Vec<Column> = DOSSIER_COLUMNS.iter().map(plain).collect();
    for agency in def.agencies() {
        let gives_avis = def
            .actions()
            .iter()
            .any(|a| a.verdict && a.agency == agency.id);
        if !gives_avis {
            continue;
        }
        for (header, width, get) in AVIS_COLUMNS {
            out.push(Column {
                header: header.replace("{}", &agency_name(agency.id.as_str())),
                width: *width,
                value: Value::Avis(agency.id.clone(), *get),
            });
        }
    }
    out.extend(DECISION_COLUMNS.iter().map(plain));
    out
}

/// The last avis `agency` gave on the dossier, through any of its actions
/// that carry a verdict.
fn latest_avis<'a>(def: &Definition, d: &'a Dossier, agency: &str) -> Option<&'a Avis> {
    def.actions()
        .iter()
        .filter(|a| a.verdict && a.agency == agency)
        .filter_map(|a| d.avis(a.id.as_str()))
        .max_by_key(|a| a.at)
}

// ---- Reading the dossiers -------------------------------------------------------

/// The dossiers a filter lists, page by page, in the list's order.
pub struct Pages {
    store: Database,
    filter: DossierFilter,
    done: bool,
}

impl Pages {
    /// From the list's first dossier, [`PAGE`] at a time.
    pub fn new(store: Database, filter: DossierFilter) -> Pages {
        Pages::sized(store, filter, PAGE)
    }

    /// From the list's first dossier, `size` at a time (for tests: a few
    /// dossiers over several pages).
    pub fn sized(store: Database, filter: DossierFilter, size: u32) -> Pages {
        Pages {
            store,
            filter: DossierFilter {
                limit: size,
                after: None,
                ..filter
            },
            done: false,
        }
    }

    /// The next page; `None` once the list is through.
    pub async fn next(&mut self) -> Result<Option<Vec<Dossier>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.list_dossiers(&self.filter).await?;
        match page.next.as_deref().and_then(ListCursor::decode) {
            Some(cursor) => self.filter.after = Some(cursor),
            None => self.done = true,
        }
        Ok(Some(page.items))
    }
}

// ---- CSV --------------------------------------------------------------------------

/// What French spreadsheet software needs to read UTF-8.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// A cell neutralised against formula injection (OWASP's advice): text
/// that a spreadsheet could take for a formula (starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return) gets a leading `'`. The CSV
/// applies it to every text cell; most come from people (commune,
/// porteur, names, motivations). A workbook needs none: its text cells are
/// text, never formulas.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// `06/11/2020 23:30`, in the campaign's time zone.
fn csv_instant(def: &Definition, at: DateTime<Utc>) -> String {
    at.with_timezone(&def.campaign().time_zone)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// The start of the file: the byte order mark and the header row.
pub fn csv_head(columns: &[Column]) -> Result<Bytes, ExportError> {
    let mut w = csv_writer();
    w.write_record(columns.iter().map(|c| c.header.as_str()))?;
    let mut out = BOM.to_vec();
    out.extend(w.into_inner().map_err(|e| e.into_error())?);
    Ok(out.into())
}

/// The rows of some dossiers.
pub fn csv_rows(
    def: &Definition,
    columns: &[Column],
    dossiers: &[Dossier],
) -> Result<Bytes, ExportError> {
    let mut w = csv_writer();
    let mut record: Vec<String> = Vec::with_capacity(columns.len());
    for d in dossiers {
        record.clear();
        record.extend(columns.iter().map(|c| match c.value(def, d) {
            Cell::Empty => String::new(),
            Cell::Text(t) => neutralise(&t).into_owned(),
            Cell::Number(n) => n.to_string(),
            Cell::At(at) => csv_instant(def, at),
        }));
        w.write_record(&record)?;
    }
    Ok(w.into_inner().map_err(|e| e.into_error())?.into())
}

/// The whole CSV file, in chunks: the head with the first page, then a
/// chunk per page. The first page is read before anything is returned, so
/// that a database that does not answer is an error, not a cut file.
pub async fn csv_stream(
    def: Arc<Definition>,
    mut pages: Pages,
) -> Result<impl Stream<Item = Result<Bytes, ExportError>> + Send + 'static, ExportError> {
    let columns = Arc::new(columns(&def));
    let first = pages.next().await?.unwrap_or_default();
    let mut head = csv_head(&columns)?.to_vec();
    head.extend_from_slice(&csv_rows(&def, &columns, &first)?);
    let rest = futures_util::stream::try_unfold(pages, move |mut pages| {
        let (def, columns) = (def.clone(), columns.clone());
        async move {
            match pages.next().await? {
                None => Ok(None),
                Some(page) => Ok(Some((csv_rows(&def, &columns, &page)?, pages))),
            }
        }
    });
    use futures_util::StreamExt;
    Ok(futures_util::stream::once(async move { Ok(Bytes::from(head)) }).chain(rest))
}

// ---- XLSX -----------------------------------------------------------------------

/// The sheets of an export: one per wave of the definition when the list
/// does not pick waves, else one.
fn sheet_names(def: &Definition, waves: &[u8]) -> Vec<(Option<u8>, String)> {
    match waves {
        [] => def
            .campaign()
            .waves
            .iter()
            .map(|w| (Some(w.number), format!("Vague {}", w.number)))
            .collect(),
        [one] => vec![(None, format!("Vague {one}"))],
        several => {
            let numbers: Vec<String> = several.iter().map(u8::to_string).collect();
            vec![(None, format!("Vagues {}", numbers.join(", ")))]
        }
    }
}

/// An instant as Excel keeps it: a date and time in the campaign's time
/// zone, without zone.
fn excel_instant(def: &Definition, at: DateTime<Utc>) -> Result<ExcelDateTime, XlsxError> {
    let local = at.with_timezone(&def.campaign().time_zone);
    let year = u16::try_from(local.year()).unwrap_or(1900);
    ExcelDateTime::from_ymd(year, local.month() as u8, local.day() as u8)?.and_hms(
        local.hour() as u16,
        local.minute() as u8,
        f64::from(local.second()),
    )
}

/// A workbook being written, one row at a time per sheet.
struct Sheets {
    workbook: Workbook,
    /// The wave each sheet holds (`None`: the only sheet), and the next row.
    sheets: Vec<(Option<u8>, u32)>,
    header: Format,
    date: Format,
}

impl Sheets {
    fn new(def: &Definition, waves: &[u8], columns: &[Column]) -> Result<Sheets, XlsxError> {
        let mut sheets = Sheets {
            workbook: Workbook::new(),
            sheets: Vec::new(),
            header: Format::new().set_bold(),
            date: Format::new().set_num_format("dd/mm/yyyy hh:mm"),
        };
        for (wave, name) in sheet_names(def, waves) {
            sheets.add(wave, name, columns)?;
        }
        Ok(sheets)
    }

    /// A sheet with its columns' widths, its header row, frozen; its index.
    fn add(
        &mut self,
        wave: Option<u8>,
        name: String,
        columns: &[Column],
    ) -> Result<usize, XlsxError> {
        let sheet = self.workbook.add_worksheet_with_constant_memory();
        sheet.set_name(name)?;
        for (i, c) in columns.iter().enumerate() {
            sheet.set_column_width(i as u16, c.width)?;
            sheet.write_string_with_format(0, i as u16, &c.header, &self.header)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        self.sheets.push((wave, 1));
        Ok(self.sheets.len() - 1)
    }

    fn write(
        &mut self,
        def: &Definition,
        columns: &[Column],
        d: &Dossier,
    ) -> Result<(), XlsxError> {
        let found = self
            .sheets
            .iter()
            .position(|(w, _)| w.is_none() || *w == Some(d.wave));
        let index = match found {
            Some(i) => i,
            // A wave the definition does not name (none should): a sheet
            // of its own, after the others.
            None => self.add(Some(d.wave), format!("Vague {}", d.wave), columns)?,
        };
        let row = self.sheets[index].1;
        self.sheets[index].1 += 1;
        let sheet = self.workbook.worksheet_from_index(index)?;
        for (i, c) in columns.iter().enumerate() {
            let col = i as u16;
            match c.value(def, d) {
                Cell::Empty => {}
                Cell::Text(t) => {
                    sheet.write_string(row, col, t)?;
                }
                Cell::Number(n) => {
                    sheet.write_number(row, col, n)?;
                }
                Cell::At(at) => {
                    sheet.write_datetime_with_format(
                        row,
                        col,
                        excel_instant(def, at)?,
                        &self.date,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Sets each sheet's filter over its rows and writes the workbook.
    fn save<W: Write + Send>(mut self, columns: &[Column], to: W) -> Result<(), XlsxError> {
        let last_col = columns.len().saturating_sub(1) as u16;
        for (index, (_, next_row)) in self.sheets.iter().enumerate() {
            let sheet = self.workbook.worksheet_from_index(index)?;
            sheet.autofilter(0, 0, next_row.saturating_sub(1), last_col)?;
        }
        self.workbook.save_to_writer(to)
    }
}

/// The whole XLSX file, in an anonymous temporary file (gone when closed),
/// read from the start. Pages are read here and written by a blocking
/// task, one page ahead at most: memory does not grow with the list.
pub async fn xlsx_file(
    def: Arc<Definition>,
    waves: Vec<u8>,
    mut pages: Pages,
) -> Result<std::fs::File, ExportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Dossier>>(1);
    let writer_def = def.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<std::fs::File, ExportError> {
        let def = writer_def;
        let columns = columns(&def);
        let mut sheets = Sheets::new(&def, &waves, &columns)?;
        while let Some(page) = rx.blocking_recv() {
            for d in &page {
                sheets.write(&def, &columns, d)?;
            }
        }
        let mut file = tempfile::tempfile()?;
        sheets.save(&columns, &mut file)?;
        file.rewind()?;
        Ok(file)
    });
    let mut read = Ok(());
    loop {
        match pages.next().await {
            Ok(Some(page)) => {
                if tx.send(page).await.is_err() {
                    // The writer stopped: its error says why.
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                read = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| std::io::Error::other(format!("tâche d'écriture du classeur : {e}")))?;
    read?;
    written
}

/// The whole file of `filter`'s list written to `out`: what `ami export`
/// prints, by the same code as the API's.
pub async fn write_to(
    store: Database,
    def: Arc<Definition>,
    filter: DossierFilter,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    match format {
        ExportFormat::Csv => {
            use futures_util::StreamExt;
            let chunks = csv_stream(def, Pages::new(store, filter)).await?;
            let mut chunks = std::pin::pin!(chunks);
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?)?;
            }
        }
        ExportFormat::Xlsx => {
            let waves = filter.waves.clone();
            let mut file = xlsx_file(def, waves, Pages::new(store, filter)).await?;
            std::io::copy(&mut file, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

// ---- File names -------------------------------------------------------------------

/// The words a file name gives each filter (the others keep their name).
const FILTER_WORDS: &[(&str, &str)] = &[
    ("wave", "vague"),
    ("state", "etat"),
    ("programme", "programme"),
    ("awaiting", "attente"),
    ("overdue", "retard"),
    ("retard", "retard"),
    ("q", "recherche"),
];

/// `dossiers-2021-07-01-vague-1-etat-laureat-refuse.csv`: the day (in the
/// campaign's time zone) and the filters, in ASCII.
pub fn file_name(
    def: &Definition,
    now: DateTime<Utc>,
    filters: &[(String, String)],
    format: ExportFormat,
) -> String {
    let mut name = format!(
        "dossiers-{}",
        now.with_timezone(&def.campaign().time_zone)
            .format("%Y-%m-%d")
    );
    for (param, value) in filters {
        let slug = slug(value);
        if slug.is_empty() {
            continue;
        }
        let word = FILTER_WORDS
            .iter()
            .find(|(p, _)| p == param)
            .map_or(param.as_str(), |(_, w)| w);
        name.push('-');
        name.push_str(&slug_of_word(word));
        name.push('-');
        name.push_str(&slug);
    }
    let mut name: String = name.chars().take(120).collect();
    while name.ends_with('-') {
        name.pop();
    }
    format!("{name}.{}", format.extension())
}

/// Lower-case ASCII letters and digits, every other run of characters one
/// `-`: « Château-Thierry » is `chateau-thierry`.
fn slug(text: &str) -> String {
    ami_core::text::search_key(text)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn slug_of_word(word: &str) -> String {
    let s = slug(word);
    if s.is_empty() {
        "filtre".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_a_spreadsheet_would_take_for_a_formula_is_neutralised() {
        for bad in ["=1+2", "+33 1", "-2", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(neutralise(bad), format!("'{bad}"));
        }
        for fine in ["Nevers", "Saint-Dié", "a=b", " =1", ""] {
            assert_eq!(neutralise(fine), fine);
        }
    }

    #[test]
    fn the_columns_are_the_dossier_then_each_agency_avis_then_the_decision_and_committee() {
        let def = Definition::ami2();
        let headers: Vec<String> = columns(&def).into_iter().map(|c| c.header).collect();
        assert_eq!(
            headers,
            [
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
            ]
        );
    }

    #[test]
    fn a_file_name_says_the_day_in_paris_and_the_filters() {
        let def = Definition::ami2();
        let at = DateTime::parse_from_rfc3339("2021-06-30T23:30:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        let filters = vec![
            ("wave".to_string(), "1".to_string()),
            ("state".to_string(), "laureat,refuse".to_string()),
            ("q".to_string(), "Château-Thierry".to_string()),
        ];
        assert_eq!(
            file_name(&def, at, &filters, ExportFormat::Csv),
            "dossiers-2021-07-01-vague-1-etat-laureat-refuse-recherche-chateau-thierry.csv"
        );
        assert_eq!(
            file_name(&def, at, &[], ExportFormat::Xlsx),
            "dossiers-2021-07-01.xlsx"
        );
    }

    #[test]
    fn sheets_are_one_per_wave_unless_the_list_picks_waves() {
        let def = Definition::ami2();
        let names = |waves: &[u8]| -> Vec<String> {
            sheet_names(&def, waves)
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        };
        assert_eq!(names(&[]), ["Vague 1", "Vague 2", "Vague 3"]);
        assert_eq!(names(&[2]), ["Vague 2"]);
        assert_eq!(names(&[1, 3]), ["Vagues 1, 3"]);
    }
}
