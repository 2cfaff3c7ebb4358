//! Reading a five-field cron line (`minute hour day-of-month month day-of-week`) with croner,
//! and saying which field is wrong when it cannot be read.
//!
//! croner parses the line; its errors do not say which field they are about ("Number out of
//! bounds."), so a refused line is read again one field at a time (that field in its place,
//! `*` in the others) to find the first field croner refuses alone. Only five fields are read:
//! croner would also take seconds and years, and nicknames such as `@daily`, but tatzelwurm
//! promises five fields, so a line is the same schedule in every cron a user knows.

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The longest cron line read, in bytes: five fields fit in far less, and refusals quote it.
pub const MAX_LINE: usize = 200;

/// The fields of a line in their order: the name a user reads, what it takes, and the names
/// (besides numbers) croner reads in it.
const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        range: "minutes run from 0 to 59",
        syntax: PLAIN,
        words: &[],
    },
    Field {
        name: "hour",
        range: "hours run from 0 to 23",
        syntax: PLAIN,
        words: &[],
    },
    Field {
        name: "day-of-month",
        range: "days of the month run from 1 to 31",
        syntax: "it takes numbers, `*`, `,`, `-`, `/`, `?`, `L` and `W`",
        words: &["L", "W", "LW"],
    },
    Field {
        name: "month",
        range: "months run from 1 to 12, or JAN to DEC",
        syntax: PLAIN,
        words: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    Field {
        name: "day-of-week",
        range: "days of the week run from 0 to 7 (0 and 7 are Sunday), or SUN to SAT",
        syntax: "it takes numbers, `*`, `,`, `-`, `/`, `?`, `L` and `#`",
        words: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "L"],
    },
];

/// What most fields take.
const PLAIN: &str = "it takes numbers, `*`, `,`, `-` and `/`";

/// One field of a cron line, as the refusals describe it.
struct Field {
    /// Its name in the refusal (`day-of-month`).
    name: &'static str,
    /// What values it takes, as the end of a refusal.
    range: &'static str,
    /// Which characters it takes, as the start of a refusal.
    syntax: &'static str,
    /// The words it may hold besides numbers and `* , - / # ?` (upper case).
    words: &'static [&'static str],
}

/// Reads `line` as a five-field cron line; the error is the one sentence a user reads, naming
/// the bad field and its position.
pub fn parse(line: &str) -> Result<Cron, String> {
    if line.len() > MAX_LINE {
        return Err(format!(
            "a cron line may be at most {MAX_LINE} bytes long, and this one has {}",
            line.len()
        ));
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Refusals quote the line and its fields escaped, so that a sentence stays on one line.
    let line = &line.escape_debug().to_string();
    if fields.len() == 1 && fields[0].starts_with('@') {
        return Err(nickname(line, fields[0]));
    }
    if fields.len() != FIELDS.len() {
        let extra = if fields.len() > FIELDS.len() {
            " (seconds and years are not read)"
        } else {
            ""
        };
        return Err(format!(
            "a cron line has five fields (minute hour day-of-month month day-of-week); `{line}` has {}{extra}",
            fields.len()
        ));
    }
    for (position, (field, text)) in FIELDS.iter().zip(&fields).enumerate() {
        if let Some(word) = foreign_word(field, text) {
            let (word, text) = (word.escape_debug(), text.escape_debug().to_string());
            let why = format!("`{word}` means nothing in this field, and {}", field.range);
            return Err(bad_field(line, position, &text, &why));
        }
    }
    let parser = parser();
    parser.parse(&fields.join(" ")).map_err(|whole| {
        // The first field that croner refuses on its own is the one to name.
        for (position, text) in fields.iter().enumerate() {
            let mut alone = ["*"; 5];
            alone[position] = text;
            if let Err(err) = parser.parse(&alone.join(" ")) {
                let text = text.escape_debug().to_string();
                return bad_field(line, position, &text, &reason(position, &err));
            }
        }
        // Every field reads alone but not together: croner's own words are all there is.
        format!("the cron line `{line}` cannot be read: {whole}")
    })
}

/// The parser of five-field lines: no seconds, no years, day-of-month OR day-of-week as in
/// Vixie cron, Sunday as 0 (and 7).
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// The refusal of field `position` (from 0) of `line`, holding `text`, for `why`.
fn bad_field(line: &str, position: usize, text: &str, why: &str) -> String {
    format!(
        "the cron line `{line}` has a bad {} (field {}, `{text}`): {why}",
        FIELDS[position].name,
        position + 1
    )
}

/// Why croner refused field `position` alone, in words a user can act on.
fn reason(position: usize, err: &croner::errors::CronError) -> String {
    let Field { range, syntax, .. } = FIELDS[position];
    let said = err.to_string().to_ascii_lowercase();
    if said.contains("step") {
        format!("a step is written `*/N` or `A-B/N` with N of 1 or more, and {range}")
    } else if said.contains("illegal character") || said.contains("not allowed") {
        format!("{syntax}, and {range}")
    } else if said.contains("nth") {
        format!("`DAY#N` is the N-th such weekday of the month, N from 1 to 5, and {range}")
    } else {
        range.to_string()
    }
}

/// The first word (a run of letters) in `text` that `field` does not take. croner replaces
/// month and weekday names anywhere in the line, so without this check `MON` in the month
/// field would silently mean January.
fn foreign_word<'a>(field: &Field, text: &'a str) -> Option<&'a str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| !word.is_empty())
        .find(|word| {
            // `15W` and `5L` glue a letter to a number, so words are split at digits.
            let upper = word.to_ascii_uppercase();
            !field.words.contains(&upper.as_str())
        })
}

/// The refusal of a nickname (`@daily`), with the five fields it stands for.
fn nickname(line: &str, word: &str) -> String {
    let fields = match word.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Some("0 0 1 1 *"),
        "@monthly" => Some("0 0 1 * *"),
        "@weekly" => Some("0 0 * * 0"),
        "@daily" | "@midnight" => Some("0 0 * * *"),
        "@hourly" => Some("0 * * * *"),
        _ => None,
    };
    match fields {
        Some(fields) => format!(
            "a cron line has five fields (minute hour day-of-month month day-of-week) and no nicknames; write `{fields}` for `{line}`"
        ),
        None => format!(
            "a cron line has five fields (minute hour day-of-month month day-of-week); `{line}` has 1"
        ),
    }
}
