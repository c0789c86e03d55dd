"""CPU time of one `POST /api/notifications/` in this process (Django's test client, the whole
middleware stack, real Postgres and Redis), with the send serializer reused per thread as the view
does, against it built anew for every request, alternated in one run.

    python -m bench.send_cpu [--rounds 8] [--requests 250]

Counts process CPU time (time.process_time), so waiting for Postgres and Redis is left out; no
server and no worker runs, so the figure is the view's own cost. One API key sends to one of
1,000 users per request, as bench.api_latency does.
"""

import argparse
import json
import random
import time

from bench import harness as h
from django.test import Client  # noqa: E402

from notifications.api.serializers import SendNotificationSerializer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=250)
    args = parser.parse_args()
    h.header("send_cpu: CPU per POST /api/notifications/ in-process, serializer reused or built per request",
             rounds=args.rounds, requests=args.requests)
    h.ensure_database()
    h.reset_database()
    h.reset_redis()
    users, key = h.create_users(1000), h.issue_api_key()
    client = Client()

    def post(i):
        body = json.dumps({"recipients": [random.choice(users)], "category": "orders", "title": "Order 123 shipped",
                           "message": "Your order is on its way.", "data": {"order": i}})
        answer = client.post("/api/notifications/", body, content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {key}")
        assert answer.status_code == 202, answer.content

    built = classmethod(lambda cls, data, context: cls(data=data, context=context))

    def use(name):  # the view calls SendNotificationSerializer.reused(); "built" shadows the mixin's
        if name == "reused":
            if "reused" in SendNotificationSerializer.__dict__:
                delattr(SendNotificationSerializer, "reused")
        else:
            SendNotificationSerializer.reused = built
    for i in range(300):  # warm: caches, the connection, the first queries' plans
        post(i)
    results = {"reused": [], "built per request": []}
    try:
        for round_ in range(args.rounds):
            for name in (list(results) if round_ % 2 == 0 else list(reversed(results))):
                use(name)
                started = time.process_time()
                for i in range(args.requests):
                    post(i)
                results[name].append(1000 * (time.process_time() - started) / args.requests)
    finally:
        use("reused")
    for name, values in results.items():
        print(f"{name}: {' '.join(f'{v:.2f}' for v in values)}; median {h.median(values):.2f} ms of CPU per request")
    ratios = [r / b for r, b in zip(results["reused"], results["built per request"])]
    print(f"reused / built per request: median {h.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}); "
          f"load {h.loadavg()}")
    h.reset_redis()


if __name__ == "__main__":
    main()
