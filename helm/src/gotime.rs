//! Go's `time` package as Sprig's date functions use it: `Time.Format` and `Parse` with Go's
//! reference layouts (`2006-01-02T15:04:05Z07:00`), `Duration.String` and `ParseDuration`.
//!
//! Template data has no time type, so a Go `time.Time` travels between functions as the
//! string Go prints for it (`Time.String()`: `2019-06-13 20:39:39 +0000 GMT`): printing a
//! time prints what Go prints, and the date functions read that form back. Time zones come
//! from jiff (the system's tzdata); `Local` is the system's zone, as in Go.

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// A Go `time.Time`: an instant and the offset and zone name it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTime {
    pub ts: Timestamp,
    pub offset: i32,
    pub zone: String,
}

const NANOS: i64 = 1_000_000_000;

impl GoTime {
    pub fn now() -> GoTime {
        GoTime::in_zone(Timestamp::now(), &TimeZone::system())
    }

    pub fn from_unix(secs: i64) -> GoTime {
        let ts = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
        GoTime::in_zone(ts, &TimeZone::system())
    }

    /// The instant shown in a zone.
    pub fn in_zone(ts: Timestamp, tz: &TimeZone) -> GoTime {
        let info = tz.to_offset_info(ts);
        let offset = info.offset().seconds();
        let mut zone = info.abbreviation().to_string();
        if zone.is_empty() || tz.iana_name().is_none() && zone.starts_with(['+', '-']) {
            zone = if offset == 0 {
                "UTC".into()
            } else {
                numeric_zone(offset)
            };
        }
        GoTime { ts, offset, zone }
    }

    /// `time.LoadLocation` as `dateInZone` calls it: `Local`, `UTC`, or an IANA name; an
    /// unknown name is UTC, as Sprig falls back.
    pub fn in_named_zone(&self, zone: &str) -> GoTime {
        let tz = match zone {
            "Local" => TimeZone::system(),
            "" | "UTC" => TimeZone::UTC,
            name => TimeZone::get(name).unwrap_or(TimeZone::UTC),
        };
        GoTime::in_zone(self.ts, &tz)
    }

    pub fn unix(&self) -> i64 {
        self.ts.as_second()
    }

    /// `t.Add(d)`, keeping the location.
    pub fn add(&self, nanos: i64) -> GoTime {
        let total = self.ts.as_nanosecond() + i128::from(nanos);
        GoTime {
            ts: Timestamp::from_nanosecond(total).unwrap_or(self.ts),
            ..self.clone()
        }
    }

    /// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    pub fn go_string(&self) -> String {
        format(self, "2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// A time printed by `go_string` (Go's own form), read back.
    pub fn from_go_string(s: &str) -> Option<GoTime> {
        // Go appends the monotonic clock reading to now's String(): drop it.
        let s = s.split(" m=").next().unwrap_or(s);
        let t = parse("2006-01-02 15:04:05.999999999 -0700 MST", s, &TimeZone::UTC).ok()?;
        Some(t)
    }

    fn civil(&self) -> jiff::civil::DateTime {
        Offset::from_seconds(self.offset)
            .unwrap_or(Offset::UTC)
            .to_datetime(self.ts)
    }
}

fn numeric_zone(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    if a % 3600 == 0 {
        format!("{sign}{:02}", a / 3600)
    } else {
        format!("{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
    }
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// One element of a Go layout (time/format.go's std chunks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// `Z0700`-style (Z for UTC) or `-0700`-style: (z, colons, seconds, hours only).
    Offset {
        z: bool,
        colon: bool,
        secs: bool,
        hours_only: bool,
    },
    /// `.000` (zeros kept) or `.999` (trailing zeros trimmed), with the separator.
    Frac {
        digits: usize,
        trim: bool,
        sep: char,
    },
}

fn lower_start(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's nextStdChunk: (literal prefix, element, rest).
fn next_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout[i..].starts_with(s);
    for i in 0..b.len() {
        let (std, len) = match b[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    (Std::LongMonth, 7)
                } else if !lower_start(&layout[i + 3..]) {
                    (Std::Month, 3)
                } else {
                    continue;
                }
            }
            b'M' if at(i, "Mon") => {
                if at(i, "Monday") {
                    (Std::LongWeekDay, 6)
                } else if !lower_start(&layout[i + 3..]) {
                    (Std::WeekDay, 3)
                } else {
                    continue;
                }
            }
            b'M' if at(i, "MST") => (Std::Tz, 3),
            b'0' if at(i, "002") => (Std::ZeroYearDay, 3),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => {
                let s = [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][(b[i + 1] - b'1') as usize];
                (s, 2)
            }
            b'1' if at(i, "15") => (Std::Hour, 2),
            b'1' => (Std::NumMonth, 1),
            b'2' if at(i, "2006") => (Std::LongYear, 4),
            b'2' => (Std::Day, 1),
            b'_' if at(i, "_2") => {
                // `_2006` is a literal `_` and the long year.
                if at(i, "_2006") {
                    return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                }
                (Std::UnderDay, 2)
            }
            b'_' if at(i, "__2") => (Std::UnderYearDay, 3),
            b'3' => (Std::Hour12, 1),
            b'4' => (Std::Minute, 1),
            b'5' => (Std::Second, 1),
            b'P' if at(i, "PM") => (Std::PM, 2),
            b'p' if at(i, "pm") => (Std::Pm, 2),
            c @ (b'-' | b'Z') => {
                let z = c == b'Z';
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ];
                let Some((f, colon, secs, hours_only)) =
                    forms.iter().find(|(f, ..)| at(i + 1, f)).copied()
                else {
                    continue;
                };
                (
                    Std::Offset {
                        z,
                        colon,
                        secs,
                        hours_only,
                    },
                    1 + f.len(),
                )
            }
            c @ (b'.' | b',') if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    continue;
                }
                (
                    Std::Frac {
                        digits: j - (i + 1),
                        trim: ch == b'9',
                        sep: c as char,
                    },
                    j - i,
                )
            }
            _ => continue,
        };
        return (&layout[..i], Some(std), &layout[i + len..]);
    }
    (layout, None, "")
}

fn offset_text(offset: i32, colon: bool, secs: bool, hours_only: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    let (h, m, s) = (a / 3600, a % 3600 / 60, a % 60);
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{h:02}");
    if !hours_only {
        out.push_str(&format!("{sep}{m:02}"));
    }
    if secs {
        out.push_str(&format!("{sep}{s:02}"));
    }
    out
}

/// Go's `Time.Format(layout)`.
pub fn format(t: &GoTime, layout: &str) -> String {
    let dt = t.civil();
    let nanos = t.ts.subsec_nanosecond();
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        let (lit, std, r) = next_chunk(rest);
        out.push_str(lit);
        rest = r;
        let Some(std) = std else { break };
        let hour = i32::from(dt.hour());
        let h12 = if hour % 12 == 0 { 12 } else { hour % 12 };
        match std {
            Std::LongMonth => out.push_str(LONG_MONTHS[dt.month() as usize - 1]),
            Std::Month => out.push_str(&LONG_MONTHS[dt.month() as usize - 1][..3]),
            Std::NumMonth => out.push_str(&dt.month().to_string()),
            Std::ZeroMonth => out.push_str(&format!("{:02}", dt.month())),
            Std::LongWeekDay => {
                out.push_str(LONG_DAYS[dt.weekday().to_sunday_zero_offset() as usize])
            }
            Std::WeekDay => {
                out.push_str(&LONG_DAYS[dt.weekday().to_sunday_zero_offset() as usize][..3])
            }
            Std::Day => out.push_str(&dt.day().to_string()),
            Std::UnderDay => out.push_str(&format!("{:>2}", dt.day())),
            Std::ZeroDay => out.push_str(&format!("{:02}", dt.day())),
            Std::UnderYearDay => out.push_str(&format!("{:>3}", dt.day_of_year())),
            Std::ZeroYearDay => out.push_str(&format!("{:03}", dt.day_of_year())),
            Std::Hour => out.push_str(&format!("{hour:02}")),
            Std::Hour12 => out.push_str(&h12.to_string()),
            Std::ZeroHour12 => out.push_str(&format!("{h12:02}")),
            Std::Minute => out.push_str(&dt.minute().to_string()),
            Std::ZeroMinute => out.push_str(&format!("{:02}", dt.minute())),
            Std::Second => out.push_str(&dt.second().to_string()),
            Std::ZeroSecond => out.push_str(&format!("{:02}", dt.second())),
            Std::LongYear => out.push_str(&format!("{:04}", dt.year())),
            Std::Year => out.push_str(&format!("{:02}", dt.year().rem_euclid(100))),
            Std::PM => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            Std::Tz => {
                if t.zone.is_empty() {
                    out.push_str(&offset_text(t.offset, false, false, false));
                } else {
                    out.push_str(&t.zone);
                }
            }
            Std::Offset {
                z,
                colon,
                secs,
                hours_only,
            } => {
                if z && t.offset == 0 {
                    out.push('Z');
                } else {
                    out.push_str(&offset_text(t.offset, colon, secs, hours_only));
                }
            }
            Std::Frac { digits, trim, sep } => {
                let all = format!("{nanos:09}");
                let mut d = &all[..digits.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(sep);
                out.push_str(d);
            }
        }
    }
    out
}

/// Reads up to `max` digits (at least `min`).
fn digits(s: &str, min: usize, max: usize) -> Option<(i64, &str)> {
    let n = s
        .bytes()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n < min {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn name_prefix<'a>(s: &'a str, names: &[&str], len: Option<usize>) -> Option<(usize, &'a str)> {
    names.iter().enumerate().find_map(|(i, n)| {
        let n = &n[..len.unwrap_or(n.len())];
        let head = s.get(..n.len())?;
        head.eq_ignore_ascii_case(n).then(|| (i, &s[n.len()..]))
    })
}

/// Go's `time.ParseInLocation(layout, value, loc)`: the error names what did not match.
pub fn parse(layout: &str, value: &str, loc: &TimeZone) -> Result<GoTime, String> {
    let bad = |what: &str| format!("parsing time {value:?} as {layout:?}: cannot parse {what}");
    let (mut year, mut month, mut day, mut yday) = (1i64, 1i64, 1i64, None::<i64>);
    let (mut hour, mut min, mut sec, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut zone: Option<String> = None;
    let mut rest = layout;
    let mut v = value;
    while !rest.is_empty() {
        let (lit, std, r) = next_chunk(rest);
        v = v
            .strip_prefix(lit)
            .ok_or_else(|| bad(&format!("{v:?} as {lit:?}")))?;
        rest = r;
        let Some(std) = std else { break };
        let here = v;
        let fail = || bad(&format!("{here:?}"));
        match std {
            Std::LongYear => {
                let (y, r) = digits(v, 4, 4).ok_or_else(fail)?;
                year = y;
                v = r;
            }
            Std::Year => {
                let (y, r) = digits(v, 2, 2).ok_or_else(fail)?;
                year = if y >= 69 { 1900 + y } else { 2000 + y };
                v = r;
            }
            Std::LongMonth | Std::Month => {
                let len = (std == Std::Month).then_some(3);
                let (i, r) = name_prefix(v, &LONG_MONTHS, len).ok_or_else(fail)?;
                month = i as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let min = if std == Std::ZeroMonth { 2 } else { 1 };
                let (m, r) = digits(v, min, 2).ok_or_else(fail)?;
                month = m;
                v = r;
            }
            Std::LongWeekDay | Std::WeekDay => {
                let len = (std == Std::WeekDay).then_some(3);
                let (_, r) = name_prefix(v, &LONG_DAYS, len).ok_or_else(fail)?;
                v = r;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay {
                    v = v.strip_prefix(' ').unwrap_or(v);
                }
                let min = if std == Std::ZeroDay { 2 } else { 1 };
                let (d, r) = digits(v, min, 2).ok_or_else(fail)?;
                day = d;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let t = v.trim_start_matches(' ');
                let (d, r) = digits(t, 3 - (v.len() - t.len()), 3).ok_or_else(fail)?;
                yday = Some(d);
                v = r;
            }
            Std::Hour => {
                let (h, r) = digits(v, 2, 2).ok_or_else(fail)?;
                hour = h;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let min = if std == Std::ZeroHour12 { 2 } else { 1 };
                let (h, r) = digits(v, min, 2).ok_or_else(fail)?;
                hour = h;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let least = if std == Std::ZeroMinute { 2 } else { 1 };
                let (m, r) = digits(v, least, 2).ok_or_else(fail)?;
                min = m;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let min = if std == Std::ZeroSecond { 2 } else { 1 };
                let (s, r) = digits(v, min, 2).ok_or_else(fail)?;
                sec = s;
                v = r;
                // Go accepts a fractional second after the seconds even when the layout
                // has none.
                if let Some(f) = v.strip_prefix(['.', ',']) {
                    let next_is_frac = matches!(next_chunk(rest).1, Some(Std::Frac { .. }))
                        && next_chunk(rest).0.is_empty();
                    if !next_is_frac && f.starts_with(|c: char| c.is_ascii_digit()) {
                        let n = f.bytes().take_while(u8::is_ascii_digit).count();
                        nanos = frac_nanos(&f[..n]);
                        v = &f[n..];
                    }
                }
            }
            Std::PM | Std::Pm => {
                let head = v.get(..2).ok_or_else(fail)?;
                pm = Some(match head.to_ascii_uppercase().as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(fail()),
                });
                v = &v[2..];
            }
            Std::Tz => {
                if let Some(r) = v.strip_prefix("UTC") {
                    zone = Some("UTC".into());
                    offset = Some(0);
                    v = r;
                } else {
                    let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                    if n < 3 {
                        return Err(fail());
                    }
                    zone = Some(v[..n].to_string());
                    v = &v[n..];
                }
            }
            Std::Offset {
                z,
                colon,
                secs,
                hours_only,
            } => {
                if z {
                    if let Some(r) = v.strip_prefix('Z') {
                        offset = Some(0);
                        zone = Some("UTC".into());
                        v = r;
                        continue;
                    }
                }
                let sign = match v.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(fail()),
                };
                let mut r = &v[1..];
                let (h, r2) = digits(r, 2, 2).ok_or_else(fail)?;
                r = r2;
                let mut total = h * 3600;
                let more = |r: &mut &str| -> Result<i64, String> {
                    if colon {
                        *r = r.strip_prefix(':').ok_or_else(fail)?;
                    }
                    let (x, r2) = digits(r, 2, 2).ok_or_else(fail)?;
                    *r = r2;
                    Ok(x)
                };
                if !hours_only {
                    total += more(&mut r)? * 60;
                }
                if secs {
                    total += more(&mut r)?;
                }
                offset = Some((sign * total) as i32);
                v = r;
            }
            Std::Frac { digits: n, .. } => {
                let Some(f) = v.strip_prefix(['.', ',']) else {
                    continue;
                };
                let k = f.bytes().take_while(u8::is_ascii_digit).count();
                if k == 0 || (k < n && !matches!(std, Std::Frac { trim: true, .. })) {
                    return Err(fail());
                }
                nanos = frac_nanos(&f[..k]);
                v = &f[k..];
            }
        }
    }
    if !v.is_empty() {
        return Err(format!("parsing time {value:?}: extra text: {v:?}"));
    }
    if let Some(is_pm) = pm {
        if hour > 12 {
            return Err(bad("hour out of range"));
        }
        if is_pm && hour < 12 {
            hour += 12;
        } else if !is_pm && hour == 12 {
            hour = 0;
        }
    }
    let range = |what: &str, x: i64, lo: i64, hi: i64| {
        if x < lo || x > hi {
            Err(format!("parsing time {value:?}: {what} out of range"))
        } else {
            Ok(())
        }
    };
    range("month", month, 1, 12)?;
    range("hour", hour, 0, 23)?;
    range("minute", min, 0, 59)?;
    range("second", sec, 0, 59)?;
    let mut date = jiff::civil::Date::new(year as i16, month as i8, 1)
        .map_err(|e| format!("parsing time {value:?}: {e}"))?;
    if let Some(yd) = yday {
        date = date
            .with()
            .day_of_year(yd as i16)
            .build()
            .map_err(|_| format!("parsing time {value:?}: day-of-year out of range"))?;
    } else {
        date = jiff::civil::Date::new(year as i16, month as i8, day as i8)
            .map_err(|_| format!("parsing time {value:?}: day out of range"))?;
    }
    let dt = date.at(hour as i8, min as i8, sec as i8, nanos as i32);
    match offset {
        Some(off) => {
            let o = Offset::from_seconds(off).map_err(|e| e.to_string())?;
            let ts = o.to_timestamp(dt).map_err(|e| e.to_string())?;
            let zone = zone.unwrap_or_else(|| {
                // Go names the zone after the location when the offset matches it.
                let local = GoTime::in_zone(ts, loc);
                if local.offset == off {
                    local.zone
                } else {
                    String::new()
                }
            });
            Ok(GoTime {
                ts,
                offset: off,
                zone,
            })
        }
        None => {
            // A zone name alone: the location's offset if it uses that name, else UTC
            // with the name (as Go does for an unknown abbreviation).
            let ts = loc
                .to_ambiguous_zoned(dt)
                .compatible()
                .map_err(|e| e.to_string())?
                .timestamp();
            let local = GoTime::in_zone(ts, loc);
            match zone {
                Some(z) if z != local.zone => {
                    let ts = Offset::UTC.to_timestamp(dt).map_err(|e| e.to_string())?;
                    Ok(GoTime {
                        ts,
                        offset: 0,
                        zone: z,
                    })
                }
                _ => Ok(local),
            }
        }
    }
}

fn frac_nanos(d: &str) -> i64 {
    let mut s: String = d.chars().take(9).collect();
    while s.len() < 9 {
        s.push('0');
    }
    s.parse().unwrap_or(0)
}

/// Go's `Duration.String()`.
pub fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < NANOS as u64 {
        // Sub-second: one unit with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, scale));
        out.push_str(unit);
    } else {
        let secs = u / NANOS as u64;
        let sub = u % NANOS as u64;
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac(s * NANOS as u64 + sub, NANOS as u64));
        out.push('s');
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// `v / scale` with the fraction's trailing zeros dropped.
fn frac(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let rem = v % scale;
    if rem == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let f = format!("{rem:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`: nanoseconds, or Go's error text.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let n = s
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if n == 0 || s[..n] == *"." {
            return Err(bad());
        }
        let num: f64 = s[..n].parse().map_err(|_| bad())?;
        s = &s[n..];
        let u = s
            .bytes()
            .take_while(|c| !c.is_ascii_digit() && *c != b'.')
            .count();
        let unit = &s[..u];
        s = &s[u..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {orig:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {orig:?}")),
        };
        total += num * scale;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let d = total.round() as i64;
    Ok(if neg { -d } else { d })
}

/// `time.Duration.Round(m)`.
pub fn round(d: i64, m: i64) -> i64 {
    if m <= 0 {
        return d;
    }
    // As Go's Duration.Round: half away from zero, saturating at the extremes.
    let r = d % m;
    let half_or_more = r.unsigned_abs() >= (m as u64).div_ceil(2);
    match (d < 0, half_or_more) {
        (false, false) | (true, false) => d - r,
        (false, true) => (d - r).saturating_add(m),
        (true, true) => (d - r).saturating_sub(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> GoTime {
        GoTime::from_go_string(s).unwrap()
    }

    #[test]
    fn layouts() {
        let tm = t("2019-06-13 20:39:39 +0000 GMT");
        assert_eq!(
            format(&tm, "2006-01-02T15:04:05Z07:00"),
            "2019-06-13T20:39:39Z"
        );
        assert_eq!(
            format(&tm, "02 Jan 06 15:04 -0700"),
            "13 Jun 19 20:39 +0000"
        );
        assert_eq!(
            format(&tm, "Monday, January 2 2006 3:04PM MST"),
            "Thursday, June 13 2019 8:39PM GMT"
        );
        assert_eq!(format(&tm, "_2 __2 002 .000"), "13 164 164 .000");
        assert_eq!(tm.go_string(), "2019-06-13 20:39:39 +0000 GMT");
        assert_eq!(tm.unix(), 1560458379);
        let p = parse(
            "2006-01-02T15:04:05Z07:00",
            "2024-02-29T10:00:00.5+02:00",
            &TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(p.go_string(), "2024-02-29 10:00:00.5 +0200 +0200");
        assert!(parse("2006-01-02", "2024-13-01", &TimeZone::UTC).is_err());
    }

    #[test]
    fn durations() {
        for (n, s) in [
            (0, "0s"),
            (61 * NANOS, "1m1s"),
            (3600 * NANOS, "1h0m0s"),
            (1_500_000, "1.5ms"),
            (-90 * NANOS, "-1m30s"),
            (2_500_000_000, "2.5s"),
        ] {
            assert_eq!(duration_string(n), s);
            assert_eq!(parse_duration(s), Ok(n), "{s}");
        }
        assert_eq!(parse_duration("1h30m"), Ok(5400 * NANOS));
        assert!(parse_duration("1f").is_err());
        assert_eq!(round(125 * NANOS + 400_000_000, NANOS), 125 * NANOS);
    }
}
