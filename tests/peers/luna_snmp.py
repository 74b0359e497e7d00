#!/usr/bin/python3
# A fake Luna appliance's SNMP objects for net-snmp's snmpd (`pass_persist PREFIX /usr/bin/python3 luna_snmp.py DATA
# PREFIX`): DATA holds lines "OID TYPE VALUE"; the file is read again whenever it changes, so a test rewrites it to
# change what the agent says (NTLS down, storage up, FIPS flipped). Answers get and getnext under PREFIX only; refuses
# set. Standard library only: snmpd starts it with an empty environment.
import os
import sys

data, prefix = sys.argv[1], tuple(int(x) for x in sys.argv[2].strip('.').split('.'))


def key(oid):
    return tuple(int(x) for x in oid.strip().strip('.').split('.'))


rows, order, seen = {}, [], None


def load():
    global rows, order, seen
    try:
        stamp = os.stat(data).st_mtime_ns
    except OSError:
        return
    if stamp == seen:
        return
    fresh = {}
    with open(data) as handle:
        for line in handle:
            if line.strip() and not line.startswith('#'):
                oid, kind, value = line.rstrip('\n').split(None, 2)
                if key(oid)[:len(prefix)] == prefix:
                    fresh[key(oid)] = (kind, value)
    rows, order, seen = fresh, sorted(fresh), stamp


def answer(found):
    if found is None:
        return 'NONE\n'
    kind, value = rows[found]
    return '.%s\n%s\n%s\n' % ('.'.join(map(str, found)), kind, value)


for line in sys.stdin:
    command = line.strip()
    load()
    if command == 'PING':
        out = 'PONG\n'
    elif command == 'get':
        wanted = key(sys.stdin.readline())
        out = answer(wanted if wanted in rows else None)
    elif command == 'getnext':
        after = key(sys.stdin.readline())
        out = answer(next((o for o in order if o > after), None))
    elif command == 'set':
        sys.stdin.readline()
        sys.stdin.readline()
        out = 'not-writable\n'
    else:
        out = 'NONE\n'
    sys.stdout.write(out)
    sys.stdout.flush()
