//! The clinical date: today where the clinic is. Every window the rules use counts whole days
//! from it, so a US evening must not already be tomorrow (as the UTC date would be).

use jiff::tz::TimeZone;
use time::Date;

/// An IANA time zone name (`America/Chicago`), for `--time-zone`.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name.trim()).map_err(|e| format!("expected an IANA time zone name such as America/New_York: {e}"))
}

/// The host's time zone (`TZ`, else `/etc/localtime`), or UTC when it cannot be told.
pub fn host_time_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// The calendar date at `instant` in `zone`.
pub fn date_at(instant: jiff::Timestamp, zone: &TimeZone) -> Date {
    let date = instant.to_zoned(zone.clone()).date();
    time::Month::try_from(date.month() as u8)
        .ok()
        .and_then(|month| Date::from_calendar_date(i32::from(date.year()), month, date.day() as u8).ok())
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date())
}

/// The clinical date: `fixed` when configured, else today in `zone` (the host's when `None`).
pub fn today(fixed: Option<Date>, zone: Option<&TimeZone>) -> Date {
    fixed.unwrap_or_else(|| match zone {
        Some(zone) => date_at(jiff::Timestamp::now(), zone),
        None => date_at(jiff::Timestamp::now(), &host_time_zone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_us_evening_is_still_today() {
        // 2026-03-03 02:30 UTC is the evening of 2026-03-02 in New York and Chicago.
        let instant: jiff::Timestamp = "2026-03-03T02:30:00Z".parse().unwrap();
        let new_york = parse_time_zone("America/New_York").unwrap();
        assert_eq!(date_at(instant, &new_york), time::macros::date!(2026 - 03 - 02));
        assert_eq!(date_at(instant, &parse_time_zone("America/Chicago").unwrap()), time::macros::date!(2026 - 03 - 02));
        assert_eq!(date_at(instant, &TimeZone::UTC), time::macros::date!(2026 - 03 - 03));
        // And east of UTC the date turns earlier: 2026-03-02 20:00 UTC is 2026-03-03 in Sydney.
        let instant: jiff::Timestamp = "2026-03-02T20:00:00Z".parse().unwrap();
        assert_eq!(
            date_at(instant, &parse_time_zone("Australia/Sydney").unwrap()),
            time::macros::date!(2026 - 03 - 03)
        );
    }

    #[test]
    fn daylight_saving_changes_follow_the_zone() {
        // US daylight saving time starts 2026-03-08: 04:30 UTC is 23:30 on the 7th (EST, -5),
        // and on 2026-03-09 03:30 UTC is 23:30 on the 8th (EDT, -4).
        let new_york = parse_time_zone("America/New_York").unwrap();
        assert_eq!(date_at("2026-03-08T04:30:00Z".parse().unwrap(), &new_york), time::macros::date!(2026 - 03 - 07));
        assert_eq!(date_at("2026-03-09T03:30:00Z".parse().unwrap(), &new_york), time::macros::date!(2026 - 03 - 08));
    }

    #[test]
    fn unknown_zones_are_refused_and_a_fixed_date_wins() {
        assert!(parse_time_zone("Mars/Olympus_Mons").is_err());
        assert!(parse_time_zone("").is_err());
        let fixed = time::macros::date!(2026 - 03 - 02);
        assert_eq!(today(Some(fixed), Some(&TimeZone::UTC)), fixed);
    }
}
