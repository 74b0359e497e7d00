#!/usr/bin/env python3
"""moto's AWS server on a loopback port, seeded with CloudHSM clusters, HSMs and backups that its API cannot make.

moto implements DescribeClusters, DescribeBackups and STS AssumeRole (the keys it returns land in the role's account)
but not CreateHsm, DEGRADED states or old backups, and it writes timestamps without an offset, which AWS's Rust SDK
refuses. This peer runs moto in-process, answers with epoch-second timestamps as AWS does, and takes commands, one
JSON object a line on stdin, each answered by one line on stdout:

  {"op": "cluster", "account": "111111111111", "region": "eu-west-1", "id": "cluster-...", "state": "ACTIVE",
   "hsms": [{"id": "hsm-...", "ip": "10.0.1.17", "az": "eu-west-1a", "state": "ACTIVE"}],
   "backups": [{"id": "backup-...", "state": "READY", "age_days": 1}], "source_backup": null,
   "created_days_ago": 0}
                                     -> "ok"   (replaces the cluster of that id and its backups)
  {"op": "remove_cluster", "account": ..., "region": ..., "id": ...}          -> "ok"
  {"op": "deny", "account": "222222222222"}    AssumeRole into it answers AccessDenied, and CloudHSM calls signed
                                               with its keys CloudHsmAccessDeniedException -> "ok"
  {"op": "allow", "account": "222222222222"}   -> "ok"
  {"op": "throttle", "count": 2}    the next N CloudHSM calls answer ThrottlingException -> "ok"
  {"op": "malformed", "region": "eu-west-1", "count": 1}
                                    the next N CloudHSM calls to that region answer 200 with broken JSON -> "ok"
  {"op": "stall", "region": "us-east-1", "seconds": 3}
                                    every CloudHSM call to that region waits that long before its answer -> "ok"
  {"op": "bulk", "accounts": [...], "regions": [...], "clusters": 20, "hsms": 2}
                                    N clusters of (by default) 2 HSMs and a backup each -> "ok"
  {"op": "stats"}                   -> {"cloudhsm_calls": N, "throttled": N, "denied": N, "malformed": N}

It prints "READY <port>" once listening on 127.0.0.1, and stops on SIGTERM or when stdin closes.
"""
import datetime
import io
import json
import signal
import time
import sys
import threading
import urllib.parse

from moto.cloudhsmv2 import models
from moto.iam.models import get_account_id_from
from moto.cloudhsmv2 import responses
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


class EpochEncoder(json.JSONEncoder):
    """Timestamps as AWS's JSON 1.1 protocol writes them: epoch seconds."""

    def default(self, o):
        if isinstance(o, datetime.datetime):
            return o.replace(tzinfo=datetime.timezone.utc).timestamp()
        if isinstance(o, models.Backup):
            return o.to_dict()
        return super().default(o)


responses.DateTimeEncoder = EpochEncoder

LOCK = threading.Lock()
FAULTS = {
    "denied": set(),
    "throttle": 0,
    "malformed": {},
    "stalled": {},
    "stats": {"cloudhsm_calls": 0, "throttled": 0, "denied": 0, "malformed": 0},
}


def faults(app):
    """Answers what moto never does: AccessDenied to AssumeRole into a denied account, throttling."""

    def wrapped(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        stall = 0
        with LOCK:
            if target.startswith("BaldrApiService."):
                FAULTS["stats"]["cloudhsm_calls"] += 1
                credential = environ.get("HTTP_AUTHORIZATION", "").partition("Credential=")[2].split("/")[0]
                if credential and get_account_id_from(credential) in FAULTS["denied"]:
                    FAULTS["stats"]["denied"] += 1
                    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
                    return [
                        b'{"__type":"CloudHsmAccessDeniedException","message":"User is not authorized to perform '
                        b'cloudhsm:DescribeClusters"}'
                    ]
                region = environ.get("HTTP_AUTHORIZATION", "").partition("Credential=")[2].split("/")[2:3]
                region = region[0] if region else ""
                if FAULTS["malformed"].get(region, 0) > 0:
                    FAULTS["malformed"][region] -= 1
                    FAULTS["stats"]["malformed"] += 1
                    start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
                    return [b'{"Clusters": [{"ClusterId": 42, "Hsms": "none"']
                stall = FAULTS["stalled"].get(region, 0)
                if FAULTS["throttle"] > 0:
                    FAULTS["throttle"] -= 1
                    FAULTS["stats"]["throttled"] += 1
                    start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
                    return [b'{"__type":"ThrottlingException","message":"Rate exceeded"}']
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if not target else {}
            if form.get("Action") == ["AssumeRole"]:
                account = form.get("RoleArn", [""])[0].split(":")[4:5]
                if account and account[0] in FAULTS["denied"]:
                    FAULTS["stats"]["denied"] += 1
                    start_response("403 Forbidden", [("Content-Type", "text/xml")])
                    arn = form["RoleArn"][0]
                    return [
                        (
                            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender'
                            "</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/moto is "
                            f"not authorized to perform: sts:AssumeRole on resource: {arn}</Message></Error>"
                            "<RequestId>c0ffee00-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
                        ).encode()
                    ]
        if stall:
            time.sleep(stall)
        return app(environ, start_response)

    return wrapped


def backend(account, region):
    return models.cloudhsmv2_backends[account][region]


def put_cluster(command):
    b = backend(command["account"], command["region"])
    cluster = models.Cluster(
        backup_retention_policy={"Type": "DAYS", "Value": "90"},
        hsm_type="hsm2m.medium",
        source_backup_id=command.get("source_backup"),
        subnet_ids=["subnet-0aa11bb2"],
        mode="FIPS",
        region_name=command["region"],
    )
    cluster.cluster_id = command["id"]
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cluster.create_timestamp = now - datetime.timedelta(days=command.get("created_days_ago", 0))
    cluster.state = command.get("state", "ACTIVE")
    if cluster.state != "ACTIVE":
        cluster.state_message = command.get("message", f"The cluster is {cluster.state.lower()}.")
    cluster.hsms = [
        {
            "HsmId": h["id"],
            "ClusterId": command["id"],
            "AvailabilityZone": h.get("az", command["region"] + "a"),
            "SubnetId": "subnet-0aa11bb2",
            "EniId": "eni-" + h["id"][4:],
            "EniIp": h["ip"],
            "HsmType": "hsm2m.medium",
            "State": h.get("state", "ACTIVE"),
            "StateMessage": "HSM created.",
        }
        for h in command.get("hsms", [])
    ]
    b.clusters[command["id"]] = cluster
    for key in [k for k, v in b.backups.items() if v.cluster_id == command["id"]]:
        del b.backups[key]
    for spec in command.get("backups", []):
        backup = models.Backup(
            cluster_id=command["id"], hsm_type="hsm2m.medium", mode="FIPS", tag_list=None, region_name=command["region"]
        )
        backup.backup_id = spec["id"]
        backup.backup_state = spec.get("state", "READY")
        backup.create_timestamp = now - datetime.timedelta(days=spec.get("age_days", 0))
        b.backups[spec["id"]] = backup


def bulk(command):
    for a, account in enumerate(command["accounts"]):
        for r, region in enumerate(command["regions"]):
            for n in range(command["clusters"]):
                tag = f"{a}x{r}x{n:03d}"
                put_cluster(
                    {
                        "account": account,
                        "region": region,
                        "id": f"cluster-bulk{tag}",
                        "hsms": [{"id": f"hsm-bulk{tag}{h}", "ip": f"10.{a}.{r + 100 * h}.{n}"}
                                 for h in range(command.get("hsms", 2))],
                        "backups": [{"id": f"backup-bulk{tag}", "age_days": 1}],
                    }
                )


def handle(command):
    op = command["op"]
    with LOCK:
        if op == "cluster":
            put_cluster(command)
        elif op == "remove_cluster":
            backend(command["account"], command["region"]).clusters.pop(command["id"], None)
        elif op == "deny":
            FAULTS["denied"].add(command["account"])
        elif op == "allow":
            FAULTS["denied"].discard(command["account"])
        elif op == "throttle":
            FAULTS["throttle"] = command["count"]
        elif op == "malformed":
            FAULTS["malformed"][command["region"]] = command["count"]
        elif op == "stall":
            FAULTS["stalled"][command["region"]] = command["seconds"]
        elif op == "bulk":
            bulk(command)
        elif op == "stats":
            return json.dumps(FAULTS["stats"])
        else:
            return f"error: unknown op {op}"
    return "ok"


class QuietHandler(WSGIRequestHandler):
    """No line per request on stderr."""

    def log_request(self, *args, **kwargs):
        pass


def main():
    app = faults(DomainDispatcherApplication(create_backend_app))
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY {server.server_port}", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as error:  # a test's mistake is told, not a dead peer
            answer = f"error: {error!r}"
        print(answer, flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
