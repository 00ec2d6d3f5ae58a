//! Working days in France: weekends and public holidays, computed from the
//! year alone (the movable holidays from Easter), so that there is no table
//! to keep up to date. Deadlines of the workflow count in these days.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// Which public holidays apply: those of France, or those of Alsace-Moselle
/// (Bas-Rhin, Haut-Rhin, Moselle), which add Good Friday and 26 December.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calendar {
    /// The eleven public holidays of the Code du travail (art. L3133-1).
    #[default]
    France,
    /// France's, plus Good Friday and 26 December (local law of
    /// Alsace-Moselle).
    AlsaceMoselle,
}

impl Calendar {
    /// As people name it (« France », « Alsace-Moselle »).
    pub fn label(self) -> &'static str {
        match self {
            Calendar::France => "France",
            Calendar::AlsaceMoselle => "Alsace-Moselle",
        }
    }
}

/// A public holiday of a year: its date and its French name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PublicHoliday {
    /// The day.
    pub date: NaiveDate,
    /// As people name it (« Lundi de Pâques »).
    pub name: &'static str,
}

/// Where a holiday falls: on a fixed day, or a number of days after Easter
/// Sunday.
enum Rule {
    Fixed(u32, u32),
    Easter(i64),
}

/// Every holiday, in the order of the year (the movable ones where they
/// usually fall), and whether only Alsace-Moselle has it.
const HOLIDAYS: &[(&str, Rule, bool)] = &[
    ("Jour de l'an", Rule::Fixed(1, 1), false),
    ("Vendredi saint", Rule::Easter(-2), true),
    ("Lundi de Pâques", Rule::Easter(1), false),
    ("Fête du Travail", Rule::Fixed(5, 1), false),
    ("Victoire 1945", Rule::Fixed(5, 8), false),
    ("Ascension", Rule::Easter(39), false),
    ("Lundi de Pentecôte", Rule::Easter(50), false),
    ("Fête nationale", Rule::Fixed(7, 14), false),
    ("Assomption", Rule::Fixed(8, 15), false),
    ("Toussaint", Rule::Fixed(11, 1), false),
    ("Armistice 1918", Rule::Fixed(11, 11), false),
    ("Noël", Rule::Fixed(12, 25), false),
    ("Saint-Étienne", Rule::Fixed(12, 26), true),
];

/// Easter Sunday of a year of the Gregorian calendar, by the anonymous
/// Gregorian algorithm (Meeus/Jones/Butcher); `None` for a year `chrono`
/// cannot represent.
///
/// ```
/// use ami_core::calendar::easter_sunday;
/// use chrono::NaiveDate;
///
/// assert_eq!(easter_sunday(2024), NaiveDate::from_ymd_opt(2024, 3, 31));
/// ```
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    // Euclidean division keeps every intermediate in range for any year
    // (the computation is periodic); the usual `/` and `%` would go wrong
    // before year 0.
    let y = year;
    let a = y.rem_euclid(19);
    let (b, c) = (y.div_euclid(100), y.rem_euclid(100));
    let (d, e) = (b.div_euclid(4), b.rem_euclid(4));
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let (i, k) = (c.div_euclid(4), c.rem_euclid(4));
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The public holidays of `year` under `calendar`, by date (two holidays
/// may fall on the same day: Ascension on 1 or 8 May, as in 2008); empty
/// for a year `chrono` cannot represent.
///
/// ```
/// use ami_core::calendar::{public_holidays, Calendar};
/// use chrono::Datelike;
///
/// let names: Vec<&str> = public_holidays(2024, Calendar::France)
///     .iter()
///     .filter(|h| h.date.month() == 5)
///     .map(|h| h.name)
///     .collect();
/// assert_eq!(names, ["Fête du Travail", "Victoire 1945", "Ascension", "Lundi de Pentecôte"]);
/// ```
pub fn public_holidays(year: i32, calendar: Calendar) -> Vec<PublicHoliday> {
    let Some(easter) = easter_sunday(year) else {
        return Vec::new();
    };
    let mut out: Vec<PublicHoliday> = HOLIDAYS
        .iter()
        .filter(|(_, _, local)| !local || calendar == Calendar::AlsaceMoselle)
        .filter_map(|(name, rule, _)| {
            let date = match *rule {
                Rule::Fixed(month, day) => NaiveDate::from_ymd_opt(year, month, day),
                Rule::Easter(offset) => easter.checked_add_signed(chrono::Duration::days(offset)),
            };
            date.map(|date| PublicHoliday { date, name })
        })
        .collect();
    // Stable: holidays of the same day keep the order of `HOLIDAYS`.
    out.sort_by_key(|h| h.date);
    out
}

/// The public holiday `date` is under `calendar`, if any (the first one
/// when two fall on the same day).
pub fn public_holiday(date: NaiveDate, calendar: Calendar) -> Option<PublicHoliday> {
    public_holidays(date.year(), calendar)
        .into_iter()
        .find(|h| h.date == date)
}

/// `date` is a working day under `calendar`: neither a Saturday, a Sunday
/// nor a public holiday.
pub fn is_working_day(date: NaiveDate, calendar: Calendar) -> bool {
    Year::of(date.year(), calendar).is_working_day(date)
}

/// The `n`-th working day strictly after `start`: `start` itself never
/// counts, whether it is a working day or not; `n = 0` gives `start` back
/// unchanged. So a deadline of `n` working days from an instant falls on
/// the day this gives for the instant's date.
///
/// ```
/// use ami_core::calendar::{add_working_days, Calendar};
/// use chrono::NaiveDate;
///
/// let day = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap();
/// // Thursday 28 March 2024: Friday 29 is a working day in France, then
/// // comes the weekend and Easter Monday (1 April).
/// assert_eq!(add_working_days(day(3, 28), 1, Calendar::France), day(3, 29));
/// assert_eq!(add_working_days(day(3, 28), 2, Calendar::France), day(4, 2));
/// // In Alsace-Moselle Good Friday (29 March) is a holiday too.
/// assert_eq!(add_working_days(day(3, 28), 1, Calendar::AlsaceMoselle), day(4, 2));
/// // Saturday 30 March does not count: the first day after it is Tuesday.
/// assert_eq!(add_working_days(day(3, 30), 1, Calendar::France), day(4, 2));
/// assert_eq!(add_working_days(day(3, 30), 0, Calendar::France), day(3, 30));
/// ```
///
/// # Panics
///
/// When the result would be after the last date `chrono` represents (as
/// adding days to a `NaiveDate` does); [`checked_add_working_days`] says
/// `None` instead.
pub fn add_working_days(start: NaiveDate, n: u32, calendar: Calendar) -> NaiveDate {
    checked_add_working_days(start, n, calendar).expect("date out of range")
}

/// [`add_working_days`], or `None` when the result would be after the last
/// date `chrono` represents.
pub fn checked_add_working_days(start: NaiveDate, n: u32, calendar: Calendar) -> Option<NaiveDate> {
    let mut day = start;
    let mut year = Year::of(start.year(), calendar);
    for _ in 0..n {
        loop {
            day = day.checked_add_days(Days::new(1))?;
            if day.year() != year.year {
                year = Year::of(day.year(), calendar);
            }
            if year.is_working_day(day) {
                break;
            }
        }
    }
    Some(day)
}

/// The holidays of one year as days of the year (1 to 366), computed once
/// while days of that year are counted: no allocation, no sort.
struct Year {
    year: i32,
    holidays: [u32; HOLIDAYS.len()],
}

impl Year {
    fn of(year: i32, calendar: Calendar) -> Year {
        let mut holidays = [0; HOLIDAYS.len()];
        if let Some(easter) = easter_sunday(year) {
            let easter = i64::from(easter.ordinal());
            for (slot, (_, rule, local)) in holidays.iter_mut().zip(HOLIDAYS) {
                if *local && calendar != Calendar::AlsaceMoselle {
                    continue;
                }
                *slot = match *rule {
                    Rule::Fixed(month, day) => {
                        NaiveDate::from_ymd_opt(year, month, day).map_or(0, |d| d.ordinal())
                    }
                    // Easter is in March or April: every holiday it moves
                    // falls in the same year.
                    Rule::Easter(offset) => u32::try_from(easter + offset).unwrap_or(0),
                };
            }
        }
        Year { year, holidays }
    }

    fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
            && !self.holidays.contains(&date.ordinal())
    }
}
