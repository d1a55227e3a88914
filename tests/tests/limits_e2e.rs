//! DingTalk's limits (docs/dingtalk-api.md §G.1, §G.3, §D.6) — the per-app, per-API rate limit,
//! the egress-IP ban, the monthly quota and the per-person daily rules — against the call
//! governor, the quota hold and the recipient screen, end to end: dev mode and the emulator on
//! 127.0.0.1:0 with the real limits — e.g. the emulator answers a 21st call in one second with
//! 90018 and does nothing — so the tests can tell a paced burst from a throttled one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tests::emulator::IpBanRule;
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};

const ASYNCSEND: &str = "/topapi/message/corpconversation/asyncsend_v2";

/// Posts `count` messages at once, one user each, each with its own content.
async fn burst(stack: &Stack, tag: &str, count: usize) {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..count {
        let (client, base) = (client.clone(), stack.base_url.clone());
        let body = json!({
            "recipients": {"userids": [format!("user{:04}", i % 400 + 1)]},
            "body": {"msgtype": "text", "text": {"content": format!("{tag} #{i}")}},
        });
        tasks.push(tokio::spawn(async move {
            client.post(format!("{base}/api/messages")).bearer_auth(SERVICE_TOKEN).json(&body).send().await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
    }
}

/// Waits until the emulator has delivered `count` work notifications.
async fn delivered(stack: &Stack, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while stack.emulator.state().sends().len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} messages delivered in {within:?}",
            stack.emulator.state().sends().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/messages?{query}` as the calling service.
async fn messages(stack: &Stack, query: &str) -> Vec<serde_json::Value> {
    let res = reqwest::Client::new()
        .get(format!("{}/api/messages?{query}", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The most `asyncsend_v2` calls the emulator received within any 1,000 ms.
fn busiest_second(stack: &Stack) -> usize {
    let times: Vec<i64> =
        stack.emulator.state().calls().iter().filter(|c| c.path == ASYNCSEND).map(|c| c.at_ms).collect();
    times.iter().map(|t| times.iter().filter(|u| **u >= *t && **u < *t + 1000).count()).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_is_paced_under_dingtalks_limit_and_never_throttled() {
    let stack = Stack::start(StackOptions { unpaced: false, ..StackOptions::ephemeral() }).await.expect("stack starts");
    let rate = stack.config.governor.rate_per_second;
    assert!((rate - 18.0).abs() < f64::EPSILON, "the default pace is 18 calls/s");
    let started = Instant::now();
    burst(&stack, "paced", 72).await;
    delivered(&stack, 72, Duration::from_secs(30)).await;
    let elapsed = started.elapsed();
    let limits = stack.emulator.state().limits_report();
    assert_eq!(limits.qps, Some(20), "the emulator enforces DingTalk's 20 calls/s");
    assert_eq!(limits.throttled, 0, "no call was refused with 90018");
    assert!(limits.busiest_window <= 20, "{limits:?}");
    // Paced at 18 calls/s; any 1,000 ms at the emulator (ms timestamps, arrival jitter) stays
    // within DingTalk's 20.
    let busiest = busiest_second(&stack);
    assert!(busiest <= 20, "{busiest} sends within one second");
    // 72 sends at 18/s take at least 71/18 s: the burst was queued, not sent at once.
    assert!(elapsed >= Duration::from_millis(3900), "{elapsed:?}");
    assert_eq!(stack.emulator.state().calls_to(ASYNCSEND), 72, "each message was sent once");
    eprintln!("paced burst: 72 messages in {elapsed:?}, busiest second {busiest} sends, emulator {limits:?}");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_calls_are_paced_retried_and_delivered_once() {
    // A governor set far above DingTalk's limit meets the emulator's 90018 answers: each pauses
    // the lane and the call is made again; nothing is lost and nothing is sent twice.
    let stack = Stack::start(StackOptions { unpaced: false, ..StackOptions::ephemeral() }).await.expect("stack starts");
    stack.emulator.state().set_qps_limit(Some(8));
    let mut stack = stack;
    stack.config.governor.rate_per_second = 1000.0;
    stack.restart_in_place().await.expect("restart with the fast governor");
    burst(&stack, "throttled", 40).await;
    delivered(&stack, 40, Duration::from_secs(60)).await;
    let limits = stack.emulator.state().limits_report();
    assert!(limits.throttled > 0, "the emulator throttled some calls: {limits:?}");
    assert!(limits.busiest_window <= 8, "{limits:?}");
    let sends = stack.emulator.state().sends();
    assert_eq!(sends.len(), 40, "every message delivered exactly once");
    eprintln!("throttled burst: 40 messages delivered once, emulator {limits:?}");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_monthly_quota_messages_wait_and_go_out_after_the_month_turns() {
    let stack = Stack::start(StackOptions::ephemeral()).await.expect("stack starts");
    let corp_id = stack.config.dingtalk.corp_id.clone().expect("corp");
    let emulator = stack.emulator.state();
    // docs/dingtalk-api.md §G.3: 90020 once the org's metered calls for the month are gone.
    emulator.set_monthly_quota(Some(3));
    burst(&stack, "quota", 5).await;
    delivered(&stack, 3, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bootstrap::quota_figures(&stack.config).await.expect("figures").iter().any(|f| f.exhausted) {
        assert!(Instant::now() < deadline, "the cloud never saw 90020");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let figures = bootstrap::quota_figures(&stack.config).await.expect("figures");
    assert_eq!(figures[0].corp_id, corp_id);
    assert_eq!((figures[0].metered_calls, figures[0].remaining, figures[0].exhausted), (3, 4_997, true));
    // The two messages over quota wait; none failed. While the mark stands no metered call is made.
    let refused_once = emulator.limits_report().over_quota;
    assert!(refused_once >= 1);
    let failed = messages(&stack, "status=failed").await;
    assert!(failed.is_empty(), "{failed:?}");
    // Local says why they wait (the cloud's receipt carries the reason).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = messages(&stack, "limit=10").await;
        let waiting: Vec<&str> =
            listed.iter().filter_map(|m| m["error"].as_str()).filter(|e| e.contains("90020")).collect();
        if waiting.len() == 2 {
            assert!(waiting.iter().all(|e| e.contains("monthly") && e.contains("quota")), "{waiting:?}");
            // …as a machine code, with when local asks next (README "Local API").
            let held: Vec<_> = listed.iter().filter(|m| m["waiting"] == "waiting_quota").collect();
            assert_eq!(held.len(), 2, "{listed:?}");
            assert!(held.iter().all(|m| m["next_attempt_at"].is_string()), "{held:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the waiting reason never showed: {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // outbox retries come and go meanwhile
    assert_eq!(emulator.limits_report().over_quota, refused_once, "no metered call while exhausted");
    assert_eq!(emulator.sends().len(), 3);
    // The month turns at DingTalk; the operator lets sending go again (`dingbridge quota resume`).
    emulator.advance_clock(32 * 24 * 3600);
    bootstrap::resume_quota(&stack.config, &corp_id).await.expect("resume");
    delivered(&stack, 5, Duration::from_secs(60)).await;
    assert_eq!(emulator.sends().len(), 5, "each message delivered once");
    eprintln!("quota: 3 delivered, {refused_once} call(s) refused with 90020, 2 waited, 5 delivered after resume");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ip_ban_pauses_every_call_for_its_length_and_nothing_is_lost_or_sent_twice() {
    // docs/dingtalk-api.md §G.1: past 10,000 calls from one egress IP in 20 s, DingTalk refuses
    // every call from it for 5 minutes with `{"status":1111,"wait":5,…}`. The emulator models the
    // rule, shrunk here to 30 calls in 20 s and a 1-minute ban so the test waits one minute.
    let stack = Stack::start(StackOptions { unpaced: false, ..StackOptions::ephemeral() }).await.expect("stack starts");
    let emulator = stack.emulator.state();
    emulator.set_ip_ban(Some(IpBanRule { calls: 30, window_secs: 20, ban_minutes: 1 }));
    let started = Instant::now();
    burst(&stack, "banned", 40).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while emulator.limits_report().ip_bans == 0 {
        assert!(Instant::now() < deadline, "40 messages never made 30 calls: {:?}", emulator.limits_report());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let banned_at = Instant::now();
    // Local says why the rest wait, as a machine code with when it asks next; none failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = messages(&stack, "limit=50").await;
        let held: Vec<_> = listed.iter().filter(|m| m["waiting"] == "ip_banned").collect();
        if !held.is_empty() {
            assert!(held.iter().all(|m| m["next_attempt_at"].is_string()), "{held:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the ban never showed at local: {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(messages(&stack, "status=failed").await.is_empty(), "a ban fails nothing");
    let sent_before_ban = emulator.sends().len();
    assert!(sent_before_ban < 40, "the ban came before the end of the burst");
    delivered(&stack, 40, Duration::from_secs(120)).await;
    let report = emulator.limits_report();
    // Every call waited out the ban: no second ban, and only the calls already on their way when
    // the first refusal came back were refused (a sender retrying through the ban would have been
    // refused every half second for a minute).
    assert_eq!(report.ip_bans, 1, "{report:?}");
    assert!(report.ip_ban_refused <= 3, "calls kept coming during the ban: {report:?}");
    assert!(banned_at.elapsed() >= Duration::from_secs(55), "delivery resumed before the ban ended");
    assert_eq!(emulator.sends().len(), 40, "each message delivered exactly once");
    assert!(messages(&stack, "status=failed").await.is_empty());
    eprintln!(
        "ip ban: {sent_before_ban} sent before the ban, {} call(s) refused, 40 delivered once in {:?}",
        report.ip_ban_refused,
        started.elapsed()
    );
    stack.stop_and_clean().await;
}

/// Posts one message and returns its id.
async fn post(stack: &Stack, body: &serde_json::Value) -> String {
    let res = reqwest::Client::new()
        .post(format!("{}/api/messages", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// `GET /api/messages/{id}` once its state is one of `states`.
async fn settled(stack: &Stack, id: &str, states: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = reqwest::Client::new()
            .get(format!("{}/api/messages/{id}", stack.base_url))
            .bearer_auth(SERVICE_TOKEN)
            .send()
            .await
            .unwrap();
        let message: serde_json::Value = res.json().await.unwrap();
        if states.contains(&message["state"].as_str().unwrap_or_default()) {
            return message;
        }
        assert!(Instant::now() < deadline, "message {id} never reached {states:?}: {message}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_500_a_day_a_person_is_skipped_and_reported_never_silently_dropped() {
    // docs/dingtalk-api.md §D.6: past 500 work notifications a day from one app, DingTalk answers
    // success and the person gets nothing (the emulator models exactly that).
    let stack = Stack::start(StackOptions::ephemeral()).await.expect("stack starts");
    let client = reqwest::Client::new();
    let mut posts = Vec::new();
    for i in 0..500 {
        let (client, base) = (client.clone(), stack.base_url.clone());
        let body = json!({"recipients": {"userids": ["user0001"]}, "body": {"msgtype": "text", "text": {"content": format!("daily #{i}")}}});
        posts.push(tokio::spawn(async move {
            client.post(format!("{base}/api/messages")).bearer_auth(SERVICE_TOKEN).json(&body).send().await
        }));
    }
    for post in posts {
        assert_eq!(post.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
    }
    delivered(&stack, 500, Duration::from_secs(120)).await;
    let body = json!({"recipients": {"userids": ["user0001", "user0002"]}, "body": {"msgtype": "text", "text": {"content": "daily #500"}}});
    let id = post(&stack, &body).await;
    let message = settled(&stack, &id, &["sent", "completed"]).await;
    assert_eq!(message["task_ids"].as_array().map(Vec::len), Some(1), "{message}");
    let status = settled(&stack, &id, &["sent", "completed"]).await;
    let recipients = status["delivery"]["recipients"].as_array().expect("per-recipient status");
    assert!(
        recipients.contains(&json!({"userid": "user0001", "outcome": "skipped", "code": "daily_limit"})),
        "{recipients:?}"
    );
    assert!(recipients.contains(&json!({"userid": "user0002", "outcome": "unread"})), "{recipients:?}");
    // DingTalk never silently dropped anything: every recipient it was given got the message.
    let sends = stack.emulator.state().sends();
    assert_eq!(sends.len(), 501);
    assert!(sends.iter().all(|s| s.outcome.forbidden_list.is_empty()), "a send was silently dropped");
    assert_eq!(sends.iter().filter(|s| s.userid_list.contains(&"user0001".to_owned())).count(), 500);
    eprintln!("daily limit: 500 delivered to user0001, the 501st skipped and reported as daily_limit");
    stack.stop_and_clean().await;
}
