//! Holidays from an iCalendar file (RFC 5545): each all-day VEVENT is a
//! holiday (DTEND exclusive, one day without it); `RRULE:FREQ=YEARLY`
//! repeats it every year. The `icalendar` crate reads the events; a
//! first pass over the content lines, numbered as in the file (folded
//! lines unfolded), checks what the crate lets through (a line without a
//! name or a ':', an END that closes the wrong BEGIN) and locates every
//! error on its physical line. Pure: the text is a parameter.

use chrono::Datelike;
use icalendar::{Calendar, Component, DatePerhapsTime};

use super::calendar::HolidayRule;

/// A problem in an .ics file, on its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> IcsError {
    IcsError {
        line,
        message: message.into(),
    }
}

/// The lines of one VEVENT that a later error may point at.
#[derive(Debug, Default)]
struct EventLines {
    begin: usize,
    dtstart: Option<usize>,
    dtend: Option<usize>,
    rrule: Option<usize>,
}

/// (physical line, logical line) after unfolding (RFC 5545 3.1).
fn unfold(src: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in src.split('\n').enumerate() {
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = l.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push_str(rest);
            continue;
        }
        if !l.trim().is_empty() {
            out.push((i + 1, l.to_owned()));
        }
    }
    out
}

/// The first pass: structure, and where each top-level VEVENT's
/// properties are.
fn locate(src: &str) -> Result<Vec<EventLines>, IcsError> {
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut events = Vec::new();
    let mut seen_calendar = false;
    for (n, l) in unfold(src) {
        let Some((head, value)) = l.split_once(':') else {
            return Err(err(n, "not a content line (NAME:value)"));
        };
        let name = head
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        if name.is_empty() {
            return Err(err(n, "a content line without a name"));
        }
        let value = value.trim().to_ascii_uppercase();
        match name.as_str() {
            "BEGIN" => {
                if stack.is_empty() {
                    if value != "VCALENDAR" || seen_calendar {
                        return Err(err(
                            n,
                            "the file must be one BEGIN:VCALENDAR ... END:VCALENDAR",
                        ));
                    }
                    seen_calendar = true;
                }
                if value == "VEVENT" && stack.len() == 1 {
                    events.push(EventLines {
                        begin: n,
                        ..EventLines::default()
                    });
                }
                stack.push((value, n));
            }
            "END" => {
                let Some((open, at)) = stack.pop() else {
                    return Err(err(n, format!("END:{value} without a BEGIN")));
                };
                if open != value {
                    return Err(err(
                        n,
                        format!("END:{value} closes BEGIN:{open} of line {at}"),
                    ));
                }
            }
            _ if stack.is_empty() => {
                return Err(err(n, "a property outside BEGIN:VCALENDAR"));
            }
            "DTSTART" | "DTEND" | "RRULE" | "RDATE" | "EXDATE" | "DURATION"
                if stack.last().is_some_and(|(c, _)| c == "VEVENT") && stack.len() == 2 =>
            {
                let Some(e) = events.last_mut() else { continue };
                match name.as_str() {
                    "DTSTART" => e.dtstart = Some(n),
                    "DTEND" => e.dtend = Some(n),
                    "RRULE" => e.rrule = Some(n),
                    other => {
                        return Err(err(
                            n,
                            format!(
                                "{other} is not supported in a holiday: give DTSTART and DTEND, or RRULE:FREQ=YEARLY"
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((open, at)) = stack.pop() {
        return Err(err(at, format!("BEGIN:{open} is never closed")));
    }
    if !seen_calendar {
        return Err(err(1, "no BEGIN:VCALENDAR: not an iCalendar file"));
    }
    Ok(events)
}

/// The holidays of an .ics file's all-day events.
pub fn holidays(src: &str) -> Result<Vec<HolidayRule>, IcsError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = locate(src)?;
    let cal: Calendar = src.parse().map_err(|e: String| {
        err(
            lines.first().map_or(1, |l| l.begin),
            format!(
                "not readable as iCalendar: {}",
                e.lines().next().unwrap_or("")
            ),
        )
    })?;
    let events: Vec<_> = cal.events().collect();
    if events.len() != lines.len() {
        return Err(err(1, "the events could not all be read"));
    }
    let mut out = Vec::new();
    for (ev, at) in events.into_iter().zip(lines) {
        let start_line = at.dtstart.unwrap_or(at.begin);
        let start = match ev.get_start() {
            Some(DatePerhapsTime::Date(d)) => d,
            Some(DatePerhapsTime::DateTime(_)) => {
                return Err(err(
                    start_line,
                    "DTSTART is a date and time: a holiday is an all-day event (DTSTART;VALUE=DATE:20261225)",
                ));
            }
            None if at.dtstart.is_none() => return Err(err(at.begin, "an event without DTSTART")),
            None => return Err(err(start_line, "DTSTART is not a date (YYYYMMDD)")),
        };
        let end_line = at.dtend.unwrap_or(start_line);
        let last = match ev.get_end() {
            None if at.dtend.is_none() => start,
            Some(DatePerhapsTime::Date(end)) if end > start => end.pred_opt().unwrap_or(start),
            Some(DatePerhapsTime::Date(_)) => {
                return Err(err(
                    end_line,
                    "DTEND is not after DTSTART (DTEND is the day after the last)",
                ));
            }
            Some(DatePerhapsTime::DateTime(_)) => {
                return Err(err(
                    end_line,
                    "DTEND is a date and time: a holiday is an all-day event",
                ));
            }
            None => return Err(err(end_line, "DTEND is not a date (YYYYMMDD)")),
        };
        if (last - start).num_days() > 366 {
            return Err(err(
                end_line,
                "an event longer than a year is surely a mistake",
            ));
        }
        let yearly = match ev.property_value("RRULE") {
            None => false,
            Some(r) if r.trim().eq_ignore_ascii_case("FREQ=YEARLY") => true,
            Some(r) => {
                return Err(err(
                    at.rrule.unwrap_or(at.begin),
                    format!(
                        "RRULE:{r} is not supported: only RRULE:FREQ=YEARLY (holidays that move are listed one event per year)"
                    ),
                ));
            }
        };
        out.push(match (yearly, start == last) {
            (false, true) => HolidayRule::Date(start),
            (false, false) => HolidayRule::DateRange(start, last),
            (true, true) => HolidayRule::Yearly {
                month: start.month(),
                day: start.day(),
            },
            (true, false) => HolidayRule::YearlyRange {
                from: (start.month(), start.day()),
                to: (last.month(), last.day()),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const GOOD: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:No\r\n \u{eb}l\r\nDTSTART;VALUE=DATE:20261225\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:2\r\nSUMMARY:Pont de l'Ascension\r\nDTSTART;VALUE=DATE:20260515\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:3\r\nSUMMARY:Fermeture d'\u{e9}t\u{e9}\r\nDTSTART;VALUE=DATE:20260803\r\nDTEND;VALUE=DATE:20260822\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-P1D\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn all_day_events_are_holidays() {
        assert_eq!(
            holidays(GOOD).unwrap(),
            vec![
                HolidayRule::Yearly { month: 12, day: 25 },
                HolidayRule::Date(d(2026, 5, 15)),
                HolidayRule::DateRange(d(2026, 8, 3), d(2026, 8, 21)),
            ]
        );
    }

    #[test]
    fn a_bad_file_is_named_by_its_line() {
        let head = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\n";
        let cases = [
            (
                format!("{head}DTSTART:20261225T100000Z\nEND:VEVENT\nEND:VCALENDAR\n"),
                4,
                "all-day",
            ),
            (
                format!("{head}DTSTART;VALUE=DATE:20261332\nEND:VEVENT\nEND:VCALENDAR\n"),
                4,
                "not a date",
            ),
            (
                format!("{head}SUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n"),
                3,
                "without DTSTART",
            ),
            (
                format!("{head}DTSTART;VALUE=DATE:20261225\nEND:VTODO\nEND:VCALENDAR\n"),
                5,
                "closes BEGIN:VEVENT of line 3",
            ),
            (
                format!(
                    "{head}DTSTART;VALUE=DATE:20261225\nthis is garbage\nEND:VEVENT\nEND:VCALENDAR\n"
                ),
                5,
                "not a content line",
            ),
            (
                format!("{head}DTSTART;VALUE=DATE:20261225\n:no name\nEND:VEVENT\nEND:VCALENDAR\n"),
                5,
                "without a name",
            ),
            (
                format!(
                    "{head}DTSTART;VALUE=DATE:20261126\nRRULE:FREQ=YEARLY;BYDAY=4TH\nEND:VEVENT\nEND:VCALENDAR\n"
                ),
                5,
                "only RRULE:FREQ=YEARLY",
            ),
            (
                format!(
                    "{head}DTSTART;VALUE=DATE:20261225\nDTEND;VALUE=DATE:20261225\nEND:VEVENT\nEND:VCALENDAR\n"
                ),
                5,
                "not after DTSTART",
            ),
            (
                format!("{head}DTSTART;VALUE=DATE:20261225\nEND:VEVENT\n"),
                1,
                "never closed",
            ),
            ("just text\n".to_owned(), 1, "not a content line"),
            ("\n".to_owned(), 1, "not an iCalendar file"),
        ];
        for (src, line, msg) in cases {
            let e = holidays(&src).unwrap_err();
            assert_eq!(e.line, line, "{src:?}: {e:?}");
            assert!(e.message.contains(msg), "{src:?}: {e:?}");
        }
    }
}
