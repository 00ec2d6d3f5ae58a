//! French words for numbers, sizes and durations on the pages.

use chrono::{DateTime, Utc};

/// « 1,2 Mo », « 830 ko », « 12 octets » (decimal units, as the French
/// administration writes file sizes).
pub fn size(bytes: u64) -> String {
    const KB: f64 = 1000.0;
    let b = bytes as f64;
    if bytes < 1000 {
        return format!("{bytes} octet{}", if bytes > 1 { "s" } else { "" });
    }
    let (value, unit) = if b < KB * KB {
        (b / KB, "ko")
    } else if b < KB * KB * KB {
        (b / (KB * KB), "Mo")
    } else {
        (b / (KB * KB * KB), "Go")
    };
    let text = if value < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    };
    format!("{} {unit}", text.replace('.', ","))
}

/// How long since `since`: « depuis 3 jours », « depuis 2 h », « depuis
/// 5 min », « à l'instant ».
pub fn waiting_since(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let elapsed = now.signed_duration_since(since);
    let days = elapsed.num_days();
    if days >= 2 {
        format!("depuis {days} jours")
    } else if days == 1 {
        "depuis 1 jour".into()
    } else if elapsed.num_hours() >= 1 {
        format!("depuis {} h", elapsed.num_hours())
    } else if elapsed.num_minutes() >= 1 {
        format!("depuis {} min", elapsed.num_minutes())
    } else {
        "à l'instant".into()
    }
}

/// « 1 dossier », « 12 dossiers », « aucun dossier ».
pub fn dossiers(n: i64) -> String {
    match n {
        0 => "aucun dossier".into(),
        1 => "1 dossier".into(),
        n => format!("{} dossiers", thousands(n)),
    }
}

/// « 100 000 »: thousands apart by a narrow no-break space.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202F}');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_counts_read_as_french() {
        assert_eq!(size(12), "12 octets");
        assert_eq!(size(1), "1 octet");
        assert_eq!(size(830_000), "830 ko");
        assert_eq!(size(1_234_567), "1,2 Mo");
        let now = Utc::now();
        assert_eq!(
            waiting_since(now - chrono::Duration::days(3), now),
            "depuis 3 jours"
        );
        assert_eq!(
            waiting_since(now - chrono::Duration::minutes(90), now),
            "depuis 1 h"
        );
        assert_eq!(waiting_since(now, now), "à l'instant");
        assert_eq!(dossiers(100_000), "100\u{202F}000 dossiers");
        assert_eq!(dossiers(0), "aucun dossier");
    }
}
