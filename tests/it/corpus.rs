//! Every case of the decoder corpus (`tests/data/luna.jsonl`) through exactly the
//! path the server uses: frame → redact → parse → decode, with the shipped decoders; CloudHSM records through the
//! import path with its sequence check. Every `expect` field, every `expect_also` event and every `must_not_contain`
//! string is checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hsmwatch::decode::cloudhsm::SequenceTracker;
use hsmwatch::decode::{Decoders, Origin};
use hsmwatch::event::Event;
use hsmwatch::frame::Framer;
use hsmwatch::ingest::frame_to_event;
use hsmwatch::pack::RuleSource;
use serde_json::Value;

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/luna.jsonl")
}

fn origin(case: &Value) -> Origin {
    Origin {
        received: case["received"].as_str().unwrap().parse().unwrap(),
        source_address: "192.0.2.10:514".into(),
        peer_ip: Some("192.0.2.10".parse().unwrap()),
        default_host: None,
        time_rules: Default::default(),
    }
}

/// The events the server stores for a syslog frame: exactly one frame, one event.
fn through_server_path(wire: &str, origin: &Origin, decoders: &Decoders) -> Result<Event, String> {
    let mut framer = Framer::new(64 * 1024);
    framer.push(wire.as_bytes());
    framer.push(b"\n");
    let mut events = Vec::new();
    while let Some(frame) = framer.next_frame().map_err(|e| e.to_string())? {
        events.push(frame_to_event(frame.bytes, frame.truncated, origin, decoders));
    }
    if events.len() != 1 {
        return Err(format!("framed into {} events", events.len()));
    }
    Ok(events.remove(0))
}

fn check_fields(event: &Event, expect: &serde_json::Map<String, Value>) -> Vec<String> {
    let fields = event.all_fields();
    let mut problems = Vec::new();
    for (name, want) in expect {
        let got = fields.get(name.as_str());
        match (want, got) {
            (Value::Null, None) => {}
            (Value::Null, Some(got)) => problems.push(format!("{name}: expected absent, got {got:?}")),
            (Value::String(want), Some(got)) if want == got => {}
            (want, got) => problems.push(format!("{name}: expected {want}, got {got:?}")),
        }
    }
    problems
}

fn secrets_absent(events: &[Event], secrets: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for secret in secrets.iter().filter_map(Value::as_str) {
        for event in events {
            for (name, value) in event.all_fields() {
                if value.contains(secret) {
                    problems.push(format!("secret {secret:?} in {name}"));
                }
            }
            if event.raw.as_ref().is_some_and(|raw| raw.windows(secret.len()).any(|w| w == secret.as_bytes())) {
                problems.push(format!("secret {secret:?} in the raw bytes"));
            }
        }
    }
    problems
}

#[test]
fn every_corpus_case_decodes_as_expected() {
    let decoders = Decoders::load(&RuleSource::Dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")))
        .expect("shipped decoders load");
    let text = std::fs::read_to_string(corpus_path()).expect("corpus readable");
    let cases: Vec<Value> =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    let cloudhsm = decoders.cloudhsm().expect("the shipped decoders define the CloudHSM tables");
    let mut streams: BTreeMap<String, SequenceTracker> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let wire = case["wire"].as_str().unwrap();
        let origin = origin(case);
        let expect = case["expect"].as_object().unwrap();
        let is_cloudhsm = expect.get("log.syslog.format").and_then(Value::as_str) == Some("cloudhsm_audit");
        let (event, extra) = if is_cloudhsm {
            let event = cloudhsm.decode(wire, &origin);
            let key = case["stream"].as_str().map_or_else(|| format!("single:{id}"), str::to_owned);
            let extra: Vec<Event> = streams.entry(key).or_default().observe(&event).into_iter().collect();
            (event, extra)
        } else {
            match through_server_path(wire, &origin, &decoders) {
                Ok(event) => (event, Vec::new()),
                Err(error) => {
                    failures.push(format!("{id}: {error}"));
                    continue;
                }
            }
        };
        let mut problems = check_fields(&event, expect);
        let also = case["expect_also"].as_array().cloned().unwrap_or_default();
        if also.len() != extra.len() {
            problems.push(format!("expected {} extra events, got {}: {extra:?}", also.len(), extra.len()));
        }
        for (want, got) in also.iter().zip(&extra) {
            problems
                .extend(check_fields(got, want.as_object().unwrap()).into_iter().map(|p| format!("extra event: {p}")));
        }
        let mut all = vec![event];
        all.extend(extra);
        problems.extend(secrets_absent(&all, case["must_not_contain"].as_array().map_or(&[][..], Vec::as_slice)));
        if !problems.is_empty() {
            failures.push(format!("{id} ({wire:?}):\n    {}", problems.join("\n    ")));
        }
    }
    println!("corpus: {} of {} cases pass", cases.len() - failures.len(), cases.len());
    assert!(failures.is_empty(), "{} of {} corpus cases fail:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
