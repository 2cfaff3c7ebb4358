//! The schedule table's rules, driven directly with the time passed in: every trigger kind,
//! collapse of missed firings, pause/resume/remove, changes handed out once, the refusals'
//! sentences, and time zones with their clock changes.

use super::*;
use tatzelwurm_proto::schedule::Trigger;
use tatzelwurm_proto::task::When;

/// The instant of an RFC 3339 time, in ms.
fn at(text: &str) -> Timestamp {
    let instant: jiff::Timestamp = text.parse().expect("an RFC 3339 time");
    Timestamp(instant.as_millisecond() as u64)
}

/// A schedule named `name` firing on `trigger`, adding a call of `jobs.m:f`.
fn spec(name: &str, trigger: Trigger) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        trigger,
        task: TaskSpec::call("jobs.m:f", "[1]", "{}"),
    }
}

/// A cron trigger.
fn cron(line: &str, tz: Option<&str>) -> Trigger {
    Trigger::Cron {
        line: line.into(),
        tz: tz.map(String::from),
    }
}

/// The refusal of adding `spec` to an empty table at `now`.
fn refusal(spec: ScheduleSpec) -> ScheduleError {
    let mut table = Schedules::new();
    let err = table
        .add(spec, at("2026-01-10T12:00:00Z"))
        .expect_err("refused");
    assert!(table.is_empty(), "a refused add adds nothing");
    assert!(
        table.take_changes().is_empty(),
        "a refused add changes nothing"
    );
    err
}

/// The sentence of a refused cron line (in UTC).
fn cron_refusal(line: &str) -> String {
    match refusal(spec("c", cron(line, None))) {
        ScheduleError::Bad(sentence) => sentence,
        other => panic!("{line}: {other:?}"),
    }
}

/// Runs the actor's loop from `from` to `until`: wakes at each `next_due`, fires, records each
/// firing with made-up task ids. Answers when each firing happened.
fn run(table: &mut Schedules, until: Timestamp) -> Vec<Timestamp> {
    let mut times = Vec::new();
    let mut id = 1_000;
    while let Some(wake) = table.next_due().filter(|wake| *wake <= until) {
        let firings = table.due(wake);
        assert!(!firings.is_empty(), "next_due {wake:?} was due");
        for (name, _) in firings {
            id += 1;
            table.fired(&name, TaskId(id), wake);
            times.push(wake);
        }
    }
    times
}

/// An interval schedule first fires one interval after it was added, not before, and then
/// every interval in the phase of its creation.
#[test]
fn every_fires_one_interval_after_add() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    let info = table.add(spec("tick", Trigger::Every(60_000)), t0).unwrap();
    assert_eq!(info.next_at, Some(Timestamp(t0.0 + 60_000)));
    assert_eq!((info.paused, info.fired, info.created_at), (false, 0, t0));
    assert_eq!(table.next_due(), Some(Timestamp(t0.0 + 60_000)));
    assert!(table.due(Timestamp(t0.0 + 59_999)).is_empty());

    let firings = table.due(Timestamp(t0.0 + 60_000));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].0, "tick");
    assert_eq!(firings[0].1, TaskSpec::call("jobs.m:f", "[1]", "{}"));
    assert_eq!(
        table.get("tick").unwrap().next_at,
        Some(Timestamp(t0.0 + 120_000))
    );

    // A wake-up a little late keeps the phase: the next firing is still on the grid.
    let late = table.due(Timestamp(t0.0 + 120_700));
    assert_eq!(late.len(), 1);
    assert_eq!(
        table.get("tick").unwrap().next_at,
        Some(Timestamp(t0.0 + 180_000))
    );
}

/// Many missed intervals fire once, and the next time is the first grid time after now.
#[test]
fn every_collapses_missed_firings() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    table.add(spec("tick", Trigger::Every(10_000)), t0).unwrap();
    let now = Timestamp(t0.0 + 10 * 10_000 + 5_000);
    assert_eq!(table.due(now).len(), 1);
    assert_eq!(
        table.get("tick").unwrap().next_at,
        Some(Timestamp(t0.0 + 11 * 10_000))
    );
    assert!(
        table.due(now).is_empty(),
        "fired once, not once per missed time"
    );
}

/// An interval under a second or over 100 years is refused with a sentence naming it; one
/// second exactly is fine.
#[test]
fn every_bounds() {
    let short = refusal(spec("tick", Trigger::Every(999))).to_string();
    assert_eq!(
        short,
        "a schedule fires at most once a second, so its interval must be 1s or more, not 999ms"
    );
    let long = refusal(spec("tick", Trigger::Every(trigger::MAX_EVERY_MS + 1000))).to_string();
    assert!(long.contains("at most 100 years"), "{long}");
    let mut table = Schedules::new();
    let t0 = at("2026-01-10T12:00:00Z");
    let info = table.add(spec("tick", Trigger::Every(1_000)), t0).unwrap();
    assert_eq!(info.next_at, Some(Timestamp(t0.0 + 1_000)));
    let info = table
        .add(spec("slow", Trigger::Every(trigger::MAX_EVERY_MS)), t0)
        .unwrap();
    assert_eq!(info.next_at, Some(Timestamp(t0.0 + trigger::MAX_EVERY_MS)));
}

/// A cron line in UTC fires at its times, each time once, and the next time is computed from
/// the firing's now.
#[test]
fn cron_in_utc() {
    let mut table = Schedules::new();
    let info = table
        .add(
            spec("five", cron("*/5 * * * *", None)),
            at("2026-01-10T12:03:10Z"),
        )
        .unwrap();
    assert_eq!(info.next_at, Some(at("2026-01-10T12:05:00Z")));
    assert!(table.due(at("2026-01-10T12:04:59.999Z")).is_empty());
    assert_eq!(table.due(at("2026-01-10T12:05:00Z")).len(), 1);
    assert_eq!(
        table.get("five").unwrap().next_at,
        Some(at("2026-01-10T12:10:00Z"))
    );
    // A wake-up in the same second does not fire again.
    assert!(table.due(at("2026-01-10T12:05:00.400Z")).is_empty());

    let times = run(&mut table, at("2026-01-10T12:30:00Z"));
    let expected: Vec<Timestamp> = (2..=6)
        .map(|k| at(&format!("2026-01-10T12:{:02}:00Z", k * 5)))
        .collect();
    assert_eq!(times, expected);
}

/// A cron line added exactly at one of its times fires at the next one, not at once.
#[test]
fn cron_added_on_its_time_waits_for_the_next() {
    let mut table = Schedules::new();
    let info = table
        .add(
            spec("hourly", cron("0 * * * *", None)),
            at("2026-01-10T12:00:00Z"),
        )
        .unwrap();
    assert_eq!(info.next_at, Some(at("2026-01-10T13:00:00Z")));
}

/// Month and weekday names are read in any case: `0 9 * jan-dec mon-fri` skips the weekend.
#[test]
fn cron_weekday_names() {
    let mut table = Schedules::new();
    // 2026-01-09 is a Friday.
    table
        .add(
            spec("work", cron("0 9 * jan-dec mon-fri", None)),
            at("2026-01-09T10:00:00Z"),
        )
        .unwrap();
    let times = run(&mut table, at("2026-01-13T00:00:00Z"));
    assert_eq!(times, vec![at("2026-01-12T09:00:00Z")]);
}

/// A line naming both a day of the month and a day of the week fires on either, as in Vixie
/// cron (and on a day that is both, once).
#[test]
fn cron_day_of_month_or_week() {
    let mut table = Schedules::new();
    table
        .add(
            spec("either", cron("0 0 13 * 5", None)),
            at("2026-01-10T12:00:00Z"),
        )
        .unwrap();
    let times = run(&mut table, at("2026-02-14T00:00:00Z"));
    let expected: Vec<Timestamp> = ["01-13", "01-16", "01-23", "01-30", "02-06", "02-13"]
        .iter()
        .map(|day| at(&format!("2026-{day}T00:00:00Z")))
        .collect();
    assert_eq!(times, expected);
}

/// A cron line in a named zone fires at local times: 09:00 in New York is 14:00 UTC in
/// winter and 13:00 UTC in summer; a zone name in any case is found.
#[test]
fn cron_in_a_time_zone() {
    let mut table = Schedules::new();
    let info = table
        .add(
            spec("ny", cron("0 9 * * *", Some("America/New_York"))),
            at("2026-01-10T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(info.next_at, Some(at("2026-01-10T14:00:00Z")));
    let info = table
        .add(
            spec("ny-summer", cron("0 9 * * *", Some("america/new_york"))),
            at("2026-07-10T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(info.next_at, Some(at("2026-07-10T13:00:00Z")));
    let info = table
        .add(
            spec("utc", cron("0 9 * * *", Some("UTC"))),
            at("2026-07-10T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(info.next_at, Some(at("2026-07-10T09:00:00Z")));
}

/// When Berlin's clocks jump from 02:00 to 03:00 (2026-03-29), `30 2 * * *` fires once that
/// day, at the jump (03:00 local), and at 02:30 local on the days around it.
#[test]
fn cron_across_the_spring_gap() {
    let mut table = Schedules::new();
    table
        .add(
            spec("night", cron("30 2 * * *", Some("Europe/Berlin"))),
            at("2026-03-27T12:00:00Z"),
        )
        .unwrap();
    let times = run(&mut table, at("2026-03-31T12:00:00Z"));
    assert_eq!(
        times,
        vec![
            at("2026-03-28T01:30:00Z"), // 02:30 CET
            at("2026-03-29T01:00:00Z"), // 03:00 CEST: 02:30 does not exist that night
            at("2026-03-30T00:30:00Z"), // 02:30 CEST
            at("2026-03-31T00:30:00Z"),
        ]
    );
    assert_eq!(table.get("night").unwrap().fired, 4);
}

/// When Berlin's clocks go back from 03:00 to 02:00 (2026-10-25), 02:30 happens twice, and
/// `30 2 * * *` fires once, at the first.
#[test]
fn cron_across_the_autumn_fold() {
    let mut table = Schedules::new();
    table
        .add(
            spec("night", cron("30 2 * * *", Some("Europe/Berlin"))),
            at("2026-10-24T12:00:00Z"),
        )
        .unwrap();
    let times = run(&mut table, at("2026-10-26T12:00:00Z"));
    assert_eq!(
        times,
        vec![
            at("2026-10-25T00:30:00Z"), // 02:30 CEST, the first 02:30
            at("2026-10-26T01:30:00Z"), // 02:30 CET the next day
        ]
    );
}

/// A half-hourly line goes on every half hour of real time through the repeated hour:
/// neither a double firing nor a gap.
#[test]
fn cron_interval_through_the_fold() {
    let mut table = Schedules::new();
    table
        .add(
            spec("half", cron("*/30 * * * *", Some("Europe/Berlin"))),
            at("2026-10-24T23:40:00Z"),
        )
        .unwrap();
    let times = run(&mut table, at("2026-10-25T02:00:00Z"));
    let expected: Vec<Timestamp> = [
        "2026-10-25T00:00:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:00:00Z",
        "2026-10-25T01:30:00Z",
        "2026-10-25T02:00:00Z",
    ]
    .iter()
    .map(|t| at(t))
    .collect();
    assert_eq!(times, expected);
}

/// A schedule whose time passed while the coordinator was down fires once at the first `due`
/// after loading, and its next time is the first one after that now.
#[test]
fn missed_firings_while_down_fire_once() {
    let mut before = Schedules::new();
    before
        .add(
            spec("five", cron("*/5 * * * *", None)),
            at("2026-01-10T12:03:00Z"),
        )
        .unwrap();
    before
        .add(
            spec("tick", Trigger::Every(60_000)),
            at("2026-01-10T12:03:00Z"),
        )
        .unwrap();
    let stored: Vec<ScheduleInfo> = before
        .take_changes()
        .into_iter()
        .filter_map(|(_, info)| info)
        .collect();

    let start = at("2026-01-10T15:07:30Z");
    let mut table = Schedules::load(stored, start);
    assert!(table.take_changes().is_empty(), "loading writes nothing");
    assert_eq!(
        table.get("five").unwrap().next_at,
        Some(at("2026-01-10T12:05:00Z"))
    );
    assert_eq!(table.next_due(), Some(at("2026-01-10T12:04:00Z")));

    let firings = table.due(start);
    let names: Vec<&str> = firings.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["five", "tick"], "each fires once, in name order");
    assert_eq!(
        table.get("five").unwrap().next_at,
        Some(at("2026-01-10T15:10:00Z"))
    );
    assert_eq!(
        table.get("tick").unwrap().next_at,
        Some(at("2026-01-10T15:08:00Z"))
    );
    assert!(table.due(start).is_empty());
}

/// A paused schedule has no next time and does not fire however long it waits; resuming
/// continues from the first time after the resume, without making up the missed ones.
#[test]
fn pause_and_resume() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    table.add(spec("tick", Trigger::Every(60_000)), t0).unwrap();
    table.take_changes();

    let paused = table.change("tick", ScheduleChange::Pause, t0).unwrap();
    assert!(paused.paused);
    assert_eq!(paused.next_at, None);
    assert_eq!(table.next_due(), None);
    assert!(table.due(Timestamp(t0.0 + 3_600_000)).is_empty());

    let later = Timestamp(t0.0 + 3_600_000 + 1_500);
    let resumed = table.change("tick", ScheduleChange::Resume, later).unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_at, Some(Timestamp(t0.0 + 61 * 60_000)));
    assert!(
        table.due(later).is_empty(),
        "resuming fires nothing by itself"
    );
    assert_eq!(table.get("tick").unwrap().fired, 0);

    let changes = table.take_changes();
    assert_eq!(changes, vec![("tick".to_string(), Some(resumed))]);
}

/// Pausing a paused schedule and resuming a running one change nothing, so nothing is written
/// and a running schedule keeps a due time it has not fired yet.
#[test]
fn repeated_pause_and_resume_change_nothing() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    table.add(spec("tick", Trigger::Every(60_000)), t0).unwrap();
    table.take_changes();

    let late = Timestamp(t0.0 + 90_000);
    let same = table.change("tick", ScheduleChange::Resume, late).unwrap();
    assert_eq!(same.next_at, Some(Timestamp(t0.0 + 60_000)), "still due");
    assert!(table.take_changes().is_empty());

    table.change("tick", ScheduleChange::Pause, late).unwrap();
    assert_eq!(table.take_changes().len(), 1);
    table.change("tick", ScheduleChange::Pause, late).unwrap();
    assert!(table.take_changes().is_empty());
}

/// A removed schedule is gone (answered as it was), its removal is handed to the store as
/// `None`, and its name is free again.
#[test]
fn remove() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    table.add(spec("tick", Trigger::Every(60_000)), t0).unwrap();
    table.due(Timestamp(t0.0 + 60_000));
    table.fired("tick", TaskId(7), Timestamp(t0.0 + 60_000));
    table.take_changes();

    let gone = table.change("tick", ScheduleChange::Remove, t0).unwrap();
    assert_eq!(gone.fired, 1);
    assert_eq!(gone.last, vec![(TaskId(7), Timestamp(t0.0 + 60_000))]);
    assert!(table.is_empty());
    assert_eq!(table.next_due(), None);
    assert!(matches!(
        table.get("tick"),
        Err(ScheduleError::Unknown { .. })
    ));
    assert_eq!(table.take_changes(), vec![("tick".to_string(), None)]);

    // A firing reported after the removal is ignored.
    table.fired("tick", TaskId(8), t0);
    assert!(table.take_changes().is_empty());

    let again = table
        .add(spec("tick", cron("0 * * * *", None)), t0)
        .unwrap();
    assert_eq!(again.fired, 0);
}

/// Each change is handed out once, as the schedule is at the time of taking: an add, then a
/// firing with its task, then nothing.
#[test]
fn changes_are_taken_once() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    let added = table.add(spec("b", Trigger::Every(60_000)), t0).unwrap();
    table.add(spec("a", Trigger::Every(120_000)), t0).unwrap();
    let changes = table.take_changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].0, "a", "by name");
    assert_eq!(changes[1], ("b".to_string(), Some(added)));
    assert!(table.take_changes().is_empty());

    let now = Timestamp(t0.0 + 60_000);
    assert_eq!(table.due(now).len(), 1);
    table.fired("b", TaskId(1), now);
    let changes = table.take_changes();
    assert_eq!(changes.len(), 1);
    let (name, info) = &changes[0];
    let info = info.as_ref().unwrap();
    assert_eq!(name, "b");
    assert_eq!(info.fired, 1);
    assert_eq!(info.last, vec![(TaskId(1), now)]);
    assert_eq!(info.next_at, Some(Timestamp(t0.0 + 120_000)));
    assert!(table.take_changes().is_empty());
}

/// `last` keeps the newest `LAST_FIRINGS` tasks, newest first, while `fired` counts them all.
#[test]
fn last_firings_newest_first_and_bounded() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    table.add(spec("tick", Trigger::Every(1_000)), t0).unwrap();
    let times = run(&mut table, Timestamp(t0.0 + 12_000));
    assert_eq!(times.len(), 12);
    let info = table.get("tick").unwrap();
    assert_eq!(info.fired, 12);
    assert_eq!(info.last.len(), LAST_FIRINGS);
    assert_eq!(info.last[0], (TaskId(1_012), Timestamp(t0.0 + 12_000)));
    assert_eq!(info.last[9], (TaskId(1_003), Timestamp(t0.0 + 3_000)));
}

/// Several schedules: `next_due` is the earliest unpaused time, `due` fires all that are due
/// (in name order), and `list` goes by name.
#[test]
fn next_due_and_several_schedules() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    table.add(spec("c", Trigger::Every(30_000)), t0).unwrap();
    table.add(spec("b", Trigger::Every(20_000)), t0).unwrap();
    table.add(spec("a", Trigger::Every(50_000)), t0).unwrap();
    assert_eq!(table.next_due(), Some(Timestamp(t0.0 + 20_000)));
    table.change("b", ScheduleChange::Pause, t0).unwrap();
    assert_eq!(table.next_due(), Some(Timestamp(t0.0 + 30_000)));

    let names: Vec<String> = table
        .due(Timestamp(t0.0 + 60_000))
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(names, ["a", "c"]);
    let listed: Vec<String> = table.list().into_iter().map(|i| i.spec.name).collect();
    assert_eq!(listed, ["a", "b", "c"]);
    assert_eq!(table.len(), 3);
}

/// A name in use is refused as `ScheduleExists`, a malformed one as `BadRequest`, and the
/// first schedule stays as it was.
#[test]
fn names_taken_and_malformed() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    let first = table
        .add(spec("nightly", Trigger::Every(60_000)), t0)
        .unwrap();
    table.take_changes();
    let err = table
        .add(spec("nightly", cron("0 3 * * *", None)), t0)
        .unwrap_err();
    assert_eq!(err, ScheduleError::Exists("nightly".into()));
    let failure = err.failure();
    assert_eq!(failure.kind, FailureKind::ScheduleExists);
    assert_eq!(
        failure.message,
        "there is already a schedule `nightly`; remove it first (`schedule remove nightly`) or choose another name"
    );
    assert_eq!(table.get("nightly").unwrap(), first);
    assert!(table.take_changes().is_empty());

    let failure = refusal(spec("two words", Trigger::Every(60_000))).failure();
    assert_eq!(failure.kind, FailureKind::BadRequest);
    assert!(
        failure
            .message
            .starts_with("`two words` is not a schedule name"),
        "{}",
        failure.message
    );
}

/// An unknown name is refused as `UnknownSchedule`, naming the schedules there are (at most
/// ten, then how many more), or saying there are none.
#[test]
fn unknown_names_the_known_ones() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    let failure = table.get("x").unwrap_err().failure();
    assert_eq!(failure.kind, FailureKind::UnknownSchedule);
    assert_eq!(
        failure.message,
        "there is no schedule `x`; there are no schedules yet (`schedule add` makes one)"
    );

    table.add(spec("b", Trigger::Every(60_000)), t0).unwrap();
    table.add(spec("a", Trigger::Every(60_000)), t0).unwrap();
    let failure = table
        .change("x", ScheduleChange::Pause, t0)
        .unwrap_err()
        .failure();
    assert_eq!(
        failure.message,
        "there is no schedule `x`; the schedules are: a, b"
    );

    for n in 0..12 {
        table
            .add(spec(&format!("s{n:02}"), Trigger::Every(60_000)), t0)
            .unwrap();
    }
    let err = table.change("x", ScheduleChange::Remove, t0).unwrap_err();
    let ScheduleError::Unknown { known, more, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(known.len(), NAMED_SCHEDULES);
    assert_eq!(*more, 4);
    assert_eq!(
        err.to_string(),
        "there is no schedule `x`; the schedules are: a, b, s00, s01, s02, s03, s04, s05, s06, s07 and 4 more (`schedule list` shows all)"
    );
    assert_eq!(table.len(), 14, "a refused removal removes nothing");
}

/// A cron line with the wrong number of fields says how many it has and what the five are;
/// seconds, years and nicknames are refused the same way.
#[test]
fn cron_field_count() {
    assert_eq!(
        cron_refusal("* * *"),
        "a cron line has five fields (minute hour day-of-month month day-of-week); `* * *` has 3"
    );
    assert_eq!(
        cron_refusal("0 */5 * * * *"),
        "a cron line has five fields (minute hour day-of-month month day-of-week); `0 */5 * * * *` has 6 (seconds and years are not read)"
    );
    assert!(cron_refusal("0 0 12 * * * 2030").contains("has 7"));
    assert!(cron_refusal("").contains("`` has 0"));
    assert_eq!(
        cron_refusal(&"* ".repeat(101)),
        "a cron line may be at most 200 bytes long, and this one has 202"
    );
    // A refusal stays on one line whatever the line holds.
    assert_eq!(
        cron_refusal("0 0\n* *"),
        "a cron line has five fields (minute hour day-of-month month day-of-week); `0 0\\n* *` has 4"
    );
    assert_eq!(
        cron_refusal("@daily"),
        "a cron line has five fields (minute hour day-of-month month day-of-week) and no nicknames; write `0 0 * * *` for `@daily`"
    );
}

/// A bad field is named with its position and what it takes.
#[test]
fn cron_bad_fields_are_named() {
    assert_eq!(
        cron_refusal("*/5 * 32 * *"),
        "the cron line `*/5 * 32 * *` has a bad day-of-month (field 3, `32`): days of the month run from 1 to 31"
    );
    assert_eq!(
        cron_refusal("60 * * * *"),
        "the cron line `60 * * * *` has a bad minute (field 1, `60`): minutes run from 0 to 59"
    );
    assert_eq!(
        cron_refusal("0 9-24 * * *"),
        "the cron line `0 9-24 * * *` has a bad hour (field 2, `9-24`): hours run from 0 to 23"
    );
    assert_eq!(
        cron_refusal("0 0 1 13 *"),
        "the cron line `0 0 1 13 *` has a bad month (field 4, `13`): months run from 1 to 12, or JAN to DEC"
    );
    assert_eq!(
        cron_refusal("0 0 * * 8"),
        "the cron line `0 0 * * 8` has a bad day-of-week (field 5, `8`): days of the week run from 0 to 7 (0 and 7 are Sunday), or SUN to SAT"
    );
    assert_eq!(
        cron_refusal("*/0 * * * *"),
        "the cron line `*/0 * * * *` has a bad minute (field 1, `*/0`): a step is written `*/N` or `A-B/N` with N of 1 or more, and minutes run from 0 to 59"
    );
    assert_eq!(
        cron_refusal("0 x * * *"),
        "the cron line `0 x * * *` has a bad hour (field 2, `x`): `x` means nothing in this field, and hours run from 0 to 23"
    );
    // croner would read a weekday name anywhere; in the month field it is refused.
    assert_eq!(
        cron_refusal("0 0 * MON *"),
        "the cron line `0 0 * MON *` has a bad month (field 4, `MON`): `MON` means nothing in this field, and months run from 1 to 12, or JAN to DEC"
    );
    assert_eq!(
        cron_refusal("? 0 * * *"),
        "the cron line `? 0 * * *` has a bad minute (field 1, `?`): it takes numbers, `*`, `,`, `-` and `/`, and minutes run from 0 to 59"
    );
    assert_eq!(
        cron_refusal("0 0 1#2 * *"),
        "the cron line `0 0 1#2 * *` has a bad day-of-month (field 3, `1#2`): it takes numbers, `*`, `,`, `-`, `/`, `?`, `L` and `W`, and days of the month run from 1 to 31"
    );
    assert_eq!(
        cron_refusal("0 0 * * 1#6"),
        "the cron line `0 0 * * 1#6` has a bad day-of-week (field 5, `1#6`): `DAY#N` is the N-th such weekday of the month, N from 1 to 5, and days of the week run from 0 to 7 (0 and 7 are Sunday), or SUN to SAT"
    );
}

/// Lines croner reads beyond plain numbers (last day, nth weekday, `?`) are accepted.
#[test]
fn cron_extensions_are_read() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut table = Schedules::new();
    let last = table
        .add(spec("last", cron("0 0 L * *", None)), t0)
        .unwrap();
    assert_eq!(last.next_at, Some(at("2026-01-31T00:00:00Z")));
    // The second Monday of February 2026 is the 9th.
    let nth = table
        .add(spec("nth", cron("0 8 ? FEB MON#2", None)), t0)
        .unwrap();
    assert_eq!(nth.next_at, Some(at("2026-02-09T08:00:00Z")));
    // The last weekday of January 2026 is Friday the 30th (the 31st is a Saturday).
    let lw = table.add(spec("lw", cron("0 0 LW * *", None)), t0).unwrap();
    assert_eq!(lw.next_at, Some(at("2026-01-30T00:00:00Z")));
}

/// A line whose dates never come is refused, saying so.
#[test]
fn cron_that_never_fires() {
    assert_eq!(
        cron_refusal("0 0 30 2 *"),
        "the cron line `0 0 30 2 *` never fires: no date in the coming years has its day-of-month in its months; choose a day that every month named has"
    );
    // February 29 comes, if not every year.
    let mut table = Schedules::new();
    let leap = table
        .add(
            spec("leap", cron("0 0 29 2 *", None)),
            at("2026-01-10T12:00:00Z"),
        )
        .unwrap();
    assert_eq!(leap.next_at, Some(at("2028-02-29T00:00:00Z")));
    table.due(at("2028-02-29T00:00:00Z"));
    assert_eq!(
        table.get("leap").unwrap().next_at,
        Some(at("2032-02-29T00:00:00Z"))
    );
}

/// An unknown time zone is refused with a sentence that says what to write.
#[test]
fn unknown_time_zone() {
    let err = refusal(spec("m", cron("0 * * * *", Some("Mars/Base"))));
    assert_eq!(err.failure().kind, FailureKind::BadRequest);
    assert_eq!(
        err.to_string(),
        "unknown time zone `Mars/Base`; use an IANA name such as `Europe/Berlin` or `UTC`"
    );
    assert!(refusal(spec("m", cron("0 * * * *", Some(""))))
        .to_string()
        .contains("unknown time zone ``"));
    let long = "Europe/".repeat(20);
    assert_eq!(
        refusal(spec("m", cron("0 * * * *", Some(&long)))).to_string(),
        "a time zone name has at most 64 bytes; use an IANA name such as `Europe/Berlin` or `UTC`"
    );
}

/// The task of a schedule must be one a firing can add ready: no start time, no tasks to run
/// after, a good function, queue and priority.
#[test]
fn task_checks() {
    let with = |change: &dyn Fn(&mut TaskSpec)| {
        let mut spec = spec("s", Trigger::Every(60_000));
        change(&mut spec.task);
        let err = refusal(spec);
        assert_eq!(err.failure().kind, FailureKind::BadRequest);
        err.to_string()
    };
    assert!(with(&|t| t.run_at = Some(When::Delay(5_000))).contains("no delay or start time"));
    assert!(with(&|t| t.run_at = Some(When::At(Timestamp(1)))).contains("no delay or start time"));
    assert!(with(&|t| t.after = vec![TaskId(1)]).contains("runs after no other tasks"));
    assert_eq!(
        with(&|t| t.priority = 101),
        "priority 101 is out of range; use -100 to 100 (higher runs first, 0 is the default)"
    );
    assert!(with(&|t| t.priority = -101).contains("priority -101 is out of range"));
    assert!(with(&|t| t.queue = "no queue".into()).contains("is not a queue name"));
    assert!(with(&|t| t.function = "nofunction".into()).contains("package.module:function"));

    let mut table = Schedules::new();
    let mut good = spec("s", Trigger::Every(60_000));
    good.task.queue = "gpu".into();
    good.task.priority = 100;
    let info = table.add(good.clone(), at("2026-01-10T12:00:00Z")).unwrap();
    assert_eq!(info.spec, good);
}

/// A stored schedule whose time zone this machine no longer knows is kept and shown; it fires
/// a due time it had, then no more.
#[test]
fn stored_schedule_with_an_unreadable_zone() {
    let t0 = at("2026-01-10T12:00:00Z");
    let stored = ScheduleInfo {
        spec: spec("gone", cron("0 * * * *", Some("Atlantis/Capital"))),
        paused: false,
        created_at: t0,
        next_at: Some(at("2026-01-10T13:00:00Z")),
        fired: 3,
        last: Vec::new(),
    };
    let mut table = Schedules::load(vec![stored.clone()], t0);
    assert_eq!(table.get("gone").unwrap(), stored);
    assert_eq!(table.due(at("2026-01-10T13:00:00Z")).len(), 1);
    assert_eq!(table.get("gone").unwrap().next_at, None);
    assert_eq!(table.next_due(), None);
    assert!(table.change("gone", ScheduleChange::Remove, t0).is_ok());
}

/// A stored paused schedule stays paused across a restart and fires nothing.
#[test]
fn stored_paused_schedule_stays_paused() {
    let t0 = at("2026-01-10T12:00:00Z");
    let mut before = Schedules::new();
    before
        .add(spec("tick", Trigger::Every(60_000)), t0)
        .unwrap();
    before.change("tick", ScheduleChange::Pause, t0).unwrap();
    let stored = before.list();
    let mut table = Schedules::load(stored, Timestamp(t0.0 + 3_600_000));
    assert!(table.get("tick").unwrap().paused);
    assert_eq!(table.next_due(), None);
    assert!(table.due(Timestamp(t0.0 + 3_600_000)).is_empty());
}

/// A stored running schedule without a next time (written by a coordinator whose clock or zone
/// data differed) gets its next time back at load, and that change is written.
#[test]
fn stored_schedule_without_next_time_gets_one() {
    let t0 = at("2026-01-10T12:00:00Z");
    let stored = ScheduleInfo {
        spec: spec("tick", Trigger::Every(60_000)),
        paused: false,
        created_at: t0,
        next_at: None,
        fired: 0,
        last: Vec::new(),
    };
    let now = Timestamp(t0.0 + 90_000);
    let mut table = Schedules::load(vec![stored], now);
    let next = Some(Timestamp(t0.0 + 120_000));
    assert_eq!(table.get("tick").unwrap().next_at, next);
    let changes = table.take_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1.as_ref().unwrap().next_at, next);
    assert!(table.due(now).is_empty(), "no firing is made up");
}

/// The table can live inside the task actor, which tokio may move between threads.
#[test]
fn the_table_is_send() {
    fn send<T: Send + 'static>(_: &T) {}
    let mut table = Schedules::new();
    table
        .add(
            spec("c", cron("0 * * * *", Some("Europe/Berlin"))),
            at("2026-01-10T12:00:00Z"),
        )
        .unwrap();
    send(&table);
}
