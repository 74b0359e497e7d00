//! The HSM inventory through the real server: lines from two HSMs over TCP, then `hsmwatch hosts`.

use crate::support::{run, send_tcp, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_shows_each_hsm_and_its_signs_of_life() {
    let server = TestServer::start().await;
    let lines = [
        "<46>1 2026-03-02T04:02:01Z hsm-4-1-1-9 logger - - - uptime: 04:02:01 up 1 day, 30 min, 1 user, load average: 0.10, 0.05, 0.01",
        "<174>1 2026-03-10T20:05:44Z hsm-4-1-1-9 lunash 4301 - - info : 0 : Command: partition backup -partition testPar1 -tokenpar testPar1_bk -serial 700123 : admin : Console",
        "<158>1 2026-03-20T09:00:07Z hsm-4-1-1-9 cbs 2190 - - hsm_157541^1049      ,03/20/26 09:00:07,S/N 157541 session 4 Access 2147483651:2735 CO container=12 operation LUNA_LOGIN returned LUNA_RET_UM_PIN_INCORRECT(0x00a00000),77BD",
        "<6>Mar  7 02:14:09 hsm-2-1-2-6 kernel: k7pf0: ALM0008: Hard tamper - enclosure penetration",
    ];
    send_tcp(server.tcp, format!("{}\n", lines.join("\n")).as_bytes(), false).await;
    let db = server.db();
    let _dir = server.stop().await;

    let (code, json, err) = run(&["hosts", "--json", "--db", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let hosts: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(hosts.len(), 2, "{json}");
    let luna = hosts.iter().find(|h| h["name"] == "hsm-4-1-1-9").unwrap();
    assert_eq!(luna["events"], 3);
    assert_eq!(luna["addresses"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(luna["serials"], serde_json::json!(["157541"]));
    for sign in ["last_heartbeat", "last_backup", "last_login_failure"] {
        assert!(luna[sign].is_string(), "{sign} missing in {luna}");
    }
    assert_eq!(luna["datasets"]["luna.audit"], 1);
    assert_eq!(luna["silent"], false);
    let tampered = hosts.iter().find(|h| h["name"] == "hsm-2-1-2-6").unwrap();
    assert!(tampered["open_alerts"].as_u64().unwrap() >= 1, "{tampered}");

    let (code, table, _) = run(&["hosts", "--db", db.to_str().unwrap(), "--silent-after", "1ms"]);
    assert_eq!(code, Some(0));
    assert!(table.starts_with("HOST") && table.contains("hsm-4-1-1-9") && table.contains("SILENT"), "{table}");
}
