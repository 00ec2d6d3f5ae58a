//! Dates and instants written the way a French administration writes them:
//! « 6 novembre 2020 », « 1er juillet 2021 », « 20 juillet 2020 à 00 h 00 ».

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// A calendar day, e.g. « 6 novembre 2020 » (« 1er » for the first).
pub fn french_date(day: NaiveDate) -> String {
    let d = day.day();
    let ordinal = if d == 1 {
        "1er".to_string()
    } else {
        d.to_string()
    };
    format!("{ordinal} {} {}", MONTHS[day.month0() as usize], day.year())
}

/// An instant in `tz`, to the minute: « 20 juillet 2020 à 00 h 00 ».
pub fn french_instant(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!(
        "{} à {:02} h {:02}",
        french_date(local.date_naive()),
        local.hour(),
        local.minute()
    )
}

/// An instant in `tz`, to the second, for messages where the second decides
/// (a reception at the edge of a wave): « 6 novembre 2020 à 23 h 59 min 59 s ».
pub fn french_instant_seconds(at: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} min {:02} s",
        french_instant(at, tz),
        at.with_timezone(&tz).second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn days_are_written_in_french_with_1er_for_the_first() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(french_date(d(2020, 11, 6)), "6 novembre 2020");
        assert_eq!(french_date(d(2021, 7, 1)), "1er juillet 2021");
        assert_eq!(french_date(d(2021, 8, 15)), "15 août 2021");
        assert_eq!(french_date(d(2020, 2, 29)), "29 février 2020");
    }

    #[test]
    fn instants_are_written_in_paris_time_summer_and_winter() {
        let paris = chrono_tz::Europe::Paris;
        // 22:00 UTC on 19 July is midnight in Paris (summer time, UTC+2).
        assert_eq!(
            french_instant(at("2020-07-19T22:00:00Z"), paris),
            "20 juillet 2020 à 00 h 00"
        );
        // Winter time, UTC+1.
        assert_eq!(
            french_instant(at("2020-11-06T22:30:00Z"), paris),
            "6 novembre 2020 à 23 h 30"
        );
        assert_eq!(
            french_instant_seconds(at("2020-11-06T22:59:59Z"), paris),
            "6 novembre 2020 à 23 h 59 min 59 s"
        );
    }
}
