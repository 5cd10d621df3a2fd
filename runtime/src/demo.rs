//! The demo: a workspace with sample files of the kind people hand to
//! deskhand, and the task `deskhand demo` runs on it.

use std::path::Path;

use crate::error::{Error, Result};
use crate::workspace::{InitOutcome, Workspace};

/// Sample files: a small, believable mess of the kind people hand to deskhand.
const SAMPLES: &[(&str, &str)] = &[
    (
        "projects/2026 offsite/agenda.md",
        "# Offsite agenda\n\n- 09:00 Welcome\n- 10:00 Roadmap review\n- 14:00 Workshops\n",
    ),
    (
        "projects/2026 offsite/budget.csv",
        "item,amount_eur\nvenue,4200\ncatering,1850.50\ntravel,3120\n",
    ),
    (
        "projects/2026 offsite/attendees.txt",
        "Ana Lima\nBjörn Weiß\nChen Wei\nDana Okafor\n",
    ),
    (
        "projects/receipts/bank-export-march.csv",
        "Booking date;Payee;Amount;Currency\n\
         02.03.2026;CARD PAYMENT TAXI LISBOA;-18,40;EUR\n\
         03.03.2026;Salary March;3.250,00;EUR\n\
         05.03.2026;GITHUB SUBSCRIPTION;-4,00;EUR\n\
         09.03.2026;Staples Lisboa printer paper;-27,35;EUR\n\
         14.03.2026;CAFE CENTRAL;-23,90;EUR\n",
    ),
    (
        "projects/website refresh/notes.md",
        "Ideas: lighter header, fewer fonts, a real pricing page.\n",
    ),
    (
        "projects/website refresh/drafts/home-v2.html",
        "<h1>Welcome</h1>\n<p>Draft two.</p>\n",
    ),
    (
        "context/about-us.md",
        "We are a five-person studio. Fiscal year = calendar year. Currency: EUR.\n",
    ),
];

/// Receipts as the text PDFs shops and apps send: (file, lines).
const RECEIPT_PDFS: &[(&str, &[&str])] = &[
    (
        "projects/receipts/2026-03-02 taxi.pdf",
        &[
            "Taxi Lisboa",
            "Receipt 0412",
            "02.03.2026 23:10",
            "Airport - Baixa",
            "Total: 18.40 EUR",
        ],
    ),
    (
        "projects/receipts/lunch 14.03.2026.pdf",
        &[
            "Café Central",
            "Rua Augusta 12, Lisboa",
            "14.03.2026 13:02",
            "2x Prato do dia  19.80",
            "1x Água  4.10",
            "Subtotal 23,90",
            "TOTAL € 23,90",
        ],
    ),
    (
        "projects/receipts/hotel march 2026.pdf",
        &[
            "Hotel Avenida",
            "Invoice 2026-118",
            "Check-in 2026-03-17, 3 nights",
            "Room  3 x 137.33",
            "Total: 412.00 EUR",
        ],
    ),
];

/// What `deskhand demo` asks for; the offline planner picks the
/// receipts-to-spreadsheet skill.
pub const DEMO_TASK: &str = "Turn the receipts in projects/receipts into an expense spreadsheet";

/// Creates the demo workspace at `dir` with its sample files. Returns false
/// (and changes nothing) if it is already a workspace.
pub fn create_demo_workspace(dir: &Path) -> Result<bool> {
    let (workspace, outcome) = Workspace::init(dir)?;
    if !matches!(outcome, InitOutcome::Created { .. }) {
        return Ok(false);
    }
    for (rel, content) in SAMPLES {
        let path = workspace.root().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        if !path.exists() {
            std::fs::write(&path, content).map_err(Error::io(&path))?;
        }
    }
    for (rel, lines) in RECEIPT_PDFS {
        let path = workspace.root().join(rel);
        if !path.exists() {
            std::fs::write(&path, text_pdf(lines)).map_err(Error::io(&path))?;
        }
    }
    Ok(true)
}

/// A one-page PDF showing `lines` in Helvetica, the way a till or an app
/// prints a receipt. Characters outside Latin-1 and € become `?` (WinAnsi).
pub fn text_pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = b"BT /F1 11 Tf 14 TL 56 780 Td\n".to_vec();
    for line in lines {
        content.push(b'(');
        for ch in line.chars() {
            match ch {
                '(' | ')' | '\\' => content.extend([b'\\', ch as u8]),
                '€' => content.push(0x80),
                c if (c as u32) < 0x100 => content.push(c as u32 as u8),
                _ => content.push(b'?'),
            }
        }
        content.extend(b") Tj T*\n");
    }
    content.extend(b"ET");
    let objects: [Vec<u8>; 5] = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).into_bytes(), content, b"\nendstream".to_vec()].concat(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend(body);
        pdf.extend(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}
