use super::*;

fn load(text: &str) -> Result<Loaded, Vec<String>> {
    compile_files(&[("r.yaml".to_owned(), text.to_owned())]).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn errors(text: &str) -> Vec<String> {
    load(text).err().unwrap_or_default()
}

const RULE: &str =
    "id: r1\ntitle: T\nseverity: high\nselect:\n  failed:\n    event.action: hsm.login\n    event.outcome: failure\n";

#[test]
fn documents_and_lists_load_with_their_lines() {
    let text = format!(
        "lists:\n  admins: [alice, bob]\n---\n{RULE}---\n# only a comment\n---\n{}",
        RULE.replace("r1", "r2").replace("hsm.login", "ssh.login")
    );
    let loaded = load(&text).unwrap();
    assert_eq!(loaded.rules.len(), 2);
    assert_eq!((loaded.rules[0].line, loaded.rules[1].line), (4, 14));
    assert!(loaded.lists.contains_key("admins"));
    assert_eq!(loaded.rules[1].possible_actions(), Some(vec!["ssh.login".into()]));
}

#[test]
fn mistakes_name_file_line_and_hint() {
    let cases = [
        (
            RULE.replace("event.outcome", "event.outcom"),
            "r.yaml:7: rule `r1`: selection `failed`: unknown field `event.outcom` (did you mean `event.outcome`?)",
        ),
        (
            format!("{RULE}condition: faild\n"),
            "r.yaml:8: rule `r1`: condition: unknown selection `faild` (did you mean `failed`?)",
        ),
        (format!("{RULE}notfy: [x]\n"), "r.yaml:8: unknown field `notfy`"),
        (
            format!("{RULE}detect: {{type: threshold, count: 5, window: 5m, group_by: [host.nme]}}\n"),
            "r.yaml:8: rule `r1`: unknown field `host.nme` (did you mean `host.name`?)",
        ),
        (
            format!("{RULE}message:\n  title: \"{{{{ cout }}}} failures\"\n"),
            "r.yaml:9: rule `r1`: message title: unknown variable `cout` (did you mean `count`?)",
        ),
        (
            format!("{RULE}message:\n  body: \"{{{{ event['user.nam'] }}}}\"\n"),
            "r.yaml:9: rule `r1`: message body: event has no field `user.nam` (did you mean `user.name`?)",
        ),
        (
            format!("{RULE}message:\n  body: \"{{{{ group['host.name'] }}}}\"\n"),
            "r.yaml:9: rule `r1`: message body: `host.name` is not a group_by field",
        ),
        (
            RULE.replace("event.action: hsm.login", "user.name|list: admns"),
            "r.yaml:6: rule `r1`: selection `failed`: unknown list `admns`",
        ),
        (
            format!("{RULE}detect: {{type: sequence, within: 5m, steps: [failed, {{select: ok, absent: true}}]}}\n"),
            "r.yaml:8: rule `r1`: sequence: step `ok` names no selection",
        ),
        (format!("{RULE}---\n{RULE}"), "r.yaml:9: rule `r1`: rule id `r1` is used twice"),
        (format!("{RULE}throttle: soon\n"), "r.yaml:8: throttle: invalid duration `soon`"),
    ];
    for (text, expected) in cases {
        let found = errors(&text);
        assert!(found.iter().any(|e| e.starts_with(expected)), "expected {expected:?} in {found:#?}");
    }
}

#[test]
fn templates_accept_the_documented_variables() {
    let text = format!(
        "{RULE}detect: {{type: threshold, count: 5, window: 5m, group_by: [host.name]}}\nmessage:\n  title: \"{{{{ count }}}} on {{{{ group['host.name'] }}}} ({{{{ rule.title }}}}, {{{{ severity }}}}, {{{{ suppressed }}}})\"\n  body: \"{{{{ event['event.original'] }}}} {{{{ first_seen }}}} {{{{ last_seen }}}} {{{{ fingerprint }}}} {{{{ status }}}} {{{{ events|length }}}}\"\n"
    );
    assert!(load(&text).is_ok(), "{:?}", errors(&text));
}

#[test]
fn notifiers_are_warnings_without_a_config() {
    let loaded = load(&format!("{RULE}notify: [secops-email]\n")).unwrap();
    assert!(loaded.warnings[0].contains("secops-email"));
}

#[test]
fn every_mistake_of_a_file_is_reported_at_its_own_line() {
    let text = "id: a\ntitle: A\nseverity: high\nselect:\n  sel:\n    event.action: partition.create\ndetect:\n  type: threshold\n  count: many\n  window: 5m\n---\nid: b\ntitle: B\nseverity: hihg\nselect:\n  sel:\n    event.actoin: partition.create\ndetect:\n  type: single\ntests:\n  - name: ok\n    expect: []\n  - name: broken\n    events:\n      - {at: soon}\n    expect: []\nthrotle: 5m\n";
    let found = errors(text);
    let expected = [
        "r.yaml:9: detect: invalid type: string \"many\", expected u64",
        "r.yaml:14: severity: unknown variant `hihg`",
        "r.yaml:17: rule `b`: selection `sel`: unknown field `event.actoin` (did you mean `event.action`?)",
        "r.yaml:19: detect: unknown variant `single`",
        "r.yaml:25: tests: invalid duration `soon`",
        "r.yaml:27: unknown field `throtle`",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(found.starts_with(expected), "expected {expected:?}, found {found:?}");
    }
}
