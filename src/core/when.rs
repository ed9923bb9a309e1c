//! Instants written for people: a date and time in a zone, the way a
//! language writes it ("lundi 30 novembre 2026 à 05:13 (heure de Paris)"),
//! for the mail a customer or a manager reads. Day and month names come
//! from chrono's locale data; the word order, the linking words and the
//! zone phrase are ours, per language. Pure.

use chrono::{DateTime, Datelike, Locale, Offset, Utc};
use chrono_tz::Tz;

/// How one language writes a date and time, and its zone.
struct Style {
    locale: Locale,
    /// strftime with `%-d` (never `%e`, which pads with a space).
    format: &'static str,
    /// "{}" is the city.
    zone: &'static str,
    /// Cities whose name differs from the IANA (English) one.
    cities: &'static [(&'static str, &'static str)],
}

fn style(language: &str) -> Style {
    match language {
        "fr" => Style {
            locale: Locale::fr_FR,
            format: "%A %-d %B %Y à %H:%M",
            zone: "heure de {}",
            cities: &[
                ("Brussels", "Bruxelles"),
                ("London", "Londres"),
                ("Vienna", "Vienne"),
                ("Lisbon", "Lisbonne"),
                ("Geneva", "Genève"),
                ("Algiers", "Alger"),
                ("Montreal", "Montréal"),
                ("Mexico City", "Mexico"),
            ],
        },
        "de" => Style {
            locale: Locale::de_DE,
            format: "%A, %-d. %B %Y um %H:%M",
            zone: "Ortszeit {}",
            cities: &[
                ("Vienna", "Wien"),
                ("Brussels", "Brüssel"),
                ("Zurich", "Zürich"),
                ("Rome", "Rom"),
                ("Lisbon", "Lissabon"),
                ("Copenhagen", "Kopenhagen"),
            ],
        },
        "es" => Style {
            locale: Locale::es_ES,
            format: "%A, %-d de %B de %Y a las %H:%M",
            zone: "hora de {}",
            cities: &[
                ("London", "Londres"),
                ("Brussels", "Bruselas"),
                ("Paris", "París"),
                ("Lisbon", "Lisboa"),
                ("Rome", "Roma"),
                ("Berlin", "Berlín"),
                ("Vienna", "Viena"),
                ("New York", "Nueva York"),
            ],
        },
        "it" => Style {
            locale: Locale::it_IT,
            format: "%A %-d %B %Y alle %H:%M",
            zone: "ora di {}",
            cities: &[
                ("London", "Londra"),
                ("Paris", "Parigi"),
                ("Brussels", "Bruxelles"),
                ("Berlin", "Berlino"),
                ("Lisbon", "Lisbona"),
                ("Rome", "Roma"),
                ("Zurich", "Zurigo"),
            ],
        },
        "nl" => Style {
            locale: Locale::nl_NL,
            format: "%A %-d %B %Y om %H:%M",
            zone: "tijd in {}",
            cities: &[
                ("Paris", "Parijs"),
                ("London", "Londen"),
                ("Brussels", "Brussel"),
                ("Lisbon", "Lissabon"),
                ("Vienna", "Wenen"),
            ],
        },
        "pt" => Style {
            locale: Locale::pt_PT,
            format: "%A, %-d de %B de %Y às %H:%M",
            zone: "hora de {}",
            cities: &[
                ("London", "Londres"),
                ("Brussels", "Bruxelas"),
                ("Lisbon", "Lisboa"),
                ("Rome", "Roma"),
                ("Berlin", "Berlim"),
                ("Vienna", "Viena"),
                ("New York", "Nova Iorque"),
            ],
        },
        _ => Style {
            locale: Locale::en_GB,
            format: "%A %-d %B %Y at %H:%M",
            zone: "{} time",
            cities: &[],
        },
    }
}

/// The city of an IANA zone as a language names it; None for UTC and
/// the fixed-offset zones.
fn city(zone: Tz, st: &Style) -> Option<String> {
    let name = zone.name();
    if name == "UTC" || name.starts_with("Etc/") || !name.contains('/') {
        return None;
    }
    let city = name.rsplit('/').next()?.replace('_', " ");
    Some(
        st.cities
            .iter()
            .find(|(en, _)| *en == city)
            .map_or(city, |(_, local)| (*local).to_owned()),
    )
}

/// Portuguese names its weekdays in full ("segunda-feira"), which the
/// locale data shortens.
fn pt_weekday(t: &DateTime<Tz>) -> &'static str {
    use chrono::Weekday::*;
    match t.weekday() {
        Mon => "segunda-feira",
        Tue => "terça-feira",
        Wed => "quarta-feira",
        Thu => "quinta-feira",
        Fri => "sexta-feira",
        Sat => "sábado",
        Sun => "domingo",
    }
}

/// `t` in `zone`, written the way `language` writes it (English for a
/// language without its own style), the zone named by its city, or by
/// its offset from UTC.
pub fn local(t: DateTime<Utc>, zone: Tz, language: &str) -> String {
    let st = style(language);
    let lt = t.with_timezone(&zone);
    let format = if language == "pt" {
        st.format.replacen("%A", pt_weekday(&lt), 1)
    } else {
        st.format.to_owned()
    };
    // The formats are constants covered by the tests below: a bad one
    // would fail there, not here.
    let date = lt.format_localized(&format, st.locale).to_string();
    let zone_text = match city(zone, &st) {
        Some(c) => st.zone.replace("{}", &c),
        None if lt.offset().fix().local_minus_utc() == 0 => "UTC".to_owned(),
        None => format!("UTC{}", lt.format("%:z")),
    };
    format!("{date} ({zone_text})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn every_language_writes_its_own_date() {
        let at = t("2026-11-30T04:13:00Z");
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let cases = [
            ("fr", "lundi 30 novembre 2026 à 05:13 (heure de Paris)"),
            ("en", "Monday 30 November 2026 at 05:13 (Paris time)"),
            ("de", "Montag, 30. November 2026 um 05:13 (Ortszeit Paris)"),
            (
                "es",
                "lunes, 30 de noviembre de 2026 a las 05:13 (hora de París)",
            ),
            ("it", "lunedì 30 novembre 2026 alle 05:13 (ora di Parigi)"),
            ("nl", "maandag 30 november 2026 om 05:13 (tijd in Parijs)"),
            (
                "pt",
                "segunda-feira, 30 de novembro de 2026 às 05:13 (hora de Paris)",
            ),
            // A language without a style of its own: English.
            ("sv", "Monday 30 November 2026 at 05:13 (Paris time)"),
        ];
        for (lang, want) in cases {
            assert_eq!(local(at, paris, lang), want, "{lang}");
        }
    }

    #[test]
    fn zones_by_city_or_offset() {
        let at = t("2026-07-01T12:05:00Z");
        let z = |s: &str| s.parse::<Tz>().unwrap();
        assert_eq!(
            local(at, z("America/New_York"), "fr"),
            "mercredi 1 juillet 2026 à 08:05 (heure de New York)"
        );
        assert_eq!(
            local(at, z("Europe/Brussels"), "fr"),
            "mercredi 1 juillet 2026 à 14:05 (heure de Bruxelles)"
        );
        assert_eq!(
            local(at, z("America/Argentina/Buenos_Aires"), "es"),
            "miércoles, 1 de julio de 2026 a las 09:05 (hora de Buenos Aires)"
        );
        assert_eq!(
            local(at, Tz::UTC, "en"),
            "Wednesday 1 July 2026 at 12:05 (UTC)"
        );
        assert_eq!(
            local(at, z("Etc/GMT-3"), "de"),
            "Mittwoch, 1. Juli 2026 um 15:05 (UTC+03:00)"
        );
    }
}
