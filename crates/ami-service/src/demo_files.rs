//! Small real files for `ami demo`: a one-page PDF dossier de candidature
//! and an Excel budget prévisionnel per commune, so that a newcomer has
//! something to download and open.

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, XlsxError};

/// A one-page PDF (PDF 1.4, Helvetica) with the commune's name and a few
/// lines; the cross-reference table is computed from the objects written.
pub fn candidature_pdf(commune: &str, insee: &str) -> Vec<u8> {
    // WinAnsiEncoding covers French accents; the text is written as such.
    let lines = [
        "AMI Au coeur des territoires - Dossier de candidature".to_string(),
        format!("Commune : {commune} (INSEE {insee})"),
        "Projet : accueillir un centre Cnam en coeur de ville.".to_string(),
        "Document de demonstration produit par ami demo.".to_string(),
    ];
    let mut content = String::from("BT /F1 14 Tf 72 760 Td 18 TL\n");
    for line in &lines {
        content.push('(');
        for c in line.chars() {
            match c {
                '(' | ')' | '\\' => {
                    content.push('\\');
                    content.push(c);
                }
                c if c.is_ascii() && !c.is_ascii_control() => content.push(c),
                // Outside ASCII: an octal escape of its WinAnsi (Latin-1) code.
                c if (c as u32) < 256 => content.push_str(&format!("\\{:03o}", c as u32)),
                _ => content.push('?'),
            }
        }
        content.push_str(") Tj T*\n");
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
    ];
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// A budget prévisionnel as an Excel workbook: charges and produits.
pub fn budget_xlsx(commune: &str) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    // A fixed creation date: the same commune gives the same bytes.
    let created = ExcelDateTime::from_ymd(2020, 9, 1)?;
    workbook.set_properties(
        &DocProperties::new()
            .set_title("Budget prévisionnel")
            .set_creation_datetime(&created),
    );
    let sheet = workbook.add_worksheet();
    sheet.set_name("Budget prévisionnel")?;
    let bold = Format::new().set_bold();
    let euros = Format::new().set_num_format("# ##0 €");
    sheet.write_string_with_format(0, 0, format!("Budget prévisionnel — {commune}"), &bold)?;
    let rows: [(&str, f64); 5] = [
        ("Aménagement des locaux", 180_000.0),
        ("Équipement numérique", 45_000.0),
        ("Animation et communication", 20_000.0),
        ("Participation de la commune", -150_000.0),
        ("Aide demandée", -95_000.0),
    ];
    sheet.write_string_with_format(2, 0, "Poste", &bold)?;
    sheet.write_string_with_format(2, 1, "Montant", &bold)?;
    for (i, (label, amount)) in rows.iter().enumerate() {
        let row = 3 + i as u32;
        sheet.write_string(row, 0, *label)?;
        sheet.write_number_with_format(row, 1, *amount, &euros)?;
    }
    sheet.set_column_width(0, 32)?;
    sheet.set_column_width(1, 14)?;
    workbook.save_to_buffer()
}
