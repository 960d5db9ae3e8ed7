//! Log forwarding through the real plugin binary: a task prints numbered lines and every line
//! must reach the task's FIFO exactly once (across a SIGKILL, at least once: the chunk in
//! flight at the kill may come again), across a SIGKILLed plugin, a broken log stream, an
//! adoption on StartTask, an exit while the plugin was down, a destroy right after the exit and
//! a FIFO reader that goes away and comes back.

use std::time::{Duration, Instant};

use nomad_plugin::proto::drivers as pb;

use crate::harness::{FifoLog, Launch, TaskDirs, configured_plugin};
use crate::lifecycle::{destroy, start, stop, task_config, wait};
use crate::recover::recover_request;
use crate::support::fault_proxy::{DOCKER_SOCKET, FaultMode, FaultProxy};
use crate::support::{TestContainers, docker_with_image};

mod readers;
use readers::{GatedReader, ReopeningReader};

/// Numbered lines on stdout and stderr until SIGTERM, then `end` on stdout.
const COUNTER: &str = "trap 'echo end; exit 0' TERM; i=0; \
     while true; do i=$((i+1)); echo out-$i; echo err-$i >&2; sleep 0.02; done";

/// The numbers of the lines `<prefix><n>` in `text`, in order.
fn numbers(text: &str, prefix: &str) -> Vec<u64> {
    // A TTY ends its lines with "\r\n".
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(prefix))
        .map(|n| n.parse().unwrap_or_else(|_| panic!("bad line {prefix}{n}")))
        .collect()
}

/// Asserts the lines `<prefix><n>` are exactly 1, 2, … `at_least` or more: none lost, none
/// repeated, none out of order.
fn assert_complete(text: &str, prefix: &str, at_least: u64) {
    let got = numbers(text, prefix);
    let want: Vec<u64> = (1..=got.len() as u64).collect();
    if got != want {
        let first_bad = got
            .iter()
            .zip(&want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        let from = first_bad.saturating_sub(3);
        panic!(
            "{prefix}: {} lines, first wrong at index {first_bad}: got {:?}",
            got.len(),
            &got[from..(from + 8).min(got.len())]
        );
    }
    assert!(
        got.len() as u64 >= at_least,
        "{prefix}: only {} lines",
        got.len()
    );
}

/// Most lines one delivered chunk of the counter holds in these tests, with room to spare: the
/// counter prints a line every 20 ms and the forwarder writes what has arrived.
const MAX_CHUNK_LINES: u64 = 200;

/// As [`assert_complete`], for a plugin SIGKILLed while it forwarded: the chunk it had
/// delivered but not yet recorded (see `tasks::log_position`) may come once more after the
/// lines before it — one rewind of at most [`MAX_CHUNK_LINES`], never a gap.
fn assert_complete_across_a_kill(text: &str, prefix: &str, at_least: u64) {
    let mut got = numbers(text, prefix);
    if let Some(i) = (1..got.len()).find(|&i| got[i] <= got[i - 1]) {
        let repeated = got[i - 1] - got[i] + 1;
        assert!(
            repeated <= MAX_CHUNK_LINES && got[i] >= 1,
            "{prefix}: a rewind of {repeated} lines at index {i}: {:?}",
            &got[i.saturating_sub(3)..(i + 5).min(got.len())]
        );
        let again = usize::try_from(repeated).expect("small");
        assert_eq!(
            got[i..(i + again).min(got.len())],
            got[i - again..i],
            "{prefix}: what came again at index {i} is not the chunk before it"
        );
        got.drain(i..(i + again).min(got.len()));
    }
    let lines: Vec<String> = got.iter().map(|n| format!("{prefix}{n}")).collect();
    assert_complete(&lines.join("\n"), prefix, at_least);
}

/// Waits until `log` holds the line `out-<n>` for some n >= `min`.
async fn wait_for_out(log: &FifoLog, min: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if numbers(&log.text(), "out-")
            .last()
            .is_some_and(|n| *n >= min)
        {
            return;
        }
        assert!(Instant::now() < deadline, "no out-{min} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The task `counter` running [`COUNTER`], and its directories.
fn counter_task(guard: &TestContainers) -> (TaskDirs, pb::TaskConfig) {
    let dirs = TaskDirs::create("counter");
    let task = task_config(guard, &dirs, "counter", COUNTER, Vec::new());
    (dirs, task)
}

/// Starts `task` in a plugin of its own, waits for `out-20` and SIGKILLs that plugin: the
/// task runs on with no plugin.
async fn start_then_crash_the_plugin(
    task: pb::TaskConfig,
    dirs: &TaskDirs,
) -> pb::StartTaskResponse {
    let mut plugin = configured_plugin().await;
    let started = start(&mut plugin.driver(), task).await.expect("StartTask");
    wait_for_out(&dirs.stdout, 20, Duration::from_secs(20)).await;
    plugin.crash().await;
    started
}

/// Stops the counter with SIGTERM and waits until its `end` line is forwarded.
async fn finish(
    driver: &mut pb::driver_client::DriverClient<tonic::transport::Channel>,
    id: &str,
    dirs: &TaskDirs,
) {
    stop(driver, id, "SIGTERM").await;
    assert_eq!(
        wait(driver, id)
            .await
            .expect("WaitTask")
            .result
            .expect("result")
            .exit_code,
        0
    );
    assert!(
        dirs.stdout.wait_for("end", Duration::from_secs(20)).await,
        "the last line is forwarded"
    );
}

#[tokio::test]
async fn logs_survive_a_sigkilled_plugin_without_loss() {
    across_sigkill("logs_across_sigkill", Vec::new(), true).await;
}

#[tokio::test]
async fn tty_logs_survive_a_sigkilled_plugin_without_loss() {
    // A TTY merges stderr into stdout and its log stream is not multiplexed.
    across_sigkill(
        "logs_across_sigkill_tty",
        vec![("tty", rmpv::Value::from(true))],
        false,
    )
    .await;
}

/// Runs the counter, SIGKILLs the plugin for a few seconds, recovers the task in a new plugin
/// and checks every line arrived, in order, once (bar the chunk in flight at the kill).
async fn across_sigkill(case: &str, extra: Vec<(&str, rmpv::Value)>, check_stderr: bool) {
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("counter");
    let script = if check_stderr {
        COUNTER.to_owned()
    } else {
        COUNTER.replace(" echo err-$i >&2;", "")
    };
    let task = task_config(&guard, &dirs, "counter", &script, extra);
    let id = task.id.clone();

    let saved = start_then_crash_the_plugin(task, &dirs)
        .await
        .handle
        .expect("handle");
    let down_at = numbers(&dirs.stdout.text(), "out-").len() as u64;
    // The task keeps printing while no plugin is there.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let plugin_b = configured_plugin().await;
    let mut driver = plugin_b.driver();
    driver
        .recover_task(recover_request(&saved))
        .await
        .expect("RecoverTask");
    wait_for_out(&dirs.stdout, down_at + 150, Duration::from_secs(30)).await;
    finish(&mut driver, &id, &dirs).await;
    let (out, err) = (dirs.stdout.text(), dirs.stderr.text());
    assert_complete_across_a_kill(&out, "out-", down_at + 150);
    if check_stderr {
        assert_complete_across_a_kill(&err, "err-", down_at + 150);
    }
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[tokio::test]
async fn a_broken_log_stream_resumes_where_it_broke() {
    let case = "logs_stream_break";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let (dirs, task) = counter_task(&guard);
    let id = task.id.clone();

    let proxy = FaultProxy::start(DOCKER_SOCKET);
    let plugin = Launch::nomad()
        .env("DOCKER_HOST", &proxy.endpoint())
        .start_configured(Vec::new())
        .await;
    let mut driver = plugin.driver();
    start(&mut driver, task).await.expect("StartTask");
    wait_for_out(&dirs.stdout, 20, Duration::from_secs(20)).await;
    // Cut the log stream (and every call made meanwhile) for a while.
    proxy.set_mode(FaultMode::Truncate);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_mode(FaultMode::Pass);
    let broke_at = numbers(&dirs.stdout.text(), "out-").len() as u64;
    wait_for_out(&dirs.stdout, broke_at + 150, Duration::from_secs(30)).await;
    finish(&mut driver, &id, &dirs).await;
    assert_complete(&dirs.stdout.text(), "out-", broke_at + 150);
    assert_complete(&dirs.stderr.text(), "err-", broke_at + 150);
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[tokio::test]
async fn a_container_adopted_on_start_task_does_not_replay_its_history() {
    let case = "logs_adopted";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let (dirs, task) = counter_task(&guard);
    let id = task.id.clone();

    start_then_crash_the_plugin(task.clone(), &dirs).await;

    // The agent never got the handle and starts the task again: the running container with
    // the task's name is adopted. Its forwarder continues after what was delivered.
    let plugin_b = configured_plugin().await;
    let mut driver = plugin_b.driver();
    start(&mut driver, task).await.expect("StartTask adopts");
    assert_eq!(guard.remaining().await.len(), 1, "adopted, not recreated");
    let adopted_at = numbers(&dirs.stdout.text(), "out-").len() as u64;
    wait_for_out(&dirs.stdout, adopted_at + 100, Duration::from_secs(30)).await;
    finish(&mut driver, &id, &dirs).await;
    assert_complete_across_a_kill(&dirs.stdout.text(), "out-", adopted_at + 100);
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[tokio::test]
async fn an_adopted_container_without_a_saved_position_starts_from_now() {
    let case = "logs_adopted_from_now";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let (dirs, task) = counter_task(&guard);
    let id = task.id.clone();

    start_then_crash_the_plugin(task.clone(), &dirs).await;
    let position = dirs
        .alloc_dir
        .join("counter")
        .join(".dockhand-log-position");
    assert!(
        position.exists(),
        "the forwarder keeps its position in the task dir"
    );
    std::fs::remove_file(&position).expect("remove position");

    let plugin_b = configured_plugin().await;
    let mut driver = plugin_b.driver();
    start(&mut driver, task).await.expect("StartTask adopts");
    let before = numbers(&dirs.stdout.text(), "out-").len();
    finish(&mut driver, &id, &dirs).await;
    let got = numbers(&dirs.stdout.text(), "out-");
    assert_complete(
        &got[..before]
            .iter()
            .map(|n| format!("out-{n}\n"))
            .collect::<String>(),
        "out-",
        20,
    );
    // Nothing of the container's history is replayed: after the adoption the numbers go on
    // upwards from somewhere past what was delivered.
    let after = &got[before..];
    assert!(
        after.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous after adoption: {after:?}"
    );
    assert!(
        after.first().is_none_or(|n| *n > got[before - 1]),
        "history replayed: {:?}",
        &after[..after.len().min(5)]
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[tokio::test]
async fn a_task_that_exited_while_the_plugin_was_down_delivers_its_last_output() {
    let case = "logs_exit_while_down";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("brief");
    let script = "echo first; sleep 2; echo last-words; echo oops >&2; exit 3";
    let task = task_config(&guard, &dirs, "brief", script, Vec::new());
    let id = task.id.clone();

    let mut plugin_a = configured_plugin().await;
    let saved = start(&mut plugin_a.driver(), task)
        .await
        .expect("StartTask")
        .handle
        .expect("handle");
    assert!(
        dirs.stdout
            .wait_for("first\n", Duration::from_secs(20))
            .await
    );
    plugin_a.crash().await;
    let containers = guard.remaining().await;
    assert_eq!(containers.len(), 1);
    assert_eq!(
        docker.wait_container(&containers[0]).await.expect("wait"),
        3
    );
    assert!(!dirs.stdout.text().contains("last-words"));

    let plugin_b = configured_plugin().await;
    let mut driver = plugin_b.driver();
    driver
        .recover_task(recover_request(&saved))
        .await
        .expect("RecoverTask");
    assert_eq!(
        wait(&mut driver, &id)
            .await
            .expect("WaitTask")
            .result
            .expect("result")
            .exit_code,
        3
    );
    assert!(
        dirs.stdout
            .wait_for("last-words\n", Duration::from_secs(20))
            .await,
        "output written while the plugin was down is delivered"
    );
    assert!(
        dirs.stderr
            .wait_for("oops\n", Duration::from_secs(20))
            .await
    );
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
    assert_eq!(dirs.stdout.text(), "first\nlast-words\n", "nothing twice");
}

#[tokio::test]
async fn destroy_lets_a_lagging_forwarder_deliver_the_last_lines() {
    let case = "logs_destroy_drain";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("burst");
    // The reader stalls, so the forwarder is still far behind when the task has exited.
    let reader = GatedReader::create(
        &dirs
            .alloc_dir
            .join("alloc")
            .join("logs")
            .join(".gated.fifo"),
    );
    let mut task = task_config(
        &guard,
        &dirs,
        "burst",
        "seq 1 20000 | sed 's/^/out-/'",
        Vec::new(),
    );
    task.stdout_path = reader.path.to_string_lossy().into_owned();
    let id = task.id.clone();

    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    start(&mut driver, task).await.expect("StartTask");
    assert_eq!(
        wait(&mut driver, &id)
            .await
            .expect("WaitTask")
            .result
            .expect("result")
            .exit_code,
        0
    );
    // Garbage collection removes the container, and its output with it. (20000 lines stay
    // under the default json-file max-size, so none are rotated away before they are read.)
    let mut destroyer = plugin.driver();
    let destroy_id = id.clone();
    let destroying = tokio::spawn(async move { destroy(&mut destroyer, &destroy_id, false).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    reader.open();
    destroying.await.expect("join").expect("DestroyTask");
    assert!(guard.remaining().await.is_empty());
    // Give the reader a moment to drain what is already in the pipe.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !reader.text().contains("out-20000\n") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if numbers(&reader.text(), "out-").len() < 20000 {
        for l in plugin.stderr_lines() {
            eprintln!("PLUGIN {l}");
        }
    }
    assert_complete(&reader.text(), "out-", 20000);
}

#[tokio::test]
async fn a_failed_fifo_write_reopens_the_fifo() {
    let case = "logs_fifo_reopen";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let (dirs, mut task) = counter_task(&guard);
    let reader = ReopeningReader::create(
        &dirs
            .alloc_dir
            .join("alloc")
            .join("logs")
            .join(".restarting.fifo"),
        10,
        Duration::from_secs(1),
    );
    task.stdout_path = reader.path.to_string_lossy().into_owned();
    let id = task.id.clone();

    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    start(&mut driver, task).await.expect("StartTask");
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        if let Some(after) = reader.after_reopen()
            && numbers(&after, "out-").len() >= 50
        {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "no output after the reader came back: {:?}",
            reader.text().lines().last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let got = numbers(&after, "out-");
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous after the reopen: {got:?}"
    );
    assert!(got[0] > 10);
    stop(&mut driver, &id, "SIGTERM").await;
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[tokio::test]
async fn a_log_driver_that_cannot_be_read_stops_the_forwarder_with_one_warning() {
    let case = "logs_unreadable_driver";
    let Some(docker) = docker_with_image(case).await else {
        return;
    };
    let guard = TestContainers::new(&docker, case).await;
    let dirs = TaskDirs::create("quiet");
    let logging = rmpv::Value::Map(vec![(rmpv::Value::from("type"), rmpv::Value::from("none"))]);
    let task = task_config(&guard, &dirs, "quiet", COUNTER, vec![("logging", logging)]);
    let id = task.id.clone();

    let plugin = configured_plugin().await;
    let mut driver = plugin.driver();
    start(&mut driver, task).await.expect("StartTask");
    let warning = "the container's log driver cannot be read; its output is not forwarded";
    assert!(
        plugin.wait_for_log(warning, Duration::from_secs(10)).await,
        "{}",
        plugin.stderr_lines().join("\n")
    );
    // Not retried: one warning, however long the task runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(plugin.count_logs(warning), 1);
    stop(&mut driver, &id, "SIGTERM").await;
    destroy(&mut driver, &id, true).await.expect("DestroyTask");
}

#[test]
fn a_repeated_chunk_at_a_kill_passes_and_nothing_else_does() {
    let lines = |ns: &[u64]| ns.iter().map(|n| format!("out-{n}\n")).collect::<String>();
    assert_complete_across_a_kill(&lines(&[1, 2, 3, 4]), "out-", 4);
    assert_complete_across_a_kill(&lines(&[1, 2, 3, 2, 3, 4]), "out-", 4);
    for bad in [
        &[1, 2, 4][..],          // a gap
        &[1, 2, 3, 3, 2, 3][..], // what came again is not the chunk before it
        &[1, 2, 3, 2, 3, 2, 3][..],
        &[2, 3][..], // lost from the start
    ] {
        let text = lines(bad);
        let result = std::panic::catch_unwind(|| assert_complete_across_a_kill(&text, "out-", 1));
        assert!(result.is_err(), "{bad:?} passed");
    }
}
