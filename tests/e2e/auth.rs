//! A coordinator with a token (`TATZELWURM_TOKEN`) lets in only the workers and actioners that
//! show it; everyone else is refused with one sentence that says what to set.

use crate::TASK_TIMEOUT;
use tatzelwurm_e2e::actionwurm;
use tatzelwurm_e2e::{example, Cluster, ClusterOptions, WorkerSpec};
use tatzelwurm_proto::TOKEN_ENV;

const TOKEN: &str = "s3cret-for-this-test";

/// With a token set, the CLI without it or with another one is refused in one sentence naming
/// `TATZELWURM_TOKEN`, and so is a worker, which exits non-zero; with the token, tasks are added
/// and run as usual.
#[test]
fn only_peers_with_the_token_get_in() {
    let cluster = Cluster::start_with(ClusterOptions {
        token: Some(TOKEN.into()),
        ..ClusterOptions::default()
    });
    for (env, says) in [
        (vec![], "requires a token"),
        (vec![(TOKEN_ENV, "guess")], "does not match"),
    ] {
        let refused = actionwurm::run(
            &cluster.bins().actionwurm,
            Some(cluster.addr()),
            &["task", "list"],
            &env,
            TASK_TIMEOUT,
            None,
        )
        .failed();
        let sentence = refused.one_sentence();
        assert!(
            sentence.contains(says) && sentence.contains(TOKEN_ENV),
            "{refused}"
        );
    }

    let mut intruder =
        cluster.spawn_worker(WorkerSpec::new(1).name("intruder").env(TOKEN_ENV, "guess"));
    let status = intruder
        .proc
        .wait_exit(TASK_TIMEOUT)
        .expect("a refused worker exits");
    assert!(!status.success(), "a refused worker exits non-zero");
    assert!(
        intruder.proc.log_tails().contains("does not match"),
        "{}",
        intruder.proc.log_tails()
    );

    let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let id = cluster.add(&example("square"), "[9]");
    let task = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(
        (&task["result"], &task["worker"]),
        (&serde_json::json!(81), &serde_json::json!("w1"))
    );
    assert_eq!(cluster.workers().len(), 1, "only w1 is connected");
    assert!(
        !cluster.coordinator_log().contains(TOKEN),
        "the coordinator logged the token"
    );
}
