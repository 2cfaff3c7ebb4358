//! Schedules: `schedule add --every` fires ordinary tasks that `schedule show` lists; a paused
//! schedule does not fire and a removed one is gone (its tasks stay); a bad cron line is refused
//! naming the field, a taken name is refused; and firings missed while the coordinator was down
//! run once when it starts, not once per missed slot.

use crate::TASK_TIMEOUT;
use std::time::Duration;
use tatzelwurm_e2e::control::{schedule_fired, schedule_last};
use tatzelwurm_e2e::{example, Cluster, Stop, WorkerSpec};

/// How long a schedule firing every second may take to fire a few times on a loaded machine.
const FIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// `schedule add NAME FUNC --every 1s --args [...]` with `--queue`, `--priority`, `--retries`.
fn add_every(cluster: &Cluster, name: &str, every: &str, x: u64) {
    let args = format!("[{x}]");
    cluster
        .action(&[
            "schedule",
            "add",
            name,
            &example("square"),
            "--every",
            every,
            "--args",
            &args,
        ])
        .ok();
}

/// A schedule firing every second adds ordinary tasks that run to completion with its
/// arguments; `schedule show` counts them and lists the latest ids newest first, and
/// `schedule list` (table and JSON) names it.
#[test]
fn every_second_fires_tasks_that_show_lists() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    add_every(&cluster, "tick", "1s", 5);
    let schedule = cluster.wait_fired("tick", 3, FIRE_TIMEOUT);
    let last = schedule_last(&schedule);
    assert!(last.len() >= 3, "{schedule}");
    let ids: Vec<u64> = last.iter().map(|(id, _)| *id).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first, "newest first: {schedule}");
    for &id in &ids {
        let task = cluster.wait_completed(id, TASK_TIMEOUT);
        assert_eq!(task["result"], 25, "{task}");
        assert!(task["function"].as_str().unwrap().ends_with(":square"));
    }
    assert!(schedule["next_at"].as_f64().is_some(), "{schedule}");
    assert_eq!(schedule["paused"], false);

    let listed = cluster.schedules();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "tick");
    let table = cluster.action(&["schedule", "list"]).ok();
    assert!(table.stdout.contains("tick"), "{table}");
}

/// A schedule's tasks carry its `--queue`, `--priority` and policy flags, and run on a worker
/// serving only that queue.
#[test]
fn a_schedules_tasks_carry_its_queue_priority_and_policy() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1).name("nightly").queue("nightly"));
    cluster
        .action(&[
            "schedule",
            "add",
            "report",
            &example("square"),
            "--every",
            "1s",
            "--args",
            "[6]",
            "--queue",
            "nightly",
            "--priority",
            "7",
            "--retries",
            "2",
        ])
        .ok();
    let shown = cluster.schedule("report");
    assert_eq!(shown["queue"], "nightly", "{shown}");
    assert_eq!(shown["priority"], 7, "{shown}");
    let fired = cluster.wait_fired("report", 1, FIRE_TIMEOUT);
    let (id, _) = schedule_last(&fired)[0];
    let task = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(task["queue"], "nightly", "{task}");
    assert_eq!(task["priority"], 7, "{task}");
    assert_eq!(task["policy"]["retries"], 2, "{task}");
    assert_eq!(task["worker"], "nightly", "{task}");
    assert_eq!(task["result"], 36);
}

/// A paused schedule has no next time and adds nothing while paused, also after a `kill -9`
/// and restart of the coordinator; resumed, it fires again;
/// removed, it is gone from `schedule list` and `schedule show` refuses it, while the tasks it
/// added stay.
#[test]
fn pause_stops_firing_resume_restarts_remove_forgets() {
    pause_resume_remove_on(&[]);
}

/// The same on `--store sled`, whose schedules live in a key space of their own.
#[test]
fn pause_resume_remove_with_sled() {
    pause_resume_remove_on(&["--store", "sled"]);
}

/// The pause, resume and remove test with the coordinator's extra arguments `args`.
fn pause_resume_remove_on(args: &[&str]) {
    let mut cluster = Cluster::start_with_args(args);
    let _w = cluster.start_worker(WorkerSpec::new(1));
    add_every(&cluster, "tick", "1s", 2);
    cluster.wait_fired("tick", 1, FIRE_TIMEOUT);

    cluster.action(&["schedule", "pause", "tick"]).ok();
    let paused = cluster.schedule("tick");
    assert_eq!(paused["paused"], true, "{paused}");
    assert!(
        paused["next_at"].is_null(),
        "no next time while paused: {paused}"
    );
    let fired = schedule_fired(&paused);
    cluster.restart_coordinator(Stop::Kill);
    let paused = cluster.schedule("tick");
    assert_eq!(paused["paused"], true, "the pause is durable: {paused}");
    assert_eq!(schedule_fired(&paused), fired, "{paused}");
    // Nothing can be awaited here, as the point is that nothing happens: 2.5 of its intervals.
    std::thread::sleep(Duration::from_millis(2500));
    let still = cluster.schedule("tick");
    assert_eq!(schedule_fired(&still), fired, "fired while paused: {still}");
    let tasks_while_paused = cluster.list(&[]).len() as u64;
    assert_eq!(tasks_while_paused, fired, "one task per firing");

    cluster.action(&["schedule", "resume", "tick"]).ok();
    assert_eq!(cluster.schedule("tick")["paused"], false);
    let resumed = cluster.wait_fired("tick", fired + 1, FIRE_TIMEOUT);
    let ids: Vec<u64> = schedule_last(&resumed).iter().map(|(id, _)| *id).collect();

    cluster.action(&["schedule", "remove", "tick"]).ok();
    assert!(cluster.schedules().is_empty());
    let refused = cluster.action(&["schedule", "show", "tick"]).failed();
    assert!(refused.one_sentence().contains("tick"), "{refused}");
    for id in ids {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
    for command in ["pause", "resume", "remove"] {
        let refused = cluster.action(&["schedule", command, "tick"]).failed();
        assert!(refused.one_sentence().contains("tick"), "{refused}");
    }
}

/// A cron line with a bad field is refused with one sentence that names the line and the
/// field's position; a good cron line (with and without `--tz`) is accepted with a next time;
/// an unknown time zone and an interval under a second are refused.
#[test]
fn bad_cron_lines_name_the_field_position() {
    let cluster = Cluster::start();
    let square = example("square");
    for (line, position) in [
        ("* * 32 * *", "field 3"),
        ("61 * * * *", "field 1"),
        ("* 25 * * *", "field 2"),
        ("* * * 13 *", "field 4"),
        ("* * * * 8", "field 5"),
    ] {
        let refused = cluster
            .action(&[
                "schedule", "add", "bad", &square, "--cron", line, "--args", "[1]",
            ])
            .failed();
        let sentence = refused.one_sentence();
        assert!(sentence.contains(line), "names the line: {refused}");
        assert!(sentence.contains(position), "names {position}: {refused}");
    }
    let refused = cluster
        .action(&[
            "schedule", "add", "bad", &square, "--cron", "* * *", "--args", "[1]",
        ])
        .failed();
    refused.one_sentence();
    let refused = cluster
        .action(&[
            "schedule",
            "add",
            "bad",
            &square,
            "--cron",
            "0 9 * * *",
            "--tz",
            "Mars/Olympus",
            "--args",
            "[1]",
        ])
        .failed();
    assert!(refused.one_sentence().contains("Mars/Olympus"), "{refused}");
    let refused = cluster
        .action(&[
            "schedule", "add", "bad", &square, "--every", "500ms", "--args", "[1]",
        ])
        .failed();
    refused.one_sentence();
    assert!(cluster.schedules().is_empty(), "nothing was added");

    cluster
        .action(&[
            "schedule",
            "add",
            "nine",
            &square,
            "--cron",
            "0 9 * * *",
            "--tz",
            "Europe/Berlin",
            "--args",
            "[1]",
        ])
        .ok();
    let nine = cluster.schedule("nine");
    assert!(nine["next_at"].as_f64().is_some(), "{nine}");
    assert_eq!(schedule_fired(&nine), 0, "{nine}");
}

/// A schedule name already taken is refused with one sentence naming it, and the first
/// schedule is unchanged.
#[test]
fn a_taken_schedule_name_is_refused() {
    let cluster = Cluster::start();
    add_every(&cluster, "daily", "1h", 1);
    let before = cluster.schedule("daily");
    let refused = cluster
        .action(&[
            "schedule",
            "add",
            "daily",
            &example("noop"),
            "--every",
            "1s",
            "--args",
            "[2]",
        ])
        .failed();
    assert!(refused.one_sentence().contains("daily"), "{refused}");
    let after = cluster.schedule("daily");
    assert_eq!(before, after, "the first schedule is unchanged");
    assert_eq!(cluster.schedules().len(), 1);
}

/// A schedule firing every 2 s whose coordinator is killed (`kill -9`) and kept down for
/// three of its intervals fires once when it starts again, not once per missed firing: the
/// firings after the restart are at most the one catch-up plus one per interval time (counted
/// from when it was added) passed since, and no two of them come in the same moment.
#[test]
fn firings_missed_while_down_run_once_at_start() {
    let interval = 2.0;
    let mut cluster = Cluster::start();
    add_every(&cluster, "tock", "2s", 3);
    let before = cluster.wait_fired("tock", 1, FIRE_TIMEOUT);
    let fired_before = schedule_fired(&before);
    let created_at = before["created_at"].as_f64().expect("a created_at");
    // The times it is due at: created_at + k × interval, k >= 1.
    let due_times_in = |from: f64, to: f64| {
        let k_first = ((from - created_at) / interval).floor() as i64 + 1;
        let k_last = ((to - created_at) / interval).floor() as i64;
        (k_last - k_first + 1).max(0) as u64
    };

    cluster.stop_coordinator(Stop::Kill);
    let killed_at = now();
    // Down for three intervals: the clock passing them is what is awaited.
    std::thread::sleep(Duration::from_secs(6));
    let restarting_at = now();
    cluster.start_coordinator_again();
    let announced_at = now();

    let after = cluster.wait_fired("tock", fired_before + 2, FIRE_TIMEOUT);
    let seen_at = now();
    // The firings since the kill, oldest first, with when each was added.
    let mut new: Vec<(u64, f64)> = schedule_last(&after)
        .into_iter()
        .filter(|(_, at)| *at > killed_at)
        .collect();
    new.sort_by_key(|(id, _)| *id);
    let fired_since = schedule_fired(&after) - fired_before;
    assert_eq!(
        new.len() as u64,
        fired_since,
        "every firing since the kill is listed: {after}"
    );
    assert!(new[0].1 >= restarting_at, "none while it was down: {after}");
    let most = 1 + due_times_in(restarting_at, seen_at);
    assert!(
        fired_since <= most,
        "{fired_since} firings since the restart, more than the catch-up and the {} due \
         since: the missed firings ran more than once: {after}",
        most - 1
    );
    for pair in new.windows(2) {
        assert!(pair[1].1 > pair[0].1, "two firings at one moment: {after}");
    }
    eprintln!(
        "catch-up firing {:.3} s after the coordinator announced its address",
        new[0].1 - announced_at
    );

    // Paused, it adds nothing more: then every task is one of its firings, each once.
    cluster.action(&["schedule", "pause", "tock"]).ok();
    let fired = schedule_fired(&cluster.schedule("tock"));
    assert_eq!(cluster.list(&[]).len() as u64, fired, "one task per firing");

    let _w = cluster.start_worker(WorkerSpec::new(1));
    for (id, _) in new {
        assert_eq!(cluster.wait_completed(id, TASK_TIMEOUT)["result"], 9);
    }
}

/// Seconds since the epoch now.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
