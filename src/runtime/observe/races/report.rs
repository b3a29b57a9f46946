//! How races look: as maps for scripts, and as ThreadSanitizer-like reports (each race's
//! object, the two accesses with their workers, places and locks held) in HTML and text.

use super::table::{Lost, Race, RaceSide};
use crate::runtime::display::escape_html;
use crate::runtime::observe::names::Names;
use crate::runtime::sched::{Kind, Site};
use rhai::{Array, Dynamic, Map};

impl Race {
    /// Names the race's object and locks after the variables in `names` (the objects of
    /// the run it was found in).
    pub fn name_by(&mut self, names: &Names) {
        let object = &self.object;
        let (label, name) = (names.label(object), names.name(object));
        self.label = label.clone();
        let element = match object.kind {
            Kind::Array => format!("[{}]", object.slot),
            _ => String::new(),
        };
        let named = name != label;
        self.name = if named {
            format!("{label} {name}{element}")
        } else {
            format!("{label}{element}")
        };
        self.target = match object.kind {
            Kind::Value if named => format!("{name}.value"),
            _ => format!("{name}{element}"),
        };
        for side in [&mut self.first, &mut self.second] {
            side.held = side.locks.iter().map(|l| names.name(l)).collect();
        }
    }
}

fn place(site: &Site) -> String {
    let at = match (site.line, site.column) {
        (0, _) => "at an unknown place".to_string(),
        (line, 0) => format!("at line {line}"),
        (line, column) => format!("at line {line}, column {column}"),
    };
    match &site.source {
        Some(source) => format!("{at} of {source}"),
        None => at,
    }
}

fn locks(side: &RaceSide) -> String {
    if side.held.is_empty() {
        return "holding no lock".to_string();
    }
    format!("holding {}", side.held.join(", "))
}

fn side_map(side: &RaceSide) -> Dynamic {
    let mut map = Map::new();
    map.insert("op".into(), side.op.into());
    map.insert("worker".into(), side.worker.clone().into());
    map.insert(
        "source".into(),
        side.site
            .source
            .clone()
            .map_or(Dynamic::UNIT, Dynamic::from),
    );
    map.insert("line".into(), Dynamic::from_int(side.site.line as i64));
    map.insert("column".into(), Dynamic::from_int(side.site.column as i64));
    let held: Array = side.held.iter().cloned().map(Dynamic::from).collect();
    map.insert("locks".into(), Dynamic::from_array(held));
    Dynamic::from_map(map)
}

/// A race as a script sees it: `#{object, first, second, count}`.
pub fn to_map(race: &Race) -> Dynamic {
    let mut map = Map::new();
    map.insert("object".into(), race.name.clone().into());
    map.insert("first".into(), side_map(&race.first));
    map.insert("second".into(), side_map(&race.second));
    map.insert("count".into(), Dynamic::from_int(race.count as i64));
    Dynamic::from_map(map)
}

/// The two lines of a race: the later access first, then the earlier one, as
/// ThreadSanitizer writes them.
fn access_lines(race: &Race) -> [String; 2] {
    let line = |side: &RaceSide, previous: bool| {
        let verb = match (side.call, previous) {
            ("add", false) => "Write (add)".to_string(),
            ("add", true) => "Previous write (add)".to_string(),
            (op, false) => format!("{}{}", op[..1].to_uppercase(), &op[1..]),
            (op, true) => format!("Previous {op}"),
        };
        format!(
            "{verb} of {} by {}, {}, {}",
            race.target,
            side.worker,
            place(&side.site),
            locks(side)
        )
    };
    [line(&race.second, false), line(&race.first, true)]
}

/// What a race's count counts: the times it happened in one run, or the schedules of an
/// exploration it happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Times,
    Schedules,
}

fn headline(race: &Race, counted: Counted) -> String {
    let how_often = match (counted, race.count) {
        (Counted::Times, 1) => "once".to_string(),
        (Counted::Times, n) => format!("{n} times"),
        (Counted::Schedules, 1) => "in 1 schedule".to_string(),
        (Counted::Schedules, n) => format!("in {n} schedules"),
    };
    if race.target == race.name {
        format!("WARNING: data race on {} ({how_often})", race.name)
    } else {
        format!(
            "WARNING: data race on {} ({}, {how_often})",
            race.target, race.label
        )
    }
}

fn footnote(races: &[Race], lost: &Lost) -> String {
    let mut text = match races.len() {
        0 => "No data race found: every pair of accesses to a shared value was ordered \
              (by a lock, a join, a queue, an event…) or only read."
            .to_string(),
        1 => "SUMMARY: 1 data race".to_string(),
        n => format!("SUMMARY: {n} data races"),
    };
    let mut missed = Vec::new();
    if lost.workers > 0 {
        missed.push(format!(
            "workers beyond the first {} were not followed",
            super::clock::WORKERS
        ));
    }
    if lost.locations > 0 {
        missed.push(format!(
            "{} accesses to untracked locations",
            lost.locations
        ));
    }
    if lost.objects > 0 {
        missed.push("some synchronisation could not be followed (reports may be false)".into());
    }
    if lost.messages > 0 {
        missed.push(format!(
            "{} queue items came beyond the {} followed at once: a get of one of them was \
             ordered after the puts of all of them (a race behind them may be missed)",
            lost.messages,
            super::table::MESSAGES
        ));
    }
    if lost.reports > 0 {
        missed.push(format!("{} more races not listed", lost.reports));
    }
    if !missed.is_empty() {
        text.push_str(&format!(" (note: {})", missed.join("; ")));
    }
    text
}

pub fn text(races: &[Race], lost: &Lost, counted: Counted) -> String {
    let mut text = String::new();
    for race in races {
        text.push_str("==================\n");
        text.push_str(&headline(race, counted));
        text.push('\n');
        for line in access_lines(race) {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if !races.is_empty() {
        text.push_str("==================\n");
    }
    text.push_str(&footnote(races, lost));
    text.push('\n');
    text
}

pub fn html(races: &[Race], lost: &Lost, counted: Counted) -> String {
    let mut html = String::from("<div class=\"rhai-races\" style=\"font-family:monospace\">");
    for race in races {
        html.push_str("<div style=\"border-left:4px solid #d9534f;padding:2px 8px;margin:6px 0\">");
        html.push_str(&format!(
            "<div style=\"color:#d9534f;font-weight:bold\">{}</div>",
            escape_html(&headline(race, counted))
        ));
        for line in access_lines(race) {
            html.push_str(&format!(
                "<div style=\"margin-left:1.5em\">{}</div>",
                escape_html(&line)
            ));
        }
        html.push_str("</div>");
    }
    html.push_str(&format!(
        "<div>{}</div></div>",
        escape_html(&footnote(races, lost))
    ));
    html
}
