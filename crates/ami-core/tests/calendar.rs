//! The French calendar of working days: Easter and the public holidays of
//! known years written out from the official list (service-public.fr), the
//! Alsace-Moselle additions, and working days counted across holiday
//! weekends, bridges and the end of the year.

use ami_core::calendar::{
    add_working_days, checked_add_working_days, easter_sunday, is_working_day, public_holiday,
    public_holidays, Calendar,
};
use chrono::{Days, NaiveDate};
use proptest::prelude::*;

use Calendar::{AlsaceMoselle, France};

fn day(text: &str) -> NaiveDate {
    text.parse()
        .unwrap_or_else(|e| panic!("bad date {text}: {e}"))
}

fn holidays(year: i32, calendar: Calendar) -> Vec<(String, &'static str)> {
    public_holidays(year, calendar)
        .into_iter()
        .map(|h| (h.date.to_string(), h.name))
        .collect()
}

fn listed(rows: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    rows.iter().map(|(d, n)| (d.to_string(), *n)).collect()
}

#[test]
fn easter_sunday_falls_on_its_known_dates() {
    let known = [
        (1583, "1583-04-10"),
        (1818, "1818-03-22"),
        (1943, "1943-04-25"),
        (1961, "1961-04-02"),
        (2000, "2000-04-23"),
        (2008, "2008-03-23"),
        (2011, "2011-04-24"),
        (2019, "2019-04-21"),
        (2020, "2020-04-12"),
        (2021, "2021-04-04"),
        (2022, "2022-04-17"),
        (2023, "2023-04-09"),
        (2024, "2024-03-31"),
        (2025, "2025-04-20"),
        (2026, "2026-04-05"),
        (2027, "2027-03-28"),
        (2038, "2038-04-25"),
        (2285, "2285-03-22"),
    ];
    for (year, expected) in known {
        assert_eq!(easter_sunday(year), Some(day(expected)), "{year}");
    }
}

#[test]
fn easter_sunday_is_a_sunday_between_22_march_and_25_april_for_any_year() {
    use chrono::{Datelike, Weekday};
    for year in (-2000..1583).chain(1583..=4100) {
        let easter = easter_sunday(year).expect("a representable year");
        assert_eq!(easter.weekday(), Weekday::Sun, "{year}");
        let (earliest, latest) = (
            NaiveDate::from_ymd_opt(year, 3, 22).expect("a date"),
            NaiveDate::from_ymd_opt(year, 4, 25).expect("a date"),
        );
        assert!((earliest..=latest).contains(&easter), "{year}: {easter}");
    }
    assert_eq!(easter_sunday(i32::MAX), None);
    assert!(public_holidays(i32::MAX, France).is_empty());
}

#[test]
fn the_public_holidays_of_2020_in_france() {
    assert_eq!(
        holidays(2020, France),
        listed(&[
            ("2020-01-01", "Jour de l'an"),
            ("2020-04-13", "Lundi de Pâques"),
            ("2020-05-01", "Fête du Travail"),
            ("2020-05-08", "Victoire 1945"),
            ("2020-05-21", "Ascension"),
            ("2020-06-01", "Lundi de Pentecôte"),
            ("2020-07-14", "Fête nationale"),
            ("2020-08-15", "Assomption"),
            ("2020-11-01", "Toussaint"),
            ("2020-11-11", "Armistice 1918"),
            ("2020-12-25", "Noël"),
        ])
    );
}

#[test]
fn the_public_holidays_of_2021_in_france() {
    assert_eq!(
        holidays(2021, France),
        listed(&[
            ("2021-01-01", "Jour de l'an"),
            ("2021-04-05", "Lundi de Pâques"),
            ("2021-05-01", "Fête du Travail"),
            ("2021-05-08", "Victoire 1945"),
            ("2021-05-13", "Ascension"),
            ("2021-05-24", "Lundi de Pentecôte"),
            ("2021-07-14", "Fête nationale"),
            ("2021-08-15", "Assomption"),
            ("2021-11-01", "Toussaint"),
            ("2021-11-11", "Armistice 1918"),
            ("2021-12-25", "Noël"),
        ])
    );
}

#[test]
fn the_public_holidays_of_2024_in_france() {
    assert_eq!(
        holidays(2024, France),
        listed(&[
            ("2024-01-01", "Jour de l'an"),
            ("2024-04-01", "Lundi de Pâques"),
            ("2024-05-01", "Fête du Travail"),
            ("2024-05-08", "Victoire 1945"),
            ("2024-05-09", "Ascension"),
            ("2024-05-20", "Lundi de Pentecôte"),
            ("2024-07-14", "Fête nationale"),
            ("2024-08-15", "Assomption"),
            ("2024-11-01", "Toussaint"),
            ("2024-11-11", "Armistice 1918"),
            ("2024-12-25", "Noël"),
        ])
    );
}

#[test]
fn alsace_moselle_adds_good_friday_and_26_december_and_nothing_else() {
    for (year, good_friday) in [
        (2020, "2020-04-10"),
        (2021, "2021-04-02"),
        (2024, "2024-03-29"),
    ] {
        let mut expected = holidays(year, France);
        expected.push((good_friday.into(), "Vendredi saint"));
        expected.push((format!("{year}-12-26"), "Saint-Étienne"));
        expected.sort();
        let mut got = holidays(year, AlsaceMoselle);
        got.sort();
        assert_eq!(got, expected, "{year}");
    }
}

#[test]
fn two_holidays_on_one_day_are_both_listed_in_order() {
    // 2008: Ascension on 1 May.
    let first_of_may: Vec<&str> = public_holidays(2008, France)
        .into_iter()
        .filter(|h| h.date == day("2008-05-01"))
        .map(|h| h.name)
        .collect();
    assert_eq!(first_of_may, ["Fête du Travail", "Ascension"]);
    let h = public_holiday(day("2008-05-01"), France).expect("a holiday");
    assert_eq!(h.name, "Fête du Travail");
    assert_eq!(public_holiday(day("2008-05-02"), France), None);
}

#[test]
fn weekends_and_holidays_are_not_working_days_and_the_rest_are() {
    let rows = [
        // (day, France, Alsace-Moselle)
        ("2024-03-28", true, true),   // Thursday
        ("2024-03-29", true, false),  // Good Friday
        ("2024-03-30", false, false), // Saturday
        ("2024-03-31", false, false), // Easter Sunday
        ("2024-04-01", false, false), // Easter Monday
        ("2024-05-10", true, true),   // the Friday after Ascension
        ("2024-07-14", false, false), // 14 July, a Sunday
        ("2024-07-15", true, true),   // no day in lieu
        ("2024-12-26", true, false),  // Saint-Étienne
        ("2021-05-24", false, false), // Whit Monday
    ];
    for (text, france, alsace) in rows {
        let d = day(text);
        assert_eq!(
            (is_working_day(d, France), is_working_day(d, AlsaceMoselle)),
            (france, alsace),
            "{text}"
        );
    }
}

#[test]
fn working_days_are_counted_across_holiday_weekends_bridges_and_the_year_end() {
    // (start, n, France, Alsace-Moselle)
    let rows = [
        // Easter 2024: Good Friday is worked in France, not in Alsace-Moselle.
        ("2024-03-28", 1, "2024-03-29", "2024-04-02"),
        ("2024-03-28", 2, "2024-04-02", "2024-04-03"),
        ("2024-03-28", 3, "2024-04-03", "2024-04-04"),
        // Ascension 2021 (Thursday 13 May): the Friday after is worked.
        ("2021-05-12", 1, "2021-05-14", "2021-05-14"),
        ("2021-05-12", 2, "2021-05-17", "2021-05-17"),
        // 8 May and Ascension 2024, Wednesday and Thursday.
        ("2024-05-07", 1, "2024-05-10", "2024-05-10"),
        // Whit Monday 2021.
        ("2021-05-21", 1, "2021-05-25", "2021-05-25"),
        // Christmas and New Year 2024-2025.
        ("2024-12-24", 1, "2024-12-26", "2024-12-27"),
        ("2024-12-24", 5, "2025-01-02", "2025-01-03"),
        // 2020: Christmas on a Friday, 26 December on a Saturday.
        ("2020-12-24", 1, "2020-12-28", "2020-12-28"),
        ("2020-12-24", 5, "2021-01-04", "2021-01-04"),
        // 14 July 2024 falls on a Sunday: nothing moves.
        ("2024-07-12", 1, "2024-07-15", "2024-07-15"),
        // Bastille Day 2020 on a Tuesday.
        ("2020-07-13", 1, "2020-07-15", "2020-07-15"),
        // A start on a Saturday, a Sunday or a holiday does not count.
        ("2024-03-30", 1, "2024-04-02", "2024-04-02"),
        ("2024-03-31", 1, "2024-04-02", "2024-04-02"),
        ("2024-04-01", 1, "2024-04-02", "2024-04-02"),
        ("2024-05-01", 1, "2024-05-02", "2024-05-02"),
        // n = 0 gives the start back, working day or not.
        ("2024-03-30", 0, "2024-03-30", "2024-03-30"),
        ("2024-03-28", 0, "2024-03-28", "2024-03-28"),
        // Ten and fifteen working days, as the default definition gives.
        ("2020-11-05", 10, "2020-11-20", "2020-11-20"),
        ("2020-12-17", 15, "2021-01-11", "2021-01-11"),
        ("2021-03-31", 15, "2021-04-22", "2021-04-23"),
    ];
    let mut wrong = Vec::new();
    for (start, n, france, alsace) in rows {
        let got = (
            add_working_days(day(start), n, France),
            add_working_days(day(start), n, AlsaceMoselle),
        );
        if got != (day(france), day(alsace)) {
            wrong.push(format!(
                "{start} + {n}: {got:?}, expected {france} {alsace}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_count_past_the_last_representable_date_says_none() {
    let last = NaiveDate::MAX;
    assert_eq!(checked_add_working_days(last, 1, France), None);
    assert_eq!(checked_add_working_days(last, 0, France), Some(last));
}

#[test]
fn the_calendars_are_written_france_and_alsace_moselle() {
    let json = serde_json::to_string(&[France, AlsaceMoselle]).expect("serializes");
    assert_eq!(json, r#"["france","alsace_moselle"]"#);
    let back: Vec<Calendar> = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, [France, AlsaceMoselle]);
    assert_eq!(Calendar::default(), France);
    assert_eq!(
        (France.label(), AlsaceMoselle.label()),
        ("France", "Alsace-Moselle")
    );
}

fn calendars() -> impl Strategy<Value = Calendar> {
    prop_oneof![Just(France), Just(AlsaceMoselle)]
}

/// A day between 1990 and 2090.
fn days() -> impl Strategy<Value = NaiveDate> {
    (0u64..36_500).prop_map(|n| day("1990-01-01") + Days::new(n))
}

proptest! {
    #[test]
    fn a_working_day_is_a_weekday_absent_from_the_list_of_holidays(
        date in days(),
        calendar in calendars(),
    ) {
        use chrono::{Datelike, Weekday};
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let listed = public_holidays(date.year(), calendar).iter().any(|h| h.date == date);
        prop_assert_eq!(is_working_day(date, calendar), !weekend && !listed);
    }

    #[test]
    fn the_nth_working_day_is_a_working_day_after_exactly_n_of_them(
        start in days(),
        n in 0u32..400,
        calendar in calendars(),
    ) {
        let end = add_working_days(start, n, calendar);
        if n >= 1 {
            prop_assert!(is_working_day(end, calendar), "{end}");
        }
        let next = add_working_days(start, n + 1, calendar);
        prop_assert!(next > end, "{next} after {end}");
        let between = start
            .iter_days()
            .skip(1)
            .take_while(|d| *d <= end)
            .filter(|d| is_working_day(*d, calendar))
            .count();
        prop_assert_eq!(between, n as usize);
    }
}
